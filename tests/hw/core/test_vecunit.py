"""hw.core.vecunit: VectorOpUnit, every vector-group instruction against the golden machine's
handlers, through the register channels of hw.core.iface.

Provenance of the vectors: the expected register file after each instruction is `golden.ops`
applied exactly as `golden.machine`'s vector handlers do (Vd[:VL] = op(Vs[:VL], Vt[:VL]), the rest of
Vd kept) to seeded random register contents drawn from magnitude classes (zero, +-1, ulps,
typical, large, the FX limits and their neighbours, powers of two, GATE values, sigmoid and exp
table points, divisions by zero and rounding ties). Nothing here is a stored vector.

Every run is watched cycle by cycle (`Bench`): the read addresses 0 .. W-1 in order on both
channels in the same cycles (rt only for VVV ops), the registers named by the instruction, the
writes 0 .. W-1 in order with the VL mask on the last word, `done` with the last write, `cmd.ready`
exactly while idle, nothing on any channel while idle, and the whole register file (elements past
VL included) after every instruction.
"""
from __future__ import annotations

import dataclasses
import random
import types

import numpy as np
import pytest

from golden import ops as O
from hw.core.iface import words
from hw.core.readq import QUEUE_LATENCY
from hw.core.vecunit import MNEMONICS, TWO_OPERAND, VectorOpUnit, div_cycles, pipelined_cycles
from hw.core.vpu import LATENCY, SHORT_LATENCY, latency
from sim.tb import unit
from sim.tb.streams import Pauses
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig
from tests.hw.core.test_vpu import golden

SIG_FRAC = N.FX_FRAC - N.SIG_STEP_LOG2
SIG_LIMIT = N.SIG_RANGE << N.FX_FRAC
PIPELINED = tuple(mn for mn in MNEMONICS if mn != "DIV")


#: one element per word, a 4-lane and a 16-lane core, small registers
CONFIGS = {
    "l1": unit.config(vector_lanes=1, beat_bytes=8, vlen=64),
    "l4": unit.config(vector_lanes=4, beat_bytes=16, vlen=128),
    "l16": unit.config(vector_lanes=16, beat_bytes=64, vlen=128),
}
#: the largest DIV, in words, of the default run (the divider takes ~50 cycles a word)
DIV_WORDS = 3


# -- the reference: golden.machine's vector handlers (tests/hw/core/test_vpu.py's `golden`) -----------
def execute(V: list[np.ndarray], mn: str, vl: int, vd: int, vs: int, vt: int) -> None:
    """One instruction on the register file V, in place, as golden.machine._vvv/_vv."""
    V[vd][:vl] = golden(mn, V[vs][:vl].copy(), V[vt][:vl].copy())


# -- operands ------------------------------------------------------------------------------------
def _fx(rng: random.Random) -> int:
    """One FX value from a random magnitude class."""
    cls = rng.randrange(8)
    if cls == 0:
        return rng.choice([0, 1, -1, N.FX_MAX, N.FX_MIN, N.FX_MAX - 1, N.FX_MIN + 1])
    if cls == 1:
        return rng.randint(-(1 << 8), 1 << 8)
    if cls in (2, 3):
        return rng.randint(-(1 << (N.FX_FRAC + 4)), 1 << (N.FX_FRAC + 4))
    if cls == 4:
        return rng.randint(N.FX_MIN, N.FX_MAX)
    if cls == 5:
        return rng.choice([N.FX_MAX - rng.randrange(1 << 20), N.FX_MIN + rng.randrange(1 << 20)])
    if cls == 6:
        return rng.choice([-1, 1]) * (1 << rng.randrange(N.FX_BITS - 1))
    return rng.choice([-1, 1]) * rng.randrange(1 << rng.randrange(1, N.FX_BITS - 1))


def _gate(rng: random.Random) -> int:
    return rng.choice([0, N.GATE_ONE, 1, N.GATE_ONE - 1, N.GATE_ONE >> 1, rng.randint(0, N.GATE_ONE)])


def _pair(mn: str, rng: random.Random) -> tuple[int, int]:
    """(a, b) biased to where `mn` is interesting; b matters only for the VVV ops."""
    r = rng.random()
    sign = rng.choice([-1, 1])
    if mn in ("SIG", "SILU"):
        if r < 0.3:
            return sign * (rng.randint(0, N.SIG_ENTRIES) << SIG_FRAC), 0
        if r < 0.5:
            return sign * ((rng.randint(0, N.SIG_ENTRIES - 1) << SIG_FRAC) | (1 << (SIG_FRAC - 1))), 0
        if r < 0.6:
            return sign * (SIG_LIMIT + rng.randint(-2, 2)), 0
    elif mn == "EXP":
        if r < 0.6:
            return rng.randint(-(20 << N.FX_FRAC), 17 << N.FX_FRAC), 0
    elif mn in ("MUL", "GMUL") and r < 0.2:     # an exact rounding tie
        frac = N.FX_FRAC if mn == "MUL" else N.GATE_FRAC
        return sign * (2 * rng.randrange(1 << 20) + 1), 1 << (frac - 1)
    elif mn == "GMUL" and r < 0.8:
        return _fx(rng), _gate(rng)
    elif mn == "ONEM" and r < 0.5:
        return _gate(rng), 0
    elif mn == "DIV":
        if r < 0.15:
            return rng.choice([0, 1, -1, N.FX_MAX, N.FX_MIN, _fx(rng)]), 0
        if r < 0.3:
            sh = rng.randrange(N.FX_BITS - N.FX_FRAC - 2)
            return (sign * ((2 * rng.randrange(1 << 16) + 1) << sh),
                    rng.choice([-1, 1]) << (N.FX_FRAC + 1 + sh))
        if r < 0.4:
            y = rng.choice([-1, 1]) * rng.randint(1, 1 << 8)
            x = sign * ((abs(y) << (N.FX_BITS - 1 - N.FX_FRAC)) + rng.randint(-2, 2))
            return max(min(x, N.FX_MAX), N.FX_MIN), y
    return _fx(rng), _fx(rng)


def fill(config: AccelConfig, rng: random.Random, mns: tuple[str, ...]) -> list[np.ndarray]:
    """The 8 registers, every element (past any VL too): register pairs (0,1), (2,3) ... hold
    operand pairs for a random op of `mns` at each element."""
    V = [np.zeros(config.vlen, np.int64) for _ in range(isa.N_VREGS)]
    for r in range(0, isa.N_VREGS, 2):
        for j in range(config.vlen):
            V[r][j], V[r + 1][j] = _pair(rng.choice(mns), rng)
    return V


# -- programs ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instr:
    mn: str
    vl: int
    vd: int
    vs: int
    vt: int

    @property
    def reads_vt(self) -> bool:
        return self.mn in TWO_OPERAND


def _vl(config: AccelConfig, rng: random.Random, max_words: int | None = None) -> int:
    lanes, vlen = config.vector_lanes, config.vlen
    top = vlen if max_words is None else min(vlen, max_words * lanes)
    edges = [v for v in (1, lanes - 1, lanes, lanes + 1, 2 * lanes - 1, top - 1, top) if 1 <= v <= top]
    return rng.choice(edges) if rng.random() < 0.4 else rng.randint(1, top)


def _instr(config: AccelConfig, rng: random.Random, mn: str, max_words: int | None = None) -> Instr:
    vl = _vl(config, rng, max_words)
    regs = range(isa.N_VREGS)
    if mn not in TWO_OPERAND:
        vs = rng.choice(regs)
        vd = vs if rng.random() < 0.3 else rng.choice(regs)        # in place
        return Instr(mn, vl, vd, vs, 0)                             # unused fields are 0
    shape = rng.randrange(5)
    if shape == 0:                                                  # an operand pair
        vs = rng.randrange(0, isa.N_VREGS, 2)
        vt = vs + 1
    else:
        vs, vt = rng.choice(regs), rng.choice(regs)
    if shape == 1:
        vt = vs                                                     # one register, both operands
    vd = rng.choice(regs)
    if shape == 2:
        vd = vs
    elif shape == 3:
        vd = vt
    return Instr(mn, vl, vd, vs, vt)


def program(config: AccelConfig, rng: random.Random, mns: tuple[str, ...], n: int,
            div_words: int | None = DIV_WORDS) -> list[Instr]:
    return [_instr(config, rng, mn, div_words if mn == "DIV" else None)
            for mn in (rng.choice(mns) for _ in range(n))]


# -- the testbench -------------------------------------------------------------------------------
class Bench:
    """A VectorOpUnit with RegModel behind its channels, a command source with seeded random idle
    gaps, and the contract watch (sim.tb.unit.Monitor) with the checks of the module docstring and
    the register file against the golden machine after every instruction."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.dut = VectorOpUnit(config)

    def run(self, init: list[np.ndarray], prog: list[Instr], *, gap: float = 0.0, seed: int = 0) -> unit.Run:
        dut, config = self.dut, self.config
        lanes = config.vector_lanes
        regs = unit.RegModel(config, init)
        want = [v.copy() for v in init]
        expected = []
        for ins in prog:
            execute(want, ins.mn, ins.vl, ins.vd, ins.vs, ins.vt)
            expected.append([v.copy() for v in want])
        junk = random.Random(seed)
        payloads = [unit.cmd_payload(ins.mn, vl=ins.vl, vd=ins.vd, vs=ins.vs, vt=ins.vt,
                                     # fields this unit must ignore
                                     ad=junk.randrange(isa.N_AREGS), addr=junk.randrange(-(1 << 40), 1 << 40),
                                     s0=junk.randrange(1 << 20), rows=junk.randrange(1 << 16))
                    for ins in prog]
        limit = 20 + sum(div_cycles(-(-i.vl // lanes)) + 2 if i.mn == "DIV"
                         else pipelined_cycles(-(-i.vl // lanes), i.mn) + 2 for i in prog)
        limit += int(len(prog) * 50 * gap / (1 - gap)) + 100
        c = types.SimpleNamespace()

        def start(k):
            c.nread = c.nwrite = 0
            c.read_cycle = []

        def busy(s):
            ins, where = prog[s.k], s.where
            n_words = -(-ins.vl // lanes)
            if s.rs_en:
                assert c.nread < n_words, f"{where}: read past word {n_words - 1}"
                assert s.rs_addr == c.nread, f"{where}: rs read word {s.rs_addr}, expected {c.nread}"
                assert s.rs_reg == ins.vs, f"{where}: rs names V{s.rs_reg}"
                c.read_cycle.append(s.cycle)
                c.nread += 1
            assert s.rt_en == (s.rs_en and ins.reads_vt), f"{where}: rt.en {s.rt_en} with rs.en {s.rs_en}"
            if s.rt_en:
                assert s.rt_addr == s.rs_addr, f"{where}: rt reads word {s.rt_addr}, rs word {s.rs_addr}"
                assert s.rt_reg == ins.vt, f"{where}: rt names V{s.rt_reg}"
            if s.wd_en:
                assert c.nwrite < c.nread and c.read_cycle[c.nwrite] < s.cycle - 1, \
                    f"{where}: write of word {c.nwrite} before its read data"
                unit.check_write(where, s.wd_addr, s.wd_reg, s.wd_mask, word=c.nwrite, vd=ins.vd, lanes=lanes, n=ins.vl)
                c.nwrite += 1
            assert s.done == (s.wd_en and c.nwrite == n_words), f"{where}: done {s.done} after {c.nwrite} writes"

        mon = unit.Monitor(
            dut, prog, limit, start=start, busy=busy,
            check=lambda k: unit.check_regs(regs, expected[k], f"instruction {k} {prog[k]}"),
            signals={"rs_en": dut.rs.en, "rs_addr": dut.rs.addr, "rs_reg": dut.rs.reg,
                     "rt_en": dut.rt.en, "rt_addr": dut.rt.addr, "rt_reg": dut.rt.reg,
                     "wd_en": dut.wd.en, "wd_addr": dut.wd.addr, "wd_reg": dut.wd.reg, "wd_mask": dut.wd.mask},
            idle=("rs_en", "rt_en", "wd_en"),
            # a few quiet cycles: nothing after the last instruction
            quiet=(LATENCY + 4, [dut.rs.en, dut.rt.en, dut.wd.en, dut.done]))

        async def source(ctx):
            await unit.issue(ctx, dut.cmd, payloads, Pauses(seed, gap))

        unit.simulator(dut, regs, testbenches=[source, mon.watch]).run()
        assert len(mon.run.done) == len(prog)
        return mon.run


# -- every op against the golden machine ---------------------------------------------------------
@pytest.mark.parametrize("mn", MNEMONICS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_op_matches_golden(cfg, mn):
    """Random VL (edges: 1, around lanes, vlen), registers (in place, vs == vt, operand pairs),
    idle gaps; the register file after every instruction equals the golden machine's."""
    config = CONFIGS[cfg]
    rng = random.Random(f"vecunit-{cfg}-{mn}")
    n = 4 if mn == "DIV" else 8
    prog = program(config, rng, (mn,), n)
    Bench(config).run(fill(config, rng, (mn,)), prog, gap=0.3, seed=len(mn))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_mixed_back_to_back(cfg):
    """Every op, mixed, with commands waiting (no gap) or after random idle gaps."""
    config = CONFIGS[cfg]
    rng = random.Random(f"vecunit-mixed-{cfg}")
    prog = program(config, rng, MNEMONICS, 24)
    Bench(config).run(fill(config, rng, MNEMONICS), prog, gap=0.5, seed=3)


def test_onem_saturates_and_limits():
    """ONEM of a < FX_MIN + GATE_ONE saturates to FX_MAX (golden.machine: sat_fx); MOVV, ADD, SUB at
    the FX limits."""
    config = CONFIGS["l4"]
    V = [np.zeros(config.vlen, np.int64) for _ in range(isa.N_VREGS)]
    V[0][:6] = [N.FX_MIN, N.FX_MIN + N.GATE_ONE - 1, N.FX_MIN + N.GATE_ONE, N.FX_MAX, 0, N.GATE_ONE]
    V[1][:6] = [N.FX_MAX, N.FX_MIN, -1, 1, N.FX_MIN, N.FX_MAX]
    V[7][:] = -7
    prog = [Instr("ONEM", 6, 2, 0, 0), Instr("ADD", 6, 3, 0, 1), Instr("SUB", 6, 4, 0, 1),
            Instr("MOVV", 5, 7, 0, 0)]
    Bench(config).run(V, prog)
    want = O.sat_fx(N.GATE_ONE - V[0][:3])
    assert want.tolist() == [N.FX_MAX] * 3


# -- timing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS)
def test_cycles(cfg):
    """No gaps: a pipelined op of W words has done in cycle W + latency(op) + 3 after its cmd (one
    word per cycle; a word reaches the read queue's head 3 cycles after its read), the next cmd is
    taken the cycle after; DIV at the divider's rate."""
    config = CONFIGS[cfg]
    lanes = config.vector_lanes
    rng = random.Random(f"vecunit-cycles-{cfg}")
    W = words(config)
    vls = [1, lanes, lanes + 1, config.vlen - 1, config.vlen, rng.randint(1, config.vlen)]
    prog = [Instr(PIPELINED[k % len(PIPELINED)], vl, k % 8, (k + 3) % 8, (k + 5) % 8) for k, vl in enumerate(vls)]
    prog += [Instr("DIV", 1, 0, 1, 2), Instr("DIV", 3 * lanes - (lanes > 1), 3, 4, 5),   # 3 words: a held word
             Instr("MOVV", config.vlen, 6, 6, 0)]
    run = Bench(config).run(fill(config, rng, MNEMONICS), prog)
    for k, ins in enumerate(prog):
        n = -(-ins.vl // lanes)
        took = run.done[k] - run.accepted[k]
        if ins.mn == "DIV":
            assert took == div_cycles(n), f"{ins}: {took} cycles"
        else:
            assert took == pipelined_cycles(n, ins.mn) == n + latency(ins.mn) + QUEUE_LATENCY, f"{ins}: {took} cycles"
        if k:
            assert run.accepted[k] == run.done[k - 1] + 1, f"{ins}: not taken right after the previous done"
    assert pipelined_cycles(W, "MOVV") == W + SHORT_LATENCY + QUEUE_LATENCY
    assert pipelined_cycles(W, "MUL") == W + LATENCY + QUEUE_LATENCY


# -- interface -----------------------------------------------------------------------------------
def test_mnemonics_are_the_vector_group():
    vector = [o for o in isa.OPS if o.group == "vector"]
    assert set(MNEMONICS) == {o.mnemonic for o in vector}
    assert set(TWO_OPERAND) == {"ADD", "SUB", "MUL", "DIV", "GMUL"}
    assert all(o.fmt == ("VVV" if o.mnemonic in TWO_OPERAND else "VV") for o in vector)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_signature_widths_come_from_config(cfg):
    config = CONFIGS[cfg]
    dut = VectorOpUnit(config)
    unit.check_elaborates(dut, config)
    unit.check_channels(config, dut.rs, dut.rt, dut.wd)
    assert dut.wd.mask.shape().width == config.vector_lanes


def test_config_checks():
    unit.rejects(TypeError, r"^config must be an AccelConfig, not 4$", VectorOpUnit, 4)
    unit.rejects(ValueError, r"^the core needs beat_bytes >= 8", VectorOpUnit, unit.config("ice40", beat_bytes=4))
    unit.rejects(ValueError, r"^vector_lanes 4 must divide vlen 66$", VectorOpUnit,
                 unit.config(vector_lanes=4, beat_bytes=16, vlen=66))


# -- long sweeps ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("cfg", CONFIGS)
def test_mixed_long(cfg, seed):
    config = CONFIGS[cfg]
    rng = random.Random(f"vecunit-long-{cfg}-{seed}")
    prog = program(config, rng, PIPELINED, 150)
    Bench(config).run(fill(config, rng, PIPELINED), prog, gap=0.3, seed=seed)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CONFIGS)
def test_div_full_length(cfg):
    config = CONFIGS[cfg]
    rng = random.Random(f"vecunit-div-long-{cfg}")
    prog = program(config, rng, ("DIV",), 6, div_words=None)
    prog.append(Instr("DIV", config.vlen, 2, 2, 3))
    Bench(config).run(fill(config, rng, ("DIV",)), prog, gap=0.2, seed=1)
