"""The paper's DIV and EXP (ISA vocabulary, unused by the token step): exact rounding rules against
rational arithmetic, corner cases and accuracy against float. Seeded random; no external data."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import ops as O
from spec import numerics as N

FX = 1 << N.FX_FRAC
fx_values = st.integers(N.FX_MIN, N.FX_MAX)


def _div_ref(a: int, b: int) -> int:
    if b == 0:
        return N.FX_MAX if a > 0 else (N.FX_MIN if a < 0 else 0)
    q = Fraction(abs(a) * FX, abs(b))
    r = math.floor(q + Fraction(1, 2))                  # ties away from zero (on the magnitude)
    r = -r if (a < 0) != (b < 0) else r
    return min(max(r, N.FX_MIN), N.FX_MAX)


@given(st.lists(st.tuples(fx_values, fx_values), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_fx_div_is_exact_ties_away_saturating(pairs):
    a = np.array([p[0] for p in pairs], np.int64)
    b = np.array([p[1] for p in pairs], np.int64)
    assert O.fx_div(a, b).tolist() == [_div_ref(int(x), int(y)) for x, y in pairs]


def test_fx_div_corners():
    a = np.array([FX, -FX, 0, 1, -1, 3, -3, N.FX_MAX, N.FX_MIN, N.FX_MIN, 6 * FX, 1], np.int64)
    b = np.array([0, 0, 0, 2 * FX, 2 * FX, 2 * FX, 2 * FX, 1, 1, -1, -3 * FX, N.FX_MIN], np.int64)
    got = O.fx_div(a, b).tolist()
    # 1/2 ulp -> 1 (tie away), -1/2 ulp -> -1, 3/2 ulp -> 2
    assert got == [N.FX_MAX, N.FX_MIN, 0, 1, -1, 2, -2, N.FX_MAX, N.FX_MIN, N.FX_MAX, -2 * FX, 0]


def test_fx_div_accuracy_vs_float():
    rng = np.random.default_rng(3)
    a = rng.integers(-100 * FX, 100 * FX, 2000)
    b = rng.integers(-100 * FX, 100 * FX, 2000)
    b[b == 0] = 1
    exact = a.astype(np.float64) / b.astype(np.float64)
    ok = np.abs(exact) < 2 ** 22
    err = np.abs(O.fx_div(a, b) / FX - exact)[ok]
    assert err.max() <= 0.5 / FX * (1 + 1e-9) + 1e-12


def _exp_ref(z: int) -> int:
    """The rule of spec.numerics / docs/numerics.md, with Python integers throughout."""
    t = [int(v) for v in N.exp2_table()]
    prod = z * N.EXP_L2E
    y = min(max((prod + (1 << (N.EXP_L2E_FRAC - 1))) >> N.EXP_L2E_FRAC, N.FX_MIN), N.FX_MAX)
    k, f = y >> N.FX_FRAC, y & (FX - 1)
    sh = N.FX_FRAC - N.EXP_STEP_LOG2
    i, fr = f >> sh, f & ((1 << sh) - 1)
    p = t[i] + (((t[i + 1] - t[i]) * fr + (1 << (sh - 1))) >> sh)
    if k >= 0:
        return min(p << k, N.FX_MAX)
    if k < -60:
        return 0
    return (p + (1 << (-k - 1))) >> -k


def test_exp2_table():
    t = N.exp2_table()
    assert t.size == N.EXP_ENTRIES + 1 and t[0] == FX and t[-1] == 2 * FX
    assert np.all(np.diff(t) > 0)
    assert N.EXP_L2E == round(math.log2(math.e) * 2 ** N.EXP_L2E_FRAC)


@given(st.lists(fx_values, min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_fx_exp_matches_the_integer_rule(zs):
    assert O.fx_exp(np.array(zs, np.int64)).tolist() == [_exp_ref(z) for z in zs]


def test_fx_exp_corners():
    z = np.array([0, N.FX_MAX, N.FX_MIN, 16 * FX, 15 * FX, -42 * FX, -43 * FX, -1, 1], np.int64)
    got = O.fx_exp(z).tolist()
    assert got[0] == FX                        # exp(0) = 1 exactly
    assert got[1] == N.FX_MAX and got[3] == N.FX_MAX     # overflow saturates (e^16 > 2^23)
    assert got[2] == 0 and got[6] == 0         # deep underflow is 0 (k < -60, or rounds to 0)
    assert 0 < got[4] < N.FX_MAX
    assert got[5] >= 0
    assert got == [_exp_ref(int(v)) for v in z]
    assert abs(got[7] - FX) <= 1 and abs(got[8] - FX) <= 2


def test_fx_exp_accuracy_vs_float():
    rng = np.random.default_rng(4)
    z = rng.integers(-20 * FX, 15 * FX, 5000)
    got = O.fx_exp(z) / FX
    ref = np.exp(z / FX)
    # relative 2e-6 (interpolation error of 2**x at step 1/256 is 9e-7) or 2 ulp absolute
    assert np.all(np.abs(got - ref) <= np.maximum(2e-6 * ref, 2.0 / FX))
    assert np.all(np.diff(O.fx_exp(np.sort(z))) >= 0)  # monotone
