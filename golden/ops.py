"""Golden integer operations: the executable definition of spec/numerics.py.

Every function here is integer-exact and deterministic; the RTL vector units must reproduce each
one bit for bit. docs/numerics.md states the same rules in prose and pseudo-code.

Conventions:
  * vectors are numpy int64; FX results are saturated to FX_BITS (48) bits;
  * every product is exact before it is rounded (`mul_round`): int64 when the operands' bit
    lengths add up to at most 62, Python integers otherwise;
  * `rshift_round(v, n)` = floor((v + 2**(n-1)) / 2**n), i.e. round half up (toward +inf) for
    n >= 1, and an exact left shift for n <= 0;
  * per-token scalars are soft floats (SF, a (mantissa, exponent) pair of Python ints) and every SF
    operation rounds exactly once, half up.
"""
from __future__ import annotations

from functools import cache
from math import isqrt

import numpy as np

from spec import numerics as N

SF = tuple[int, int]
SF_ZERO: SF = (0, 0)
_SFB = N.SF_BITS


# ---------------------------------------------------------------------------------------------
# scalar soft float
# ---------------------------------------------------------------------------------------------
def sf_norm(v: int, e: int) -> SF:
    """Non-negative integer v * 2**e -> SF, rounding half up once."""
    if v < 0:
        raise ValueError("SF values are non-negative")
    if v == 0:
        return SF_ZERO
    b = v.bit_length()
    if b > _SFB:
        sh = b - _SFB
        m = (v + (1 << (sh - 1))) >> sh
        e += sh
        if m >> _SFB:            # rounding carried into a new bit
            m >>= 1
            e += 1
    else:
        m = v << (_SFB - b)
        e -= _SFB - b
    return (m, e)


def sf_mul(a: SF, b: SF) -> SF:
    if a[0] == 0 or b[0] == 0:
        return SF_ZERO
    return sf_norm(a[0] * b[0], a[1] + b[1])


def sf_add(a: SF, b: SF) -> SF:
    """Exact sum, rounded once. When the exponents differ by more than SF_BITS the smaller
    operand is below half an ulp of the result, so returning the larger one *is* that rounding."""
    if a[0] == 0:
        return b
    if b[0] == 0:
        return a
    if a[1] < b[1]:
        a, b = b, a
    d = a[1] - b[1]
    if d > _SFB:
        return a
    return sf_norm((a[0] << d) + b[0], b[1])


def sf_recip(a: SF) -> SF:
    """1/a: mantissa round_half_up(2**(2*SF_BITS-1) / m), computed as (2**(2*SF_BITS) // m + 1) >> 1."""
    if a[0] == 0:
        raise ZeroDivisionError("sf_recip(0)")
    r = ((1 << (2 * _SFB)) // a[0] + 1) >> 1
    return sf_norm(r, -(2 * _SFB - 1) - a[1])


def sf_sqrt(a: SF) -> SF:
    """sqrt(a): make the exponent even, then floor(isqrt(m * 2**SF_BITS)) at exponent e/2 - SF_BITS/2."""
    if a[0] == 0:
        return SF_ZERO
    m, e = a
    if e & 1:
        m <<= 1
        e -= 1
    return sf_norm(isqrt(m << _SFB), e // 2 - _SFB // 2)


def sf_rsqrt(a: SF) -> SF:
    return sf_recip(sf_sqrt(a))


def sf_from_float(x: float) -> SF:
    """A float32 value (e.g. beta) -> SF, exact (a float32 has a 24-bit significand)."""
    x = float(np.float32(x))
    if x < 0:
        raise ValueError("SF values are non-negative")
    if x == 0.0:
        return SF_ZERO
    mant, exp = np.frexp(np.float32(x))        # x = mant * 2**exp, mant in [0.5, 1)
    m = int(np.float64(mant) * (1 << _SFB))
    return sf_norm(m, int(exp) - _SFB)


def sf_to_float(a: SF) -> float:
    return float(np.ldexp(np.float64(a[0]), a[1]))


def sf_shift(a: SF, n: int) -> SF:
    """a * 2**n (exact)."""
    return a if a[0] == 0 else (a[0], a[1] + n)


@cache
def sf_inv_int(n: int) -> SF:
    """1/n for a vector length n."""
    return sf_recip(sf_norm(n, 0))


#: constants of the contract (spec.numerics states them; tests/golden/test_ops.py holds them equal to
#: sf_from_float(N.RMS_EPS) and sf_inv_int(N.CODE_MAX))
SF_EPS: SF = N.SF_EPS
SF_INV_CODE_MAX: SF = N.SF_INV_CODE_MAX


# ---------------------------------------------------------------------------------------------
# vector helpers
# ---------------------------------------------------------------------------------------------
def rshift_round(v: np.ndarray, n: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.int64)
    if n <= 0:
        return v << (-n)
    if n >= 63:             # |v| < 2**62 here: (v + 2**(n-1)) >> n is 0 (and 2**(n-1) overflows int64)
        return np.zeros(np.shape(v), np.int64)
    return (v + (1 << (n - 1))) >> n


def sat_fx(v: np.ndarray) -> np.ndarray:
    # minimum/maximum rather than np.clip: same result, a fraction of the call overhead
    return np.minimum(np.maximum(v, N.FX_MIN), N.FX_MAX).astype(np.int64)


def bitlen_max(v: np.ndarray) -> int:
    """Bit length of max|v| (0 for an empty or all-zero vector)."""
    v = np.asarray(v)
    return int(np.abs(v).max()).bit_length() if v.size else 0


def mul_round(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """sat_fx(floor((a * b + 2**(n-1)) / 2**n)) with the product exact; n <= 0 means a * b * 2**-n.

    The operands are at most 49 bits (FX and its sums), so the product can need 97 bits: when the
    bit lengths add up to more than 62 the product is formed with Python integers.
    """
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if bitlen_max(a) + bitlen_max(b) + max(0, -n) <= 62:
        return sat_fx(rshift_round(a * b, n))
    p = a.astype(object) * b.astype(object)
    if n > 0:
        p = (p + (1 << (n - 1))) >> n
    elif n < 0:
        p = p * (1 << -n)
    return np.array([min(max(int(x), N.FX_MIN), N.FX_MAX) for x in np.ravel(p)], np.int64).reshape(np.shape(p))


def apply_sf(v: np.ndarray, s: SF) -> np.ndarray:
    """round_half_up(v * s) for an integer vector v -> saturated FX."""
    m, e = s
    if m == 0:
        return np.zeros(np.shape(v), np.int64)
    return mul_round(v, np.int64(m), -e)


def fx_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return sat_fx(np.asarray(a, np.int64) + np.asarray(b, np.int64))


def fx_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FX * FX -> FX."""
    return mul_round(a, b, N.FX_FRAC)


def gate_mul(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """FX * GATE -> FX."""
    return mul_round(a, g, N.GATE_FRAC)


def gamma_mul(a: np.ndarray, mant: np.ndarray, exp: int) -> np.ndarray:
    """FX * GAMMA -> FX: round_half_up(a * mant * 2**-exp)."""
    return mul_round(a, mant, exp)


# ---------------------------------------------------------------------------------------------
# reductions and norms
# ---------------------------------------------------------------------------------------------
def mean_square(t: np.ndarray) -> SF:
    """mean(t**2) of an FX vector, in real units, as SF.

    Values are pre-shifted right by k = max(0, bitlen(max|t|) - SUMSQ_IN_BITS) (truncating the
    magnitude) so that each square fits 2*SUMSQ_IN_BITS bits; the integer sum of squares is exact.
    """
    a = np.abs(np.asarray(t, dtype=np.int64))
    mx = int(a.max()) if a.size else 0
    if mx == 0:
        return SF_ZERO
    k = max(0, mx.bit_length() - N.SUMSQ_IN_BITS)
    if k:
        a = a >> k
    ss = int(np.dot(a, a))
    return sf_mul(sf_norm(ss, 2 * k - 2 * N.FX_FRAC), sf_inv_int(a.size))


def rms_inv(t: np.ndarray) -> SF:
    """1 / sqrt(mean(t**2) + eps), as SF."""
    return sf_rsqrt(sf_add(mean_square(t), SF_EPS))


def rmsnorm(x: np.ndarray, g_mant: np.ndarray, g_exp: int) -> np.ndarray:
    """RMSNorm with learned weight: FX -> FX. Two roundings: x * rms_inv, then * gamma."""
    r = rms_inv(x)
    t = apply_sf(x, r)
    return gamma_mul(t, g_mant, g_exp)


def quantize(t: np.ndarray, g_mant: np.ndarray, g_exp: int, rinv: SF | None = None) -> tuple[np.ndarray, SF]:
    """A BitLinear's input side: its own RMSNorm (weight gamma) folded into per-token int8 codes.

    Float rule: y = t / sqrt(mean(t^2)+eps) * gamma; codes = round_away(y * 127 / max|y|);
    dequantized input = codes * max|y| / 127. The RMS cancels in the codes, so
      p = t * mant (exact), M = max|p|, codes from p alone (below),
      s = M * 2**-(FX_FRAC + g_exp) * rms_inv(t) / 127   (the per-token dequantization factor).
    Codes are the exact rational rounding code = sign(p) * floor(127 * |p| / M + 1/2) (ties away
    from zero, as the official Triton kernel rounds); p is exact (|p| < 2**62).
    (Hardware: a per-token reciprocal estimate of 127/M, one multiply per element, and a
    one-step remainder correction give this exact quotient.)
    `rinv` may pass in rms_inv(t) when several BitLinears quantize the same t (i, f, g share u).
    Returns (codes int8, s).
    """
    p = np.asarray(t, dtype=np.int64) * np.asarray(g_mant, dtype=np.int64)
    a = np.abs(p)
    mx = int(a.max()) if a.size else 0
    if mx == 0:
        return np.zeros(np.shape(t), np.int8), SF_ZERO
    # exact rational rounding, ties away from zero: floor(127*|p|/M + 1/2) = (254|p| + M) // 2M
    if mx.bit_length() <= 54:
        q = (2 * N.CODE_MAX * a + mx) // (2 * mx)
    else:   # 254 * |p| would overflow int64: same quotient with Python integers
        q = np.array([(2 * N.CODE_MAX * int(x) + mx) // (2 * mx) for x in a], np.int64)
    codes = np.where(p < 0, -q, q).astype(np.int8)
    if rinv is None:
        rinv = rms_inv(t)
    s = sf_mul(sf_mul(sf_norm(mx, -(N.FX_FRAC + g_exp)), rinv), SF_INV_CODE_MAX)
    return codes, s


def rescale(acc: np.ndarray, s: SF, beta: SF) -> np.ndarray:
    """BitLinear output: FX = round_half_up(acc * s * beta * 2**FX_FRAC), saturated."""
    return apply_sf(acc, sf_shift(sf_mul(s, beta), N.FX_FRAC))


# ---------------------------------------------------------------------------------------------
# activations
# ---------------------------------------------------------------------------------------------
_SIG_LUT = N.sigmoid_table().astype(np.int64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """FX -> GATE. Table of sigma on [0, SIG_RANGE] with linear interpolation, odd symmetry
    sigma(-z) = 1 - sigma(z), saturation at |z| >= SIG_RANGE."""
    frac = N.FX_FRAC - N.SIG_STEP_LOG2          # input bits interpolated between entries
    z = np.asarray(z, dtype=np.int64)
    a = np.minimum(np.abs(z), N.SIG_RANGE << N.FX_FRAC)
    idx = a >> frac
    fr = a & ((1 << frac) - 1)
    lo = _SIG_LUT[np.minimum(idx, N.SIG_ENTRIES)]
    hi = _SIG_LUT[np.minimum(idx + 1, N.SIG_ENTRIES)]
    sp = lo + rshift_round((hi - lo) * fr, frac)
    return np.where(z >= 0, sp, N.GATE_ONE - sp).astype(np.int64)


def silu(z: np.ndarray) -> np.ndarray:
    """FX -> FX: z * sigmoid(z)."""
    return gate_mul(z, sigmoid(z))


def forget_gate(fz: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """f = lb + (1 - lb) * sigmoid(fz) (GATE), and 1 - f. lb = 0 gives f = sigmoid(fz)."""
    lb = np.asarray(lb, dtype=np.int64)
    f = lb + rshift_round((N.GATE_ONE - lb) * sigmoid(fz), N.GATE_FRAC)
    return f, N.GATE_ONE - f


def recurrence(h: np.ndarray, f: np.ndarray, i_in: np.ndarray) -> np.ndarray:
    """h' = h * f + i  (FX state, GATE f)."""
    return fx_add(gate_mul(h, f), i_in)


def argmax(v: np.ndarray) -> int:
    """Index of the first maximum."""
    return int(np.argmax(np.asarray(v)))


# ---------------------------------------------------------------------------------------------
# the paper's DIV and EXP (ISA vocabulary; the token step does not use them)
# ---------------------------------------------------------------------------------------------
def fx_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """FX / FX -> FX, exact: sign(a*b) * floor((|a| * 2**FX_FRAC + |b|/2) / |b|) (ties away from
    zero), saturated. b == 0: FX_MAX for a > 0, FX_MIN for a < 0, 0 for a == 0.
    The dividend needs up to 72 bits, so the quotient is formed with Python integers."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, np.int64)
    fa, fb, fo = a.ravel(), b.ravel(), out.reshape(-1)
    for j in range(fa.size):
        x, y = int(fa[j]), int(fb[j])
        if y == 0:
            fo[j] = N.FX_MAX if x > 0 else (N.FX_MIN if x < 0 else 0)
            continue
        q = (2 * abs(x) * (1 << N.FX_FRAC) + abs(y)) // (2 * abs(y))
        if (x < 0) != (y < 0):
            q = -q
        fo[j] = min(max(q, N.FX_MIN), N.FX_MAX)
    return out


_EXP_LUT = N.exp2_table()


def fx_exp(z: np.ndarray) -> np.ndarray:
    """FX -> FX: exp(z) = 2**y, y = mul_round(z, EXP_L2E, EXP_L2E_FRAC) (FX). k = floor(y), f the
    fraction; 2**f from a 257-entry table with linear interpolation (index = the top
    EXP_STEP_LOG2 bits of f), then p << k (saturating) for k >= 0, rshift_round(p, -k) for k < 0,
    0 for k < -60."""
    y = mul_round(np.asarray(z, dtype=np.int64), np.int64(N.EXP_L2E), N.EXP_L2E_FRAC)
    k = y >> N.FX_FRAC
    f = y & ((1 << N.FX_FRAC) - 1)
    frac = N.FX_FRAC - N.EXP_STEP_LOG2
    i = f >> frac
    fr = f & ((1 << frac) - 1)
    lo = _EXP_LUT[i]
    p = lo + rshift_round((_EXP_LUT[i + 1] - lo) * fr, frac)     # in [2**FX_FRAC, 2**(FX_FRAC+1)]
    up = sat_fx(p << np.minimum(np.maximum(k, 0), N.FX_BITS - N.FX_FRAC))   # p * 2**k, k >= 0
    n = np.clip(-k, 1, 60)
    down = (p + (np.int64(1) << (n - 1))) >> n                     # rshift_round(p, -k), k < 0
    return np.where(k >= 0, up, np.where(k < -60, 0, down)).astype(np.int64)
