"""Fuzzing: random malformed sources (mutations of valid programs) either assemble or raise AsmError
carrying file, line and column of a real source position; nothing else may escape. Sources that
do assemble also round-trip through the disassembler.

Default run: FUZZ_EXAMPLES examples; `-m slow -k fuzz`: SLOW_FUZZ_EXAMPLES."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assembler import AsmError, assemble, disassemble
from spec import isa

from .strategies import programs

FUZZ_EXAMPLES = 500
SLOW_FUZZ_EXAMPLES = 10_000
EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "assembler" / "examples"
FUZZ_FILE = str(EXAMPLE_DIR / "fuzz.s")   # so that `.include "common.s"` resolves; never written

SEEDS = [p.read_text() for p in sorted(EXAMPLE_DIR.glob("*.s"))] + [
    ".macro M a, b\n L\\@: ADD \\a, \\b, V0\n DJNZ A1, L\\@\n.endm\n.rept 2\n M V1, V2\n.endr\n",
    "N = 3\n.equ K, N * 2\n.word 0x0123_4567_89ab_cdef, -1\nLDV V1, [A2 - K]\nJMP end\nend: HALT\n",
]

TOKENS = sorted(set(
    [op.mnemonic for op in isa.OPS]
    + ["V0", "V7", "V8", "A0", "A15", "A16", "F7", "F8", "v3", "a99", "F-1"]
    + [".rept", ".rept 3", ".endr", ".macro", ".macro M x", ".endm", '.include "common.s"',
       '.include "fuzz_missing.s"', '.include "', ".word", ".equ", ".equ X,", ".bogus", "X =", "= 1"]
    + ["0x", "0b2", "1__2", "0x_1", "99999999999999999999999999999999999999999", "-", "+", "<<", ">>", "~",
       "/ 0", "% 0", "(", ")", "[", "]", "[A1", "A1]", ",", ":", "lab:", "\\a", "\\@", "\\", '"', ";", "#",
       "\t", "\n", "\r", "é", "\x00", "M", "M 1, 2", "loop", "end", "1 << 127", "1 << 200",
       "(" * 40, "-" * 40, "~(" * 20, ".rept 1\n" * 40, ".macro R\n R\n.endm\n R\n"]))


@st.composite
def seed(draw) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(SEEDS))
    return draw(programs(max_size=8))[0]


@st.composite
def mutated(draw) -> str:
    text = draw(seed())
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "token", "truncate", "dup", "swap", "drop"]))
        if not text:
            text = draw(st.sampled_from(TOKENS))
            continue
        i = draw(st.integers(0, len(text) - 1))
        if kind == "delete":
            n = draw(st.integers(1, 4))
            text = text[:i] + text[i + n:]
        elif kind == "insert":
            text = text[:i] + draw(st.text(min_size=1, max_size=3)) + text[i:]
        elif kind == "replace":
            text = text[:i] + draw(st.sampled_from("[](),;#:.\\\"=+-*/%<>&|^~ \t\n0123456789xbAVFaz_@")) + text[i + 1:]
        elif kind == "token":
            text = text[:i] + " " + draw(st.sampled_from(TOKENS)) + " " + text[i:]
        else:
            lines = text.split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            if kind == "truncate":
                lines[k] = lines[k][:draw(st.integers(0, max(len(lines[k]) - 1, 0)))]
            elif kind == "dup":
                lines.insert(k, lines[k])
            elif kind == "swap":
                j = draw(st.integers(0, len(lines) - 1))
                lines[k], lines[j] = lines[j], lines[k]
            else:
                del lines[k]
            text = "\n".join(lines)
    return text


def check(src: str) -> None:
    try:
        prog = assemble(src, FUZZ_FILE, max_lines=20_000)
    except AsmError as e:
        assert isinstance(e.file, str) and e.line >= 1 and e.col >= 1
        assert e.diagnostics and e.render()
        for d in e.diagnostics:
            if d.loc.file == FUZZ_FILE:
                lines = src.split("\n")
                assert 1 <= d.loc.line <= len(lines)
                assert d.loc.text == lines[d.loc.line - 1].removesuffix("\r")
                assert 1 <= d.loc.col <= len(d.loc.text) + 1, d.render()
            else:
                assert os.path.isfile(d.loc.file), d.loc.file
        return
    assert assemble(disassemble(prog.words), "<disassembly>").words == prog.words


@settings(deadline=None, max_examples=FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_mutated_sources(src):
    check(src)


@settings(deadline=None, max_examples=FUZZ_EXAMPLES // 5)
@given(st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join))
def test_fuzz_token_soup(src):
    check(src)


@pytest.mark.slow
@settings(deadline=None, max_examples=SLOW_FUZZ_EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_fuzz_mutated_sources_slow(src):
    check(src)
