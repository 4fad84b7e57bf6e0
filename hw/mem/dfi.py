"""DFI 1:4 between the DDR4 controller and the PHY side (here: the DRAM model), and the
controller's native line port. One definition for the controller (hw/mem/ddr4/), the DFI-side
DRAM model and checker (hw/mem/dram_model.py) and every harness.

Time: controller cycle c carries DRAM clocks 4c .. 4c+3; phase p's command is on the command bus
at DRAM clock 4c + p. Per cycle the DFI carries

    phases[0..3]   one command slot each: cs_n act_n ras_n cas_n we_n bg ba address (A17:A0)
    cke, reset_n   per cycle (they change only during the power-up sequence)
    wrdata_en      a WR issued in cycle c takes its whole BL8 burst from this cycle's wrdata at
    wrdata           cycle c + Channel.wr_latency (exactly then: the PHY delays it to CWL);
    wrdata_mask      wrdata is 512 bits, byte i of the 64-byte line in bits 8i..8i+7;
                     wrdata_mask bit i = 1 masks byte i (DFI's and DDR4's DM sense: not written)
    rddata_valid   a RD issued in cycle c returns its burst at cycle c + Channel.rd_latency,
    rddata           in command order (the PHY has realigned it to the controller clock)

Commands (DDR4 truth table, JESD79-4 table 16; cs_n = 0 selects; H = 1, L = 0):

    DES   cs_n=1                      ACT  act_n=0, row = {ras_n, cas_n, we_n, A13:A0} (A16:A14 on
    NOP   act_n=1 ras=H cas=H we=H          ras_n/cas_n/we_n)
    MRS   act_n=1 ras=L cas=L we=L   bg/ba select the mode register (MRn: n = bg*4 + ba), A17:A0 value
    REF   act_n=1 ras=L cas=L we=H
    PRE   act_n=1 ras=L cas=H we=L   A10=0: bank bg/ba; A10=1: all banks (PREA)
    RD    act_n=1 ras=H cas=L we=H   column on A9:A0 (A2:A0 = 0 for BL8); A10 = auto-precharge
    WR    act_n=1 ras=H cas=L we=L     (not used by the controller; the model reports it)
    ZQC   act_n=1 ras=H cas=H we=L   A10=1: ZQCL (init), A10=0: ZQCS

`encode(phase, cmd, ...)` drives a phase's pins from Amaranth; `decode(pins)` reads them back in
Python (harnesses, tests).
"""
from __future__ import annotations

import enum

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.dram import Channel

__all__ = ["DES", "Cmd", "DfiSignature", "NativePortSignature", "PhaseLayout", "StorePortSignature", "decode",
           "encode", "native_req_layout", "store_addr_bits"]


class Cmd(enum.IntEnum):
    """Decoded commands (the trace's and the model's names)."""
    NOP = 0      # also DES (cs_n = 1)
    ACT = 1
    RD = 2
    WR = 3
    PRE = 4
    PREA = 5
    REF = 6
    MRS = 7
    ZQCL = 8
    ZQCS = 9
    RDA = 10     # auto-precharge: legal DDR4, not modelled (the model reports bad_command)
    WRA = 11
    BAD = 12     # an encoding the model does not accept


def PhaseLayout(ch: Channel) -> data.StructLayout:
    fb = ch.field_bits
    return data.StructLayout({
        "cs_n": 1, "act_n": 1, "ras_n": 1, "cas_n": 1, "we_n": 1,
        "bg": max(fb["bg"], 1), "ba": max(fb["ba"], 1), "address": 18,
    })


#: the phase pins of "no command" (deselect): the phases' reset value, so an undriven DFI is idle
DES = {"cs_n": 1, "act_n": 1, "ras_n": 1, "cas_n": 1, "we_n": 1}


class DfiSignature(wiring.Signature):
    """DFI as seen by the controller (the initiator): commands and write data out, read data in.
    The phases reset to DES (all-zero pins would decode as an ACT)."""

    def __init__(self, ch: Channel):
        self._ch = ch
        super().__init__({
            "phases": Out(data.ArrayLayout(PhaseLayout(ch), ch.nphases), init=[DES] * ch.nphases),
            "cke": Out(1),
            "reset_n": Out(1),
            "wrdata_en": Out(1),
            "wrdata": Out(8 * ch.line_bytes),
            "wrdata_mask": Out(ch.line_bytes),
            "rddata_valid": In(1),
            "rddata": In(8 * ch.line_bytes),
        })

    @property
    def channel(self) -> Channel:
        return self._ch

    def __eq__(self, other):
        return isinstance(other, DfiSignature) and other._ch == self._ch

    def __repr__(self):
        return f"DfiSignature({self._ch!r})"


def encode(phase, cmd: Cmd, *, bg=0, ba=0, row=0, col=0, mr=0, value=0) -> list:
    """Amaranth statements that drive `phase` (a PhaseLayout view) with `cmd`. Fields may be
    Values. For ACT give `row`; RD/WR `col` (the column, a multiple of 8); PRE bg/ba; MRS `mr`
    (0..6) and `value`."""
    ras, cas, we = {
        Cmd.NOP: (1, 1, 1), Cmd.MRS: (0, 0, 0), Cmd.REF: (0, 0, 1), Cmd.PRE: (0, 1, 0), Cmd.PREA: (0, 1, 0),
        Cmd.RD: (1, 0, 1), Cmd.WR: (1, 0, 0), Cmd.ZQCL: (1, 1, 0), Cmd.ZQCS: (1, 1, 0),
    }.get(cmd, (None, None, None))
    if cmd == Cmd.NOP:
        return [phase.cs_n.eq(1), phase.act_n.eq(1), phase.ras_n.eq(1), phase.cas_n.eq(1), phase.we_n.eq(1)]
    s = [phase.cs_n.eq(0)]
    if cmd == Cmd.ACT:
        return s + [phase.act_n.eq(0), phase.bg.eq(bg), phase.ba.eq(ba),
                    phase.ras_n.eq(row >> 16), phase.cas_n.eq(row >> 15), phase.we_n.eq(row >> 14),
                    phase.address.eq(row & 0x3FFF)]
    if ras is None:
        raise ValueError(f"encode: command {cmd!r} is not issued by the controller")
    s += [phase.act_n.eq(1), phase.ras_n.eq(ras), phase.cas_n.eq(cas), phase.we_n.eq(we)]
    if cmd in (Cmd.RD, Cmd.WR):
        s += [phase.bg.eq(bg), phase.ba.eq(ba), phase.address.eq(col & 0x3FF)]
    elif cmd == Cmd.PRE:
        s += [phase.bg.eq(bg), phase.ba.eq(ba), phase.address.eq(0)]
    elif cmd == Cmd.PREA:
        s += [phase.address.eq(1 << 10)]
    elif cmd == Cmd.MRS:
        s += [phase.bg.eq(mr >> 2), phase.ba.eq(mr & 3), phase.address.eq(value)]
    elif cmd == Cmd.ZQCL:
        s += [phase.address.eq(1 << 10)]
    elif cmd == Cmd.ZQCS:
        s += [phase.address.eq(0)]
    return s


def decode(pins: dict) -> tuple[Cmd, dict]:
    """Python decode of one phase's pins ({cs_n, act_n, ras_n, cas_n, we_n, bg, ba, address}):
    (command, fields) where fields has bg, ba and, as they apply, row, col, mr, value."""
    if pins["cs_n"]:
        return Cmd.NOP, {}
    a, bg, ba = pins["address"], pins["bg"], pins["ba"]
    if not pins["act_n"]:
        row = (pins["ras_n"] << 16) | (pins["cas_n"] << 15) | (pins["we_n"] << 14) | (a & 0x3FFF)
        return Cmd.ACT, {"bg": bg, "ba": ba, "row": row}
    key = (pins["ras_n"], pins["cas_n"], pins["we_n"])
    ap = (a >> 10) & 1
    if key == (1, 1, 1):
        return Cmd.NOP, {}
    if key == (0, 0, 0):
        return Cmd.MRS, {"mr": (bg << 2) | ba, "value": a}
    if key == (0, 0, 1):
        return Cmd.REF, {}
    if key == (0, 1, 0):
        return (Cmd.PREA, {}) if ap else (Cmd.PRE, {"bg": bg, "ba": ba})
    if key == (1, 0, 1):
        return (Cmd.RDA if ap else Cmd.RD), {"bg": bg, "ba": ba, "col": a & 0x3FF}
    if key == (1, 0, 0):
        return (Cmd.WRA if ap else Cmd.WR), {"bg": bg, "ba": ba, "col": a & 0x3FF}
    if key == (1, 1, 0):
        return (Cmd.ZQCL if ap else Cmd.ZQCS), {}
    return Cmd.BAD, {}


# --------------------------------------------------------------------------------------------
# The controller's native port: one 64-byte line per request.

def native_req_layout(ch: Channel) -> data.StructLayout:
    return data.StructLayout({"addr": ch.line_bits, "write": 1, "data": 8 * ch.line_bytes, "mask": ch.line_bytes})


class NativePortSignature(wiring.Signature):
    """A channel's user port, as seen by the initiator (the streamer / traffic generator):

        req    Out(stream) {addr: channel line address, write, data: 512, mask: 64 (1 = write byte)}
               a write carries its data; a read ignores data/mask
        rdata  In(stream)  {data: 512}   one per read request, in request order

    A write is visible to every request accepted after it (the controller keeps requests to one
    bank in order, and one line is always in one bank)."""

    def __init__(self, ch: Channel):
        self._ch = ch
        super().__init__({
            "req": Out(stream.Signature(native_req_layout(ch))),
            "rdata": In(stream.Signature(data.StructLayout({"data": 8 * ch.line_bytes}))),
        })

    def __eq__(self, other):
        return isinstance(other, NativePortSignature) and other._ch == self._ch

    def __repr__(self):
        return f"NativePortSignature({self._ch!r})"


# --------------------------------------------------------------------------------------------
# The DRAM model's backing-store port, served by each harness (sparse: a dict / std::map).

def store_addr_bits(ch: Channel) -> int:
    """Width of a store address: {row, bg, ba, col} packed as row << (bg+ba+col bits) | bg << ..."""
    return ch.line_bits


class StorePortSignature(wiring.Signature):
    """The model's request to its harness, as seen by the model (the initiator).

        valid, write, addr, data, mask (1 = write byte)   a request in this cycle
        rdata                                             a read's data, one cycle later

    A harness samples the request at a clock edge; for a read it drives `rdata` with the line's
    bytes (0 where never written) before the next edge, where the model takes it. Writes apply
    in the order given. addr = ((row * bank_groups + bg) * banks_per_group + ba) * bursts_per_row
    + col (col is the burst column), independent of the address map."""

    def __init__(self, ch: Channel):
        self._ch = ch
        super().__init__({
            "valid": Out(1), "write": Out(1), "addr": Out(store_addr_bits(ch)),
            "data": Out(8 * ch.line_bytes), "mask": Out(ch.line_bytes),
            "rdata": In(8 * ch.line_bytes),
        })

    def __eq__(self, other):
        return isinstance(other, StorePortSignature) and other._ch == self._ch

    def __repr__(self):
        return f"StorePortSignature({self._ch!r})"

