"""bitstreams.table: the docs/boards.md build table from build directories' manifest.json and
report.json (the report parsed from the nextpnr fixture of test_build)."""
from __future__ import annotations

import json
from pathlib import Path

from bitstreams import build as B
from bitstreams import table as T

FIXTURES = Path(__file__).parent / "fixtures"


def _build_dir(tmp_path: Path, name: str, *, lanes: int, dirty: bool, target: float, wall: float) -> Path:
    d = tmp_path / name
    d.mkdir()
    rep = B.parse_nextpnr_report(json.loads((FIXTURES / "nextpnr_report_ecp5.json").read_text()), "ecp5", target)
    rep["wall_s"] = {"total": wall, "yosys": 60.0, "nextpnr_ecp5": wall - 70.0}
    man = {"board": "ulx3s_85f", "git": {"revision": "abcdef0123" + "0" * 30, "dirty": dirty},
           "accel_config": {"name": "ecp5", "beat_bytes": 16, "packing": "1.6bit", "vector_lanes": lanes,
                            "vlen": 1024, "rom_words": 512},
           "config_overrides": {"vector_lanes": lanes} if lanes != 4 else {},
           "model": {"name": "tiny"}}
    (d / "manifest.json").write_text(json.dumps(man))
    (d / "report.json").write_text(json.dumps(rep))
    return d


def test_one_row_per_build_from_its_reports(tmp_path, capsys):
    a = _build_dir(tmp_path, "a", lanes=1, dirty=True, target=1000.0, wall=1200.0)
    b = _build_dir(tmp_path, "b", lanes=4, dirty=False, target=1.0, wall=600.0)
    assert T.main([str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| board |")
    rep = json.loads((a / "report.json").read_text())
    lut = rep["resources"]["LUT"]
    row_a, row_b = lines[2], lines[3]
    assert f"{lut['used']:,} / {lut['available']:,}" in row_a
    assert f"{rep['achieved_mhz']:.1f} MHz" in row_a and "not met" in row_a and "(dirty)" in row_a
    assert "1 vector lane," in row_a and "(vector-lanes 1)" in row_a and "20.0 min" in row_a
    assert "4 vector lanes" in row_b and "(target 1: met)" in row_b and "abcdef0" in row_b
    assert "| LFE5U-85F-6 |" in row_a
    assert rep["critical_paths"][0]["start"] in row_a


def test_a_directory_without_a_report_is_named(tmp_path, capsys):
    a = _build_dir(tmp_path, "a", lanes=1, dirty=False, target=100.0, wall=100.0)
    (a / "report.json").unlink()
    assert T.main([str(a)]) == 1
    err = capsys.readouterr().err
    assert "no report.json" in err and str(a) in err


def test_output_file(tmp_path):
    a = _build_dir(tmp_path, "a", lanes=4, dirty=False, target=100.0, wall=100.0)
    out = tmp_path / "t.md"
    assert T.main([str(a), "-o", str(out)]) == 0
    assert out.read_text() == T.table([a])


def test_append_adds_rows_to_the_doc_table_and_replaces_a_rebuilt_one(tmp_path):
    a = _build_dir(tmp_path, "a", lanes=1, dirty=False, target=100.0, wall=100.0)
    doc = tmp_path / "boards.md"
    old_row = "| ulx3s_85f | LFE5U-85F-6 | 1234567 | an earlier build | - | - | - | - | **1.0 MHz** | - | - |"
    doc.write_text("# Boards\n\nintro\n\n" + T.table([]) + old_row + "\n\nafter the table\n")
    assert T.main([str(a), "--append", str(doc)]) == 0
    text = doc.read_text()
    lines = text.splitlines()
    new_row = T._row_line(T.row(*T.load_build(a)))
    assert lines.index(old_row) + 1 == lines.index(new_row)         # after the earlier rows
    assert lines[lines.index(new_row) + 1] == "" and "after the table" in text and text.startswith("# Boards")
    # the same build again (a rebuild of the same revision): its row is replaced, not repeated
    (a / "report.json").write_text((a / "report.json").read_text().replace('"achieved_mhz": ', '"achieved_mhz": 1'))
    assert T.main([str(a), "--append", str(doc)]) == 0
    again = doc.read_text().splitlines()
    assert old_row in again and new_row not in again and len(again) == len(lines)
    assert sum("abcdef0" in ln for ln in again) == 1


def test_append_needs_the_table(tmp_path, capsys):
    a = _build_dir(tmp_path, "a", lanes=1, dirty=False, target=100.0, wall=100.0)
    doc = tmp_path / "x.md"
    doc.write_text("no table here\n")
    assert T.main([str(a), "--append", str(doc)]) == 1
    assert "no build table" in capsys.readouterr().err
