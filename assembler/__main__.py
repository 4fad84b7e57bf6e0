"""Command line: assemble (`python -m assembler prog.s -o rom.hex`) or disassemble
(`python -m assembler --disassemble rom.hex`). Exit status: 0 ok, 1 any error (printed as
`file:line:col: error: ...` with the source line and a caret), 2 bad command-line usage."""
from __future__ import annotations

import argparse
import os
import sys

from .disassembler import disassemble
from .encoder import assemble
from .errors import AsmError
from .image import FORMATS, from_bin, from_hex, to_bin, to_hex


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m assembler", description=__doc__.split("\n")[0])
    p.add_argument("input", help="assembly source (or '-' for stdin); with --disassemble, a ROM image")
    p.add_argument("-o", "--output", help="output file (default: stdout)")
    p.add_argument("-f", "--format", choices=FORMATS, default=None,
                   help="image format: hex (default; 16 hex digits per line) or bin (little-endian 8-byte words)")
    p.add_argument("-l", "--listing", metavar="FILE", help="write a listing (address, word, source line)")
    p.add_argument("-D", dest="defines", action="append", default=[], metavar="NAME=VALUE",
                   help="define a constant (VALUE is an expression; NAME alone means 1)")
    p.add_argument("-I", dest="include", action="append", default=[], metavar="DIR",
                   help="search DIR for .include files (after the including file's directory)")
    p.add_argument("-d", "--disassemble", action="store_true",
                   help="read a ROM image (hex, or bin with -f bin or a .bin name) and print assembly source")
    return p


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _write(path: str | None, data: str | bytes) -> None:
    if path is None or path == "-":
        if isinstance(data, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data)
        return
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as f:
        f.write(data)


def run(args: argparse.Namespace) -> int:
    name = "<stdin>" if args.input == "-" else args.input
    try:
        raw = _read_input(args.input)
    except OSError as e:
        print(f"{name}: error: cannot read: {e.strerror}", file=sys.stderr)
        return 1
    if args.disassemble:
        fmt = args.format or ("bin" if name.lower().endswith(".bin") else "hex")
        words = from_bin(raw, name) if fmt == "bin" else from_hex(raw.decode("utf-8", errors="replace"), name)
        out: str | bytes = disassemble(words, os.path.basename(name))
    else:
        defines = {}
        for d in args.defines:
            key, eq, value = d.partition("=")
            defines[key] = value if eq else "1"
        text = raw.decode("utf-8", errors="replace")
        prog = assemble(text, name, defines=defines, include_paths=args.include)
        out = to_bin(prog.words) if args.format == "bin" else to_hex(prog.words)
        if args.listing:
            _write_checked(args.listing, prog.listing())
    _write_checked(args.output, out)
    return 0


def _write_checked(path: str | None, data: str | bytes) -> None:
    try:
        _write(path, data)
    except OSError as e:
        raise _OutputError(f"{path}: error: cannot write: {e.strerror}") from None


class _OutputError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(sys.stderr, "reconfigure"):
        sys.stderr.reconfigure(errors="backslashreplace")
    try:
        return run(args)
    except AsmError as e:
        print(e.render(), file=sys.stderr)
        return 1
    except _OutputError as e:
        print(e, file=sys.stderr)
        return 1
    except Exception as e:  # a bug: say so in one line, never a traceback (ASSEMBLER_DEBUG=1 re-raises)
        if os.environ.get("ASSEMBLER_DEBUG"):
            raise
        print(f"assembler: internal error: {type(e).__name__}: {e} (a bug; please report)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
