# amaranth: UnusedElaboratable=no
"""hw/core/sfu.py (ScalarUnit) against golden/ops.py, bit for bit.

Provenance of every expected value: `model()` below, which calls the golden SF functions of
golden/ops.py (the definition, docs/numerics.md "Scalar unit (SF)") and maps what the golden
cannot express on the unit's ports (its ZeroDivisionError, exponents outside the port width) to the
documented Status. Operands are seeded random (`random.Random(seed)`), biased toward the edges:
mantissas at both ends of [2**23, 2**24), zeros with arbitrary exponents, exponents across the full
port range (overflow/underflow), ADD exponent differences around SF_BITS, NORM integers at
rounding ties and carries. Each run drives the command stream with seeded random idle cycles and the
result stream with seeded random backpressure, and also with neither.
"""
from __future__ import annotations

import dataclasses
import random

import pytest
from amaranth.back import verilog

from golden import ops as O
from hw.core.sfu import WORST_LATENCY as LAT
from hw.core.sfu import Op, ScalarUnit, Status
from sim.tb import unit
from sim.tb.streams import Pauses
from spec.numerics import SF_BITS

LO, HI = 1 << (SF_BITS - 1), 1 << SF_BITS


@dataclasses.dataclass(frozen=True)
class Cmd:
    op: Op
    a: tuple[int, int] = (0, 0)
    b: tuple[int, int] = (0, 0)
    integer: int = 0

    def payload(self) -> dict:
        return {"op": self.op, "a": {"mantissa": self.a[0], "exponent": self.a[1]},
                "b": {"mantissa": self.b[0], "exponent": self.b[1]}, "integer": self.integer}


GOLDEN = {
    Op.MUL: lambda c: O.sf_mul(c.a, c.b),
    Op.ADD: lambda c: O.sf_add(c.a, c.b),
    Op.RECIP: lambda c: O.sf_recip(c.a),
    Op.SQRT: lambda c: O.sf_sqrt(c.a),
    Op.RSQRT: lambda c: O.sf_rsqrt(c.a),
    Op.NORM: lambda c: O.sf_norm(c.integer, c.a[1]),
    Op.SHIFT: lambda c: O.sf_shift(c.a, c.b[1]),
}


def model(c: Cmd, exponent_bits: int) -> tuple[tuple[int, int], Status]:
    """The naive model: the golden function, then the port's exponent range."""
    e_max, e_min = (1 << (exponent_bits - 1)) - 1, -(1 << (exponent_bits - 1))
    saturated = (HI - 1, e_max)
    try:
        v = GOLDEN[c.op](c)
    except ZeroDivisionError:
        return saturated, Status.DIV_ZERO
    if v[0] and v[1] > e_max:
        return saturated, Status.OVERFLOW
    if v[0] and v[1] < e_min:
        return (0, 0), Status.UNDERFLOW
    return v, Status.OK


# ---------------------------------------------------------------------------------------------
# the testbench
# ---------------------------------------------------------------------------------------------
class TB:
    """Runs commands through a ScalarUnit with a producer (random idle cycles), a consumer (random
    backpressure; the stream rules checked on `result`) and a monitor that measures each command's
    latency (cycles from the command's transfer to result.valid)."""

    def __init__(self, dut: ScalarUnit | None = None, *, stalls: bool = False, seed: int = 0):
        self.dut = dut or ScalarUnit()
        self.stalls = stalls
        # one generator for both sides: with probability 1/2 a pause of 1..5 cycles before each
        # command (cmd idle) and before each result (result backpressure)
        self.pauses = Pauses(seed, 0.5 if stalls else 0.0, burst=5)

    def run(self, cmds: list[Cmd]) -> tuple[list[tuple[tuple[int, int], Status]], list[int]]:
        dut = self.dut
        latencies = []

        async def monitor(ctx):
            cycle, start = 0, None
            async for _, _, cv, cr, rv in ctx.tick().sample(dut.cmd.valid, dut.cmd.ready, dut.result.valid):
                if start is None and cv and cr:
                    start = cycle
                elif start is not None and rv:
                    latencies.append(cycle - start)
                    start = None
                cycle += 1

        got = unit.run_stream(dut, (c.payload() for c in cmds), len(cmds), idle=self.pauses,
                              backpressure=self.pauses, i="cmd", o="result", background=[monitor])
        results = [((p.value.mantissa, p.value.exponent), Status(p.status)) for p in got]
        assert len(results) == len(cmds) == len(latencies)
        return results, latencies


def check(cmds: list[Cmd], *, stalls: bool, seed: int = 1, dut: ScalarUnit | None = None) -> list[int]:
    tb = TB(dut, stalls=stalls, seed=seed)
    got, latencies = tb.run(cmds)
    want = [model(c, tb.dut.exponent_bits) for c in cmds]
    bad = [(c, g, w) for c, g, w in zip(cmds, got, want, strict=True) if g != w]
    assert not bad, f"{len(bad)} mismatches, first: {bad[0]}"
    return latencies


# ---------------------------------------------------------------------------------------------
# operands
# ---------------------------------------------------------------------------------------------
E_MIN, E_MAX = -(1 << 11), (1 << 11) - 1
EDGE_MANTISSAS = (LO, LO + 1, LO + 2, HI - 1, HI - 2, (LO + HI) // 2, 3 << (SF_BITS - 2))


def rand_mantissa(rng: random.Random) -> int:
    return rng.choice(EDGE_MANTISSAS) if rng.random() < 0.2 else rng.randrange(LO, HI)


def rand_exponent(rng: random.Random) -> int:
    return rng.randint(E_MIN, E_MAX) if rng.random() < 0.25 else rng.randint(-200, 200)


def rand_sf(rng: random.Random, zeros: float = 0.06) -> tuple[int, int]:
    if rng.random() < zeros:    # zero; the golden keys zero on the mantissa alone
        return (0, rng.choice((0, rand_exponent(rng))))
    return (rand_mantissa(rng), rand_exponent(rng))


def rand_integer(rng: random.Random) -> int:
    bits = rng.randint(0, 64)
    kind = rng.random()
    if bits > SF_BITS and kind < 0.15:      # exactly half an ulp: rounds up
        return (1 << (bits - 1)) | (1 << (bits - 1 - SF_BITS)) | rng.choice((0, 1 << (SF_BITS + 1)))
    if kind < 0.3:                          # all ones: the rounding carries into a new bit
        return (1 << bits) - 1
    return rng.getrandbits(bits)


def gen(op: Op, rng: random.Random) -> Cmd:
    a, b = rand_sf(rng), rand_sf(rng)
    if op is Op.ADD and a[0] and b[0] and rng.random() < 0.7:
        # exponent differences around SF_BITS (the "return the larger" boundary) and small ones
        d = rng.choice((SF_BITS - 1, SF_BITS, SF_BITS + 1, SF_BITS + 2, rng.randint(-SF_BITS - 2, SF_BITS + 2)))
        d = d if rng.random() < 0.5 else -d
        e = max(E_MIN + abs(d), min(E_MAX - abs(d), a[1]))
        a, b = (a[0], e), (b[0], e - d)
    if op is Op.NORM:
        return Cmd(op, a=(0, rand_exponent(rng)), integer=rand_integer(rng))
    return Cmd(op, a, b)


def cases(op: Op, n: int, seed: int) -> list[Cmd]:
    rng = random.Random(f"{op.name}-{seed}")
    return [gen(op, rng) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------------
N_DEFAULT = 150          # per op and stall setting: 300 per op in the default run
N_SLOW = 3000

#: the latencies stated in ScalarUnit's docstring (default widths) and an input that takes each
WORST_LATENCY = {
    Op.MUL: (LAT[Op.MUL], Cmd(Op.MUL, (HI - 1, 0), (HI - 1, 0))),          # 48-bit product
    Op.ADD: (LAT[Op.ADD], Cmd(Op.ADD, (LO, 24), (LO, 0))),                  # d = 24, 48-bit sum
    Op.RECIP: (LAT[Op.RECIP], Cmd(Op.RECIP, (LO, 0))),                      # quotient 2**25
    Op.SQRT: (LAT[Op.SQRT], Cmd(Op.SQRT, (LO, 1))),                         # odd exponent, 25-bit root
    Op.RSQRT: (LAT[Op.RSQRT], Cmd(Op.RSQRT, (LO, 1))),                      # both of the above
    Op.NORM: (LAT[Op.NORM], Cmd(Op.NORM, (0, 0), integer=(1 << 64) - 1)),  # 64-bit integer
    Op.SHIFT: (LAT[Op.SHIFT], Cmd(Op.SHIFT, (LO, 0), (LO, 5))),
}


@pytest.mark.parametrize("stalls", [False, True], ids=["no_stalls", "stalls"])
@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_op_matches_golden(op, stalls):
    latencies = check(cases(op, N_DEFAULT, seed=int(stalls)), stalls=stalls)
    assert max(latencies) <= WORST_LATENCY[op][0]


@pytest.mark.slow
@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_op_matches_golden_many(op):
    latencies = check(cases(op, N_SLOW, seed=100), stalls=True, seed=100)
    assert max(latencies) <= WORST_LATENCY[op][0]


@pytest.mark.parametrize("stalls", [False, True], ids=["no_stalls", "stalls"])
def test_mixed_ops_in_order(stalls):
    rng = random.Random(7)
    cmds = [gen(rng.choice(list(Op)), rng) for _ in range(150)]
    check(cmds, stalls=stalls, seed=7)


def test_zero_operands():
    z, x = (0, 0), (12345678, -3)
    cmds = [Cmd(Op.MUL, z, x), Cmd(Op.MUL, x, (0, 17)), Cmd(Op.ADD, (0, 5), x), Cmd(Op.ADD, x, (0, 5)),
            Cmd(Op.ADD, (0, 5), (0, -9)), Cmd(Op.SQRT, (0, 3)), Cmd(Op.RECIP, (0, 3)), Cmd(Op.RSQRT, z),
            Cmd(Op.NORM, (0, 9), integer=0), Cmd(Op.SHIFT, (0, 4), (LO, 7))]
    check(cmds, stalls=False)
    got, _ = TB().run(cmds)
    assert got[4] == ((0, -9), Status.OK)           # sf_add returns the other operand unchanged
    assert got[6] == ((HI - 1, E_MAX), Status.DIV_ZERO)


def test_exponent_range_flags():
    cmds = [Cmd(Op.MUL, (HI - 1, E_MAX), (HI - 1, E_MAX)), Cmd(Op.MUL, (LO, E_MIN), (LO, E_MIN)),
            Cmd(Op.RECIP, (LO, E_MAX)), Cmd(Op.SHIFT, (LO, E_MAX), (LO, 1)), Cmd(Op.NORM, (0, E_MAX), integer=1 << 63),
            Cmd(Op.MUL, (LO, E_MAX - 23), (LO, 0))]
    got, _ = TB().run(cmds)
    assert [s for _, s in got] == [Status.OVERFLOW, Status.UNDERFLOW, Status.UNDERFLOW, Status.OVERFLOW,
                                   Status.OVERFLOW, Status.OK]
    check(cmds, stalls=True)


@pytest.mark.parametrize("exponent_bits", [8, 16])
def test_other_exponent_widths(exponent_bits):
    dut = ScalarUnit(exponent_bits=exponent_bits)
    lim = 1 << (exponent_bits - 1)
    rng = random.Random(exponent_bits)
    cmds = []
    for _ in range(100):
        c = gen(rng.choice(list(Op)), rng)
        clamp = lambda sf: (sf[0], max(-lim, min(lim - 1, sf[1])))
        cmds.append(dataclasses.replace(c, a=clamp(c.a), b=clamp(c.b)))
    check(cmds, stalls=True, dut=dut)


def test_worst_case_latency():
    cmds = [c for _, c in WORST_LATENCY.values()]
    latencies = check(cmds, stalls=False)
    assert latencies == [n for n, _ in WORST_LATENCY.values()]


def test_converts_to_verilog():
    text = verilog.convert(ScalarUnit(), name="sfu")
    assert "module sfu" in text


@pytest.mark.parametrize("kwargs, message", [
    ({"exponent_bits": 7}, "Exponent width must be an integer between 8 and 32, not 7"),
    ({"exponent_bits": 33}, "Exponent width must be an integer between 8 and 32, not 33"),
    ({"exponent_bits": "12"}, "Exponent width must be an integer between 8 and 32, not '12'"),
    ({"exponent_bits": True}, "Exponent width must be an integer between 8 and 32, not True"),
    ({"norm_bits": 23}, "NORM operand width must be an integer between 24 and 128, not 23"),
    ({"norm_bits": 129}, "NORM operand width must be an integer between 24 and 128, not 129"),
    ({"norm_bits": 64.0}, "NORM operand width must be an integer between 24 and 128, not 64.0"),
])
def test_parameter_validation(kwargs, message):
    with pytest.raises(TypeError, match=f"^{message}$"):
        ScalarUnit(**kwargs)


def test_signature():
    dut = ScalarUnit(exponent_bits=10, norm_bits=40)
    assert dut.cmd.payload.shape().size == 3 + 2 * (SF_BITS + 10) + 40
    assert dut.result.payload.shape().size == SF_BITS + 10 + 2
    assert not dut.cmd.signature.always_ready and not dut.result.signature.always_valid
