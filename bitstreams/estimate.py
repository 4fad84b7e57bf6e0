"""A design's FPGA resources estimated from its RTLIL in seconds, before any synthesis.

    est = estimate(rtlil_text, "ice40")       # Estimate(luts, ffs, brams, dsps, memories)
    fits(est, DEVICES["iCE40UP5K"])           # [] or the resources that do not fit, one line each

`make bitstream` runs this first and refuses a design that cannot fit its board, naming the
estimated and available LUTs, block RAMs and DSPs, instead of synthesizing for ten minutes and
failing in place and route.

The RTLIL (amaranth.back.rtlil, one module per instance) is read as text:

* Block RAMs are counted from the memories (`memory width W size N`): each takes, per read port,
  the fewest blocks of any one aspect ratio of the family's RAM (ECP5 DP16KD: 512x36 .. 16384x1;
  iCE40 SB_RAM40_4K: 256x16 .. 2048x2). Memories under `LUTRAM_BITS` go to LUTs (ECP5
  distributed RAM) or flip-flops and muxes (iCE40). This is close to what yosys maps.
* DSPs: every multiplication, as tiles of the family's multiplier (ECP5 MULT18X18D 18x18, iCE40
  SB_MAC16 16x16); the products that do not fit the device's DSPs are counted in LUTs.
* LUTs: a cost per cell by kind and width (`LUT_COST`: an adder or comparator one LUT per bit,
  equality half, a mux half per bit, barrel shifters by their stages, bitwise logic a quarter, as
  it mostly merges into neighbouring LUTs; a process's case arms as muxes), scaled per family by
  `FAMILY_SCALE`, fitted to measured syntheses: ECP5 to two earlier ULX3S board designs (the
  `ecp5` config: 61,853 LUT4 from yosys; beat 64 with one vector lane: 50,198; the scale 0.66 put
  both within 19 %), iCE40 to the `ice40` config on the iCEBreaker (60,695 logic cells).

It is an estimate: tests/bitstreams/test_estimate.py holds it within 25 % of the present core's
builds (`python -m bitstreams --board ulx3s_85f [--vector-lanes 1]`, `--board icebreaker`): good
for "does not fit by a factor", not for a last few percent, so `make bitstream` refuses only
beyond `REFUSE_FACTOR` of a resource, or any DSP or block RAM over the device's count.
"""
from __future__ import annotations

import dataclasses
import math
import re

__all__ = ["DEVICES", "Device", "Estimate", "estimate", "fits"]


@dataclasses.dataclass(frozen=True)
class Device:
    name: str
    family: str          # "ecp5" | "ice40"
    luts: int            # LUT4 (ECP5 TRELLIS_COMB) / logic cells (iCE40)
    brams: int           # DP16KD (18 Kbit) / SB_RAM40_4K (4 Kbit)
    dsps: int            # MULT18X18D / SB_MAC16


#: the devices of the supported boards (Lattice data sheets: ECP5 family FPGA-DS-02012, table 1.1;
#: iCE40 UltraPlus FPGA-DS-02008, table 1.1)
DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("LFE5U-85F", "ecp5", 83_640, 208, 156),
    Device("LFE5UM5G-85F", "ecp5", 83_640, 208, 156),
    Device("LFE5U-45F", "ecp5", 43_848, 108, 72),
    Device("LFE5U-25F", "ecp5", 24_288, 56, 28),
    Device("iCE40UP5K", "ice40", 5_280, 30, 8),
)}

#: block RAM aspect ratios (depth, width) per family
_BRAM_SHAPES = {"ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),
                "ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2))}
#: multiplier tile per family (bits of each operand)
_DSP_BITS = {"ecp5": 18, "ice40": 16}
#: memories of fewer bits go to LUTs / flip-flops; on ECP5 so do shallow ones (distributed RAM)
LUTRAM_BITS = 1024
LUTRAM_DEPTH = 64
#: LUT cost per bit of width, by RTLIL cell type (before FAMILY_SCALE)
LUT_COST = {
    "$add": 1.0, "$sub": 1.0, "$neg": 1.0, "$lt": 1.0, "$le": 1.0, "$gt": 1.0, "$ge": 1.0,
    "$eq": 0.5, "$ne": 0.5, "$mux": 0.5,
    "$and": 0.25, "$or": 0.25, "$xor": 0.25, "$xnor": 0.25, "$not": 0.25,
    "$reduce_and": 0.25, "$reduce_or": 0.25, "$reduce_xor": 0.25, "$reduce_bool": 0.25,
    "$logic_and": 0.25, "$logic_or": 0.25, "$logic_not": 0.25,
}
_SHIFTS = ("$shl", "$shr", "$sshl", "$sshr", "$shift", "$shiftx")
#: per-family factor on the summed costs, fitted to the measured builds (module docstring)
FAMILY_SCALE = {"ecp5": 0.66, "ice40": 1.0}
#: make bitstream refuses a design whose LUT estimate exceeds the device by this factor
REFUSE_FACTOR = 1.25


@dataclasses.dataclass
class Estimate:
    family: str
    luts: int
    ffs: int
    brams: int
    dsps: int
    memories: list[tuple[str, int, int, int]]   # (name, width, depth, blocks)


_CELL = re.compile(r"^\s*cell (\S+) (\S+)")
_PARAM = re.compile(r"^\s*parameter \\(\w+) (.+)$")
_MEMORY = re.compile(r"^\s*memory width (\d+) size (\d+) (\S+)")
_ASSIGN = re.compile(r"^\s*assign \S+ \[(\d+):(\d+)\] (\S+)")
_ASSIGN_WHOLE = re.compile(r"^\s*assign (\S+) (\S+)$")


def _int(v: str) -> int:
    v = v.strip()
    if "'" in v:
        bits = v.split("'", 1)[1]
        return int(bits.replace("x", "0").replace("z", "0"), 2) if bits else 0
    return int(v)


def _blocks(width: int, depth: int, family: str) -> int:
    return min(math.ceil(width / w) * math.ceil(depth / d) for d, w in _BRAM_SHAPES[family])


def estimate(rtlil: str, family: str, dsps_available: int | None = None) -> Estimate:
    """The resources of the design in `rtlil` (every module of it, as amaranth writes one per
    instance) on a device of `family`; multiplications beyond `dsps_available` tiles go to LUTs."""
    if family not in _BRAM_SHAPES:
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(_BRAM_SHAPES)}")
    luts = 0.0
    ffs = 0
    dsp_tiles: list[tuple[int, int]] = []     # (tiles, LUTs if in fabric) per multiplication
    mems: dict[str, tuple[int, int]] = {}
    ports: dict[tuple[str, str], int] = {}     # (memory, $memrd_v2 | $memwr_v2) -> ports
    module = ""
    cell: tuple[str, dict[str, int]] | None = None
    in_process = 0

    def close_cell() -> None:
        nonlocal luts, ffs
        if cell is None:
            return
        t, p = cell
        w = max(p.get("Y_WIDTH", 0), p.get("A_WIDTH", 0), p.get("B_WIDTH", 0), p.get("WIDTH", 0))
        if t in LUT_COST:
            luts += LUT_COST[t] * w
        elif t == "$mul" and p.get("CONST_OPERAND"):
            luts += 2 * p.get("Y_WIDTH", w)          # by a constant: shifts and adds, no DSP
        elif t == "$mul":
            a, b = p.get("A_WIDTH", 1), p.get("B_WIDTH", 1)
            tile = _DSP_BITS[family]
            dsp_tiles.append((math.ceil(a / tile) * math.ceil(b / tile), a * b // 2))
            luts += p.get("Y_WIDTH", a + b) * (1 if a > tile or b > tile else 0)   # the partial-product adders
        elif t in _SHIFTS:
            luts += p.get("Y_WIDTH", w) * max(1, math.ceil(math.log2(max(p.get("B_WIDTH", 1), 1) + 1))) * 0.5
        elif t in ("$pmux", "$bmux"):
            s = p.get("S_WIDTH", 1)
            luts += p.get("WIDTH", w) * (s if t == "$pmux" else 2 ** s) * 0.5
        elif t in ("$dff", "$adff", "$sdff", "$dffe", "$adffe", "$sdffe", "$sdffce", "$aldff", "$dffsr"):
            ffs += p.get("WIDTH", 0)
        elif t in ("$memrd_v2", "$memwr_v2"):
            key = (f"{module}/{p.get('MEMID_NAME', '')}", t)
            ports[key] = ports.get(key, 0) + 1

    for line in rtlil.splitlines():
        s = line.strip()
        if s.startswith("module "):
            module = s.split(" ", 1)[1]
            continue
        if s.startswith("process "):
            in_process += 1
            continue
        m = _MEMORY.match(line)
        if m:
            mems[f"{module}/{m.group(3)}"] = (int(m.group(1)), int(m.group(2)))
            continue
        m = _CELL.match(line)
        if m:
            close_cell()
            cell = (m.group(1), {})
            continue
        if cell is not None:
            m = _PARAM.match(line)
            if m:
                if m.group(1) == "MEMID":
                    cell[1]["MEMID_NAME"] = m.group(2).strip().strip('"').replace("\\\\", "\\")
                else:
                    try:
                        cell[1][m.group(1)] = _int(m.group(2))
                    except ValueError:
                        pass
                continue
            if s.startswith(("connect \\A ", "connect \\B ")) and re.match(r"^\d+'[01xz]+$", s.split(" ", 2)[2]):
                cell[1]["CONST_OPERAND"] = 1
            if s == "end":
                close_cell()
                cell = None
            continue
        if in_process:
            if s == "end" and line.startswith("  end"):
                in_process -= 1
                continue
            # a case arm that assigns a non-constant value is a mux of the assigned width
            if line.startswith("      ") and s.startswith("assign "):
                m = _ASSIGN.match(line)
                if m and not re.match(r"^\d+'", m.group(3)):
                    luts += 0.5 * (int(m.group(1)) - int(m.group(2)) + 1)
    close_cell()

    memories, brams = [], 0
    for key, (width, depth) in mems.items():
        n_reads = max(1, ports.get((key, "$memrd_v2"), 1))
        written = ports.get((key, "$memwr_v2"), 0) > 0
        # a block RAM has two ports: a ROM serves two reads per copy, a written memory one
        copies = n_reads if written or family == "ice40" else math.ceil(n_reads / 2)
        if width * depth < LUTRAM_BITS or (family == "ecp5" and depth <= LUTRAM_DEPTH):
            if family == "ice40":
                ffs += width * depth
                luts += width * depth * 0.5
            else:
                # distributed RAM is 16 words deep per TRELLIS_DPR16X4, so a memory of up to 16
                # words costs the same whatever its depth (calibrated on the units' read queues)
                luts += width * (4 if depth <= 16 else depth) / 16 * n_reads
            blocks = 0
        else:
            blocks = _blocks(width, depth, family) * copies
        brams += blocks
        memories.append((key.split("/", 1)[1].lstrip("\\"), width, depth, blocks))
    dsps = 0
    for tiles, fabric in sorted(dsp_tiles):
        if dsps_available is None or dsps + tiles <= dsps_available:
            dsps += tiles
        else:
            luts += fabric
    luts *= FAMILY_SCALE[family]
    return Estimate(family, round(luts), ffs, brams, dsps, sorted(memories, key=lambda m: -m[3]))


def fits(est: Estimate, device: Device, factor: float = REFUSE_FACTOR) -> list[str]:
    """The resources `est` needs beyond `device` (LUTs beyond `factor` times the device's), one
    line each, naming the estimate and the device's count; [] when it may fit."""
    out = []
    if est.luts > factor * device.luts:
        out.append(f"LUTs: about {est.luts:,} estimated, the {device.name} has {device.luts:,}")
    if est.brams > device.brams:
        big = ", ".join(f"{n} {w}x{d}: {b}" for n, w, d, b in est.memories[:4] if b)
        out.append(f"block RAMs: {est.brams} needed ({big}, ...), the {device.name} has {device.brams}")
    if est.dsps > device.dsps:
        out.append(f"DSPs: {est.dsps} needed, the {device.name} has {device.dsps}")
    return out
