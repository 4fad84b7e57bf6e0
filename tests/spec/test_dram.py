"""spec.dram: DDR4 speed grades and geometries converted to clocks, against the reference figures
(../shared/reference/dram.md, DDR4-2400 8 Gb x8 and x16) and the JEDEC rounding rule."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from spec import dram

ROOT = Path(__file__).resolve().parents[2]

# ../shared/reference/dram.md, DDR4-2400, 8 Gb x8, one rank
REFERENCE_2400_X8 = {
    "CWL": 12, "tRAS": 39, "tRRD_S": 4, "tRRD_L": 6, "tFAW": 26, "tCCD_S": 4, "tCCD_L": 6, "tWR": 18,
    "tWTR_S": 3, "tWTR_L": 9, "tRTP": 9, "tRFC": 420, "tREFI": 9360, "REFRESH_CREDIT": 8, "tBURST": 4,
}


def test_ddr4_2400_x8_matches_the_reference_table():
    t = dram.timings("DDR4-2400R", "8Gb_x8")
    for name, clocks in REFERENCE_2400_X8.items():
        assert getattr(t, name) == clocks, name
    assert (t.CL, t.tRCD, t.tRP, t.tRC) == (16, 16, 16, 55)
    t = dram.timings("DDR4-2400T", "8Gb_x8")
    assert (t.CL, t.tRCD, t.tRP) == (17, 17, 17)


def test_ddr4_2400_x16_reference_rows():
    t = dram.timings("DDR4-2400R", "8Gb_x16")
    assert (t.tRRD_S, t.tRRD_L, t.tFAW) == (7, 8, 36)
    assert dram.geometry("8Gb_x16").bank_groups == 2 and dram.geometry("8Gb_x8").bank_groups == 4


def test_refresh_costs_four_and_a_half_percent_at_2400():
    t = dram.timings("DDR4-2400R", "8Gb_x8")
    assert round(t.tRFC / t.tREFI, 3) == 0.045


def test_ddr4_3200_grade():
    t = dram.timings("DDR4-3200AA", "8Gb_x8")
    assert t.tck_ps == 625.0
    assert (t.CL, t.tRCD, t.tRP, t.tRAS, t.tCCD_L, t.tWR, t.tRFC, t.tREFI) == (22, 22, 22, 52, 8, 24, 560, 12480)


def test_rounding_rule():
    tck = Fraction(2, 3)              # 1.5 GHz, for round numbers
    assert dram.clocks(2, tck) == 3                               # an exact multiple stays
    assert dram.clocks(Fraction(2) + tck * Fraction(2, 100), tck) == 3   # within the 2.5 % guard band
    assert dram.clocks(Fraction(2) + tck * Fraction(3, 100), tck) == 4   # beyond it: next clock
    assert dram.clocks(1, tck, min_nck=4) == 4                    # max(n nCK, t)
    assert dram.clocks(0, tck) == 0
    with pytest.raises(ValueError, match="negative timing"):
        dram.clocks(-1, tck)


@pytest.mark.parametrize("speed", sorted(dram.SPEED_GRADES))
@pytest.mark.parametrize("geo", sorted(dram.GEOMETRIES))
def test_every_combination_is_consistent(speed, geo):
    t = dram.timings(speed, geo)
    assert t.tRC >= t.tRAS + t.tRP - 1          # rounding of the sum, never far below the parts
    assert t.tCCD_L >= t.tCCD_S == t.tBURST and t.tRRD_L >= t.tRRD_S >= 4
    assert t.tFAW >= 4 * t.tRRD_S               # the four-activate window is never the looser bound
    assert t.tREFI > 10 * t.tRFC


def test_unknown_names_are_reported():
    with pytest.raises(ValueError, match="unknown DDR4 speed grade 'DDR4-9999'"):
        dram.timings("DDR4-9999", "8Gb_x8")
    with pytest.raises(ValueError, match="unknown DDR4 device geometry '8Gb_x4'"):
        dram.timings("DDR4-2400R", "8Gb_x4")


def test_docs_memory_timing_table_is_generated():
    doc = (ROOT / "docs" / "memory.md").read_text()
    assert dram.markdown() in doc, "docs/memory.md is stale: regenerate its table with python -m spec.dram"
