"""Assembler and disassembler for the accelerator's instruction set (spec/isa.py; language: docs/assembler.md).

    from assembler import assemble, disassemble
    prog = assemble("SETVL 64\nloop: DJNZ A1, loop\nHALT\n")
    prog.words          # list of 64-bit ints, word address = index
    disassemble(prog.words)

Command line: `python -m assembler prog.s -o rom.hex`, `python -m assembler --disassemble rom.hex`.
Every error is an AsmError carrying file, line and column (`.file`, `.line`, `.col`, `.diagnostics`).
"""
from .disassembler import disassemble
from .encoder import Program, assemble, assemble_file
from .errors import AsmError, Diagnostic, Loc
from .image import from_bin, from_hex, to_bin, to_hex

__all__ = ["AsmError", "Diagnostic", "Loc", "Program", "assemble", "assemble_file", "disassemble",
           "from_bin", "from_hex", "to_bin", "to_hex"]
