"""The numba twins (golden/fast.py) equal the definitions (golden/ops.py) bit for bit,
on seeded random vectors that include the saturation and zero edge cases."""
from __future__ import annotations

import numpy as np
import pytest

from golden import fast
from golden import ops as O
from spec import numerics as N

pytestmark = pytest.mark.skipif(not fast.AVAILABLE, reason="numba not installed (make setup)")
F = fast.FastOps


def _vectors(seed: int, n: int = 1500):
    rng = np.random.default_rng(seed)
    out = []
    for scale in (0, 3, 2 ** 12, 2 ** 18, 2 ** 30, 2 ** 40, 2 ** 46):
        v = rng.normal(0, scale + 1e-9, n)
        v = np.clip(np.round(v), N.FX_MIN, N.FX_MAX).astype(np.int64)
        out.append(v)
    edge = np.array([N.FX_MIN, N.FX_MAX, 0, 1, -1, 2 ** 20, -(2 ** 20)] * 3, np.int64)
    out.append(edge)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_elementwise_ops_identical(seed):
    rng = np.random.default_rng(100 + seed)
    for a in _vectors(seed):
        b = rng.permutation(a)
        g = rng.integers(0, N.GATE_ONE + 1, a.size)
        assert np.array_equal(F.sigmoid(a), O.sigmoid(a))
        assert np.array_equal(F.silu(a), O.silu(a))
        assert np.array_equal(F.fx_mul(a, b), O.fx_mul(a, b))
        assert np.array_equal(F.fx_add(a, b), O.fx_add(a, b))
        assert np.array_equal(F.gate_mul(a, g), O.gate_mul(a, g))
        assert np.array_equal(F.recurrence(a, g, b), O.recurrence(a, g, b))
        lb = rng.integers(0, N.GATE_ONE + 1, a.size)
        for x, y in zip(F.forget_gate(a, lb), O.forget_gate(a, lb), strict=True):
            assert np.array_equal(x, y)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_norm_and_quantize_identical(seed):
    rng = np.random.default_rng(200 + seed)
    for a in _vectors(seed):
        gm, ge = N.gamma_block(rng.normal(0.5, 1.0, a.size))
        assert F.mean_square(a) == O.mean_square(a)
        if a.any():
            assert F.rms_inv(a) == O.rms_inv(a)
        assert np.array_equal(F.rmsnorm(a, gm, ge), O.rmsnorm(a, gm, ge))
        c1, s1 = F.quantize(a, gm, ge)
        c2, s2 = O.quantize(a, gm, ge)
        assert np.array_equal(c1, c2) and s1 == s2
        acc = rng.integers(-127 * 6912, 127 * 6912, a.size)
        for s in (s2, O.sf_from_float(1e-9), O.sf_from_float(3e4)):
            beta = O.sf_from_float(0.02)
            assert np.array_equal(F.rescale(acc, s, beta), O.rescale(acc, s, beta))
