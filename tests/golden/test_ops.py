"""Golden integer ops: exact rounding rules (checked against rational arithmetic) and accuracy
against the float operations they stand for. Vectors are seeded random; no external data."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import kernels
from golden import ops as O
from spec import numerics as N

FX = 1 << N.FX_FRAC


def sf_exact(a: O.SF) -> Fraction:
    return Fraction(a[0]) * (Fraction(2) ** a[1])


def round_half_up_to_sf(x: Fraction) -> O.SF:
    """Reference: the SF nearest to x (ties up), by exhaustive rational arithmetic."""
    if x == 0:
        return O.SF_ZERO
    e = math.floor(math.log2(x.numerator) - math.log2(x.denominator)) - (N.SF_BITS - 1)
    while x / Fraction(2) ** e >= 2 ** N.SF_BITS:
        e += 1
    while x / Fraction(2) ** e < 2 ** (N.SF_BITS - 1):
        e -= 1
    m = math.floor(x / Fraction(2) ** e + Fraction(1, 2))
    if m == 2 ** N.SF_BITS:
        m, e = m // 2, e + 1
    return (m, e)


sf_values = st.builds(lambda m, e: (m, e), st.integers(2 ** (N.SF_BITS - 1), 2 ** N.SF_BITS - 1),
                      st.integers(-60, 40))


@given(sf_values, sf_values)
@settings(max_examples=300, deadline=None)
def test_sf_mul_and_add_round_once_half_up(a, b):
    assert O.sf_mul(a, b) == round_half_up_to_sf(sf_exact(a) * sf_exact(b))
    assert O.sf_add(a, b) == round_half_up_to_sf(sf_exact(a) + sf_exact(b))


@given(sf_values)
@settings(max_examples=300, deadline=None)
def test_sf_recip_and_sqrt_within_one_ulp(a):
    r = sf_exact(O.sf_recip(a))
    exact = 1 / sf_exact(a)
    assert abs(r - exact) <= Fraction(2) ** O.sf_recip(a)[1]
    s = O.sf_sqrt(a)
    # floor(isqrt) then one rounding: s^2 within 2 ulp of a
    assert abs(float(sf_exact(s)) ** 2 / float(sf_exact(a)) - 1) < 2 ** -(N.SF_BITS - 2)


def test_sf_from_float_is_exact():
    rng = np.random.default_rng(1)
    for v in rng.uniform(1e-6, 1e3, 200).astype(np.float32):
        assert O.sf_to_float(O.sf_from_float(float(v))) == float(v)


@given(st.lists(st.integers(-(2 ** 31), 2 ** 31 - 1), min_size=1, max_size=8), sf_values)
@settings(max_examples=300, deadline=None)
def test_apply_sf_is_round_half_up_and_saturates(vals, s):
    s = (s[0], s[1] % 40 - 50)   # realistic scale range
    out = O.apply_sf(np.array(vals, np.int64), s)
    for v, o in zip(vals, out, strict=True):
        exact = Fraction(v) * sf_exact(s)
        ref = math.floor(exact + Fraction(1, 2))
        assert int(o) == min(max(ref, N.FX_MIN), N.FX_MAX)


@given(st.lists(st.integers(-(2 ** 48), 2 ** 48), min_size=1, max_size=6),
       st.lists(st.integers(-(2 ** 48), 2 ** 48), min_size=6, max_size=6), st.integers(-8, 60))
@settings(max_examples=400, deadline=None)
def test_mul_round_is_exact_and_saturates(a, b, n):
    b = b[: len(a)]
    out = O.mul_round(np.array(a, np.int64), np.array(b, np.int64), n)
    for x, y, o in zip(a, b, out, strict=True):
        p = Fraction(x * y, 2 ** n) if n >= 0 else Fraction(x * y * 2 ** -n)
        ref = math.floor(p + Fraction(1, 2)) if n > 0 else int(p)
        assert int(o) == min(max(ref, N.FX_MIN), N.FX_MAX)


def test_rshift_round_ties_go_up():
    v = np.array([3, 2, 1, -1, -2, -3, 5, -5], np.int64)
    assert O.rshift_round(v, 1).tolist() == [2, 1, 1, 0, -1, -1, 3, -2]


def test_sigmoid_accuracy_symmetry_monotonicity():
    z = np.arange(-20 * FX, 20 * FX, 37, dtype=np.int64)
    s = O.sigmoid(z)
    ref = 1 / (1 + np.exp(-z / FX))
    assert np.abs(s / N.GATE_ONE - ref).max() < 4e-7
    assert np.all(np.diff(s) >= 0)
    assert np.array_equal(O.sigmoid(-z), N.GATE_ONE - s)
    assert O.sigmoid(np.array([0]))[0] == N.GATE_ONE // 2
    assert np.all((s >= 0) & (s <= N.GATE_ONE))


def test_silu_accuracy():
    z = np.arange(-30 * FX, 30 * FX, 101, dtype=np.int64)
    ref = (z / FX) / (1 + np.exp(-z / FX))
    err = np.abs(O.silu(z) / FX - ref)
    assert err.max() < 30 * 4e-7 + 1 / FX


def test_rmsnorm_matches_float():
    rng = np.random.default_rng(2)
    for scale in (0.01, 1.0, 300.0):
        x = np.round(rng.normal(0, scale, 1024) * FX).astype(np.int64)
        g = rng.normal(1, 0.5, 1024)
        gm, ge = N.gamma_block(g)
        y = O.rmsnorm(x, gm, ge) / FX
        xf = x / FX
        ref = xf / np.sqrt(np.mean(xf ** 2) + N.RMS_EPS) * g
        assert np.abs(y - ref).max() < 2e-4 * np.abs(ref).max()


def _float_quant(t, g):
    y = t / np.sqrt(np.mean(t ** 2) + N.RMS_EPS) * g
    m = np.abs(y).max()
    v = y * 127 / m
    return np.sign(v) * np.floor(np.abs(v) + 0.5), m / 127


def test_quantize_matches_float_rule():
    rng = np.random.default_rng(3)
    total = agree = 0
    for n in (64, 1024, 2816, 6912):
        for scale in (1e-3, 1.0, 100.0):
            t = np.round(rng.normal(0, scale, n) * FX).astype(np.int64)
            g = rng.normal(1, 0.3, n)
            gm, ge = N.gamma_block(g)
            codes, s = O.quantize(t, gm, ge)
            q, sref = _float_quant(t / FX, gm * 2.0 ** -ge)
            assert np.abs(codes).max() <= 127 and codes.dtype == np.int8
            assert np.abs(codes.astype(int) - q).max() <= 1
            agree += int((codes == q).sum())
            total += n
            assert abs(O.sf_to_float(s) / sref - 1) < 1e-5
    assert agree / total > 0.999


def test_quantize_zero_vector_and_scale_invariance():
    codes, s = O.quantize(np.zeros(16, np.int64), np.ones(16, np.int16), 0)
    assert not codes.any() and s == O.SF_ZERO
    rng = np.random.default_rng(4)
    t = rng.integers(-(2 ** 20), 2 ** 20, 512).astype(np.int64)
    gm, ge = N.gamma_block(rng.normal(1, 0.2, 512))
    c1, _ = O.quantize(t, gm, ge)
    c2, _ = O.quantize(t * 4, gm, ge)     # codes depend only on the direction of t*gamma
    assert np.array_equal(c1, c2)


def test_rescale_exact():
    rng = np.random.default_rng(5)
    acc = rng.integers(-127 * 6912, 127 * 6912, 64)
    s = O.sf_from_float(3.7e-4)
    beta = O.sf_from_float(0.0213)
    y = O.rescale(acc, s, beta)
    k = sf_exact(O.sf_shift(O.sf_mul(s, beta), N.FX_FRAC))
    for a, o in zip(acc, y, strict=True):
        assert int(o) == math.floor(Fraction(int(a)) * k + Fraction(1, 2))


def test_forget_gate_and_recurrence():
    rng = np.random.default_rng(6)
    fz = rng.integers(-20 * FX, 20 * FX, 256)
    f0, omf0 = O.forget_gate(fz, np.zeros(256, np.int64))
    assert np.array_equal(f0, O.sigmoid(fz)) and np.all(f0 + omf0 == N.GATE_ONE)
    lb = N.gate_from_float(rng.uniform(0, 1, 256)).astype(np.int64)
    f, omf = O.forget_gate(fz, lb)
    assert np.all(f >= lb) and np.all(f <= N.GATE_ONE) and np.all(f + omf == N.GATE_ONE)
    h = np.full(4, N.FX_MAX, np.int64)
    out = O.recurrence(h, np.full(4, N.GATE_ONE), np.full(4, N.FX_MAX, np.int64))
    assert np.all(out == N.FX_MAX)          # saturates, never wraps


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (64, 1024), (333, 2816), (130, 6912)])
def test_matvec_kernels_agree_exactly(shape):
    rng = np.random.default_rng(7)
    w = rng.integers(-1, 2, shape).astype(np.int8)
    x = rng.integers(-127, 128, shape[1]).astype(np.int8)
    ref = (w.astype(np.int64) @ x.astype(np.int64)).astype(np.int32)
    assert np.array_equal(kernels.matvec_numpy(w, x), ref)
    if kernels.kernel_name() == "numba":
        assert np.array_equal(kernels.matvec_numba(w, x), ref)
    # the worst case for float32 exactness: all +1 weights, all 127 codes
    wmax = np.ones((2, 6912), np.int8)
    assert kernels.matvec_numpy(wmax, np.full(6912, 127, np.int8))[0] == 127 * 6912


def test_quantize_exact_ties_round_away_from_zero():
    # 127 * |p| / M lands exactly on k + 1/2 for M = 254: 1 -> 0.5, 3 -> 1.5, 5 -> 2.5
    t = np.array([254, 1, -1, 3, -5, 0], np.int32)
    codes, _ = O.quantize(t, np.ones(6, np.int16), 0)
    assert codes.tolist() == [127, 1, -1, 2, -3, 0]


def test_apply_sf_tiny_scales_round_to_zero_in_both_implementations():
    """Shifts of 63 bits or more: the exact rounded product is 0 for every int64 input (the
    shift constant 2**(n-1) itself would overflow int64); the numba twin agrees."""
    from golden import fast

    v = np.array([0, 1, -1, 8000, -8000, 123456, (1 << 40) - 3, -(1 << 40)], np.int64)
    for e in (-87, -88, -100, -2048):
        m = (1 << N.SF_BITS) - 1
        exact = [min(max(((int(x) * m) + (1 << (-e - 1))) >> -e, N.FX_MIN), N.FX_MAX) for x in v]
        assert O.apply_sf(v, (m, e)).tolist() == exact
        if fast.AVAILABLE:
            assert fast.apply_sf(v, m, e).tolist() == exact


def test_contract_constants_are_the_golden_arithmetic_of_their_values():
    """spec.numerics states SF_EPS and SF_INV_CODE_MAX as numbers (the RTL builds them in); they must
    be what the golden arithmetic makes of RMS_EPS and CODE_MAX."""
    assert O.sf_from_float(N.RMS_EPS) == N.SF_EPS
    assert O.sf_inv_int(N.CODE_MAX) == N.SF_INV_CODE_MAX
