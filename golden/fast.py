"""numba-compiled twins of the vector operations in ops.py, for speed only.

ops.py is the definition. Every function here must return exactly what its ops.py namesake
returns (tests/golden/test_fast.py checks each on random and extreme inputs, and whole token
steps with both backends). The per-token scalar (SF) arithmetic stays in ops.py and is shared.
The numerics constants are compiled in; a contract change needs no edit here beyond ops.py's.
"""
from __future__ import annotations

import numpy as np

from spec import numerics as N

from . import ops as O

try:
    import numba
except ImportError:  # pragma: no cover
    numba = None

AVAILABLE = numba is not None

if AVAILABLE:
    _FX_MIN = np.int64(N.FX_MIN)
    _FX_MAX = np.int64(N.FX_MAX)
    _FXF = N.FX_FRAC
    _GF = N.GATE_FRAC
    _ONE = np.int64(N.GATE_ONE)
    _SIGF = N.FX_FRAC - N.SIG_STEP_LOG2
    _SIGLIM = np.int64(N.SIG_RANGE << N.FX_FRAC)
    _SIGN = N.SIG_ENTRIES
    _SUMSQ = N.SUMSQ_IN_BITS
    _CMAX = np.int64(N.CODE_MAX)
    _LUT = N.sigmoid_table().astype(np.int64)

    jit = numba.njit(cache=True, nogil=True)

    @jit
    def _rsr(v, n):
        if n <= 0:
            return v << (-n)
        if n >= 63:         # as ops.rshift_round: the rounded quotient of |v| < 2**62 is 0
            return np.int64(0)
        return (v + (np.int64(1) << (n - 1))) >> n

    @jit
    def _sat(v):
        return min(max(v, _FX_MIN), _FX_MAX)

    @jit
    def bitlen_max(v):
        mx = np.int64(0)
        for j in range(v.size):
            a = abs(np.int64(v[j]))
            if a > mx:
                mx = a
        bl = 0
        while mx:
            bl += 1
            mx >>= 1
        return bl

    @jit
    def apply_sf(v, m, e):
        out = np.empty(v.size, np.int64)
        for j in range(v.size):
            p = np.int64(v[j]) * m
            if m == 0:
                out[j] = 0
            elif e >= 0:
                lim = (_FX_MAX >> e) + 1
                out[j] = _sat(min(max(p, -lim), lim) << e)
            else:
                out[j] = _sat(_rsr(p, -e))
        return out

    @jit
    def gamma_mul(a, mant, exp):
        out = np.empty(a.size, np.int64)
        for j in range(a.size):
            out[j] = _sat(_rsr(np.int64(a[j]) * np.int64(mant[j]), exp))
        return out

    @jit
    def sumsq_parts(t):
        mx = np.int64(0)
        for j in range(t.size):
            a = abs(np.int64(t[j]))
            if a > mx:
                mx = a
        if mx == 0:
            return np.int64(0), np.int64(0), np.int64(0)
        bl = np.int64(0)
        v = mx
        while v:
            bl += 1
            v >>= 1
        k = max(np.int64(0), bl - _SUMSQ)
        ss = np.int64(0)
        for j in range(t.size):
            a = abs(np.int64(t[j])) >> k
            ss += a * a
        return mx, k, ss

    @jit
    def quantize_codes(t, mant):
        n = t.size
        p = np.empty(n, np.int64)
        mx = np.int64(0)
        for j in range(n):
            p[j] = np.int64(t[j]) * np.int64(mant[j])
            a = abs(p[j])
            if a > mx:
                mx = a
        codes = np.zeros(n, np.int8)
        if mx == 0:
            return codes, mx
        for j in range(n):
            a = abs(p[j])
            q = (2 * _CMAX * a + mx) // (2 * mx)
            codes[j] = -q if p[j] < 0 else q
        return codes, mx

    @jit
    def _sig1(z):
        a = min(abs(z), _SIGLIM)
        idx = a >> _SIGF
        fr = a & ((np.int64(1) << _SIGF) - 1)
        lo = _LUT[min(idx, _SIGN)]
        hi = _LUT[min(idx + 1, _SIGN)]
        sp = lo + _rsr((hi - lo) * fr, _SIGF)
        return sp if z >= 0 else _ONE - sp

    @jit
    def sigmoid(z):
        out = np.empty(z.size, np.int64)
        for j in range(z.size):
            out[j] = _sig1(np.int64(z[j]))
        return out

    @jit
    def silu(z):
        out = np.empty(z.size, np.int64)
        for j in range(z.size):
            v = np.int64(z[j])
            out[j] = _sat(_rsr(v * _sig1(v), _GF))
        return out

    @jit
    def forget_gate(fz, lb):
        f = np.empty(fz.size, np.int64)
        omf = np.empty(fz.size, np.int64)
        for j in range(fz.size):
            b = np.int64(lb[j])
            f[j] = b + _rsr((_ONE - b) * _sig1(np.int64(fz[j])), _GF)
            omf[j] = _ONE - f[j]
        return f, omf

    @jit
    def gate_mul(a, g):
        out = np.empty(a.size, np.int64)
        for j in range(a.size):
            out[j] = _sat(_rsr(np.int64(a[j]) * np.int64(g[j]), _GF))
        return out

    @jit
    def fx_mul(a, b):
        out = np.empty(a.size, np.int64)
        for j in range(a.size):
            out[j] = _sat(_rsr(np.int64(a[j]) * np.int64(b[j]), _FXF))
        return out

    @jit
    def fx_add(a, b):
        out = np.empty(a.size, np.int64)
        for j in range(a.size):
            out[j] = _sat(np.int64(a[j]) + np.int64(b[j]))
        return out

    @jit
    def recurrence(h, f, i_in):
        out = np.empty(h.size, np.int64)
        for j in range(h.size):
            out[j] = _sat(_rsr(np.int64(h[j]) * np.int64(f[j]), _GF) + np.int64(i_in[j]))
        return out


def _fits(a: np.ndarray, b_bits: int, extra: int = 0) -> bool:
    """The int64 kernels are exact while the product's bit length stays within 62 bits;
    otherwise FastOps defers to ops.py, which forms the product with Python integers."""
    return bitlen_max(a) + b_bits + extra <= 62


_GATE_BITS = N.GATE_FRAC + 1


class FastOps:
    """The subset of ops.py that GoldenModel calls, with numba kernels underneath."""

    SF = O.SF

    @staticmethod
    def mean_square(t: np.ndarray) -> O.SF:
        mx, k, ss = sumsq_parts(np.ascontiguousarray(t))
        if mx == 0:
            return O.SF_ZERO
        return O.sf_mul(O.sf_norm(int(ss), 2 * int(k) - 2 * N.FX_FRAC), O.sf_inv_int(t.size))

    @classmethod
    def rms_inv(cls, t: np.ndarray) -> O.SF:
        return O.sf_rsqrt(O.sf_add(cls.mean_square(t), O.SF_EPS))

    @classmethod
    def rmsnorm(cls, x: np.ndarray, g_mant: np.ndarray, g_exp: int) -> np.ndarray:
        r = cls.rms_inv(x)
        t = apply_sf(x, r[0], r[1]) if _fits(x, N.SF_BITS, max(0, r[1])) else O.apply_sf(x, r)
        if _fits(t, N.GAMMA_BITS, max(0, -g_exp)):
            return gamma_mul(t, g_mant, g_exp)
        return O.gamma_mul(t, g_mant, g_exp)

    @classmethod
    def quantize(cls, t, g_mant, g_exp, rinv=None):
        t = np.ascontiguousarray(t)
        if bitlen_max(t) + N.GAMMA_BITS > 54:      # 254 * |p| must fit int64
            return O.quantize(t, g_mant, g_exp, rinv)
        codes, mx = quantize_codes(t, g_mant)
        if mx == 0:
            return codes, O.SF_ZERO
        if rinv is None:
            rinv = cls.rms_inv(t)
        s = O.sf_mul(O.sf_mul(O.sf_norm(int(mx), -(N.FX_FRAC + g_exp)), rinv), O.SF_INV_CODE_MAX)
        return codes, s

    @staticmethod
    def rescale(acc: np.ndarray, s: O.SF, beta: O.SF) -> np.ndarray:
        k = O.sf_shift(O.sf_mul(s, beta), N.FX_FRAC)
        if k[0] and _fits(acc, N.SF_BITS, max(0, k[1])):
            return apply_sf(acc, k[0], k[1])
        return O.apply_sf(acc, k)

    @staticmethod
    def sigmoid(z: np.ndarray) -> np.ndarray:
        return sigmoid(np.ascontiguousarray(z))

    @staticmethod
    def silu(z: np.ndarray) -> np.ndarray:
        z = np.ascontiguousarray(z)
        return silu(z) if _fits(z, _GATE_BITS) else O.silu(z)

    @staticmethod
    def forget_gate(fz: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return forget_gate(fz, lb)

    @staticmethod
    def gate_mul(a: np.ndarray, g: np.ndarray) -> np.ndarray:
        return gate_mul(a, g) if _fits(a, _GATE_BITS) else O.gate_mul(a, g)

    @staticmethod
    def fx_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.ascontiguousarray(a), np.ascontiguousarray(b)
        return fx_mul(a, b) if _fits(a, bitlen_max(b)) else O.fx_mul(a, b)

    @staticmethod
    def fx_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return fx_add(a, b)

    @staticmethod
    def recurrence(h: np.ndarray, f: np.ndarray, i_in: np.ndarray) -> np.ndarray:
        return recurrence(h, f, i_in) if _fits(h, _GATE_BITS) else O.recurrence(h, f, i_in)

    argmax = staticmethod(O.argmax)
