"""hw.boards.link: the host-link frame parser and generator alone, its byte streams driven under
random idle cycles and backpressure, against spec.host_link's encoder and decoder (the naive
model): token requests reach tok_in, TOKOUTs come back as RSP_TOKEN with the TOKIN -> TOKOUT
cycles, OP_RESET pulses `clear` and is answered after `clearing`, errors are reported."""
from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hw.boards.link import HostLink
from sim.tb.streams import Pauses, receive, send
from spec import host_link as HL

GAP = 30


def _responses(raw: list[int]) -> list[HL.Response]:
    b = bytes(raw)
    return [HL.decode_response(b[i:i + HL.RSP_BYTES]) for i in range(0, len(b), HL.RSP_BYTES)]


def _sim(dut, benches, cycles=200_000):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for b in benches:
        sim.add_testbench(b)
    sim.run_until(cycles * 1e-8)


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_tokens_round_trip_with_latency(p):
    rng = random.Random(int(p * 10))
    dut = HostLink(GAP)
    toks = [rng.getrandbits(32) for _ in range(12)] + [0, (1 << 32) - 1]
    delays = [rng.randint(1, 40) for _ in toks]
    got, seen_in = [], []

    async def host(ctx):
        for t in toks:
            await send(ctx, dut.rx, list(HL.request(HL.OP_TOKEN, t)), Pauses(rng.random(), p))
            raw = await receive(ctx, dut.tx, HL.RSP_BYTES, Pauses(rng.random(), p))
            got.extend(_responses([int(x) for x in raw]))

    async def core(ctx):
        # the core: take a token, compute for `delay` cycles, offer it + 7 as the TOKOUT
        for t, delay in zip(toks, delays, strict=True):
            v = await receive(ctx, dut.tok_in, 1, Pauses(rng.random(), p))
            seen_in.append(int(v[0]) & 0xFFFFFFFF)
            await ctx.tick().repeat(delay)
            await send(ctx, dut.tok_out, [(t + 7) & 0xFFFFFFFF])

    _sim(dut, [host, core])
    assert seen_in == toks
    assert [r.tag for r in got] == [HL.RSP_TOKEN] * len(toks)
    assert [r.value for r in got] == [(t + 7) & 0xFFFFFFFF for t in toks]
    # TOKIN handshake at edge A, TOKOUT offered from edge A + delay + 1 (send's first cycle)
    assert [r.cycles for r in got] == [d + 1 for d in delays]



def test_reset_clear_and_acknowledge():
    dut = HostLink(GAP)
    log = []

    async def host(ctx):
        ctx.set(dut.tx.ready, 1)
        await send(ctx, dut.rx, list(HL.request(HL.OP_TOKEN, 5)))      # pending: never taken
        await send(ctx, dut.rx, list(HL.request(HL.OP_RESET)))
        await ctx.tick()
        assert not ctx.get(dut.tok_in.valid), "OP_RESET drops the pending token"
        raw = await receive(ctx, dut.tx, HL.RSP_BYTES)
        log.append(_responses([int(x) for x in raw])[0])

    async def memory(ctx):
        async for _, _, clear in ctx.tick().sample(dut.clear):
            if clear:
                log.append("clear")
                ctx.set(dut.clearing, 1)
                await ctx.tick().repeat(50)
                ctx.set(dut.clearing, 0)
                log.append("cleared")
                return

    _sim(dut, [host, memory], 5000)
    assert log == ["clear", "cleared", HL.Response(HL.RSP_RESET, HL.PROTOCOL_VERSION, 0)]


def test_errors_and_the_gap_rule():
    dut = HostLink(GAP)
    got = []

    async def host(ctx):
        await send(ctx, dut.rx, [ord("X"), 1, 2, 3, 4])                  # unknown opcode
        await send(ctx, dut.rx, list(HL.request(HL.OP_TOKEN, 9)))
        await send(ctx, dut.rx, list(HL.request(HL.OP_TOKEN, 10)))        # the first is still pending
        await send(ctx, dut.rx, [ord("T"), 1])                            # partial, then silence: dropped
        await ctx.tick().repeat(GAP + 5)
        ctx.set(dut.rx_frame_error, 1)
        await ctx.tick()
        ctx.set(dut.rx_frame_error, 0)
        ctx.set(dut.fault, 1)
        await ctx.tick().repeat(100)
        assert ctx.get(dut.tok_in.payload) == 9, "the busy token did not replace the pending one"

    async def reader(ctx):
        raw = await receive(ctx, dut.tx, 4 * HL.RSP_BYTES, Pauses(5, 0.3))
        got.extend(_responses([int(x) for x in raw]))

    _sim(dut, [host, reader], 5000)
    assert [(r.tag, r.value) for r in got] == [(HL.RSP_ERROR, HL.ERR_OP), (HL.RSP_ERROR, HL.ERR_BUSY),
                                                (HL.RSP_ERROR, HL.ERR_FRAMING), (HL.RSP_ERROR, HL.ERR_FAULT)]


def test_partial_request_after_gap_is_forgotten():
    dut = HostLink(GAP)
    taken = []

    async def host(ctx):
        await send(ctx, dut.rx, [ord("T"), 0xAA])
        await ctx.tick().repeat(GAP + 1)
        await send(ctx, dut.rx, list(HL.request(HL.OP_TOKEN, 0x1234)))
        taken.extend(int(v) for v in await receive(ctx, dut.tok_in, 1))

    _sim(dut, [host], 5000)
    assert taken == [0x1234]
