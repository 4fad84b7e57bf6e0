"""hw.core.common: the AND-OR choice the sequencer and the register router build their selects with.

Checked in Amaranth simulation against the Python definition (the OR of the values whose select is
set) for every one-hot select, no select, and random multi-hot selects, with signed and unsigned
values of mixed widths; and its refusal of mismatched or empty lists.
"""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from hw.core.common import and_or


def _run(values_spec, cases):
    m = Module()
    sels = [Signal(name=f"s{k}") for k in range(len(values_spec))]
    values = [Signal(shape, name=f"v{k}") for k, shape in enumerate(values_spec)]
    out = Signal(signed(20))
    m.d.comb += out.eq(and_or(sels, values))
    seen = []

    async def bench(ctx):
        for sel_bits, vals in cases:
            for k, s in enumerate(sels):
                ctx.set(s, (sel_bits >> k) & 1)
            for v, x in zip(values, vals, strict=True):
                ctx.set(v, x)
            seen.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return seen


def test_and_or_matches_or_of_selected_values():
    rng = random.Random(7)
    spec = [signed(12), 10, signed(16), 8]
    cases = []
    for sel in [0, 1, 2, 4, 8] + [rng.randrange(16) for _ in range(40)]:
        vals = [rng.randrange(-2048, 2048), rng.randrange(1024), rng.randrange(-32768, 32768), rng.randrange(256)]
        cases.append((sel, vals))
    got = _run(spec, cases)
    for (sel, vals), g in zip(cases, got, strict=True):
        want = 0
        for k, x in enumerate(vals):
            if sel >> k & 1:
                want |= x & ((1 << 20) - 1)         # its bits in the 20-bit result (signed: sign-extended)
        want -= (1 << 20) if want >> 19 else 0
        assert g == want, (sel, vals, g, want)


@pytest.mark.parametrize("sels, values", [([], []), ([Signal()], []), ([Signal(), Signal()], [Signal(4)])])
def test_and_or_refuses_mismatched_lists(sels, values):
    with pytest.raises(ValueError, match="as many selects as values"):
        and_or(sels, values)
