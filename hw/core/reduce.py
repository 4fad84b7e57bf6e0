"""The pipeline pieces of NORM's and QNT's reductions and QNT's quantizer (docs/numerics.md,
"Vector operations"), from which hw.core.normq builds its shared lane pipeline.

Specification: ``golden/ops.py`` is the definition reproduced bit for bit —
``mean_square`` (its integer part: the pre-shift k and the exact sum of squares), the maximum
``M = max|t * mant|`` and the int8 codes of ``quantize``. Widths come from spec/numerics.py
(FX_BITS, GAMMA_BITS, SUMSQ_IN_BITS, CODE_MAX, SF_NORM_BITS).

The scalar soft-float arithmetic that turns these integers into ``rms_inv`` and the dequantization
scale (``sf_norm``, ``sf_mul``, ``sf_rsqrt`` ...) is :class:`hw.core.sfu.ScalarUnit`'s job; nothing
here rounds.

The pieces (one carry chain or a few LUT levels per stage):

* :func:`reduce_tree` — a lane tree (max|t|, max|t * mant|, the sum of squares), one level per
  stage (:func:`tree_levels` stages);
* :func:`pre_shift` — the pre-shift ``k = max(0, bitlen(max|t|) - SUMSQ_IN_BITS)`` of
  ``mean_square``, a priority encoder;
* :func:`shift_stages` — ``|t| >> k`` in :data:`SHIFT_STAGES` stages;
* :func:`code_stages` — QNT's code ``sign(p) * floor(CODE_MAX * |p| / M + 1/2)``, p = t * mant, as
  an exact restoring division, one quotient bit per stage (:data:`CODE_STAGES` stages);

and the shapes of their values: :data:`ABS` (|t|), :data:`PABS` (|t * mant|), :data:`SHIFT` (k),
:data:`SUMSQ` (the sum of squares), :data:`CODE`. The accumulators across the words of a vector,
the squares and the products are hw.core.normq's (tests/hw/core/test_reduce.py runs the pieces in a
stalling pipeline against Python integers and golden.ops).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Mux, Value, signed, unsigned

from spec import numerics as N

from .arith import tree_levels

__all__ = ["ABS", "CODE", "CODE_STAGES", "PABS", "SHIFT", "SHIFT_STAGES", "SUMSQ", "code_stages",
           "pre_shift", "reduce_tree", "shift_stages", "tree_levels"]

#: |t| of an FX value: up to 2**(FX_BITS-1) (FX_MIN's magnitude)
ABS = unsigned(N.FX_BITS)
#: |t * mant|: up to 2**(FX_BITS-1) * 2**(GAMMA_BITS-1)
PABS = unsigned(N.FX_BITS + N.GAMMA_BITS - 1)
#: the pre-shift k = max(0, bitlen(max|t|) - SUMSQ_IN_BITS), at most FX_BITS - SUMSQ_IN_BITS
SHIFT = unsigned((N.FX_BITS - N.SUMSQ_IN_BITS).bit_length())
#: the exact sum of squares: even VL_MAX squares below 2**(2*SUMSQ_IN_BITS) fit (tested)
SUMSQ = unsigned(N.SF_NORM_BITS)
CODE = signed(8)

#: Quotient bits of a code: |code| <= CODE_MAX < 2**7.
_QBITS = N.CODE_MAX.bit_length()


def _abs(v, shape):
    """|v|, truncated to `shape`'s width (|FX_MIN| = 2**(FX_BITS-1) still fits ABS)."""
    return Mux(v < 0, -v, v)[:shape.width]


def _max(a, b):
    return Mux(a > b, a, b)


# -- pipeline pieces ----------------------------------------------------------------------------
#
# Each takes the caller's stage-register function ``reg(k, name, shape, value)`` (as
# hw.core.arith.pipelined_product) and a first stage k0: its inputs are the values the registers of
# stage k0 - 1 hold (or anything stable), its registers are those of stages k0, k0 + 1, ... One carry
# chain or a few LUT levels per stage.

def reduce_tree(reg, k0: int, name: str, items: list, fn, shape) -> Value:
    """`items` combined pairwise by `fn`, one tree level per stage from k0; the result is valid at
    stage k0 + tree_levels(len(items)) - 1 (for one item, the item itself)."""
    k = k0
    while len(items) > 1:
        nxt = []
        for n in range(0, len(items), 2):
            v = fn(items[n], items[n + 1]) if n + 1 < len(items) else items[n]
            nxt.append(reg(k, f"{name}_t{k - k0}_{n // 2}", shape, v))
        items = nxt
        k += 1
    return items[0]


def pre_shift(max_abs: Value) -> Value:
    """k = max(0, bitlen(max_abs) - SUMSQ_IN_BITS) (combinational: a priority encoder)."""
    k = Const(0, SHIFT)
    for b in range(N.SUMSQ_IN_BITS, N.FX_BITS):
        k = Mux(max_abs[b], b + 1 - N.SUMSQ_IN_BITS, k)
    return k


#: stages of `shift_stages`
SHIFT_STAGES = 2


def shift_stages(reg, k0: int, name: str, a: Value, k: Value) -> Value:
    """``a >> k`` (a = |t|, k the vector's pre-shift: the result fits SUMSQ_IN_BITS bits), valid at
    stage k0 + 1: by 8 * (k // 8) in stage k0, by k % 8 in stage k0 + 1."""
    coarse = reg(k0, f"{name}_sh0", unsigned(N.SUMSQ_IN_BITS + 7), (a >> Cat(Const(0, 3), k[3:]))[:N.SUMSQ_IN_BITS + 7])
    return reg(k0 + 1, f"{name}_sh1", unsigned(N.SUMSQ_IN_BITS), (coarse >> k[:3])[:N.SUMSQ_IN_BITS])


#: stages of `code_stages`: 127 |p|; the dividend; one per quotient bit; the sign
CODE_STAGES = 3 + _QBITS
_NUM = unsigned(PABS.width + 8)


def code_stages(reg, k0: int, name: str, pabs: Value, neg: Value, m_at) -> Value:
    """QNT's code ``sign(p) * floor(CODE_MAX * |p| / M + 1/2)`` (0 when M == 0) from |p| (PABS) and
    p < 0, valid at stage k0 - 1; the code is valid at stage k0 + CODE_STAGES - 1. ``m_at(k)`` is M
    (PABS) as the registers of stage k load it (k0 + 1 ... k0 + CODE_STAGES - 1).

    That is ``(2 * CODE_MAX * |p| + M) // (2 * M)``: 127 |p| = (|p| << 7) - |p|, the dividend, then
    a restoring division, one quotient bit per stage (a compare-subtract, one carry chain of at most
    PABS + 8 bits), and the sign."""
    assert N.CODE_MAX == 127
    p127 = reg(k0, f"{name}_p127", unsigned(PABS.width + 7), ((pabs << 7) - pabs)[:PABS.width + 7])
    neg = reg(k0, f"{name}_neg", 1, neg)
    rem = reg(k0 + 1, f"{name}_rem", _NUM, Cat(Const(0, 1), p127) + m_at(k0 + 1))
    neg = reg(k0 + 1, f"{name}_neg", 1, neg)
    quo = Const(0, 0)
    for s in range(_QBITS):
        k = k0 + 2 + s
        step = Cat(Const(0, 1), m_at(k)).as_unsigned() << (_QBITS - 1 - s)       # 2M * 2**b
        fits = rem >= step
        rem = reg(k, f"{name}_rem", _NUM, Mux(fits, rem - step, rem))
        quo = reg(k, f"{name}_quo", unsigned(s + 1), Cat(fits, quo))
        neg = reg(k, f"{name}_neg", 1, neg)
    k = k0 + CODE_STAGES - 1
    zero = m_at(k) == 0
    return reg(k, f"{name}_code", CODE, Mux(zero, 0, Mux(neg, -quo, quo)))
