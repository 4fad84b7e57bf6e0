"""hw.mem.port.RegisterSlice: every item through, in order, under random idle cycles and
backpressure; full throughput when neither side pauses; no combinational path through it."""
from __future__ import annotations

import random

import pytest
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.mem.port import RegisterSlice
from sim.tb.streams import Pauses, receive, send

LAYOUT = data.StructLayout({"data": 24, "mask": 3})


def _run(p_idle: float, p_stall: float, n: int = 300):
    dut = RegisterSlice(LAYOUT)
    rng = random.Random(int(p_idle * 10) * 10 + int(p_stall * 10))
    items = [{"data": rng.getrandbits(24), "mask": rng.getrandbits(3)} for _ in range(n)]
    got = []
    cycles = 0

    async def source(ctx):
        await send(ctx, dut.i, items, Pauses(1, p_idle), name="i")

    async def sink(ctx):
        got.extend(await receive(ctx, dut.o, n, Pauses(2, p_stall), name="o"))   # checks the hold rule

    async def count(ctx):
        nonlocal cycles
        while len(got) < n:
            await ctx.tick()
            cycles += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(count, background=True)
    sim.add_testbench(source)
    sim.add_testbench(sink)
    sim.run()
    assert [(int(g.data), int(g.mask)) for g in got] == [(x["data"], x["mask"]) for x in items]
    return cycles


@pytest.mark.parametrize("p_idle,p_stall", [(0.0, 0.3), (0.3, 0.0), (0.5, 0.5)])
def test_slice_passes_every_item_in_order(p_idle, p_stall):
    _run(p_idle, p_stall)


def test_slice_full_throughput():
    # one item per cycle after the one cycle of latency (a few cycles of handshake slack)
    assert _run(0.0, 0.0, n=300) <= 300 + 4


def test_slice_ready_and_valid_are_registers():
    # i.ready and o.valid must not follow this cycle's o.ready or i.valid
    dut = RegisterSlice(LAYOUT)
    seen = []

    async def bench(ctx):
        for o_ready, i_valid in [(0, 1), (0, 1), (0, 1), (1, 0), (1, 0)]:
            before = (ctx.get(dut.i.ready), ctx.get(dut.o.valid))
            ctx.set(dut.o.ready, o_ready)
            ctx.set(dut.i.valid, i_valid)
            seen.append(before == (ctx.get(dut.i.ready), ctx.get(dut.o.valid)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [True] * 5
