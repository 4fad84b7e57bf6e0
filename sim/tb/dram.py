"""Harness helpers for the DFI-side DRAM model (hw/mem/dram_model.py), for every simulator.

Simulator-agnostic pieces (plain Python, usable from cocotb or a C++ harness's Python side):

    Store           the sparse backing store behind the model's store port; `serve(...)` is the
                    whole harness protocol for one clock edge
    trace_line      one line of the command trace: `<dram_clock> <cmd> <rank> <bg> <bank> <row> <col>`
    TraceWriter     writes (or collects) trace lines; `decode_trace` unpacks the model's `trace` output
    rule_names      the names of the rules set in a `rules` mask (spec.dram.RULES order)
    Report          violations seen: (cycle, clock, names), counts per rule, a readable summary
    pins            one DFI phase's pin values for a command (spec.dram.encode_pins)

Amaranth-simulator pieces:

    serve           an async process: every clock edge serves the store port, records violations,
                    read data and (optionally) trace lines
    Script          DFI commands placed at DRAM clocks (or cycle + phase), write data placed at
                    wr_latency automatically, RESET_n / CKE levels; `drive` plays it
    legal_init      a legal power-up sequence (the tests' reference for the init order)
    run_script      a Script against a DramModel in Amaranth simulation: report, reads, trace, counters

Trace format: `<dram_clock> <cmd> <rank> <bankgroup> <bank> <row> <col>` with the command name from
spec.dram.Cmd and `-` for fields that do not apply: REF/PREA/ZQCL/ZQCS have none, PRE has no
row/col, ACT no col, RD/WR all (row = the bank's open row), MRS prints its register number's bg/ba
fields and the value in hex in the row field.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from hw.mem.dfi import PhaseLayout
from spec.dram import CAS_COMMANDS, RULES, Channel, Cmd, mode_registers
from spec.dram import encode_pins as pins

__all__ = ["Report", "Script", "Store", "TraceWriter", "decode_trace", "legal_init", "pins", "rule_names",
           "run_script", "serve", "trace_line"]


# --------------------------------------------------------------------------------------------
# Backing store

def byte_mask(mask: int, nbytes: int = Channel.line_bytes) -> int:
    """A byte-enable mask (bit i = byte i) as a bit mask over the line."""
    out = 0
    i = 0
    while mask:
        if mask & 1:
            out |= 0xFF << (8 * i)
        mask >>= 1
        i += 1
    return out & ((1 << (8 * nbytes)) - 1)


class Store:
    """The model's sparse backing store: line address -> 512-bit little-endian int (0 if never
    written). `serve` is the harness protocol (hw.mem.dfi.StorePortSignature): called with the
    request sampled at a clock edge, it applies a write, or returns a read's data, which the
    harness drives on `rdata` before the next edge."""

    def __init__(self, line_bytes: int = Channel.line_bytes):
        self.line_bytes = line_bytes
        self.full = (1 << (8 * line_bytes)) - 1
        self.full_mask = (1 << line_bytes) - 1
        self.lines: dict[int, int] = {}
        self.n_reads = 0
        self.n_writes = 0

    def read(self, addr: int) -> int:
        return self.lines.get(addr, 0)

    def write(self, addr: int, data: int, mask: int | None = None) -> None:
        """Write the bytes of `data` whose bit is set in `mask` (1 = write byte; None = all)."""
        if mask is None or mask == self.full_mask:
            self.lines[addr] = data & self.full
            return
        bits = byte_mask(mask, self.line_bytes)
        self.lines[addr] = (self.lines.get(addr, 0) & ~bits) | (data & bits)

    def serve(self, valid: int, write: int, addr: int, data: int = 0, mask: int = 0) -> int | None:
        if not valid:
            return None
        if write:
            self.n_writes += 1
            self.write(addr, data, mask)
            return None
        self.n_reads += 1
        return self.read(addr)


# --------------------------------------------------------------------------------------------
# Trace

_NO_FIELDS = {Cmd.REF, Cmd.PREA, Cmd.ZQCL, Cmd.ZQCS, Cmd.NOP, Cmd.BAD}


def trace_line(clock: int, cmd, rank: int = 0, bg=None, ba=None, row=None, col=None) -> str:
    """`<dram_clock> <cmd> <rank> <bankgroup> <bank> <row> <col>`; fields that do not apply to
    `cmd` are written `-` whatever is passed (module docstring)."""
    cmd = Cmd(cmd)

    def f(v):
        return "-" if v is None else str(v)

    if cmd in _NO_FIELDS:
        bg = ba = row = col = None
    elif cmd == Cmd.PRE:
        row = col = None
    elif cmd == Cmd.ACT:
        col = None
    elif cmd == Cmd.MRS:
        col = None
        row = None if row is None else f"0x{row:x}"
    return f"{clock} {cmd.name} {rank} {f(bg)} {f(ba)} {f(row)} {f(col)}"


def _fields(layout) -> list[tuple[str, int, int]]:
    return [(name, fld.offset, fld.width) for name, fld in layout]


def decode_trace(value: int, ch: Channel) -> list[tuple[int, dict]]:
    """The model's `trace` output (as one int) -> [(phase, {cmd, bg, ba, row, col}), ...] for
    the phases that carry a command (valid)."""
    from hw.mem.dram_model import TraceLayout
    lay = TraceLayout(ch)
    size = lay.size
    fields = _fields(lay)
    out = []
    for p in range(ch.nphases):
        v = value >> (p * size)
        e = {name: (v >> off) & ((1 << w) - 1) for name, off, w in fields}
        if e.pop("valid"):
            e["cmd"] = Cmd(e["cmd"])
            out.append((p, e))
    return out


class TraceWriter:
    """Trace lines to `path` (a file, one line per command) or, with `path=None`, into `lines`."""

    def __init__(self, path=None):
        self.path = path
        self.lines: list[str] = []
        self._f = open(path, "w") if path is not None else None
        self.count = 0

    def add(self, clock: int, entry: dict) -> None:
        line = trace_line(clock, entry["cmd"], entry.get("rank", 0), entry.get("bg"), entry.get("ba"),
                          entry.get("row"), entry.get("col"))
        self.count += 1
        if self._f is None:
            self.lines.append(line)
        else:
            self._f.write(line + "\n")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------
# Violations

def rule_names(mask: int) -> list[str]:
    """Names of the rules whose bit is set in `mask`, in spec.dram.RULES order."""
    return [r.name for i, r in enumerate(RULES) if (mask >> i) & 1]


class Report:
    """Violations the checker reported: `events` is [(cycle, clock, [names])]."""

    def __init__(self):
        self.events: list[tuple[int, int, list[str]]] = []

    def add(self, cycle: int, clock: int, mask: int) -> None:
        if mask:
            self.events.append((cycle, clock, rule_names(mask)))

    @property
    def ok(self) -> bool:
        return not self.events

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, _, names in self.events:
            for n in names:
                out[n] = out.get(n, 0) + 1
        return out

    def names(self) -> set[str]:
        return set(self.counts())

    def first(self, name: str) -> tuple[int, int] | None:
        """(cycle, clock) of the first cycle that broke `name`."""
        for cycle, clock, names in self.events:
            if name in names:
                return cycle, clock
        return None

    def summary(self, limit: int = 10) -> str:
        if not self.events:
            return "no DRAM rule broken"
        counts = self.counts()
        out = [f"{sum(counts.values())} DRAM rule violations in {len(self.events)} cycles:"]
        for r in RULES:
            if r.name in counts:
                cycle, clock = self.first(r.name)
                out.append(f"  {r.name:<13} x{counts[r.name]:<6} first at cycle {cycle} (clock {clock}): {r.text}")
        out.append("first cycles: " + "; ".join(f"{c}: {','.join(n)}" for c, _, n in self.events[:limit]))
        return "\n".join(out)

    def __repr__(self):
        return f"Report({self.counts()})"


# --------------------------------------------------------------------------------------------
# DFI pins

def _pack(layout, values: dict) -> int:
    v = 0
    for name, off, w in _fields(layout):
        v |= (values[name] & ((1 << w) - 1)) << off
    return v


# --------------------------------------------------------------------------------------------
# Scripts

class Script:
    """DFI traffic for the model, placed in time. Commands go at a DRAM clock (`act(t, ...)`,
    `rd`, `wr`, `pre`, `prea`, `ref`, `mrs`, `zqcl`, `zqcs`, `bad`) or at (cycle, phase) with
    `cmd(cycle, phase, Cmd.X, ...)`; `raw` places arbitrary pins. A `wr` places its burst on DFI
    wrdata at WR cycle + wr_latency unless `data_cycle` says otherwise (or `data=None`: none).
    RESET_n and CKE are 0 from cycle 0 and change in the cycles of `levels` (`reset_at` / `cke_at`
    set a single rise); `append` concatenates scripts (each starting with RESET_n low), so many
    short cases share one simulation. Two commands in one slot, or two bursts in one cycle, are a
    ValueError. `expected_reads()` gives, per RD in time order, the
    data a DRAM returns (tracking open rows and writes in command order)."""

    def __init__(self, ch: Channel):
        self.ch = ch
        self.layout = PhaseLayout(ch)
        self.slots: dict[tuple[int, int], tuple[Cmd, dict, dict]] = {}
        self.wrdata: dict[int, tuple[int, int]] = {}
        self.levels: dict[str, dict[int, int]] = {"reset_n": {}, "cke": {}}   # cycle -> new level (0 before)

    @property
    def reset_at(self) -> int | None:
        """The cycle RESET_n rises (the first rise), or None."""
        return next((c for c, v in sorted(self.levels["reset_n"].items()) if v), None)

    @reset_at.setter
    def reset_at(self, cycle: int | None) -> None:
        self.levels["reset_n"] = {} if cycle is None else {cycle: 1}

    @property
    def cke_at(self) -> int | None:
        return next((c for c, v in sorted(self.levels["cke"].items()) if v), None)

    @cke_at.setter
    def cke_at(self, cycle: int | None) -> None:
        self.levels["cke"] = {} if cycle is None else {cycle: 1}

    def level(self, name: str, cycle: int) -> int:
        """RESET_n ("reset_n") or CKE ("cke") in `cycle`."""
        changes = self.levels[name]
        before = [c for c in changes if c <= cycle]
        return changes[max(before)] if before else 0

    def append(self, other: Script, at: int) -> Script:
        """Copy `other`, shifted to start at cycle `at` (after everything here), into this script;
        RESET_n and CKE go low at `at` and then follow `other`. Returns self."""
        if at <= self.last_cycle and (self.slots or self.wrdata):
            raise ValueError(f"append at cycle {at}: this script runs until cycle {self.last_cycle}")
        for (c, p), v in other.slots.items():
            self.slots[c + at, p] = v
        for c, v in other.wrdata.items():
            self.wrdata[c + at] = v
        for name in ("reset_n", "cke"):
            self.levels[name][at] = 0
            for c, v in other.levels[name].items():
                self.levels[name][c + at] = v
        return self

    # ---- placing ----
    def cmd(self, cycle: int, phase: int, cmd: Cmd, **fields) -> Script:
        """`cmd` in (cycle, phase) with the fields of `pins` (or `pins=` raw pin values); a WR/WRA
        given `data=` (and `mask=`, 1 = write byte) also places its burst at cycle + wr_latency."""
        if not 0 <= phase < self.ch.nphases or cycle < 0:
            raise ValueError(f"bad slot cycle {cycle} phase {phase}")
        if (cycle, phase) in self.slots:
            raise ValueError(f"slot cycle {cycle} phase {phase} already holds {self.slots[cycle, phase][0]!r}")
        data, mask = fields.pop("data", None), fields.pop("mask", None)
        p = fields.pop("pins", None) or pins(cmd, **fields)
        self.slots[cycle, phase] = (Cmd(cmd), fields, p)
        if data is not None:
            if cmd not in (Cmd.WR, Cmd.WRA):
                raise ValueError(f"data given for {Cmd(cmd).name}")
            self.burst(cycle + self.ch.wr_latency, data, mask)
        return self

    def at(self, t: int, cmd: Cmd, **fields) -> Script:
        return self.cmd(t // 4, t % 4, cmd, **fields)

    def raw(self, cycle: int, phase: int, pin_values: dict, cmd: Cmd = Cmd.BAD) -> Script:
        return self.cmd(cycle, phase, cmd, pins=dict(pin_values))

    def act(self, t: int, bg: int, ba: int, row: int) -> Script:
        return self.at(t, Cmd.ACT, bg=bg, ba=ba, row=row)

    def rd(self, t: int, bg: int, ba: int, col: int = 0) -> Script:
        return self.at(t, Cmd.RD, bg=bg, ba=ba, col=col)

    def wr(self, t: int, bg: int, ba: int, col: int = 0, data: int | None = 0, mask: int | None = None,
           data_cycle: int | None = None) -> Script:
        """WR at clock t; its burst `data` with store mask `mask` (1 = write byte; None = all) goes
        on DFI at WR cycle + wr_latency, or at `data_cycle`; `data=None` sends no burst."""
        self.at(t, Cmd.WR, bg=bg, ba=ba, col=col)
        if data is not None:
            self.burst(t // 4 + self.ch.wr_latency if data_cycle is None else data_cycle, data, mask)
        return self

    def burst(self, cycle: int, data: int, mask: int | None = None) -> Script:
        """wrdata_en with `data` in `cycle` (mask: 1 = write byte, None = all)."""
        if cycle in self.wrdata:
            raise ValueError(f"cycle {cycle} already carries write data")
        full = (1 << self.ch.line_bytes) - 1
        self.wrdata[cycle] = (data, full if mask is None else mask)
        return self

    def pre(self, t: int, bg: int, ba: int) -> Script:
        return self.at(t, Cmd.PRE, bg=bg, ba=ba)

    def prea(self, t: int) -> Script:
        return self.at(t, Cmd.PREA)

    def ref(self, t: int) -> Script:
        return self.at(t, Cmd.REF)

    def mrs(self, t: int, mr: int, value: int) -> Script:
        return self.at(t, Cmd.MRS, mr=mr, value=value)

    def zqcl(self, t: int) -> Script:
        return self.at(t, Cmd.ZQCL)

    def zqcs(self, t: int) -> Script:
        return self.at(t, Cmd.ZQCS)

    @property
    def last_cycle(self) -> int:
        cycles = [c for c, _ in self.slots] + list(self.wrdata)
        return max(cycles + list(self.levels["reset_n"]) + list(self.levels["cke"]), default=0)

    def commands(self) -> list[tuple[int, Cmd, dict]]:
        """(clock, cmd, fields) in time order."""
        return [(4 * c + p, cmd, f) for (c, p), (cmd, f, _) in sorted(self.slots.items())]

    # ---- reference behaviour ----
    def store_addr(self, bg: int, ba: int, row: int, col: int) -> int:
        g = self.ch.geo
        return ((row * g.bank_groups + bg) * g.banks_per_group + ba) * self.ch.bursts_per_row + (col >> 3)

    def expected_reads(self) -> list[int]:
        """The data of every RD, in order, from a plain DRAM model of this script (open rows,
        writes applied at their WR with their burst's data)."""
        rows: dict[tuple[int, int], int] = {}
        mem = Store(self.ch.line_bytes)
        out = []
        for t, cmd, f in self.commands():
            key = (f.get("bg", 0), f.get("ba", 0))
            if cmd == Cmd.ACT:
                rows[key] = f["row"]
            elif cmd == Cmd.PRE:
                rows.pop(key, None)
            elif cmd == Cmd.PREA:
                rows.clear()
            elif cmd in (Cmd.RD, Cmd.WR):
                a = self.store_addr(*key, rows.get(key, 0), f.get("col", 0))
                if cmd == Cmd.RD:
                    out.append(mem.read(a))
                elif t // 4 + self.ch.wr_latency in self.wrdata:
                    mem.write(a, *self.wrdata[t // 4 + self.ch.wr_latency])
        return out

    # ---- playing ----
    def _phases_value(self, cycle: int) -> int:
        size = self.layout.size
        v = 0
        nop = pins(Cmd.NOP)
        for p in range(self.ch.nphases):
            s = self.slots.get((cycle, p))
            v |= _pack(self.layout, s[2] if s else nop) << (p * size)
        return v

    async def drive(self, ctx, dfi, cycles: int | None = None) -> None:
        """Play the script on `dfi` (the model's DFI port) from cycle 0; return after `cycles`
        cycles (default: the last event + 1). Idle stretches are skipped with tick().repeat."""
        end = self.last_cycle + 1 if cycles is None else cycles
        events = sorted({c for c, _ in self.slots} | set(self.wrdata) | set(self.levels["reset_n"]) |
                        set(self.levels["cke"]))
        nop_all = self._phases_value(-1)
        phases = dfi.phases.as_value()

        def levels(c: int) -> None:
            ctx.set(dfi.reset_n, self.level("reset_n", c))
            ctx.set(dfi.cke, self.level("cke", c))

        ctx.set(phases, nop_all)
        levels(0)
        now = 0
        for c in events:
            if c >= end:
                break
            if c > now:
                await ctx.tick().repeat(c - now)
                now = c
            levels(c)
            ctx.set(phases, self._phases_value(c))
            if c in self.wrdata:
                data, mask = self.wrdata[c]
                ctx.set(dfi.wrdata_en, 1)
                ctx.set(dfi.wrdata, data)
                ctx.set(dfi.wrdata_mask, ~mask & ((1 << self.ch.line_bytes) - 1))
            await ctx.tick()
            now += 1
            ctx.set(phases, nop_all)
            ctx.set(dfi.wrdata_en, 0)
            levels(now)
        if end > now:
            await ctx.tick().repeat(end - now)


def legal_init(ch: Channel, script: Script | None = None, *, adjust: dict | None = None, skip: Iterable = (),
               values: dict | None = None) -> tuple[Script, int]:
    """A legal power-up: RESET_n low for t_reset, CKE high t_cke after it, tXPR, then MR3 MR6 MR5
    MR4 MR2 MR1 MR0 tMRD apart (values from spec.dram.mode_registers), ZQCL tMOD after MR0. Returns
    the script and the first DRAM clock at which a command may follow (ZQCL + tZQinit).

    For negative tests: `adjust` adds clocks to a wait ("t_reset", "t_cke": rounded up to whole
    cycles; "tXPR", "tMRD", "tMOD", "tZQinit"), `skip` leaves out MR numbers or "ZQCL", `values`
    overrides mode-register values."""
    t = ch.timing
    adj = {"t_reset": 0, "t_cke": 0, "tXPR": 0, "tMRD": 0, "tMOD": 0, "tZQinit": 0}
    for k, v in (adjust or {}).items():
        if k not in adj:
            raise ValueError(f"legal_init: unknown wait {k!r}; valid: {', '.join(adj)}")
        adj[k] = v
    s = script if script is not None else Script(ch)
    reset_at = math.ceil((ch.t_reset + adj["t_reset"]) / 4)
    s.reset_at = reset_at
    s.cke_at = reset_at + math.ceil((ch.t_cke + adj["t_cke"]) / 4)
    clk = 4 * s.cke_at + t.tXPR + adj["tXPR"]
    first = True
    for mr, value in mode_registers(t).items():
        if mr in skip:
            continue
        if not first:
            clk += t.tMRD + adj["tMRD"]
        first = False
        s.mrs(clk, mr, (values or {}).get(mr, value))
    clk += t.tMOD + adj["tMOD"]
    if "ZQCL" not in skip:
        s.zqcl(clk)
    return s, clk + t.tZQinit + adj["tZQinit"]


# --------------------------------------------------------------------------------------------
# Amaranth simulation

async def serve(ctx, model, store: Store | None, report: Report, trace: TraceWriter | None = None,
                reads: list | None = None) -> None:
    """Amaranth async process (add_process): on every clock edge serve the model's store port,
    record violations into `report`, the read bursts ((cycle, data)) into `reads` and the commands
    into `trace`. Everything is sampled at the edge, so it does not race the DFI driver. Sampling
    costs simulation time per signal: with `store`, `trace` or `reads` None their signals are not
    sampled (a run without reads and writes needs no store)."""
    ch = model.ch
    st = model.store
    sigs = [model.rules, model.clock]
    if store is not None:
        sigs += [st.valid, st.write, st.addr, st.data, st.mask]
    if trace is not None:
        sigs += [model.trace_any, model.trace.as_value()]
    if reads is not None:
        sigs += [model.dfi.rddata_valid, model.dfi.rddata]
    async for _, _, rules, clock, *vals in ctx.tick().sample(*sigs):
        if store is not None:
            valid, write, addr, wdata, mask, *vals = vals
            if valid:
                r = store.serve(valid, write, addr, wdata, mask)
                if r is not None:
                    ctx.set(st.rdata, r)
        if rules:
            report.add(clock // 4, clock, rules)
        if trace is not None:
            tany, tr, *vals = vals
            if tany:
                for p, e in decode_trace(tr, ch):
                    trace.add(clock + p, e)
        if reads is not None and vals[0]:
            reads.append((clock // 4, vals[1]))


def run_script(script: Script, cycles: int | None = None, *, trace: bool = False, model=None,
               store: Store | None = None, extra: Iterable = (), data: bool = True) -> dict:
    """Run `script` against a DramModel (a new one unless given) in Amaranth simulation for
    `cycles` cycles (default: the script's end + rd_latency + 2). Returns {report, reads:
    [(cycle, data)], trace: [lines] or None, store, counters: {reads, writes, acts, refs,
    violations, ref_debt, max_ref_debt, init_done, clock}}. `extra`: more async testbenches.
    `data=False` neither serves the store nor collects reads (faster, for scripts without RD/WR)."""
    from amaranth.sim import Simulator

    from hw.mem.dram_model import DramModel
    ch = script.ch
    dut = model if model is not None else DramModel(ch)
    if cycles is None:
        cycles = script.last_cycle + ch.rd_latency + 2
    store = store if store is not None else Store(ch.line_bytes)
    report, reads = Report(), []
    if not data:
        if any(cmd in CAS_COMMANDS for _, cmd, _ in script.commands()):
            raise ValueError("run_script(data=False) with a script that reads or writes")
    tw = TraceWriter(None) if trace else None
    counters: dict = {}

    async def bench(ctx):
        await script.drive(ctx, dut.dfi, cycles)
        for k in ("reads", "writes", "acts", "refs", "violations", "ref_debt", "max_ref_debt", "init_done", "clock"):
            counters[k] = ctx.get(getattr(dut, k))

    sim = Simulator(dut)
    sim.add_clock(1e-9)
    async def harness(ctx):
        await serve(ctx, dut, store if data else None, report, tw, reads if data else None)

    sim.add_process(harness)
    sim.add_testbench(bench)
    for tb in extra:
        sim.add_testbench(tb)
    sim.run()
    return {"report": report, "reads": reads, "trace": tw.lines if tw else None, "store": store,
            "counters": counters}
