"""hw.core.arith: wide products as registered 18x18 partial products and one adder level per stage.

Checked in Amaranth simulation against Python integers, for the shapes the units use (FX x FX,
FX x gamma mantissa, FX x SF mantissa, the sequencer's 64x64), with random and extreme operands
(each shape's minimum and maximum), through a pipeline whose stages all advance on one random
enable; and structurally: every product in the netlist is at most 18x18 and the stage count is
`product_stages`.
"""
from __future__ import annotations

import random
import re

import pytest
from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.core.arith import LIMB, pipelined_product, product_stages, split_limbs

SHAPES = [                             # a, b, the low bits kept (None: all), stages
    (signed(48), signed(48), None, 4),       # FX x FX: 9 partial products, 5 chains -> 3 adder levels
    (signed(48), signed(16), None, 3),       # FX x gamma mantissa
    (signed(48), unsigned(24), None, 3),     # FX x SF mantissa
    (unsigned(64), unsigned(64), None, 4),
    (signed(64), signed(64), 64, 4),         # the sequencer's MULS: the low 64 bits, 10 products
    (unsigned(24), unsigned(24), None, 3),   # SF x SF mantissas
    (signed(18), signed(18), None, 1),       # one DSP
    (unsigned(17), signed(10), None, 1),
]


def _extremes(s: Shape) -> list[int]:
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    return [lo, hi, 0, 1, -1 if s.signed else 2, lo + 1, hi - 1]


@pytest.mark.parametrize(("sa", "sb", "keep", "stages"), SHAPES, ids=[f"{a}x{b}-{k}" for a, b, k, _ in SHAPES])
def test_product_is_exact_through_a_stalling_pipeline(sa, sb, keep, stages):
    assert product_stages(sa, sb, keep) == stages
    m = Module()
    a, b = Signal(sa), Signal(sb)
    adv = Signal()

    def reg(k, name, shape, value):
        r = Signal(shape, name=f"{name}_k{k}")
        with m.If(adv):
            m.d.sync += r.eq(value)
        return r

    full = sa.width + sb.width if keep is None else keep
    p = Signal(signed(full) if (sa.signed or sb.signed) else unsigned(full))
    m.d.comb += p.eq(pipelined_product(a, b, reg, 1, "x", keep))

    rng = random.Random(f"{sa}{sb}")

    def rand(s: Shape) -> int:
        return rng.randint(-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else rng.getrandbits(s.width)

    pairs = [(x, y) for x in _extremes(sa) for y in _extremes(sb)] + [(rand(sa), rand(sb)) for _ in range(150)]
    got = []

    async def bench(ctx):
        inflight = []                 # operands in the pipeline, oldest first
        for x, y in pairs:
            while True:
                go = rng.random() < 0.7
                ctx.set(a, x)
                ctx.set(b, y)
                ctx.set(adv, go)
                await ctx.tick()
                if go:
                    inflight.append((x, y))
                    if len(inflight) > stages:
                        inflight.pop(0)
                    if len(inflight) == stages:
                        got.append((inflight[0], ctx.get(p)))
                    break

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(pairs) - stages + 1
    for (x, y), v in got:
        want = x * y if keep is None else ((x * y + (1 << (keep - 1))) % (1 << keep)) - (1 << (keep - 1))
        assert v == want, (x, y, v)


def test_limbs_fit_an_18x18_multiplier():
    for width in range(1, 80):
        for sgn in (False, True):
            limbs = split_limbs(width, sgn)
            assert sum(w for _, w, _ in limbs) == width
            assert all(w <= LIMB + (1 if g else 0) and (not g or o + w == width) for o, w, g in limbs)


def test_every_product_in_the_netlist_is_dsp_sized():
    from amaranth.back import rtlil

    m = Module()
    a, b = Signal(signed(48)), Signal(signed(48))
    p = Signal(signed(96))

    def reg(k, name, shape, value):
        r = Signal(shape, name=f"{name}_k{k}")
        m.d.sync += r.eq(value)
        return r

    m.d.comb += p.eq(pipelined_product(a, b, reg, 1, "x"))
    text = rtlil.convert(m, ports=[a, b, p])
    widths = [(int(x), int(y)) for x, y in
              re.findall(r"cell \$mul .*?A_WIDTH (\d+).*?B_WIDTH (\d+)", text.replace("\n", " "))]
    assert len(widths) == 9 and all(x <= 18 and y <= 18 for x, y in widths), widths
