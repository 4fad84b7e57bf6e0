"""Every error kind is reported at its exact file:line:col, with the source line and a caret, and
names what was expected (operand lists from spec.isa.FORMATS)."""
from __future__ import annotations

import pytest

from assembler import AsmError, assemble, assemble_file, from_bin, from_hex


def error(src: str, **kw) -> AsmError:
    with pytest.raises(AsmError) as ei:
        assemble(src, "e.s", **kw)
    return ei.value


# (source, line, col, message fragment); the column is that of the offending token
CASES = [
    ("ADD V1, V2\n", 1, 1, "ADD takes 3 operand(s): Vd (V0..V7), Vs (V0..V7), Vt (V0..V7); got 2"),
    ("NOP\n  HALT V1\n", 2, 8, "HALT takes 0 operand(s); got 1"),
    ("ADD V1, V2, A3\n", 1, 13, "operand 3 (Vt): expected a vector register (V0..V7), got scalar register A3"),
    ("LDV V8, [A1]\n", 1, 5, "there is no register V8 (V0..V7)"),
    ("ADDS A1, A16, A2\n", 1, 10, "there is no register A16 (A0..A15)"),
    ("FMUL F1, F2, F8\n", 1, 14, "there is no register F8 (F0..F7)"),
    ("LDV V1, [V2 + 4]\n", 1, 10, "base: expected a scalar register (A0..A15), got vector register V2"),
    ("LDV V1, A2\n", 1, 9, "expected a memory operand [A<n> + offset], got scalar register A2"),
    ("MOVI A1, V2\n", 1, 10, "expected an expression (signed 32-bit immediate), got vector register V2"),
    ("MOVI 5, 5\n", 1, 6, "expected a scalar register (A0..A15), got an expression"),
    ("MOVI A1, 0x8000_0000\n", 1, 10, "MOVI imm: 2147483648 does not fit a signed 32-bit immediate"),
    ("MOVI A1, -2147483649\n", 1, 10, "does not fit a signed 32-bit immediate"),
    ("SETVL 0\n", 1, 7, "SETVL imm: 0 outside 1..65535"),
    ("TMATMUL V0, V1, A2, F3, 65536\n", 1, 25, "TMATMUL rows: 65536 outside 1..65535"),
    ("JMP -1\n", 1, 5, "JMP target: target -1 outside 0..2147483647"),
    ("LDV V1, [A1 + 1 << 31]\n", 1, 9, "offset 2147483648 does not fit a signed 32-bit immediate"),
    ("JMP nowhere\n", 1, 5, "undefined symbol 'nowhere'"),
    ("x: NOP\n  x: NOP\n", 2, 3, "'x' is already defined at e.s:1:1"),
    ("N = 1\n.equ N, 2\n", 2, 6, "'N' is already defined at e.s:1:1"),
    ("MOVI A1, 1 / 0\n", 1, 12, "division by zero"),
    ("MOVI A1, 1 % (2 - 2)\n", 1, 12, "modulo by zero"),
    ("MOVI A1, 1 << 200\n", 1, 12, "shift count 200 outside 0..127"),
    ("MOVI A1, 0x1g\n", 1, 10, "bad number '0x1g'"),
    ("MOVI A1, 1__0\n", 1, 10, "bad number '1__0'"),
    ("MOVI A1, (1 + 2\n", 1, 16, "expected ')' to close the '(' at column 10"),
    ("MOVI A1, 1 +\n", 1, 13, "expected an expression, got end of line"),
    ("MOVI A1, 1 2\n", 1, 12, "unexpected '2' after the operand"),
    ("LDV V1, [A1 + 4\n", 1, 9, "unbalanced '['"),
    ("LDV V1, [4]\n", 1, 10, "a memory operand starts with a base register (A0..A15), got '4'"),
    ("LDV V1, [A1 * 4]\n", 1, 13, "expected '+', '-' or ']' after the base register, got '*'"),
    ("ADD V1,, V2\n", 1, 8, "missing operand"),
    ("  FROB A1\n", 1, 3, "unknown instruction or macro 'FROB'"),
    ("  .frob 1\n", 1, 3, "unknown directive '.frob'"),
    ("MOVI A1, 2 $ 3\n", 1, 12, "unexpected character '$'"),
    ("V1: NOP\n", 1, 1, "V1 is a register name and cannot be a label"),
    ("A3 = 4\n", 1, 1, "A3 is a register name and cannot be a constant"),
    ("MOVI A1, A2 + 1\n", 1, 10, "register A2 is not allowed in an expression"),
    ("  .endr\n", 1, 3, "'.endr' without a matching '.rept'"),
    ("  .endm\n", 1, 3, "'.endm' without a matching '.macro'"),
    ("NOP\n  .rept 2\nNOP\n", 2, 3, "'.rept' without a matching '.endr'"),
    ("  .macro M\nNOP\n", 1, 3, "'.macro' without a matching '.endm'"),
    (".rept -1\n.endr\n", 1, 7, "'.rept' count -1 is negative"),
    (".rept N\n.endr\nN = 2\n", 1, 7, "'N' is not defined before this line"),
    (".macro ADD a\n.endm\n", 1, 8, "'ADD' is an instruction or register name"),
    (".macro M a, a\n.endm\n", 1, 13, "duplicate macro parameter 'a'"),
    (".macro M a\n.endm\n.macro M\n.endm\n", 3, 8, "macro 'M' is already defined at e.s:1:8"),
    (".macro M a, b\n NOP\n.endm\n  M 1\n", 4, 3, "macro 'M' takes 2 argument(s) (a, b), got 1"),
    (".macro M a\n ADD V1, V2, \\a\n.endm\n NOP\n   M V9\n", 5, 4,
     "in macro 'M' (e.s:2): ADD operand 3 (Vt): there is no register V9 (V0..V7)"),
    (".macro M a\n MOVI A1, \\b\n.endm\n M 1\n", 4, 2, "in macro 'M' (e.s:2): \\b is not a parameter of macro 'M'"),
    (".macro IN\n JMP nowhere\n.endm\n.macro OUT\n IN\n.endm\n  OUT\n", 7, 3,
     "in macro 'IN' (e.s:2), expanded from 'OUT': undefined symbol 'nowhere'"),
    (".macro R\n R\n.endm\n R\n", 4, 2, "nested deeper than 32 (does 'R' call itself?)"),
    ("MOVI A1, \\x\n", 1, 10, "macro parameter \\x used outside a macro body"),
    (".equ 5, 3\n", 1, 6, "expected '.equ NAME, expression'"),
    (".include foo\n", 1, 10, "expected '.include \"file\"'"),
    ('.include "missing.s"\n', 1, 10, "cannot find include file 'missing.s'"),
    ('.include "x\n', 1, 10, "unterminated string"),
    (".word 1 << 64\n", 1, 7, "'.word' value 18446744073709551616 does not fit 64 bits"),
    ("A = B\nB = A\nNOP\n", 2, 5, "constant 'A' is defined in terms of itself"),
    ("MOVI A1, " + "9" * 70 + "\n", 1, 10, "too long"),
    ("MOVI A1, 1 << 127\n", 1, 12, "value out of range (more than 128 bits)"),
    ("NOP\n  , NOP\n", 2, 3, "expected a label, an instruction or a directive, got ','"),
    ("MOVI A1, " + "(" * 40 + "1" + ")" * 40 + "\n", 1, 42, "expression nested deeper than 32 levels"),
    ("MOVI A1, " + "-" * 40 + "1\n", 1, 42, "expression nested deeper than 32 levels"),
    ("".join(f"C{k} = C{k + 1} + 1\n" for k in range(40)) + "C40 = 0\n", 32, 7,
     "constants defined in terms of constants deeper than 32"),
    (".rept 1\n" * 40 + "NOP\n" + ".endr\n" * 40, 33, 1, "nested deeper than 32"),
]


@pytest.mark.parametrize("src, line, col, message", CASES, ids=[c[3][:40] for c in CASES])
def test_error_location_and_message(src, line, col, message):
    e = error(src)
    assert (e.file, e.line, e.col) == ("e.s", line, col), e.render()
    assert message in e.message, e.render()
    head, text, caret = e.render().split("\n")[:3]
    assert head == f"e.s:{line}:{col}: error: {e.message}"
    assert text == src.split("\n")[line - 1]
    assert caret == " " * (col - 1) + "^"


def test_caret_keeps_tabs():
    e = error("\tADD\tV1, V2, A3\n")
    assert e.render().split("\n")[2] == "\t" + " " * 3 + "\t" + " " * 8 + "^"


def test_several_errors_are_reported_in_source_order():
    e = error("JMP nowhere\nMOVI A1, V1\nN = 1 / 0\nSETVL 0\n")
    assert [(d.loc.line, d.loc.col) for d in e.diagnostics] == [(1, 5), (2, 10), (3, 7), (4, 7)]
    assert e.render().count("error:") == 4


def test_errors_in_included_files_name_that_file(tmp_path):
    (tmp_path / "inc.s").write_text("NOP\n  JMP nowhere\n")
    (tmp_path / "main.s").write_text('.include "inc.s"\n')
    with pytest.raises(AsmError) as ei:
        assemble_file(str(tmp_path / "main.s"))
    assert (ei.value.file, ei.value.line, ei.value.col) == (str(tmp_path / "inc.s"), 2, 7)


def test_include_cycle_is_an_error(tmp_path):
    (tmp_path / "a.s").write_text('NOP\n.include "b.s"\n')
    (tmp_path / "b.s").write_text('.include "a.s"\n')
    with pytest.raises(AsmError) as ei:
        assemble_file(str(tmp_path / "a.s"))
    e = ei.value
    assert (e.file, e.line, e.col) == (str(tmp_path / "b.s"), 1, 10)
    assert "include cycle: a.s -> b.s -> a.s" in e.message


def test_runaway_repetition_is_stopped():
    e = error(".rept 1000\n.rept 1000\n NOP\n.endr\n.endr\n", max_lines=10_000)
    assert "more than 10000 lines after expansion" in e.message


def test_bad_define():
    e = error("NOP\n", defines={"N": "1 +"})
    assert (e.file, e.line, e.col) == ("<command line>", 1, 6)


def test_image_errors():
    with pytest.raises(AsmError) as ei:
        from_hex("0000000000000000\n  zz\n", "r.hex")
    assert (ei.value.file, ei.value.line, ei.value.col) == ("r.hex", 2, 3)
    with pytest.raises(AsmError, match="17 hex digits"):
        from_hex("1" * 17 + "\n")
    with pytest.raises(AsmError, match="not a whole number of 8-byte words"):
        from_bin(b"1234567", "r.bin")
