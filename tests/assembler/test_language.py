"""The assembly language of docs/assembler.md: expressions, labels, constants, .include, .rept,
macros, .word, -D defines, the listing. Expected words come from spec.isa.encode."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from assembler import AsmError, assemble, assemble_file, disassemble
from spec import isa

E = isa.encode


def words(src: str, **kw) -> list[int]:
    return assemble(src, "t.s", **kw).words


@pytest.mark.parametrize("expr, value", [
    ("1_000", 1000), ("0x10", 16), ("0X1f", 31), ("0b101", 5), ("0o17", 15), ("0x_ff", None),
    ("2 + 3 * 4", 14), ("(2 + 3) * 4", 20), ("-7 / 2", -3), ("-7 % 2", -1), ("7 / -2", -3),
    ("1 << 4 | 1", 17), ("0xff & ~0x0f", 0xf0), ("6 ^ 3", 5), ("-(-3)", 3), ("+3", 3), ("256 >> 4", 16),
    ("1 + 2 << 3", 24), ("8 - 2 - 1", 5), ("2 * 3 % 4", 2), ("-1 >> 1", -1),
])
def test_expressions_have_c_semantics(expr, value):
    if value is None:
        with pytest.raises(AsmError, match="bad number"):
            words(f"MOVI A1, {expr}\n")
        return
    assert words(f"MOVI A1, {expr}\n") == [E("MOVI", 1, value)]


def test_long_operator_chains_evaluate_without_recursion():
    assert words("MOVI A1, " + " + ".join(["1"] * 5000) + "\n") == [E("MOVI", 1, 5000)]


def test_case_insensitive_mnemonics_and_registers_case_sensitive_symbols():
    assert words("add v1, V2, v3\nMoVi a15, x\nx = 1\nX = 2\n") == [E("ADD", 1, 2, 3), E("MOVI", 15, 1)]


def test_labels_are_word_addresses_and_forward_references_work():
    src = "start:\n  JMP end ; forward\nmid: NOP\n\nend: JMP start\n  MOVI A1, end - mid\n"
    assert words(src) == [E("JMP", 2), E("NOP"), E("JMP", 0), E("MOVI", 1, 1)]


def test_several_labels_and_label_alone_on_a_line():
    assert words("a: b:\nc: NOP\nJMP b\nJMP c\n") == [E("NOP"), E("JMP", 0), E("JMP", 0)]


def test_constants_equ_and_assignment_may_use_later_labels():
    src = ".equ N, 3 * M\nM = end + 1\nMOVI A1, N\nend: NOP\n"
    assert words(src) == [E("MOVI", 1, 6), E("NOP")]


def test_memory_operands():
    src = "LDV V1, [A2]\nLDV V1, [A2 + 8]\nLDV V1, [a2-8]\nLDV V1, [A2 - 2 + 3]\nLDV V1, [A2 + (1 << 4)]\n"
    assert words(src) == [E("LDV", 1, (2, 0)), E("LDV", 1, (2, 8)), E("LDV", 1, (2, -8)),
                          E("LDV", 1, (2, 1)), E("LDV", 1, (2, 16))]


def test_s32_bounds_and_label_targets():
    assert words("MOVI A0, -0x8000_0000\nMOVI A0, 0x7fff_ffff\n") == [E("MOVI", 0, -(1 << 31)),
                                                                   E("MOVI", 0, (1 << 31) - 1)]
    assert words(f"SETVL {isa.VL_MAX}\nJMP 0x7fffffff\n") == [E("SETVL", isa.VL_MAX), E("JMP", (1 << 31) - 1)]


def test_word_emits_raw_words_unchecked():
    assert words(".word 0xff00000000000000, -1, 5\n") == [0xFF << 56, (1 << 64) - 1, 5]


def test_rept_nests_and_counts_from_constants():
    src = "N = 2\n.rept N\n  NOP\n  .rept N + 1\n    HALT\n  .endr\n.endr\n.rept 0\n JMP 99\n.endr\n"
    assert words(src) == ([E("NOP")] + [E("HALT")] * 3) * 2


def test_macros_substitute_arguments_and_unique_labels():
    src = """
.macro COPY dst, src
    MOVV \\dst, \\src
.endm
.macro LOOP n, reg
    MOVI \\reg, \\n
L\\@: NOP
    DJNZ \\reg, L\\@
.endm
    COPY V1, V2
    LOOP 3, A1
    LOOP 4 + 1, A2
"""
    assert words(src) == [E("MOVV", 1, 2), E("MOVI", 1, 3), E("NOP"), E("DJNZ", 1, 2),
                          E("MOVI", 2, 5), E("NOP"), E("DJNZ", 2, 5)]


def test_macro_with_memory_argument_and_nested_call():
    src = ".macro LD v, m\n LDV \\v, \\m\n.endm\n.macro TWO\n LD V1, [A1 + 8]\n LD V2, [A2]\n.endm\n TWO\n"
    assert words(src) == [E("LDV", 1, (1, 8)), E("LDV", 2, (2, 0))]


def test_macro_arguments_are_substituted_as_written(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "k.s").write_text("K = 9\n")
    (tmp_path / "m.s").write_text('.macro INC f\n.include "\\f"\n.endm\n INC lib/k.s\nMOVI A1, K\n')
    assert assemble_file(str(tmp_path / "m.s")).words == [E("MOVI", 1, 9)]


def test_include_relative_then_search_path(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "inc").mkdir()
    (tmp_path / "sub" / "near.s").write_text('N = 7\n.include "far.s"\n')
    (tmp_path / "inc" / "far.s").write_text("M = N + 1\n")
    main = tmp_path / "main.s"
    main.write_text('.include "sub/near.s"\nMOVI A1, M\n')
    assert assemble_file(str(main), include_paths=[tmp_path / "inc"]).words == [E("MOVI", 1, 8)]


def test_defines_from_the_command_line():
    assert words("MOVI A1, N\nMOVI A2, F\n", defines={"N": "2 * 3", "F": 1}) == [E("MOVI", 1, 6), E("MOVI", 2, 1)]


def test_listing_shows_address_word_and_source():
    prog = assemble("; head\n.macro M\n NOP\n.endm\nstart: MOVI A1, 5\n M\n .word 1, 2\n", "p.s")
    lines = prog.listing().splitlines()
    assert lines[0].split() == ["addr", "word", "source"]
    row = next(ln for ln in lines if "MOVI" in ln)
    assert row.split()[:3] == ["0", f"{E('MOVI', 1, 5):016x}", "p.s:5"]
    assert any(ln.split()[:2] == ["1", f"{E('NOP'):016x}"] and "+" in ln.split() for ln in lines)
    assert any(ln.split()[:2] == ["3", f"{2:016x}"] for ln in lines)
    assert any("; head" in ln and ln.split()[0] == "p.s:1" for ln in lines)


def test_symbols_are_returned():
    prog = assemble("N = 4\nNOP\nhere: NOP\n")
    assert prog.symbols == {"N": 4, "here": 1}


def test_doc_examples_assemble():
    """Every ```asm block of docs/assembler.md assembles; the disassembly sample is real output."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "assembler.md").read_text()
    blocks = re.findall(r"```asm\n(.*?)```", doc, re.S)
    assert len(blocks) >= 6
    for b in blocks:
        assemble(b, "doc.s")
    sample = re.search(r"```text\n(; rom.hex.*?)```", doc, re.S).group(1)
    words = [int(m, 16) for m in re.findall(r": ([0-9a-f]{16})", sample)]
    assert disassemble(words, "rom.hex") == sample
