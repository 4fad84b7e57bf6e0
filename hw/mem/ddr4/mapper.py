"""The DDR4 controller's address mapper: a channel line address -> (bg, ba, row, col).

The fields and their order come from `spec.dram.ADDRESS_MAPS[ch.address_map]` (least significant
field first); `spec.dram.Channel.split` is the reference implementation, and this is the same
slicing in hardware (pure wiring, no logic). `col` is the burst column (column // 8).
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec.dram import ADDRESS_MAPS, Channel

__all__ = ["AddressMapper", "field_slices"]


def field_slices(ch: Channel) -> dict[str, tuple[int, int]]:
    """{field: (lsb, width)} of every field of the channel's address map."""
    out, lsb, fb = {}, 0, ch.field_bits
    for f in ADDRESS_MAPS[ch.address_map]:
        out[f] = (lsb, fb[f])
        lsb += fb[f]
    return out


class AddressMapper(wiring.Component):
    """Combinational: `addr` (a channel line address) in; `bg`, `ba`, `row`, `col` out."""

    def __init__(self, ch: Channel):
        self._ch = ch
        fb = ch.field_bits
        super().__init__({
            "addr": In(ch.line_bits),
            "bg": Out(max(fb["bg"], 1)), "ba": Out(max(fb["ba"], 1)),
            "row": Out(fb["row"]), "col": Out(fb["col"]),
        })

    def elaborate(self, platform):
        m = Module()
        for f, (lsb, width) in field_slices(self._ch).items():
            if width:
                m.d.comb += getattr(self, f).eq(self.addr[lsb:lsb + width])
        return m
