"""Words -> assembly source that reassembles to the same words.

Branch targets inside the program become labels `L_<address>` (decimal word address); words that
spec.isa.decode rejects are written as `.word` with the reason in a comment.
"""
from __future__ import annotations

from spec import isa


def label(addr: int) -> str:
    return f"L_{addr}"


def disassemble(words: list[int], title: str | None = None) -> str:
    decoded: list[isa.Instr | isa.DecodeError] = []
    targets: set[int] = set()
    for w in words:
        try:
            ins = isa.decode(w)
        except isa.DecodeError as e:
            decoded.append(e)
            continue
        decoded.append(ins)
        for o, v in zip(ins.op.operands, ins.args, strict=True):
            if o.kind is isa.Kind.LABEL and v < len(words):
                targets.add(v)
    out = [f"; {title}: {len(words)} words" if title else f"; {len(words)} words"]
    for addr, (w, d) in enumerate(zip(words, decoded, strict=True)):
        if addr in targets:
            out.append(f"{label(addr)}:")
        if isinstance(d, isa.DecodeError):
            text, note = f".word 0x{w:016x}", f"  {d}"
        else:
            ops = ", ".join(label(v) if o.kind is isa.Kind.LABEL and v in targets else isa.format_operand(o, v)
                            for o, v in zip(d.op.operands, d.args, strict=True))
            text, note = f"{d.op.mnemonic} {ops}".rstrip(), ""
        out.append(f"    {text:<36} ; {addr:>5}: {w:016x}{note}")
    return "\n".join(out) + "\n"
