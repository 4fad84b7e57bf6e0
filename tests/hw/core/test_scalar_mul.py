"""hw.core.scalar_mul: MULS, FMUL and LDE's address on the sequencer's one 17x17 multiplier.

Against the golden definitions: MULS the low 64 bits of the signed product (golden.machine wraps),
FMUL golden.ops.sf_mul of canonical SF values, LDE base + 2 * A * VL modulo 2**64; random and
extreme operands, back to back and with idle cycles between, `ready` exactly CYCLES[op] cycles after
`start` and held until `ack`.
"""
from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from golden import ops as O
from hw.core.scalar_mul import CYCLES, MulOp, ScalarMultiplier
from spec import numerics as N

M64 = (1 << 64) - 1


def _s64(v: int) -> int:
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def _sf(rng: random.Random) -> tuple[int, int]:
    if rng.random() < 0.1:
        return 0, rng.randint(-20, 20) if rng.random() < 0.5 else 0
    lo, hi = 1 << (N.SF_BITS - 1), (1 << N.SF_BITS) - 1
    mant = rng.choice([lo, hi, rng.randint(lo, hi)])
    return mant, rng.randint(-300, 300)


def _cases(rng: random.Random, n: int) -> list[tuple]:
    ext = [-(1 << 63), (1 << 63) - 1, 0, 1, -1, 1 << 17, (1 << 51) - 1]
    out = []
    for x in ext:
        for y in ext:
            out.append((MulOp.MULS, x, y, 0, (0, 0), (0, 0)))
    for _ in range(n):
        kind = rng.choice(list(MulOp))
        if kind is MulOp.MULS:
            out.append((kind, _s64(rng.getrandbits(64)), _s64(rng.getrandbits(rng.randint(1, 64))), 0, (0, 0), (0, 0)))
        elif kind is MulOp.LDE:
            out.append((kind, _s64(rng.getrandbits(rng.randint(1, 64))), rng.randint(1, 1 << 16),
                        _s64(rng.getrandbits(64)), (0, 0), (0, 0)))
        else:
            out.append((kind, 0, 0, 0, _sf(rng), _sf(rng)))
    return out


def _want(op, x, y, base, fb, fc):
    if op is MulOp.MULS:
        return _s64(x * y)
    if op is MulOp.LDE:
        return _s64(base + 2 * x * y)
    return O.sf_mul(fb, fc)


@pytest.mark.parametrize("idle", [0.0, 0.5])
def test_results_and_latency(idle: float):
    rng = random.Random(f"smul{idle}")
    dut = ScalarMultiplier()
    cases = _cases(rng, 300)
    failures = []

    async def bench(ctx):
        for op, x, y, base, fb, fc in cases:
            if op is MulOp.FMUL:
                x, y = fb[0], fc[0]
            ctx.set(dut.op, op)
            ctx.set(dut.x, x)
            ctx.set(dut.y, y)
            ctx.set(dut.base, base)
            ctx.set(dut.fb, {"mantissa": fb[0], "exponent": fb[1]})
            ctx.set(dut.fc, {"mantissa": fc[0], "exponent": fc[1]})
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.x, rng.getrandbits(63))       # scribble: the operands were sampled at start
            ctx.set(dut.base, rng.getrandbits(63))
            n = 1
            while not ctx.get(dut.ready):
                assert ctx.get(dut.busy)
                await ctx.tick()
                n += 1
            if n != CYCLES[op]:
                failures.append(f"{op}: ready after {n} cycles, CYCLES says {CYCLES[op]}")
            while rng.random() < idle:            # ready holds until ack
                await ctx.tick()
                assert ctx.get(dut.ready)
            if op is MulOp.FMUL:
                got = (ctx.get(dut.f_result.mantissa), ctx.get(dut.f_result.exponent))
                want = _want(op, x, y, base, fb, fc)
                want = (want[0], want[1]) if want[0] else (0, 0)
            else:
                got, want = ctx.get(dut.result), _want(op, x, y, base, fb, fc)
            if got != want:
                failures.append(f"{op} {x} {y} {base} {fb} {fc}: got {got}, want {want}")
            ctx.set(dut.ack, 1)
            await ctx.tick()
            ctx.set(dut.ack, 0)
            assert not ctx.get(dut.ready) and not ctx.get(dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert not failures, "\n".join(failures[:10])
    assert CYCLES[MulOp.MULS] <= 16 and CYCLES[MulOp.FMUL] <= 10 and CYCLES[MulOp.LDE] <= 12
