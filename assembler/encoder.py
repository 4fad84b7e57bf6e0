"""Two passes over the source: pass 1 expands includes, repetitions and macros, defines labels and
constants and gives every instruction its word address (one word each); pass 2 evaluates operand
expressions and encodes with spec.isa.encode. Operand kinds and ranges come from spec.isa.FORMATS.
"""
from __future__ import annotations

import dataclasses
import os
import re

from spec import isa

from .errors import AsmError, Diagnostic, Loc
from .expr import Expr, ExprError, evaluate
from .parser import (
    REG_COUNT,
    Assign,
    Call,
    Directive,
    Expansion,
    ExprOperand,
    Instr,
    Line,
    MemOperand,
    RegOperand,
    SyntaxErr,
    directive_name,
    is_register,
    parse_expr_tokens,
    parse_line,
    reg_range,
    split_commas,
)

#: default limit on source lines processed (after expansion): repetitions cannot run away
MAX_LINES = 1 << 20
MAX_ERRORS = 20
#: .rept bodies, macro expansions and includes nest at most this deep (together)
MAX_NESTING = 32
#: constants defined in terms of constants, at most this deep
MAX_CONST_DEPTH = 32
DIRECTIVES = (".equ", ".include", ".word", ".rept", ".endr", ".macro", ".endm")

_S32 = (-(1 << (isa.IMM_BITS - 1)), (1 << (isa.IMM_BITS - 1)) - 1)
_LABEL = (0, (1 << (isa.IMM_BITS - 1)) - 1)
_U16 = (1, isa.VL_MAX)
_WORD = (-(1 << (isa.WORD_BITS - 1)), (1 << isa.WORD_BITS) - 1)


@dataclasses.dataclass
class ListingRow:
    loc: Loc
    text: str
    expanded: bool                    # a line of a macro expansion
    addrs: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Program:
    """An assembled program: `words[i]` is the instruction at word address i."""
    words: list[int]
    symbols: dict[str, int]           # labels (word addresses) and constants
    rows: list[ListingRow]

    def listing(self) -> str:
        """Address, word and source line side by side (expanded macro lines marked `+`)."""
        out = [f"{'addr':>6}  {'word':16}  source"]
        for r in self.rows:
            where = f"{os.path.basename(r.loc.file)}:{r.loc.line}"
            mark = "+" if r.expanded else " "
            if not r.addrs:
                out.append(f"{'':>6}  {'':16}  {where:<20} {mark} {r.text}".rstrip())
            for k, a in enumerate(r.addrs):
                text = r.text if k == 0 else ""
                out.append(f"{a:>6}  {self.words[a]:016x}  {where:<20} {mark} {text}".rstrip())
        return "\n".join(out) + "\n"


class _Silent(Exception):
    """Evaluation stopped by an error that has already been reported."""


class _Fatal(Exception):
    """Stop assembling (limits); the diagnostic is already recorded."""


@dataclasses.dataclass
class _Const:
    expr: Expr
    line: Line
    col: int
    seq: int
    state: str = "new"     # new, busy, done, failed
    value: int = 0


@dataclasses.dataclass
class _Label:
    addr: int
    where: str


@dataclasses.dataclass
class _Macro:
    params: list[str]
    body: list[Line]
    where: str


@dataclasses.dataclass
class _Emit:
    line: Line
    seq: int
    instr: Instr | None
    expr: Expr | None = None     # .word
    col: int = 0


def source_lines(text: str, filename: str) -> list[Line]:
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    out = []
    for i, t in enumerate(raw, 1):
        t = t.removesuffix("\r")
        out.append(Line(Loc(filename, i, 1, t), t))
    return out


class _Assembler:
    def __init__(self, include_paths, max_lines: int, max_errors: int):
        self.include_paths = [str(p) for p in include_paths]
        self.max_lines, self.max_errors = max_lines, max_errors
        self.lines_seen = 0
        self.seq = 0
        self.errors: list[tuple[int, Diagnostic]] = []
        self.labels: dict[str, _Label] = {}
        self.consts: dict[str, _Const] = {}
        self.macros: dict[str, _Macro] = {}
        self.emits: list[_Emit] = []
        self.rows: list[ListingRow] = []
        self.include_stack: list[str] = []
        self.nesting = 0
        self.const_depth = 0
        self.unique = 0
        self.current: Line | None = None

    # -- diagnostics ------------------------------------------------------------------------------
    def report(self, seq: int, d: Diagnostic) -> None:
        self.errors.append((seq, d))
        if len(self.errors) >= self.max_errors:
            raise _Fatal

    def fatal(self, seq: int, d: Diagnostic) -> None:
        self.errors.append((seq, d))
        raise _Fatal

    def tick(self, line: Line) -> int:
        self.current = line
        self.lines_seen += 1
        if self.lines_seen > self.max_lines:
            self.fatal(self.seq, line.error(1, f"more than {self.max_lines} lines after expansion "
                                               "(runaway .rept or macro?)"))
        self.seq += 1
        return self.seq

    def row(self, line: Line) -> ListingRow:
        r = ListingRow(line.loc, line.text, line.expansion is not None)
        self.rows.append(r)
        return r

    # -- pass 1 -----------------------------------------------------------------------------------
    def process(self, lines: list[Line]) -> None:
        i = 0
        while i < len(lines):
            line = lines[i]
            i += 1
            name = directive_name(line)
            if name == ".rept":
                j = _match(lines, i, ".rept", ".endr")
                if j is None:
                    seq = self.tick(line)
                    self.row(line)
                    self.report(seq, line.error(_first_col(line), "'.rept' without a matching '.endr'"))
                    continue
                self.rept(line, lines[i:j], lines[j])
                i = j + 1
            elif name == ".macro":
                j = _match(lines, i, ".macro", ".endm")
                seq = self.tick(line)
                self.row(line)
                if j is None:
                    self.report(seq, line.error(_first_col(line), "'.macro' without a matching '.endm'"))
                    continue
                for b in lines[i:j + 1]:
                    self.row(b)
                self.define_macro(line, seq, lines[i:j])
                i = j + 1
            else:
                self.statement(line)

    def rept(self, line: Line, body: list[Line], end: Line) -> None:
        seq = self.tick(line)
        self.row(line)
        count = 0
        try:
            st = parse_line(line, self.macros)
            self.define_labels(line, seq, st.labels)
            d = st.body
            assert isinstance(d, Directive) and d.name == ".rept"
            toks = d.tokens[:-1]
            if not toks:
                raise SyntaxErr(d.tokens[-1].col, "'.rept' needs a count")
            e = parse_expr_tokens(toks, "the '.rept' count")
            count = evaluate(e, self.lookup_now)
            if count < 0:
                raise SyntaxErr(toks[0].col, f"'.rept' count {count} is negative")
            if count > self.max_lines:
                raise SyntaxErr(toks[0].col, f"'.rept' count {count} exceeds the expansion limit ({self.max_lines})")
        except (SyntaxErr, ExprError) as e:
            self.report(seq, line.error(e.col, e.message))
            count = 0
        except _Silent:
            count = 0
        if count and self.nesting >= MAX_NESTING:
            self.fatal(seq, line.error(_first_col(line), f"'.rept', macros and includes nested deeper than "
                                                         f"{MAX_NESTING}"))
        self.nesting += 1
        try:
            for _ in range(count):
                self.tick(line)
                self.process(body)
        finally:
            self.nesting -= 1
        self.tick(end)
        self.row(end)
        try:
            st = parse_line(end, self.macros)
            self.define_labels(end, self.seq, st.labels)
            if len(st.body.tokens) > 1:  # type: ignore[union-attr]
                raise SyntaxErr(st.body.tokens[0].col, "'.endr' takes no operands")  # type: ignore[union-attr]
        except SyntaxErr as e:
            self.report(self.seq, end.error(e.col, e.message))

    def define_macro(self, line: Line, seq: int, body: list[Line]) -> None:
        try:
            st = parse_line(line, self.macros)
            self.define_labels(line, seq, st.labels)
            d = st.body
            assert isinstance(d, Directive)
            toks = d.tokens
            if toks[0].kind != "IDENT":
                raise SyntaxErr(toks[0].col, f"'.macro' needs a name, got {toks[0].describe()}")
            name = toks[0]
            if name.text.upper() in isa.BY_MNEMONIC or is_register(name.text):
                raise SyntaxErr(name.col, f"'{name.text}' is an instruction or register name; a macro cannot "
                                          "take it")
            if name.text in self.macros:
                raise SyntaxErr(name.col, f"macro '{name.text}' is already defined at {self.macros[name.text].where}")
            start = 1
            if toks[1].kind == "OP" and toks[1].text == ",":
                start = 2
            params: list[str] = []
            for g in split_commas(toks, start):
                if len(g) != 1 or g[0].kind != "IDENT":
                    col = g[0].col if g else name.col
                    raise SyntaxErr(col, "macro parameters are names separated by commas")
                if g[0].text in params:
                    raise SyntaxErr(g[0].col, f"duplicate macro parameter '{g[0].text}'")
                params.append(g[0].text)
            where = _where(line.error(name.col, ""))
            self.macros[name.text] = _Macro(params, body, where)
        except (SyntaxErr, ExprError) as e:
            self.report(seq, line.error(e.col, e.message))

    def define_labels(self, line: Line, seq: int, labels) -> None:
        for name, col in labels:
            self.check_new_symbol(line, seq, name, col)
            self.labels[name] = _Label(len(self.emits), _where(line.error(col, "")))

    def check_new_symbol(self, line: Line, seq: int, name: str, col: int) -> None:
        prev = self.labels.get(name) or self.consts.get(name)
        if prev is not None:
            where = prev.where if isinstance(prev, _Label) else _where(prev.line.error(prev.col, ""))
            raise SyntaxErr(col, f"'{name}' is already defined at {where}")

    def statement(self, line: Line) -> None:
        seq = self.tick(line)
        r = self.row(line)
        try:
            st = parse_line(line, self.macros)
            self.define_labels(line, seq, st.labels)
            b = st.body
            if isinstance(b, Instr):
                self.check_instr(b)
                r.addrs.append(len(self.emits))
                self.emits.append(_Emit(line, seq, b))
            elif isinstance(b, Assign):
                self.define_const(line, seq, b.name, b.col, b.expr)
            elif isinstance(b, Directive):
                self.directive(line, seq, b, r)
            elif isinstance(b, Call):
                self.call(line, b)
        except (SyntaxErr, ExprError) as e:
            self.report(seq, line.error(e.col, e.message))

    def define_const(self, line: Line, seq: int, name: str, col: int, e: Expr) -> None:
        self.check_new_symbol(line, seq, name, col)
        self.consts[name] = _Const(e, line, col, seq)

    def directive(self, line: Line, seq: int, d: Directive, r: ListingRow) -> None:
        toks = d.tokens
        if d.name == ".equ":
            groups = split_commas(toks, 0)
            if len(groups) != 2 or len(groups[0]) != 1 or groups[0][0].kind != "IDENT":
                raise SyntaxErr(toks[0].col, "expected '.equ NAME, expression'")
            name = groups[0][0]
            if is_register(name.text):
                raise SyntaxErr(name.col, f"{name.text} is a register name and cannot be a constant")
            if not groups[1]:
                raise SyntaxErr(toks[-1].col, "'.equ' needs a value")
            self.define_const(line, seq, name.text, name.col, parse_expr_tokens(groups[1], "the value"))
        elif d.name == ".word":
            groups = split_commas(toks, 0)
            if not groups:
                raise SyntaxErr(toks[-1].col, "'.word' needs a value")
            exprs = []
            for g in groups:
                if not g:
                    raise SyntaxErr(d.col, "empty '.word' value")
                exprs.append((parse_expr_tokens(g, "the '.word' value"), g[0].col))
            for e, col in exprs:
                r.addrs.append(len(self.emits))
                self.emits.append(_Emit(line, seq, None, e, col))
        elif d.name == ".include":
            if toks[0].kind != "STR" or toks[1].kind != "EOL":
                raise SyntaxErr(toks[0].col, 'expected \'.include "file"\'')
            self.include(line, seq, toks[0].value, toks[0].col)  # type: ignore[arg-type]
        elif d.name in (".endr", ".endm"):
            opener = ".rept" if d.name == ".endr" else ".macro"
            raise SyntaxErr(d.col, f"'{d.name}' without a matching '{opener}'")
        else:
            raise SyntaxErr(d.col, f"unknown directive '{d.name}' (known: {', '.join(DIRECTIVES)})")

    def include(self, line: Line, seq: int, name: str, col: int) -> None:
        here = os.path.dirname(line.loc.file) if not line.loc.file.startswith("<") else ""
        candidates = [os.path.join(here, name)] + [os.path.join(p, name) for p in self.include_paths]
        path = next((c for c in candidates if os.path.isfile(c)), None)
        if path is None:
            raise SyntaxErr(col, f"cannot find include file '{name}' (searched: "
                                 f"{', '.join(os.path.dirname(c) or '.' for c in candidates)})")
        real = os.path.realpath(path)
        if real in self.include_stack:
            chain = [*self.include_stack[self.include_stack.index(real):], real]
            raise SyntaxErr(col, "include cycle: " + " -> ".join(os.path.basename(c) for c in chain))
        if self.nesting >= MAX_NESTING:
            raise SyntaxErr(col, f"includes, macros and '.rept' nested deeper than {MAX_NESTING}")
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
        except OSError as e:
            raise SyntaxErr(col, f"cannot read '{name}': {e.strerror}") from None
        self.include_stack.append(real)
        self.nesting += 1
        try:
            self.process(source_lines(text, os.path.normpath(path)))
        finally:
            self.include_stack.pop()
            self.nesting -= 1

    def call(self, line: Line, c: Call) -> None:
        m = self.macros[c.name]
        if len(c.args) != len(m.params):
            raise SyntaxErr(c.col, f"macro '{c.name}' takes {len(m.params)} argument(s)"
                                   f"{' (' + ', '.join(m.params) + ')' if m.params else ''}, got {len(c.args)}")
        if self.nesting >= MAX_NESTING:
            self.fatal(self.seq, line.error(c.col, f"macros, '.rept' and includes nested deeper than {MAX_NESTING} "
                                                   f"(does '{c.name}' call itself?)"))
        self.unique += 1
        values = dict(zip(m.params, c.args, strict=True))
        values["@"] = str(self.unique)

        def sub(mt: re.Match) -> str:
            return values.get(mt.group(1), mt.group(0))

        body = [Line(b.loc, _ARG.sub(sub, b.text), Expansion(c.name, line, c.col)) for b in m.body]
        self.nesting += 1
        try:
            self.process(body)
        finally:
            self.nesting -= 1

    def check_instr(self, ins: Instr) -> None:
        op = ins.op
        want = op.operands
        if len(ins.operands) != len(want):
            col = ins.operands[len(want)].col if len(ins.operands) > len(want) else ins.col
            raise SyntaxErr(col, f"{op.mnemonic} takes {len(want)} operand(s){': ' if want else ''}"
                                 f"{signature(op)}; got {len(ins.operands)}")
        for k, (spec, o) in enumerate(zip(want, ins.operands, strict=True), 1):
            what = f"{op.mnemonic} operand {k} ({spec.name})"
            if spec.kind in REG_COUNT:
                if not isinstance(o, RegOperand):
                    raise SyntaxErr(o.col, f"{what}: expected a {spec.kind.value} ({reg_range(spec.kind)}), "
                                           f"got {_describe(o)}")
                _check_reg(o, spec.kind, what)
            elif spec.kind is isa.Kind.MEM:
                if not isinstance(o, MemOperand):
                    raise SyntaxErr(o.col, f"{what}: expected a memory operand [A<n> + offset], got {_describe(o)}")
                assert o.base is not None
                _check_reg(o.base, isa.Kind.A, f"{what} base")
            elif not isinstance(o, ExprOperand):
                raise SyntaxErr(o.col, f"{what}: expected an expression ({spec.kind.value}), got {_describe(o)}")

    # -- symbols ----------------------------------------------------------------------------------
    def lookup_now(self, name: str, col: int) -> int:
        """Pass-1 lookup (.rept counts): only what is defined above the current line."""
        if name in self.labels:
            return self.labels[name].addr
        c = self.consts.get(name)
        if c is None:
            raise ExprError(col, f"'{name}' is not defined before this line (a '.rept' count must be known "
                                 "when it is read)")
        if c.state == "done":
            return c.value
        if c.state in ("busy", "failed"):
            raise ExprError(col, f"constant '{name}' cannot be evaluated here")
        if self.const_depth >= MAX_CONST_DEPTH:
            raise ExprError(col, f"constants defined in terms of constants deeper than {MAX_CONST_DEPTH}")
        c.state = "busy"
        self.const_depth += 1
        try:
            v = evaluate(c.expr, self.lookup_now)
        except ExprError as e:
            raise ExprError(col, f"constant '{name}' cannot be evaluated here: {e.message}") from None
        finally:
            c.state = "new"
            self.const_depth -= 1
        c.state, c.value = "done", v
        return v

    def lookup(self, name: str, col: int) -> int:
        if name in self.labels:
            return self.labels[name].addr
        c = self.consts.get(name)
        if c is None:
            raise ExprError(col, f"undefined symbol '{name}'")
        if c.state == "done":
            return c.value
        if c.state == "failed":
            raise _Silent
        if c.state == "busy":
            raise ExprError(col, f"constant '{name}' is defined in terms of itself")
        if self.const_depth >= MAX_CONST_DEPTH:
            raise ExprError(col, f"constants defined in terms of constants deeper than {MAX_CONST_DEPTH}")
        c.state = "busy"
        self.const_depth += 1
        try:
            v = evaluate(c.expr, self.lookup)
        except ExprError as e:
            c.state = "failed"
            self.report(c.seq, c.line.error(e.col, e.message))
            raise _Silent from None
        except _Silent:
            c.state = "failed"
            raise
        finally:
            self.const_depth -= 1
        c.state, c.value = "done", v
        return v

    # -- pass 2 -----------------------------------------------------------------------------------
    def encode_all(self) -> list[int]:
        for name in list(self.consts):
            try:
                self.lookup(name, 1)
            except _Silent:
                pass
        words = []
        for em in self.emits:
            try:
                words.append(self.encode(em))
            except ExprError as e:
                self.report(em.seq, em.line.error(e.col, e.message))
                words.append(0)
            except _Silent:
                words.append(0)
        return words

    def encode(self, em: _Emit) -> int:
        if em.instr is None:
            v = evaluate(em.expr, self.lookup)  # type: ignore[arg-type]
            _check_range(v, _WORD, em.col, f"'.word' value {v} does not fit {isa.WORD_BITS} bits")
            return v & ((1 << isa.WORD_BITS) - 1)
        op = em.instr.op
        args: list = []
        for spec, o in zip(op.operands, em.instr.operands, strict=True):
            what = f"{op.mnemonic} {spec.name}"
            if isinstance(o, RegOperand):
                args.append(o.index)
            elif isinstance(o, MemOperand):
                off = evaluate(o.offset, self.lookup)
                _check_range(off, _S32, o.col, f"{what}: offset {off} does not fit a signed {isa.IMM_BITS}-bit "
                                               f"immediate ({_S32[0]}..{_S32[1]})")
                args.append((o.base.index, off))  # type: ignore[union-attr]
            else:
                assert isinstance(o, ExprOperand)
                v = evaluate(o.expr, self.lookup)
                if spec.kind is isa.Kind.S32:
                    _check_range(v, _S32, o.col, f"{what}: {v} does not fit a signed {isa.IMM_BITS}-bit "
                                                 f"immediate ({_S32[0]}..{_S32[1]})")
                elif spec.kind is isa.Kind.U16:
                    _check_range(v, _U16, o.col, f"{what}: {v} outside {_U16[0]}..{_U16[1]}")
                else:
                    _check_range(v, _LABEL, o.col, f"{what}: target {v} outside {_LABEL[0]}..{_LABEL[1]}")
                args.append(v)
        try:
            return isa.encode(op.mnemonic, *args)
        except isa.EncodeError as e:  # the checks above mirror encode's; this is a safety net
            raise ExprError(em.instr.col, str(e)) from None


_ARG = re.compile(r"\\([A-Za-z_][A-Za-z0-9_]*|@)")


def _match(lines: list[Line], start: int, opener: str, closer: str) -> int | None:
    depth = 0
    for j in range(start, len(lines)):
        n = directive_name(lines[j])
        if n == opener:
            depth += 1
        elif n == closer:
            if depth == 0:
                return j
            depth -= 1
    return None


def _first_col(line: Line) -> int:
    return len(line.text) - len(line.text.lstrip()) + 1


def _where(d: Diagnostic) -> str:
    return f"{d.loc.file}:{d.loc.line}:{d.loc.col}"


def _check_range(v: int, lim: tuple[int, int], col: int, message: str) -> None:
    if not lim[0] <= v <= lim[1]:
        raise ExprError(col, message)


def _check_reg(o: RegOperand, kind: isa.Kind, what: str) -> None:
    if o.kind is not kind:
        raise SyntaxErr(o.col, f"{what}: expected a {kind.value} ({reg_range(kind)}), got {o.kind.value} {o.text}")
    if o.index >= REG_COUNT[kind]:
        raise SyntaxErr(o.col, f"{what}: there is no register {o.text} ({reg_range(kind)})")


def _describe(o) -> str:
    if isinstance(o, RegOperand):
        return f"{o.kind.value} {o.text}"
    if isinstance(o, MemOperand):
        return "a memory operand"
    return "an expression"


def signature(op: isa.Op) -> str:
    """`Vd (vector register), [As + off] (memory ...)`: the operands spec.isa.FORMATS gives an op."""
    parts = []
    for o in op.operands:
        if o.kind is isa.Kind.MEM:
            parts.append("[As + off]")
        elif o.kind in REG_COUNT:
            parts.append(f"{o.name} ({reg_range(o.kind)})")
        else:
            parts.append(f"{o.name} ({o.kind.value})")
    return ", ".join(parts)


def assemble(text: str, filename: str = "<string>", *, defines: dict[str, str | int] | None = None,
             include_paths=(), max_lines: int = MAX_LINES, max_errors: int = MAX_ERRORS) -> Program:
    """Assemble source text. Raises AsmError (all diagnostics found, first first) on any error.

    `defines` are constants as if defined before the first line (values: ints or expression texts);
    `.include` looks next to `filename`, then in `include_paths`.
    """
    a = _Assembler(include_paths, max_lines, max_errors)
    try:
        for k, (name, value) in enumerate((defines or {}).items(), 1):
            t = f"{name}={value}"
            line = Line(Loc("<command line>", k, 1, t), t)
            a.statement(line)
        a.rows.clear()  # the listing shows the source only
        if os.path.isfile(filename):
            a.include_stack.append(os.path.realpath(filename))
        a.process(source_lines(text, filename))
        words = a.encode_all()
    except _Fatal:
        words = []
    except RecursionError:  # a safety net: the limits above keep well inside Python's stack
        line = a.current or Line(Loc(filename, 1, 1, None), "")
        a.errors.append((a.seq, line.error(1, "nesting too deep")))
        words = []
    if a.errors:
        a.errors.sort(key=lambda e: e[0])
        raise AsmError([d for _, d in a.errors])
    symbols = {n: lab.addr for n, lab in a.labels.items()} | {n: c.value for n, c in a.consts.items()}
    return Program(words, symbols, a.rows)


def assemble_file(path: str, **kw) -> Program:
    """Assemble a file (read as UTF-8; undecodable bytes become U+FFFD and are reported where used)."""
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", errors="replace")
    return assemble(text, str(path), **kw)
