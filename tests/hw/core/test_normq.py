"""hw.core.normq: NormQuantUnit, NORM and QNT against the golden machine's handlers, through the
register channels of hw.core.iface.

Provenance of the vectors: the expected register file (and F register) after each instruction is
`golden.ops.rmsnorm` / `golden.ops.quantize` applied exactly as `golden.machine`'s `_norm` /
`_qnt` do (Vs[:VL], int16(Vg[:VL]), the exponent; the rest of Vd kept) to seeded random register
contents drawn from magnitude classes: the zero vector, a few ulps, typical FX values (|x| around
2**24 .. 2**28), the FX limits (FX_MIN, FX_MAX and neighbours), all-equal vectors, one non-zero
element, mixed bit lengths, the sum-of-squares pre-shift edges; gamma mantissas from gamma_block-like
vectors, any int16, all zero, with random upper bits (int16 takes the low 16 bits); exponents over
[GAMMA_EXP_MIN, GAMMA_EXP_MAX]; for QNT's division, constructed exact rounding ties, every code's
edges and the largest products (tests/hw/core/test_reduce.py's vectors, which also checks the
pipeline pieces of hw.core.reduce alone). Nothing here is a stored vector.

Every run is watched cycle by cycle (`Bench`): the passes over Vs/Vg (addresses 0 .. W-1 in
order, rs and rt in lockstep, the registers named by the instruction), the writes 0 .. W-1 in order
with the VL mask on the last word and each after the last read of that word, F[fd] written once by
a QNT with the golden scale and never by a NORM, `done` once with (or after) the last write,
`cmd.ready` exactly while idle, nothing on any channel while idle, and the whole register file
(elements past VL included) after every instruction. The unit's test-only `stall` input is driven
with seeded random backpressure, and commands come after random idle gaps.
"""
from __future__ import annotations

import dataclasses
import random
import types

import numpy as np
import pytest

from golden import ops as O
from hw.core.normq import NormQuantUnit, pipeline_cycles
from sim.tb import unit
from sim.tb.streams import Pauses
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig, get_config
from tests.hw.core.test_reduce import _code_edge_vectors, _extremes, _tie_vector

MANT_MAX = (1 << (N.GAMMA_BITS - 1)) - 1


#: one element per word, a 4-lane and a 16-lane core, small registers
CONFIGS = {
    "l1": unit.config(vector_lanes=1, beat_bytes=8, vlen=32),
    "l4": unit.config(vector_lanes=4, beat_bytes=16, vlen=64),
    "l16": unit.config(vector_lanes=16, beat_bytes=64, vlen=256),
}


# -- the reference: golden.machine's _norm / _qnt ---------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instr:
    mn: str          # NORM | QNT
    vl: int
    vd: int
    vs: int
    vt: int
    exp: int
    fd: int = 0

    @property
    def passes(self) -> int:
        return 3 if self.mn == "NORM" else 2


def execute(V: list[np.ndarray], F: list[tuple[int, int]], ins: Instr) -> None:
    """One instruction on the register files, in place, as golden.machine._norm/_qnt."""
    x = V[ins.vs][:ins.vl].copy()
    g = V[ins.vt][:ins.vl].astype(np.int16)      # the low 16 bits, signed (the cast wraps)
    if ins.mn == "NORM":
        V[ins.vd][:ins.vl] = O.rmsnorm(x, g, ins.exp)
    else:
        codes, s = O.quantize(x, g, ins.exp)
        V[ins.vd][:ins.vl] = codes.astype(np.int64)
        F[ins.fd] = s


# -- operands ------------------------------------------------------------------------------------
X_CLASSES = ("zero", "tiny", "typical", "limit", "equal", "single", "mixed", "sumsq_edge", "large")
G_CLASSES = ("block", "int16", "zero", "unit", "block")


def _x(rng: random.Random, n: int, cls: str) -> list[int]:
    """The classes of sim.tb.unit.fx_vector, and typical (|x| around 2**24 .. 2**28), large, equal
    and single."""
    if cls == "typical":
        top = 1 << rng.randint(N.FX_FRAC, N.FX_FRAC + 4)
        return [rng.randint(-top, top) for _ in range(n)]
    if cls == "large":
        top = 1 << rng.randint(N.FX_FRAC + 5, N.FX_BITS - 2)
        return [rng.randint(-top, top) for _ in range(n)]
    if cls == "equal":
        return [rng.choice([N.FX_MIN, N.FX_MAX, 1, -1, rng.randint(N.FX_MIN, N.FX_MAX),
                            rng.randint(-(1 << 28), 1 << 28)])] * n
    if cls == "single":
        v = [0] * n
        v[rng.randrange(n)] = rng.choice([1, -1, N.FX_MIN, N.FX_MAX, rng.randint(N.FX_MIN, N.FX_MAX)])
        return v
    return unit.fx_vector(rng, n, cls)


def _mant(rng: random.Random, n: int, cls: str) -> list[int]:
    if cls == "zero":
        return [0] * n
    if cls == "unit":
        return [rng.choice([1 << 14, MANT_MAX, -MANT_MAX, -(1 << 15), 1, -1]) for _ in range(n)]
    if cls == "block":       # a gamma_block vector: max|mant| in [2**14, 2**15)
        g = [rng.randint(-MANT_MAX, MANT_MAX) for _ in range(n)]
        g[rng.randrange(n)] = rng.choice([-1, 1]) * rng.randint(1 << 14, MANT_MAX)
        return g
    return [rng.randint(-(1 << 15), MANT_MAX) for _ in range(n)]


def _gamma_elements(rng: random.Random, mant: list[int]) -> list[int]:
    """Register elements whose low 16 bits are `mant`: random upper bits half the time."""
    if rng.random() < 0.5:
        return list(mant)
    hi = (1 << (N.FX_BITS - N.GAMMA_BITS - 1)) - 1
    return [g + (rng.randint(-hi, hi - 1) << N.GAMMA_BITS) for g in mant]


def _exp(rng: random.Random) -> int:
    return rng.choice([N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX, N.GAMMA_TOP, 0, 1, -1,
                       rng.randint(N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX), rng.randint(10, 20)])


def _vl(config: AccelConfig, rng: random.Random) -> int:
    lanes, top = config.vector_lanes, config.vlen
    edges = [v for v in (1, 2, lanes - 1, lanes, lanes + 1, 2 * lanes - 1, top - 1, top) if 1 <= v <= top]
    return rng.choice(edges) if rng.random() < 0.4 else rng.randint(1, top)


@dataclasses.dataclass(frozen=True)
class Step:
    ins: Instr
    refill: dict      # register -> full contents written before the instruction (the unit idle)


def program(config: AccelConfig, rng: random.Random, n: int, mns=("NORM", "QNT"),
            x_classes=X_CLASSES, g_classes=G_CLASSES) -> list[Step]:
    """n instructions; before most of them the source registers get fresh vectors (and Vd junk,
    so that elements past VL are visibly kept); the others work on the previous results."""
    steps = []
    regs = range(isa.N_VREGS)
    for k in range(n):
        mn = rng.choice(mns)
        vl = _vl(config, rng)
        shape = rng.randrange(6)
        vs, vt = rng.sample(regs, 2)
        vd = rng.choice(regs)
        if shape == 1:
            vd = vs                          # in place on Vs
        elif shape == 2:
            vd = vt                          # in place on Vg
        elif shape == 3:
            vt = vs                          # gamma = int16(x)
        ins = Instr(mn, vl, vd, vs, vt, _exp(rng), rng.randrange(isa.N_FREGS))
        refill = {}
        if k == 0 or rng.random() < 0.8:
            xc = x_classes[k % len(x_classes)] if rng.random() < 0.7 else rng.choice(x_classes)
            refill[vd] = [rng.randint(N.FX_MIN, N.FX_MAX) for _ in range(config.vlen)]
            refill[vt] = _gamma_elements(rng, _mant(rng, config.vlen, rng.choice(g_classes)))
            refill[vs] = _x(rng, config.vlen, xc)      # wins when vs == vt
        steps.append(Step(ins, refill))
    return steps


# -- the testbench -------------------------------------------------------------------------------
class Bench:
    """A NormQuantUnit (with its test `stall` input) and RegModel behind its channels; a source that
    refills registers while the unit is idle and sends each instruction after a random idle gap;
    the contract watch (sim.tb.unit.Monitor) with the checks of the module docstring and the
    register files after each `done`."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.dut = NormQuantUnit(config, test_stall=True)

    def run(self, steps: list[Step], *, gap: float = 0.0, stall: float = 0.0, seed: int = 0,
            limit_per_instr: int = 2000) -> unit.Run:
        dut, config = self.dut, self.config
        lanes = config.vector_lanes
        regs = unit.RegModel(config)
        V = [v.copy() for v in regs.V]
        F = [O.SF_ZERO] * isa.N_FREGS
        expected, scales = [], []
        for st in steps:
            for r, vals in st.refill.items():
                V[r][:] = vals
            execute(V, F, st.ins)
            expected.append([v.copy() for v in V])
            scales.append(F[st.ins.fd] if st.ins.mn == "QNT" else None)
        junk = random.Random(seed)
        payloads = [unit.cmd_payload(ins.mn, vl=ins.vl, vd=ins.vd, vs=ins.vs, vt=ins.vt, fd=ins.fd, s0=ins.exp,
                                # fields this unit must ignore
                                ad=junk.randrange(isa.N_AREGS), at=junk.randrange(isa.N_AREGS),
                                addr=junk.randrange(-(1 << 40), 1 << 40), s1=junk.randrange(-(1 << 40), 1 << 40),
                                rows=junk.randrange(1 << 16))
                    for ins in (st.ins for st in steps)]
        limit = len(steps) * limit_per_instr * (1 + 4 * stall) + 100
        c = types.SimpleNamespace()

        def start(k):
            c.reads, c.nwrite, c.fwrites = [[]], 0, 0      # reads: per pass, the cycle of each word's read

        def busy(s):
            ins, where = steps[s.k].ins, s.where
            n_words = -(-ins.vl // lanes)
            if s.rs_en:
                if len(c.reads[-1]) == n_words:
                    c.reads.append([])
                p = len(c.reads) - 1
                assert p < ins.passes, f"{where}: more than {ins.passes} passes over Vs"
                assert s.rs_addr == len(c.reads[-1]), \
                    f"{where}: pass {p} read word {s.rs_addr}, expected {len(c.reads[-1])}"
                assert s.rs_reg == ins.vs, f"{where}: rs names V{s.rs_reg}"
                c.reads[-1].append(s.cycle)
                # gamma is read in every pass but NORM's second (SUMSQ)
                assert s.rt_en == (ins.mn == "QNT" or p != 1), f"{where}: rt.en {s.rt_en} in pass {p}"
            else:
                assert not s.rt_en, f"{where}: rt.en without rs.en"
            if s.rt_en:
                assert s.rt_addr == s.rs_addr, f"{where}: rt reads word {s.rt_addr}, rs word {s.rs_addr}"
                assert s.rt_reg == ins.vt, f"{where}: rt names V{s.rt_reg}"
            if s.wd_en:
                last_pass = ins.passes - 1
                assert len(c.reads) == ins.passes and c.nwrite < len(c.reads[last_pass]) \
                    and c.reads[last_pass][c.nwrite] < s.cycle, \
                    f"{where}: write of word {c.nwrite} before its last read"
                unit.check_write(where, s.wd_addr, s.wd_reg, s.wd_mask, word=c.nwrite, vd=ins.vd, lanes=lanes, n=ins.vl)
                c.nwrite += 1
            if s.f_en:
                assert ins.mn == "QNT" and c.fwrites == 0, f"{where}: F write by {ins.mn} (#{c.fwrites + 1})"
                assert s.f_idx == ins.fd, f"{where}: F{s.f_idx} written, expected F{ins.fd}"
                got = (int(s.f_val.mantissa), int(s.f_val.exponent))
                assert got == scales[s.k], f"{where}: F = {got}, expected {scales[s.k]}"
                c.fwrites += 1
            finished = c.nwrite == n_words and c.fwrites == (ins.mn == "QNT")
            assert s.done == (finished and (s.wd_en or s.f_en)), \
                f"{where}: done {s.done} after {c.nwrite} writes, {c.fwrites} F writes"
            if s.done:
                assert len(c.reads) == ins.passes and all(len(r) == n_words for r in c.reads), \
                    f"{where}: done after reads {[len(r) for r in c.reads]}"

        prog = [st.ins for st in steps]
        mon = unit.Monitor(
            dut, prog, limit, start=start, busy=busy,
            check=lambda k: unit.check_regs(regs, expected[k], f"instruction {k} {prog[k]}"),
            signals={"rs_en": dut.rs.en, "rs_addr": dut.rs.addr, "rs_reg": dut.rs.reg,
                     "rt_en": dut.rt.en, "rt_addr": dut.rt.addr, "rt_reg": dut.rt.reg,
                     "wd_en": dut.wd.en, "wd_addr": dut.wd.addr, "wd_reg": dut.wd.reg, "wd_mask": dut.wd.mask,
                     "f_en": dut.fwb.en, "f_idx": dut.fwb.idx, "f_val": dut.fwb.value},
            idle=("rs_en", "rt_en", "wd_en", "f_en"),
            quiet=(8, [dut.rs.en, dut.rt.en, dut.wd.en, dut.done, dut.fwb.en]))

        async def refill(ctx, k):
            st = steps[k]
            if st.refill or gap:
                # the previous instruction done and checked, then an idle gap (none when back to back)
                await unit.until(ctx, lambda: mon.checked >= k - 1)
                for r, vals in st.refill.items():
                    regs.V[r][:] = vals

        async def source(ctx):
            await unit.issue(ctx, dut.cmd, payloads, Pauses(seed * 3 + 1, gap), before=refill)

        unit.simulator(dut, regs, stall=Pauses(seed * 3 + 2, stall), testbenches=[source, mon.watch]).run()
        assert len(mon.run.done) == len(steps)
        return mon.run


STALLS = [pytest.param(0.0, 0.0, id="nostall"), pytest.param(0.3, 0.3, id="stall")]


# -- against the golden machine ------------------------------------------------------------------
@pytest.mark.parametrize("idle,stall", STALLS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_matches_golden(cfg, idle, stall):
    """NORM and QNT mixed: every magnitude class, random VL (edges: 1, around the lanes, vlen),
    exponents over the whole range, in place on Vs or Vg, Vs == Vg, chained on previous results;
    idle gaps between commands (or none: back to back) and random stalls inside."""
    config = CONFIGS[cfg]
    rng = random.Random(f"normq-{cfg}-{stall}")
    n = 8 if config.vector_lanes >= 16 else 12
    Bench(config).run(program(config, rng, n), gap=idle, stall=stall, seed=len(cfg))


def _exponent_steps(config: AccelConfig, rng: random.Random, exps) -> list[Step]:
    steps = []
    for k, e in enumerate(exps):
        vl = rng.randint(1, 3 * config.vector_lanes)
        x = _x(rng, config.vlen, rng.choice(("typical", "tiny", "mixed", "large")))
        g = _gamma_elements(rng, _mant(rng, config.vlen, rng.choice(("block", "int16", "unit"))))
        steps.append(Step(Instr(("NORM", "QNT")[k & 1], vl, 2, 0, 1, e, k & 7), {0: x, 1: g}))
    return steps


def test_exponent_edges():
    """NORM and QNT at the ends of [GAMMA_EXP_MIN, GAMMA_EXP_MAX] (left shifts that saturate at
    the low end, long rounding shifts at the high end), around 0 and at gamma_block's usual 14."""
    config = CONFIGS["l4"]
    rng = random.Random("normq-exp-edges")
    lo, hi = N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX
    exps = [lo, lo, lo + 1, -1, 0, 0, 1, 14, 15, hi - 1, hi, hi] + [rng.randint(lo, hi) for _ in range(4)]
    Bench(config).run(_exponent_steps(config, rng, exps), stall=0.2, seed=5)


@pytest.mark.slow
def test_every_exponent():
    """NORM and QNT at every exponent of [GAMMA_EXP_MIN, GAMMA_EXP_MAX]."""
    config = CONFIGS["l4"]
    rng = random.Random("normq-exp")
    exps = [e for e in range(N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX + 1) for _ in range(2)]
    Bench(config).run(_exponent_steps(config, rng, exps), stall=0.2, seed=6)


def test_rounding_ties_and_zeros():
    """mant = +-2**14 with exp = 15: y = t / 2, a tie for every odd t (rounded half up, also for
    negative t); the zero vector (NORM: zeros; QNT: codes 0 and s = 0); gamma all zero (QNT: M = 0);
    one non-zero element; FX_MIN everywhere."""
    config = CONFIGS["l4"]
    rng = random.Random("normq-ties")
    n = config.vlen
    half = [rng.choice([1 << 14, -(1 << 14)]) for _ in range(n)]
    typical = _x(rng, n, "typical")
    single = [0] * n
    single[7] = -3
    steps = [
        Step(Instr("NORM", 37, 2, 0, 1, 15), {0: typical, 1: half}),
        Step(Instr("NORM", n, 3, 0, 1, 15), {0: _x(rng, n, "tiny"), 1: half}),
        Step(Instr("NORM", 17, 0, 0, 1, 14), {0: [0] * n, 1: _mant(rng, n, "block")}),
        Step(Instr("QNT", 17, 0, 0, 1, 14, 5), {0: [0] * n, 1: _mant(rng, n, "block")}),
        Step(Instr("QNT", 23, 4, 0, 1, 14, 6), {0: typical, 1: [0] * n}),
        Step(Instr("QNT", 9, 5, 0, 1, 3, 7), {0: single, 1: half}),
        Step(Instr("NORM", 9, 5, 0, 1, 3), {0: single, 1: half}),
        Step(Instr("NORM", n, 6, 0, 1, N.GAMMA_EXP_MIN), {0: [N.FX_MIN] * n, 1: [-(1 << 15)] * n}),
        Step(Instr("QNT", n, 6, 0, 1, N.GAMMA_EXP_MAX, 1), {0: [N.FX_MIN] * n, 1: [-(1 << 15)] * n}),
    ]
    Bench(config).run(steps, stall=0.1, seed=9)


def test_spikes_saturate_norm_output():
    """NORM of spiky vectors (|t| up to sqrt(VL) * 2**FX_FRAC) with the largest gammas at the lowest
    exponents: y = t * mant * 2**-exp runs past the FX range by a few bits to many, on both signs,
    so the rounding shifter's narrowed window and its out-of-window flag decide the saturation."""
    config = CONFIGS["l4"]
    rng = random.Random("normq-spikes")
    n = config.vlen
    steps = []
    for k, e in enumerate([N.GAMMA_EXP_MIN, N.GAMMA_EXP_MIN, N.GAMMA_EXP_MIN + 1, N.GAMMA_EXP_MIN + 2,
                           N.GAMMA_EXP_MIN + 4, N.GAMMA_EXP_MIN + 7, N.GAMMA_EXP_MIN + 9, N.GAMMA_EXP_MIN + 12]):
        x = [0] * n
        for _ in range(1 + k % 3):
            x[rng.randrange(n)] = rng.choice([N.FX_MAX, N.FX_MIN, 1 << 30, -(1 << 30), 12345])
        mant = [rng.choice([(1 << 15) - 1, -(1 << 15), 1 << 14, -3]) for _ in range(n)]
        steps.append(Step(Instr("NORM", n, 2 + k % 3, 0, 1, e), {0: x, 1: mant}))
    Bench(config).run(steps, stall=0.1, seed=11)


def _qnt_step(rng: random.Random, config: AccelConfig, t: list[int], mant: list[int], k: int, mn: str = "QNT") -> Step:
    """NORM or QNT of (t, mant) as Vs = V0, Vg = V1 (random upper bits on half the gammas), Vd = V2;
    past VL, elements of a larger |t * mant| than any valid one (a leak would change M, hence every
    code) and junk in Vd."""
    n, vl = config.vlen, len(t)
    big = [rng.choice([N.FX_MIN, N.FX_MAX]) for _ in range(n - vl)]
    g = _gamma_elements(rng, list(mant) + [-(1 << 15)] * (n - vl))
    vd = [rng.randint(N.FX_MIN, N.FX_MAX) for _ in range(n)]
    return Step(Instr(mn, vl, 2, 0, 1, _exp(rng), k & 7), {0: list(t) + big, 1: g, 2: vd})


def test_qnt_ties_code_edges_and_extremes():
    """QNT's exact division through the whole unit (codes and F): every rounding tie r + 1/2 of
    127 |p| / M (away from zero), every code's lower edge and its neighbours for M from 254 up to
    FX_MAX (mant = +-1) and at 2**62 = |FX_MIN * -2**15| and |FX_MIN| * MANT_MAX (the nearest
    multiples of |mant| around each edge), the largest products next to small ones (QNT and NORM),
    and M = 0 from the mantissas."""
    config = unit.config(vector_lanes=4, beat_bytes=16, vlen=256)
    rng = random.Random("normq-qnt-edges")
    vecs = [_tie_vector(rng) for _ in range(3)] + _code_edge_vectors(rng)
    steps = []
    for t, g in vecs:
        # M's element (the first) in every part, the rest split to fit vlen, each part shuffled
        rest = list(zip(t[1:], g[1:], strict=True))
        for lo in range(0, len(rest), config.vlen - 1):
            part = [(t[0], g[0])] + rest[lo:lo + config.vlen - 1]
            rng.shuffle(part)
            steps.append(_qnt_step(rng, config, [v for v, _ in part], [m for _, m in part], len(steps)))
    t, g = _extremes()
    steps += [_qnt_step(rng, config, t, g, len(steps)), _qnt_step(rng, config, t, g, len(steps), "NORM"),
              _qnt_step(rng, config, [5, -3, 9], [0, 0, 0], len(steps))]
    Bench(config).run(steps, gap=0.2, stall=0.2, seed=8)


def test_in_place_and_chained():
    """A BitLinear input as the model runs it: NORM in place (Vd = Vs), QNT of the result in place
    on Vg, Vs == Vg, and QNT of a NORM's output, elements past VL kept throughout."""
    config = CONFIGS["l4"]
    rng = random.Random("normq-chain")
    n = config.vlen
    gamma, e = N.gamma_block(np.array([rng.uniform(0.2, 2.0) for _ in range(n)]))
    x = _x(rng, n, "typical")
    steps = [
        Step(Instr("NORM", 45, 0, 0, 1, e), {0: x, 1: [int(g) for g in gamma], 2: _x(rng, n, "mixed")}),
        Step(Instr("QNT", 45, 1, 0, 1, e, 2), {}),
        Step(Instr("QNT", 45, 3, 2, 2, 14, 3), {}),
        Step(Instr("NORM", 63, 2, 2, 2, 14), {}),
        Step(Instr("QNT", 63, 4, 2, 1, e, 4), {}),
    ]
    Bench(config).run(steps, gap=0.5, stall=0.3, seed=4)


# -- timing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS)
def test_cycles(cfg, capsys):
    """No stalls, no gaps: each pass reads a word per cycle; done within the pass count plus the
    scalar sequence; the next cmd is taken the cycle after done. Prints the measured counts."""
    config = CONFIGS[cfg]
    lanes = config.vector_lanes
    rng = random.Random(f"normq-cycles-{cfg}")
    steps = []
    for mn in ("NORM", "QNT"):
        for vl in (1, lanes + 1, config.vlen):
            steps.append(Step(Instr(mn, vl, 2, 0, 1, 14, 3), {0: _x(rng, config.vlen, "typical"),
                                                             1: _mant(rng, config.vlen, "block")}))
    # back to back (no refill): the next command waits at cmd
    steps += [Step(Instr("NORM", config.vlen, 3, 2, 1, 14), {}), Step(Instr("QNT", config.vlen, 4, 3, 1, 14), {})]
    run = Bench(config).run(steps)
    for k, (st, took) in enumerate(zip(steps, run.cycles(), strict=True)):
        w = -(-st.ins.vl // lanes)
        passes = st.ins.passes
        # the scalar sequence: about 160 cycles (NORM), 240 (QNT) at the ScalarUnit's latencies; the
        # pipeline's own cycles (hw.core.normq.pipeline_cycles)
        seq = 200 if st.ins.mn == "NORM" else 280
        assert passes * w < took <= passes * w + seq + pipeline_cycles(lanes), f"{st.ins}: {took}"
        if k and not st.refill:
            assert run.accepted[k] == run.done[k - 1] + 1, f"{st.ins}: not taken right after the previous done"
    with capsys.disabled():
        print(f"\n[{cfg}] " + ", ".join(f"{st.ins.mn} VL={st.ins.vl}: {c}" for st, c in
                                         zip(steps, run.cycles(), strict=True)))


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CONFIGS)
def test_long_sweep(cfg):
    config = CONFIGS[cfg]
    rng = random.Random(f"normq-sweep-{cfg}")
    Bench(config).run(program(config, rng, 120), gap=0.2, stall=0.3, seed=11)


@pytest.mark.slow
def test_full_size_ecp5():
    """The ecp5 configuration itself (vlen 1024, 4 lanes): full-length NORM and QNT."""
    config = get_config("ecp5")
    rng = random.Random("normq-ecp5")
    steps = [dataclasses.replace(st, ins=dataclasses.replace(st.ins, vl=rng.choice(
        [config.vlen, config.vlen - 1, rng.randint(config.vlen // 2, config.vlen)])))
        for st in program(config, rng, 8)]
    Bench(config).run(steps, gap=0.2, stall=0.2, seed=12)


# -- interface -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS)
def test_signature(cfg):
    config = CONFIGS[cfg]
    dut = NormQuantUnit(config)
    unit.check_elaborates(dut, config)
    unit.check_channels(config, dut.rs, dut.rt, dut.wd)
    unit.check_test_stall(dut, NormQuantUnit(config, test_stall=True))


def test_config_checks():
    unit.rejects(TypeError, r"^config must be an AccelConfig, not 4$", NormQuantUnit, 4)
    unit.rejects(ValueError, r"beat_bytes >= 8", NormQuantUnit, unit.config("ice40", beat_bytes=4))
