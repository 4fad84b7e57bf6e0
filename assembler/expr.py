"""Integer expressions: literals, symbols, unary - + ~, binary * / % + - << >> & ^ | (C precedence), parentheses.

`/` truncates toward zero and `%` takes the sign of the dividend (C semantics). Every intermediate
value must fit in 128 bits (signed): far beyond any field, small enough that no input can make
the assembler build huge integers.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from .lexer import Token

VALUE_BITS = 128
#: parentheses and unary operators nest at most this deep (the parser recurses on them)
MAX_NESTING = 32
_LIMIT = 1 << (VALUE_BITS - 1)


class ExprError(Exception):
    def __init__(self, col: int, message: str):
        super().__init__(message)
        self.col, self.message = col, message


@dataclasses.dataclass(frozen=True)
class Num:
    value: int
    col: int


@dataclasses.dataclass(frozen=True)
class Sym:
    name: str
    col: int


@dataclasses.dataclass(frozen=True)
class Unary:
    op: str
    x: Expr
    col: int


@dataclasses.dataclass(frozen=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    col: int   # the operator's column


Expr = Num | Sym | Unary | Binary

# lowest to highest binding
_LEVELS = [("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%")]
_PREC = {op: i for i, ops in enumerate(_LEVELS) for op in ops}


class Parser:
    """Recursive descent over a token list; `pos` is left on the first token not consumed."""

    def __init__(self, tokens: list[Token], pos: int = 0, is_register: Callable[[str], bool] = lambda s: False):
        self.toks, self.pos, self.is_register = tokens, pos, is_register
        self.nesting = 0

    @property
    def tok(self) -> Token:
        return self.toks[self.pos]

    def expression(self, left: Expr | None = None) -> Expr:
        """An expression; with `left`, continue as if `left` had just been parsed (used for `[A1 - 4]`)."""
        return self._binary(0, left)

    def _binary(self, level: int, left: Expr | None = None) -> Expr:
        if level == len(_LEVELS):
            return self._unary() if left is None else left
        lhs = self._binary(level + 1, left)
        while self.tok.kind == "OP" and self.tok.text in _LEVELS[level]:
            op = self.tok
            self.pos += 1
            rhs = self._binary(level + 1)
            lhs = Binary(op.text, lhs, rhs, op.col)
        return lhs

    def _unary(self) -> Expr:
        t = self.tok
        if t.kind == "OP" and t.text in ("-", "+", "~", "("):
            self.nesting += 1
            if self.nesting > MAX_NESTING:
                raise ExprError(t.col, f"expression nested deeper than {MAX_NESTING} levels")
            try:
                return self._nested(t)
            finally:
                self.nesting -= 1
        if t.kind == "NUM":
            self.pos += 1
            return Num(t.value, t.col)
        if t.kind == "IDENT":
            if self.is_register(t.text):
                raise ExprError(t.col, f"register {t.text} is not allowed in an expression")
            self.pos += 1
            return Sym(t.text, t.col)
        raise ExprError(t.col, f"expected an expression, got {t.describe()}")

    def _nested(self, t: Token) -> Expr:
        self.pos += 1
        if t.text in ("-", "+", "~"):
            return Unary(t.text, self._unary(), t.col)
        e = self._binary(0)
        if not (self.tok.kind == "OP" and self.tok.text == ")"):
            raise ExprError(self.tok.col, f"expected ')' to close the '(' at column {t.col}, "
                                          f"got {self.tok.describe()}")
        self.pos += 1
        return e


def symbols(e: Expr) -> list[Sym]:
    if isinstance(e, Sym):
        return [e]
    if isinstance(e, Unary):
        return symbols(e.x)
    if isinstance(e, Binary):
        return symbols(e.left) + symbols(e.right)
    return []


def evaluate(e: Expr, lookup: Callable[[str, int], int]) -> int:
    """Value of `e`; `lookup(name, col)` resolves symbols (and raises for unknown ones). Iterative
    (post-order over an explicit stack): long operator chains cannot exhaust Python's stack."""
    todo: list[tuple[Expr, bool]] = [(e, False)]
    vals: list[int] = []
    while todo:
        node, ready = todo.pop()
        if isinstance(node, Num):
            v = node.value
        elif isinstance(node, Sym):
            v = lookup(node.name, node.col)
        elif not ready:
            todo.append((node, True))
            if isinstance(node, Binary):
                todo += [(node.right, False), (node.left, False)]
            else:
                todo.append((node.x, False))
            continue
        elif isinstance(node, Unary):
            x = vals.pop()
            v = -x if node.op == "-" else ~x if node.op == "~" else x
        else:
            b = vals.pop()
            a = vals.pop()
            v = _binary(node.op, a, b, node)
        if not -_LIMIT <= v < _LIMIT:
            raise ExprError(node.col, f"value out of range (more than {VALUE_BITS} bits)")
        vals.append(v)
    return vals[0]


def _binary(op: str, a: int, b: int, e: Binary) -> int:
    if op in ("/", "%"):
        if b == 0:
            raise ExprError(e.col, "division by zero" if op == "/" else "modulo by zero")
        q = abs(a) // abs(b)
        if (a < 0) != (b < 0):
            q = -q
        return q if op == "/" else a - b * q
    if op in ("<<", ">>"):
        if not 0 <= b < VALUE_BITS:
            raise ExprError(e.col, f"shift count {b} outside 0..{VALUE_BITS - 1}")
        return a << b if op == "<<" else a >> b
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "&":
        return a & b
    if op == "|":
        return a | b
    assert op == "^", op
    return a ^ b
