"""Syntax of one source line: labels, then an instruction, a directive, a constant or a macro call.

Operands are classified by form only (register, memory `[A1 + expr]`, expression); whether the
form fits the instruction is checked against spec.isa.FORMATS by the encoder.
"""
from __future__ import annotations

import dataclasses
import re

from spec import isa

from .errors import Diagnostic, Loc
from .expr import Expr, ExprError, Num, Parser
from .lexer import LexError, Token, tokenize

#: register kinds of spec.isa, their assembly prefix (as spec.isa.format_operand writes it) and count
REG_COUNT: dict[isa.Kind, int] = {isa.Kind.V: isa.N_VREGS, isa.Kind.A: isa.N_AREGS, isa.Kind.F: isa.N_FREGS}
REG_PREFIX: dict[isa.Kind, str] = {k: isa.format_operand(isa.Operand("", k, "a"), 0)[:-1] for k in REG_COUNT}
_BY_PREFIX = {p.upper(): k for k, p in REG_PREFIX.items()}
_REG_RE = re.compile("(" + "|".join(map(re.escape, _BY_PREFIX)) + r")([0-9]+)$", re.IGNORECASE)


def register(name: str) -> tuple[isa.Kind, int] | None:
    """(kind, index) when `name` has a register's form (`V3`, `a12`, `F9`: the index is not range-checked)."""
    m = _REG_RE.match(name)
    if m is None:
        return None
    return _BY_PREFIX[m.group(1).upper()], int(m.group(2))


def is_register(name: str) -> bool:
    return _REG_RE.match(name) is not None


def reg_range(kind: isa.Kind) -> str:
    return f"{REG_PREFIX[kind]}0..{REG_PREFIX[kind]}{REG_COUNT[kind] - 1}"


class SyntaxErr(Exception):
    def __init__(self, col: int, message: str):
        super().__init__(message)
        self.col, self.message = col, message


@dataclasses.dataclass
class Expansion:
    """The macro call a line came from."""
    macro: str
    call: Line      # the invoking line
    col: int        # column of the macro name on the invoking line


@dataclasses.dataclass
class Line:
    """One line to assemble: where it is written (`loc`) and the text to lex (after macro substitution)."""
    loc: Loc
    text: str
    expansion: Expansion | None = None

    def error(self, col: int, message: str) -> Diagnostic:
        """A diagnostic at `col`; inside a macro expansion, at the outermost call, naming the macro."""
        if self.expansion is None:
            return Diagnostic(self.loc.at(col), message)
        chain, line = [], self
        while line.expansion is not None:
            outer = line.expansion
            chain.append(outer.macro)
            line = outer.call
        where = f"in macro '{chain[0]}' ({self.loc.file}:{self.loc.line})"
        if len(chain) > 1:
            where += ", expanded from " + " <- ".join(f"'{m}'" for m in chain[1:4]) + (" ..." if len(chain) > 4 else "")
        return Diagnostic(line.loc.at(outer.col), f"{where}: {message}")


# --- operands -----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RegOperand:
    kind: isa.Kind
    index: int
    col: int
    text: str


@dataclasses.dataclass(frozen=True)
class MemOperand:
    base: RegOperand | None   # None when the bracket does not start with a register
    offset: Expr
    col: int


@dataclasses.dataclass(frozen=True)
class ExprOperand:
    expr: Expr
    col: int


Operand = RegOperand | MemOperand | ExprOperand


# --- statements ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instr:
    op: isa.Op
    col: int
    operands: tuple[Operand, ...]


@dataclasses.dataclass(frozen=True)
class Directive:
    name: str          # lower case, with the dot
    col: int
    tokens: list[Token]  # the rest of the line, EOL included
    args: tuple[Expr, ...] = ()
    string: str | None = None


@dataclasses.dataclass(frozen=True)
class Assign:
    name: str
    col: int
    expr: Expr


@dataclasses.dataclass(frozen=True)
class Call:
    name: str
    col: int
    args: tuple[str, ...]        # argument texts as written (from first to last token)
    arg_cols: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Statement:
    labels: tuple[tuple[str, int], ...]           # (name, col)
    body: Instr | Directive | Assign | Call | None


def split_commas(tokens: list[Token], start: int) -> list[list[Token]]:
    """Top-level comma-separated groups of tokens[start:] (EOL excluded); brackets and parentheses nest."""
    groups: list[list[Token]] = [[]]
    depth = 0
    for t in tokens[start:]:
        if t.kind == "EOL":
            break
        if t.kind == "OP" and t.text in "([":
            depth += 1
        elif t.kind == "OP" and t.text in ")]":
            depth -= 1
        if t.kind == "OP" and t.text == "," and depth <= 0:
            groups.append([])
        else:
            groups[-1].append(t)
    if groups == [[]]:
        return []
    return groups


def _group_end(group: list[Token], after: Token) -> Token:
    return Token("EOL", "", group[-1].end if group else after.end)


def parse_expr_tokens(tokens: list[Token], where: str) -> Expr:
    """A whole token group as one expression."""
    p = Parser(tokens + [_group_end(tokens, tokens[-1] if tokens else Token("EOL", "", 1))], 0, is_register)
    e = p.expression()
    if p.tok.kind != "EOL":
        raise SyntaxErr(p.tok.col, f"unexpected {p.tok.describe()} after {where}")
    return e


def parse_operand(group: list[Token], comma: Token) -> Operand:
    if not group:
        raise SyntaxErr(comma.col, "missing operand")
    first = group[0]
    if len(group) == 1 and first.kind == "IDENT" and (r := register(first.text)):
        return RegOperand(r[0], r[1], first.col, first.text)
    if first.kind == "OP" and first.text == "[":
        return _parse_mem(group)
    return ExprOperand(parse_expr_tokens(group, "the operand"), first.col)


def _parse_mem(group: list[Token]) -> MemOperand:
    lb = group[0]
    if not (group[-1].kind == "OP" and group[-1].text == "]"):
        raise SyntaxErr(lb.col, "unbalanced '[': expected ']' at the end of the memory operand")
    inner = group[1:-1]
    end = Token("EOL", "", group[-1].col)
    if not inner:
        raise SyntaxErr(group[-1].col, "empty memory operand: expected [A<n>] or [A<n> + offset]")
    base_tok = inner[0]
    r = register(base_tok.text) if base_tok.kind == "IDENT" else None
    if r is None:
        raise SyntaxErr(base_tok.col, f"a memory operand starts with a base register "
                                      f"({reg_range(isa.Kind.A)}), got {base_tok.describe()}")
    base = RegOperand(r[0], r[1], base_tok.col, base_tok.text)
    rest = inner[1:]
    if not rest:
        return MemOperand(base, Num(0, lb.col), lb.col)
    sign = rest[0]
    if not (sign.kind == "OP" and sign.text in "+-"):
        raise SyntaxErr(sign.col, f"expected '+', '-' or ']' after the base register, got {sign.describe()}")
    p = Parser(rest + [end], 0, is_register)
    # `[A1 - 2 + 3]` is A1 + (-2 + 3): continue the expression `0 - 2 + 3`
    e = p.expression(left=Num(0, sign.col))
    if p.tok.kind != "EOL":
        raise SyntaxErr(p.tok.col, f"unexpected {p.tok.describe()} in the memory operand")
    return MemOperand(base, e, lb.col)


def parse_statement(tokens: list[Token], macros: set[str] | dict, text: str) -> Statement:
    """Parse a tokenized line (`text`: the line, for macro argument texts). Raises SyntaxErr or
    ExprError (both carry a column)."""
    labels = []
    i = 0
    while tokens[i].kind == "IDENT" and tokens[i + 1].kind == "OP" and tokens[i + 1].text == ":":
        t = tokens[i]
        if is_register(t.text):
            raise SyntaxErr(t.col, f"{t.text} is a register name and cannot be a label")
        labels.append((t.text, t.col))
        i += 2
    t = tokens[i]
    if t.kind == "EOL":
        return Statement(tuple(labels), None)
    if t.kind == "DIRECTIVE":
        return Statement(tuple(labels), Directive(t.text.lower(), t.col, tokens[i + 1:]))
    if t.kind == "IDENT":
        nxt = tokens[i + 1]
        if nxt.kind == "OP" and nxt.text == "=":
            if is_register(t.text):
                raise SyntaxErr(t.col, f"{t.text} is a register name and cannot be a constant")
            return Statement(tuple(labels), Assign(t.text, t.col, parse_expr_tokens(tokens[i + 2:-1], "the value")))
        op = isa.BY_MNEMONIC.get(t.text.upper())
        if op is not None:
            groups = split_commas(tokens, i + 1)
            commas = [x for x in tokens[i + 1:] if x.kind == "OP" and x.text == ","] + [tokens[-1]]
            ops = tuple(parse_operand(g, commas[min(k, len(commas) - 1)]) for k, g in enumerate(groups))
            return Statement(tuple(labels), Instr(op, t.col, ops))
        if t.text in macros:
            groups = split_commas(tokens, i + 1)
            texts, cols = [], []
            for k, g in enumerate(groups):
                if not g:
                    raise SyntaxErr(t.end if k == 0 else t.col, f"empty argument {k + 1} in the call of macro "
                                                                f"'{t.text}'")
                texts.append(g)
                cols.append(g[0].col)
            spans = tuple(text[g[0].col - 1:g[-1].end - 1] for g in texts)
            return Statement(tuple(labels), Call(t.text, t.col, spans, tuple(cols)))
        if nxt.kind == "OP" and nxt.text == ":":  # pragma: no cover - consumed as a label above
            raise AssertionError
        raise SyntaxErr(t.col, f"unknown instruction or macro '{t.text}'")
    if t.kind == "ARG":
        raise SyntaxErr(t.col, f"macro parameter {t.text} used outside a macro body (or not a parameter of it)")
    raise SyntaxErr(t.col, f"expected a label, an instruction or a directive, got {t.describe()}")


def lex_line(line: Line) -> list[Token]:
    """Tokens of a line, raising SyntaxErr for lexical errors."""
    try:
        return tokenize(line.text)
    except LexError as e:
        raise SyntaxErr(e.col, e.message) from None


def parse_line(line: Line, macros) -> Statement:
    toks = lex_line(line)
    for t in toks:
        if t.kind == "ARG":
            if line.expansion is None:
                raise SyntaxErr(t.col, f"macro parameter {t.text} used outside a macro body")
            raise SyntaxErr(t.col, f"{t.text} is not a parameter of macro '{line.expansion.macro}'")
    try:
        return parse_statement(toks, macros, line.text)
    except ExprError as e:
        raise SyntaxErr(e.col, e.message) from None


def directive_name(line: Line) -> str | None:
    """The directive of a line (after its labels), lower case, or None; lexical errors give None."""
    try:
        toks = tokenize(line.text)
    except LexError:
        return None
    i = 0
    while toks[i].kind == "IDENT" and toks[i + 1].kind == "OP" and toks[i + 1].text == ":":
        i += 2
    return toks[i].text.lower() if toks[i].kind == "DIRECTIVE" else None
