"""hw.core.core: the whole Core in the Amaranth simulator, against the golden machine (golden.machine).

The bench (`Bench`) wraps the Core in a module with an explicit sync domain (so that a test can
pulse the reset between programs), serves `mem` and `wmem` with two RamModels over one bytearray
(the weight image at address 0, a state region after it), offers tokens on `tok_in` and takes them
from `tok_out` (each under its own seeded pause generator; `tok_out` is checked with HoldCheck),
and samples `pc`, `issued`, `halted`, `fault`, `waiting`, `busy` and every unit's `done` pulse in
every cycle. A program is loaded through `rom_wr` and started with a reset; a run ends when the
core is halted with `tok_out` drained. In every cycle: nothing issues while halted, `waiting` only
on a TOKIN with no token offered, `busy` low while halted.

Tests:

* decode / fault (`test_decode_fault`): words derived from spec.isa.OPS and FIELDS — every
  unknown opcode, for every opcode every unused field non-zero (lowest and highest bit), every
  V/F operand at 8 and at the field's maximum, U16 immediates 0 and past 65535, labels with bit
  31 set — make the core stop with `fault` and `halted` high and the PC on that word, which never
  issues; valid words (random operands, the extreme legal values of every operand) never fault,
  and every valid word but TOKIN issues. Random words are classified by spec.isa.decode itself. The
  word is placed after 0..2 NOPs; a faulted core is restarted with `start` (which must clear
  `fault`), any other with a reset. Every case's expectation is cross-checked with
  spec.isa.decode, and the completeness test asserts that every opcode appears both as a valid
  and as an invalid word, and every unknown opcode as an invalid one.
* programs of scalar and control ops against GoldenMachine (`test_programs`): 64-bit wrap of
  ADDI/ADDS/SUBS/MULS, nested DJNZ loops, a backward BLTZ loop, forward BLTZ taken and not
  taken, JMP over dead code (a HALT and a TOKOUT), NOP, BARRIER, SETVL shown through SV, TOKIN
  of extreme 32-bit values, LDF of float32 values from memory and FMUL (zero operands, the
  rounding carry of the mantissa product) shown through TMATMUL on a probe matrix; then random
  scalar/control programs (forward branches, DJNZ and BLTZ loops, TOKIN/TOKOUT, special values);
  the TOKOUT values, the tokens consumed and the state region must equal the golden machine's.
* sim.fuzz programs (`test_fuzz_programs`): random valid programs over the whole ISA with the
  fuzz image, RTL Observed == golden Observed, under memory and token pauses.
* hazards (`test_hazards`): blocks of a long unit op (NORM, QNT, TMATMUL, ARGMAX, LDW, LDV)
  followed by independent instructions and one dependent one (RAW on V, A and F registers, WAR on
  a source, WAW, two reads of one register, SV after TMATMUL); the independent ones must issue
  before the long op's unit pulses `done`, the dependent one only after it; results as golden.
* `start` (`test_start_and_barrier`): after HALT a `start` pulse re-runs from PC 0 with A, V, F
  and VL kept (the golden machine re-run from pc 0); a `start` while running is ignored; BARRIER
  waits while `barrier_go` is low with `at_barrier` high.
* tokens under random pauses (`test_tokens_under_pauses`): an echo program with heavy pauses on
  both token streams, back-to-back TOKOUTs, `waiting` seen high.

Heavier variants (more random programs, more fuzz seeds, every bit of every unused field) are
marked slow.
"""
from __future__ import annotations

import dataclasses
import functools
import random
import struct

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module
from amaranth.sim import Simulator

from golden.machine import GoldenMachine, ListHost
from hw.core import scalar_mul as smul
from hw.core.core import UNIT_OF, UNITS, Core
from sim import fuzz
from sim.tb.streams import HoldCheck, Pauses
from sim.tb.unit import RamModel
from spec import isa
from spec import weight_image as wi
from spec.accel import AccelConfig, get_config

E = isa.encode
HALT, NOP = E("HALT"), E("NOP")
TOKIN_CODE = isa.BY_MNEMONIC["TOKIN"].code
#: the fuzz image's sizes (vlen 64, rom_words 256, beat 16, 1.6-bit packing, 4 lanes)
CFG = fuzz.fuzz_config("ecp5")
#: a small core for the decode test (4 words per register: a short post-reset clear)
SMALL = dataclasses.replace(get_config("ecp5"), vlen=16, rom_words=64)
STATE_BYTES = 4096


@pytest.fixture(autouse=True)
def _numpy_golden(monkeypatch):
    """The golden machine on golden.ops and the numpy matvec (bit-identical to the numba
    twins by contract, and no JIT warm-up for these short vectors)."""
    monkeypatch.setenv("MMFREE_GOLDEN_KERNEL", "numpy")


@functools.cache
def image() -> wi.Image:
    return fuzz.make_image(CFG)


@functools.cache
def image_bytes() -> bytes:
    return np.asarray(image().file_bytes(), np.uint8).tobytes()


def state_base() -> int:
    return len(image_bytes())


# -- the bench -----------------------------------------------------------------------------------
@dataclasses.dataclass
class Sample:
    pc: int
    issued: bool
    halted: bool
    fault: bool
    waiting: bool
    busy: bool
    at_barrier: bool
    done: dict[str, bool]


@dataclasses.dataclass
class Result:
    tokouts: list[int]
    state: bytes
    tokens_taken: int
    samples: list[Sample]

    def issue_cycles(self, pc: int) -> list[int]:
        return [c for c, s in enumerate(self.samples) if s.issued and s.pc == pc]

    def done_cycles(self, unit: str) -> list[int]:
        return [c for c, s in enumerate(self.samples) if s.done[unit]]


def _units(frag: Fragment) -> dict:
    """The Core's functional units (for their `done` pulses), found in the elaborated hierarchy."""
    for sub, name, _ in frag.subfragments:
        if name == "core":
            return {n: f.origins[0] for f, n, _ in sub.subfragments if n in UNITS}
    raise AssertionError("no core in the hierarchy")


class Bench:
    def __init__(self, config: AccelConfig, rom=(HALT,), *, seed: int = 0, mem_p: float = 0.0,
                 tok_in_p: float = 0.0, tok_out_p: float = 0.0, tok_in_burst: int | None = None,
                 serve_mem: bool = True):
        self.cfg = config
        self.core = core = Core(config, rom)
        self.rom = [int(w) for w in rom] + [0] * (config.rom_words - len(rom))
        top = Module()
        top.domains.sync = self.cd = ClockDomain("sync")
        top.submodules.core = core
        frag = Fragment.get(top, None)
        self.units = _units(frag)
        assert set(self.units) == set(UNITS)
        self.sim = Simulator(frag)
        self.sim.add_clock(1e-6)
        self.mem = bytearray()
        if serve_mem:
            self.sim.add_process(RamModel(self.mem, config.beat_bytes, Pauses(seed * 7 + 1, mem_p)).serve(core.mem))
            self.sim.add_process(RamModel(self.mem, config.beat_bytes, Pauses(seed * 7 + 2, mem_p)).serve(core.wmem))
        self.tok_in_pauses = Pauses(seed * 7 + 3, tok_in_p, burst=tok_in_burst)
        self.tok_out_pauses = Pauses(seed * 7 + 4, tok_out_p)
        self.tok_queue: list[int] = []
        self.tokens_taken = 0
        self.tokouts: list[int] = []
        self.hold = HoldCheck("tok_out")
        self.sim.add_testbench(self._tok_source, background=True)
        self.sim.add_testbench(self._tok_sink, background=True)

    # -- token streams ----------------------------------------------------------------------------
    async def _tok_source(self, ctx) -> None:
        """Offers self.tok_queue in order, idle cycles before each token; a new queue object (a new
        program) withdraws the current offer."""
        tok_in = self.core.tok_in
        q, offering, idle = None, False, None
        ticks = ctx.tick().sample(tok_in.ready).__aiter__()
        while True:
            if q is not self.tok_queue:
                q, offering, idle = self.tok_queue, False, None
            if not offering and q:
                if idle is None:
                    idle = self.tok_in_pauses.next()
                if idle == 0:
                    offering = True
                    ctx.set(tok_in.payload, q[0])
                else:
                    idle -= 1
            ctx.set(tok_in.valid, int(offering))
            _, _, ready = await ticks.__anext__()
            if offering and ready:
                q.pop(0)
                self.tokens_taken += 1
                offering, idle = False, None

    async def _tok_sink(self, ctx) -> None:
        tok_out = self.core.tok_out
        ticks = ctx.tick().sample(tok_out.valid, tok_out.payload).__aiter__()
        while True:
            ready = not self.tok_out_pauses.stall()
            ctx.set(tok_out.ready, int(ready))
            _, _, valid, payload = await ticks.__anext__()
            self.hold(valid, ready, payload)
            if valid and ready:
                self.tokouts.append(int(payload))

    # -- control ----------------------------------------------------------------------------------
    async def write_rom(self, ctx, words, at: int = 0) -> None:
        wr = self.core.rom_wr
        for a, w in enumerate(words, at):
            ctx.set(wr.en, 1)
            ctx.set(wr.addr, a)
            ctx.set(wr.data, int(w))
            self.rom[a] = int(w)
            await ctx.tick()
        ctx.set(wr.en, 0)

    async def reset(self, ctx) -> None:
        assert not ctx.get(self.core.tok_out.valid), "reset with a token in tok_out"
        ctx.set(self.cd.rst, 1)
        await ctx.tick()
        ctx.set(self.cd.rst, 0)
        self.hold.held = None

    async def pulse_start(self, ctx) -> None:
        ctx.set(self.core.start, 1)
        await ctx.tick()
        ctx.set(self.core.start, 0)

    def sample(self, ctx) -> Sample:
        c = self.core
        s = Sample(ctx.get(c.pc), bool(ctx.get(c.issued)), bool(ctx.get(c.halted)), bool(ctx.get(c.fault)),
                   bool(ctx.get(c.waiting)), bool(ctx.get(c.busy)), bool(ctx.get(c.at_barrier)),
                   {u: bool(ctx.get(self.units[u].done)) for u in UNITS})
        assert not (s.issued and s.halted), f"issued while halted at pc {s.pc}"
        assert not (s.halted and s.busy), f"a unit busy while halted at pc {s.pc}"
        if s.waiting:
            assert self.rom[s.pc] >> 56 == TOKIN_CODE, f"waiting at pc {s.pc}, not a TOKIN"
            assert not ctx.get(c.tok_in.valid), "waiting with a token offered"
        return s

    async def run_until_halt(self, ctx, max_cycles: int, samples: list[Sample] | None = None,
                             on_cycle=None) -> list[Sample]:
        """Sample every cycle until halted with tok_out drained; `on_cycle(ctx, cycle)` sets inputs
        before each cycle's sample."""
        samples = [] if samples is None else samples
        for _ in range(max_cycles):
            if on_cycle is not None:
                on_cycle(ctx, len(samples))
            s = self.sample(ctx)
            samples.append(s)
            if s.halted and not ctx.get(self.core.tok_out.valid):
                assert not s.fault, f"fault at pc {s.pc} (word 0x{self.rom[s.pc]:016x})"
                await ctx.tick().repeat(2)          # let the token sink take what it sampled
                return samples
            await ctx.tick()
        raise AssertionError(f"not halted after {max_cycles} cycles (pc {samples[-1].pc})")

    async def job(self, ctx, words, tokens=(), state: bytes = b"", max_cycles: int = 30_000,
                  on_cycle=None) -> Result:
        """Load `words` and the memory (image + `state`), reset, run to HALT."""
        self.mem[:] = image_bytes() + bytes(state)
        self.tok_queue = [int(t) for t in tokens]
        self.tokens_taken = 0
        self.tokouts = []
        await self.write_rom(ctx, words)
        await self.reset(ctx)
        samples = await self.run_until_halt(ctx, max_cycles, on_cycle=on_cycle)
        return Result(list(self.tokouts), bytes(self.mem[state_base():]), self.tokens_taken, samples)

    def run(self, main) -> None:
        self.sim.add_testbench(main)
        self.sim.run()


# -- the golden side -----------------------------------------------------------------------------
def golden(words, tokens=(), state: bytes = b"", restarts: int = 0):
    """GoldenMachine on the fuzz image with `state` as the state region; run to HALT, then
    `restarts` more times from pc 0 (registers kept, as the core's `start`)."""
    m = GoldenMachine(words, image(), state_bytes=len(state))
    m.state[:] = np.frombuffer(bytes(state), np.uint8)
    host = ListHost(tokens)
    for k in range(restarts + 1):
        if k:
            m.pc = 0
        m.run(host)
        assert m.halt_reason == "HALT", m.halt_reason
    return m, host


def check_against_golden(name: str, got: Result, words, tokens=(), state: bytes = b"") -> GoldenMachine:
    m, host = golden(words, tokens, state)
    assert got.tokouts == host.outputs, f"{name}: TOKOUT values\n  got  {got.tokouts}\n  want {host.outputs}"
    assert got.tokens_taken == host.fed, f"{name}: {got.tokens_taken} tokens taken, golden {host.fed}"
    if got.state != bytes(m.state):
        x, y = np.frombuffer(got.state, np.uint8), np.frombuffer(bytes(m.state), np.uint8)
        i = int(np.argmax(x != y))
        raise AssertionError(f"{name}: state byte +{i} (word +{i - i % 8}): got "
                             f"{int.from_bytes(got.state[i - i % 8:][:8], 'little', signed=True)}, want "
                             f"{int.from_bytes(bytes(m.state)[i - i % 8:][:8], 'little', signed=True)}")
    return m


# -- data helpers ----------------------------------------------------------------------------------
def put(state: bytearray, off: int, data: bytes) -> None:
    state[off:off + len(data)] = data


def i64s(values) -> bytes:
    return np.asarray(values, "<i8").tobytes()


def f32s(values) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def probe_matrix(rng: np.random.Generator, rows: int, cols: int) -> bytes:
    """Packed trits [rows, cols] (CFG's packing and beat): row 0 = e0, row 1 = e1, others random."""
    w = rng.integers(-1, 2, (rows, cols)).astype(np.int8)
    w[0], w[1] = 0, 0
    w[0, 0], w[1, 1] = 1, 1
    return wi.pack_trits(w, CFG.packing, CFG.beat_bytes).tobytes()


# -- a. decode and fault -------------------------------------------------------------------------
def _used(op: isa.Op) -> set[str]:
    used = {"opcode"} | {o.field for o in op.operands}
    if any(o.kind in (isa.Kind.MEM, isa.Kind.S32, isa.Kind.U16, isa.Kind.LABEL) for o in op.operands):
        used.add("imm")
    return used


def _set_field(word: int, field: str, value: int) -> int:
    lsb, width = isa.FIELDS[field]
    mask = ((1 << width) - 1) << lsb
    return (word & ~mask) | ((value << lsb) & mask)


def _random_operand(opd: isa.Operand, rng: random.Random):
    k = opd.kind
    if k is isa.Kind.V or k is isa.Kind.F:
        return rng.randrange(8)
    if k is isa.Kind.A:
        return rng.randrange(16)
    if k is isa.Kind.S32:
        return rng.randint(-(1 << 31), (1 << 31) - 1)
    if k is isa.Kind.U16:
        return rng.randint(1, isa.VL_MAX)
    if k is isa.Kind.LABEL:
        return rng.randrange(1 << 31)
    return (rng.randrange(16), rng.randint(-(1 << 31), (1 << 31) - 1))


def decode_cases(rng: random.Random, n_random: int, every_bit: bool = False) -> list[tuple[int, bool, str]]:
    """(word, valid, why): systematic from spec.isa.OPS / FIELDS, then random words."""
    cases: list[tuple[int, bool, str]] = []
    for code in range(256):
        if code not in isa.BY_CODE:
            cases.append((code << 56, False, f"unknown opcode 0x{code:02x}"))
            cases.append((code << 56 | rng.getrandbits(56), False, f"unknown opcode 0x{code:02x}, random fields"))
    for op in isa.OPS:
        mn = op.mnemonic
        base = E(mn, *(_random_operand(o, rng) for o in op.operands))
        cases.append((base, True, f"{mn}: random operands"))
        cases.append((E(mn, *(_random_operand(o, rng) for o in op.operands)), True, f"{mn}: random operands"))
        for f in isa.FIELDS:
            if f in _used(op):
                continue
            lsb, width = isa.FIELDS[f]
            bits = range(width) if every_bit else (0, width - 1)
            for b in bits:
                cases.append((base | 1 << (lsb + b), False, f"{mn}: unused field {f} bit {b}"))
        hi = base
        for opd in op.operands:
            lsb, width = isa.FIELDS[opd.field]
            if opd.kind in (isa.Kind.V, isa.Kind.F):
                for v in (8, (1 << width) - 1):
                    cases.append((_set_field(base, opd.field, v), False, f"{mn}: {opd.name} index {v}"))
                hi = _set_field(hi, opd.field, 7)
            elif opd.kind is isa.Kind.A:
                hi = _set_field(hi, opd.field, 15)
            elif opd.kind is isa.Kind.MEM:
                hi = _set_field(_set_field(hi, opd.field, 15), "imm", 0x80000000)
            elif opd.kind is isa.Kind.S32:
                hi = _set_field(hi, "imm", 0x80000000)
            elif opd.kind is isa.Kind.U16:
                for v in (0, isa.VL_MAX + 1, 0xFFFFFFFF):
                    cases.append((_set_field(base, "imm", v), False, f"{mn}: {opd.name} = {v}"))
                cases.append((_set_field(base, "imm", 1), True, f"{mn}: {opd.name} = 1"))
                hi = _set_field(hi, "imm", isa.VL_MAX)
            elif opd.kind is isa.Kind.LABEL:
                for v in (0x80000000, 0xFFFFFFFF):
                    cases.append((_set_field(base, "imm", v), False, f"{mn}: target 0x{v:x}"))
                hi = _set_field(hi, "imm", 0x7FFFFFFF)
        if op.operands:
            cases.append((hi, True, f"{mn}: extreme legal operands"))
    for _ in range(n_random):
        code = rng.choice(list(isa.BY_CODE)) if rng.random() < 0.9 else rng.randrange(256)
        w = code << 56
        for f in ("a", "b", "c", "d", "e"):
            if rng.random() < 0.5:
                w = _set_field(w, f, rng.choice([rng.randrange(8), rng.randrange(1 << isa.FIELDS[f][1])]))
        r = rng.random()
        imm = 0 if r < 0.3 else rng.randrange(1 << 17) if r < 0.6 else rng.getrandbits(32)
        w = _set_field(w, "imm", imm)
        cases.append((w, _decodes(w), "random word"))
    for w, valid, why in cases:                  # the derivation agrees with spec.isa
        assert _decodes(w) == valid, f"{why}: 0x{w:016x}"
    return cases


def _decodes(word: int) -> bool:
    try:
        isa.decode(word)
    except isa.DecodeError:
        return False
    return True


def test_decode_cases_complete():
    cases = decode_cases(random.Random(0), 0)
    valid = {w >> 56 for w, ok, _ in cases if ok}
    invalid = {w >> 56 for w, ok, _ in cases if not ok}
    assert valid == set(isa.BY_CODE)
    assert invalid == set(range(256))
    for op in isa.OPS:
        unused = set(isa.FIELDS) - _used(op)
        assert unused, f"{op.mnemonic} has no unused field"
        for f in unused:
            assert any(why.startswith(f"{op.mnemonic}: unused field {f} ") for _, _, why in cases)


def run_decode(cases: list[tuple[int, bool, str]]) -> dict[str, int]:
    """Each word at pc 0..2 behind NOPs, the rest of the ROM HALT; memory never answers (units that
    issue just wait), no token offered, tok_out always ready."""
    b = Bench(SMALL, [HALT] * SMALL.rom_words, serve_mem=False)
    core = b.core
    failures: list[str] = []
    stats = {"valid": 0, "invalid": 0, "issued": 0, "starts": 0}

    async def main(ctx):
        await b.run_until_halt(ctx, 100)            # the initial HALT
        restart = True
        for k, (word, valid, why) in enumerate(cases):
            p = k % 3
            rom = [NOP] * p + [word] + [HALT] * (3 - p)
            await b.write_rom(ctx, rom if valid or not restart else rom[:p + 1])
            if restart:
                await b.pulse_start(ctx)
                stats["starts"] += 1
                if ctx.get(core.fault) or ctx.get(core.halted) or ctx.get(core.pc) != 0:
                    failures.append(f"start after a fault: fault {ctx.get(core.fault)}, halted "
                                    f"{ctx.get(core.halted)}, pc {ctx.get(core.pc)}")
            else:
                await b.reset(ctx)
            name = f"{why}: 0x{word:016x} at pc {p}"
            seen = issued = faulted = False
            after = 0
            # long enough for a unit to take one pass over a register, or a multiply to finish
            for _ in range(max(SMALL.vlen // SMALL.vector_lanes, *smul.CYCLES.values()) + p + 10):
                s = b.sample(ctx)
                if s.fault and not faulted:
                    faulted = True
                    if valid:
                        failures.append(f"{name}: valid word faulted (pc {s.pc})")
                    elif s.pc != p or not s.halted:
                        failures.append(f"{name}: fault with pc {s.pc}, halted {s.halted}")
                elif faulted and not (s.fault and s.halted and s.pc == p):
                    failures.append(f"{name}: fault state not kept (fault {s.fault}, halted {s.halted}, pc {s.pc})")
                if s.pc == p and not faulted:
                    seen = True
                    issued |= s.issued
                if faulted and s.issued:
                    failures.append(f"{name}: issued after the fault")
                await ctx.tick()
                after += faulted
                if after > 2:
                    break
            if valid:
                stats["valid"] += 1
                stats["issued"] += issued
                if word >> 56 != TOKIN_CODE and not issued:
                    failures.append(f"{name}: valid word never issued")
            else:
                stats["invalid"] += 1
                if not faulted:
                    failures.append(f"{name}: no fault (reached: {seen})")
                elif issued:
                    failures.append(f"{name}: the faulting word issued")
            restart = faulted and not ctx.get(core.busy)

    b.run(main)
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures[:20])
    return stats


def test_decode_fault():
    cases = decode_cases(random.Random(1), 150)
    stats = run_decode(cases)
    assert stats["invalid"] > 500 and stats["valid"] > 100 and stats["starts"] > 400, stats


@pytest.mark.slow
def test_decode_fault_every_bit():
    run_decode(decode_cases(random.Random(2), 1000, every_bit=True))


# -- b. programs of scalar and control ops ------------------------------------------------------
def prog_scalar_wrap() -> tuple[list[int], list[int], bytes]:
    w = [
        E("MOVI", 1, 0x7FFFFFFF), E("MOVI", 2, -(1 << 31)),
        E("ADDS", 3, 1, 1), E("MULS", 4, 3, 3), E("TOKOUT", 4),        # (2**32 - 2)**2 wraps
        E("MULS", 5, 4, 4), E("TOKOUT", 5),
        E("SUBS", 6, 2, 1), E("MULS", 7, 6, 6), E("ADDI", 8, 7, -5), E("TOKOUT", 8),
        E("SUBS", 9, 0, 8), E("TOKOUT", 9),
        E("MOVI", 10, 1 << 30), E("MULS", 11, 10, 10), E("MOVI", 12, 8), E("MULS", 11, 11, 12),   # 2**63
        E("TOKOUT", 11), E("ADDI", 11, 11, -1), E("TOKOUT", 11),      # -2**63 - 1 wraps to 2**63 - 1
        E("ADDS", 13, 11, 11), E("TOKOUT", 13), E("ADDI", 13, 13, 0x7FFFFFFF), E("TOKOUT", 13),
        E("SUBS", 14, 2, 11), E("TOKOUT", 14), E("MULS", 15, 2, 2), E("MULS", 15, 15, 2), E("TOKOUT", 15),
        E("MOVI", 1, -1), E("MULS", 2, 1, 11), E("TOKOUT", 2), E("ADDS", 1, 1, 1), E("TOKOUT", 1),
        E("ADDI", 3, 0, -(1 << 31)), E("TOKOUT", 3), E("ADDS", 0, 0, 1), E("TOKOUT", 0),
        HALT,
    ]
    return w, [], bytes(STATE_BYTES)


def prog_control() -> tuple[list[int], list[int], bytes]:
    sb = state_base()
    state = bytearray(STATE_BYTES)
    put(state, 0, i64s(range(-3, 13)))
    w = [E("MOVI", 1, 3)]                                  # 0
    outer = len(w)
    w += [E("MOVI", 2, 4)]                                 # inner counter reset
    inner = len(w)
    w += [E("ADDI", 3, 3, 1), E("MULS", 4, 3, 1), E("TOKOUT", 4), E("DJNZ", 2, inner),
          E("NOP"), E("DJNZ", 1, outer)]
    w += [E("MOVI", 5, -3)]                                # backward BLTZ loop: -3, -2, -1, 0
    back = len(w)
    w += [E("ADDI", 5, 5, 1), E("TOKOUT", 5), E("BLTZ", 5, back)]
    w += [E("MOVI", 6, 1), E("DJNZ", 6, 0), E("TOKOUT", 6)]     # DJNZ to 0 falls through
    w += [E("BLTZ", 6, 0), E("MOVI", 7, -7)]               # not taken
    skip = len(w)
    w += [E("BLTZ", 7, 0), E("TOKOUT", 7), E("HALT")]      # taken (target patched below)
    w[skip] = E("BLTZ", 7, len(w))
    jmp = len(w)
    w += [E("JMP", 0), E("HALT"), E("TOKOUT", 1), E("MOVI", 8, 99)]
    w[jmp] = E("JMP", len(w))
    w += [E("BARRIER"), E("TOKOUT", 8), E("NOP"), E("BARRIER")]
    w += [E("MOVI", 9, sb), E("SETVL", 16), E("LDV", 0, (9, 0)),
          E("SETVL", 5), E("SV", (9, 0x400), 0), E("SETVL", 3), E("SV", (9, 0x500), 0),
          E("SETVL", 1), E("SV", (9, 0x5F8), 0), E("SETVL", 16), E("SV", (9, 0x600), 0), E("HALT")]
    return w, [], bytes(state)


def prog_tokens() -> tuple[list[int], list[int], bytes]:
    toks = [0, 1, -1, (1 << 31) - 1, -(1 << 31), 12345, -98765, 7, -2]
    w = [E("TOKIN", 1), E("TOKOUT", 1), E("TOKIN", 2), E("TOKIN", 3), E("ADDS", 4, 2, 3), E("TOKOUT", 4),
         E("TOKIN", 5), E("TOKIN", 6), E("MULS", 7, 5, 6), E("TOKOUT", 7), E("SUBS", 7, 6, 5), E("TOKOUT", 7),
         E("TOKIN", 8), E("TOKIN", 9), E("TOKIN", 10), E("TOKOUT", 10), E("TOKOUT", 9), E("TOKOUT", 8),
         E("TOKIN", 10), E("TOKOUT", 10), HALT]
    return w, toks, bytes(STATE_BYTES)


#: float32 values for LDF, and a pair whose mantissa product rounds up into a carry
FMUL_CARRY = (11663301 * 2.0 ** -23, 12066694 * 2.0 ** -23)
F_VALUES = [1.0, 3.0, 0.1, 2.0 ** -20, 0.0, 1234.5, *FMUL_CARRY, 1.5e-3, 0.99999994, 7e5, 1.9999999]


def prog_fmul() -> tuple[list[int], list[int], bytes]:
    """LDF, FMUL, each F shown through a TMATMUL on a probe matrix (row 0: acc = codes[0] = 1)."""
    sb = state_base()
    state = bytearray(STATE_BYTES)
    put(state, 0, f32s(F_VALUES))
    put(state, 0x100, i64s([1, 3, -128, 127, 0x1FF, -129, 255, 77, -5, 100]))   # int8(Vs): the low 8 bits
    put(state, 0x200, probe_matrix(np.random.default_rng(5), 16, 10))
    w = [E("MOVI", 1, sb)]
    w += [E("LDF", k, (1, 4 * k)) for k in range(8)]
    w += [E("FMUL", 1, 1, 2),          # 3 * 0.1
          E("FMUL", 3, 3, 3),          # 2**-40
          E("FMUL", 4, 0, 4),          # x * 0
          E("LDF", 6, (1, 4 * 6)), E("LDF", 7, (1, 4 * 7)), E("FMUL", 6, 6, 7),   # the carry
          E("LDF", 2, (1, 4 * 9)), E("FMUL", 2, 2, 2),                           # (1 - 2**-24)**2
          E("LDF", 7, (1, 4 * 11)), E("FMUL", 7, 7, 7), E("FMUL", 5, 5, 0)]
    w += [E("SETVL", 10), E("LDV", 0, (1, 0x100)), E("ADDI", 2, 1, 0x200)]
    for k in range(8):
        w += [E("TMATMUL", 1, 0, 2, k, 16), E("SETVL", 16), E("SV", (1, 0x400 + 128 * k), 1), E("SETVL", 10)]
    w += [E("LDF", 0, (1, 4 * 10)), E("TMATMUL", 1, 0, 2, 0, 16), E("SETVL", 16), E("SV", (1, 0x800), 1), HALT]
    return w, [], bytes(state)


def random_scalar_program(rng: random.Random) -> tuple[list[int], list[int], bytes]:
    """Random scalar/control code: A0..A13 data, A14/A15 loop counters; forward BLTZ/JMP over
    random blocks, DJNZ loops and backward BLTZ loops (2..4 iterations), TOKIN/TOKOUT, then TOKOUT
    of every A register."""
    w: list[int] = []
    specials = [0, 1, -1, 2, (1 << 31) - 1, -(1 << 31), 0x40000000, -0x40000000, 3, -7]

    def imm() -> int:
        return rng.choice(specials) if rng.random() < 0.4 else rng.randint(-(1 << 31), (1 << 31) - 1)

    def d() -> int:
        return rng.randrange(14)

    def s() -> int:
        return rng.randrange(16)

    def plain() -> None:
        mn = rng.choice(["MOVI", "ADDI", "ADDS", "SUBS", "MULS", "MULS", "TOKOUT", "TOKOUT", "TOKIN", "NOP",
                         "BARRIER", "SETVL"])
        match mn:
            case "MOVI":
                w.append(E(mn, d(), imm()))
            case "ADDI":
                w.append(E(mn, d(), s(), imm()))
            case "ADDS" | "SUBS" | "MULS":
                w.append(E(mn, d(), s(), s()))
            case "TOKOUT":
                w.append(E(mn, s()))
            case "TOKIN":
                w.append(E(mn, d()))
            case "SETVL":
                w.append(E(mn, rng.randint(1, isa.VL_MAX)))
            case _:
                w.append(E(mn))

    def forward() -> None:
        at = len(w)
        w.append(0)
        for _ in range(rng.randint(0, 4)):
            plain()
        if rng.random() < 0.5:
            w[at] = E("BLTZ", s(), len(w))
        else:
            w[at] = E("JMP", len(w))

    def block(n: int) -> None:
        for _ in range(n):
            forward() if rng.random() < 0.25 else plain()

    for _ in range(rng.randint(3, 6)):
        r = rng.random()
        if r < 0.35:
            w.append(E("MOVI", 15, rng.randint(1, 4)))
            top = len(w)
            block(rng.randint(1, 6))
            w.append(E("DJNZ", 15, top))
        elif r < 0.55:
            w.append(E("MOVI", 14, -rng.randint(1, 4)))
            top = len(w)
            block(rng.randint(1, 5))
            w += [E("ADDI", 14, 14, 1), E("BLTZ", 14, top)]
        else:
            block(rng.randint(2, 8))
    w += [E("TOKOUT", r) for r in range(16)] + [HALT]
    toks = [rng.choice(specials) if rng.random() < 0.3 else rng.randint(-(1 << 31), (1 << 31) - 1)
            for _ in range(200)]
    return w, toks, bytes(STATE_BYTES)


def _run_programs(progs: dict[str, tuple], **bench_kw) -> None:
    b = Bench(CFG, **bench_kw)
    results = {}

    async def main(ctx):
        for name, (words, toks, state) in progs.items():
            results[name] = await b.job(ctx, words, toks, state)

    b.run(main)
    for name, (words, toks, state) in progs.items():
        check_against_golden(name, results[name], words, toks, state)


def test_programs():
    progs = {"scalar_wrap": prog_scalar_wrap(), "control": prog_control(), "tokens": prog_tokens(),
             "fmul": prog_fmul()}
    rng = random.Random(11)
    for k in range(6):
        progs[f"random{k}"] = random_scalar_program(rng)
    _run_programs(progs, seed=1, mem_p=0.2, tok_in_p=0.3, tok_out_p=0.3)


@pytest.mark.slow
def test_programs_random_long():
    rng = random.Random(12)
    _run_programs({f"random{k}": random_scalar_program(rng) for k in range(60)}, seed=2, mem_p=0.3,
                  tok_in_p=0.5, tok_out_p=0.5)


def _fuzz(seeds, **bench_kw) -> None:
    img = image()
    cases = [fuzz.random_program(s, CFG, img) for s in seeds]
    b = Bench(CFG, **bench_kw)
    got = []

    async def main(ctx):
        for case in cases:
            got.append(await b.job(ctx, case.words, case.tokens, bytes(case.state_bytes), max_cycles=100_000))

    b.run(main)
    for case, r in zip(cases, got, strict=True):
        want = fuzz.run_golden(case, CFG, img)
        msg = want.diff(fuzz.Observed(r.tokouts, r.state, case.layout))
        assert not msg, f"fuzz seed {case.seed}: {msg}\n{case.description}"
        assert r.tokens_taken == len(case.tokens)


def test_fuzz_programs():
    _fuzz([3], seed=3, mem_p=0.2, tok_in_p=0.3, tok_out_p=0.3)


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(4))
def test_fuzz_programs_long(chunk: int):
    _fuzz(range(100 + 5 * chunk, 105 + 5 * chunk), seed=chunk, mem_p=0.3 * (chunk % 2), tok_in_p=0.4,
          tok_out_p=0.4)


# -- c. hazards ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Block:
    long: int                 # pc of the long op
    indep: list[int]          # pcs of the independent ones
    dep: int                  # pc of the dependent one
    what: str


def prog_hazards() -> tuple[list[int], bytes, list[Block]]:
    rng = np.random.default_rng(7)
    sb = state_base()
    state = bytearray(STATE_BYTES)
    put(state, 0x000, i64s(rng.integers(-(1 << 26), 1 << 26, 64)))          # x
    put(state, 0x200, i64s(rng.integers(1 << 13, 1 << 15, 64)))             # gamma mantissas
    put(state, 0x400, i64s(rng.integers(-128, 128, 64)))                     # codes
    put(state, 0x600, probe_matrix(rng, 16, 10))
    put(state, 0x680, probe_matrix(rng, 64, 10))                             # 128 bytes
    put(state, 0x700, f32s([0.01, 3.0]))
    put(state, 0x708, struct.pack("<i", -123456))
    w = [E("SETVL", 46), E("MOVI", 1, sb), E("MOVI", 2, 14), E("MOVI", 5, -(1 << 31)), E("MOVI", 6, 1000),
         E("MOVI", 11, sb + 0x600), E("MOVI", 12, sb + 0x680), E("LDF", 0, (1, 0x700)), E("LDV", 6, (1, 0x400)),
         E("LDV", 3, (1, 0x100))]
    blocks: list[Block] = []

    def block(what: str, long: int, indep: list[int], dep: int) -> None:
        at = len(w)
        w.append(long)
        w.extend(indep)
        blocks.append(Block(at, list(range(at + 1, at + 1 + len(indep))), len(w), what))
        w.append(dep)

    block("LSU busy (LDV -> LDV)", E("LDV", 0, (1, 0)), [E("ADDI", 3, 3, 1)], E("LDV", 1, (1, 0x200)))
    block("RAW on a loaded V (LDV -> NORM)", E("LDV", 1, (1, 0x200)), [E("ADDI", 3, 3, 1), E("MOVV", 5, 6)],
          E("NORM", 2, 0, 1, 2))
    block("RAW on V (NORM -> ADD)", E("NORM", 2, 0, 1, 2), [E("ADDI", 3, 3, 5), E("MOVV", 5, 6)],
          E("ADD", 3, 2, 2))
    block("WAR on a NORM source", E("NORM", 4, 0, 1, 2), [E("ADDI", 3, 3, 7)], E("LDV", 0, (1, 0x40)))
    block("two reads of one register", E("NORM", 7, 0, 1, 2), [E("MOVV", 5, 6), E("ADDI", 3, 3, 1)],
          E("MOVV", 5, 1))
    w += [E("SV", (1, 0x800), 2), E("SV", (1, 0x980), 3), E("SV", (1, 0xB00), 4), E("SV", (1, 0xC80), 7),
          E("SETVL", 10)]
    block("SV after TMATMUL (RAW and weight reads)", E("TMATMUL", 4, 6, 11, 0, 16),
          [E("ADDI", 3, 3, 1), E("LDV", 7, (1, 0x48)), E("MOVV", 5, 3)], E("SV", (1, 0xE00), 4))
    block("WAW after TMATMUL", E("TMATMUL", 4, 6, 11, 0, 16), [E("ADDI", 3, 3, 2), E("ADD", 5, 3, 3)],
          E("LDV", 4, (1, 0x10)))
    w += [E("LDV", 5, (1, 0x780))]                          # zeros: valid trits
    block("memory order: SV over weights TMATMUL is reading", E("TMATMUL", 4, 6, 12, 0, 64),
          [E("ADDI", 3, 3, 1), E("MOVV", 7, 3)], E("SV", (12, 0), 5))
    block("memory order: TMATMUL after a store", E("SV", (1, 0x800), 2), [E("ADDI", 3, 3, 1), E("MOVV", 7, 3)],
          E("TMATMUL", 4, 6, 11, 0, 16))
    w += [E("SETVL", 46)]
    block("F RAW (QNT -> FMUL)", E("QNT", 2, 1, 0, 1, 2), [E("ADDI", 3, 3, 1), E("MOVV", 5, 6)],
          E("FMUL", 3, 1, 1))
    block("A RAW (ARGMAX -> ADDI)", E("ARGMAX", 7, 5, 0, 6), [E("MOVV", 3, 6), E("ADDI", 3, 3, 1)],
          E("ADDI", 8, 7, 1))
    block("A RAW (LDW -> TOKOUT)", E("LDW", 9, (1, 0x708)), [E("ADDI", 10, 10, 1), E("MOVV", 5, 6)], E("TOKOUT", 9))
    w += [E("SETVL", 16), E("SV", (1, 0xF00 - 128), 4), E("SV", (1, 0xF00), 2), E("SETVL", 10), E("LDV", 6, (1, 0x400)),
          E("TMATMUL", 4, 6, 11, 3, 16), E("TMATMUL", 7, 6, 11, 1, 16), E("SETVL", 16), E("SV", (1, 0xF80 - 256), 4),
          E("SV", (1, 0xF80), 7), E("SV", (1, 0xF80 - 128), 5)]
    w += [E("TOKOUT", r) for r in range(16)] + [HALT]
    return w, bytes(state), blocks


def _unit_of(word: int) -> str:
    return UNIT_OF[isa.decode(word).op.mnemonic]


def test_hazards():
    words, state, blocks = prog_hazards()
    for mem_p in (0.0, 0.3):
        b = Bench(CFG, seed=4, mem_p=mem_p)
        got = []

        async def main(ctx, b=b, got=got):
            got.append(await b.job(ctx, words, (), state))

        b.run(main)
        r = got[0]
        check_against_golden(f"hazards (mem pauses {mem_p})", r, words, (), state)
        for blk in blocks:
            (t0,) = r.issue_cycles(blk.long)
            unit = _unit_of(words[blk.long])
            done = next(c for c in r.done_cycles(unit) if c > t0)
            (td,) = r.issue_cycles(blk.dep)
            for pc in blk.indep:
                (ti,) = r.issue_cycles(pc)
                assert ti < done, (f"{blk.what}: independent pc {pc} issued at {ti}, after the long op's done "
                                   f"at {done} (issued {t0})")
            assert td > done, f"{blk.what}: dependent pc {blk.dep} issued at {td}, long op done at {done}"
            assert done - t0 > len(blk.indep) + 1, f"{blk.what}: the long op took {done - t0} cycles only"


# -- d. start, barrier ---------------------------------------------------------------------------
def test_start_and_barrier():
    sb = state_base()
    state = bytearray(STATE_BYTES)
    put(state, 0, i64s([5, -6, 7, -8, 9, -10, 11, -12]))
    put(state, 0x100, f32s([1.5]))
    put(state, 0x200, probe_matrix(np.random.default_rng(3), 16, 10))
    rerun = [E("BLTZ", 9, 6),                              # 0: after the first run A9 < 0: no setup
             E("SETVL", 6), E("LDV", 0, (0, sb)), E("MOVI", 9, -1), E("MOVI", 2, sb + 0x400),   # 1..4
             E("LDF", 1, (2, 0x100 - 0x400)),              # 5
             E("ADDI", 1, 1, 7), E("TOKOUT", 1),           # 6, 7
             E("SV", (2, 0), 0), E("ADDI", 2, 2, 64), E("FMUL", 1, 1, 1), HALT]
    loop = [E("MOVI", 1, 10), E("ADDI", 2, 2, 3), E("TOKOUT", 2), E("DJNZ", 1, 1), E("BARRIER"),
            E("TOKOUT", 1), HALT]
    b = Bench(CFG, seed=5, mem_p=0.2)
    out = {}

    async def main(ctx):
        core = b.core
        r = await b.job(ctx, rerun, (), bytes(state))
        outs, samples = list(r.tokouts), r.samples
        for _ in range(3):
            await ctx.tick().repeat(3)
            assert ctx.get(core.halted) and ctx.get(core.pc) == len(rerun) - 1
            ctx.set(core.start, 1)
            await ctx.tick()
            ctx.set(core.start, 0)
            assert not ctx.get(core.halted) and ctx.get(core.pc) == 0 and ctx.get(core.issued), "start: pc 0, issue"
            b.tokouts = []
            await b.run_until_halt(ctx, 5000, samples)
            outs += b.tokouts
        out["rerun"] = Result(outs, bytes(b.mem[sb:]), 0, samples)
        # start while running: ignored; BARRIER waits for barrier_go
        starts, at_bar = [], [0]

        def poke(ctx, c):
            pc = ctx.get(core.pc)
            ctx.set(core.start, int(c in (30, 31, 32)))
            if c in (30, 31, 32):
                starts.append((pc, ctx.get(core.halted)))
            if b.rom[pc] == E("BARRIER"):
                at_bar[0] += 1
            ctx.set(core.barrier_go, int(at_bar[0] > 15))

        r = await b.job(ctx, loop, (), bytes(STATE_BYTES), on_cycle=poke)
        out["loop"] = r
        out["starts"] = starts
        out["barrier"] = [(s.at_barrier, s.issued) for s in r.samples if b.rom[s.pc] == E("BARRIER")]

    b.run(main)
    m, host = golden(rerun, (), bytes(state), restarts=3)
    assert out["rerun"].tokouts == host.outputs == [7, 14, 21, 28]
    assert out["rerun"].state == bytes(m.state)
    check_against_golden("start while running", out["loop"], loop, (), bytes(STATE_BYTES))
    assert len(out["starts"]) == 3 and not any(h for _, h in out["starts"]), out["starts"]
    bar = out["barrier"]
    # barrier_go rises in the 16th cycle at the barrier; the issue decision is registered, so the
    # BARRIER issues in the cycle after (the 17th), and not before
    assert len(bar) == 17 and all(at and not iss for at, iss in bar[:16]), bar
    assert bar[-1] == (True, True), "BARRIER did not issue once barrier_go rose"


# -- e. tokens under random pauses -----------------------------------------------------------------
def prog_echo(n: int) -> list[int]:
    """n iterations of: two TOKINs back to back, four TOKOUTs back to back; then one more TOKIN."""
    return [E("MOVI", 3, n), E("TOKIN", 1), E("TOKIN", 5), E("TOKOUT", 1), E("ADDI", 1, 1, 1), E("TOKOUT", 1),
            E("MULS", 2, 1, 5), E("TOKOUT", 2), E("TOKOUT", 3), E("DJNZ", 3, 1), E("TOKIN", 4), E("TOKOUT", 4), HALT]


@pytest.mark.parametrize("p", [0.0, 0.6])
def test_tokens_under_pauses(p: float):
    rng = random.Random(9)
    n = 25
    toks = [rng.randint(-(1 << 31), (1 << 31) - 1) for _ in range(2 * n + 1)]
    words = prog_echo(n)
    b = Bench(CFG, seed=6, tok_in_p=p, tok_out_p=p, tok_in_burst=12)
    got = []

    async def main(ctx):
        got.append(await b.job(ctx, words, toks, bytes(STATE_BYTES)))

    b.run(main)
    r = got[0]
    check_against_golden(f"echo (pauses {p})", r, words, toks, bytes(STATE_BYTES))
    assert r.tokens_taken == 2 * n + 1
    waiting = sum(s.waiting for s in r.samples)
    if p:
        assert waiting > n, f"waiting high in only {waiting} cycles"
