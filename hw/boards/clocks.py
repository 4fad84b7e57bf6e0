"""The board design's clock: the board oscillator as it is, or an ECP5 PLL (EHXPLLL) that makes the
frequency the design is built for (docs/boards.md).

    f, rst = add_sync_clock(m, platform, 100e6)   # the PLL's output frequency (Hz), the reset

`ecp5_pll(fin, fout)` solves the EHXPLLL dividers: the output is fin * CLKFB_DIV / CLKI_DIV with
the feedback taken from CLKOP, within the PLL's ranges (Lattice TN1263: input 8-400 MHz, phase
detector 3.125-400 MHz, VCO 400-800 MHz, output 3.125-400 MHz). The divider set that comes
closest to `fout` wins; ties go to the VCO frequency nearest the middle of its range.

On ECP5 the `sync` domain has no reset of its own: `add_sync_clock` returns the reset as a
flip-flop, held until the PLL reports lock, for the design to apply where it wants one (with
`ResetInserter`) and to derive other resets from. A domain reset would be ORed by Amaranth into
every reset derived from it: one LUT between the flip-flop and every reset pin, on a net of
thousands of sinks.
"""
from __future__ import annotations

import dataclasses

from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import AsyncFFSynchronizer

__all__ = ["EcpPll", "add_sync_clock", "design_clock", "ecp5_pll"]

#: EHXPLLL ranges in MHz (Lattice TN1263, ECP5 and ECP5-5G sysCLOCK PLL/DLL design guide)
ECP5_PLL_IN = (8.0, 400.0)
ECP5_PLL_PFD = (3.125, 400.0)
ECP5_PLL_VCO = (400.0, 800.0)
ECP5_PLL_OUT = (3.125, 400.0)


@dataclasses.dataclass(frozen=True)
class EcpPll:
    clki_div: int
    clkfb_div: int
    clkop_div: int
    fin_mhz: float

    @property
    def fout_mhz(self) -> float:
        return self.fin_mhz * self.clkfb_div / self.clki_div

    @property
    def vco_mhz(self) -> float:
        return self.fout_mhz * self.clkop_div

    @property
    def pfd_mhz(self) -> float:
        return self.fin_mhz / self.clki_div


def ecp5_pll(fin_hz: float, fout_hz: float, tolerance: float = 0.01) -> EcpPll:
    """The EHXPLLL dividers for `fout_hz` from `fin_hz`; ValueError when no setting is within
    `tolerance` (relative) of the request or the input is out of range."""
    fin, fout = fin_hz / 1e6, fout_hz / 1e6
    if not ECP5_PLL_IN[0] <= fin <= ECP5_PLL_IN[1]:
        raise ValueError(f"ECP5 PLL input {fin:g} MHz is outside {ECP5_PLL_IN[0]:g}-{ECP5_PLL_IN[1]:g} MHz")
    if not ECP5_PLL_OUT[0] <= fout <= ECP5_PLL_OUT[1]:
        raise ValueError(f"ECP5 PLL output {fout:g} MHz is outside {ECP5_PLL_OUT[0]:g}-{ECP5_PLL_OUT[1]:g} MHz")
    best = None
    for ri in range(1, 129):
        pfd = fin / ri
        if pfd < ECP5_PLL_PFD[0]:
            break
        if pfd > ECP5_PLL_PFD[1]:
            continue
        for fb in range(1, 81):
            out = pfd * fb
            if out > ECP5_PLL_OUT[1]:
                break
            if out < ECP5_PLL_OUT[0]:
                continue
            for op in range(1, 129):
                vco = out * op
                if vco > ECP5_PLL_VCO[1]:
                    break
                if vco < ECP5_PLL_VCO[0]:
                    continue
                key = (abs(out - fout), abs(vco - sum(ECP5_PLL_VCO) / 2))
                if best is None or key < best[0]:
                    best = (key, EcpPll(ri, fb, op, fin))
    if best is None or best[0][0] > tolerance * fout:
        near = f"; nearest {best[1].fout_mhz:g} MHz" if best else ""
        raise ValueError(f"no ECP5 PLL setting makes {fout:g} MHz from {fin:g} MHz within {tolerance:.0%}{near}")
    return best[1]


def design_clock(platform, freq_hz: float | None) -> tuple[float, str]:
    """The frequency (Hz) the board design will run at for a requested `freq_hz` (None: the board
    clock's), and where it comes from: the same decision as add_sync_clock."""
    fin = float(platform.default_clk_frequency)
    if freq_hz is None or abs(fin - freq_hz) <= 1e-6 * fin:
        return fin, f"board oscillator ({fin / 1e6:g} MHz, the platform's default clock)"
    if getattr(platform, "family", None) != "ecp5":
        raise ValueError(f"a {freq_hz / 1e6:g} MHz clock needs a PLL; only ECP5 boards get one here "
                         f"(this board's clock is {fin / 1e6:g} MHz)")
    pll = ecp5_pll(fin, freq_hz)
    return pll.fout_mhz * 1e6, (f"ECP5 PLL from the {fin / 1e6:g} MHz oscillator (CLKI_DIV {pll.clki_div}, "
                                f"CLKFB_DIV {pll.clkfb_div}, CLKOP_DIV {pll.clkop_div}, VCO {pll.vco_mhz:g} MHz)")


def add_sync_clock(m: Module, platform, freq_hz: float) -> tuple[float, Signal | None]:
    """Make `m`'s `sync` domain run at `freq_hz` on `platform`; returns its frequency (Hz) and its
    reset.

    On ECP5: the board clock as it is, or an ECP5 PLL from it, in a `sync` domain without a reset
    of its own; the returned reset is a flip-flop (`sync`), high from configuration until the PLL
    locks (and while the board's reset button, if any, is pressed), for the caller to apply.
    Elsewhere (no PLL here): the platform makes its own `sync` domain, reset included, and the
    returned reset is None."""
    fin = float(platform.default_clk_frequency)
    freq, _ = design_clock(platform, freq_hz)
    if getattr(platform, "family", None) != "ecp5":
        return fin, None
    m.domains.sync = ClockDomain("sync", reset_less=True)
    m.submodules.clk_buf = clk_buf = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
    hold = Signal()
    if freq == fin:
        m.d.comb += ClockSignal("sync").eq(clk_buf.i)
    else:
        pll = ecp5_pll(fin, freq_hz)
        out, locked = Signal(), Signal()
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{pll.fin_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{pll.fout_mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED", p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB", p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=pll.clki_div, p_CLKFB_DIV=pll.clkfb_div, p_FEEDBK_PATH="CLKOP",
            p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll.clkop_div, p_CLKOP_CPHASE=pll.clkop_div - 1, p_CLKOP_FPHASE=0,
            i_CLKI=clk_buf.i, i_CLKFB=out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1,
            i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=out, o_LOCK=locked)
        m.d.comb += [ClockSignal("sync").eq(out), hold.eq(~locked)]
        freq = pll.fout_mhz * 1e6
    if platform.default_rst is not None:
        m.submodules.rst_buf = rst_buf = io.Buffer("i", platform.request(platform.default_rst, dir="-"))
        hold = hold | rst_buf.i
    # asserted at once, released on a `sync` edge; its flip-flops start high at configuration
    rst = Signal(name="board_rst")
    m.submodules.rst_sync = AsyncFFSynchronizer(hold, rst, o_domain="sync")
    return freq, rst
