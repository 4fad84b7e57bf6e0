"""A bit-level 8N1 UART for the Amaranth testbenches (the far end of hw/uart.py's line): frames
driven onto a pin and frames sampled off a pin, `divisor` clock cycles per bit.

Deliberately naive: every bit is a run of `divisor` cycles; the receiver reads every cycle of a
frame and requires each bit to be constant over its whole length (the strict check for a
synchronous transmitter), or, with ``strict=False``, samples the middle of each bit.
"""
from __future__ import annotations


def frame_bits(byte: int, *, stop: int = 1) -> list[int]:
    """Start bit, 8 data bits LSB first, stop bit."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


async def drive_frame(ctx, pin, byte: int, divisor: int, *, stop: int = 1) -> None:
    """Drive one frame onto `pin` (bit edges on clock edges); the line is left high."""
    for b in frame_bits(byte, stop=stop):
        ctx.set(pin, b)
        await ctx.tick().repeat(divisor)
    ctx.set(pin, 1)


async def drive_idle(ctx, pin, bits: int, divisor: int) -> None:
    ctx.set(pin, 1)
    if bits:
        await ctx.tick().repeat(bits * divisor)


async def read_frame(ctx, pin, divisor: int, *, strict: bool = True) -> int:
    """Wait for a start bit on `pin` (on the pin's change, without polling: bound the wait with the
    simulation's deadline) and return the byte; AssertionError on a bad frame: a start or stop bit
    of the wrong level, or, with `strict`, a bit not constant over its `divisor` cycles."""
    while ctx.get(pin):
        await ctx.changed(pin)
    # the line fell at the edge just passed: bit k is sampled before edges k*d+1 .. (k+1)*d
    samples = []
    ticks = ctx.tick().sample(pin).__aiter__()
    try:
        for _ in range(10 * divisor):
            *_, v = await ticks.__anext__()
            samples.append(v)
    finally:
        await ticks.aclose()
    bits = []
    for k in range(10):
        run = samples[k * divisor:(k + 1) * divisor]
        if strict and len(set(run)) != 1:
            raise AssertionError(f"bit {k} of the frame is not constant over its {divisor} cycles: {run}")
        bits.append(run[divisor // 2])
    assert bits[0] == 0, "start bit high"
    assert bits[9] == 1, f"stop bit low (bits {bits})"
    return sum(b << i for i, b in enumerate(bits[1:9]))
