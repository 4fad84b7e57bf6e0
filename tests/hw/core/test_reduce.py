"""hw.core.reduce: the NORM/QNT reductions and the quantizer against the golden integer ops.

Provenance of the vectors: the expected values are `golden.ops` (`mean_square`, `quantize`)
and a naive Python-integer model of their integer parts (below), applied to seeded random vectors
drawn from magnitude classes (all zero, a few ulps, typical, up to the 48-bit limits including
FX_MIN, mixed bit lengths, and constructed exact rounding ties of the quantizer). Nothing here is
a stored vector. Every test runs with and without random idle cycles and output backpressure.
"""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment, signed, unsigned

from golden import ops as O
from hw.core.reduce import QUANT_LATENCY, Pass, QuantizeUnit, ReductionUnit
from sim.tb import unit
from sim.tb.streams import Pauses
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

MANT_MAX = (1 << (N.GAMMA_BITS - 1)) - 1


def _config(lanes: int, vlen: int = 256) -> AccelConfig:
    return unit.config("ice40", vector_lanes=lanes, vlen=vlen)


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


def _beats(rng: random.Random, t: list[int], mant: list[int], lanes: int, *, empty_last: bool = False):
    """Split into beats of `lanes`; the tail beat is padded with garbage (masked by `count`)."""
    out = []
    for s in range(0, len(t), lanes):
        ct, cm = t[s:s + lanes], mant[s:s + lanes]
        pad = lanes - len(ct)
        out.append({"data": ct + [rng.randint(N.FX_MIN, N.FX_MAX) for _ in range(pad)],
                    "mant": cm + [rng.randint(-(1 << 15), MANT_MAX) for _ in range(pad)],
                    "count": len(ct), "last": 0})
    if empty_last or not out:
        out.append({"data": [rng.randint(N.FX_MIN, N.FX_MAX) for _ in range(lanes)],
                    "mant": [rng.randint(-(1 << 15), MANT_MAX) for _ in range(lanes)], "count": 0, "last": 0})
    out[-1]["last"] = 1
    return out


# -- the testbench -------------------------------------------------------------------------------
def run_stream(dut, beats: list[dict], n_results: int, *, idle: float, stall: float, seed: int) -> list:
    """`beats` into dut.i after random idle cycles, n_results out of dut.o under random
    backpressure, the stream rules checked on o, then nothing more (sim.tb.unit.run_stream)."""
    return unit.run_stream(dut, beats, n_results, idle=Pauses(seed * 2 + 1, idle),
                           backpressure=Pauses(seed * 2 + 2, stall), drain=2 * QUANT_LATENCY + 4)


STALLS = [pytest.param(0.0, 0.0, id="nostall"), pytest.param(0.3, 0.4, id="stall")]


def _vectors(rng: random.Random, lanes: int, count: int, max_len: int = 24):
    vecs = []
    for v in range(count):
        n = rng.randint(1, max_len)
        cls = CLASSES[v % len(CLASSES)]
        vecs.append((_vector(rng, n, cls), _mant(rng, n)))
    vecs.append(_tie_vector(rng))
    return vecs


# -- ReductionUnit -------------------------------------------------------------------------------
def check_reduction(lanes: int, vecs, *, idle: float, stall: float, seed: int, empty_last: bool = False):
    rng = random.Random(seed)
    beats = []
    for t, g in vecs:
        for b in _beats(rng, t, g, lanes, empty_last=empty_last):
            beats.append({**b, "pass_": Pass.MAX})
        # the SUMSQ pass ignores mant: send other mantissas to prove it
        other = [rng.randint(-(1 << 15), MANT_MAX) for _ in t]
        for b in _beats(rng, t, other, lanes, empty_last=empty_last):
            beats.append({**b, "pass_": Pass.SUMSQ})
    got = run_stream(ReductionUnit(_config(lanes)), beats, 2 * len(vecs), idle=idle, stall=stall, seed=seed)
    for v, (t, g) in enumerate(vecs):
        want = model_reduce(t, g)
        for pas, res in zip((Pass.MAX, Pass.SUMSQ), got[2 * v:2 * v + 2], strict=True):
            have = {f: int(getattr(res, f)) for f in ("n", "max_abs", "shift", "pmax", "sumsq")}
            exp = {**want, "sumsq": want["sumsq"] if pas == Pass.SUMSQ else 0}
            assert res.pass_ == pas
            assert have == exp, f"vector {v} ({pas}): t={t} mant={g}"
        # the integers are the golden mean_square's: the ScalarUnit's NORM and MUL finish it
        ms = O.SF_ZERO if want["max_abs"] == 0 else O.sf_mul(
            O.sf_norm(want["sumsq"], 2 * want["shift"] - 2 * N.FX_FRAC), O.sf_inv_int(want["n"]))
        assert ms == O.mean_square(np.array(t, np.int64))


@pytest.mark.parametrize("idle,stall", STALLS)
@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_reduction_matches_golden(lanes, idle, stall):
    rng = random.Random(f"reduce-{lanes}")
    check_reduction(lanes, _vectors(rng, lanes, 14), idle=idle, stall=stall, seed=lanes)


@pytest.mark.parametrize("idle,stall", STALLS)
def test_reduction_empty_last_beat(idle, stall):
    """A packet may end with a count-0 beat (the vector length a multiple of the lanes or not)."""
    rng = random.Random("reduce-empty")
    vecs = [(_vector(rng, n, "mixed"), _mant(rng, n)) for n in (4, 5, 7, 8)]
    check_reduction(4, vecs, idle=idle, stall=stall, seed=7, empty_last=True)


def test_reduction_back_to_back_throughput():
    """No stalls: one beat per cycle, one extra cycle per packet for the result handshake."""
    lanes, n = 4, 4 * 8
    rng = random.Random("reduce-rate")
    t = _vector(rng, n, "typical")
    beats = [{**b, "pass_": p} for p in (Pass.MAX, Pass.SUMSQ) for b in _beats(rng, t, [1] * n, lanes)]
    dut = ReductionUnit(_config(lanes))
    accepted = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        for beat in beats:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beat)
            while True:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
                cycle += 1
                if ready:
                    break
            accepted.append(cycle)
        ctx.set(dut.i.valid, 0)

    unit.simulator(dut, testbenches=[bench]).run()
    per_packet = len(beats) // 2
    assert accepted == list(range(1, per_packet + 1)) + list(range(per_packet + 2, 2 * per_packet + 2))


@pytest.mark.parametrize("cls", [ReductionUnit, QuantizeUnit])
def test_config_must_be_an_accel_config(cls):
    unit.rejects(TypeError, r"^config must be an AccelConfig, not 'ice40'$", cls, "ice40")


@pytest.mark.parametrize("lanes", [1, 4])
def test_signature_widths_come_from_config(lanes):
    cfg = _config(lanes)
    red, qnt = ReductionUnit(cfg), QuantizeUnit(cfg)
    Fragment.get(red, None)
    Fragment.get(qnt, None)
    assert len(red.i.payload.data) == len(red.i.payload.mant) == len(qnt.i.payload.data) == lanes
    assert len(qnt.o.payload.codes) == lanes
    assert red.i.payload.data[0].shape() == qnt.i.payload.data[0].shape() == signed(N.FX_BITS)
    assert red.i.payload.mant[0].shape() == signed(N.GAMMA_BITS)
    assert red.o.payload.sumsq.shape() == unsigned(N.SF_NORM_BITS)
    assert red.o.payload.n.shape().width == cfg.vlen.bit_length()
    # |t * mant| <= 2**(FX_BITS-1) * 2**(GAMMA_BITS-1), the codes' M input holds ReductionUnit's pmax
    assert red.o.payload.pmax.shape() == qnt.i.payload.m.shape() == unsigned(N.FX_BITS + N.GAMMA_BITS - 1)


def test_sumsq_width_covers_vl_max():
    """The longest ISA vector of maximal pre-shifted squares fits the SF_NORM_BITS sum."""
    assert (isa.VL_MAX * ((1 << N.SUMSQ_IN_BITS) - 1) ** 2).bit_length() <= N.SF_NORM_BITS
    assert ((-N.FX_MIN) * (1 << (N.GAMMA_BITS - 1))).bit_length() <= N.FX_BITS + N.GAMMA_BITS - 1


# -- QuantizeUnit --------------------------------------------------------------------------------
def check_quantize(lanes: int, vecs, *, idle: float, stall: float, seed: int):
    rng = random.Random(seed)
    beats, spans = [], []
    for t, g in vecs:
        mx = model_reduce(t, g)["pmax"]
        vb = _beats(rng, t, g, lanes)
        spans.append(len(vb))
        beats += [{**b, "m": mx} for b in vb]
    got = run_stream(QuantizeUnit(_config(lanes)), beats, len(beats), idle=idle, stall=stall, seed=seed)
    pos = 0
    for v, ((t, g), nb) in enumerate(zip(vecs, spans, strict=True)):
        codes = []
        for b, res in zip(beats[pos:pos + nb], got[pos:pos + nb], strict=True):
            assert (int(res.count), int(res.last)) == (b["count"], b["last"])
            lane = [int(res.codes[j]) for j in range(lanes)]
            assert lane[b["count"]:] == [0] * (lanes - b["count"]), "codes of masked lanes"
            codes += lane[:b["count"]]
        pos += nb
        want, _ = O.quantize(np.array(t, np.int64), np.array(g, np.int64), 0, rinv=O.SF_ZERO)
        assert codes == want.tolist() == model_codes(t, g), f"vector {v}: t={t} mant={g}"


@pytest.mark.parametrize("idle,stall", STALLS)
@pytest.mark.parametrize("lanes", [1, 3, 4])
def test_quantize_matches_golden(lanes, idle, stall):
    rng = random.Random(f"quantize-{lanes}")
    check_quantize(lanes, _vectors(rng, lanes, 14), idle=idle, stall=stall, seed=lanes)


@pytest.mark.parametrize("idle,stall", STALLS)
def test_quantize_ties_and_extremes(idle, stall):
    """Every tie r + 1/2 (away from zero), the all-zero vector (M = 0, codes 0), and the largest
    product |FX_MIN * -2**15| = 2**62."""
    rng = random.Random("quantize-ties")
    vecs = [_tie_vector(rng) for _ in range(3)]
    vecs.append(([0] * 7, _mant(rng, 7)))
    vecs.append(([5, -3, 9], [0, 0, 0]))                     # M = 0 from the mantissas
    vecs.append(([N.FX_MIN, N.FX_MAX, -1, 1, N.FX_MIN >> 1], [-(1 << 15), -(1 << 15), MANT_MAX, 1, 1 << 14]))
    check_quantize(4, vecs, idle=idle, stall=stall, seed=11)


@pytest.mark.parametrize("idle,stall", STALLS)
def test_quantize_code_boundaries(idle, stall):
    """Every code's lower edge |p| = ceil((2q-1) M / 254) and its neighbours |p| - 1 (code q - 1)
    and |p| + 1, for M of several sizes up to FX_MAX (mant = +-1)."""
    rng = random.Random("quantize-edges")
    vecs = []
    for mx in (254, 255, 1 << 24, rng.randrange(1 << 40), N.FX_MAX):
        t = [mx]
        for q in range(1, N.CODE_MAX + 1):
            edge = -(-(2 * q - 1) * mx // 254)
            t += [rng.choice([-1, 1]) * min(max(edge + d, 0), mx) for d in (-1, 0, 1)]
        g = [rng.choice([-1, 1]) for _ in t]
        vecs.append((t, g))
    check_quantize(3, vecs, idle=idle, stall=stall, seed=13)


def test_quantize_latency_and_rate():
    """No stalls: codes leave QUANT_LATENCY cycles after their beat, one beat per cycle."""
    lanes = 2
    rng = random.Random("quantize-rate")
    t, g = _vector(rng, 12, "typical"), _mant(rng, 12)
    beats = [{**b, "m": model_reduce(t, g)["pmax"]} for b in _beats(rng, t, g, lanes)]
    dut = QuantizeUnit(_config(lanes))
    out_cycles = []

    async def producer(ctx):
        for beat in beats:
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, beat)
            await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        ctx.set(dut.o.ready, 1)
        cycle = 0
        while len(out_cycles) < len(beats):
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            cycle += 1
            if valid:
                out_cycles.append(cycle)

    unit.simulator(dut, testbenches=[producer, consumer]).run()
    assert out_cycles == [QUANT_LATENCY + 1 + k for k in range(len(beats))]


@pytest.mark.slow
@pytest.mark.parametrize("lanes", [2, 16])
def test_reduce_and_quantize_long_sweep(lanes):
    rng = random.Random(f"sweep-{lanes}")
    vecs = _vectors(rng, lanes, 240, max_len=8 * lanes + 3)
    check_reduction(lanes, vecs, idle=0.2, stall=0.3, seed=100 + lanes)
    check_quantize(lanes, vecs, idle=0.2, stall=0.3, seed=200 + lanes)
