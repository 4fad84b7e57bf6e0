"""Diagnostics: every error the assembler reports carries a file, a line and a column (1-based)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Loc:
    """A position in a source: file name, 1-based line and column, and that line's text (for the caret)."""
    file: str
    line: int
    col: int
    text: str | None = None   # None: no source line to show (binary input)

    def at(self, col: int) -> Loc:
        return dataclasses.replace(self, col=col)


@dataclasses.dataclass(frozen=True)
class Diagnostic:
    loc: Loc
    message: str

    def render(self) -> str:
        """`file:line:col: error: message`, the source line, and a caret under the column."""
        head = f"{self.loc.file}:{self.loc.line}:{self.loc.col}: error: {self.message}"
        if self.loc.text is None:
            return head
        text = _printable(self.loc.text)
        # keep tabs so that the caret lines up with the source as the terminal shows it
        pad = "".join(c if c == "\t" else " " for c in text[: max(self.loc.col - 1, 0)])
        return f"{head}\n{text}\n{pad}^"


def _printable(s: str) -> str:
    return "".join(c if (c.isprintable() or c == "\t") else "?" for c in s)


class AsmError(Exception):
    """One or more assembly errors. `file`, `line`, `col` and `message` are those of the first;
    `diagnostics` holds them all, in source order of discovery."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        assert diagnostics
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        first = self.diagnostics[0]
        self.file, self.line, self.col, self.message = first.loc.file, first.loc.line, first.loc.col, first.message
        super().__init__(f"{self.file}:{self.line}:{self.col}: {self.message}")

    @classmethod
    def at(cls, loc: Loc, message: str) -> AsmError:
        return cls(Diagnostic(loc, message))

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)
