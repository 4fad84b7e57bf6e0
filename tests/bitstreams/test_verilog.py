"""python -m bitstreams.verilog (make verilog): the accelerator's Verilog, the options, and clear errors.
The vendor targets (--target) are tested with their bus models in tests/hw/test_vendor.py."""
from __future__ import annotations

from bitstreams.verilog import main
from spec.isa import encode


def test_cli_writes_the_accelerator(tmp_path, capsys):
    out = tmp_path / "accel.v"
    assert main(["--config", "ecp5", "--vlen", "32", "--rom-words", "16", "--cores", "2", "-o", str(out)]) == 0
    text = out.read_text()
    assert "module accel(" in text
    for port in ("mem__cmd__valid", "tok_in__1__valid", "tok_out__1__payload", "rom_wr__data", "state_stride"):
        assert port in text, port
    assert "2 core(s)" in capsys.readouterr().out


def test_rom_contents_are_built_in(tmp_path):
    words = [encode("MOVI", 1, 7), encode("TOKOUT", 1), encode("HALT")]
    hexfile = tmp_path / "rom.hex"
    hexfile.write_text("".join(f"{w:016x}\n" for w in words))
    out = tmp_path / "core.v"
    assert main(["--config", "ecp5", "--vlen", "32", "--rom-words", "16", "--rom", str(hexfile), "--top", "core",
                 "-o", str(out)]) == 0
    text = out.read_text().lower()
    assert all(f"{w:016x}" in text for w in words)


def test_errors_are_reported(tmp_path, capsys):
    assert main(["--config", "nope", "-o", str(tmp_path / "x.v")]) == 1
    assert "unknown accelerator config 'nope'" in capsys.readouterr().err
    assert main(["--config", "ecp5", "--vlen", "30", "-o", str(tmp_path / "x.v")]) == 1
    assert "vector_lanes 4 must divide vlen 30" in capsys.readouterr().err
    too_long = tmp_path / "long.hex"
    too_long.write_text("0000000000000000\n" * 17)
    assert main(["--config", "ecp5", "--vlen", "32", "--rom-words", "16", "--rom", str(too_long),
                 "-o", str(tmp_path / "x.v")]) == 1
    assert "does not fit rom_words 16" in capsys.readouterr().err
