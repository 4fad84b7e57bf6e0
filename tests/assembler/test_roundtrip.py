"""Assemble -> disassemble -> assemble gives identical words: on the examples and on random programs
(every opcode, random operands and labels); the words equal spec.isa.encode of the operands."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assembler import assemble, assemble_file, disassemble, from_bin, from_hex, to_bin, to_hex
from spec import isa

from .strategies import programs

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "assembler" / "examples"
EXAMPLES = sorted(EXAMPLE_DIR.glob("*.s"))


def reassembled(words: list[int]) -> list[int]:
    return assemble(disassemble(words), "<disassembly>").words


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_round_trip(path):
    words = assemble_file(str(path)).words
    assert reassembled(words) == words


def test_every_opcode_example_covers_the_isa():
    words = assemble_file(str(EXAMPLE_DIR / "every_op.s")).words
    assert {isa.decode(w).op.mnemonic for w in words} == set(isa.BY_MNEMONIC)


@settings(deadline=None, max_examples=150)
@given(programs())
def test_random_programs_encode_as_spec_and_round_trip(prog):
    source, expected = prog
    words = assemble(source).words
    assert words == expected
    assert reassembled(words) == words


@settings(deadline=None, max_examples=100)
@given(st.lists(st.integers(0, (1 << isa.WORD_BITS) - 1), max_size=20))
def test_any_words_round_trip_through_the_disassembler(words):
    """Words the decoder rejects come back as `.word`, so every image round-trips."""
    assert reassembled(words) == words


@settings(deadline=None, max_examples=50)
@given(st.lists(st.integers(0, (1 << isa.WORD_BITS) - 1), max_size=20))
def test_hex_and_bin_images_load_back(words):
    assert from_hex(to_hex(words)) == words
    assert from_bin(to_bin(words)) == words
    assert all(len(line) == isa.WORD_BITS // 4 for line in to_hex(words).splitlines())
    assert len(to_bin(words)) == len(words) * isa.WORD_BITS // 8


def test_bin_is_little_endian():
    w = isa.encode("MOVI", 1, 0x01020304)
    assert to_bin([w]) == w.to_bytes(8, "little") and to_bin([w])[0] == 0x04


def test_hex_lines_parse_with_int_base_16():
    """What Amaranth code does with the file: int(line, 16) per line."""
    words = assemble_file(str(EXAMPLE_DIR / "loop.s")).words
    assert words and [int(line, 16) for line in to_hex(words).splitlines()] == words


def test_disassembly_labels_branch_targets():
    words = assemble("top: NOP\n JMP top\n DJNZ A1, 7\n").words
    text = disassemble(words)
    assert "L_0:" in text and "JMP L_0" in text
    assert "DJNZ A1, 7" in text          # outside the program: stays a number
    assert len([ln for ln in text.splitlines() if ln.startswith("    ")]) == len(words)
