# amaranth: UnusedElaboratable=no
"""hw.uart: the 8N1 transmitter and receiver against the bit-level model of
tests/hw/boards/uart_model.py (random bytes, random idle time on the line and on the byte stream,
random backpressure on the received bytes), a loopback, framing errors and overruns."""
from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from hw.uart import UartRx, UartTx, divisor_for
from sim.tb.streams import Pauses, receive, send
from tests.hw.boards.uart_model import drive_frame, drive_idle, read_frame

DIVISORS = [4, 5, 7, 16]


def _run(dut, benches, cycles: int) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for b in benches:
        sim.add_testbench(b)
    sim.run_until(cycles * 1e-8)


@pytest.mark.parametrize("divisor", DIVISORS)
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_tx_frames_match_the_model(divisor, p):
    rng = random.Random(divisor * 10 + int(p * 10))
    data = [rng.getrandbits(8) for _ in range(40)] + [0x00, 0xFF, 0x55, 0xAA]
    dut = UartTx(divisor)
    got = []

    async def source(ctx):
        await send(ctx, dut.i, data, Pauses(1, p, burst=30))

    async def line(ctx):
        for _ in data:
            got.append(await read_frame(ctx, dut.tx, divisor))

    _run(dut, [source, line], 60 * 11 * divisor * len(data))
    assert got == data


@pytest.mark.parametrize("divisor", DIVISORS)
@pytest.mark.parametrize("p", [0.0, 0.5])
def test_rx_bytes_match_the_model(divisor, p):
    rng = random.Random(divisor * 10 + int(p * 10) + 1)
    data = [rng.getrandbits(8) for _ in range(40)] + [0x00, 0xFF, 0x55, 0xAA]
    dut = UartRx(divisor)
    errors = []
    got = []

    async def line(ctx):
        for b in data:
            # idle bits between frames (0: back to back); a sub-bit offset moves the frame off the clock grid
            await drive_idle(ctx, dut.rx, rng.choice([0, 0, 1, rng.randint(0, 5)]) if p else 0, divisor)
            skew = rng.randrange(divisor) if p else 0
            if skew:
                await ctx.tick().repeat(skew)
            await drive_frame(ctx, dut.rx, b, divisor)

    async def sink(ctx):
        # backpressure far shorter than a frame: no overrun
        got.extend(int(x) for x in await receive(ctx, dut.o, len(data), Pauses(2, p, burst=2 * divisor)))

    async def monitor(ctx):
        async for _, _, fe, ov in ctx.tick().sample(dut.frame_error, dut.overrun):
            if fe or ov:
                errors.append((fe, ov))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.add_testbench(sink)
    sim.add_process(monitor)
    sim.run_until(20 * 11 * divisor * len(data) * 1e-8)
    assert got == data
    assert not errors


@pytest.mark.parametrize("divisor", [4, 9])
def test_loopback(divisor):
    rng = random.Random(divisor)
    data = [rng.getrandbits(8) for _ in range(60)]
    m = Module()
    m.submodules.tx = tx = UartTx(divisor)
    m.submodules.rx = rx = UartRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []

    async def source(ctx):
        await send(ctx, tx.i, data, Pauses(3, 0.4, burst=40))

    async def sink(ctx):
        got.extend(int(x) for x in await receive(ctx, rx.o, len(data), Pauses(4, 0.4, burst=divisor)))

    _run(m, [source, sink], 40 * 11 * divisor * len(data))
    assert got == data


def test_bad_stop_bit_is_a_framing_error_not_a_byte():
    d = 6
    dut = UartRx(d)
    seen = {"fe": 0, "ov": 0}
    got = []

    async def line(ctx):
        await drive_idle(ctx, dut.rx, 2, d)
        await drive_frame(ctx, dut.rx, 0x3C, d, stop=0)      # a bad stop bit: dropped, reported
        await drive_idle(ctx, dut.rx, 2, d)
        ctx.set(dut.rx, 0)                                   # a break: one error, no bytes
        await ctx.tick().repeat(40 * d)
        await drive_idle(ctx, dut.rx, 2, d)
        await drive_frame(ctx, dut.rx, 0xA5, d)              # then a good frame comes through
        await drive_idle(ctx, dut.rx, 4, d)

    async def sink(ctx):
        ctx.set(dut.o.ready, 1)
        async for _, _, v, b, fe, ov in ctx.tick().sample(dut.o.valid, dut.o.payload, dut.frame_error, dut.overrun):
            if v:
                got.append(int(b))
            seen["fe"] += fe
            seen["ov"] += ov

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.add_process(sink)
    sim.run_until(100 * d * 1e-8)
    assert seen["fe"] == 2 and not seen["ov"]
    assert got == [0xA5]


def test_overrun_keeps_the_first_byte_and_reports():
    d = 4
    dut = UartRx(d)
    seen = []

    async def line(ctx):
        ctx.set(dut.o.ready, 0)
        await drive_idle(ctx, dut.rx, 1, d)
        await drive_frame(ctx, dut.rx, 0x11, d)
        await drive_frame(ctx, dut.rx, 0x22, d)
        await drive_idle(ctx, dut.rx, 2, d)
        assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == 0x11
        got = await receive(ctx, dut.o, 1)
        assert int(got[0]) == 0x11
        assert seen == [1]

    async def monitor(ctx):
        async for _, _, ov in ctx.tick().sample(dut.overrun):
            if ov:
                seen.append(1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(line)
    sim.add_process(monitor)
    sim.run_until(80 * d * 1e-8)
    assert seen == [1]


def test_divisor_checks():
    assert divisor_for(25e6, 115200) == 217
    assert divisor_for(12e6, 115200) == 104
    with pytest.raises(ValueError, match="too fast"):
        divisor_for(12e6, 4_000_000)
    with pytest.raises(ValueError, match="off"):
        divisor_for(12e6, 2_200_000)          # 5.45 cycles per bit: 5 is 9 % off
    with pytest.raises(ValueError, match=">= 4"):
        UartTx(3)
    with pytest.raises(TypeError):
        UartRx(4.0)
