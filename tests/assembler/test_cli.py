"""`python -m assembler` through subprocess: outputs, exit codes 0/1, error format, no tracebacks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from assembler import assemble_file, from_bin, from_hex

ROOT = Path(__file__).resolve().parents[2]
LOOP = ROOT / "assembler" / "examples" / "loop.s"
MACROS = ROOT / "assembler" / "examples" / "macros.s"


def run(*args, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "assembler", *map(str, args)], cwd=ROOT, input=stdin,
                       capture_output=True, timeout=60)
    assert b"Traceback" not in p.stderr, p.stderr.decode()
    return p


def test_assemble_hex_default(tmp_path):
    out = tmp_path / "rom.hex"
    p = run(LOOP, "-o", out)
    assert p.returncode == 0 and p.stderr == b""
    assert from_hex(out.read_text()) == assemble_file(str(LOOP)).words
    assert all(len(line) == 16 for line in out.read_text().splitlines())


def test_assemble_bin_and_explicit_hex(tmp_path):
    words = assemble_file(str(MACROS)).words
    assert run(MACROS, "-f", "bin", "-o", tmp_path / "rom.bin").returncode == 0
    assert from_bin((tmp_path / "rom.bin").read_bytes()) == words
    assert run(MACROS, "-f", "hex", "-o", tmp_path / "rom.hex").returncode == 0
    assert from_hex((tmp_path / "rom.hex").read_text()) == words


def test_listing(tmp_path):
    p = run(LOOP, "-o", tmp_path / "rom.hex", "--listing", tmp_path / "rom.lst")
    assert p.returncode == 0
    lst = (tmp_path / "rom.lst").read_text().splitlines()
    words = assemble_file(str(LOOP)).words
    rows = [ln.split() for ln in lst[1:] if ln[:6].strip().isdigit()]
    assert [(int(r[0]), int(r[1], 16)) for r in rows] == list(enumerate(words))
    assert any("DJNZ" in ln and "loop.s:" in ln for ln in lst)
    assert run(LOOP, "-o", tmp_path / "b.hex", "-l", tmp_path / "b.lst").returncode == 0
    assert (tmp_path / "b.lst").read_text() == (tmp_path / "rom.lst").read_text()


def test_defines_and_include_paths(tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "k.s").write_text("K = 3\n")
    src = tmp_path / "p.s"
    src.write_text('.include "k.s"\nMOVI A1, N + K\nMOVI A2, FLAG\n')
    p = run(src, "-D", "N=2*4", "-D", "FLAG", "-I", tmp_path / "inc", "-o", tmp_path / "p.hex")
    assert p.returncode == 0, p.stderr.decode()
    assert from_hex((tmp_path / "p.hex").read_text()) == assemble_file(
        str(src), defines={"N": 8, "FLAG": 1}, include_paths=[tmp_path / "inc"]).words


@pytest.mark.parametrize("fmt", ["hex", "bin"])
def test_disassemble_reassembles_to_the_same_words(tmp_path, fmt):
    rom = tmp_path / f"rom.{fmt}"
    assert run(MACROS, "-f", fmt, "-o", rom).returncode == 0
    args = ["-f", fmt] if fmt == "bin" else []
    p = run("--disassemble", rom, *args)
    assert p.returncode == 0
    (tmp_path / "d.s").write_bytes(p.stdout)
    assert run(tmp_path / "d.s", "-f", fmt, "-o", tmp_path / f"again.{fmt}").returncode == 0
    assert (tmp_path / f"again.{fmt}").read_bytes() == rom.read_bytes()
    assert b"L_" in p.stdout


def test_error_format_and_exit_code(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text("NOP\n    ADD V1, V2, A3\n")
    p = run(src, "-o", tmp_path / "x.hex")
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [
        f"{src}:2:17: error: ADD operand 3 (Vt): expected a vector register (V0..V7), got scalar register A3",
        "    ADD V1, V2, A3",
        " " * 16 + "^",
    ]
    assert not (tmp_path / "x.hex").exists()


def test_bad_hex_image_is_reported_with_location(tmp_path):
    (tmp_path / "r.hex").write_text("0000000000000000\nxyz\n")
    p = run("--disassemble", tmp_path / "r.hex")
    assert p.returncode == 1 and p.stderr.decode().startswith(f"{tmp_path / 'r.hex'}:2:1: error:")


@pytest.mark.parametrize("args", [
    ["/nonexistent/x.s"],
    ["--disassemble", "/nonexistent/x.hex"],
    [LOOP, "-o", "/nonexistent/dir/x.hex"],
    [LOOP, "-l", "/nonexistent/dir/x.lst"],
])
def test_io_errors_exit_1_without_traceback(args):
    p = run(*args)
    assert p.returncode == 1 and b"error:" in p.stderr


def test_binary_garbage_and_stdin():
    p = run("-", stdin=bytes(range(256)) * 4)
    assert p.returncode == 1 and b"<stdin>:1:" in p.stderr
    p = run("-", stdin=b"NOP\nHALT\n")
    assert p.returncode == 0 and p.stdout.split() == [b"0000000000000000", b"0100000000000000"]


def test_usage_error_is_exit_2():
    assert run().returncode == 2
