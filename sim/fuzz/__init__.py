"""Random valid programs for RTL-vs-golden differential fuzzing (pure Python, no RTL).

    cfg = fuzz_config("ecp5")                  # ecp5 sizes with vlen 64, rom_words 256
    img = make_image(cfg)                      # a small synthetic weight image (cached)
    case = random_program(seed, cfg, img)      # FuzzCase: words, tokens, state_bytes, description
    want = run_golden(case, cfg, img)          # Observed: tokouts, state (bytes of the state region)
    msg = want.diff(got)                       # "" when the RTL's Observed equals the golden one

Memory map of a case (golden.machine): the image file at address 0 (read-only), the state region
of `case.state_bytes` at `case.layout.state_base` = the image size. The RTL bench loads the same
image bytes (`img.file_bytes()`), runs `case.words` with `case.tokens` offered on TOKIN, and builds
`Observed(tokouts, bytes(state region))`.

Programs. A prologue sets every register (SETVL vlen; MOVI of all A; a load into every V; LDF
into every F), so nothing depends on reset values. The body (10..60 actions) draws from every
instruction of spec.isa.OPS, with emphasis on hazards: the last written registers are read back
at once, written again (WAW) or their sources overwritten (WAR), ops run in place and with the
same register for both sources; long ops (TMATMUL, NORM, QNT, DIV) are followed by dependent or
independent ops; A registers written by scalar ops, LDW, TOKIN and ARGMAX feed addresses, branch
conditions, TOKOUT; F registers from LDF, QNT and FMUL feed TMATMUL. Control: DJNZ loops (2..4
iterations, optionally streaming a pointer through the state region), forward BLTZ on known or
data-dependent conditions, JMP over dead code (which may hold HALT). An epilogue makes all
architectural state visible: TOKOUT of A0..A15, SETVL vlen and SV of V0..V7, then every F register
through a TMATMUL on a fixed probe (rows with acc = 1 and acc = 4096), scaled beforehand by exact
powers of two (FMUL with 2**k betas of the image) into the window where the probe shows the whole
SF value. Then HALT.

Validity. The generator tracks what is statically known (VL, A values, F values from LDF, the
token stream) and only emits accesses that are in range, aligned and read valid data:
  * LDV reads state (always 48-bit values: only SV writes it) or image words that fit 48-bit
    signed (the image has such regions on purpose); raw image bytes that do not are never LDV'd;
  * LDE reads finite bf16 (the embedding, with a token row register in range, or other finite
    image words); LDF reads finite float32 >= 0 of the image; LDG / LDGT / LDW any aligned word;
  * TMATMUL reads [rows, VL] trits at Aw = a matrix start + k beats, rows <= vlen, with every byte
    inside that matrix and no padding trit set (partial row tiles and column groups included:
    the image's matrices carry zero-row runs, an alternative column geometry each, and a probe);
  * NORM / QNT exponents are known registers in [GAMMA_EXP_MIN, GAMMA_EXP_MAX].
Every candidate program is then run on the golden machine with checks of the hardware's limits,
and regenerated (seed, attempt + 1) on a violation: every vector element written fits FX (48
bits); every F value has an exponent in the SF_EXP_BITS range; every TMATMUL scale has
exponent + FX_FRAC >= -63 (smaller scales make golden's rshift_round shift by 64 or more:
OverflowError in ops.py, a wrong result from the numba twin; see TMM_MIN_SF_EXP).

Golden runs here use golden.ops and the numpy matvec (MMFREE_GOLDEN_KERNEL=numpy while the
machine runs): bit-identical to the numba twins by contract, and much faster for these short
vectors. Corner cases the ISA allows and the programs include: ARGMAX with Ai == Am (the golden
machine writes Am, then Ai: Ai wins), TMATMUL with Vd == Vs and rows != VL, loads and LDE rows
with negative registers, TOKIN values over the signed 32-bit range, LDF of -0.0 and denormals.

CLI: python -m sim.fuzz --config ecp5 --seed 0 --count 5 [--show]

Modules, by concern: config (sizes, limits, FUZZ_CONFIGS), image (the synthetic weight image),
analysis (what an image lets a program read), case (FuzzCase, FuzzLayout, Observed), validate
(checked golden runs), the generator (gen_base: tracked state and register choice; gen_memory,
gen_vector, gen_scalar, gen_control: the actions by instruction family; gen: the action table and
the prologue, body and epilogue), api (random_program, run_golden) and cli (python -m sim.fuzz).
"""
from sim.fuzz.api import random_program, run_golden
from sim.fuzz.case import FuzzCase, FuzzLayout, Observed
from sim.fuzz.cli import main
from sim.fuzz.config import FUZZ_CONFIGS, fuzz_config
from sim.fuzz.image import fuzz_model, make_image

__all__ = ["FUZZ_CONFIGS", "FuzzCase", "FuzzLayout", "Observed", "fuzz_config", "fuzz_model", "main", "make_image",
           "random_program", "run_golden"]
