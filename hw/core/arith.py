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

yosys maps a product to a combinational MULT18X18D and leaves the register after it in fabric
(3.9 ns of multiplier plus a route to the flip-flops). Given the caller's module and stage enables
(``m``, ``en``), the partial products are :class:`Mul18` instead: on ECP5 an instantiated
MULT18X18D with its own output register (loaded when the stage advances), elsewhere (no
platform, another family, the Amaranth simulator) the same register in behavioural Amaranth.
"""
from __future__ import annotations

from collections.abc import Callable

from amaranth.hdl import Cat, ClockSignal, Const, Elaboratable, Instance, Module, Shape, Signal, Value, signed, unsigned

__all__ = ["LIMB", "Mul18", "is_ecp5", "pipelined_product", "product_stages", "split_limbs", "tree_levels"]

#: the width of a MULT18X18D operand
DSP_BITS = 18
#: bits of an unsigned limb; a signed top limb has up to LIMB + 1 bits (a MULT18X18D port)
LIMB = DSP_BITS - 1

Reg = Callable[[int, str, Shape, Value], Value]


def is_ecp5(platform) -> bool:
    """Whether `platform` is an Amaranth ECP5 platform (one that has MULT18X18D)."""
    if platform is None:
        return False
    try:
        from amaranth.vendor import LatticeECP5Platform
    except ImportError:                         # pragma: no cover - amaranth without its vendor package
        return False
    return isinstance(platform, LatticeECP5Platform)


class Mul18(Elaboratable):
    """``p = a * b`` registered once: `p` loads the product of the cycle's `a`, `b` when `en` is
    high and holds while it is low (latency 1 either way). `a`, `b`: at most 18 bits each, signed or
    unsigned as their shapes say; `p`: their full product (signed when either operand is).

    On an ECP5 platform (:func:`is_ecp5`) an instantiated MULT18X18D whose output register
    (REG_OUTPUT_CLK = CLK0, CE0 = `en`, RST0 low) is the register; its input and pipeline
    registers are bypassed and SIGNEDA / SIGNEDB are the operands' signedness. Anywhere else the
    behavioural ``p <= a * b`` under `en` (what yosys maps to a combinational DSP plus fabric
    flip-flops). The register starts at 0 both ways (the DSP's GSR clears it at configuration) and
    the domain's reset leaves it as it is both ways."""

    def __init__(self, a_shape, b_shape, *, domain: str = "sync", name: str | None = None):
        sa, sb = Shape.cast(a_shape), Shape.cast(b_shape)
        if not (1 <= sa.width <= DSP_BITS and 1 <= sb.width <= DSP_BITS):
            self._MustUse__silence = True         # not built: no "never used" warning
            raise ValueError(f"Mul18 operands are at most {DSP_BITS} bits, not {sa} x {sb}")
        w = sa.width + sb.width
        prefix = f"{name}_" if name else ""
        self.a = Signal(sa, name=f"{prefix}a")
        self.b = Signal(sb, name=f"{prefix}b")
        self.en = Signal(name=f"{prefix}en")
        # not cleared by the domain's reset: the DSP's RST0 is tied low (a partial product is data,
        # its validity travels beside it), so the behavioural register is reset-less too
        self.p = Signal(signed(w) if (sa.signed or sb.signed) else unsigned(w), name=name or "p", reset_less=True)
        self._domain = domain

    def elaborate(self, platform):
        m = Module()
        if not is_ecp5(platform):
            with m.If(self.en):
                m.d[self._domain] += self.p.eq(self.a * self.b)
            return m
        # operands sign- or zero-extended to the DSP's 18 bits (Amaranth extends by the source's sign)
        a18, b18 = Signal(DSP_BITS), Signal(DSP_BITS)
        p36 = Signal(2 * DSP_BITS)
        m.d.comb += [a18.eq(self.a), b18.eq(self.b), self.p.eq(p36[:len(self.p)])]
        ports = {}
        for i in range(DSP_BITS):
            ports[f"i_A{i}"] = a18[i]
            ports[f"i_B{i}"] = b18[i]
            ports[f"i_C{i}"] = Const(0, 1)
        for i in range(2 * DSP_BITS):
            ports[f"o_P{i}"] = p36[i]
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="NONE", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="NONE", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE", p_REG_INPUTC_CE="CE0", p_REG_INPUTC_RST="RST0",
            p_REG_PIPELINE_CLK="NONE", p_REG_PIPELINE_CE="CE0", p_REG_PIPELINE_RST="RST0",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED", p_CLK3_DIV="ENABLED",
            p_HIGHSPEED_CLK="NONE", p_GSR="ENABLED", p_CAS_MATCH_REG="FALSE",
            p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=Const(int(self.a.shape().signed), 1), i_SIGNEDB=Const(int(self.b.shape().signed), 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            # the output register: clock, enable and (never asserted) reset of set 0; sets 1 .. 3
            # and the shift-chain inputs SRIA/SRIB are left open as yosys's own DSP mapping leaves
            # them (nextpnr ties them to their defaults)
            i_CLK0=ClockSignal(self._domain), i_CE0=self.en, i_RST0=Const(0, 1),
            **ports,
        )
        return m


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


def tree_levels(n: int) -> int:
    """Levels of a tree of pairwise operations (adds, compares) over n items, one per pipeline
    stage: ceil(log2(n)), 0 for one item."""
    return (n - 1).bit_length() if n > 1 else 0


def product_stages(a: Shape, b: Shape, width: int | None = None) -> int:
    """Register stages from the operands to the product: 1 for the partial products (a product of
    18x18 or less is that one stage), plus one per adder level. `width`: as `pipelined_product`."""
    a, b = Shape.cast(a), Shape.cast(b)
    terms = [(off, w, g) for _, _, off, w, g in _terms(a.width, a.signed, b.width, b.signed)
             if width is None or off < width]
    return 1 + tree_levels(len(_pack(terms)))


def pipelined_product(a: Value, b: Value, reg: Reg, k0: int, name: str, width: int | None = None, *,
                      m: Module | None = None, en: Callable[[int], Value] | None = None,
                      domain: str = "sync") -> Value:
    """The exact product ``a * b``, valid in the registers of stage ``k0 + product_stages - 1``;
    with `width`, only its low `width` bits (the partial products above them are not built).

    ``reg(k, name, shape, value)`` returns the register of pipeline stage k loading `value` (the
    caller's stage helper, with its enable). Operands are sampled at stage k0's input.

    With `m` (the caller's module) and `en` (``en(k)``: stage k's enable, the one its `reg`
    registers load under; `domain`: their clock domain), each partial product of stage k0 is a
    :class:`Mul18` added to `m` (on ECP5 a MULT18X18D with its output register) instead of
    ``reg(k0, ...)`` of the product: the same value, the same latency."""
    if (m is None) != (en is None):
        raise ValueError("pipelined_product: give both `m` and `en`, or neither")
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
            xa, xb = limb(a, oa, wa, ga), limb(b, ob, wb, gb)
            if m is None:
                p = reg(k0, f"{name}_pp{i}{j}", shape, xa * xb)
            else:
                mul = Mul18(xa.shape(), xb.shape(), domain=domain, name=f"{name}_pp{i}{j}_q{k0}")
                m.submodules[f"{name}_pp{i}{j}"] = mul
                m.d.comb += [mul.a.eq(xa), mul.b.eq(xb), mul.en.eq(en(k0))]
                assert mul.p.shape() == Shape.cast(shape), (mul.p.shape(), shape)
                p = mul.p
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
