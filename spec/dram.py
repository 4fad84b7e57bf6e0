"""DDR4 timing and geometry, defined once: speed grades, device geometries, conversion to clocks.

Every DRAM-facing layer derives its numbers from here: the controller's counters (hw/mem), the
DFI-side DRAM model and its JEDEC checker, the benchmarks and docs/memory.md
(`python -m spec.dram` prints its tables). Sources: JEDEC JESD79-4 (DDR4 SDRAM) speed bins and
timing tables, the Micron 8 Gb DDR4 data sheet; the clock counts for DDR4-2400 x8 agree with
../shared/reference/dram.md (tested).

Conversion to clocks: a timing given in time is rounded up to whole clocks with JEDEC's
guard band for tCK's own rounding (JESD79-4 / JESD21-C "rounding algorithms": a value that is
within 2.5 % above an integer number of clocks rounds down to it), computed with the exact clock
period (2000 / data rate ns): nCK = ceil(t / tCK - 0.025). A timing given as max(n nCK, t) takes
the larger of the two.
"""
from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

__all__ = ["GEOMETRIES", "SPEED_GRADES", "Geometry", "SpeedGrade", "Timing", "clocks", "geometry", "speed_grade",
           "timings"]

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


if __name__ == "__main__":
    print(markdown(), end="")
