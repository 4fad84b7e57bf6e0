"""hw.core.vpu: every pipelined vector op against the golden integer ops, under random stalls.

Provenance of the vectors: the expected values are `golden.ops` (the numpy definition of
docs/numerics.md) applied to seeded random operands drawn per op from magnitude classes (zero,
+-1, small, typical, large, the 48-bit limits and their neighbours, exact rounding ties, the
sigmoid table's grid points, midpoints and clamp edges). Nothing here is a stored vector.
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import Fragment

from golden import ops as O
from hw.core.vpu import (
    LATENCY,
    PIPELINED_MNEMONICS,
    SHORT_LATENCY,
    SHORT_MNEMONICS,
    VectorDivider,
    VectorOp,
    VectorUnit,
    latency,
)
from sim.tb import unit
from sim.tb.streams import Pauses
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

SIG_FRAC = N.FX_FRAC - N.SIG_STEP_LOG2
SIG_LIMIT = N.SIG_RANGE << N.FX_FRAC


def _config(lanes: int) -> AccelConfig:
    return unit.config("ice40", vector_lanes=lanes)


# -- the naive model: one golden call per op -----------------------------------------------------
def golden(op: VectorOp | str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The ISA semantics of `op` (a VectorOp or a mnemonic, spec.isa) evaluated with golden.ops."""
    match getattr(op, "name", op):
        case "DIV":
            return O.fx_div(a, b)
        case "ADD":
            return O.fx_add(a, b)
        case "SUB":
            return O.sat_fx(a - b)
        case "MUL":
            return O.fx_mul(a, b)
        case "GMUL":
            return O.gate_mul(a, b)
        case "ONEM":
            return O.sat_fx(N.GATE_ONE - a)     # saturated to FX, as golden.machine
        case "MOVV":
            return a.copy()
        case "EXP":
            return O.fx_exp(a)
        case "SIG":
            return O.sigmoid(a)
        case "SILU":
            return O.silu(a)
    raise AssertionError(op)


# -- operands ------------------------------------------------------------------------------------
def _fx(rng: random.Random) -> int:
    """One FX value from a random magnitude class."""
    cls = rng.randrange(9)
    if cls == 0:
        return rng.choice([0, 1, -1, N.FX_MAX, N.FX_MIN, N.FX_MAX - 1, N.FX_MIN + 1])
    if cls == 1:
        return rng.randint(-(1 << 8), 1 << 8)                                # a few ulps
    if cls in (2, 3):
        return rng.randint(-(1 << (N.FX_FRAC + 4)), 1 << (N.FX_FRAC + 4))   # |v| < 16: typical
    if cls == 4:
        return rng.randint(-(1 << (N.FX_FRAC + 12)), 1 << (N.FX_FRAC + 12))
    if cls == 5:
        return rng.randint(N.FX_MIN, N.FX_MAX)                               # anywhere
    if cls == 6:
        return rng.choice([N.FX_MAX - rng.randrange(1 << 20), N.FX_MIN + rng.randrange(1 << 20)])
    if cls == 7:
        return rng.choice([-1, 1]) * (1 << rng.randrange(N.FX_BITS - 1))       # powers of two
    return rng.choice([-1, 1]) * rng.randrange(1 << rng.randrange(1, N.FX_BITS - 1))


def _gate(rng: random.Random) -> int:
    return rng.choice([0, N.GATE_ONE, 1, N.GATE_ONE - 1, N.GATE_ONE >> 1, rng.randint(0, N.GATE_ONE)])


def _sig_input(rng: random.Random) -> int:
    """Sigmoid inputs: table grid points, interpolation ties, clamp edges, and any FX."""
    cls = rng.randrange(5)
    sign = rng.choice([-1, 1])
    if cls == 0:
        return sign * (rng.randint(0, N.SIG_ENTRIES) << SIG_FRAC)
    if cls == 1:   # fr = 2**(SIG_FRAC-1): a rounding tie wherever T[i+1] - T[i] is odd
        return sign * ((rng.randint(0, N.SIG_ENTRIES - 1) << SIG_FRAC) | (1 << (SIG_FRAC - 1)))
    if cls == 2:
        return sign * (SIG_LIMIT + rng.randint(-2, 2))
    if cls == 3:
        return rng.randint(-SIG_LIMIT - (1 << 20), SIG_LIMIT + (1 << 20))
    return _fx(rng)


def _exp_input(rng: random.Random) -> int:
    """exp inputs: mostly where the result neither saturates (z > ~15.9) nor flushes to 0 (z < ~-17)."""
    cls = rng.randrange(4)
    if cls < 2:
        return rng.randint(-(20 << N.FX_FRAC), 17 << N.FX_FRAC)
    if cls == 2:
        return rng.randint(-(1 << N.FX_FRAC), 1 << N.FX_FRAC)
    return _fx(rng)


def _tie_pair(rng: random.Random, frac: int) -> tuple[int, int]:
    """a * b == odd * 2**(frac-1) exactly: the rounding lands on a tie (either sign)."""
    a = rng.choice([-1, 1]) * (2 * rng.randrange(1 << 20) + 1)
    return a, rng.choice([-1, 1]) * (1 << (frac - 1))


def operands(op: VectorOp, rng: random.Random, lanes: int) -> tuple[list[int], list[int]]:
    a, b = [], []
    for _ in range(lanes):
        if op.name in ("MUL", "GMUL") and rng.random() < 0.2:
            x, y = _tie_pair(rng, N.FX_FRAC if op.name == "MUL" else N.GATE_FRAC)
            if op.name == "GMUL":
                y = abs(y)
            x, y = (x, y) if rng.random() < 0.5 or op.name == "GMUL" else (y, x)
        elif op.name == "EXP":
            x, y = _exp_input(rng), _fx(rng)
        elif op.name in ("SIG", "SILU"):
            x, y = _sig_input(rng), _fx(rng)
        elif op.name == "GMUL":
            x, y = _fx(rng), (_gate(rng) if rng.random() < 0.7 else _fx(rng))
        elif op.name == "ONEM":
            x = _gate(rng) if rng.random() < 0.5 else max(_fx(rng), N.GATE_ONE - N.FX_MAX)
            y = _fx(rng)
        else:
            x, y = _fx(rng), _fx(rng)
        a.append(x)
        b.append(y)
    return a, b


def mixed_requests(rng: random.Random, lanes: int, n: int) -> list[tuple[VectorOp, list[int], list[int]]]:
    """n requests of random ops."""
    ops = list(VectorOp)
    requests = []
    for _ in range(n):
        op = rng.choice(ops)
        requests.append((op, *operands(op, rng, lanes)))
    return requests


# -- the testbench -------------------------------------------------------------------------------
class TB:
    """A VectorUnit with a pause generator on each side and the stream rules checked on `o`.

    `idle` is the probability of an idle cycle before each request, `stall` the probability of
    holding `o.ready` low on a cycle; both draw from one seeded generator per side.
    """

    def __init__(self, lanes: int, *, idle: float = 0.0, stall: float = 0.0, seed: int = 0,
                 divider: bool = False):
        # the divider's requests carry no op: the tuples' first item is then only for the model
        self.dut = (VectorDivider if divider else VectorUnit)(_config(lanes))
        self.fields = ("a", "b") if divider else ("op", "a", "b")
        self.lanes = lanes
        self.idle, self.stall, self.seed = idle, stall, seed

    def run(self, requests: list[tuple[VectorOp, list[int], list[int]]], *, drain: int = 2 * LATENCY + 4):
        # the stream rules on o (valid and payload held until the transfer) checked on every cycle;
        # then nothing more may come out: no duplicated or invented results
        payloads = ({k: v for k, v in zip(("op", "a", "b"), (op, a, b), strict=True) if k in self.fields}
                    for op, a, b in requests)
        got = unit.run_stream(self.dut, payloads, len(requests), idle=Pauses(self.seed * 2 + 1, self.idle),
                              backpressure=Pauses(self.seed * 2 + 2, self.stall), drain=drain)
        return [[p.data[j] for j in range(self.lanes)] for p in got]


def check(requests, results) -> None:
    assert len(results) == len(requests), "lost or duplicated results"
    for n, ((op, a, b), got) in enumerate(zip(requests, results, strict=True)):
        want = golden(op, np.array(a, np.int64), np.array(b, np.int64)).tolist()
        assert got == want, f"request {n}: {op} a={a} b={b}: got {got}, want {want}"


STALLS = [pytest.param(0.0, 0.0, id="nostall"), pytest.param(0.3, 0.4, id="stall")]


# -- per-op tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("idle,stall", STALLS)
@pytest.mark.parametrize("mnemonic", PIPELINED_MNEMONICS)
def test_op_matches_golden(mnemonic, idle, stall):
    op = VectorOp[mnemonic]
    lanes = 3
    rng = random.Random(f"vpu-{mnemonic}")
    requests = [(op, *operands(op, rng, lanes)) for _ in range(48)]
    check(requests, TB(lanes, idle=idle, stall=stall, seed=sum(map(ord, mnemonic))).run(requests))


@pytest.mark.parametrize("lanes", [1, 4])
def test_mixed_ops_in_order(lanes):
    """Random ops back to back: each result belongs to its own request, in order."""
    requests = mixed_requests(random.Random(f"vpu-mixed-{lanes}"), lanes, 96)
    check(requests, TB(lanes, idle=0.2, stall=0.5, seed=lanes).run(requests))


def _sigmoid_intervals(intervals):
    """The table intervals `intervals` at a tie midpoint, both signs (odd symmetry), and every clamp
    edge, as SIG requests of 4 lanes."""
    lanes = 4
    zs = []
    for k in intervals:
        z = (k << SIG_FRAC) | (1 << (SIG_FRAC - 1))
        zs += [z, -z]
    zs += [SIG_LIMIT - 1, SIG_LIMIT, SIG_LIMIT + 1, -SIG_LIMIT, N.FX_MAX, N.FX_MIN, 0]
    zs += [0] * (-len(zs) % lanes)
    requests = [(VectorOp.SIG, zs[i:i + lanes], [0] * lanes) for i in range(0, len(zs), lanes)]
    check(requests, TB(lanes).run(requests))


def test_sigmoid_table_intervals_sampled():
    """The first and last 16 table intervals and every 37th between (every block-RAM
    address bit both ways), both signs, the clamp edges: the default run's share of the sweep."""
    _sigmoid_intervals(sorted({*range(16), *range(N.SIG_ENTRIES - 16, N.SIG_ENTRIES),
                               *range(0, N.SIG_ENTRIES, 37)}))


@pytest.mark.slow
def test_sigmoid_every_table_interval():
    """Every table interval (4096 rows, about 10 minutes in the simulator on a busy 2-core machine)."""
    _sigmoid_intervals(range(N.SIG_ENTRIES))


def test_exp_every_table_interval_and_shift():
    """Every 2**f table interval (at its interpolation midpoint) and every exponent k that is
    neither saturated nor flushed, at y's exact grid, plus the saturation and underflow edges."""
    lanes = 4
    # z such that y = mul_round(z, L2E, L2E_FRAC) hits the wanted value: search near y / log2(e)
    zs = []
    for k in range(-28, 26):
        for i in range(0, N.EXP_ENTRIES, 37):
            y = (k << N.FX_FRAC) | (i << (N.FX_FRAC - N.EXP_STEP_LOG2)) | (1 << (N.FX_FRAC - N.EXP_STEP_LOG2 - 1))
            zs.append(int(y * (1 << N.EXP_L2E_FRAC) // N.EXP_L2E))
    zs += [0, 1, -1, N.FX_MAX, N.FX_MIN, -(1 << (N.FX_FRAC + 6)), 1 << (N.FX_FRAC + 6)]
    zs += [0] * (-len(zs) % lanes)
    requests = [(VectorOp.EXP, zs[i:i + lanes], [0] * lanes) for i in range(0, len(zs), lanes)]
    check(requests, TB(lanes).run(requests))


def test_onem_saturates_outside_golden_range():
    """GATE_ONE - a leaves FX for a < FX_MIN + GATE_ONE; the hardware saturates to FX_MAX there
    (golden.machine keeps the unsaturated int64, which no 48-bit register could hold)."""
    a = [N.FX_MIN, N.FX_MIN + N.GATE_ONE - 1, N.FX_MIN + N.GATE_ONE]
    (got,) = TB(3).run([(VectorOp.ONEM, a, [0, 0, 0])])
    assert got == [N.FX_MAX, N.FX_MAX, N.FX_MAX]


# -- DIV (iterative) -----------------------------------------------------------------------------
def _div_operands(rng: random.Random, lanes: int) -> tuple[list[int], list[int]]:
    a, b = [], []
    for _ in range(lanes):
        cls = rng.randrange(6)
        if cls == 0:     # division by zero, 0/0 and zero dividends
            x, y = rng.choice([0, 1, -1, N.FX_MAX, N.FX_MIN, _fx(rng)]), rng.choice([0, 0, _fx(rng)])
        elif cls == 1:   # exact ties: |a| * 2**FX_FRAC / |b| = odd / 2
            sh = rng.randrange(N.FX_BITS - N.FX_FRAC - 2)
            x = rng.choice([-1, 1]) * ((2 * rng.randrange(1 << 16) + 1) << sh)
            y = rng.choice([-1, 1]) << (N.FX_FRAC + 1 + sh)
        elif cls == 2:   # quotients around 2**(FX_BITS-1), where FX_MAX and FX_MIN saturate
            y = rng.choice([-1, 1]) * rng.randint(1, 1 << 8)
            x = rng.choice([-1, 1]) * ((abs(y) << (N.FX_BITS - 1 - N.FX_FRAC)) + rng.randint(-2, 2))
        else:
            x, y = _fx(rng), _fx(rng) or 1
        a.append(max(min(x, N.FX_MAX), N.FX_MIN))
        b.append(max(min(y, N.FX_MAX), N.FX_MIN))
    return a, b


@pytest.mark.parametrize("idle,stall", STALLS)
@pytest.mark.parametrize("lanes", [1, 3])
def test_div_matches_golden(lanes, idle, stall):
    rng = random.Random(f"vpu-div-{lanes}")
    requests = [("DIV", *_div_operands(rng, lanes)) for _ in range(24)]
    got = TB(lanes, idle=idle, stall=stall, seed=lanes, divider=True).run(requests)
    check(requests, got)


def test_div_ties_round_away_from_zero():
    """Hand-picked: 1.5 ulp / 1 and its signs, x/0, 0/0, the largest quotients."""
    ulp = 1
    one = 1 << N.FX_FRAC
    a = [3 * ulp, -3 * ulp, 3 * ulp, -3 * ulp, 5, -5, 0, N.FX_MIN, N.FX_MIN, N.FX_MAX, 1, N.FX_MIN]
    b = [2 * one, 2 * one, -2 * one, -2 * one, 0, 0, 0, -one, one, 1, N.FX_MIN, -1]
    requests = [("DIV", a[i:i + 4], b[i:i + 4]) for i in range(0, len(a), 4)]
    check(requests, TB(4, divider=True).run(requests))


def test_div_cycles():
    """DIV_CYCLES from acceptance to o.valid, with o always ready."""
    dut = VectorDivider(_config(1))
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.payload, {"a": [7 << N.FX_FRAC], "b": [2 << N.FX_FRAC]})
        ctx.set(dut.i.valid, 1)
        await ctx.tick().until(dut.i.ready)
        ctx.set(dut.i.valid, 0)
        for cycle in range(1, 2 * VectorDivider.DIV_CYCLES):
            _, _, valid, out = await ctx.tick().sample(dut.o.valid, dut.o.payload.data[0])
            if valid:
                seen.append((cycle, out))

    unit.simulator(dut, testbenches=[bench]).run()
    assert seen == [(VectorDivider.DIV_CYCLES, 7 << (N.FX_FRAC - 1))]


# -- timing --------------------------------------------------------------------------------------
# MOVV leaves from the short exit, MUL by 1.0 from the end of the pipeline: both give a
IDENTITY = [pytest.param(VectorOp.MOVV, 0, id="short"), pytest.param(VectorOp.MUL, 1 << N.FX_FRAC, id="long")]


def test_latencies():
    assert SHORT_LATENCY < LATENCY
    assert {mn: latency(mn) for mn in PIPELINED_MNEMONICS} == {
        mn: SHORT_LATENCY if mn in SHORT_MNEMONICS else LATENCY for mn in PIPELINED_MNEMONICS}
    assert set(SHORT_MNEMONICS) == {"ADD", "SUB", "ONEM", "MOVV"}
    assert latency(VectorOp.ADD) == SHORT_LATENCY and latency(VectorOp.EXP) == LATENCY


@pytest.mark.parametrize("op,b", IDENTITY)
def test_latency_and_full_throughput(op, b):
    """With no stalls a result leaves latency(op) cycles after its request, one vector per cycle."""
    dut = VectorUnit(_config(1))
    count = 16
    accepted, emitted = [], []
    lat = latency(op)

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for cycle in range(count + lat + 2):
            ctx.set(dut.i.valid, cycle < count)
            ctx.set(dut.i.payload, {"op": op, "a": [cycle], "b": [b]})
            _, _, i_fire, o_fire, out = await ctx.tick().sample(
                dut.i.valid & dut.i.ready, dut.o.valid & dut.o.ready, dut.o.payload.data[0])
            if i_fire:
                accepted.append(cycle)
            if o_fire:
                emitted.append((cycle, out))

    unit.simulator(dut, testbenches=[bench]).run()
    assert accepted == list(range(count))
    assert emitted == [(c + lat, c) for c in range(count)]


@pytest.mark.parametrize("op,b", IDENTITY)
def test_stalled_output_fills_bubbles(op, b):
    """With o stalled the unit still accepts latency(op) requests (the empty stages up to its exit
    fill), then stops."""
    dut = VectorUnit(_config(1))
    taken = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        for cycle in range(2 * LATENCY):
            ctx.set(dut.i.payload, {"op": op, "a": [cycle], "b": [b]})
            _, _, fire = await ctx.tick().sample(dut.i.ready)
            if fire:
                taken.append(cycle)

    unit.simulator(dut, testbenches=[bench]).run()
    assert taken == list(range(latency(op)))


def test_exit_change_waits_for_empty_pipeline():
    """A request for the other exit is taken only once the results in flight have left, so a short
    op never overtakes a long one (and the other way round): results in request order."""
    dut = VectorUnit(_config(1))
    one = 1 << N.FX_FRAC
    reqs = [(VectorOp.MUL, 5, one), (VectorOp.MOVV, 6, 0), (VectorOp.MOVV, 7, 0), (VectorOp.MUL, 8, one)]
    accepted, emitted = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        k = 0
        for cycle in range(4 * LATENCY):
            if k < len(reqs):
                op, a, b = reqs[k]
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"op": op, "a": [a], "b": [b]})
            else:
                ctx.set(dut.i.valid, 0)
            _, _, i_fire, o_fire, out = await ctx.tick().sample(
                dut.i.valid & dut.i.ready, dut.o.valid & dut.o.ready, dut.o.payload.data[0])
            if i_fire:
                accepted.append(cycle)
                k += 1
            if o_fire:
                emitted.append((cycle, out))

    unit.simulator(dut, testbenches=[bench]).run()
    # MUL at 0 leaves at LATENCY; the MOVVs wait until then (taken from LATENCY + 1), the second
    # MUL until the MOVVs have left
    t1 = LATENCY + 1
    assert accepted == [0, t1, t1 + 1, t1 + 1 + SHORT_LATENCY + 1]
    assert emitted == [(LATENCY, 5), (t1 + SHORT_LATENCY, 6), (t1 + 1 + SHORT_LATENCY, 7),
                       (t1 + 1 + SHORT_LATENCY + 1 + LATENCY, 8)]


# -- interface -----------------------------------------------------------------------------------
def test_vector_op_is_the_isa_opcode():
    for op in VectorOp:
        assert op.value == isa.BY_MNEMONIC[op.name].code
    assert VectorOp.as_shape().width == isa.FIELDS["opcode"][1]
    vector = {o.mnemonic for o in isa.OPS if o.group == "vector"}
    # DIV (iterative) is the only vector-group op this unit does not run
    assert vector - set(PIPELINED_MNEMONICS) == {"DIV"}


@pytest.mark.parametrize("lanes", [1, 4])
def test_signature_widths_come_from_config(lanes):
    dut = VectorUnit(_config(lanes))
    Fragment.get(dut, None)
    assert dut.lanes == lanes
    assert len(dut.i.payload.a) == len(dut.i.payload.b) == len(dut.o.payload.data) == lanes
    assert dut.i.payload.a[0].shape().width == N.FX_BITS and dut.i.payload.a[0].shape().signed
    assert dut.o.payload.data[0].shape().width == N.FX_BITS


def test_config_must_be_an_accel_config():
    unit.rejects(TypeError, r"^config must be an AccelConfig, not 4$", VectorUnit, 4)


def test_config_fx_bits_must_match_numerics():
    @dataclasses.dataclass(frozen=True)
    class Wide(AccelConfig):
        @property
        def fx_bits(self) -> int:
            return 64

    cfg = Wide(**dataclasses.asdict(_config(1)))
    unit.rejects(ValueError, r"^config.fx_bits must be the numerics' FX_BITS 48, got 64$", VectorUnit, cfg)


# -- long sweeps ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lanes", [2, 4])
def test_mixed_ops_long(lanes, seed):
    requests = mixed_requests(random.Random(f"vpu-long-{lanes}-{seed}"), lanes, 1000)
    check(requests, TB(lanes, idle=0.3, stall=0.3, seed=seed).run(requests))
