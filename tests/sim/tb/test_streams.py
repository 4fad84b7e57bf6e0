"""sim/tb/streams.py: the shared drivers pass a correct stream and catch each broken rule.

Vectors: hand-written payload sequences; the "DUT" is a bare lib.stream interface driven by a
second testbench (a well-behaved one through `send`, broken ones by hand).
"""
from __future__ import annotations

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.lib import stream
from amaranth.sim import Simulator

from sim.tb.streams import HoldCheck, Pauses, receive, send


def simulate(source, sink) -> None:
    m = Module()
    m.domains.sync = ClockDomain()
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(source, background=True)
    sim.add_testbench(sink)
    sim.run()


@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.5, 0.7)])
def test_send_and_receive_pass_every_payload_in_order(idle, stall):
    s = stream.Signature(8).create()
    got = []

    async def source(ctx):
        await send(ctx, s, range(40), Pauses(1, idle))

    async def sink(ctx):
        got.extend(await receive(ctx, s, 40, Pauses(2, stall)))

    simulate(source, sink)
    assert got == list(range(40))


def test_pauses_are_seeded():
    a, b = Pauses(5, 0.5), Pauses(5, 0.5)
    assert [a.next() for _ in range(50)] == [b.next() for _ in range(50)]
    bursts, never = Pauses(5, 0.5, burst=5), Pauses(5, 0.0)
    assert set(bursts.next() for _ in range(100)) == {0, 1, 2, 3, 4, 5}
    assert set(never.next() for _ in range(100)) == {0}
    with pytest.raises(ValueError, match=r"^pause probability must be in \[0, 1\), got 1\.0$"):
        Pauses(0, 1.0)


@pytest.mark.parametrize("fault,message", [
    ("drop", r"^o\.valid dropped before o\.ready$"),
    ("change", r"^o\.payload changed while stalled$"),
])
def test_receive_catches_a_source_that_breaks_the_hold_rule(fault, message):
    s = stream.Signature(8).create()

    async def source(ctx):
        ctx.set(s.payload, 1)
        ctx.set(s.valid, 1)
        await ctx.tick()                       # offered while the sink stalls
        if fault == "drop":
            ctx.set(s.valid, 0)
        else:
            ctx.set(s.payload, 2)
        for _ in range(100):                   # plain ticks: this bench is abandoned mid-wait
            await ctx.tick()

    async def sink(ctx):
        await receive(ctx, s, 1, Pauses(0, 0.99), name="o")

    with pytest.raises(AssertionError, match=message):
        simulate(source, sink)


def test_timeouts_fail_instead_of_hanging():
    s = stream.Signature(8).create()

    async def idle(ctx):
        for _ in range(1000):                  # plain ticks: this bench is abandoned mid-wait
            await ctx.tick()

    async def never_ready(ctx):
        await send(ctx, s, [1], timeout=50, name="i")

    async def nothing_offered(ctx):
        await receive(ctx, s, 1, timeout=50, name="o")

    with pytest.raises(AssertionError, match=r"^i: transfer 0 not accepted within 50 cycles$"):
        simulate(idle, never_ready)
    with pytest.raises(AssertionError, match=r"^o: transfer 0 of 1 not offered within 50 cycles$"):
        simulate(idle, nothing_offered)


def test_hold_check_cycle_by_cycle():
    hold = HoldCheck("acc")
    for valid, ready, payload in [(0, 0, 5), (1, 0, 7), (1, 0, 7), (1, 1, 7), (0, 0, 9), (1, 1, 3)]:
        hold(valid, ready, payload)                # a correct sequence passes
    hold(1, 0, 4)
    with pytest.raises(AssertionError, match=r"^acc\.payload changed while stalled$"):
        hold(1, 0, 6)
