# amaranth: UnusedElaboratable=no
"""hw.boards.clocks: the ECP5 PLL divider solver (every setting inside the PLL's ranges, the output
frequency within tolerance, clear errors), and the board design elaborated for an amaranth-boards
ECP5 platform with and without the PLL (the RTLIL the toolchain would get; no tools run)."""
from __future__ import annotations

import dataclasses
import re

import pytest

from hw.boards import clocks as C


@pytest.mark.parametrize("fin", [12e6, 25e6, 30e6, 48e6, 100e6])
@pytest.mark.parametrize("fout", [50e6, 62.5e6, 75e6, 100e6, 125e6, 150e6])
def test_pll_settings_are_in_range_and_on_frequency(fin, fout):
    try:
        p = C.ecp5_pll(fin, fout)
    except ValueError as e:
        assert "no ECP5 PLL setting" in str(e)
        return
    assert abs(p.fout_mhz - fout / 1e6) <= 0.01 * fout / 1e6
    assert C.ECP5_PLL_PFD[0] <= p.pfd_mhz <= C.ECP5_PLL_PFD[1]
    assert C.ECP5_PLL_VCO[0] <= p.vco_mhz <= C.ECP5_PLL_VCO[1]
    assert 1 <= p.clki_div <= 128 and 1 <= p.clkfb_div <= 80 and 1 <= p.clkop_div <= 128


def test_pll_known_settings():
    p = C.ecp5_pll(25e6, 100e6)            # ULX3S: 25 MHz oscillator
    assert (p.clki_div, p.clkfb_div, p.clkop_div) == (1, 4, 6) and p.vco_mhz == 600
    p = C.ecp5_pll(12e6, 48e6)
    assert p.fout_mhz == 48


def test_pll_errors():
    with pytest.raises(ValueError, match="input 5 MHz is outside"):
        C.ecp5_pll(5e6, 100e6)
    with pytest.raises(ValueError, match="output 500 MHz is outside"):
        C.ecp5_pll(25e6, 500e6)
    with pytest.raises(ValueError, match="nearest (48|52) MHz"):
        C.ecp5_pll(12e6, 50e6)             # the phase detector would run below 3.125 MHz


def _rtlil(freq: float) -> str:
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from golden.machine import default_state_bytes
    from hw.boards.top import BoardTop
    from spec import weight_image as wi
    from spec.accel import get_config
    from spec.models import MICRO
    from sw.artifacts import random_image
    from sw.compile import compile_model

    cfg = dataclasses.replace(get_config("ecp5"), vlen=64, rom_words=256)
    img = wi.read_image(random_image(cfg, MICRO))
    top = BoardTop(cfg, bytes(img.file_bytes()), compile_model(img, vlen=cfg.vlen).words, clk_freq=freq,
                   state_bytes=default_state_bytes(img.model))
    plat = ULX3S_85F_Platform()
    plan = plat.prepare(top, name="top")
    return plan.files["top.il"] if isinstance(plan.files["top.il"], str) else plan.files["top.il"].decode()


def _module(il: str, name: str) -> str:
    start = il.index(f"module \\{name}\n")
    return il[start:il.index("\nend\n", start)]


def _acc_reset_is_a_flip_flop(il: str) -> None:
    """The accelerator's only reset input is `acc_rst`, and in the top it is the Q of a plain
    `$dff`: no LUT (an OR with a domain reset) between the flip-flop and the core's reset pins."""
    acc = _module(il, "top.acc")
    inputs = re.findall(r"^  wire width \d+ input \d+\s+(?:signed\s+)?\\(\S+)$", acc, re.M)
    assert "acc_rst" in inputs and "rst" not in inputs, inputs
    top = _module(il, "top")
    cells = re.findall(r"^  cell (\$\w+) \S+\n((?:    .*\n)*?)  end", top + "\n", re.M)
    drivers = [kind for kind, body in cells if re.search(r"connect \\Q \\acc_rst$", body, re.M)]
    assert drivers == ["$dff"], drivers


def test_board_design_gets_a_pll_only_when_the_clock_differs():
    with_pll = _rtlil(100e6)
    assert "EHXPLLL" in with_pll and "CLKFB_DIV" in with_pll
    _acc_reset_is_a_flip_flop(with_pll)
    direct = _rtlil(25e6)
    assert "EHXPLLL" not in direct
    _acc_reset_is_a_flip_flop(direct)


def test_non_ecp5_board_refuses_a_pll():
    from amaranth.hdl import Module
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    with pytest.raises(ValueError, match="needs a PLL; only ECP5 boards"):
        C.add_sync_clock(Module(), ICEBreakerPlatform(), 50e6)


def test_design_clock_names_its_source():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    f, src = C.design_clock(ULX3S_85F_Platform(), None)
    assert f == 25e6 and "board oscillator" in src
    f, src = C.design_clock(ULX3S_85F_Platform(), 100e6)
    assert f == 100e6 and "ECP5 PLL" in src and "CLKFB_DIV 4" in src
    assert C.design_clock(ICEBreakerPlatform(), 12e6)[0] == 12e6
    with pytest.raises(ValueError, match="only ECP5 boards"):
        C.design_clock(ICEBreakerPlatform(), 24e6)
