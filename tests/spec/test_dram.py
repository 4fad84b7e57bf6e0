"""spec.dram: DDR4 speed grades and geometries converted to clocks, against the reference figures
(../shared/reference/dram.md, DDR4-2400 8 Gb x8 and x16) and the JEDEC rounding rule."""
from __future__ import annotations

import itertools
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
    assert dram.rules_markdown() in doc, "docs/memory.md is stale: regenerate with python -m spec.dram --rules"


@pytest.mark.parametrize("amap", sorted(dram.ADDRESS_MAPS))
@pytest.mark.parametrize("geo", ["8Gb_x8", "8Gb_x16", "16Gb_x8"])
def test_address_maps_split_and_join(amap, geo):
    import random
    ch = dram.Channel("DDR4-2400R", geo, address_map=amap)
    g = ch.geo
    assert ch.lines * ch.line_bytes == ch.chips * g.density_gbit * 2**30 // 8     # the whole channel, once
    rng = random.Random(1)
    for line in [0, ch.lines - 1] + [rng.randrange(ch.lines) for _ in range(200)]:
        f = ch.split(line)
        assert f["bg"] < g.bank_groups and f["ba"] < g.banks_per_group and f["row"] < g.rows
        assert f["col"] < ch.bursts_per_row
        assert ch.join(**f) == line
    with pytest.raises(ValueError, match="outside"):
        ch.split(ch.lines)


def test_bg_first_rotates_bank_groups_and_col_first_does_not():
    bg = dram.Channel(address_map="bg_first")
    col = dram.Channel(address_map="col_first")
    assert [bg.split(i)["bg"] for i in range(8)] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert {col.split(i)["bg"] for i in range(col.bursts_per_row)} == {0}
    row = dram.Channel(address_map="row_first")
    assert row.split(row.bursts_per_row) == {"col": 0, "row": 1, "ba": 0, "bg": 0}


def test_mode_registers_encode_the_channel_latencies():
    t = dram.timings("DDR4-2400R", "8Gb_x8")
    mr = dram.mode_registers(t)
    assert list(mr) == [3, 6, 5, 4, 2, 1, 0]                    # JEDEC's programming order
    cl_code = ((mr[0] >> 2) & 1) | (((mr[0] >> 4) & 7) << 1)
    assert cl_code == dram.MR0_CL[16] == 0b0111
    assert (mr[0] >> 9) & 7 == dram.MR0_WR[18] and (mr[0] >> 8) & 1     # WR 18 / RTP 9, DLL reset
    assert (mr[2] >> 3) & 7 == dram.MR2_CWL[12]
    for s in dram.SPEED_GRADES:
        for g in dram.GEOMETRIES:
            dram.mode_registers(dram.timings(s, g))                 # every combination has codes


def test_channel_validation_and_dfi_latencies():
    with pytest.raises(ValueError, match="unknown address map"):
        dram.Channel(address_map="diagonal")
    with pytest.raises(ValueError, match="x64"):
        dram.Channel(width=32)
    with pytest.raises(ValueError, match="one rank"):
        dram.Channel(ranks=2)
    ch = dram.Channel()
    t = ch.timing
    # write data reaches the PHY before CWL; read data is back after the burst left the pins
    assert 4 * (ch.wr_latency + 1) <= t.CWL
    assert 4 * ch.rd_latency >= 3 + t.CL + t.tBURST
    assert ch.t_reset < ch.t_cke and dram.Channel(fast_init=False).t_reset == 240_000


def test_rules_are_named_once_and_grouped_in_families():
    names = [r.name for r in dram.RULES]
    assert len(names) == len(set(names))
    assert {r.family for r in dram.RULES} == {"bank", "bank_group", "rank", "data_bus", "refresh", "state"}
    assert dram.RULES[dram.rule_code("tFAW")].name == "tFAW"
    with pytest.raises(ValueError, match="unknown DRAM rule"):
        dram.rule_code("tXYZ")


def test_channel_count_is_checked_in_one_place():
    from spec.dram import MAX_CHANNELS, check_channels

    assert [check_channels(n) for n in range(1, MAX_CHANNELS + 1)] == list(range(1, MAX_CHANNELS + 1))
    for bad in (0, MAX_CHANNELS + 1, "2", 2.0, True):
        with pytest.raises(ValueError, match=f"channels must be 1 to {MAX_CHANNELS}"):
            check_channels(bad)


# --------------------------------------------------------------------------------------------
# The command truth table

# JESD79-4 table 16 (Command Truth Table), CS_n = L, the columns ACT_n RAS_n CAS_n WE_n A10
# (V or X: not part of the command), transcribed here to check spec.dram.COMMANDS against.
JESD79_4_TABLE_16 = {
    "MRS": "HLLLV", "REF": "HLLHV", "PRE": "HLHLL", "PREA": "HLHLH", "BAD": "HLHHV",    # BAD: RFU
    "ACT": "LXXXX", "WR": "HHLLL", "WRA": "HHLLH", "RD": "HHLHL", "RDA": "HHLHH", "NOP": "HHHHV",
    "ZQCS": "HHHLL", "ZQCL": "HHHLH",
}


def test_command_table_is_jedec_table_16():
    level = {"H": 1, "L": 0, "V": None, "X": None}
    assert {c.name: tuple(e) for c, e in dram.COMMANDS.items()} == \
        {name: tuple(level[v] for v in row) for name, row in JESD79_4_TABLE_16.items()}
    assert set(dram.COMMANDS) == set(dram.Cmd)


def test_every_pin_combination_is_exactly_one_command():
    # the table is complete and unambiguous, so `command` and the DRAM model's decoder are total
    for pins in itertools.product((0, 1), repeat=5):
        hits = [c for c, e in dram.COMMANDS.items() if all(v is None or v == p for v, p in zip(e, pins, strict=True))]
        assert len(hits) == 1, (pins, hits)
        assert dram.command(*pins) == hits[0]


def test_the_decoder_groups_the_model_relies_on():
    # hw/mem/dram_model.py: ACT_n alone splits ACT from the rest; {RAS_n, CAS_n} alone finds the CAS
    # commands; RD/WR are RD/WR without A10 (RDA/WRA flagged apart)
    enc = dram.COMMANDS
    assert all(e.act_n == 1 - enc[dram.Cmd.ACT].act_n for c, e in enc.items() if c != dram.Cmd.ACT)
    assert {c for c, e in enc.items() if e.act_n and e.rcw >> 1 == enc[dram.Cmd.RD].rcw >> 1} == dram.CAS_COMMANDS
    assert {c for c, e in enc.items() if e.act_n and e.rcw == enc[dram.Cmd.RD].rcw} == {dram.Cmd.RD, dram.Cmd.RDA}
    assert {c for c, e in enc.items() if e.act_n and e.rcw == enc[dram.Cmd.WR].rcw} == {dram.Cmd.WR, dram.Cmd.WRA}


@pytest.mark.parametrize("cmd", list(dram.Cmd), ids=lambda c: c.name)
def test_every_command_encodes_and_decodes_back(cmd):
    import random
    rng = random.Random(int(cmd))
    fields = {dram.Cmd.ACT: ("bg", "ba", "row"), dram.Cmd.PRE: ("bg", "ba"), dram.Cmd.MRS: ("mr", "value")}
    fields.update(dict.fromkeys(dram.CAS_COMMANDS, ("bg", "ba", "col")))
    cases = [{}] + [{"bg": rng.randrange(4), "ba": rng.randrange(4), "row": rng.randrange(1 << 17),
                     "col": rng.randrange(1 << 7) << 3, "mr": rng.randrange(8), "value": rng.randrange(1 << 18)}
                    for _ in range(50)]
    for kw in cases:
        pins = dram.encode_pins(cmd, **kw)
        assert set(pins) == {"cs_n", "act_n", "ras_n", "cas_n", "we_n", "bg", "ba", "address"}
        got, f = dram.decode_pins(pins)
        assert got == cmd
        assert f == {k: kw.get(k, 0) for k in fields.get(cmd, ())}
    assert dram.encode_pins(dram.Cmd.NOP) == {**dram.DES, "bg": 0, "ba": 0, "address": 0}


def test_every_command_has_its_own_encoding():
    # the pins that select a command (CS_n, ACT_n, RAS_n, CAS_n, WE_n, A10) differ for every pair
    seen = {}
    for cmd in dram.Cmd:
        p = dram.encode_pins(cmd)
        sig = (p["cs_n"], p["act_n"], p["ras_n"], p["cas_n"], p["we_n"], (p["address"] >> dram.A10) & 1)
        assert sig not in seen, (cmd, seen.get(sig))
        seen[sig] = cmd
