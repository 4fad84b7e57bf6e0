"""Numerics contract: the integer / fixed-point formulation of an MMfreeLM token step.

This module holds the *definitions* (formats, widths, rounding, constants, table generators and
the float-weight -> ternary quantizer). The golden model (golden) implements the operations
exactly as stated here and in docs/numerics.md; the RTL must match the golden model bit for bit.

Reference for the float semantics: "Scalable MatMul-free Language Modeling" (Zhu et al. 2024) and
the official code (github ridgerchu/matmulfreellm: mmfreelm/ops/fusedbitnet.py for BitLinear,
mmfreelm/layers/hgrn_bit.py for the token mixer, mmfreelm/modules/fused_norm_gate.py).

Formats (all two's complement unless stated):

  FX     vector element, FX_BITS-bit signed (48), FX_FRAC fractional bits (24): range +-2**23,
         resolution 6e-8. Residual stream, recurrent state, every BitLinear output, norms,
         products. Results saturate to [FX_MIN, FX_MAX]; products are exact before rounding.
  GATE   unsigned, GATE_FRAC fractional bits, value in [0, GATE_ONE]. sigmoid outputs, the forget
         gate f, 1 - f and the per-layer lower bound.
  CODE   int8 activation code in [-127, 127] (the float rule can never produce -128).
  TRIT   ternary weight in {-1, 0, +1}.
  ACC    signed accumulator of sum(code * trit): |acc| <= 127 * K, K <= 6912, so 21 bits suffice.
  GAMMA  per-element norm weight: int16 mantissa, one exponent per vector (block floating point):
         value = mant * 2**-exp, exp chosen so max|mant| is in [2**14, 2**15).
  SF     per-token scalar (norm scales, quantization scales, beta): a soft float with an unsigned
         SF_BITS-bit mantissa m in [2**(SF_BITS-1), 2**SF_BITS) and an integer exponent e,
         value = m * 2**e; zero is (0, 0). Every SF operation rounds once, half up.
  BF16   the embedding table, exactly as stored by the checkpoints.
"""
from __future__ import annotations

import math

import numpy as np

#: Version of this numerics contract; stored in every weight image and checked on load.
NUMERICS_VERSION = 2

# 24 fractional bits were chosen by measurement (docs/numerics.md, `python -m sim.benches.width_sweep`):
# with 16 the golden model's top-1 agreement with the float demo model was 98.3 %, with 24 it is
# above 99 %; 48 bits keep the range (+-8.4M) far beyond any residual seen.
FX_BITS = 48
FX_FRAC = 24
FX_MAX = (1 << (FX_BITS - 1)) - 1
FX_MIN = -(1 << (FX_BITS - 1))

GATE_FRAC = 24
GATE_ONE = 1 << GATE_FRAC

CODE_MAX = 127
CODE_MIN = -127

GAMMA_BITS = 16            # signed mantissa width
GAMMA_TOP = GAMMA_BITS - 2  # max|mant| in [2**14, 2**15)
#: Range of the gamma exponent NORM and QNT accept (an A register). gamma_block gives
#: 14 - floor(log2 max|gamma|): [-16, 47] covers max|gamma| from 2**-33 to 2**30.
GAMMA_EXP_MIN = -16
GAMMA_EXP_MAX = 47

SF_BITS = 24
#: Hardware widths of SF values: signed exponent on the scalar unit's ports ([-2048, 2047]; the
#: golden model's exponents stay within a few hundred of zero), and the integer operand of its
#: NORM (a sum of squares of up to 2**16 values of 2 * SUMSQ_IN_BITS bits fits 64 bits).
SF_EXP_BITS = 12
SF_NORM_BITS = 64

#: Sum of squares: values are pre-shifted so that max|v| fits in SUMSQ_IN_BITS bits.
SUMSQ_IN_BITS = 24

#: RMSNorm epsilon of the released models (config.rms_norm_eps and the fused BitLinear's eps).
RMS_EPS = 1e-6

#: SF constants of the contract, as (mantissa, exponent) = mantissa * 2**exponent: RMS_EPS and
#: 1 / CODE_MAX in the SF format. The golden model derives them from the values above with its own
#: arithmetic (golden.ops: sf_from_float, sf_inv_int) and a test holds the two equal; the RTL's
#: norm/quantize sequence (hw/core/normq.py) builds them in as constants.
SF_EPS = (8796093, -43)              # float32(1e-6): the nearest float32, exact in 24 bits
SF_INV_CODE_MAX = (8454660, -30)     # 1/127, rounded half up to 24 bits (golden.ops.sf_recip)

#: sigmoid table: sigma(z) for z = k * 2**-SIG_STEP_LOG2, k = 0 .. SIG_ENTRIES (inclusive);
#: |z| >= SIG_RANGE saturates to the last entry. Linear interpolation between entries.
SIG_STEP_LOG2 = 8
SIG_RANGE = 16
SIG_ENTRIES = SIG_RANGE << SIG_STEP_LOG2   # 4096 intervals, 4097 entries

#: Weight quantization clamp of the official code: beta = max(mean|W|, 1e-5).
BETA_MIN = 1e-5


def sigmoid_table() -> np.ndarray:
    """SIG_ENTRIES + 1 entries, uint32: round_half_up(sigma(k / 2**SIG_STEP_LOG2) * GATE_ONE).

    Computed in float64 from the closed form; the largest entry is below GATE_ONE.
    """
    k = np.arange(SIG_ENTRIES + 1, dtype=np.float64)
    z = k / (1 << SIG_STEP_LOG2)
    s = 1.0 / (1.0 + np.exp(-z))
    return np.floor(s * GATE_ONE + 0.5).astype(np.uint32)


def ternary_quantize(w: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """Float weights -> (trits int8 in {-1,0,1}, beta float32), the official rule, in float32:

        scale = 1 / max(mean|W|, 1e-5);  trits = clamp(round_half_even(W * scale), -1, 1)

    computed in float32 in that order (mmfreelm/ops/fusedbitnet.py: weight_quant). The
    dequantized weight is trits / scale; beta is stored as max(mean|W|, 1e-5) in float32.
    Never call this on a dequantized tensor: that changes beta.
    """
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"ternary_quantize expects a 2-D matrix, got shape {w.shape}")
    # float32 mean like torch: accumulate in float64 then round once (torch's CPU mean of float32
    # uses a float32 cascade sum; the difference is below 1 ulp of beta and is measured in tests)
    beta = np.float32(max(np.float32(np.abs(w).astype(np.float64).mean()), np.float32(BETA_MIN)))
    scale = np.float32(1.0) / beta
    trits = np.clip(np.rint(w * scale), -1, 1).astype(np.int8)
    return trits, beta


def gamma_block(vec: np.ndarray) -> tuple[np.ndarray, int]:
    """Float vector -> (int16 mantissas, exponent): value ~= mant * 2**-exp.

    exp is chosen so that max|mant| lies in [2**14, 2**15); rounding is half away from zero,
    computed in float64. An all-zero vector gives (zeros, 0).
    """
    v = np.asarray(vec, dtype=np.float64)
    m = float(np.max(np.abs(v))) if v.size else 0.0
    if m == 0.0 or not math.isfinite(m):
        if not math.isfinite(m):
            raise ValueError("gamma vector has non-finite values")
        return np.zeros(v.shape, np.int16), 0
    e = GAMMA_TOP - math.frexp(m)[1] + 1   # m * 2**e in [2**14, 2**15)
    scaled = v * (2.0 ** e)
    mant = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    mant = np.clip(mant, -(1 << (GAMMA_BITS - 1)) + 1, (1 << (GAMMA_BITS - 1)) - 1)
    return mant.astype(np.int16), int(e)


def gate_from_float(v: np.ndarray) -> np.ndarray:
    """Float values in [0, 1] -> GATE (uint32), round half up, clamped to [0, GATE_ONE]."""
    v = np.asarray(v, dtype=np.float64)
    return np.clip(np.floor(v * GATE_ONE + 0.5), 0, GATE_ONE).astype(np.uint32)


def lower_bounds_from_param(lb_param: np.ndarray) -> np.ndarray:
    """The model's `lower_bounds` parameter [L, d] -> per-layer lower bound as GATE [L, d].

    Float rule (modeling_hgrn_bit.py): lb = softmax(P, dim=0); lb = cumsum(lb, 0) - lb[0];
    layer 0 uses none. Computed in float64, then rounded once.
    """
    p = np.asarray(lb_param, dtype=np.float64)
    e = np.exp(p - p.max(axis=0, keepdims=True))
    sm = e / e.sum(axis=0, keepdims=True)
    lb = np.cumsum(sm, axis=0) - sm[0:1]
    return gate_from_float(lb)


def bf16_to_fx(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> FX (int64): value * 2**FX_FRAC, half away from zero,
    saturating. Exact in float64 (a bf16 value has 8 significant bits)."""
    b = np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16
    f = b.view(np.float32).astype(np.float64)
    if not np.all(np.isfinite(f)):
        raise ValueError("embedding contains non-finite values")
    s = f * (1 << FX_FRAC)
    r = np.sign(s) * np.floor(np.abs(s) + 0.5)
    return np.clip(r, FX_MIN, FX_MAX).astype(np.int64)


def float_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, round to nearest even (torch's .to(torch.bfloat16))."""
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype(np.uint16)


# -- the two paper operations the token step does not use (ISA DIV and EXP) ------------------------

#: exp(z) = 2**(z * log2 e): log2(e) as an integer with EXP_L2E_FRAC fractional bits.
EXP_L2E_FRAC = 30
EXP_L2E = int(math.floor(math.log2(math.e) * (1 << EXP_L2E_FRAC) + 0.5))
#: 2**x table for x in [0, 1]: EXP_ENTRIES + 1 entries, step 2**-EXP_STEP_LOG2, linear interpolation.
EXP_STEP_LOG2 = 8
EXP_ENTRIES = 1 << EXP_STEP_LOG2


def exp2_table() -> np.ndarray:
    """EXP_ENTRIES + 1 entries, int64: round_half_up(2**(i / EXP_ENTRIES) * 2**FX_FRAC), i = 0..256.

    Computed in float64 (no entry is near a tie); entry 0 is 2**FX_FRAC, the last 2**(FX_FRAC+1)."""
    i = np.arange(EXP_ENTRIES + 1, dtype=np.float64)
    return np.floor(np.exp2(i / EXP_ENTRIES) * (1 << FX_FRAC) + 0.5).astype(np.int64)
