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
import gc
import random
import warnings

import numpy as np
import pytest
from amaranth.hdl import Fragment, UnusedElaboratable
from amaranth.sim import Simulator

from golden import ops as O
from hw.core.iface import FX, words
from hw.core.vecunit import MNEMONICS, TWO_OPERAND, VectorOpUnit, div_cycles, pipelined_cycles
from hw.core.vpu import LATENCY
from sim.tb.streams import Pauses, send
from sim.tb.unit import RegModel, cmd_payload
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig, get_config
from tests.hw.core.test_vpu import golden

SIG_FRAC = N.FX_FRAC - N.SIG_STEP_LOG2
SIG_LIMIT = N.SIG_RANGE << N.FX_FRAC
PIPELINED = tuple(mn for mn in MNEMONICS if mn != "DIV")


def _config(lanes: int, beat: int, vlen: int) -> AccelConfig:
    return dataclasses.replace(get_config("ecp5"), vector_lanes=lanes, beat_bytes=beat, vlen=vlen)


#: (lanes, beat_bytes, vlen): one element per word, a 4-lane and a 16-lane core, small registers
CONFIGS = {
    "l1": _config(1, 8, 64),
    "l4": _config(4, 16, 128),
    "l16": _config(16, 64, 128),
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
@dataclasses.dataclass
class Run:
    accepted: list[int]      # cycle of each instruction's cmd transfer
    done: list[int]          # cycle of each instruction's done pulse


class Bench:
    """A VectorOpUnit with RegModel behind its channels, a command source with seeded random idle
    gaps, and a monitor that checks every cycle against the unit contract (module docstring) and
    the register file against the golden machine after every instruction."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.dut = VectorOpUnit(config)

    def run(self, init: list[np.ndarray], prog: list[Instr], *, gap: float = 0.0, seed: int = 0) -> Run:
        dut, config = self.dut, self.config
        lanes = config.vector_lanes
        regs = RegModel(config)
        for r in range(isa.N_VREGS):
            regs.V[r][:] = init[r]
        want = [v.copy() for v in init]
        expected = []
        for ins in prog:
            execute(want, ins.mn, ins.vl, ins.vd, ins.vs, ins.vt)
            expected.append([v.copy() for v in want])
        junk = random.Random(seed)
        payloads = [cmd_payload(ins.mn, vl=ins.vl, vd=ins.vd, vs=ins.vs, vt=ins.vt,
                                # fields this unit must ignore
                                ad=junk.randrange(isa.N_AREGS), addr=junk.randrange(-(1 << 40), 1 << 40),
                                s0=junk.randrange(1 << 20), rows=junk.randrange(1 << 16))
                    for ins in prog]
        limit = 20 + sum(div_cycles(-(-i.vl // lanes)) + 2 if i.mn == "DIV"
                         else pipelined_cycles(-(-i.vl // lanes)) + 2 for i in prog)
        limit += int(len(prog) * 50 * gap / (1 - gap)) + 100
        run = Run([], [])

        async def source(ctx):
            await send(ctx, dut.cmd, payloads, Pauses(seed, gap), name="cmd")

        async def monitor(ctx):
            cur = None                  # index of the instruction in flight
            check_at = None             # (cycle, instruction) of a pending register-file check
            nread = nwrite = 0
            read_cycle: list[int] = []
            ticks = ctx.tick().sample(
                dut.cmd.valid, dut.cmd.ready, dut.done,
                dut.rs.en, dut.rs.addr, dut.rs.reg, dut.rt.en, dut.rt.addr, dut.rt.reg,
                dut.wd.en, dut.wd.addr, dut.wd.reg, dut.wd.mask)
            cycle = -1
            async for (_, _, valid, ready, done, rs_en, rs_addr, rs_reg, rt_en, rt_addr, rt_reg,
                       wd_en, wd_addr, wd_reg, wd_mask) in ticks:
                cycle += 1
                assert cycle < limit, f"cycle {cycle}: no progress (instruction {cur} of {len(prog)})"
                if check_at is not None and cycle == check_at[0]:
                    k = check_at[1]
                    for r in range(isa.N_VREGS):
                        np.testing.assert_array_equal(
                            regs.V[r], expected[k][r], err_msg=f"V{r} after instruction {k} {prog[k]}")
                    check_at = None
                    if k == len(prog) - 1:
                        # a few quiet cycles: nothing after the last instruction
                        for _ in range(LATENCY + 4):
                            _, _, ready, en_any = await ctx.tick().sample(
                                dut.cmd.ready, dut.rs.en | dut.rt.en | dut.wd.en | dut.done)
                            assert ready and not en_any, "activity after the last instruction"
                        return
                if cur is None:
                    assert ready, f"cycle {cycle}: idle but cmd.ready low"
                    assert not (rs_en or rt_en or wd_en or done), f"cycle {cycle}: channel activity while idle"
                    if valid:
                        cur = len(run.accepted)
                        run.accepted.append(cycle)
                        nread = nwrite = 0
                        read_cycle = []
                    continue
                ins = prog[cur]
                n_words = -(-ins.vl // lanes)
                where = f"cycle {cycle}, instruction {cur} {ins}"
                assert not ready, f"{where}: cmd.ready while busy"
                if rs_en:
                    assert nread < n_words, f"{where}: read past word {n_words - 1}"
                    assert rs_addr == nread, f"{where}: rs read word {rs_addr}, expected {nread}"
                    assert rs_reg == ins.vs, f"{where}: rs names V{rs_reg}"
                    read_cycle.append(cycle)
                    nread += 1
                assert rt_en == (rs_en and ins.reads_vt), f"{where}: rt.en {rt_en} with rs.en {rs_en}"
                if rt_en:
                    assert rt_addr == rs_addr, f"{where}: rt reads word {rt_addr}, rs word {rs_addr}"
                    assert rt_reg == ins.vt, f"{where}: rt names V{rt_reg}"
                if wd_en:
                    assert nwrite < nread and read_cycle[nwrite] < cycle - 1, \
                        f"{where}: write of word {nwrite} before its read data"
                    assert wd_addr == nwrite, f"{where}: write of word {wd_addr}, expected {nwrite}"
                    assert wd_reg == ins.vd, f"{where}: wd names V{wd_reg}"
                    full = (1 << lanes) - 1
                    mask = full if nwrite < n_words - 1 else (1 << (ins.vl - (n_words - 1) * lanes)) - 1
                    assert wd_mask == mask, f"{where}: mask {wd_mask:#x}, expected {mask:#x}"
                    nwrite += 1
                assert done == (wd_en and nwrite == n_words), f"{where}: done {done} after {nwrite} writes"
                if done:
                    run.done.append(cycle)
                    check_at = (cycle + 1, cur)
                    cur = None

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_process(regs.serve_read(dut.rs))
        sim.add_process(regs.serve_read(dut.rt))
        sim.add_process(regs.serve_write(dut.wd))
        sim.add_testbench(source)
        sim.add_testbench(monitor)
        sim.run()
        assert len(run.done) == len(prog)
        return run


def _bench(name: str) -> Bench:
    return Bench(CONFIGS[name])


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
    """No gaps: a pipelined op of W words has done in cycle W + LATENCY + 1 after its cmd (one word
    per cycle), the next cmd is taken the cycle after; DIV at the divider's rate."""
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
            assert took == pipelined_cycles(n) <= n + LATENCY + 2, f"{ins}: {took} cycles"
        if k:
            assert run.accepted[k] == run.done[k - 1] + 1, f"{ins}: not taken right after the previous done"
    assert pipelined_cycles(W) == W + 5


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
    Fragment.get(dut, None)
    assert dut.lanes == config.vector_lanes and dut.config is config
    for chan in (dut.rs, dut.rt, dut.wd):
        assert len(chan.data) == config.vector_lanes
        assert chan.data[0].shape() == FX
        assert chan.addr.shape().width == (max(2, words(config)) - 1).bit_length()
    assert dut.wd.mask.shape().width == config.vector_lanes


def _rejects(exc: type, match: str, config) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        with pytest.raises(exc, match=match):
            VectorOpUnit(config)
        gc.collect()


def test_config_checks():
    _rejects(TypeError, r"^config must be an AccelConfig, not 4$", 4)
    _rejects(ValueError, r"^the core needs beat_bytes >= 8", dataclasses.replace(get_config("ice40"), beat_bytes=4))
    _rejects(ValueError, r"^vector_lanes 4 must divide vlen 66$", _config(4, 16, 66))


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
