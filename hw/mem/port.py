"""The compute side's memory port (DESIGN.md section 6): in-order bursts of whole beats.

One signature serves the core's load/store unit, its weight streamer, the arbiter that joins them,
the RAM models of the testbenches and, later, the DDR4 controller and the Avalon-MM / AXI adapters.

    cmd   Out(stream)  {addr: line address (byte address // beat_bytes), len: beats (1 .. 2**16-1),
                        write: 1}
    rd    In(stream)   {data: beat_bits}         exactly `len` beats per read command, in command order
    wr    Out(stream)  {data: beat_bits, mask: beat_bytes}   exactly `len` beats per write command;
                                                 byte i of a beat is written when mask[i] is set

Byte i of a beat is the byte at address `line * beat_bytes + i` (little-endian memory). A read
command's data comes back after the data of every earlier read command; a write command's beats
may be sent as soon as the command is accepted. Commands take effect in command order: a read
sees every earlier write and no later one (so an implementation must not let a later write
overtake an earlier read of the same bytes). `valid`/`ready` follow amaranth.lib.stream.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ADDR_BITS", "LEN_BITS", "MAX_BURST", "MemPortSignature", "RegisterSlice", "cmd_layout"]

#: Byte-address width of the port (4 GiB): the 2.7B model's image at 2 bits is ~0.7 GB.
ADDR_BITS = 32
LEN_BITS = 16
#: Longest burst one command may ask for.
MAX_BURST = (1 << LEN_BITS) - 1


def _line_bits(beat_bytes: int) -> int:
    if beat_bytes < 1 or beat_bytes & (beat_bytes - 1):
        raise ValueError(f"beat_bytes must be a power of two, got {beat_bytes!r}")
    return ADDR_BITS - (beat_bytes.bit_length() - 1)


def cmd_layout(beat_bytes: int) -> data.StructLayout:
    return data.StructLayout({"addr": _line_bits(beat_bytes), "len": LEN_BITS, "write": 1})


class MemPortSignature(wiring.Signature):
    """The port as seen by its initiator (the core side): `cmd` and `wr` out, `rd` in."""

    def __init__(self, beat_bytes: int):
        self._beat_bytes = beat_bytes
        super().__init__({
            "cmd": Out(stream.Signature(cmd_layout(beat_bytes))),
            "rd": In(stream.Signature(data.StructLayout({"data": 8 * beat_bytes}))),
            "wr": Out(stream.Signature(data.StructLayout({"data": 8 * beat_bytes, "mask": beat_bytes}))),
        })

    @property
    def beat_bytes(self) -> int:
        return self._beat_bytes

    def __eq__(self, other):
        return isinstance(other, MemPortSignature) and other._beat_bytes == self._beat_bytes

    def __repr__(self):
        return f"MemPortSignature({self._beat_bytes})"


class RegisterSlice(wiring.Component):
    """A full-throughput register stage for one stream: `i` in, `o` out, no combinational path.

    `o.valid` and `o.payload` come from a main register, `i.ready` from a register ("the skid
    register is empty"), so neither side's timing reaches the other: a stream between two units
    placed far apart costs a cycle of latency and no throughput. Two registers of the payload's
    width (main and skid) and a 2:1 choice per bit. The payload registers have no reset (a payload
    means nothing without its `valid`): a slice of a 128-bit beat adds no pins to the reset net.
    """

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        sk_valid = Signal()
        sk_data = Signal.like(i.payload, reset_less=True)
        o_data = Signal.like(o.payload, reset_less=True)
        m.d.comb += [i.ready.eq(~sk_valid), o.payload.eq(o_data)]
        take = i.valid & i.ready
        with m.If(o.ready | ~o.valid):
            with m.If(sk_valid):
                m.d.sync += [o_data.eq(sk_data), o.valid.eq(1), sk_valid.eq(0)]
            with m.Elif(take):
                m.d.sync += [o_data.eq(i.payload), o.valid.eq(1)]
            with m.Else():
                m.d.sync += o.valid.eq(0)
        with m.Elif(take):
            m.d.sync += [sk_data.eq(i.payload), sk_valid.eq(1)]
        return m
