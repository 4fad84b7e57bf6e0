"""Testbench scaffolding for one functional unit of hw.core in Amaranth simulation: the models
behind its ports, the drivers of its inputs, the watch of its command contract and the small checks
every unit test makes. A unit's test keeps only what is its own: the naive reference model, the
stimulus, and the per-cycle checks of its channels (LiteDRAM's test/common.py idea).

    from sim.tb import unit

    config = unit.config(vector_lanes=4, beat_bytes=16, vlen=64)   # spec.accel's ecp5, replaced
    regs = unit.RegModel(config, init)            # 8 vector registers of config.vlen int elements
    ram = unit.RamModel(bytearray(...), config.beat_bytes, Pauses(seed, p))
    mon = unit.Monitor(dut, prog, limit, signals={"rs_en": dut.rs.en, ...}, idle=("rs_en",),
                       quiet=(6, [dut.rs.en]), busy=checks_of_one_cycle, check=compare_state)

    async def source(ctx):
        await unit.issue(ctx, dut.cmd, payloads, Pauses(seed, gap))

    unit.simulator(dut, regs, ram, stall=Pauses(seed, p), testbenches=[source, mon.watch]).run()

A streaming unit (a `stream` in, a `stream` out, no command) runs under `run_stream`.

Every handshake a model or driver here controls runs under a seeded pause generator
(sim/tb/streams.py): the RAM's cmd.ready, rd.valid and wr.ready, the command source's cmd.valid,
the test-only `stall` input, a stream unit's input valid and output ready. With no pauses
(`NO_PAUSES`) every one of them is as fast as the port allows.

Contracts relied on (hw.core.iface, hw.mem.port, amaranth.lib.stream):

- register channels: `data` is the word addressed in the previous cycle with `en` high and holds
  while `en` is low; a write changes the lanes with `mask` set only (RegModel serves exactly that);
- the memory port: in-order bursts of whole beats, `len` >= 1, addresses inside the RAM (RamModel
  checks them);
- `cmd`: a stream, `ready` high exactly while the unit is idle; `done`: a one-cycle pulse when the
  instruction's writes have all been made (Monitor checks both);
- streams: a transfer on an edge with `valid` and `ready` high; a source holds `valid` and the
  payload until the transfer (streams.send / streams.receive).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import gc
import operator
import random
import re
import types
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from amaranth.hdl import Fragment, UnusedElaboratable
from amaranth.sim import Simulator

from hw.core.iface import FX, READ_LATENCY, ReadChannel, WriteChannel, words
from sim.tb.streams import NO_PAUSES, Pauses, assert_quiet, receive, send
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig, get_config

__all__ = ["FX_CLASSES", "Monitor", "RamModel", "RegModel", "Run", "check_channels", "check_elaborates", "check_regs",
           "check_test_stall", "check_write", "cmd_payload", "config", "fx_vector", "issue", "rejects", "run_stream",
           "simulator", "stall_driver", "until", "word_mask"]


# -- configurations ------------------------------------------------------------------------------
def config(base: str = "ecp5", **fields) -> AccelConfig:
    """A unit test's configuration: the named spec.accel configuration with `fields` replaced
    (vector_lanes, beat_bytes, vlen, packing ...)."""
    return dataclasses.replace(get_config(base), **fields)


# -- models behind the ports ---------------------------------------------------------------------
class RegModel:
    """The vector register file behind a unit's read and write channels (the responder side).

    `V[r]` is register r, `vlen` int64 elements (zero, or a copy of `init[r]`); a test may change
    it (`load` the whole file) while the unit is idle. `serve_read(chan)` / `serve_write(chan)` return one process per
    channel: a read puts the word addressed in a cycle with `en` high on `data` for the next cycle
    and leaves `data` alone otherwise; a write with `en` high stores the lanes with `mask` set.
    Words outside the register fail the test. `writes` counts the written words.
    """

    def __init__(self, config: AccelConfig, init: Sequence[np.ndarray] | None = None):
        self.lanes = config.vector_lanes
        self.words = words(config)
        self.V = [np.zeros(config.vlen, np.int64) for _ in range(isa.N_VREGS)]
        if init is not None:
            self.load(init)
        self.writes = 0
        self.poison = [N.FX_MIN + 0x5A5A5 + 7 * j for j in range(self.lanes)]

    def load(self, init: Sequence[np.ndarray]) -> None:
        for r in range(isa.N_VREGS):
            self.V[r][:] = init[r]

    def word(self, reg: int, addr: int) -> list[int]:
        assert 0 <= addr < self.words, f"read of word {addr} outside the register ({self.words} words)"
        return [int(v) for v in self.V[reg][addr * self.lanes:(addr + 1) * self.lanes]]

    def serve_read(self, chan):
        # the word of a read comes READ_LATENCY cycles after its `en`, for that cycle only; in
        # every other cycle `data` shows POISON, so a unit that uses it at the wrong time fails
        async def process(ctx):
            arriving = collections.deque([None] * (READ_LATENCY - 1))
            async for _, _, en, reg, addr in ctx.tick().sample(chan.en, chan.reg, chan.addr):
                arriving.append(self.word(reg, addr) if en else None)
                w = arriving.popleft()
                ctx.set(chan.data, self.poison if w is None else w)
        return process

    def serve_write(self, chan):
        async def process(ctx):
            async for _, _, en, reg, addr, mask, data in ctx.tick().sample(
                    chan.en, chan.reg, chan.addr, chan.mask, chan.data):
                if en:
                    assert 0 <= addr < self.words, f"write of word {addr} outside the register"
                    for j in range(self.lanes):
                        if (mask >> j) & 1:
                            self.V[reg][addr * self.lanes + j] = int(data[j])
                    self.writes += 1
        return process


async def _take(ctx, stream):
    """Raise `ready` until a transfer, lower it again; the payload taken."""
    ctx.set(stream.ready, 1)
    async for _, _, valid, payload in ctx.tick().sample(stream.valid, stream.payload):  # noqa: B007
        if valid:
            break
    ctx.set(stream.ready, 0)
    return payload


class RamModel:
    """Byte-addressed RAM behind a MemPortSignature port (the responder side).

    One command at a time: `pauses.next()` cycles with cmd.ready low, then cmd.ready until a
    command; then its `len` beats, each after `pauses.next()` cycles with rd.valid (read) or
    wr.ready (write) low. Write beats store the bytes with `mask` set. `commands` logs
    (line, len, write) of every command, `reads` / `writes` count beats.
    """

    def __init__(self, mem: bytearray, beat_bytes: int, pauses: Pauses = NO_PAUSES):
        self.mem = mem
        self.beat = beat_bytes
        self.pauses = pauses
        self.reads = self.writes = 0        # beats
        self.commands: list[tuple[int, int, bool]] = []

    def _beat(self, line: int) -> int:
        a = line * self.beat
        assert 0 <= a and a + self.beat <= len(self.mem), f"read of line {line} outside the RAM"
        return int.from_bytes(self.mem[a:a + self.beat], "little")

    def serve(self, port):
        async def pause(ctx, cycles: int):
            # single ticks, not tick().repeat(): this process never ends, and one closed at the end
            # of a simulation inside repeat() reports "aclose(): asynchronous generator is already
            # running" when it is collected
            for _ in range(cycles):
                await ctx.tick()

        async def process(ctx):
            while True:
                await pause(ctx, self.pauses.next())
                cmd = await _take(ctx, port.cmd)
                line, n, write = int(cmd.addr), int(cmd.len), bool(cmd.write)
                assert n >= 1, "a command of zero beats"
                self.commands.append((line, n, write))
                if write:
                    for k in range(n):
                        await pause(ctx, self.pauses.next())
                        beat = await _take(ctx, port.wr)
                        a = (line + k) * self.beat
                        assert 0 <= a and a + self.beat <= len(self.mem), f"write of line {line + k} outside the RAM"
                        d, mask = int(beat.data), int(beat.mask)
                        for i in range(self.beat):
                            if (mask >> i) & 1:
                                self.mem[a + i] = (d >> (8 * i)) & 0xFF
                        self.writes += 1
                else:
                    for k in range(n):
                        await pause(ctx, self.pauses.next())
                        ctx.set(port.rd.payload.data, self._beat(line + k))
                        ctx.set(port.rd.valid, 1)
                        async for _, _, ready in ctx.tick().sample(port.rd.ready):
                            if ready:
                                break
                        ctx.set(port.rd.valid, 0)
                        self.reads += 1
        return process


# -- drivers -------------------------------------------------------------------------------------
def cmd_payload(op: str, **fields) -> dict:
    """A unit_cmd_layout payload for `ctx.set`: opcode from the mnemonic, other fields 0 unless
    given (sf as {"mantissa": m, "exponent": e})."""
    p = {"op": isa.BY_MNEMONIC[op].code, "vl": 0, "vd": 0, "vs": 0, "vt": 0, "ad": 0, "at": 0, "fd": 0,
         "addr": 0, "s0": 0, "s1": 0, "sf": {"mantissa": 0, "exponent": 0}, "rows": 0}
    p.update(fields)
    return p


async def until(ctx, cond: Callable[[], bool]) -> None:
    """Wait for clock edges until `cond()` (testbench state, e.g. Monitor.checked) holds."""
    while not cond():
        await ctx.tick()


async def issue(ctx, cmd, payloads, pauses: Pauses = NO_PAUSES, *, before=None) -> None:
    """Send instructions to a unit's `cmd` stream, one by one, with streams.send: before each,
    `pauses.next()` idle cycles with `cmd.valid` low, then `valid` and the payload held until
    `cmd.ready`.

    `before(ctx, k)`, when given, is awaited ahead of instruction k's idle cycles: a test waits
    there for the unit to finish (and its state to be checked) before it refills registers that
    the next instruction reads. Without it instructions wait at `cmd` while the unit is busy.
    """
    for k, payload in enumerate(payloads):
        if before is not None:
            await before(ctx, k)
        await send(ctx, cmd, [payload], pauses, name=f"cmd (instruction {k})")


def stall_driver(signal, pauses: Pauses):
    """A process driving a unit's test-only `stall` input: one `pauses.stall()` draw per cycle."""
    async def process(ctx):
        while True:
            ctx.set(signal, pauses.stall())
            await ctx.tick()
    return process


# -- the watch of the command contract -----------------------------------------------------------
@dataclasses.dataclass
class Run:
    """What a run of a unit showed, in cycles counted from the first clock edge it watched."""
    accepted: list[int] = dataclasses.field(default_factory=list)   # each instruction's cmd transfer
    done: list[int] = dataclasses.field(default_factory=list)       # each instruction's done pulse

    def cycles(self) -> list[int]:
        return [d - a for a, d in zip(self.accepted, self.done, strict=True)]


class Monitor:
    """Watches a unit's command contract (hw.core.iface) on every clock edge; drives nothing.

    `watch` is the testbench. On every edge it samples `cmd.valid`, `cmd.ready`, `done` and the
    test's `signals` and checks:

    - idle: `cmd.ready` high, `done` and every `idle` signal low. An edge with `cmd.valid` accepts
      instruction k: its cycle goes to `run.accepted`, then `start(k)` runs;
    - busy: `cmd.ready` low, `busy(s)` runs (the unit's own checks of the cycle, the `done` cycle
      included); `done` ends the instruction, its cycle goes to `run.done`;
    - `check(k)` runs on the cycle after the done, when the writes of the done cycle have landed,
      before that cycle's idle checks; `checked` is then k (without `check`, from the done cycle
      on). A command source that refills registers waits for `checked`;
    - after the last instruction (its check, or its done without one): `quiet` cycles with
      `cmd.ready` high and no activity, then `watch` returns;
    - at most `limit` cycles up to the last instruction ("no progress" fails the test).

    Parameters
    ----------
    dut : a unit with `cmd` (In(stream), ready exactly while idle) and `done` (Out(1), one pulse)
    prog : the instructions in issue order; len(prog) of them are expected, shown in messages
    limit : int, the most cycles up to the last instruction
    signals : dict name -> Value, sampled on every edge; the hooks get them as the attributes of
        one namespace `s`, with `valid`, `ready`, `done`, `cycle` and, while an instruction is in
        flight, `k` (its index) and `where` (cycle and instruction, for messages)
    idle : names of `signals` that must be low while the unit is idle
    quiet : (cycles, Values) for after the last instruction: each Value low, `cmd.ready` high
    busy : busy(s), every cycle of an instruction
    start : start(k), on the accepting edge (reset the test's per-instruction counters)
    check : check(k), the state (register file, RAM) against the reference after instruction k
    every : every(s), first on every cycle (checks of signals outside the instruction, such as
        the hold rule of a port)
    run : the Run to fill (a subclass with the test's own lists); a new Run without it
    """

    def __init__(self, dut, prog: Sequence, limit: int, *, signals: dict, idle: Sequence[str],
                 quiet: tuple[int, Sequence], busy: Callable, start: Callable | None = None,
                 check: Callable | None = None, every: Callable | None = None, run: Run | None = None):
        unknown = set(idle) - set(signals)
        if unknown:
            raise ValueError(f"idle names {sorted(unknown)} are not among the signals")
        self.dut, self.prog, self.limit = dut, prog, limit
        self.signals, self.idle = dict(signals), tuple(idle)
        self.quiet_cycles, self.quiet = quiet[0], functools.reduce(operator.or_, quiet[1])
        self.busy, self.start, self.check, self.every = busy, start, check, every
        self.run = Run() if run is None else run
        self.checked = -1

    async def watch(self, ctx) -> None:
        dut, run, names = self.dut, self.run, list(self.signals)
        last = len(self.prog) - 1
        cur = check_at = None
        cycle = -1
        ticks = ctx.tick().sample(dut.cmd.valid, dut.cmd.ready, dut.done, *self.signals.values())
        async for _, _, valid, ready, done, *values in ticks:
            cycle += 1
            assert cycle < self.limit, f"cycle {cycle}: no progress (instruction {cur} of {len(self.prog)})"
            s = types.SimpleNamespace(**dict(zip(names, values, strict=True)), valid=valid, ready=ready,
                                      done=done, cycle=cycle)
            if self.every is not None:
                self.every(s)
            if check_at is not None and cycle == check_at[0]:
                k = check_at[1]
                self.check(k)
                self.checked = k
                check_at = None
                if k == last:
                    break
            if cur is None:
                assert ready, f"cycle {cycle}: idle but cmd.ready low"
                active = [n for n in ("done", *self.idle) if getattr(s, n)]
                assert not active, f"cycle {cycle}: {', '.join(active)} while idle"
                if valid:
                    cur = len(run.accepted)
                    run.accepted.append(cycle)
                    if self.start is not None:
                        self.start(cur)
                continue
            s.k, s.where = cur, f"cycle {cycle}, instruction {cur} {self.prog[cur]}"
            assert not ready, f"{s.where}: cmd.ready while busy"
            self.busy(s)
            if done:
                run.done.append(cycle)
                if self.check is not None:
                    check_at = (cycle + 1, cur)
                else:
                    self.checked = cur
                    if cur == last:
                        break
                cur = None
        for _ in range(self.quiet_cycles):
            _, _, ready, active = await ctx.tick().sample(dut.cmd.ready, self.quiet)
            assert ready and not active, "activity after the last instruction"


# -- simulations ---------------------------------------------------------------------------------
def simulator(dut, regs: RegModel | None = None, ram: RamModel | None = None, *, stall: Pauses | None = None,
              testbenches: Sequence = (), clock: float = 1e-6) -> Simulator:
    """A Simulator around a unit: `regs` serving every ReadChannel then every WriteChannel member
    of its signature, `ram` its `mem` port, `stall` (pauses) its test-only `stall` input, then the
    `testbenches` in order. The caller adds more (background testbenches) and runs it."""
    sim = Simulator(dut)
    sim.add_clock(clock)
    if regs is not None:
        members = dut.signature.members
        for kind, serve in ((ReadChannel, regs.serve_read), (WriteChannel, regs.serve_write)):
            for name, member in members.items():
                if member.is_signature and isinstance(member.signature, kind):
                    sim.add_process(serve(getattr(dut, name)))
    if ram is not None:
        sim.add_process(ram.serve(dut.mem))
    if stall is not None:
        sim.add_process(stall_driver(dut.stall, stall))
    for tb in testbenches:
        sim.add_testbench(tb)
    return sim


def run_stream(dut, payloads, n: int, *, idle: Pauses = NO_PAUSES, backpressure: Pauses = NO_PAUSES,
               i: str = "i", o: str = "o", drain: int = 0, background: Sequence = (),
               clock: float = 1e-6) -> list:
    """Simulate a streaming unit: `payloads` into its stream `i` (streams.send under `idle`), `n`
    transfers out of its stream `o` (streams.receive under `backpressure`, the hold rule checked
    on every cycle), then `drain` cycles with `o.ready` high in which nothing more may come out.
    The `background` testbenches (monitors) run alongside. Returns the payloads taken from `o`.
    `idle` and `backpressure` may be one generator: the source draws before the sink."""
    results = []
    src, dst = getattr(dut, i), getattr(dut, o)

    async def producer(ctx):
        await send(ctx, src, payloads, idle, name=i)

    async def consumer(ctx):
        results.extend(await receive(ctx, dst, n, backpressure, name=o))
        if drain:
            await assert_quiet(ctx, dst, drain, f"{o}: a transfer after the {n} expected")

    sim = Simulator(dut)
    sim.add_clock(clock)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    for tb in background:
        sim.add_testbench(tb, background=True)
    sim.run()
    return results


# -- checks --------------------------------------------------------------------------------------
def word_mask(lanes: int, n: int, word: int) -> int:
    """The write mask of word `word` of an n-element vector: every lane, but only the lanes
    below n on its last word."""
    last = -(-n // lanes) - 1
    return (1 << lanes) - 1 if word < last else (1 << (n - last * lanes)) - 1


def check_write(where: str, addr: int, reg: int, mask: int, *, word: int, vd: int, lanes: int, n: int) -> None:
    """One write on a unit's write channel (sampled `addr`, `reg`, `mask`): the next word `word` of
    writes in word order, to register `vd`, with the lanes of an n-element vector (word_mask)."""
    assert addr == word, f"{where}: write of word {addr}, expected {word}"
    assert reg == vd, f"{where}: wd names V{reg}"
    want = word_mask(lanes, n, word)
    assert mask == want, f"{where}: mask {mask:#x}, expected {want:#x}"


def check_regs(regs: RegModel, want: Sequence[np.ndarray], after: str) -> None:
    """The whole register file, elements past any VL included, equals `want`."""
    for r in range(isa.N_VREGS):
        np.testing.assert_array_equal(regs.V[r], want[r], err_msg=f"V{r} after {after}")


def check_elaborates(dut, config: AccelConfig) -> None:
    """The unit elaborates (Fragment.get) and keeps `config` and its lane count."""
    Fragment.get(dut, None)
    assert dut.lanes == config.vector_lanes and dut.config is config


def check_test_stall(dut, stalled) -> None:
    """Only the unit built with `test_stall=True` (`stalled`) has the `stall` input; it elaborates."""
    assert "stall" not in dut.signature.members
    Fragment.get(stalled, None)
    assert "stall" in stalled.signature.members


def check_channels(config: AccelConfig, *chans) -> None:
    """Register channels sized from `config`: vector_lanes FX lanes, word addresses of the
    register's depth."""
    for chan in chans:
        assert len(chan.data) == config.vector_lanes
        assert chan.data[0].shape() == FX
        assert chan.addr.shape().width == (max(2, words(config)) - 1).bit_length()


def rejects(exc: type[Exception], match: str, build: Callable, *args, **kwargs) -> None:
    """`build(*args, **kwargs)` raises `exc` with a message in which `match` is found (re.search,
    as pytest.raises). The half-built component's UnusedElaboratable warning is expected: it is
    silenced and the component collected here, so it cannot fire in a later test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        try:
            build(*args, **kwargs)
        except exc as e:
            assert re.search(match, str(e)), f"{type(e).__name__}: {str(e)!r} does not match {match!r}"
        else:
            raise AssertionError(f"{getattr(build, '__name__', build)} did not raise {exc.__name__}")
        finally:
            gc.collect()


# -- operands ------------------------------------------------------------------------------------
#: magnitude classes of FX vectors shared by the unit tests (fx_vector)
FX_CLASSES = ("zero", "tiny", "limit", "sumsq_edge", "mixed")


def fx_vector(rng: random.Random, n: int, cls: str) -> list[int]:
    """n FX values of one magnitude class: all zero, a few ulps, at and near the FX limits, max|x|
    at the sum-of-squares pre-shift's edges (2**SUMSQ_IN_BITS - 1, 2**SUMSQ_IN_BITS, + 1), every
    element its own bit length ("mixed")."""
    if cls == "zero":
        return [0] * n
    if cls == "tiny":
        return [rng.randint(-(1 << 8), 1 << 8) for _ in range(n)]
    if cls == "limit":
        return [rng.choice([N.FX_MAX - rng.randrange(1 << 20), N.FX_MIN + rng.randrange(1 << 20),
                            N.FX_MIN, N.FX_MAX, rng.randint(N.FX_MIN, N.FX_MAX)]) for _ in range(n)]
    if cls == "sumsq_edge":
        edge = rng.choice([(1 << N.SUMSQ_IN_BITS) - 1, 1 << N.SUMSQ_IN_BITS, (1 << N.SUMSQ_IN_BITS) + 1])
        v = [rng.randint(-edge, edge) for _ in range(n)]
        v[rng.randrange(n)] = rng.choice([-edge, edge])
        return v
    if cls == "mixed":
        return [rng.choice([-1, 1]) * rng.randrange(1 << rng.randrange(1, N.FX_BITS)) for _ in range(n)]
    raise ValueError(f"unknown FX class {cls!r}; one of {FX_CLASSES}")
