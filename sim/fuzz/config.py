"""The fuzzer's limits and sizes, and its accelerator configs.

    cfg = fuzz_config("b8")          # FUZZ_CONFIGS["b8"](): beat 8, 2-bit packing, 1 lane, vlen 64, rom_words 256

The limits are the hardware's (the SF exponent range, the smallest TMATMUL scale golden computes
right); the sizes place the epilogue's probe, the body's scratch area and the epilogue's ROM words.
The other modules of sim.fuzz read them from here.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

from spec import accel
from spec import numerics as N

# -- limits and sizes --------------------------------------------------------------------------------

#: Hardware SF exponent range (spec.numerics.SF_EXP_BITS, signed).
SF_EXP_MIN = -(1 << (N.SF_EXP_BITS - 1))
SF_EXP_MAX = (1 << (N.SF_EXP_BITS - 1)) - 1
#: Smallest F exponent a TMATMUL may use: apply_sf shifts by -(e + FX_FRAC), and golden's
#: rshift_round is only right for shifts <= 63 (1 << 63 overflows int64).
TMM_MIN_SF_EXP = -63 - N.FX_FRAC
#: F exponents the epilogue's probe shows exactly: acc = 1 gives m * 2**(e + 24) for e in [-24, -1],
#: acc = 4096 gives m * 2**(e + 36) for e in [-36, -13] (m < 2**24: no saturation).
OBS_EXP_WINDOW = (-36, -1)
#: Power-of-two betas of layer 0 (float32, exact): the epilogue's FMUL scalers.
POW2_SHIFTS = (24, -24, 48, -48, 96, -96)
#: The probe: a [beat_bytes, PROBE_COLS rounded up to a column group] tile at the start of this
#: matrix, read with codes [1, -128 x 32, ...] from this gamma tensor.
PROBE_MATRIX = "layers.0.attn.i_proj"
PROBE_CODES = "layers.0.attn.o_proj.norm"
PROBE_COLS = 33
#: Gamma and gate tensors of this layer hold only 48-bit-clean int64 words (LDV-able).
LDV_LAYER = 1

SCRATCH_BYTES = 4096          # the body's SV area, at the start of the state region
EPILOGUE_RESERVE = 90         # ROM words kept free for the epilogue
MAX_ATTEMPTS = 40
MAX_STEPS = 200_000


# -- configurations ----------------------------------------------------------------------------------

FUZZ_CONFIGS: dict[str, Callable[[], accel.AccelConfig]] = {
    # ecp5's datapath (beat 16, 1.6-bit packing, 4 lanes) with a short vector register and ROM
    "ecp5": lambda: dataclasses.replace(accel.get_config("ecp5"), name="fuzz-ecp5", vlen=64, rom_words=256),
    # the narrowest core hw.core accepts: beat 8, 2-bit packing, 1 lane
    "b8": lambda: accel.AccelConfig("fuzz-b8", beat_bytes=8, packing="2bit", vector_lanes=1, vlen=64,
                                    rom_words=256),
}


def fuzz_config(name: str) -> accel.AccelConfig:
    """A fuzz-friendly accelerator config: "ecp5" (beat 16, 1.6bit, 4 lanes) or "b8" (beat 8,
    2bit, 1 lane), both with vlen 64 and rom_words 256."""
    try:
        return FUZZ_CONFIGS[name]()
    except KeyError:
        raise ValueError(f"unknown fuzz config {name!r}; valid: {', '.join(FUZZ_CONFIGS)}") from None
