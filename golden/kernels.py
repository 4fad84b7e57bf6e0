"""Ternary matrix-vector kernels: acc[r] = sum_k trits[r, k] * codes[k], exactly, as int32.

Two interchangeable implementations with identical results (tests/golden/test_ops.py):
  * `matvec_numpy`: float32 BLAS. Exact because every product is an integer of magnitude <= 127
    and every partial sum stays below 127 * 6912 < 2**24, where float32 is exact.
  * `matvec_numba`: an int8 x int8 -> int32 loop compiled by numba, parallel over rows; about
    2.5x faster on the 2-core CI machine (memory-bound on the int8 weights).
`matvec` picks numba when it imports, numpy otherwise; MMFREE_GOLDEN_KERNEL=numpy forces numpy.
"""
from __future__ import annotations

import os

import numpy as np

#: the largest K for which the float32 path is exact: 127 * K < 2**24
MAX_K_FLOAT32_EXACT = (1 << 24) // 127


def matvec_numpy(trits: np.ndarray, codes: np.ndarray, trits_f32: np.ndarray | None = None) -> np.ndarray:
    k = trits.shape[1]
    if k > MAX_K_FLOAT32_EXACT:
        raise ValueError(f"K={k} exceeds the float32-exact bound {MAX_K_FLOAT32_EXACT}")
    w = trits_f32 if trits_f32 is not None else trits.astype(np.float32)
    return (w @ codes.astype(np.float32)).astype(np.int32)


_numba_matvec = None
try:  # pragma: no cover - exercised when numba is installed (make setup installs it)
    import numba

    @numba.njit(parallel=True, cache=True, nogil=True)
    def _nb_matvec(w, x):
        m, k = w.shape
        out = np.empty(m, np.int32)
        for r in numba.prange(m):
            s = np.int32(0)
            for c in range(k):
                s += np.int32(w[r, c]) * np.int32(x[c])
            out[r] = s
        return out

    _numba_matvec = _nb_matvec
except ImportError:  # pragma: no cover
    numba = None


def matvec_numba(trits: np.ndarray, codes: np.ndarray) -> np.ndarray:
    if _numba_matvec is None:
        raise RuntimeError("numba is not installed")
    return _numba_matvec(np.ascontiguousarray(trits, dtype=np.int8), np.ascontiguousarray(codes, dtype=np.int8))


def kernel_name() -> str:
    if os.environ.get("MMFREE_GOLDEN_KERNEL", "").lower() == "numpy" or _numba_matvec is None:
        return "numpy"
    return "numba"


def matvec(trits: np.ndarray, codes: np.ndarray) -> np.ndarray:
    if kernel_name() == "numba":
        return matvec_numba(trits, codes)
    return matvec_numpy(trits, codes)
