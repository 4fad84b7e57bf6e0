"""ROM images: `hex` (one 16-hex-digit word per line: Verilog `$readmemh`, or `int(line, 16)` per line
in Amaranth) and `bin` (little-endian 8-byte words, as spec.isa states for binary images)."""
from __future__ import annotations

import re

from spec import isa

from .errors import AsmError, Diagnostic, Loc

FORMATS = ("hex", "bin")
_DIGITS = isa.WORD_BITS // 4
_BYTES = isa.WORD_BITS // 8
_HEX = re.compile(r"[0-9a-fA-F_]+")


def to_hex(words: list[int]) -> str:
    return "".join(f"{w:0{_DIGITS}x}\n" for w in words)


def to_bin(words: list[int]) -> bytes:
    return b"".join(w.to_bytes(_BYTES, "little") for w in words)


def from_hex(text: str, filename: str = "<hex>") -> list[int]:
    """Words of a hex image. Blank lines and `//` comments are skipped (as `$readmemh` does);
    `@address` lines are not supported. Raises AsmError with the line and column of bad input."""
    words = []
    errors = []
    for n, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r")
        body = line.split("//", 1)[0]
        stripped = body.strip()
        if not stripped:
            continue
        col = len(body) - len(body.lstrip()) + 1
        loc = Loc(filename, n, col, line)
        if not _HEX.fullmatch(stripped) or stripped.strip("_") == "":
            errors.append(Diagnostic(loc, f"expected a word of at most {_DIGITS} hex digits, got {stripped[:40]!r}"))
            continue
        digits = stripped.replace("_", "")
        if len(digits) > _DIGITS:
            errors.append(Diagnostic(loc, f"{len(digits)} hex digits: a word has at most {_DIGITS}"))
            continue
        words.append(int(digits, 16))
    if errors:
        raise AsmError(errors[:20])
    return words


def from_bin(data: bytes, filename: str = "<bin>") -> list[int]:
    if len(data) % _BYTES:
        raise AsmError(Diagnostic(Loc(filename, 1, 1, None), f"{len(data)} bytes is not a whole number of "
                                                               f"{_BYTES}-byte words"))
    return [int.from_bytes(data[i:i + _BYTES], "little") for i in range(0, len(data), _BYTES)]
