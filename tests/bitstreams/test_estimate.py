"""bitstreams.estimate: resources from RTLIL text before synthesis (hand-written RTLIL), the estimate
of the measured board builds of docs/boards.md within 25 %, and make bitstream refusing a design
that cannot fit in seconds, naming the estimated and available LUTs, block RAMs and DSPs."""
from __future__ import annotations

import dataclasses
import time

import pytest

from bitstreams import build as B
from bitstreams.estimate import DEVICES, Estimate, estimate, fits
from spec.accel import get_config

RTLIL = """module \\top
  memory width 48 size 4097 \\sig
  memory width 36 size 512 \\ram
  memory width 8 size 16 \\tiny
  cell $memrd_v2 $1
    parameter \\MEMID "\\\\sig"
    parameter \\WIDTH 48
  end
  cell $memrd_v2 $2
    parameter \\MEMID "\\\\sig"
    parameter \\WIDTH 48
  end
  cell $memrd_v2 $3
    parameter \\MEMID "\\\\ram"
  end
  cell $memwr_v2 $4
    parameter \\MEMID "\\\\ram"
  end
  cell $mul $5
    parameter \\A_WIDTH 48
    parameter \\B_WIDTH 48
    parameter \\Y_WIDTH 96
    connect \\A \\a
    connect \\B \\b
  end
  cell $mul $6
    parameter \\A_WIDTH 48
    parameter \\B_WIDTH 8
    parameter \\Y_WIDTH 56
    connect \\A \\a
    connect \\B 8'11111110
  end
  cell $add $7
    parameter \\A_WIDTH 32
    parameter \\B_WIDTH 32
    parameter \\Y_WIDTH 32
  end
  cell $dff $8
    parameter \\WIDTH 32
  end
end
"""


def test_memories_multiplications_and_logic_of_hand_written_rtlil():
    e = estimate(RTLIL, "ecp5")
    mems = {n: (w, d, b) for n, w, d, b in e.memories}
    # a ROM of 48 x 4097 with two reads: one copy of min(blocks) serves both ports (1024x18: 3 x 5)
    assert mems["sig"] == (48, 4097, 15)
    assert mems["ram"] == (36, 512, 1)                      # written: one read per copy
    assert mems["tiny"][2] == 0                             # 128 bits: LUT RAM
    assert e.brams == 16
    assert e.dsps == 9                                      # 48x48: 3 x 3 tiles of 18x18; by a constant: none
    assert e.ffs == 32
    ice = estimate(RTLIL, "ice40", dsps_available=0)
    assert ice.dsps == 0 and ice.luts > e.luts              # the 48x48 product in logic
    assert dict((n, b) for n, _, _, b in ice.memories)["sig"] == 2 * 3 * 17    # 256x16 blocks, one read each


def test_fits_names_what_is_over():
    dev = DEVICES["iCE40UP5K"]
    assert fits(Estimate("ice40", 5000, 0, 30, 8, []), dev) == []
    assert fits(Estimate("ice40", 6000, 0, 30, 8, []), dev) == []            # within the 25 % LUT margin
    over = fits(Estimate("ice40", 60_000, 0, 31, 9, [("sig", 48, 4097, 31)]), dev)
    assert over[0] == "LUTs: about 60,000 estimated, the iCE40UP5K has 5,280"
    assert over[1].startswith("block RAMs: 31 needed (sig 48x4097: 31") and over[1].endswith("has 30")
    assert over[2] == "DSPs: 9 needed, the iCE40UP5K has 8"


@pytest.mark.parametrize(("board", "config", "model", "measured"), [
    # measured with yowasp yosys (synth_ecp5 / synth_ice40 of the board top, as make bitstream runs it):
    # LUTs (LUT4 + 2 per CCU2C, or iCE40 logic cells), block RAMs, DSPs. The ECP5 rows are
    # `python -m bitstreams --board ulx3s_85f [--vector-lanes 1]`: the 4-lane row of the core with
    # the register file's registered ports (top.rpt: 47,986 LUT4 + 5,837 CCU2C), the 1-lane row of
    # the core with the registered issue and the banked on-chip memory (27,468 + 2,536);
    # the iCE40 row is `python -m bitstreams --board icebreaker --no-fit-check` of the same core
    # (nextpnr's packed ICESTORM_LC and RAM count; it then fails placement for want of RAM).
    ("ulx3s_85f", {}, "tiny", (59_660, 124, 91)),
    ("ulx3s_85f", {"vector_lanes": 1}, "tiny", (32_540, 87, 25)),
    ("icebreaker", {}, "micro", (48_547, 107, 0)),
])
def test_the_measured_builds_are_estimated_within_25_percent(board, config, model, measured):
    from hw.boards.top import BoardTop

    b = B.BOARDS[board]
    cfg = dataclasses.replace(get_config(b.config), **config)
    m = B.load_model(model, cfg)
    top = BoardTop(cfg, m.image_bytes, m.program, clk_freq=25e6, state_bytes=m.state_bytes)
    est = B.estimate_board(top, B.make_platform(b).device)
    for got, want in zip((est["luts"], est["brams"], est["dsps"]), measured, strict=True):
        assert abs(got - want) <= 0.25 * want, (est, measured)


def test_a_design_that_cannot_fit_is_refused_in_seconds(tmp_path, monkeypatch):
    """make bitstream BOARD=icebreaker: the ice40 config needs ~11x the UP5K's logic and ~4x its
    block RAM; the build stops before synthesis and names both sides."""
    def no_synthesis(*a, **kw):
        raise AssertionError("the toolchain must not run for a design that cannot fit")

    monkeypatch.setattr(B, "run_script", no_synthesis)
    t0 = time.perf_counter()
    with pytest.raises(B.BuildError) as e:
        B.build("icebreaker", out_dir=tmp_path)
    msg = str(e.value)
    assert "cannot fit the icebreaker's iCE40UP5K" in msg
    assert "the iCE40UP5K has 5,280" in msg and "the iCE40UP5K has 30" in msg
    assert time.perf_counter() - t0 < 60
