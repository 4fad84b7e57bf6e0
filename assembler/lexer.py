"""Tokens of one source line. Columns are 1-based indices into the line's text."""
from __future__ import annotations

import dataclasses
import re

#: integer literals longer than this are rejected before int() sees them
MAX_NUMBER_CHARS = 64


class LexError(Exception):
    def __init__(self, col: int, message: str):
        super().__init__(message)
        self.col, self.message = col, message


@dataclasses.dataclass(frozen=True)
class Token:
    kind: str      # IDENT, DIRECTIVE, NUM, STR, ARG, OP, EOL
    text: str
    col: int
    value: int | str | None = None

    @property
    def end(self) -> int:
        """Column just past the token."""
        return self.col + len(self.text)

    def describe(self) -> str:
        return "end of line" if self.kind == "EOL" else repr(self.text)


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+)
  | (?P<comment>[;\#].*)
  | (?P<STR>"[^"]*")
  | (?P<NUM>[0-9][0-9A-Za-z_]*)
  | (?P<IDENT>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<DIRECTIVE>\.[A-Za-z_][A-Za-z0-9_]*)
  | (?P<ARG>\\(?:[A-Za-z_][A-Za-z0-9_]*|@))
  | (?P<OP><<|>>|[,\[\]()+\-*/%&|^~:=])
""", re.VERBOSE)

_DIGITS = {"0x": (16, "0123456789abcdef"), "0b": (2, "01"), "0o": (8, "01234567")}


def parse_number(text: str) -> int | None:
    """Decimal, 0x.., 0b.., 0o..; `_` separates digits (not first, last, or doubled). None if malformed."""
    low = text.lower()
    base, digits = 10, "0123456789"
    body = low
    if low[:2] in _DIGITS:
        base, digits = _DIGITS[low[:2]]
        body = low[2:]
    if not body or body[0] == "_" or body[-1] == "_" or "__" in body:
        return None
    if any(c not in digits for c in body.replace("_", "")):
        return None
    if len(text) > MAX_NUMBER_CHARS:
        return None
    return int(body.replace("_", ""), base)


def tokenize(text: str) -> list[Token]:
    """Tokens of a line, ending with an EOL token; comments (`;` or `#` to end of line) dropped."""
    out: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            c = text[pos]
            if c == '"':
                raise LexError(pos + 1, "unterminated string")
            raise LexError(pos + 1, f"unexpected character {c!r}")
        kind = m.lastgroup
        col = pos + 1
        pos = m.end()
        if kind in ("ws", "comment"):
            continue
        tok = m.group()
        if kind == "NUM":
            v = parse_number(tok)
            if v is None:
                why = "too long" if len(tok) > MAX_NUMBER_CHARS else "malformed"
                raise LexError(col, f"bad number {tok!r} ({why})")
            out.append(Token(kind, tok, col, v))
        elif kind == "STR":
            out.append(Token(kind, tok, col, tok[1:-1]))
        else:
            out.append(Token(kind, tok, col))
    out.append(Token("EOL", "", len(text) + 1))
    return out
