"""Hypothesis strategies: random valid programs (every opcode, random operands, labels) as source
text together with the words spec.isa.encode gives for them."""
from __future__ import annotations

from hypothesis import strategies as st

from assembler.parser import REG_COUNT, REG_PREFIX
from spec import isa

S32 = st.integers(-(1 << (isa.IMM_BITS - 1)), (1 << (isa.IMM_BITS - 1)) - 1)


def _case(draw, text: str) -> str:
    return draw(st.sampled_from([text, text.lower(), text.upper()]))


@st.composite
def operand(draw, opd: isa.Operand, labels: list[str]):
    """(source text, value for spec.isa.encode) of one operand."""
    if opd.kind in REG_COUNT:
        i = draw(st.integers(0, REG_COUNT[opd.kind] - 1))
        return _case(draw, f"{REG_PREFIX[opd.kind]}{i}"), i
    if opd.kind is isa.Kind.MEM:
        base = draw(st.integers(0, isa.N_AREGS - 1))
        off = draw(st.one_of(st.just(0), st.integers(-64, 64), S32))
        reg = _case(draw, f"{REG_PREFIX[isa.Kind.A]}{base}")
        if off == 0 and draw(st.booleans()):
            return f"[{reg}]", (base, off)
        sp = draw(st.sampled_from(["", " "]))
        sign = "-" if off < 0 else "+"
        mag = abs(off)
        num = draw(st.sampled_from([str(mag), hex(mag)]))
        return f"[{reg}{sp}{sign}{sp}{num}]", (base, off)
    if opd.kind is isa.Kind.S32:
        v = draw(S32)
        return draw(st.sampled_from([str(v), f"({v})", f"0 + {v}"] + ([hex(v)] if v >= 0 else []))), v
    if opd.kind is isa.Kind.U16:
        v = draw(st.integers(1, isa.VL_MAX))
        return draw(st.sampled_from([str(v), hex(v), f"{v - 1} + 1"])), v
    if opd.kind is isa.Kind.LABEL:
        return draw(st.sampled_from(labels)), None     # resolved by the caller
    raise AssertionError(opd.kind)


@st.composite
def programs(draw, max_size: int = 25):
    """(source, expected words): every line an instruction of spec.isa, some lines labelled."""
    n = draw(st.integers(1, max_size))
    label_at = sorted(set(draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=4))))
    labels = {f"lab{k}": a for k, a in enumerate(label_at)}
    names = list(labels)
    lines, words = [], []
    for addr in range(n):
        op = draw(st.sampled_from(isa.OPS))
        texts, vals = [], []
        for o in op.operands:
            t, v = draw(operand(o, names))
            texts.append(t)
            vals.append(labels[t] if o.kind is isa.Kind.LABEL else v)
        words.append(isa.encode(op.mnemonic, *vals))
        prefix = "".join(f"{nm}: " for nm, a in labels.items() if a == addr)
        sep = draw(st.sampled_from([", ", ",", " , "]))
        comment = draw(st.sampled_from(["", "  ; c", " # c"]))
        lines.append(f"{prefix}    {_case(draw, op.mnemonic)} {sep.join(texts)}{comment}".rstrip())
    return "\n".join(lines) + "\n", words
