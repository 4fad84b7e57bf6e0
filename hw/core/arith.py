"""Wide products in pipeline stages of DSP-sized pieces, for the units of hw/core.

An ECP5 MULT18X18D multiplies two 18-bit signed (or unsigned) numbers; at speed grade -6 a
registered 18x18 product runs at about 145 MHz, a 48x48 one built by yosys from nine of them at
64 MHz. So a product wider than 18x18 is split here into 18x18 partial products, each registered
on its own (one DSP each), and their shifted sum is added up one adder level per pipeline stage:

    stage k0          every partial product a_i * b_j            (one 18x18 product each)
    stage k0 + 1 ...  pairs of terms added, one carry chain per stage, until one term is left

Operands are cut into limbs of LIMB = 17 unsigned bits from the bottom; a signed operand's top
limb keeps its sign (at most 18 bits, signed), so every partial product is an 18x18 signed
product. Terms that do not overlap are concatenated instead of added (the first diagonal of a
48x48 product, a0*b0 | a1*b1 | a2*b2, is one term), which saves an adder level where it can.

The result is exact: ``pipelined_product`` returns the full product ``a * b`` (its Amaranth shape:
signed when either operand is) after ``product_stages(a_shape, b_shape)`` stages. The caller owns
the pipeline and its enables: ``reg(k, name, shape, value)`` makes the register of stage k.
"""
from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Cat, Const, Shape, Value, signed, unsigned

__all__ = ["LIMB", "pipelined_product", "product_stages", "split_limbs"]

#: bits of an unsigned limb; a signed top limb has up to LIMB + 1 bits (a MULT18X18D port)
LIMB = 17

Reg = Callable[[int, str, Shape, Value], Value]


def split_limbs(width: int, is_signed: bool) -> list[tuple[int, int, bool]]:
    """(offset, width, signed) of each limb of a `width`-bit operand, lowest first."""
    if width <= LIMB + (1 if is_signed else 0):
        return [(0, width, is_signed)]
    out, off = [], 0
    while width - off > LIMB + (1 if is_signed else 0):
        out.append((off, LIMB, False))
        off += LIMB
    out.append((off, width - off, is_signed))
    return out


def _terms(wa: int, sa: bool, wb: int, sb: bool) -> list[tuple[int, int, int, int, bool]]:
    """(i, j, offset, width, signed) of every partial product a_i * b_j."""
    out = []
    for i, (oa, la, ga) in enumerate(split_limbs(wa, sa)):
        for j, (ob, lb, gb) in enumerate(split_limbs(wb, sb)):
            g = ga or gb
            out.append((i, j, oa + ob, la + lb, g))
    return out


def _pack(terms: list[tuple[int, int, bool]]) -> list[list[tuple[int, int, bool]]]:
    """Group (offset, width, signed) terms into chains that can be concatenated: in a chain each
    term starts at or above the end of the one below it, and only the top one may be signed."""
    chains: list[list[tuple[int, int, bool]]] = []
    for t in sorted(terms):
        for ch in chains:
            off, w, s = ch[-1]
            if not s and t[0] >= off + w:
                ch.append(t)
                break
        else:
            chains.append([t])
    return chains


def _levels(n: int) -> int:
    k = 0
    while n > 1:
        n = (n + 1) // 2
        k += 1
    return k


def product_stages(a: Shape, b: Shape, width: int | None = None) -> int:
    """Register stages from the operands to the product: 1 for the partial products (a product of
    18x18 or less is that one stage), plus one per adder level. `width`: as `pipelined_product`."""
    a, b = Shape.cast(a), Shape.cast(b)
    terms = [(off, w, g) for _, _, off, w, g in _terms(a.width, a.signed, b.width, b.signed)
             if width is None or off < width]
    return 1 + _levels(len(_pack(terms)))


def pipelined_product(a: Value, b: Value, reg: Reg, k0: int, name: str, width: int | None = None) -> Value:
    """The exact product ``a * b``, valid in the registers of stage ``k0 + product_stages - 1``;
    with `width`, only its low `width` bits (the partial products above them are not built).

    ``reg(k, name, shape, value)`` returns the register of pipeline stage k loading `value` (the
    caller's stage helper, with its enable). Operands are sampled at stage k0's input."""
    a, b = Value.cast(a), Value.cast(b)
    sa, sb = a.shape(), b.shape()
    full = Shape.cast(signed(sa.width + sb.width) if (sa.signed or sb.signed) else unsigned(sa.width + sb.width))
    if width is not None:
        full = Shape(min(width, full.width), full.signed)
    la, lb = split_limbs(sa.width, sa.signed), split_limbs(sb.width, sb.signed)

    def limb(v: Value, off: int, w: int, g: bool) -> Value:
        x = v.as_unsigned()[off:off + w]
        return x.as_signed() if g else x

    # stage k0: the partial products (each at most 18x18: one DSP)
    terms: list[tuple[int, int, bool, Value]] = []
    for i, (oa, wa, ga) in enumerate(la):
        for j, (ob, wb, gb) in enumerate(lb):
            if oa + ob >= full.width:
                continue
            g = ga or gb
            shape = signed(wa + wb) if g else unsigned(wa + wb)
            p = reg(k0, f"{name}_pp{i}{j}", shape, limb(a, oa, wa, ga) * limb(b, ob, wb, gb))
            terms.append((oa + ob, wa + wb, g, p))
    # concatenate the terms that do not overlap
    by_key = {(off, w, g): [] for off, w, g, _ in terms}
    for off, w, g, p in terms:
        by_key[(off, w, g)].append(p)
    values: list[tuple[int, Value]] = []
    for chain in _pack([(off, w, g) for off, w, g, _ in terms]):
        parts, top = [], chain[0][0]
        base = chain[0][0]
        for off, w, g in chain:
            if off > top:
                parts.append(Const(0, off - top))
            p = by_key[(off, w, g)].pop()
            parts.append(p.as_unsigned() if not g else p)
            top = off + w
        v = Cat(*parts)
        values.append((base, v.as_signed() if chain[-1][2] else v))
    # add pairs, one level per stage
    k = k0
    while len(values) > 1:
        k += 1
        nxt = []
        for n in range(0, len(values) - 1, 2):
            (o1, v1), (o2, v2) = values[n], values[n + 1]
            base = min(o1, o2)
            s = (v1 << (o1 - base)) + (v2 << (o2 - base))
            width = min(full.width - base, len(s))
            shape = signed(width) if full.signed else unsigned(width)
            nxt.append((base, reg(k, f"{name}_s{k - k0}_{n // 2}", shape, s)))
        if len(values) % 2:
            o, v = values[-1]
            nxt.append((o, reg(k, f"{name}_s{k - k0}_{len(values) // 2}", v.shape(), v)))
        values = nxt
    off, v = values[0]
    return _place(v, off, full)


def _place(v: Value, off: int, full: Shape) -> Value:
    """`v * 2**off` in the shape `full` (wiring only: zeros below, sign or zero extension above)."""
    v = Value.cast(v)
    n = full.width - off
    if len(v) >= n:
        v = v[:n]
    elif full.signed:
        v = Cat(v, v[-1].replicate(n - len(v)))
    w = Cat(Const(0, off), v) if off else v.as_unsigned()
    return w.as_signed() if full.signed else w
