"""cocotb bench of the DDR4 memory system (hw.mem.dram_system.DramSystem): traffic, data check,
JEDEC checker, efficiency.

Driven by sim/rtl/dram.py (`run`), which builds the Verilog with Verilator and passes a job
(JSON) in $SIM_JOB. The bench resets the system, serves every channel's backing store
(sim.tb.dram.Store, sparse) through the models' store ports, waits for the controllers' init, then
runs the job's workloads one after the other. A workload offers requests every cycle (with
optional seeded random idle cycles, and random backpressure on the read data) for `cycles`
controller cycles, then drains. Every read is checked against a shadow of what was written
(never-written lines read 0); every checker violation is recorded with its rule names. The
efficiency of a workload is (model RD + WR commands) * 4 DRAM clocks / DRAM clocks elapsed,
measured over the workload's window after `warmup` cycles. With `trace` set, every DRAM command
of every channel is written as one line (sim.tb.dram.trace_line).
"""
from __future__ import annotations

import json
import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from hw.mem.dfi import Cmd, native_req_layout
from hw.mem.port import MemPortSignature, cmd_layout
from sim.tb.dram import Store, TraceWriter, byte_mask, decode_trace, rule_names
from spec.dram import Channel


class _Stores:
    """Serve every channel's store port: a request seen in cycle c is answered in cycle c + 1."""

    def __init__(self, dut, channels: int, line_bytes: int, addr_bits: int):
        self.ports = [(getattr(dut, f"store{i}__valid"), getattr(dut, f"store{i}__write"),
                       getattr(dut, f"store{i}__addr"), getattr(dut, f"store{i}__data"),
                       getattr(dut, f"store{i}__mask"), getattr(dut, f"store{i}__rdata")) for i in range(channels)]
        self.stores = [Store(line_bytes) for _ in range(channels)]
        self.pending: list[int | None] = [None] * channels

    def drive(self) -> None:
        for i, p in enumerate(self.pending):
            if p is not None:
                self.ports[i][5].value = p
                self.pending[i] = None

    def sample(self) -> None:
        for i, (v, w, a, d, m, _) in enumerate(self.ports):
            if v.value:
                addr = int(a.value)
                if w.value:
                    self.stores[i].write(addr, int(d.value), int(m.value))
                else:
                    self.pending[i] = self.stores[i].read(addr)


class _Tracer:
    def __init__(self, dut, ch: Channel, channels: int, path: str):
        self.ch = ch
        self.sigs = [(getattr(dut, f"stat{i}__trace_any"), getattr(dut, f"stat{i}__trace"),
                      getattr(dut, f"stat{i}__clock")) for i in range(channels)]
        self.writer = TraceWriter(path)

    def sample(self) -> None:
        for i, (anyv, tr, clk) in enumerate(self.sigs):
            if anyv.value:
                c0 = int(clk.value)
                for p, entry in decode_trace(int(tr.value), self.ch):
                    self.writer.add(c0 + p, dict(entry, channel=i))

    def close(self) -> None:
        self.writer.close()


class _Shadow:
    """What memory must hold, in command order, and the reads still owed (each with its expected
    data, fixed when the read was accepted); `check` compares the data as it comes back."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        self.mem: dict[int, int] = {}
        self.expect: deque = deque()
        self.returned = self.errors = 0
        self.first_errors: list[dict] = []

    def write(self, line: int, data: int, mask: int) -> None:
        full = byte_mask(mask, self.nbytes)
        self.mem[line] = (self.mem.get(line, 0) & ~full) | (data & full)

    def read(self, line: int) -> None:
        self.expect.append((line, self.mem.get(line, 0)))

    def check(self, got: int, cycle: int) -> None:
        if not self.expect:
            raise AssertionError(f"cycle {cycle}: read data without a read request")
        line, want = self.expect.popleft()
        self.returned += 1
        if got != want:
            self.errors += 1
            if len(self.first_errors) < 5:
                self.first_errors.append({"line": line, "cycle": cycle, "want": hex(want), "got": hex(got)})


class _Workload:
    """Request generator: yields (line, write, data, mask) forever."""

    def __init__(self, ch: Channel, spec: dict, rng: random.Random, lines: int):
        self.ch, self.spec, self.rng, self.lines = ch, spec, rng, lines
        self.kind = spec["kind"]
        self.pos = spec.get("start", 0) % lines
        self.stride = spec.get("stride", 1)
        self.read_frac = spec.get("read_frac", 1.0)
        self.hot = [rng.randrange(lines) for _ in range(spec.get("hot_lines", 64))]
        if self.kind == "row_hits":
            r = spec.get("row", 5)
            self.row_lines = [ch.join(0, 0, r, c) for c in range(spec.get("columns", ch.bursts_per_row))]
        if self.kind not in ("seq", "stride", "random", "row_hits", "mixed"):
            raise ValueError(f"unknown workload kind {self.kind!r}")

    def next(self) -> tuple[int, int, int, int]:
        rng, k = self.rng, self.kind
        if k == "seq" or k == "stride":
            line = self.pos
            self.pos = (self.pos + self.stride) % self.lines
        elif k == "random":
            line = rng.randrange(self.lines)
        elif k == "row_hits":
            line = self.row_lines[self.pos % len(self.row_lines)]
            self.pos += 1
        else:                                          # mixed: a stream, a hot set, anywhere
            u = rng.random()
            if u < 0.4:
                line = self.pos
                self.pos = (self.pos + 1) % self.lines
            elif u < 0.75:
                line = rng.choice(self.hot)
            else:
                line = rng.randrange(self.lines)
        write = 0 if rng.random() < self.read_frac else 1
        if write:
            nbytes = self.ch.line_bytes
            data = rng.getrandbits(8 * nbytes)
            mask = (1 << nbytes) - 1 if rng.random() < 0.7 else rng.getrandbits(nbytes)
            return line, 1, data, mask
        return line, 0, 0, 0


class _Bench:
    def __init__(self, dut, job: dict):
        self.dut, self.job = dut, job
        self.ch = Channel(**job["channel"])
        self.channels = job.get("channels", 1)
        self.stores = _Stores(dut, self.channels, self.ch.line_bytes, self.ch.line_bits)
        self.tracer = _Tracer(dut, self.ch, self.channels, job["trace"]) if job.get("trace") else None
        self.stat = [{n: getattr(dut, f"stat{i}__{n}") for n in
                      ("violation", "rules", "violations", "clock", "reads", "writes", "acts", "refs", "ref_debt",
                       "max_ref_debt", "init_done", "ready", "refreshes")} for i in range(self.channels)]
        self.violations: list[dict] = []
        self.cycle = 0
        self.shadow = _Shadow(self.ch.line_bytes)

    def counters(self, i: int = 0) -> dict:
        s = self.stat[i]
        return {n: int(s[n].value) for n in ("clock", "reads", "writes", "acts", "refs", "violations", "refreshes")} | {
            "max_ref_debt": s["max_ref_debt"].value.to_signed(), "ref_debt": s["ref_debt"].value.to_signed()}

    async def step(self) -> None:
        """Advance to the next cycle's drive point (falling edge)."""
        await FallingEdge(self.dut.clk)
        self.cycle += 1
        self.stores.drive()

    def observe(self) -> None:
        """At ReadOnly: the store requests, the checker and the trace of this cycle."""
        self.stores.sample()
        for i, s in enumerate(self.stat):
            if s["violation"].value:
                names = rule_names(int(s["rules"].value))
                if len(self.violations) < 200:
                    self.violations.append({"channel": i, "cycle": self.cycle, "clock": int(s["clock"].value),
                                            "rules": names})
        if self.tracer:
            self.tracer.sample()

    async def idle(self) -> None:
        """One cycle with nothing offered on the port. Every cycle after reset must be observed:
        a cycle whose store request is not served loses a write (or a read's data)."""
        d = self.dut
        await self.step()
        if self.job.get("frontend", "native") == "streamer":
            d.port__cmd__valid.value = 0
            d.port__wr__valid.value = 0
        else:
            d.port__req__valid.value = 0
        await ReadOnly()
        self.observe()

    async def reset(self) -> None:
        d = self.dut
        d.rst.value = 1
        if self.job.get("frontend", "native") == "streamer":
            d.port__cmd__valid.value = 0
            d.port__wr__valid.value = 0
            d.port__rd__ready.value = 0
        else:
            d.port__req__valid.value = 0
            d.port__rdata__ready.value = 0
        for _ in range(3):
            await self.step()
        d.rst.value = 0
        limit = self.job.get("init_cycles", 20_000)
        for _ in range(limit):
            await self.step()
            await ReadOnly()
            self.observe()
            if all(int(s["ready"].value) for s in self.stat):
                return
        raise AssertionError(f"controller not ready after {limit} cycles")

    async def run_native(self, spec: dict, rng: random.Random) -> dict:
        """One workload on the native port of channel 0."""
        d, ch = self.dut, self.ch
        gen = _Workload(ch, spec, rng, ch.lines)
        cycles, warmup = spec["cycles"], spec.get("warmup", 200)
        p_idle, p_bp = spec.get("idle", 0.0), spec.get("backpressure", 0.0)
        lay = native_req_layout(ch)
        o_addr, o_write, o_data, o_mask = (lay[f].offset for f in ("addr", "write", "data", "mask"))
        sh = self.shadow
        offering = None
        hw_valid = 0
        rd_ready = 0
        accepted = {"reads": 0, "writes": 0}
        returned0, errors0 = sh.returned, sh.errors
        c0 = c1 = None
        start_cycle = self.cycle
        while True:
            await self.step()
            n = self.cycle - start_cycle
            if c0 is None and n >= warmup:
                c0 = self.counters()
            generating = n < cycles
            if offering is None and generating and (p_idle == 0 or rng.random() >= p_idle):
                offering = gen.next()
                line, w, data, mask = offering
                d.port__req__payload.value = (line << o_addr) | (w << o_write) | (data << o_data) | (mask << o_mask)
            v = 1 if offering is not None else 0
            if v != hw_valid:
                d.port__req__valid.value = hw_valid = v
            r = 1 if (p_bp == 0 or rng.random() >= p_bp) else 0
            if r != rd_ready:
                d.port__rdata__ready.value = rd_ready = r
            await ReadOnly()
            self.observe()
            if n == cycles and c0 is not None:
                c1 = self.counters()
            if hw_valid and d.port__req__ready.value:
                line, w, data, mask = offering
                if w:
                    sh.write(line, data, mask)
                    accepted["writes"] += 1
                else:
                    sh.read(line)
                    accepted["reads"] += 1
                offering = None
            if rd_ready and d.port__rdata__valid.value:
                sh.check(int(d.port__rdata__payload.value), self.cycle)
            if n >= cycles and offering is None and not sh.expect:
                break
            if n > cycles + 50_000:
                raise AssertionError(f"{len(sh.expect)} reads never returned")
        await self.idle()
        c2 = self.counters()
        c1 = c1 or c2
        c0 = c0 or c1
        dclk = c1["clock"] - c0["clock"]
        cas = (c1["reads"] - c0["reads"]) + (c1["writes"] - c0["writes"])
        return {
            "name": spec.get("name", spec["kind"]), "kind": spec["kind"], "cycles": cycles, "warmup": warmup,
            "dram_clocks": c2["clock"] - self.start_clock,
            "window_dram_clocks": dclk, "window_cas": cas,
            "window_reads": c1["reads"] - c0["reads"], "window_writes": c1["writes"] - c0["writes"],
            "window_acts": c1["acts"] - c0["acts"], "window_refs": c1["refs"] - c0["refs"],
            "efficiency": (cas * 4 / dclk) if dclk else 0.0,
            "accepted": accepted, "returned": sh.returned - returned0, "data_errors": sh.errors - errors0,
            "first_errors": sh.first_errors,
            "violations": c2["violations"], "max_ref_debt": c2["max_ref_debt"], "ref_debt": c2["ref_debt"],
        }

    async def run_port(self, spec: dict, rng: random.Random) -> dict:
        """Bursts on the memory port (streamer frontend): random read/write bursts, data checked."""
        d = self.dut
        beat = self.job["beat_bytes"]
        cmd_lay = cmd_layout(beat)
        o_addr, o_len, o_write = (cmd_lay[f].offset for f in ("addr", "len", "write"))
        wr_lay = MemPortSignature(beat).members["wr"].signature.members["payload"].shape
        o_wdata, o_wmask = wr_lay["data"].offset, wr_lay["mask"].offset
        bursts = spec["bursts"]
        max_len = spec.get("max_len", 64)
        span = spec.get("span_beats", 1 << 16)
        p_idle, p_bp = spec.get("idle", 0.0), spec.get("backpressure", 0.0)
        read_frac = spec.get("read_frac", 0.7)
        sh = _Shadow(beat)
        cmds = deque()
        for _ in range(bursts):
            n = rng.randint(1, max_len)
            a = rng.randrange(0, span - n)
            cmds.append((a, n, 0 if rng.random() < read_frac else 1))
        wq: deque = deque()         # write beats to send: (line, data, mask)
        offering = None
        hv = wv = 0
        wr_off = None
        rd_ready = 0
        beats = 0
        start = self.cycle
        full_mask = (1 << beat) - 1
        while True:
            await self.step()
            if offering is None and cmds and (p_idle == 0 or rng.random() >= p_idle):
                offering = cmds.popleft()
                a, n, w = offering
                d.port__cmd__payload.value = (a << o_addr) | (n << o_len) | (w << o_write)
            v = 1 if offering is not None else 0
            if v != hv:
                d.port__cmd__valid.value = hv = v
            if wr_off is None and wq and (p_idle == 0 or rng.random() >= p_idle):
                wr_off = wq.popleft()
                d.port__wr__payload.value = (wr_off[1] << o_wdata) | (wr_off[2] << o_wmask)
            v = 1 if wr_off is not None else 0
            if v != wv:
                d.port__wr__valid.value = wv = v
            r = 1 if (p_bp == 0 or rng.random() >= p_bp) else 0
            if r != rd_ready:
                d.port__rd__ready.value = rd_ready = r
            await ReadOnly()
            self.observe()
            if hv and d.port__cmd__ready.value:
                # the port applies commands in order: a write's data (chosen now, sent later) is
                # what every later read sees, so the shadow follows command order
                a, n, w = offering
                for k in range(n):
                    if w:
                        data = rng.getrandbits(8 * beat)
                        mask = full_mask if rng.random() < 0.7 else rng.getrandbits(beat)
                        wq.append((a + k, data, mask))
                        sh.write(a + k, data, mask)
                    else:
                        sh.read(a + k)
                offering = None
            if wv and d.port__wr__ready.value:
                beats += 1
                wr_off = None
            if rd_ready and d.port__rd__valid.value:
                sh.check(int(d.port__rd__payload.value), self.cycle)
            if not cmds and offering is None and wr_off is None and not wq and not sh.expect:
                break
            if self.cycle - start > spec.get("max_cycles", 2_000_000):
                raise AssertionError("memory-port workload did not finish")
        await self.idle()
        cs = [self.counters(i) for i in range(self.channels)]
        return {"name": spec.get("name", "port"), "kind": "port", "cycles": self.cycle - start,
                "read_beats": sh.returned, "write_beats": beats, "data_errors": sh.errors,
                "first_errors": sh.first_errors,
                "per_channel_reads": [c["reads"] for c in cs], "per_channel_writes": [c["writes"] for c in cs],
                "violations": sum(c["violations"] for c in cs), "max_ref_debt": max(c["max_ref_debt"] for c in cs)}


@cocotb.test()
async def run_job(dut):
    with open(os.environ["SIM_JOB"]) as f:
        job = json.load(f)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    bench = _Bench(dut, job)
    rng = random.Random(job.get("seed", 1))
    await bench.reset()
    bench.start_clock = bench.counters()["clock"]
    out = {"init_cycles": bench.cycle, "workloads": []}
    for spec in job["workloads"]:
        try:
            if job.get("frontend", "native") == "streamer":
                res = await bench.run_port(spec, rng)
            else:
                res = await bench.run_native(spec, rng)
        except AssertionError as e:             # keep the reason for sim.rtl.runner.run_cocotb's error
            out.update(error=f"workload {spec.get('name', spec.get('kind'))}: {e}", violations=bench.violations)
            with open(job["out"], "w") as f:
                json.dump(out, f)
            raise
        out["workloads"].append(res)
        out["violations"] = bench.violations
        with open(job["out"], "w") as f:
            json.dump(out, f)
    if bench.tracer:
        bench.tracer.close()
    out["cmd_names"] = {int(c): c.name for c in Cmd}
    with open(job["out"], "w") as f:
        json.dump(out, f)
