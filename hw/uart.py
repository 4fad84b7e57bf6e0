"""8N1 UART receiver and transmitter with byte streams (the board host link, docs/boards.md).

Frame (TIA-232 / the usual asynchronous serial framing): the line idles high; a byte is a start bit
(low), 8 data bits least significant first, one stop bit (high), each bit `divisor` clock cycles
long (``divisor = round(clk_freq / baud)``).

    tx = UartTx(divisor)    i  In(stream.Signature(8))   tx Out(1) (idles high)
    rx = UartRx(divisor)    rx In(1)  o Out(stream.Signature(8))  frame_error, overrun Out(1)

The receiver synchronises `rx` (two flip-flops), starts on a falling edge, checks the start bit
in its middle and samples every bit in its middle. A byte whose stop bit reads low is dropped and
reported by a one-cycle `frame_error` pulse (the receiver then waits for the line to go high
again, so a break is one error, not a stream of zero bytes). A byte that completes while the
previous one is still offered on `o` (UART has no flow control) is dropped and reported by a
one-cycle `overrun` pulse.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "UartRx", "UartTx", "divisor_for"]

#: The least clock cycles per bit: the receiver needs the middle of a bit after a 2-cycle synchroniser.
MIN_DIVISOR = 4


def _check_divisor(divisor: int) -> int:
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"divisor must be an int (clock cycles per bit), got {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be >= {MIN_DIVISOR} clock cycles per bit, got {divisor}")
    return divisor


def divisor_for(clk_freq: float, baud: int, *, tolerance: float = 0.02) -> int:
    """Clock cycles per bit for `baud` at `clk_freq` Hz; ValueError when the rounding error of the
    bit time exceeds `tolerance` (2 %: a 10-bit frame then drifts less than a fifth of a bit)."""
    if baud <= 0 or clk_freq <= 0:
        raise ValueError(f"clk_freq and baud must be > 0, got {clk_freq!r}, {baud!r}")
    d = round(clk_freq / baud)
    if d < MIN_DIVISOR:
        raise ValueError(f"baud {baud} is too fast for a {clk_freq / 1e6:g} MHz clock ({clk_freq / baud:.2f} cycles "
                         f"per bit, need >= {MIN_DIVISOR})")
    err = abs(clk_freq / d - baud) / baud
    if err > tolerance:
        raise ValueError(f"baud {baud} at {clk_freq / 1e6:g} MHz: divisor {d} is {100 * err:.1f} % off "
                         f"(more than {100 * tolerance:g} %)")
    return d


class UartTx(wiring.Component):
    """8N1 transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= MIN_DIVISOR).

    Attributes
    ----------
    i : In(stream.Signature(8))
        Bytes to send; one is taken when the transmitter is idle (after the previous stop bit).
    tx : Out(1)
        The serial line (high when idle).
    busy : Out(1)
        A frame is being sent.
    """

    def __init__(self, divisor: int):
        self._divisor = _check_divisor(divisor)
        super().__init__({"i": In(stream.Signature(8)), "tx": Out(1, init=1), "busy": Out(1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        shreg = Signal(10, init=0x3FF)      # stop, data[7:0], start; shifted out LSB first
        bits = Signal(range(11))            # bits left to send
        timer = Signal(range(d))
        m.d.comb += [self.tx.eq(shreg[0]), self.busy.eq(bits != 0), self.i.ready.eq(bits == 0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq((1 << 9) | (self.i.payload << 1)), bits.eq(10), timer.eq(d - 1)]
        with m.Elif(bits != 0):
            with m.If(timer == 0):
                m.d.sync += [shreg.eq((1 << 9) | (shreg >> 1)), bits.eq(bits - 1), timer.eq(d - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UartRx(wiring.Component):
    """8N1 receiver (see the module docstring).

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= MIN_DIVISOR).

    Attributes
    ----------
    rx : In(1)
        The serial line (asynchronous; synchronised inside).
    o : Out(stream.Signature(8))
        Received bytes; a byte stays offered until taken.
    frame_error : Out(1)
        One-cycle pulse: a frame whose stop bit was low (its byte is dropped).
    overrun : Out(1)
        One-cycle pulse: a byte completed while the previous one was still offered (dropped).
    """

    def __init__(self, divisor: int):
        self._divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o": Out(stream.Signature(8)),
                          "frame_error": Out(1), "overrun": Out(1)})

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        line = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(range(d))
        bit = Signal(range(9))               # data bits received
        shreg = Signal(8)

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    # `line` is already one cycle into the start bit: its middle is d // 2 - 1 away
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):                  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq((line << 7) | (shreg >> 1)), bit.eq(bit + 1), timer.eq(d - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(~line):
                    m.d.sync += self.frame_error.eq(1)
                    m.next = "BREAK"
                with m.Else():
                    # the byte is taken in this cycle if the previous one is taken in it too
                    with m.If(self.o.valid & ~self.o.ready):
                        m.d.sync += self.overrun.eq(1)
                    with m.Else():
                        m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                    m.next = "IDLE"
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m
