"""DDR4 timing, geometry and commands, defined once: speed grades, device geometries, conversion to
clocks, the command truth table and where a command's fields go on the pins.

Every DRAM-facing layer derives its numbers from here: the controller's counters and command
encoder (hw/mem), the DFI-side DRAM model and its JEDEC checker, the harnesses (sim/tb/dram.py),
the benchmarks and docs/memory.md (`python -m spec.dram` prints its tables). Sources: JEDEC
JESD79-4 (DDR4 SDRAM) speed bins and timing tables, its table 16 (command truth table), the Micron
8 Gb DDR4 data sheet; the clock counts for DDR4-2400 x8 agree with ../shared/reference/dram.md
(tested).

Conversion to clocks: a timing given in time is rounded up to whole clocks with JEDEC's
guard band for tCK's own rounding (JESD79-4 / JESD21-C "rounding algorithms": a value that is
within 2.5 % above an integer number of clocks rounds down to it), computed with the exact clock
period (2000 / data rate ns): nCK = ceil(t / tCK - 0.025). A timing given as max(n nCK, t) takes
the larger of the two.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from fractions import Fraction
from typing import NamedTuple

__all__ = ["A10", "ACT_ROW_ADDRESS_BITS", "ACT_ROW_PINS", "ADDRESS_BITS", "ADDRESS_MAPS", "BANK_COMMANDS",
           "CAS_COMMANDS", "COLUMN_BITS", "COMMANDS", "DES", "GEOMETRIES", "MR_BA_BITS", "RULES", "SPEED_GRADES",
           "Channel", "Cmd", "Encoding", "Geometry", "Rule", "SpeedGrade", "Timing", "clocks", "command",
           "decode_pins", "encode_pins", "geometry", "mode_registers", "rule_code", "speed_grade", "timings"]

#: JEDEC's guard band on tCK rounding (2.5 % of a clock).
GUARD = Fraction(25, 1000)


@dataclasses.dataclass(frozen=True)
class Geometry:
    """One DDR4 device (a chip): density, data width and its bank/row/column organisation."""
    name: str              # e.g. "8Gb_x8"
    density_gbit: int
    width: int             # DQ bits per device: 8 or 16
    bank_groups: int
    banks_per_group: int
    rows: int
    columns: int

    @property
    def banks(self) -> int:
        return self.bank_groups * self.banks_per_group

    @property
    def page_bytes(self) -> int:
        """Row (page) size of one device: columns x width bits."""
        return self.columns * self.width // 8

    @property
    def page_class(self) -> str:
        """The JEDEC page-size class for tRRD/tFAW: "1K" (x8) or "2K" (x16)."""
        return "2K" if self.page_bytes >= 2048 else "1K"


def _geo(density: int, width: int, rows: int) -> Geometry:
    bg = 4 if width == 8 else 2
    return Geometry(f"{density}Gb_x{width}", density, width, bg, 4, rows, 1024)


GEOMETRIES: dict[str, Geometry] = {g.name: g for g in (
    _geo(4, 8, 32768), _geo(4, 16, 32768),
    _geo(8, 8, 65536), _geo(8, 16, 65536),
    _geo(16, 8, 131072), _geo(16, 16, 131072),
)}

#: tRFC1 (normal refresh) by device density, ns
TRFC_NS = {4: Fraction(260), 8: Fraction(350), 16: Fraction(550)}


@dataclasses.dataclass(frozen=True)
class SpeedGrade:
    """A JEDEC speed bin: data rate, latencies in clocks, core timings in ns (Fractions, exact)."""
    name: str              # e.g. "DDR4-2400R"
    data_rate: int         # MT/s
    cl: int                # CAS latency (clocks)
    cwl: int               # CAS write latency (clocks, 1tCK write preamble)
    trcd_ns: Fraction
    trp_ns: Fraction
    tras_ns: Fraction
    trrd_s_ns: dict        # page class -> ns (with 4 nCK minimum)
    trrd_l_ns: dict
    tfaw: dict             # page class -> (nCK minimum, ns)
    tdllk: int             # DLL lock, clocks

    @property
    def tck_ns(self) -> Fraction:
        """Exact clock period: two transfers per clock."""
        return Fraction(2000, self.data_rate)

    @property
    def clock_mhz(self) -> Fraction:
        return Fraction(self.data_rate, 2)


def _ns(x: str) -> Fraction:
    return Fraction(x)


SPEED_GRADES: dict[str, SpeedGrade] = {s.name: s for s in (
    SpeedGrade("DDR4-2400R", 2400, cl=16, cwl=12, trcd_ns=_ns("13.32"), trp_ns=_ns("13.32"), tras_ns=_ns("32"),
               trrd_s_ns={"1K": _ns("3.3"), "2K": _ns("5.3")}, trrd_l_ns={"1K": _ns("4.9"), "2K": _ns("6.4")},
               tfaw={"1K": (20, _ns("21")), "2K": (28, _ns("30"))}, tdllk=768),
    SpeedGrade("DDR4-2400T", 2400, cl=17, cwl=12, trcd_ns=_ns("14.16"), trp_ns=_ns("14.16"), tras_ns=_ns("32"),
               trrd_s_ns={"1K": _ns("3.3"), "2K": _ns("5.3")}, trrd_l_ns={"1K": _ns("4.9"), "2K": _ns("6.4")},
               tfaw={"1K": (20, _ns("21")), "2K": (28, _ns("30"))}, tdllk=768),
    SpeedGrade("DDR4-3200AA", 3200, cl=22, cwl=16, trcd_ns=_ns("13.75"), trp_ns=_ns("13.75"), tras_ns=_ns("32"),
               trrd_s_ns={"1K": _ns("2.5"), "2K": _ns("5.3")}, trrd_l_ns={"1K": _ns("4.9"), "2K": _ns("6.4")},
               tfaw={"1K": (20, _ns("21")), "2K": (28, _ns("30"))}, tdllk=1024),
)}


def clocks(t_ns: Fraction | int, tck_ns: Fraction, min_nck: int = 0) -> int:
    """max(min_nck, ceil(t / tCK - 2.5 %)): a time in ns as whole clocks (module docstring)."""
    t = Fraction(t_ns)
    if t < 0:
        raise ValueError(f"negative timing {t} ns")
    n = math.ceil(t / tck_ns - GUARD) if t else 0
    return max(min_nck, n)


@dataclasses.dataclass(frozen=True)
class Timing:
    """All timings of one (speed grade, device geometry) in DRAM clocks."""
    speed: str
    geometry: str
    tck_ps: float
    CL: int
    CWL: int
    BL: int          # burst length in transfers (BL8)
    tBURST: int      # clocks the data bus is busy per burst (BL / 2)
    tRCD: int
    tRP: int
    tRAS: int
    tRC: int
    tRRD_S: int
    tRRD_L: int
    tFAW: int
    tCCD_S: int
    tCCD_L: int
    tWR: int
    tWTR_S: int
    tWTR_L: int
    tRTP: int
    tRFC: int
    tREFI: int
    REFRESH_CREDIT: int    # REF commands that may be postponed (JEDEC: 8)
    tMOD: int
    tMRD: int
    tZQinit: int
    tXPR: int
    tDLLK: int

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def speed_grade(name: str) -> SpeedGrade:
    try:
        return SPEED_GRADES[name]
    except KeyError:
        raise ValueError(f"unknown DDR4 speed grade {name!r}; valid: {', '.join(SPEED_GRADES)}") from None


def geometry(name: str) -> Geometry:
    try:
        return GEOMETRIES[name]
    except KeyError:
        raise ValueError(f"unknown DDR4 device geometry {name!r}; valid: {', '.join(GEOMETRIES)}") from None


def timings(speed: str, geo: str) -> Timing:
    """The speed grade's timings for a device geometry, in clocks."""
    s, g = speed_grade(speed), geometry(geo)
    tck = s.tck_ns
    page = g.page_class
    faw_nck, faw_ns = s.tfaw[page]
    trfc = clocks(TRFC_NS[g.density_gbit], tck)
    return Timing(
        speed=s.name, geometry=g.name, tck_ps=float(tck * 1000),
        CL=s.cl, CWL=s.cwl, BL=8, tBURST=4,
        tRCD=clocks(s.trcd_ns, tck), tRP=clocks(s.trp_ns, tck), tRAS=clocks(s.tras_ns, tck),
        tRC=clocks(s.tras_ns + s.trp_ns, tck),
        tRRD_S=clocks(s.trrd_s_ns[page], tck, 4), tRRD_L=clocks(s.trrd_l_ns[page], tck, 4),
        tFAW=clocks(faw_ns, tck, faw_nck),
        tCCD_S=4, tCCD_L=clocks(5, tck, 5),
        tWR=clocks(15, tck), tWTR_S=clocks(Fraction(5, 2), tck, 2), tWTR_L=clocks(Fraction(15, 2), tck, 4),
        tRTP=clocks(Fraction(15, 2), tck, 4),
        tRFC=trfc, tREFI=clocks(Fraction(7800), tck), REFRESH_CREDIT=8,
        tMOD=clocks(15, tck, 24), tMRD=8, tZQinit=1024, tXPR=clocks(TRFC_NS[g.density_gbit] + 10, tck, 5),
        tDLLK=s.tdllk,
    )


# --------------------------------------------------------------------------------------------
# Commands: the DDR4 command truth table (JESD79-4 table 16, "Command Truth Table") and where a
# command's fields go on the pins. The controller encodes from it (hw/mem/dfi.py), the DRAM model
# decodes from it (hw/mem/dram_model.py), harnesses place pins with `encode_pins` (sim/tb/dram.py).

class Cmd(enum.IntEnum):
    """The commands by name (the trace prints the name); the number is the `cmd` field of the DRAM
    model's trace output."""
    NOP = 0      # also DES (CS_n = H), which the project drives for it (`DES`)
    ACT = 1
    RD = 2
    WR = 3
    PRE = 4
    PREA = 5
    REF = 6
    MRS = 7
    ZQCL = 8
    ZQCS = 9
    RDA = 10     # auto-precharge: legal DDR4, not issued by the controller nor modelled (bad_command)
    WRA = 11
    BAD = 12     # the reserved (RFU) encoding


class Encoding(NamedTuple):
    """One row of the truth table, CS_n = L (H = 1, L = 0). None: the pin does not select the
    command (ACT carries row bits on RAS_n/CAS_n/WE_n, `ACT_ROW_PINS`; A10 is an address or
    op-code bit where it does not tell two commands apart)."""
    act_n: int
    ras_n: int | None
    cas_n: int | None
    we_n: int | None
    a10: int | None

    @property
    def rcw(self) -> int:
        """{RAS_n, CAS_n, WE_n} as a 3-bit number, RAS_n the MSB (not defined for ACT)."""
        return (self.ras_n << 2) | (self.cas_n << 1) | self.we_n


#: JESD79-4 table 16, the rows with CKE high in both clocks (no power-down or self refresh) and
#: BL8 fixed (A12 does not select BC4); command -> (ACT_n, RAS_n, CAS_n, WE_n, A10)
COMMANDS: dict[Cmd, Encoding] = {
    Cmd.NOP: Encoding(act_n=1, ras_n=1, cas_n=1, we_n=1, a10=None),
    Cmd.ACT: Encoding(act_n=0, ras_n=None, cas_n=None, we_n=None, a10=None),
    Cmd.MRS: Encoding(act_n=1, ras_n=0, cas_n=0, we_n=0, a10=None),
    Cmd.REF: Encoding(act_n=1, ras_n=0, cas_n=0, we_n=1, a10=None),
    Cmd.PRE: Encoding(act_n=1, ras_n=0, cas_n=1, we_n=0, a10=0),
    Cmd.PREA: Encoding(act_n=1, ras_n=0, cas_n=1, we_n=0, a10=1),
    Cmd.BAD: Encoding(act_n=1, ras_n=0, cas_n=1, we_n=1, a10=None),     # RFU
    Cmd.WR: Encoding(act_n=1, ras_n=1, cas_n=0, we_n=0, a10=0),
    Cmd.WRA: Encoding(act_n=1, ras_n=1, cas_n=0, we_n=0, a10=1),
    Cmd.RD: Encoding(act_n=1, ras_n=1, cas_n=0, we_n=1, a10=0),
    Cmd.RDA: Encoding(act_n=1, ras_n=1, cas_n=0, we_n=1, a10=1),
    Cmd.ZQCS: Encoding(act_n=1, ras_n=1, cas_n=1, we_n=0, a10=0),
    Cmd.ZQCL: Encoding(act_n=1, ras_n=1, cas_n=1, we_n=0, a10=1),
}

#: the pins the project drives for Cmd.NOP: deselect, the command pins high too (JEDEC: don't care);
#: also the reset value of every DFI phase (all-zero pins would be an ACT)
DES: dict[str, int] = {"cs_n": 1, "act_n": 1, "ras_n": 1, "cas_n": 1, "we_n": 1}

#: ACT: the row's bits ACT_ROW_ADDRESS_BITS-1..0 are on A13:A0, the ones above on these pins (pin -> row bit)
ACT_ROW_ADDRESS_BITS = 14
ACT_ROW_PINS: dict[str, int] = {"ras_n": 16, "cas_n": 15, "we_n": 14}
#: the address pins A17:A0
ADDRESS_BITS = 18
#: A10: auto-precharge on RD/WR, all banks on PRE, long calibration on ZQC
A10 = 10
#: RD/WR: the column on A9:A0
COLUMN_BITS = 10
#: MRS: BG0 and BA1:BA0 select the mode register (MRn: n = bg << MR_BA_BITS | ba), its value is on A17:A0
MR_BA_BITS = 2

#: the commands that address one bank (bg, ba) and those that carry a column
BANK_COMMANDS = frozenset({Cmd.ACT, Cmd.RD, Cmd.WR, Cmd.RDA, Cmd.WRA, Cmd.PRE})
CAS_COMMANDS = frozenset({Cmd.RD, Cmd.WR, Cmd.RDA, Cmd.WRA})


def command(act_n: int, ras_n: int, cas_n: int, we_n: int, a10: int) -> Cmd:
    """The command that the pins encode with CS_n = L: the row of COMMANDS they match (there is
    exactly one for every combination; tests/spec/test_dram.py)."""
    pins = (act_n, ras_n, cas_n, we_n, a10)
    for cmd, enc in COMMANDS.items():
        if all(e is None or e == p for e, p in zip(enc, pins, strict=True)):
            return cmd
    raise ValueError(f"no DDR4 command has the pins ACT_n RAS_n CAS_n WE_n A10 = {pins}")


def encode_pins(cmd: Cmd, *, bg: int = 0, ba: int = 0, row: int = 0, col: int = 0, mr: int = 0,
                value: int = 0) -> dict[str, int]:
    """One DFI phase's pins {cs_n, act_n, ras_n, cas_n, we_n, bg, ba, address} for `cmd`; fields
    that do not apply are 0. ACT takes bg, ba and `row`; RD/WR/RDA/WRA bg, ba and `col` (the
    column, A2:A0 = 0 for BL8); PRE bg, ba; MRS `mr` (the register number) and `value`."""
    cmd = Cmd(cmd)
    if cmd == Cmd.NOP:
        return {**DES, "bg": 0, "ba": 0, "address": 0}
    enc = COMMANDS[cmd]
    out = {"cs_n": 0, "act_n": enc.act_n, "ras_n": enc.ras_n, "cas_n": enc.cas_n, "we_n": enc.we_n,
           "bg": 0, "ba": 0, "address": 0}
    if cmd in BANK_COMMANDS:
        out.update(bg=bg, ba=ba)
    if cmd == Cmd.ACT:
        out.update({pin: (row >> bit) & 1 for pin, bit in ACT_ROW_PINS.items()},
                   address=row & ((1 << ACT_ROW_ADDRESS_BITS) - 1))
    elif cmd in CAS_COMMANDS:
        out["address"] = col & ((1 << COLUMN_BITS) - 1)
    elif cmd == Cmd.MRS:
        out.update(bg=mr >> MR_BA_BITS, ba=mr & ((1 << MR_BA_BITS) - 1), address=value & ((1 << ADDRESS_BITS) - 1))
    if enc.a10:
        out["address"] |= 1 << A10
    return out


def decode_pins(pins: dict) -> tuple[Cmd, dict]:
    """One phase's pins {cs_n, act_n, ras_n, cas_n, we_n, bg, ba, address} -> (command, fields),
    the inverse of `encode_pins`: fields has bg and ba (commands that address a bank), row (ACT),
    col (RD/WR/RDA/WRA), mr and value (MRS). DES decodes as Cmd.NOP."""
    if pins["cs_n"]:
        return Cmd.NOP, {}
    a, bg, ba = pins["address"], pins["bg"], pins["ba"]
    cmd = command(pins["act_n"], pins["ras_n"], pins["cas_n"], pins["we_n"], (a >> A10) & 1)
    fields = {"bg": bg, "ba": ba} if cmd in BANK_COMMANDS else {}
    if cmd == Cmd.ACT:
        fields["row"] = (a & ((1 << ACT_ROW_ADDRESS_BITS) - 1)) | sum(pins[p] << b for p, b in ACT_ROW_PINS.items())
    elif cmd in CAS_COMMANDS:
        fields["col"] = a & ((1 << COLUMN_BITS) - 1)
    elif cmd == Cmd.MRS:
        fields.update(mr=(bg << MR_BA_BITS) | ba, value=a)
    return cmd, fields


# --------------------------------------------------------------------------------------------
# Mode registers (JESD79-4 section 3.5): the fields the controller must program and the model checks.

#: MR0 CAS latency code (A6:A4, A2 as a 4-bit number A6 A5 A4 A2; A12 = 0 for CL <= 24)
MR0_CL = {9: 0b0000, 10: 0b0001, 11: 0b0010, 12: 0b0011, 13: 0b0100, 14: 0b0101, 15: 0b0110, 16: 0b0111,
          18: 0b1000, 20: 0b1001, 22: 0b1010, 24: 0b1011, 23: 0b1100, 17: 0b1101, 19: 0b1110, 21: 0b1111}
#: MR0 write recovery / read-to-precharge code (A11:A9): tWR clocks -> code (tRTP = tWR / 2)
MR0_WR = {10: 0, 12: 1, 14: 2, 16: 3, 18: 4, 20: 6, 22: 5, 24: 7}
#: MR2 CAS write latency code (A5:A3), 1tCK write preamble
MR2_CWL = {9: 0, 10: 1, 11: 2, 12: 3, 14: 4, 16: 5, 18: 6, 20: 7}


def mode_registers(t: Timing) -> dict[int, int]:
    """MR0..MR6 (18-bit A17:A0 values) for timing `t`, in the order the init sequence writes them
    (MR3, MR6, MR5, MR4, MR2, MR1, MR0). MR0 sets BL8 fixed, CL, WR/RTP and DLL reset (A8);
    MR1 enables the DLL; MR2 sets CWL; the others are zero (defaults)."""
    try:
        cl, wr, cwl = MR0_CL[t.CL], MR0_WR[max(t.tWR, 2 * t.tRTP)], MR2_CWL[t.CWL]
    except KeyError as e:
        raise ValueError(f"{t.speed}: no mode-register code for {e.args[0]}") from None
    mr0 = ((cl & 1) << 2) | ((cl >> 1) << 4) | (wr << 9) | (1 << 8)
    return {3: 0, 6: 0, 5: 0, 4: 0, 2: cwl << 3, 1: 1, 0: mr0}


# --------------------------------------------------------------------------------------------
# Address maps: how a channel's line address (byte address // 64) splits into DRAM coordinates.

#: Fields from the least significant bit up. "col" is the burst column (column // 8).
ADDRESS_MAPS: dict[str, tuple[str, ...]] = {
    # bank-group bits just above the 64-byte offset: a stream rotates bank groups (tCCD_S apart)
    "bg_first": ("bg", "col", "ba", "row"),
    # column bits lowest: a stream stays in one bank of one bank group for a whole row (tCCD_L)
    "col_first": ("col", "bg", "ba", "row"),
    # one bank until the row ends, then the next row of the same bank
    "row_first": ("col", "row", "ba", "bg"),
}


#: DDR4 channels one memory system joins (the streamer interleaves lines across 1..MAX_CHANNELS)
MAX_CHANNELS = 4


def check_channels(channels: object) -> int:
    """`channels` if it is a supported channel count (1..MAX_CHANNELS), else ValueError."""
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= MAX_CHANNELS:
        raise ValueError(f"channels must be 1 to {MAX_CHANNELS}, got {channels!r}")
    return channels


@dataclasses.dataclass(frozen=True)
class Channel:
    """One DDR4 channel: the device, the channel width, the rank count, the address map and the DFI
    ratio; everything the controller and the DRAM model are built from.

    `fast_init` shortens the two power-up waits that JEDEC gives in microseconds (RESET_n low
    200 us, then CKE low 500 us) to `t_reset` / `t_cke` clocks; the controller and the model read
    the same values, so a simulation checks the sequence but does not spend 840k clocks on it."""
    speed: str = "DDR4-2400R"
    geometry: str = "8Gb_x8"
    width: int = 64           # DQ bits of the channel
    ranks: int = 1
    address_map: str = "bg_first"
    fast_init: bool = True

    def __post_init__(self):
        speed_grade(self.speed), geometry(self.geometry)
        if self.address_map not in ADDRESS_MAPS:
            raise ValueError(f"unknown address map {self.address_map!r}; valid: {', '.join(ADDRESS_MAPS)}")
        if self.width != 64:
            raise ValueError(f"channel width {self.width}: only x64 channels (64-byte BL8 lines) are supported")
        if self.ranks != 1:
            raise ValueError(f"{self.ranks} ranks: the controller and the model support one rank per channel")

    @property
    def timing(self) -> Timing:
        return timings(self.speed, self.geometry)

    @property
    def geo(self) -> Geometry:
        return geometry(self.geometry)

    nphases = 4               #: DFI frequency ratio 1:4: one controller clock is four DRAM clocks
    line_bytes = 64           #: one BL8 burst on x64

    @property
    def chips(self) -> int:
        return self.width // self.geo.width

    @property
    def bursts_per_row(self) -> int:
        return self.geo.columns // 8

    @property
    def field_bits(self) -> dict[str, int]:
        """Width of every address field, for the map's fields."""
        g = self.geo
        return {"bg": (g.bank_groups - 1).bit_length(), "ba": (g.banks_per_group - 1).bit_length(),
                "col": (self.bursts_per_row - 1).bit_length(), "row": (g.rows - 1).bit_length()}

    @property
    def line_bits(self) -> int:
        """Width of a channel-local line address."""
        return sum(self.field_bits.values())

    @property
    def lines(self) -> int:
        return 1 << self.line_bits

    def split(self, line: int) -> dict[str, int]:
        """Reference address map: line address -> {bg, ba, row, col (burst column)}."""
        if not 0 <= line < self.lines:
            raise ValueError(f"line {line} outside the channel's {self.lines} lines")
        out, fb = {}, self.field_bits
        for f in ADDRESS_MAPS[self.address_map]:
            out[f] = line & ((1 << fb[f]) - 1)
            line >>= fb[f]
        return out

    def join(self, bg: int, ba: int, row: int, col: int) -> int:
        """Inverse of `split`."""
        vals, fb, line, shift = {"bg": bg, "ba": ba, "row": row, "col": col}, self.field_bits, 0, 0
        for f in ADDRESS_MAPS[self.address_map]:
            if not 0 <= vals[f] < (1 << fb[f]):
                raise ValueError(f"{f}={vals[f]} out of range")
            line |= vals[f] << shift
            shift += fb[f]
        return line

    # ---- DFI 1:4 latencies (hw/mem/dfi.py): controller clocks, shared by controller and model ----
    @property
    def wr_latency(self) -> int:
        """A WR issued in controller cycle c takes its burst from dfi wrdata at cycle c + wr_latency
        (the PHY delays it to CWL; CWL >= 8 leaves it room)."""
        return self.timing.CWL // 4 - 1

    @property
    def rd_latency(self) -> int:
        """A RD issued in controller cycle c (any phase) returns its burst on dfi rddata at cycle
        c + rd_latency: the burst ends on the DQ pins by DRAM clock 4c + 3 + CL + 4, plus one
        clock of PHY capture."""
        return (3 + self.timing.CL + 4 + 3) // 4 + 1

    # ---- power-up waits (clocks) ----
    @property
    def t_reset(self) -> int:
        """RESET_n low before it is released (JEDEC: 200 us)."""
        return 64 if self.fast_init else clocks(200_000, speed_grade(self.speed).tck_ns)

    @property
    def t_cke(self) -> int:
        """RESET_n high to CKE high (JEDEC: 500 us)."""
        return 128 if self.fast_init else clocks(500_000, speed_grade(self.speed).tck_ns)


# --------------------------------------------------------------------------------------------
# The JEDEC rules the DRAM model's checker enforces (hw/mem/dram_model.py). A rule's code is its
# index; reports print its name. Every rule has a negative test (tests/hw/mem/test_dram_model.py).

@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    family: str       # bank, bank_group, rank, data_bus, refresh, state
    text: str


RULES: tuple[Rule, ...] = (
    # per bank (same bank)
    Rule("tRCD", "bank", "ACT to RD/WR of the same bank"),
    Rule("tRP", "bank", "PRE to ACT of the same bank; PRE of any bank to REF"),
    Rule("tRAS", "bank", "ACT to PRE of the same bank"),
    Rule("tRC", "bank", "ACT to ACT of the same bank"),
    Rule("tRTP", "bank", "RD to PRE of the same bank"),
    Rule("tWR", "bank", "end of a WR burst (WR + CWL + 4) to PRE of the same bank"),
    # per bank group
    Rule("tCCD_L", "bank_group", "RD/WR to RD/WR in the same bank group"),
    Rule("tRRD_L", "bank_group", "ACT to ACT in the same bank group"),
    Rule("tWTR_L", "bank_group", "end of a WR burst to RD in the same bank group"),
    # per rank
    Rule("tCCD_S", "rank", "RD/WR to RD/WR in another bank group"),
    Rule("tRRD_S", "rank", "ACT to ACT in another bank group"),
    Rule("tWTR_S", "rank", "end of a WR burst to RD in another bank group"),
    Rule("tFAW", "rank", "at most four ACTs in any tFAW window"),
    Rule("tRFC", "rank", "REF to any command but DES"),
    Rule("tMRD", "rank", "MRS to MRS"),
    Rule("tMOD", "rank", "MRS to a non-MRS command"),
    Rule("tXPR", "rank", "CKE high to the first command"),
    Rule("tZQinit", "rank", "ZQCL to any command"),
    Rule("tDLLK", "rank", "MR0 with DLL reset to the first RD/WR"),
    # data bus
    Rule("tRTW", "data_bus", "RD to WR: CL + 4 + 2 - CWL clocks (bus turnaround)"),
    Rule("wrdata", "data_bus", "DFI write data missing at WR + wr_latency, or given without a WR"),
    # refresh
    Rule("refresh_debt", "refresh", "more than REFRESH_CREDIT refreshes owed (one falls due every tREFI)"),
    # state legality
    Rule("act_open", "state", "ACT to a bank that has a row open"),
    Rule("cas_closed", "state", "RD/WR to a bank with no open row"),
    Rule("ref_open", "state", "REF while a bank has a row open"),
    Rule("mrs_open", "state", "MRS while a bank has a row open"),
    Rule("init_order", "state", "a command while RESET_n or CKE is low, CKE high too early, or ACT/RD/WR/REF "
                                "before MR0..MR6 and ZQCL"),
    Rule("mode_register", "state", "MR0/MR2 programmed with a CL, WR or CWL other than the channel's"),
    Rule("bad_command", "state", "reserved encoding, a column not aligned to BL8, auto-precharge (not modelled)"),
)


def rule_code(name: str) -> int:
    for i, r in enumerate(RULES):
        if r.name == name:
            return i
    raise ValueError(f"unknown DRAM rule {name!r}")


def markdown() -> str:
    """The timing tables of docs/memory.md."""
    names = [f.name for f in dataclasses.fields(Timing) if f.name not in ("speed", "geometry")]
    combos = [(s, g) for s in SPEED_GRADES for g in ("8Gb_x8", "8Gb_x16")]
    rows = [timings(s, g) for s, g in combos]
    out = ["| parameter | " + " | ".join(f"{s} {g}" for s, g in combos) + " |",
           "|---|" + "---|" * len(combos)]
    for n in names:
        vals = [getattr(t, n) for t in rows]
        out.append(f"| {n} | " + " | ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in vals) + " |")
    return "\n".join(out) + "\n"


def rules_markdown() -> str:
    """The checker's rule table of docs/memory.md."""
    out = ["| code | rule | family | what it checks |", "|---|---|---|---|"]
    out += [f"| {i} | `{r.name}` | {r.family} | {r.text} |" for i, r in enumerate(RULES)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    import sys
    print(rules_markdown() if sys.argv[1:] == ["--rules"] else markdown(), end="")
