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

Commands: spec.dram.Cmd names them, spec.dram.COMMANDS holds their encodings (JESD79-4 table 16)
and the spec.dram constants next to it say where a command's fields go (the ACT row, the RD/WR
column, A10, the MRS register number). `encode(phase, cmd, ...)` drives a phase's pins from
Amaranth; `decode(pins)` (spec.dram.decode_pins) reads them back in Python (harnesses, tests).
"""
from __future__ import annotations

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spec.dram import (
    A10,
    ACT_ROW_ADDRESS_BITS,
    ACT_ROW_PINS,
    ADDRESS_BITS,
    BANK_COMMANDS,
    CAS_COMMANDS,
    COLUMN_BITS,
    COMMANDS,
    DES,
    MR_BA_BITS,
    Channel,
    Cmd,
)
from spec.dram import decode_pins as decode

__all__ = ["DES", "Cmd", "DfiSignature", "NativePortSignature", "PhaseLayout", "StorePortSignature", "decode",
           "encode", "native_req_layout", "store_addr_bits"]

#: the commands the controller issues (encode refuses the others)
ISSUED = frozenset({Cmd.NOP, Cmd.ACT, Cmd.RD, Cmd.WR, Cmd.PRE, Cmd.PREA, Cmd.REF, Cmd.MRS, Cmd.ZQCL, Cmd.ZQCS})


def PhaseLayout(ch: Channel) -> data.StructLayout:
    fb = ch.field_bits
    return data.StructLayout({
        "cs_n": 1, "act_n": 1, "ras_n": 1, "cas_n": 1, "we_n": 1,
        "bg": max(fb["bg"], 1), "ba": max(fb["ba"], 1), "address": ADDRESS_BITS,
    })


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
    """Amaranth statements that drive `phase` (a PhaseLayout view) with `cmd` (spec.dram.COMMANDS;
    Cmd.NOP drives spec.dram.DES). Fields may be Values. For ACT give `row`; RD/WR `col` (the
    column, a multiple of 8); PRE bg/ba; MRS `mr` (0..6) and `value`."""
    if cmd not in ISSUED:
        raise ValueError(f"encode: command {cmd!r} is not issued by the controller")
    if cmd == Cmd.NOP:
        return [getattr(phase, pin).eq(v) for pin, v in DES.items()]
    enc = COMMANDS[cmd]
    s = [phase.cs_n.eq(0)]
    if cmd == Cmd.ACT:
        return s + [phase.act_n.eq(enc.act_n), phase.bg.eq(bg), phase.ba.eq(ba),
                    *(getattr(phase, pin).eq(row >> bit) for pin, bit in ACT_ROW_PINS.items()),
                    phase.address.eq(row & ((1 << ACT_ROW_ADDRESS_BITS) - 1))]
    s += [phase.act_n.eq(enc.act_n), phase.ras_n.eq(enc.ras_n), phase.cas_n.eq(enc.cas_n), phase.we_n.eq(enc.we_n)]
    address = None                  # A17:A0 but A10, where the command has fields there
    if cmd in BANK_COMMANDS:
        s += [phase.bg.eq(bg), phase.ba.eq(ba)]
    if cmd in CAS_COMMANDS:
        address = col & ((1 << COLUMN_BITS) - 1)
    elif cmd == Cmd.MRS:
        s += [phase.bg.eq(mr >> MR_BA_BITS), phase.ba.eq(mr & ((1 << MR_BA_BITS) - 1))]
        address = value
    if enc.a10 is not None:         # A10 tells the command apart: alone, or next to the fields
        a10 = enc.a10 << A10
        if address is None:
            address = a10
        elif a10:
            address = address | a10
    if address is not None:
        s += [phase.address.eq(address)]
    return s


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

