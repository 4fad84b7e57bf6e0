"""Timing counters and the arbiter of the DDR4 scheduler.

Time is counted in DRAM clocks. Controller cycle c carries DRAM clocks 4c .. 4c+3 (DFI 1:4; a
command issued at phase p of cycle c is on the bus at clock 4c + p). A timing constraint is a
`Countdown`: the clocks that remain, counted from the start of the current cycle, until the
commands it guards may go. A command may be issued at phase p of this cycle when every counter that
applies to it is <= p (`ok`: the counter is below 4; `need`: its low two bits, the earliest phase).
Issuing a command at phase p that starts a constraint of t clocks raises the counter to at least
p + t; every cycle it falls by 4, saturating at 0 (the register holds the value for the start of
the next cycle). Updates given to one counter in one cycle must be mutually exclusive (the
scheduler guarantees it: at most one CAS, one ACT and one PRE per cycle, to different banks).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value

__all__ = ["Countdown", "max2", "round_robin"]


class Countdown:
    """A "clocks until allowed" down-counter (module docstring). `width` bits, reset 0."""

    def __init__(self, width: int, name: str):
        self.value = Signal(width, name=name)
        self._updates: list[tuple[Value, Value]] = []

    @property
    def ok(self) -> Value:
        """Allowed at some phase of this cycle (the earliest is `need`)."""
        return self.value < 4

    @property
    def need(self) -> Value:
        """The earliest phase of this cycle (meaningful when `ok`)."""
        return self.value[:2]

    def start(self, cond, phase, clocks: int) -> None:
        """When `cond`: the guarded commands may go no earlier than `clocks` after `phase` of this
        cycle."""
        if clocks < 1:
            raise ValueError(f"{self.value.name}: a constraint of {clocks} clocks needs no counter")
        self._updates.append((cond, phase, clocks))

    def elaborate(self, m: Module) -> None:
        # nested Ifs (not Mux trees): Amaranth's Python simulator then skips the work when idle
        v = self.value
        w = len(v)
        with m.If(v > 4):
            m.d.sync += v.eq((v - 4)[:w])
        with m.Elif(v != 0):
            m.d.sync += v.eq(0)
        for cond, phase, clocks in self._updates:
            with m.If(cond):
                # phase + clocks - 4 > max(v - 4, 0)
                with m.If(phase + clocks > Mux(v > 4, v, 4)):
                    if clocks >= 4:
                        m.d.sync += v.eq(phase + (clocks - 4))
                    else:
                        m.d.sync += v.eq((phase + clocks - 4)[:w])


def max2(a, b) -> Value:
    return Mux(a > b, a, b)


def round_robin(m: Module, requests: Value, name: str) -> tuple[Value, Signal, Signal]:
    """A round-robin choice among the bits of `requests` (a Signal; a power-of-two width): returns
    (valid, index, advance), where `advance` is an input the caller drives high when the choice is
    used; the request after the granted one then has the highest priority."""
    n = len(requests)
    bits = max((n - 1).bit_length(), 1)
    index = Signal(bits, name=f"{name}_index")
    advance = Signal(name=f"{name}_advance")
    valid = requests.any()
    if n == 1:
        return valid, index, advance
    if n & (n - 1):
        raise ValueError(f"round_robin: {n} requests, a power of two is needed")
    ptr = Signal(bits, name=f"{name}_ptr")
    rot = (Cat(requests, requests) >> ptr)[:n]
    for i in reversed(range(n)):
        with m.If(rot[i]):
            m.d.comb += index.eq((ptr + i)[:bits])
    with m.If(advance):
        m.d.sync += ptr.eq((index + 1)[:bits])
    return valid, index, advance
