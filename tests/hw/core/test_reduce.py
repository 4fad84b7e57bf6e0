"""hw.core.reduce: the pipeline pieces of NORM's and QNT's reductions and QNT's quantizer against
the golden integer ops.

The pieces (`reduce_tree`, `pre_shift`, `shift_stages`, `code_stages`, `_abs`, `_max`) are wired
into a small harness pipeline as hw.core.normq wires them (`Harness`: every stage register loads
on one enable, so a stall holds every stage at once, as normq's `stall` does): |t| and its lane
tree (max|t|), |t| >> k and the lane tree of the squares (the sum of squares), |p| = |t * mant| and
its lane tree (M), and the codes from M. A vector goes through twice, as in normq: a MAX pass,
whose maxima the testbench accumulates over the beats (normq's accumulators are a max and an add),
then a SUMSQ pass with k = pre_shift(max|t|) (registered, as normq's) and M, whose sums and codes
it collects. The products and the accumulation are the harness's own (normq uses
hw.core.arith.pipelined_product, tested in test_arith.py); the end-to-end behaviour of NORM and QNT
is tests/hw/core/test_normq.py's.

Provenance of the vectors: the expected values are `golden.ops` (`mean_square`, `quantize`)
and a naive Python-integer model of their integer parts (below), applied to seeded random vectors
drawn from magnitude classes (all zero, a few ulps, typical, up to the 48-bit limits including
FX_MIN, mixed bit lengths, the pre-shift's edges, and constructed exact rounding ties of the
quantizer; every code's edges). Nothing here is a stored vector. Every test runs with and without
random bubbles and pipeline stalls.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, Mux, Signal, signed, unsigned
from amaranth.sim import Simulator

from golden import ops as O
from hw.core import reduce as R
from hw.core.reduce import (
    ABS,
    CODE,
    CODE_STAGES,
    PABS,
    SHIFT,
    SHIFT_STAGES,
    SUMSQ,
    _abs,
    _max,
    code_stages,
    pre_shift,
    reduce_tree,
    shift_stages,
    tree_levels,
)
from sim.tb import unit
from spec import isa
from spec import numerics as N

MANT_MAX = (1 << (N.GAMMA_BITS - 1)) - 1
FX = signed(N.FX_BITS)
MANT = signed(N.GAMMA_BITS)


# -- the naive model -----------------------------------------------------------------------------
def model_reduce(t: list[int], mant: list[int]) -> dict:
    """The integer parts of mean_square and quantize, with Python integers."""
    mx = max((abs(v) for v in t), default=0)
    k = max(0, mx.bit_length() - N.SUMSQ_IN_BITS)
    return {
        "n": len(t),
        "max_abs": mx,
        "shift": k,
        "pmax": max((abs(v * g) for v, g in zip(t, mant, strict=True)), default=0),
        "sumsq": sum((abs(v) >> k) ** 2 for v in t),
    }


def model_codes(t: list[int], mant: list[int]) -> list[int]:
    """sign(p) * floor(127 |p| / M + 1/2), exact rationals."""
    p = [v * g for v, g in zip(t, mant, strict=True)]
    mx = max((abs(x) for x in p), default=0)
    if mx == 0:
        return [0] * len(t)
    return [(1 if x >= 0 else -1) * ((2 * N.CODE_MAX * abs(x) + mx) // (2 * mx)) for x in p]


# -- vectors -------------------------------------------------------------------------------------
def _vector(rng: random.Random, n: int, cls: str) -> list[int]:
    """The classes of sim.tb.unit.fx_vector, and typical (|x| < 16)."""
    if cls == "typical":
        return [rng.randint(-(1 << (N.FX_FRAC + 4)), 1 << (N.FX_FRAC + 4)) for _ in range(n)]
    return unit.fx_vector(rng, n, cls)


CLASSES = ("zero", "tiny", "typical", "limit", "sumsq_edge", "mixed")


def _mant(rng: random.Random, n: int) -> list[int]:
    kind = rng.randrange(4)
    if kind == 0:
        return [0] * n
    if kind == 1:   # a gamma_block vector: max|mant| in [2**14, 2**15)
        g = [rng.randint(-MANT_MAX, MANT_MAX) for _ in range(n)]
        g[rng.randrange(n)] = rng.choice([-1, 1]) * rng.randint(1 << 14, MANT_MAX)
        return g
    if kind == 2:
        return [rng.choice([1 << 14, MANT_MAX, -MANT_MAX, -(1 << 15)]) for _ in range(n)]
    return [rng.randint(-(1 << 15), MANT_MAX) for _ in range(n)]


def _tie_vector(rng: random.Random) -> tuple[list[int], list[int]]:
    """|p| = (2r+1) * c with M = 254 * c: 127|p|/M = r + 1/2 exactly, for every r in 0..126."""
    c = rng.randrange(1, 1 << 20)
    g = rng.choice([1, 3, -5, 1 << 14])
    t = [rng.choice([-1, 1]) * (2 * r + 1) * c for r in range(N.CODE_MAX)] + [254 * c]
    # t * g = ((2r+1) c) * g and M = 254 c |g|: the same ratios
    rng.shuffle(t)
    return t, [g] * len(t)


def _extremes() -> tuple[list[int], list[int]]:
    """The largest product |FX_MIN * -2**15| = 2**62 (M), FX_MAX * -2**15 and small ones."""
    return ([N.FX_MIN, N.FX_MAX, -1, 1, N.FX_MIN >> 1],
            [-(1 << 15), -(1 << 15), MANT_MAX, 1, 1 << 14])


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _code_edges(rng: random.Random, tmax: int, g: int = 1) -> list[int]:
    """t for M = tmax * |g|: tmax itself, then for every code q the t nearest its lower edge
    |p| = ceil((2q-1) M / 254) from above (|t * g| >= the edge: code q), the one below (code q - 1)
    and the one above, clamped into [0, tmax]; random signs (FX_MIN for a magnitude of 2**47)."""
    mx = tmax * abs(g)
    t = [tmax]
    for q in range(1, N.CODE_MAX + 1):
        c = _ceil_div(_ceil_div((2 * q - 1) * mx, 254), abs(g))
        t += [min(max(c + d, 0), tmax) for d in (-1, 0, 1)]
    return [-v if v == -N.FX_MIN or rng.random() < 0.5 else v for v in t]


def _code_edge_vectors(rng: random.Random) -> list[tuple[list[int], list[int]]]:
    """(t, mant) pairs: every code's edges for five values of M with mantissas +-1, and for
    M = |FX_MIN| * 2**15 and |FX_MIN| * MANT_MAX (the largest |t * mant|)."""
    vecs = []
    for mx in (254, 255, 1 << 24, rng.randrange(1 << 40), N.FX_MAX):
        t = _code_edges(rng, mx)
        vecs.append((t, [rng.choice([-1, 1]) for _ in t]))
    for g in (-(1 << 15), MANT_MAX):
        t = _code_edges(rng, -N.FX_MIN, g)
        vecs.append((t, [g] * len(t)))
    return vecs


def _beats(rng: random.Random, t: list[int], mant: list[int], lanes: int, *, empty_last: bool = False):
    """Split into beats of `lanes`; the tail beat is padded with garbage (masked by `count`)."""
    out = []
    for s in range(0, len(t), lanes):
        ct, cm = t[s:s + lanes], mant[s:s + lanes]
        pad = lanes - len(ct)
        out.append({"data": ct + [rng.randint(N.FX_MIN, N.FX_MAX) for _ in range(pad)],
                    "mant": cm + [rng.randint(-(1 << 15), MANT_MAX) for _ in range(pad)],
                    "count": len(ct)})
    if empty_last or not out:
        out.append({"data": [rng.randint(N.FX_MIN, N.FX_MAX) for _ in range(lanes)],
                    "mant": [rng.randint(-(1 << 15), MANT_MAX) for _ in range(lanes)], "count": 0})
    return out


def _vectors(rng: random.Random, count: int, max_len: int = 24):
    vecs = []
    for v in range(count):
        n = rng.randint(1, max_len)
        cls = CLASSES[v % len(CLASSES)]
        vecs.append((_vector(rng, n, cls), _mant(rng, n)))
    vecs.append(_tie_vector(rng))
    return vecs


# -- the harness ---------------------------------------------------------------------------------
class Harness:
    """hw.core.reduce's pieces in one lane pipeline, wired as hw.core.normq wires them.

    Inputs (a beat; sampled when `adv` is high): ``data``, ``mant`` (`lanes` each), ``count``
    (lanes ``[0, count)`` valid; the others enter as t = 0, as normq's stage 1 does), ``valid``;
    per pass, held while its beats are in the pipeline: ``max_in`` (max|t| of the vector: k =
    pre_shift(max_in), registered) and ``m`` (M). Every register loads when ``adv`` is high.

    Outputs, all of one beat, at stage `depth` (``o_valid``): ``o_max`` (max|t| of the beat),
    ``o_pmax`` (max|t * mant|), ``o_ss`` (sum((|t| >> k)**2)), ``o_codes`` (the codes from M).
    `regs` lists every register as (name, stage, signal), for the latency checks.
    """

    def __init__(self, lanes: int):
        self.lanes = lanes
        m = self.m_ = Module()
        self.adv = Signal()
        self.valid = Signal()
        self.data = [Signal(FX, name=f"data{j}") for j in range(lanes)]
        self.mant = [Signal(MANT, name=f"mant{j}") for j in range(lanes)]
        self.count = Signal(range(lanes + 1))
        self.max_in = Signal(ABS)
        self.m = Signal(PABS)
        self.k = Signal(SHIFT)
        self.regs: list[tuple[str, int, Signal]] = []

        def reg(k, name, shape, value):
            r = Signal(shape, name=f"{name}_q{k}")
            with m.If(self.adv):
                m.d.sync += r.eq(value)
            self.regs.append((name, k, r))
            return r

        levels = tree_levels(lanes)
        m.d.sync += self.k.eq(pre_shift(self.max_in))      # as normq: constant while a pass flows

        mags, pabs_l, squares, codes = [], [], [], []
        self.shifted, self.coded = [], []
        for j in range(lanes):
            # stage 1: the beat, invalid lanes as 0
            x = reg(1, f"x{j}", FX, Mux(j < self.count, self.data[j], 0))
            g = reg(1, f"g{j}", MANT, self.mant[j])
            # stage 2: |t|, t * mant (normq: pipelined_product over several stages)
            a = reg(2, f"abs{j}", ABS, _abs(x, ABS))
            p = reg(2, f"p{j}", signed(N.FX_BITS + N.GAMMA_BITS), x * g)
            mags.append(a)
            # stages 3, 4: |t| >> k; stage 5: its square
            a4 = shift_stages(reg, 3, f"a{j}", a, self.k)
            self.shifted.append((3, a4))
            squares.append(reg(3 + SHIFT_STAGES, f"sq{j}", unsigned(2 * N.SUMSQ_IN_BITS), a4 * a4))
            # stage 3: |p| and its sign; the codes from stage 4
            pabs = reg(3, f"pabs{j}", PABS, _abs(p, PABS))
            neg = reg(3, f"neg{j}", 1, p < 0)
            pabs_l.append(pabs)
            code = code_stages(reg, 4, f"c{j}", pabs, neg, lambda k: self.m)
            self.coded.append((4, code))
            codes.append(code)
        bmax = reduce_tree(reg, 3, "bmax", mags, _max, ABS)
        bpmax = reduce_tree(reg, 4, "bpmax", pabs_l, _max, PABS)
        bss = reduce_tree(reg, 4 + SHIFT_STAGES, "bss", squares, lambda u, w: u + w, SUMSQ)
        self.trees = [(3, bmax, 2), (4, bpmax, 3), (4 + SHIFT_STAGES, bss, 3 + SHIFT_STAGES)]

        # every result delayed to one output stage (from the stage each piece documents)
        max_at, pmax_at, ss_at = 2 + levels, 3 + levels, 3 + SHIFT_STAGES + levels
        code_at = 4 + CODE_STAGES - 1
        self.depth = depth = max(code_at, max_at, pmax_at, ss_at) + 1

        def delay(v, k, name, shape):
            for s in range(k + 1, depth + 1):
                v = reg(s, name, shape, v)
            return v

        self.o_max = delay(bmax, max_at, "o_max", ABS)
        self.o_pmax = delay(bpmax, pmax_at, "o_pmax", PABS)
        self.o_ss = delay(bss, ss_at, "o_ss", SUMSQ)
        self.o_codes = [delay(c, code_at, f"o_code{j}", CODE) for j, c in enumerate(codes)]
        self.o_valid = delay(self.valid, 0, "o_valid", 1)

    def stage_of(self, sig) -> int:
        return next(k for _, k, r in self.regs if r is sig)


def run_passes(lanes: int, vecs, *, idle: float, stall: float, seed: int, empty_last: bool = False) -> list[dict]:
    """Each vector through the harness twice (MAX pass, then SUMSQ pass with its k and M), with
    random bubbles (`idle`) and stalls of the whole pipeline (`stall`). Returns per vector the
    integers (model_reduce's fields, from the hardware) and the codes of its valid elements."""
    h = Harness(lanes)
    rng = random.Random(seed)
    results = []

    async def bench(ctx):
        async def one_pass(beats):
            """Feed `beats`, return the outputs of those beats (in order)."""
            out, fed = [], 0
            while len(out) < len(beats):
                go = not (stall and rng.random() < stall)
                feed = fed < len(beats) and not (idle and rng.random() < idle)
                ctx.set(h.adv, go)
                ctx.set(h.valid, feed)
                if feed:
                    b = beats[fed]
                    for j in range(lanes):
                        ctx.set(h.data[j], b["data"][j])
                        ctx.set(h.mant[j], b["mant"][j])
                    ctx.set(h.count, b["count"])
                else:       # a bubble: garbage on every input
                    for j in range(lanes):
                        ctx.set(h.data[j], rng.randint(N.FX_MIN, N.FX_MAX))
                        ctx.set(h.mant[j], rng.randint(-(1 << 15), MANT_MAX))
                    ctx.set(h.count, rng.randint(0, lanes))
                await ctx.tick()
                if go:
                    fed += feed
                    if ctx.get(h.o_valid):
                        out.append({"max": ctx.get(h.o_max), "pmax": ctx.get(h.o_pmax), "ss": ctx.get(h.o_ss),
                                    "codes": [ctx.get(c) for c in h.o_codes]})
            return out

        for t, g in vecs:
            # MAX pass: k and M garbage (this pass's sums and codes are not looked at)
            beats = _beats(rng, t, g, lanes, empty_last=empty_last)
            ctx.set(h.max_in, rng.getrandbits(N.FX_BITS - 1))
            ctx.set(h.m, rng.getrandbits(PABS.width))
            got = await one_pass(beats)
            max_abs = max(o["max"] for o in got)
            pmax = max(o["pmax"] for o in got)
            # SUMSQ pass: k = pre_shift(max|t|) (registered) and M
            ctx.set(h.max_in, max_abs)
            ctx.set(h.m, pmax)
            ctx.set(h.valid, 0)
            ctx.set(h.adv, 1)
            await ctx.tick()
            k = ctx.get(h.k)
            # the same vector again (other garbage in the lanes past count)
            beats = _beats(rng, t, g, lanes, empty_last=empty_last)
            got = await one_pass(beats)
            assert ctx.get(h.k) == k
            codes = []
            for b, o in zip(beats, got, strict=True):
                assert o["codes"][b["count"]:] == [0] * (lanes - b["count"]), "codes of masked lanes"
                codes += o["codes"][:b["count"]]
            results.append({"n": sum(b["count"] for b in beats), "max_abs": max_abs, "shift": k, "pmax": pmax,
                            "sumsq": sum(o["ss"] for o in got), "codes": codes})

    sim = Simulator(h.m_)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(results) == len(vecs)
    return results


def check(lanes: int, vecs, *, idle: float, stall: float, seed: int, empty_last: bool = False):
    got = run_passes(lanes, vecs, idle=idle, stall=stall, seed=seed, empty_last=empty_last)
    for v, ((t, g), res) in enumerate(zip(vecs, got, strict=True)):
        want = model_reduce(t, g)
        have = {f: res[f] for f in want}
        assert have == want, f"vector {v}: t={t} mant={g}"
        # the integers are the golden mean_square's: the ScalarUnit's NORM and MUL finish it
        ms = O.SF_ZERO if want["max_abs"] == 0 else O.sf_mul(
            O.sf_norm(want["sumsq"], 2 * want["shift"] - 2 * N.FX_FRAC), O.sf_inv_int(want["n"]))
        assert ms == O.mean_square(np.array(t, np.int64))
        # the codes are the golden quantize's
        codes, _ = O.quantize(np.array(t, np.int64), np.array(g, np.int64), 0, rinv=O.SF_ZERO)
        assert res["codes"] == codes.tolist() == model_codes(t, g), f"vector {v}: t={t} mant={g}"


STALLS = [pytest.param(0.0, 0.0, id="nostall"), pytest.param(0.3, 0.4, id="stall")]


# -- against the model and golden.ops ------------------------------------------------------------
@pytest.mark.parametrize("idle,stall", STALLS)
@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_reductions_and_codes_match_golden(lanes, idle, stall):
    """Every magnitude class (and a tie vector) through lane trees of 1, 3 (an odd tree) and 4."""
    rng = random.Random(f"reduce-{lanes}")
    check(lanes, _vectors(rng, 14), idle=idle, stall=stall, seed=lanes)


@pytest.mark.parametrize("idle,stall", STALLS)
def test_empty_beats(idle, stall):
    """A beat with no valid lane (count 0, garbage data) changes no maximum, no sum, no code."""
    rng = random.Random("reduce-empty")
    vecs = [(_vector(rng, n, "mixed"), _mant(rng, n)) for n in (4, 5, 7, 8)]
    check(4, vecs, idle=idle, stall=stall, seed=7, empty_last=True)


@pytest.mark.parametrize("idle,stall", STALLS)
def test_quantize_ties_and_extremes(idle, stall):
    """Every tie r + 1/2 (away from zero), the all-zero vector (M = 0, codes 0), M = 0 from the
    mantissas, and the largest product |FX_MIN * -2**15| = 2**62."""
    rng = random.Random("quantize-ties")
    vecs = [_tie_vector(rng) for _ in range(3)]
    vecs.append(([0] * 7, _mant(rng, 7)))
    vecs.append(([5, -3, 9], [0, 0, 0]))                     # M = 0 from the mantissas
    vecs.append(_extremes())
    vecs.append(([N.FX_MIN] * 6, [-(1 << 15)] * 6))          # every |p| = M = 2**62
    check(4, vecs, idle=idle, stall=stall, seed=11)


@pytest.mark.parametrize("idle,stall", STALLS)
def test_quantize_code_boundaries(idle, stall):
    """Every code's lower edge |p| = ceil((2q-1) M / 254) and its neighbours |p| - 1 (code q - 1)
    and |p| + 1, for M of several sizes up to FX_MAX (mant = +-1); and at the largest M, |FX_MIN|
    times -2**15 (2**62) or MANT_MAX, the nearest multiples of |mant| on either side of each edge."""
    vecs = _code_edge_vectors(random.Random("quantize-edges"))
    check(3, vecs, idle=idle, stall=stall, seed=13)


def test_pre_shift_at_every_bit_length():
    """k = max(0, bitlen(max|t|) - SUMSQ_IN_BITS) for 0, every power of two up to 2**47 (FX_MIN's
    magnitude) and its neighbours, and random values."""
    m = Module()
    a = Signal(ABS)
    k = Signal(SHIFT)
    m.d.comb += k.eq(pre_shift(a))
    rng = random.Random("pre-shift")
    values = {0, (1 << N.FX_BITS - 1)} | {v for b in range(N.FX_BITS - 1)
                                          for v in ((1 << b) - 1, 1 << b, (1 << b) + 1, (2 << b) - 1)}
    values |= {rng.getrandbits(rng.randint(1, N.FX_BITS - 1)) for _ in range(200)}

    async def bench(ctx):
        for v in sorted(values):
            ctx.set(a, v)
            assert ctx.get(k) == max(0, v.bit_length() - N.SUMSQ_IN_BITS), v

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()


# -- stages and widths ---------------------------------------------------------------------------
@pytest.mark.parametrize("lanes", [1, 2, 3, 4, 5, 16])
def test_stages_are_the_documented_ones(lanes):
    """Each piece's registers lie in its documented stages, its result at the documented one:
    reduce_tree k0 .. k0 + tree_levels - 1, shift_stages SHIFT_STAGES, code_stages CODE_STAGES."""
    h = Harness(lanes)
    Fragment.get(h.m_, None)
    assert 1 << tree_levels(lanes) >= lanes > (1 << tree_levels(lanes)) // 2      # ceil(log2(lanes))

    def stages(prefix):
        return {k for name, k, _ in h.regs if name.startswith(prefix)}

    for k0, res, before in h.trees:
        if lanes == 1:
            assert h.stage_of(res) == before                 # the item itself
        else:
            assert h.stage_of(res) == k0 + tree_levels(lanes) - 1
    assert stages("bmax_t") == set(range(3, 3 + tree_levels(lanes)))
    for j, (k0, res) in enumerate(h.shifted):
        assert h.stage_of(res) == k0 + SHIFT_STAGES - 1
        assert stages(f"a{j}_") == set(range(k0, k0 + SHIFT_STAGES))
        assert res.shape() == unsigned(N.SUMSQ_IN_BITS)
    for j, (k0, res) in enumerate(h.coded):
        assert h.stage_of(res) == k0 + CODE_STAGES - 1
        assert stages(f"c{j}_") == set(range(k0, k0 + CODE_STAGES))
        assert res.shape() == CODE


def test_widths_cover_the_extremes():
    """The shapes normq's registers and accumulators take from hw.core.reduce hold every value:
    |FX_MIN|, |FX_MIN * -2**15| = 2**62, the largest pre-shift, and the longest ISA vector of
    maximal pre-shifted squares (the SF_NORM_BITS sum); the quotient's dividend 254|p| + M."""
    assert ABS == unsigned(N.FX_BITS) and (-N.FX_MIN).bit_length() <= ABS.width
    assert PABS == unsigned(N.FX_BITS + N.GAMMA_BITS - 1)
    assert ((-N.FX_MIN) * (1 << (N.GAMMA_BITS - 1))).bit_length() <= PABS.width
    assert (N.FX_BITS - N.SUMSQ_IN_BITS).bit_length() <= SHIFT.width
    assert SUMSQ == unsigned(N.SF_NORM_BITS)
    assert (isa.VL_MAX * ((1 << N.SUMSQ_IN_BITS) - 1) ** 2).bit_length() <= N.SF_NORM_BITS
    top = (1 << PABS.width) - 1
    assert (2 * N.CODE_MAX * top + top).bit_length() <= R._NUM.width
    assert CODE == signed(8) and N.CODE_MAX < 1 << 7


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [2, 16])
def test_long_sweep(lanes):
    rng = random.Random(f"sweep-{lanes}")
    check(lanes, _vectors(rng, 240, max_len=8 * lanes + 3), idle=0.2, stall=0.3, seed=100 + lanes)
