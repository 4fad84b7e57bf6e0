"""cocotb testbench of the whole accelerator (hw.top.Accelerator): a RAM model and token hosts.

Driven by sim/rtl/runner.py (`run_job`), which builds the Verilog with Verilator or Icarus through the
cocotb runner and passes a job file in the environment variable SIM_JOB (JSON, see
sim/rtl/runner.py). For each program of the job the bench holds reset, writes the ROM through `rom_wr`,
loads the memory (weight image + zeroed state regions, one per core), releases reset and serves:

* the memory port (hw.mem.port) from a Python bytearray, in command order, with seeded random
  pauses before each command it accepts, each read beat it offers and each write beat it takes;
* per core a token host (golden.machine.ListHost or GreedyHost) on tok_in / tok_out, with random
  pauses too;

until every core has halted or waits at a TOKIN its host cannot serve. Results go to the job's
`out` file: per program the tokens each core sent, each core's state region (hex), the cycle of
each TOKOUT, the total cycles, the memory traffic (commands, read and write beats) and the
halt/fault bits. The checking (against the golden machine)
is the caller's.
"""
from __future__ import annotations

import json
import os
import random
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from golden.machine import GreedyHost, ListHost


def _host(spec: dict):
    if spec["mode"] == "greedy":
        return GreedyHost(spec["tokens"], spec["n_new"])
    return ListHost(spec["tokens"])


class _Bench:
    def __init__(self, dut, job: dict):
        self.dut = dut
        self.job = job
        self.beat = job["beat_bytes"]
        self.line_bits = job["line_bits"]
        self.cores = job["cores"]
        st = job.get("stall", {})
        self.rng = random.Random(st.get("seed", 0))
        self.p_cmd, self.p_rd, self.p_wr = st.get("cmd", 0.0), st.get("rd", 0.0), st.get("wr", 0.0)
        self.p_tok = st.get("tok", 0.0)
        self.tok_in = [(getattr(dut, f"tok_in__{k}__valid"), getattr(dut, f"tok_in__{k}__ready"),
                        getattr(dut, f"tok_in__{k}__payload")) for k in range(self.cores)]
        self.tok_out = [(getattr(dut, f"tok_out__{k}__valid"), getattr(dut, f"tok_out__{k}__ready"),
                         getattr(dut, f"tok_out__{k}__payload")) for k in range(self.cores)]

    async def reset_and_load(self, rom: list[int]) -> None:
        d = self.dut
        d.rst.value = 1
        d.start.value = 0
        d.mem__cmd__ready.value = 0
        d.mem__rd__valid.value = 0
        d.mem__wr__ready.value = 0
        for v, _, _ in self.tok_in:
            v.value = 0
        for _, r, _ in self.tok_out:
            r.value = 0
        words = self.job["rom_words"]
        for a in range(words):
            await FallingEdge(d.clk)
            d.rom_wr__en.value = 1
            d.rom_wr__addr.value = a
            d.rom_wr__data.value = rom[a] if a < len(rom) else 0
        await FallingEdge(d.clk)
        d.rom_wr__en.value = 0
        await FallingEdge(d.clk)
        d.rst.value = 0

    async def run_program(self, prog: dict) -> dict:
        d = self.dut
        beat, line_bits = self.beat, self.line_bits
        with open(prog["memory"], "rb") as f:
            image = f.read()
        state_base, state_bytes = prog["state_base"], prog["state_bytes"]
        assert state_base % beat == 0 and state_bytes % beat == 0
        mem = bytearray(image) + bytearray(state_base - len(image)) + bytearray(state_bytes * self.cores)
        d.state_base.value = state_base // beat
        d.state_stride.value = state_bytes // beat
        hosts = [_host(h) for h in prog["hosts"]]
        tok_cycles: list[list[int]] = [[] for _ in range(self.cores)]
        await self.reset_and_load([int(w, 16) if isinstance(w, str) else int(w) for w in prog["rom"]])

        rng = self.rng
        cmdq: deque = deque()               # accepted commands: [line, remaining, write]
        cmd_ready = rd_valid = rd_hw = wr_ready = 0
        offering = [False] * self.cores
        in_hw = [False] * self.cores
        out_ready = [0] * self.cores
        exhausted = [False] * self.cores
        len_bits = self.job["len_bits"]
        len_mask, line_mask = (1 << len_bits) - 1, (1 << line_bits) - 1
        beat_mask = (1 << (8 * beat)) - 1
        max_cycles = prog.get("max_cycles", 10_000_000)
        cycle = 0
        read_beats = write_beats = commands = 0
        result = {"timeout": False}
        while True:
            await FallingEdge(d.clk)
            cycle += 1
            # -- drive: memory --
            want = 1 if len(cmdq) < 4 and rng.random() >= self.p_cmd else 0
            if want != cmd_ready:
                d.mem__cmd__ready.value = cmd_ready = want
            if not rd_valid:            # offer the next read beat, or nothing
                if cmdq and not cmdq[0][2] and rng.random() >= self.p_rd:
                    a = cmdq[0][0] * beat
                    d.mem__rd__payload.value = int.from_bytes(mem[a:a + beat], "little")
                    rd_valid = 1
                if rd_valid != rd_hw:
                    d.mem__rd__valid.value = rd_hw = rd_valid
            want = 1 if cmdq and cmdq[0][2] and rng.random() >= self.p_wr else 0
            if want != wr_ready:
                d.mem__wr__ready.value = wr_ready = want
            # -- drive: tokens --
            for k in range(self.cores):
                v, _, p = self.tok_in[k]
                if not offering[k]:
                    if not exhausted[k] and rng.random() >= self.p_tok:
                        tok = hosts[k].next_token()
                        if tok is None:
                            exhausted[k] = True
                        else:
                            p.value = tok & 0xFFFFFFFF
                            offering[k] = True
                    if offering[k] != in_hw[k]:
                        v.value = in_hw[k] = offering[k]
                want = 1 if rng.random() >= self.p_tok else 0
                if want != out_ready[k]:
                    self.tok_out[k][1].value = out_ready[k] = want
            await ReadOnly()
            # -- sample --
            if cmd_ready and d.mem__cmd__valid.value:
                c = int(d.mem__cmd__payload.value)
                cmdq.append([c & line_mask, (c >> line_bits) & len_mask, (c >> (line_bits + len_bits)) & 1])
                commands += 1
                assert cmdq[-1][1] >= 1, "memory command of zero beats"
            if rd_valid and d.mem__rd__ready.value:
                rd_valid = 0
                read_beats += 1
                cmdq[0][0] += 1
                cmdq[0][1] -= 1
                if cmdq[0][1] == 0:
                    cmdq.popleft()
            if wr_ready and d.mem__wr__valid.value:
                w = int(d.mem__wr__payload.value)
                data, mask = w & beat_mask, w >> (8 * beat)
                a = cmdq[0][0] * beat
                assert a >= state_base, f"write of line {cmdq[0][0]} into the weight image"
                raw = data.to_bytes(beat, "little")
                for i in range(beat):
                    if (mask >> i) & 1:
                        mem[a + i] = raw[i]
                cmdq[0][0] += 1
                cmdq[0][1] -= 1
                if cmdq[0][1] == 0:
                    cmdq.popleft()
                write_beats += 1
            for k in range(self.cores):
                v, r, _ = self.tok_in[k]
                if offering[k] and r.value:
                    offering[k] = False
                ov, _, op = self.tok_out[k]
                if out_ready[k] and ov.value:
                    hosts[k].put_token(op.value.to_signed())
                    tok_cycles[k].append(cycle)
                    exhausted[k] = False
            if (cycle & 31) == 0 or cycle >= max_cycles:
                halted = int(d.halted.value)
                waiting = int(d.waiting.value)
                busy = int(d.busy.value)
                done = True
                for k in range(self.cores):
                    if (halted >> k) & 1:
                        continue
                    if (waiting >> k) & 1 and exhausted[k] and not offering[k] and not (busy >> k) & 1 \
                            and not int(self.tok_out[k][0].value) and not cmdq:
                        continue
                    done = False
                if done:
                    break
                if cycle >= max_cycles:
                    result["timeout"] = True
                    break
        await FallingEdge(d.clk)
        for k in range(self.cores):
            self.tok_in[k][0].value = 0
        result.update({
            "cycles": cycle,
            "read_beats": read_beats,
            "write_beats": write_beats,
            "commands": commands,
            "halted": int(d.halted.value),
            "fault": int(d.fault.value),
            "tokouts": [h.outputs for h in hosts],
            "tok_cycles": tok_cycles,
            "state": [mem[state_base + k * state_bytes:state_base + (k + 1) * state_bytes].hex()
                      for k in range(self.cores)],
        })
        return result


@cocotb.test()
async def run_job(dut):
    """Run every program of the job in SIM_JOB and write the results."""
    with open(os.environ["SIM_JOB"]) as f:
        job = json.load(f)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    bench = _Bench(dut, job)
    results = []
    for prog in job["programs"]:
        results.append(await bench.run_program(prog))
        with open(job["out"], "w") as f:          # after each program: partial results survive a crash
            json.dump({"results": results}, f)
