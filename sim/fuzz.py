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
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import functools
import os
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from golden import ops as O
from golden.machine import GoldenMachine, ListHost, MachineError
from spec import accel, isa
from spec import numerics as N
from spec import weight_image as wi
from spec.models import ModelConfig

__all__ = ["FUZZ_CONFIGS", "FuzzCase", "FuzzLayout", "Observed", "fuzz_config", "fuzz_model", "main", "make_image",
           "random_program", "run_golden"]

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
_M64 = (1 << 64) - 1


def _wrap64(v: int) -> int:
    v &= _M64
    return v - (1 << 64) if v >> 63 else v


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


# -- the image ---------------------------------------------------------------------------------------

def fuzz_model(vlen: int) -> ModelConfig:
    """A tiny 2-layer model with awkward sizes (hidden 46, intermediate 61, vocab 100): partial
    column groups for both packings, partial row tiles for beats 8 and 16."""
    if vlen < 40:
        raise ValueError(f"the fuzz image needs vlen >= 40, got {vlen}")
    return ModelConfig(vocab_size=100, hidden_size=min(46, vlen), num_hidden_layers=2,
                       intermediate_size=min(61, vlen), name="fuzz")


def probe_vl(packing: str) -> int:
    t = wi.PACKINGS[packing]
    return t * -(-PROBE_COLS // t)


def _digit_mask(byte: np.ndarray, keep: int, packing: str) -> np.ndarray:
    """Keep the low `keep` trit digits of packed bytes (the others become 0)."""
    radix = {"2bit": 4, "1.6bit": 3}[packing]
    return (byte % np.uint8(radix ** keep)).astype(np.uint8) if keep else np.zeros_like(byte)


def _matrix_trits(rng: np.random.Generator, shape: tuple[int, int], packing: str, beat: int, vlen: int,
                  probe: np.ndarray | None) -> np.ndarray:
    """Trits whose packed bytes have structure TMATMUL reads can use: runs of beats whose bottom
    rows are zero (partial row tiles anywhere), an alternative column count whose last column
    group is padding-clean (partial column groups with VL != cols) and, for the probe matrix, the
    probe tile at beat 0."""
    rows, cols = shape
    t = wi.PACKINGS[packing]
    tiles, groups, b = wi.packed_shape(rows, cols, packing, beat)
    dens = rng.uniform(0.2, 0.9)
    full = rng.integers(-1, 2, (tiles * b, groups * t)) * (rng.random((tiles * b, groups * t)) < dens)
    pb = wi.pack_trits(full.astype(np.int8), packing, beat).reshape(-1, b).copy()     # [beat, row]
    nbeats = pb.shape[0]
    for _ in range(int(rng.integers(1, 5))):                  # zero-row runs
        b0 = int(rng.integers(0, nbeats))
        pb[b0:b0 + int(rng.integers(1, 3 * groups + 1)), int(rng.integers(0, b)):] = 0
    if rng.random() < 0.7:                                   # an alternative column geometry
        alt = [v for v in range(8, vlen + 1) if v % t]
        v = int(rng.choice(alt))
        g = -(-v // t)
        pb[g - 1::g] = _digit_mask(pb[g - 1::g], v % t, packing)
    if probe is not None:
        p = wi.pack_trits(probe, packing, beat).reshape(-1, b)
        pb[:p.shape[0]] = p
    p3 = pb.reshape(tiles, groups, b)
    if rows % b:                                             # the true geometry's padding
        p3[-1, :, rows % b:] = 0
    if cols % t:
        p3[:, -1, :] = _digit_mask(p3[:, -1, :], cols % t, packing)
    if probe is not None:
        assert np.array_equal(pb[:p.shape[0]], p), "probe overlaps the matrix padding"
    return wi.unpack_trits(p3.reshape(-1), rows, cols, packing, beat)


def _probe_trits(rng: np.random.Generator, packing: str, beat: int, rows_valid: int) -> np.ndarray:
    """[beat, probe_vl] trits: row 0 = e0 (acc = codes[0] = 1), row 1 = -1 on columns 1..32
    (acc = 32 * 128 = 4096), other rows random (rows past the matrix end zero)."""
    w = np.zeros((beat, probe_vl(packing)), np.int8)
    w[0, 0] = 1
    w[1, 1:PROBE_COLS] = -1
    w[2:] = rng.integers(-1, 2, w[2:].shape)
    w[rows_valid:] = 0
    return w


def _build_arrays(model: ModelConfig, packing: str, beat: int, vlen: int,
                  rng: np.random.Generator) -> dict[str, np.ndarray]:
    lay = wi.layout(model, packing, beat)
    arrays: dict[str, np.ndarray] = {}
    betas: dict[str, np.float32] = {}
    exps: dict[str, int] = {}
    for t in lay.tensors:
        layer = int(t.name.split(".")[1]) if t.name.startswith("layers.") else -1
        if t.kind == "trits":
            probe = (_probe_trits(rng, packing, beat, t.shape[0]) if t.name == PROBE_MATRIX else None)
            arrays[t.name] = _matrix_trits(rng, t.shape, packing, beat, vlen, probe)
            suffix = t.name.split(".", 2)[-1]
            if layer == 0:
                betas[t.name] = np.float32(2.0 ** POW2_SHIFTS[wi.LAYER_MATRICES.index(suffix)])
            else:
                betas[t.name] = np.float32(2.0 ** rng.uniform(-10, 3))
        elif t.kind == "gamma":
            n = t.shape[0]
            if t.name == PROBE_CODES:
                g = rng.integers(-32768, 32768, n)
                g[0], g[1:PROBE_COLS] = 1, -128
            elif rng.random() < 0.5:
                g = rng.integers(1 << 13, 1 << 15, n) * rng.choice([-1, 1, 1, 1], n)
            else:
                g = rng.integers(-32768, 32768, n) * (rng.random(n) < 0.9)
            if layer == LDV_LAYER:            # every 4th int16 sign-extends the 3rd: 48-bit words
                g[3::4] = np.where(g[2::4][:len(g[3::4])] < 0, -1, 0)
            arrays[t.name] = g.astype(np.int16)
            exps[t.name] = int(rng.integers(N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX + 1))
        elif t.kind == "gate":
            g = rng.integers(0, N.GATE_ONE + 1, t.shape)
            if layer == LDV_LAYER:            # odd words < 2**15: 48-bit int64 pairs
                g[1::2] = rng.integers(0, 1 << 15, g[1::2].shape)
            arrays[t.name] = g.astype(np.uint32)
        elif t.kind == "bf16":
            v = rng.normal(0, 1, t.shape) * 2.0 ** rng.uniform(-6, 6, (t.shape[0], 1))
            flat = v.reshape(-1)
            specials = [0.0, -0.0, 3e38, -1e30, 1e-40, -1e-40, 1e7, -9e6, 2.0 ** -24, 1.0]
            flat[rng.choice(flat.size, len(specials), replace=False)] = specials
            # float32 words of the embedding (LDF): -0.0 and a denormal at known places
            flat[2 * int(rng.integers(0, flat.size // 2)):][:2] = [0.0, -0.0]
            flat[2 * int(rng.integers(0, flat.size // 2)):][:2] = [0.0, 1e-40]
            bits = N.float_to_bf16_bits(v.astype(np.float32))
            assert ((bits >> 7) & 0xFF != 0xFF).all()
            arrays[t.name] = bits
    for t in lay.tensors:
        if t.kind == "scalars":
            fields = wi.HEAD_SCALARS if t.name == "head.scalars" else wi.LAYER_SCALARS
            prefix = "" if t.name == "head.scalars" else t.name.removesuffix("scalars")
            arrays[t.name] = wi.scalars_record(fields, prefix, betas, exps)
    return arrays


@functools.lru_cache(maxsize=16)
def _make_image(beat_bytes: int, packing: str, vlen: int, seed: int) -> wi.Image:
    model = fuzz_model(vlen)
    rng = np.random.default_rng([0xF0225, seed])
    arrays = _build_arrays(model, packing, beat_bytes, vlen, rng)
    with tempfile.TemporaryDirectory() as td:
        path = wi.write_image(Path(td) / "fuzz.img", model, arrays, packing=packing, beat_bytes=beat_bytes,
                              source=f"sim.fuzz synthetic image, seed {seed}")
        data = path.read_bytes()
    return wi.Image.from_buffer(data, label=f"<fuzz image {packing} beat {beat_bytes} seed {seed}>")


def make_image(config: accel.AccelConfig, seed: int = 0) -> wi.Image:
    """The fuzz weight image for `config` (its packing and beat_bytes; sizes from its vlen),
    built from seeded numpy arrays; cached per (beat_bytes, packing, vlen, seed)."""
    return _make_image(config.beat_bytes, config.packing, config.vlen, int(seed))


# -- static facts about an image ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Matrix:
    name: str
    start: int
    rows: int
    cols: int
    beats: np.ndarray        # packed bytes [beat, row-in-tile]
    zero_from: np.ndarray    # per beat: rows at and past this index are zero


def _runs(ok: np.ndarray) -> np.ndarray:
    """run[i] = number of consecutive True from i."""
    run = np.zeros(ok.size + 1, np.int64)
    for i in range(ok.size - 1, -1, -1):
        run[i] = run[i + 1] + 1 if ok[i] else 0
    return run[:-1]


class _ImageInfo:
    """Where each load may read, which TMATMULs are valid, for one (image, config)."""

    def __init__(self, img: wi.Image, config: accel.AccelConfig):
        if (img.packing, img.beat_bytes) != (config.packing, config.beat_bytes):
            raise ValueError(f"image packing/beat {img.packing}/{img.beat_bytes} do not match config "
                             f"{config.name} ({config.packing}/{config.beat_bytes})")
        self.img, self.cfg = img, config
        self.mem = np.asarray(img.file_bytes(), np.uint8).reshape(-1)
        self.state_base = int(self.mem.size)
        self.B, self.T = config.beat_bytes, wi.PACKINGS[config.packing]
        self.radix = {"2bit": 4, "1.6bit": 3}[config.packing]
        self.vlen = config.vlen
        self.model = img.model
        self.vl_obs = probe_vl(config.packing)
        self.matrices = []
        for t in img.tensors():
            if t.kind == "trits":
                raw = np.asarray(img.raw(t.name)).reshape(-1, self.B)
                nz = raw != 0
                zf = np.where(nz.any(1), self.B - np.argmax(nz[:, ::-1], 1), 0)
                self.matrices.append(_Matrix(t.name, img.offset(t.name), *t.shape, raw, zf))
        self.emb = (img.offset("embeddings"), *img.shape("embeddings"))
        self.gammas = [(img.offset(t.name), t.shape[0], t.name) for t in img.tensors() if t.kind == "gamma"]
        self.gates = [(img.offset(t.name), t.shape[0]) for t in img.tensors() if t.kind == "gate"]
        # gamma exponents: (address of the scalars word, value)
        self.exp_slots = []
        for (field, name), (rec, i) in img.layout.scalar_slots.items():
            if field == "gamma_exp":
                self.exp_slots.append((img.offset(rec) + 4 * i, img.gamma_exp(name)))
        l0 = img.offset("layers.0.scalars")
        self.pow2 = {s: l0 + 4 * i for i, s in enumerate(POW2_SHIFTS)}
        self.probe_aw = img.offset(PROBE_MATRIX)
        self.codes_addr = img.offset(PROBE_CODES)
        # LDV: 8-byte words that fit 48-bit signed
        w64 = self.mem.view("<i8")
        fits = (w64 >= N.FX_MIN) & (w64 <= N.FX_MAX)
        self.ldv_run = _runs(fits)
        self.nz64 = np.concatenate([[0], np.cumsum(w64 != 0)])
        # LDE: finite bf16
        u16 = self.mem.view("<u2")
        self.lde_run = _runs(((u16 >> 7) & 0xFF) != 0xFF)
        # LDF: finite float32 >= 0, with their SF values
        f32 = self.mem.view("<f4")
        with np.errstate(invalid="ignore"):
            okf = np.isfinite(f32) & ~(f32 < 0)
        idx = np.flatnonzero(okf)
        self.ldf_all = [(4 * int(i), O.sf_from_float(float(f32[i]))) for i in idx]
        u32 = self.mem.view("<u4")
        self.ldf_special = [(a, sf) for a, sf in self.ldf_all                     # -0.0, 0, denormals
                            if u32[a // 4] == 0x80000000 or (u32[a // 4] & 0x7F800000) == 0]
        neg0 = [x for x in self.ldf_special if u32[x[0] // 4] == 0x80000000]
        den = [x for x in self.ldf_special if u32[x[0] // 4] not in (0, 0x80000000)]
        zero = [x for x in self.ldf_special if u32[x[0] // 4] == 0][:4]
        self.ldf_special = neg0 * 4 + den[::max(1, len(den) // 32)] + zero
        lo, hi = OBS_EXP_WINDOW
        self.ldf_window = [(a, sf) for a, sf in self.ldf_all if sf[0] and lo <= sf[1] <= hi]
        scal = [img.offset(t.name) for t in img.tensors() if t.kind == "scalars"]
        self.ldf_betas = [(a, sf) for a, sf in self.ldf_all if any(s <= a < s + 4 * wi.SCALARS_WORDS for s in scal)
                          and sf[0]]
        self.i32 = self.mem.view("<i4")
        self._tmm: dict[int, list[tuple[int, int, int]]] = {}

    # -- TMATMUL -------------------------------------------------------------------------------------
    def tmm_candidates(self, vl: int) -> list[tuple[int, int, int]]:
        """(Aw, rows_lo, rows_hi): every rows in [rows_lo, rows_hi] is a valid [rows, vl] read."""
        c = self._tmm.get(vl)
        if c is None:
            c = self._tmm[vl] = self._compute_tmm(vl)
        return c

    def _compute_tmm(self, vl: int) -> list[tuple[int, int, int]]:
        B, g, p = self.B, -(-vl // self.T), vl % self.T
        out = []
        max_tiles = -(-self.vlen // B)
        for mat in self.matrices:
            nb = mat.beats.shape[0]
            colok = (mat.beats < self.radix ** p).all(1) if p else np.ones(nb, bool)
            for k in range(0, nb - g + 1):
                for n in range(1, max_tiles + 1):
                    end = k + n * g
                    if end > nb or not colok[end - 1]:
                        break
                    lo = (n - 1) * B + max(1, int(mat.zero_from[end - g:end].max()))
                    hi = min(n * B, self.vlen)
                    if lo <= hi:
                        out.append((mat.start + k * B, lo, hi))
        return out

    def tmm_vls(self) -> list[int]:
        """VLs that have TMATMUL candidates, preferred ones first (cached)."""
        if not hasattr(self, "_vls"):
            pref = [self.model.hidden_size, self.model.intermediate_size, self.vl_obs]
            pref += [v for v in range(self.T, self.vlen + 1, self.T)]
            pref += list(range(1, self.vlen + 1))
            seen, vls = set(), []
            for v in pref:
                if v <= self.vlen and v not in seen:
                    seen.add(v)
                    if self.tmm_candidates(v):
                        vls.append(v)
            self._vls = vls
        return self._vls

    # -- loads ---------------------------------------------------------------------------------------
    def ldv_windows(self, vl: int) -> tuple[np.ndarray, np.ndarray]:
        """Word indices of 48-bit-clean image windows of vl words: (with non-zero content, all)."""
        ok = np.flatnonzero(self.ldv_run >= vl)
        nzc = self.nz64[ok + vl] - self.nz64[ok]
        return ok[nzc > 0], ok

    def lde_windows(self, vl: int) -> np.ndarray:
        return np.flatnonzero(self.lde_run >= vl)


_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _info(img: wi.Image, config: accel.AccelConfig) -> _ImageInfo:
    per = _INFO.setdefault(img, {})
    key = (config.beat_bytes, config.packing, config.vlen)
    if key not in per:
        per[key] = _ImageInfo(img, config)
    return per[key]


# -- cases and observations --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FuzzLayout:
    """Where the epilogue puts things (offsets are from the start of the state region)."""
    state_base: int
    state_bytes: int
    scratch: tuple[int, int]        # the body's SV area [start, end)
    vdump: int                      # V0..V7, vlen elements each
    vlen: int
    fdump: int                      # one probe result per F, fobs_vl elements each
    fobs_vl: int
    f_order: tuple[int, ...]        # the F register observed in slot i
    f_shift: tuple[int, ...] = ()   # slot i shows F[f_order[i]] * 2**f_shift[i]

    def where(self, off: int) -> str:
        """Names the state byte at offset `off`."""
        if self.vdump <= off < self.vdump + 8 * isa.N_VREGS * self.vlen:
            r, j = divmod((off - self.vdump) // 8, self.vlen)
            return f"epilogue dump of V{r}[{j}]"
        if self.fdump <= off < self.fdump + 8 * len(self.f_order) * self.fobs_vl:
            s, j = divmod((off - self.fdump) // 8, self.fobs_vl)
            return f"probe of F{self.f_order[s]}, element {j}"
        if self.scratch[0] <= off < self.scratch[1]:
            return f"scratch +{off - self.scratch[0]}"
        return f"state +{off}"


@dataclasses.dataclass
class FuzzCase:
    seed: int
    config: str
    words: list[int]
    tokens: list[int]
    state_bytes: int
    layout: FuzzLayout
    body_words: int                                   # prologue + body (the epilogue follows)
    final_f: tuple[O.SF, ...] = ()                    # golden F values at the end of the body
    f_exact: tuple[bool, ...] = ()                    # whether the probe shows that F exactly
    attempts: int = 1
    rejects: tuple[str, ...] = ()                     # why earlier attempts were regenerated

    @functools.cached_property
    def description(self) -> str:
        """The program as assembly (assembler.disassemble), with a header of comments."""
        from assembler import disassemble

        lay = self.layout
        head = [f"; sim.fuzz seed {self.seed}, config {self.config}, attempt {self.attempts}: {len(self.words)} "
                f"words, {self.body_words} of prologue + body",
                f"; tokens: {self.tokens}",
                f"; state region at {lay.state_base}, {lay.state_bytes} bytes: scratch [0, {lay.scratch[1]}), "
                f"V dump at +{lay.vdump}, F probes at +{lay.fdump} (F order {list(lay.f_order)}, "
                f"shifts {list(lay.f_shift)})"]
        return "\n".join(head) + "\n" + disassemble(self.words)


@dataclasses.dataclass
class Observed:
    """What a run shows: the TOKOUT values in order and the state region's bytes. Equality and
    diff compare only these two; the other fields are informational."""
    tokouts: list[int]
    state: bytes
    layout: FuzzLayout | None = dataclasses.field(default=None, compare=False, repr=False)
    steps: int = dataclasses.field(default=0, compare=False)
    profile: dict[str, int] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def probed_f(self) -> tuple[O.SF | None, ...]:
        """F0..F7 at the end of the body, read back from the epilogue's probes (row 0: acc 1, row 1:
        acc 4096) and unscaled; None where the probe does not show the whole value."""
        lay = self.layout
        if lay is None:
            raise ValueError("Observed.probed_f needs the case's layout")
        out: list[O.SF | None] = [None] * isa.N_FREGS
        for slot, r in enumerate(lay.f_order):
            base = lay.fdump + 8 * lay.fobs_vl * slot
            y0, y1 = (int.from_bytes(self.state[base + 8 * j:base + 8 * j + 8], "little", signed=True)
                      for j in (0, 1))
            if y0 == 0 and y1 == 0:
                out[r] = O.SF_ZERO
                continue
            if 0 < y1 < N.FX_MAX:
                e, y, k = y1.bit_length() - 60, y1, 36
            elif y0 > 0:
                e, y, k = y0.bit_length() - 48, y0, 24
            else:
                continue
            lo, hi = OBS_EXP_WINDOW
            if not lo <= e <= hi or e + k < 0 or y % (1 << (e + k)):
                continue
            m = y >> (e + k)
            if m >> (N.SF_BITS - 1) == 1:
                out[r] = (m, e - lay.f_shift[slot])
        return tuple(out)

    def diff(self, other: Observed) -> str:
        """The first mismatch, self taken as the expected (golden) side; "" if equal."""
        a, b = list(self.tokouts), list(other.tokouts)
        if a != b:
            n_epi = isa.N_AREGS

            def label(i: int, n: int) -> str:
                return f" (epilogue TOKOUT A{i - (n - n_epi)})" if i >= n - n_epi else " (body TOKOUT)"

            for i in range(min(len(a), len(b))):
                if a[i] != b[i]:
                    return f"tokout {i}{label(i, len(a))}: expected {a[i]}, got {b[i]}"
            return f"tokouts: expected {len(a)}, got {len(b)} (first {min(len(a), len(b))} equal)"
        if self.state != other.state:
            if len(self.state) != len(other.state):
                return f"state region: expected {len(self.state)} bytes, got {len(other.state)}"
            x = np.frombuffer(self.state, np.uint8)
            y = np.frombuffer(other.state, np.uint8)
            i = int(np.argmax(x != y))
            w = i - i % 8
            lay = self.layout or other.layout
            where = lay.where(w) if lay is not None else f"state +{w}"
            va = int.from_bytes(self.state[w:w + 8], "little", signed=True)
            vb = int.from_bytes(other.state[w:w + 8], "little", signed=True)
            more = int(np.count_nonzero(x != y))
            return f"state byte +{i} ({where}): expected word {va}, got {vb} ({more} byte(s) differ)"
        return ""


# -- validation run ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _reference_kernels():
    """Run the golden machine on golden.ops (the definition) and the numpy matvec rather
    than the numba twins: bit-identical by contract, and for these short vectors faster (numba's
    parallel matvec costs ~16 ms a call on a 2-core host with the omp layer; ops.py's numpy paths
    take microseconds)."""
    old = os.environ.get("MMFREE_GOLDEN_KERNEL")
    os.environ["MMFREE_GOLDEN_KERNEL"] = "numpy"
    try:
        yield
    finally:
        if old is None:
            del os.environ["MMFREE_GOLDEN_KERNEL"]
        else:
            os.environ["MMFREE_GOLDEN_KERNEL"] = old


class _Reject(Exception):
    pass


@functools.lru_cache(maxsize=1 << 16)
def _decode(word: int) -> isa.Instr:
    return isa.decode(word)


def _machine(words: Sequence[int], img: wi.Image, state_bytes: int) -> GoldenMachine:
    with _reference_kernels():
        m = GoldenMachine(words, img, state_bytes=state_bytes, max_steps=MAX_STEPS)
    _load_rom(m, words)
    return m


def _load_rom(m: GoldenMachine, words: Sequence[int]) -> None:
    """(Re)load the ROM with the decodes filled in from a shared cache (the machine would decode
    each word again, at ~60 us a word; fuzz cases share most words)."""
    m.rom = [int(w) for w in words]
    m._decoded = []
    for w in m.rom:
        try:
            m._decoded.append(_decode(w))
        except isa.DecodeError:        # left to the machine, which faults when it gets there
            m._decoded.append(None)


def _checked_machine(words: Sequence[int], img: wi.Image, state_bytes: int) -> GoldenMachine:
    """A golden machine that checks the hardware's limits after every instruction."""
    m = _machine(words, img, state_bytes)

    def check(pc: int, ins: isa.Instr, eff: dict) -> None:
        for k, v in eff.items():
            if isinstance(v, np.ndarray):
                if v.size and (int(v.min()) < N.FX_MIN or int(v.max()) > N.FX_MAX):
                    raise _Reject(f"pc {pc} {ins}: {k} element outside FX")
            elif k[0] == "F":
                if v[0] and not SF_EXP_MIN <= v[1] <= SF_EXP_MAX:
                    raise _Reject(f"pc {pc} {ins}: {k} exponent {v[1]} outside the SF_EXP_BITS range")
        if ins.op.mnemonic == "TMATMUL":
            sf = m.F[ins.args[3]]
            if sf[0] and sf[1] < TMM_MIN_SF_EXP:
                raise _Reject(f"pc {pc} {ins}: scale exponent {sf[1]} < {TMM_MIN_SF_EXP}")

    m.observers.append(check)
    return m


def _run_checked(m: GoldenMachine, host: ListHost) -> None:
    try:
        with _reference_kernels():
            m.run(host)
    except _Reject:
        raise
    except MachineError as e:
        raise _Reject(f"MachineError: {e}") from None
    except Exception as e:
        raise _Reject(f"{type(e).__name__}: {e}") from None
    if m.halt_reason != "HALT":
        raise _Reject(f"MachineError: halted with {m.halt_reason!r}")
    if host.fed != len(host.inputs):
        raise _Reject(f"MachineError: {len(host.inputs) - host.fed} token(s) left unread")


# -- the generator -----------------------------------------------------------------------------------

class _NoOp(Exception):
    """This action cannot be emitted in the current state; pick another."""


_VV = ("EXP", "SIG", "SILU", "ONEM", "MOVV")
_VVV = ("ADD", "SUB", "MUL", "DIV", "GMUL")
_LONG = ("DIV", "NORM", "QNT", "TMATMUL")


class _Gen:
    def __init__(self, rng: np.random.Generator, config: accel.AccelConfig, info: _ImageInfo, state_bytes: int):
        self.rng, self.cfg, self.info = rng, config, info
        self.sb, self.state_bytes = info.state_base, state_bytes
        self.words: list[int] = []
        self.vl = 0
        self.a: list[int | None] = [0] * isa.N_AREGS
        self.f: list[O.SF | None] = [O.SF_ZERO] * isa.N_FREGS
        self.f_bad = [False] * isa.N_FREGS      # may be too small for TMATMUL (TMM_MIN_SF_EXP)
        self.tokens: list[int] = []
        self.sink: list[int] | None = self.tokens
        self.mode = "top"                       # top | loop | cond | dead
        self.no_ctrl = False
        self.locked: set[int] = set()
        self.pinned: set[int] = set()           # chosen by the current action: not a MOVI target
        self.a_allowed: set[int] | None = None
        self.f_allowed: set[int] | None = None
        self.a_written: set[int] = set()
        self.f_written: set[int] = set()
        self.stream: tuple[int, int, int, int] | None = None
        self.rv: list[int] = []                 # recently written V (most recent first)
        self.rr: list[int] = []                 # recently read V
        self.ra: list[int] = []                 # recently written A
        self.rf: list[int] = []                 # recently written F

    # -- helpers ---------------------------------------------------------------------------------
    def r(self) -> float:
        return float(self.rng.random())

    def ri(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, seq):
        return seq[int(self.rng.integers(0, len(seq)))]

    def emit(self, mn: str, *args) -> int:
        self.words.append(isa.encode(mn, *args))
        return len(self.words) - 1

    def save(self) -> tuple:
        return (self.vl, list(self.a), list(self.f), list(self.f_bad), list(self.rv), list(self.rr),
                list(self.ra), list(self.rf))

    def restore(self, s: tuple) -> None:
        self.vl, a, f, fb, rv, rr, ra, rf = s
        self.a, self.f, self.f_bad = list(a), list(f), list(fb)
        self.rv, self.rr, self.ra, self.rf = list(rv), list(rr), list(ra), list(rf)

    # A registers
    def a_dst(self, avoid: Sequence[int] = ()) -> int:
        c = [r for r in range(isa.N_AREGS) if r not in self.locked and r not in avoid and r not in self.pinned
             and (self.a_allowed is None or r in self.a_allowed)]
        if not c:
            raise _NoOp
        if self.ra and self.ra[0] in c and self.r() < 0.25:
            return self.ra[0]
        return self.pick(c)

    def a_src(self) -> int:
        if self.ra and self.r() < 0.5:
            return self.ra[0] if self.r() < 0.7 else self.pick(self.ra)
        return self.ri(0, isa.N_AREGS - 1)

    def set_a(self, r: int, v: int | None) -> None:
        self.a[r] = None if v is None else _wrap64(v)
        self.ra = [r] + [x for x in self.ra if x != r][:3]
        self.a_written.add(r)

    def base_for(self, target: int) -> tuple[int, int]:
        """A (register, offset) pair addressing `target`, emitting a MOVI when needed."""
        ks = [r for r in range(isa.N_AREGS) if self.a[r] is not None and -(1 << 31) <= target - self.a[r] < 1 << 31]
        rec = [r for r in self.ra if r in ks]
        p = self.r()
        if rec and p < 0.35:
            r = rec[0]
        elif ks and p < 0.8:
            r = self.pick(ks)
        else:
            r = self.a_dst()
            v = target - self.pick([0, 0, 0, 8, 64, -64, 1000, -4096])
            self.emit("MOVI", r, v)
            self.set_a(r, v)
        return r, target - self.a[r]

    def reg_with(self, value: int) -> int:
        """A register holding exactly `value` (emitting MOVI or ADDI when needed)."""
        ks = [r for r in range(isa.N_AREGS) if self.a[r] == value]
        if ks and self.r() < 0.5:
            return self.pick(ks)
        r = self.a_dst()
        srcs = [s for s in range(isa.N_AREGS) if self.a[s] is not None and -(1 << 31) <= value - self.a[s] < 1 << 31]
        if srcs and self.r() < 0.5:
            s = next((x for x in self.ra if x in srcs), None) if self.r() < 0.5 else None
            s = self.pick(srcs) if s is None else s
            self.emit("ADDI", r, s, value - self.a[s])
        else:
            self.emit("MOVI", r, value)
        self.set_a(r, value)
        return r

    def gexp_reg(self) -> int:
        """A register with a known value in [GAMMA_EXP_MIN, GAMMA_EXP_MAX]."""
        ok = [r for r in range(isa.N_AREGS)
              if self.a[r] is not None and N.GAMMA_EXP_MIN <= self.a[r] <= N.GAMMA_EXP_MAX]
        rec = [r for r in self.ra if r in ok]
        p = self.r()
        if rec and p < 0.4:
            return rec[0]
        if ok and p < 0.75:
            return self.pick(ok)
        r = self.a_dst()
        if self.r() < 0.4:
            addr, v = self.pick(self.info.exp_slots)
            self.emit("LDW", r, self.base_for(addr))
        else:
            v = self.pick([N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX, 0, 13, 14, 15, 16,
                           self.ri(N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX)])
            v = v if self.r() < 0.3 else self.ri(8, 20)
            self.emit("MOVI", r, v)
        self.set_a(r, v)
        return r

    # V registers
    def v_src(self) -> int:
        if self.rv and self.r() < 0.55:
            return self.rv[0] if self.r() < 0.7 else self.pick(self.rv)
        return self.ri(0, isa.N_VREGS - 1)

    def v_dst(self, srcs: Sequence[int] = ()) -> int:
        p = self.r()
        if srcs and p < 0.25:
            return self.pick(list(srcs))                      # in place
        if self.rr and p < 0.4:
            return self.rr[0]                                # WAR
        if self.rv and p < 0.55:
            return self.rv[0]                                # WAW
        return self.ri(0, isa.N_VREGS - 1)

    def wrote_v(self, d: int, srcs: Sequence[int] = ()) -> None:
        self.rv = [d] + [x for x in self.rv if x != d][:2]
        for s in srcs:
            self.rr = [s] + [x for x in self.rr if x != s][:2]

    # F registers
    def f_dst(self) -> int:
        c = [r for r in range(isa.N_FREGS) if self.f_allowed is None or r in self.f_allowed]
        if not c:
            raise _NoOp
        if self.rf and self.rf[0] in c and self.r() < 0.3:
            return self.rf[0]
        return self.pick(c)

    def f_src(self, good: bool = False) -> int:
        c = [r for r in range(isa.N_FREGS) if not (good and self.f_bad[r])]
        if not c:
            raise _NoOp
        rec = [r for r in self.rf if r in c]
        if rec and self.r() < 0.5:
            return rec[0]
        return self.pick(c)

    def set_f(self, r: int, v: O.SF | None, bad: bool) -> None:
        self.f[r], self.f_bad[r] = v, bad
        self.rf = [r] + [x for x in self.rf if x != r][:2]
        self.f_written.add(r)

    # -- actions: memory -------------------------------------------------------------------------
    def ldv(self, d: int | None = None) -> None:
        vl = self.vl
        nzw, allw = self.info.ldv_windows(vl)
        if self.r() < 0.5 or not allw.size:
            span = self.state_bytes - 8 * vl
            target = self.sb + 8 * self.ri(0, span // 8)
        else:
            w = nzw if nzw.size and self.r() < 0.85 else allw
            target = 8 * int(self.pick(w))
        d = self.v_dst() if d is None else d
        self.emit("LDV", d, self.base_for(target))
        self.wrote_v(d)

    def sv(self, s: int | None = None) -> None:
        target = self.sb + 8 * self.ri(0, (SCRATCH_BYTES - 8 * self.vl) // 8)
        s = self.v_src() if s is None else s
        self.emit("SV", self.base_for(target), s)
        self.rr = [s] + [x for x in self.rr if x != s][:2]

    def ldg(self, d: int | None = None, gamma: bool = False) -> None:
        need = 2 * self.vl
        if gamma or self.r() < 0.6:
            addr, n, _ = self.pick(self.info.gammas)
            target = addr + 2 * self.ri(0, max(0, n - self.vl)) * (self.r() < 0.3)
        else:
            target = 2 * self.ri(0, (self.sb + self.state_bytes - need) // 2)
        target = min(target, self.sb + self.state_bytes - need)
        d = self.v_dst() if d is None else d
        self.emit("LDG", d, self.base_for(target))
        self.wrote_v(d)

    def ldgt(self, d: int | None = None) -> None:
        need = 4 * self.vl
        if self.r() < 0.5:
            addr, n = self.pick(self.info.gates)
            target = addr
        else:
            target = 4 * self.ri(0, (self.sb + self.state_bytes - need) // 4)
        target = min(target, self.sb + self.state_bytes - need)
        d = self.v_dst() if d is None else d
        self.emit("LDGT", d, self.base_for(target))
        self.wrote_v(d)

    def lde(self, d: int | None = None) -> None:
        vl = self.vl
        e0, vocab, dim = self.info.emb
        end = e0 + 2 * vocab * dim
        if self.r() < 0.7:
            rows = (end - e0) // (2 * vl)              # whole rows of width vl inside the embedding
            ok = [r for r in range(isa.N_AREGS) if self.a[r] is not None and 0 <= self.a[r] < rows]
            if ok and self.r() < 0.8:
                rec = [r for r in self.ra if r in ok]
                t = rec[0] if rec and self.r() < 0.6 else self.pick(ok)
            else:
                t = self.a_dst()
                v = self.ri(0, rows - 1)
                if self.sink is not None and self.mode == "top" and self.r() < 0.5:
                    self.emit("TOKIN", t)
                    self.sink.append(v)
                else:
                    self.emit("MOVI", t, v)
                self.set_a(t, v)
            target = e0 + 2 * self.a[t] * vl
            self.pinned.add(t)
        else:
            wins = self.info.lde_windows(vl)
            target = 2 * int(self.pick(wins))
            ok = [r for r in range(isa.N_AREGS) if self.a[r] is not None and abs(self.a[r]) < (1 << 20)]
            if not ok:
                raise _NoOp
            t = self.pick(ok)
            self.pinned.add(t)
            target_base = target - 2 * self.a[t] * vl
            r, off = self.base_for(target_base)
            d = self.v_dst() if d is None else d
            self.emit("LDE", d, t, (r, off))
            self.wrote_v(d)
            return
        d = self.v_dst() if d is None else d
        self.emit("LDE", d, t, self.base_for(target - 2 * self.a[t] * vl))
        self.wrote_v(d)

    def ldw(self) -> None:
        d = self.a_dst()
        if self.r() < 0.6:
            i = self.ri(0, self.sb // 4 - 1)
            v = int(self.info.i32[i])
            target = 4 * i
        else:
            target = self.sb + 4 * self.ri(0, self.state_bytes // 4 - 1)
            v = None
        self.emit("LDW", d, self.base_for(target))
        self.set_a(d, v)

    def ldf(self, d: int | None = None, window: bool = False) -> None:
        p = self.r()
        src = (self.info.ldf_window if window or p < 0.35 else self.info.ldf_betas if p < 0.7
               else self.info.ldf_special if p < 0.8 else self.info.ldf_all)
        addr, sf = self.pick(src)
        d = self.f_dst() if d is None else d
        self.emit("LDF", d, self.base_for(addr))
        self.set_f(d, sf, bool(sf[0]) and sf[1] < TMM_MIN_SF_EXP)

    # -- actions: vector -------------------------------------------------------------------------
    def vec(self, mn: str | None = None, d: int | None = None, s: int | None = None, t: int | None = None) -> None:
        mn = mn or self.pick(_VVV + _VV + _VVV)
        s = self.v_src() if s is None else s
        if mn in _VV:
            d = self.v_dst([s]) if d is None else d
            self.emit(mn, d, s)
            self.wrote_v(d, [s])
        else:
            if t is None:
                t = s if self.r() < 0.15 else self.v_src()
            d = self.v_dst([s, t]) if d is None else d
            self.emit(mn, d, s, t)
            self.wrote_v(d, [s, t])
        if mn == "DIV":
            self.follow(d, [s] if t is None else [s, t])

    def norm(self, qnt: bool = False) -> tuple[int, int, int | None]:
        ae = self.gexp_reg()
        self.pinned.add(ae)
        if self.r() < 0.5:
            self.ldg(gamma=True)
            g = self.rv[0]
        else:
            g = self.v_src()
        s = self.v_src()
        if qnt:
            fd = self.f_dst()
            d = self.v_dst([s, g])
            self.emit("QNT", d, fd, s, g, ae)
            self.set_f(fd, None, False)
        else:
            fd = None
            d = self.v_dst([s, g])
            self.emit("NORM", d, s, g, ae)
        self.wrote_v(d, [s, g])
        return d, s, fd

    def ensure_tmm_vl(self) -> list[tuple[int, int, int]]:
        cands = self.info.tmm_candidates(self.vl)
        if cands and (self.mode not in ("top", "dead") or self.r() < 0.7):
            return cands
        if self.mode not in ("top", "dead"):
            raise _NoOp
        vls = self.info.tmm_vls()
        v = vls[0] if self.r() < 0.2 else self.pick(vls)
        self.emit("SETVL", v)
        self.vl = v
        return self.info.tmm_candidates(v)

    def tmatmul(self, vs: int | None = None, f: int | None = None, cands=None) -> None:
        cands = cands or self.ensure_tmm_vl()
        aw, lo, hi = self.pick(cands)
        rows = hi if self.r() < 0.4 else self.ri(lo, hi)
        w = self.reg_with(aw)
        f = self.f_src(good=True) if f is None else f
        vs = self.v_src() if vs is None else vs
        d = self.v_dst([vs])
        self.emit("TMATMUL", d, vs, w, f, rows)
        self.wrote_v(d, [vs])
        self.follow(d, [vs])

    def bitlinear(self) -> None:
        cands = self.ensure_tmm_vl()
        d, _, fq = self.norm(qnt=True)
        if self.r() < 0.5:
            fb = self.pick([r for r in range(isa.N_FREGS) if self.f[r] is not None and self.f[r][0]
                            and -60 <= self.f[r][1] <= 0] or [fq])
            if fb != fq and (self.f_allowed is None or fq in self.f_allowed):
                self.emit("FMUL", fq, fq, fb)
                self.set_f(fq, None, False)
        self.tmatmul(vs=d, f=fq, cands=cands)

    def argmax(self) -> None:
        am = self.a_dst()
        if self.r() < 0.5:
            v = self.pick([-(1 << 31), -1, 0, self.ri(-1000, 1000)])
            self.emit("MOVI", am, v)
            self.set_a(am, v)
        ai = am if self.r() < 0.05 else self.a_dst(avoid=[am])
        ao = self.a_src()
        s = self.v_src()
        self.emit("ARGMAX", ai, am, s, ao)
        self.set_a(am, None)
        self.set_a(ai, None)
        self.rr.insert(0, s)
        if self.r() < 0.5 and self.mode != "dead":
            self.emit("TOKOUT", self.pick([ai, am]))

    def follow(self, d: int, srcs: Sequence[int]) -> None:
        """After a long op: a dependent, anti-dependent, output-dependent or independent op."""
        if self.r() > 0.65:
            return
        try:
            self._follow(d, srcs, self.r())
        except _NoOp:          # raised before anything was emitted: keep the long op
            pass

    def _follow(self, d: int, srcs: Sequence[int], p: float) -> None:
        others = [r for r in range(isa.N_VREGS) if r != d and r not in srcs] or [d]
        if p < 0.3:                                       # RAW on the result
            mn = self.pick(_VVV + _VV)
            dd = self.pick(others + [d])
            if mn in _VV:
                self.emit(mn, dd, d)
                self.wrote_v(dd, [d])
            else:
                t = self.pick([d, self.pick(others)])
                self.emit(mn, dd, d, t)
                self.wrote_v(dd, [d, t])
        elif p < 0.42 and srcs:                           # WAR on a source
            mn = self.pick(_VV)
            s = self.pick(others)
            self.emit(mn, srcs[0], s)
            self.wrote_v(srcs[0], [s])
        elif p < 0.54:                                    # WAW on the result
            s = self.pick(others)
            self.emit(self.pick(_VV), d, s)
            self.wrote_v(d, [s])
        elif p < 0.66:                                    # RAW through memory
            self.sv(d)
        elif p < 0.85:                                    # independent vector op
            s, t = self.pick(others), self.pick(others)
            dd = self.pick(others)
            self.emit(self.pick(_VVV), dd, s, t)
            self.wrote_v(dd, [s, t])
        else:                                             # independent scalar op
            self.scalar()

    # -- actions: scalar, tokens, misc -----------------------------------------------------------
    def scalar(self) -> None:
        mn = self.pick(["MOVI", "ADDI", "ADDI", "ADDS", "SUBS", "MULS"])
        d = self.a_dst()
        if mn == "MOVI":
            v = self.pick([self.ri(-100, 100), self.ri(-(1 << 31), (1 << 31) - 1), self.sb, -1, 0, 1])
            self.emit("MOVI", d, v)
            self.set_a(d, v)
        elif mn == "ADDI":
            s = self.a_src()
            imm = self.pick([self.ri(-64, 64), 8 * self.vl, -8 * self.vl, self.ri(-(1 << 31), (1 << 31) - 1)])
            self.emit("ADDI", d, s, imm)
            self.set_a(d, None if self.a[s] is None else self.a[s] + imm)
        else:
            s, t = self.a_src(), self.a_src()
            self.emit(mn, d, s, t)
            x, y = self.a[s], self.a[t]
            v = None if x is None or y is None else {"ADDS": x + y, "SUBS": x - y, "MULS": x * y}[mn]
            self.set_a(d, v)

    def fmul(self) -> None:
        s, t = self.f_src(), self.f_src()
        x, y = self.f[s], self.f[t]
        if x is not None and y is not None:
            v = O.sf_mul(x, y)
            if v[0] and not SF_EXP_MIN + 64 <= v[1] <= SF_EXP_MAX - 64:
                raise _NoOp
            bad = bool(v[0]) and v[1] < TMM_MIN_SF_EXP
        else:
            if self.r() < 0.5:
                raise _NoOp
            v, bad = None, self.f_bad[s] or self.f_bad[t]
            for z in (x, y):
                if z is not None and z[0] and not -60 <= z[1] <= 10:
                    bad = True
        d = self.f_dst()
        self.emit("FMUL", d, s, t)
        self.set_f(d, v, bad)

    def tokin(self) -> None:
        if self.mode == "cond":
            raise _NoOp
        d = self.a_dst()
        v = self.ri(0, self.info.emb[1] - 1) if self.r() < 0.8 else self.pick(
            [self.ri(0, 1 << 15), -1, (1 << 31) - 1, -(1 << 31), self.ri(-(1 << 31), (1 << 31) - 1)])
        self.emit("TOKIN", d)
        if self.sink is not None:
            self.sink.append(v)
        self.set_a(d, v)

    def tokout(self) -> None:
        self.emit("TOKOUT", self.a_src())

    def setvl(self) -> None:
        if self.mode not in ("top", "dead"):
            raise _NoOp
        info = self.info
        v = self.pick([info.vlen, info.vlen, info.model.hidden_size, info.model.intermediate_size, 1,
                       self.ri(1, info.vlen), self.ri(1, info.vlen), self.pick(info.tmm_vls()),
                       min(info.vlen, self.cfg.vector_lanes * self.ri(1, 8) + self.pick([-1, 0, 1]) or 1)])
        v = max(1, min(info.vlen, v))
        self.emit("SETVL", v)
        self.vl = v

    # -- control ---------------------------------------------------------------------------------
    def loop(self) -> None:
        if self.mode != "top" or self.no_ctrl:
            raise _NoOp
        n = self.ri(2, 4)
        free = [r for r in range(isa.N_AREGS) if r not in self.locked]
        counter = self.pick(free)
        self.emit("MOVI", counter, n)
        self.set_a(counter, n)
        ptr = None
        if self.r() < 0.6:
            ptr = self.pick([r for r in free if r != counter])
            stride = 8 * self.ri(1, self.vl) * self.pick([1, 1, -1])
            span = (n - 1) * abs(stride) + 8 * self.vl
            p0 = self.sb + 8 * self.ri(0, (SCRATCH_BYTES - span) // 8)
            if stride < 0:
                p0 += (n - 1) * -stride
            self.emit("MOVI", ptr, p0)
            self.set_a(ptr, p0)
        locked = {counter} | ({ptr} if ptr is not None else set())
        cand = [r for r in free if r not in locked]
        scratch_a = {self.pick(cand) for _ in range(self.ri(2, 4))}
        scratch_f = {self.ri(0, isa.N_FREGS - 1) for _ in range(self.ri(0, 3))}
        pre = self.save()
        for r in scratch_a:
            self.a[r] = None
        for r in scratch_f:
            self.f[r], self.f_bad[r] = None, True
        self.a[counter] = None
        if ptr is not None:
            self.a[ptr] = None
            self.stream = (ptr, p0, stride, n)
        self.mode, self.locked, self.a_allowed, self.f_allowed = "loop", locked, scratch_a, scratch_f
        self.a_written, self.f_written = set(), set()
        pending: list[int] = []
        self.sink = pending
        start = len(self.words)
        k = self.ri(1, 5)
        acts = [self.stream_op] * (ptr is not None) + [None] * k
        self.rng.shuffle(acts)
        for act in acts:
            self.action(act)
        if ptr is not None:
            self.emit("ADDI", ptr, ptr, stride)
        self.emit("DJNZ", counter, start)
        # after the loop: body-end values are valid after any iteration; unwritten scratch keeps its value
        for r in scratch_a - self.a_written:
            self.a[r] = pre[1][r]
        for r in scratch_f - self.f_written:
            self.f[r], self.f_bad[r] = pre[2][r], pre[3][r]
        self.a[counter] = 0
        if ptr is not None:
            self.a[ptr] = _wrap64(p0 + n * stride)
        self.mode, self.locked, self.a_allowed, self.f_allowed = "top", set(), None, None
        self.stream = None
        self.sink = self.tokens
        self.tokens.extend(pending * n)

    def stream_op(self) -> None:
        ptr, p0, stride, n = self.stream
        mn = self.pick(["SV", "LDV", "LDG", "LDGT", "SV"])
        es = {"SV": 8, "LDV": 8, "LDG": 2, "LDGT": 4}[mn]
        need = es * self.vl
        lo_a, hi_a = min(p0, p0 + (n - 1) * stride), max(p0, p0 + (n - 1) * stride)
        reg_lo, reg_hi = (self.sb, self.sb + SCRATCH_BYTES) if mn == "SV" else (
            (self.sb, self.sb + self.state_bytes) if mn == "LDV" else (0, self.sb + self.state_bytes))
        off_lo = -((lo_a - reg_lo) // es)
        off_hi = (reg_hi - need - hi_a) // es
        if off_lo > off_hi:
            raise _NoOp
        off = es * self.ri(max(off_lo, -16), min(off_hi, 64)) if max(off_lo, -16) <= min(off_hi, 64) \
            else es * self.ri(off_lo, off_hi)
        if mn == "SV":
            s = self.v_src()
            self.emit("SV", (ptr, off), s)
            self.rr.insert(0, s)
        else:
            d = self.v_dst()
            self.emit(mn, d, (ptr, off))
            self.wrote_v(d)

    def block(self, mode: str) -> None:
        """A forward-branch block: `mode` dead (never runs), cond (may run) or run (runs)."""
        if mode == "dead":
            pre, sink = self.save(), self.sink
            self.mode, self.sink = "dead", None
            for _ in range(self.ri(1, 4)):
                if self.r() < 0.15:
                    self.emit("HALT")
                else:
                    self.action()
            self.restore(pre)
            self.mode, self.sink = "top", sink
        elif mode == "cond":
            pre = self.save()
            self.mode = "cond"
            for _ in range(self.ri(1, 4)):
                self.action()
            post = self.save()
            self.mode = "top"
            for r in range(isa.N_AREGS):
                if post[1][r] != pre[1][r]:
                    self.a[r] = None
            for r in range(isa.N_FREGS):
                if post[2][r] != pre[2][r]:
                    self.f[r] = None
                self.f_bad[r] = pre[3][r] or post[3][r]
        else:
            self.no_ctrl = True
            for _ in range(self.ri(1, 4)):
                self.action()
            self.no_ctrl = False

    def branch(self) -> None:
        if self.mode != "top" or self.no_ctrl:
            raise _NoOp
        if self.r() < 0.25:
            i = self.emit("JMP", 0)
            self.block("dead")
        else:
            unknown = [r for r in range(isa.N_AREGS) if self.a[r] is None]
            if unknown and self.r() < 0.5:
                rec = [r for r in self.ra if r in unknown]
                c = rec[0] if rec and self.r() < 0.6 else self.pick(unknown)
                i = self.emit("BLTZ", c, 0)
                self.block("cond")
            else:
                c = self.a_dst()
                if self.r() < 0.5:
                    v = self.pick([-1, -(1 << 31), 0, 1, self.ri(-50, 50)])
                    self.emit("MOVI", c, v)
                    self.set_a(c, v)
                else:
                    ks = [r for r in range(isa.N_AREGS) if self.a[r] is not None]
                    s = self.pick(ks) if ks else c
                    imm = self.ri(-100, 100)
                    self.emit("ADDI", c, s, imm)
                    self.set_a(c, None if self.a[s] is None else self.a[s] + imm)
                    if self.a[c] is None:
                        self.emit("MOVI", c, -7)
                        self.set_a(c, -7)
                i = self.emit("BLTZ", c, 0)
                self.block("dead" if self.a[c] < 0 else "run")
        self.words[i] = isa.encode(isa.decode(self.words[i]).op.mnemonic,
                                   *isa.decode(self.words[i]).args[:-1], len(self.words))

    # -- the action table ------------------------------------------------------------------------
    def _table(self) -> tuple[list[Callable[[], None]], np.ndarray]:
        table = [
            (self.vec, 26), (self.ldv, 5), (self.sv, 6), (self.ldg, 4), (self.ldgt, 3), (self.lde, 5),
            (self.ldw, 3), (self.ldf, 3), (self.norm, 4), (lambda: self.norm(qnt=True), 3),
            (self.bitlinear, 5), (self.tmatmul, 3), (self.argmax, 3), (self.scalar, 8), (self.fmul, 3),
            (self.tokin, 2), (self.tokout, 3), (lambda: self.emit("NOP"), 1), (lambda: self.emit("BARRIER"), 1),
            (self.setvl, 5), (self.loop, 3), (self.branch, 4),
        ]
        w = np.cumsum([x for _, x in table], dtype=float)
        return [f for f, _ in table], w / w[-1]

    def action(self, act: Callable[[], None] | None = None) -> None:
        if not hasattr(self, "_fns"):
            self._fns, self._cum = self._table()
        for _ in range(20):
            fn = act or self._fns[int(np.searchsorted(self._cum, self.rng.random(), side="right"))]
            save_len = len(self.words)
            snap = self.save() if self.mode != "dead" else None
            tok = len(self.sink) if self.sink is not None else 0
            pinned = set(self.pinned)
            try:
                fn()
                return
            except _NoOp:
                del self.words[save_len:]
                if snap is not None:
                    self.restore(snap)
                if self.sink is not None:
                    del self.sink[tok:]
                act = None
            finally:
                self.pinned = pinned
        # give up quietly: nothing was emitted

    # -- program parts ---------------------------------------------------------------------------
    def prologue(self) -> None:
        info = self.info
        self.emit("SETVL", info.vlen)
        self.vl = info.vlen
        e0 = info.emb[0]
        useful = [self.sb, self.sb + SCRATCH_BYTES // 2, e0, info.gammas[0][0], info.matrices[0].start,
                  info.probe_aw, 14, 0, 1, -1]
        for r in range(isa.N_AREGS):
            v = self.pick(useful) if self.r() < 0.6 else self.ri(-1000, 1000)
            self.emit("MOVI", r, v)
            self.set_a(r, v)
        loads = [self.lde, self.ldg, self.ldgt, self.ldv, self.lde, self.ldg]
        for d in range(isa.N_VREGS):
            self.pick(loads)(d=d)
        for f in range(isa.N_FREGS):
            self.ldf(d=f, window=True)
        self.rv, self.rr = [], []

    def body(self, n_actions: int, limit: int) -> None:
        for _ in range(n_actions):
            if len(self.words) > limit - 24:
                break
            self.action()

    def epilogue(self, final_f: Sequence[O.SF], layout_base: dict) -> tuple[list[int], tuple, tuple, tuple]:
        """Words after the body: TOKOUT A*, dump V*, probe every F (scaled into the exact window)."""
        info, vlen, vl_obs, B = self.info, self.info.vlen, self.info.vl_obs, self.info.B
        w: list[int] = []
        e = lambda *a: w.append(isa.encode(*a))
        for r in range(isa.N_AREGS):
            e("TOKOUT", r)
        vd = self.sb + layout_base["vdump"]
        e("MOVI", 0, vd)
        e("SETVL", vlen)
        for r in range(isa.N_VREGS):
            e("SV", (0, 8 * vlen * r), r)
        lo, hi = OBS_EXP_WINDOW

        def direct(sf: O.SF) -> bool:
            return not sf[0] or lo <= sf[1] <= hi

        order = sorted(range(isa.N_FREGS), key=lambda r: (not direct(final_f[r]), r))
        first = final_f[order[0]]
        if first[0] and first[1] < TMM_MIN_SF_EXP:
            raise _Reject("no F register can be probed first")
        e("SETVL", vl_obs)
        e("MOVI", 1, info.probe_aw)
        e("MOVI", 2, info.codes_addr)
        e("LDG", 0, (2, 0))
        e("MOVI", 0, self.sb + layout_base["fdump"])
        l0 = min(info.pow2.values())
        e("MOVI", 3, l0)
        fc, loaded = order[0], None
        exact, shifts = [], []
        for slot, r in enumerate(order):
            m, ex = final_f[r]
            cur = ex
            if slot and m and not direct(final_f[r]):
                while not lo <= cur <= hi:
                    want = (lo + hi) // 2 - cur
                    s = min(POW2_SHIFTS, key=lambda k: abs(want - k))
                    if s != loaded:
                        e("LDF", fc, (3, info.pow2[s] - l0))
                        loaded = s
                    e("FMUL", r, r, fc)
                    cur += s
            e("TMATMUL", 1, 0, 1, r, B)
            e("SV", (0, 8 * vl_obs * slot), 1)
            exact.append(slot > 0 or direct(final_f[r]))
            shifts.append(cur - ex if m else 0)
        e("HALT")
        f_exact = tuple(exact[order.index(r)] for r in range(isa.N_FREGS))
        return w, tuple(order), tuple(shifts), f_exact


# -- public API ---------------------------------------------------------------------------------------

def _state_layout(info: _ImageInfo) -> dict:
    vdump = SCRATCH_BYTES
    fdump = vdump + 8 * isa.N_VREGS * info.vlen
    total = wi.align_up(fdump + 8 * isa.N_FREGS * info.vl_obs, wi.DATA_ALIGN)
    return {"vdump": vdump, "fdump": fdump, "state_bytes": total}


def random_program(seed: int, config: accel.AccelConfig, image: wi.Image) -> FuzzCase:
    """A random program that runs on the golden machine without a fault and within the
    hardware's limits (module docstring), deterministic in (seed, config, image)."""
    info = _info(image, config)
    lay = _state_layout(info)
    rejects: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([int(seed), attempt])
        g = _Gen(rng, config, info, lay["state_bytes"])
        g.prologue()
        limit = config.rom_words - EPILOGUE_RESERVE
        g.body(int(rng.integers(10, 61)), limit)
        body = list(g.words)
        try:
            # run the body (ending on a HALT at the epilogue's first address), build the epilogue
            # from the F values it leaves, then let the same machine run on through the epilogue
            m = _checked_machine(body + [isa.encode("HALT")], image, lay["state_bytes"])
            host = ListHost(g.tokens)
            _run_checked(m, host)
            final_f = tuple(m.F)
            epi, order, shifts, f_exact = g.epilogue(final_f, lay)
            words = body + epi
            if len(words) > config.rom_words:
                raise _Reject(f"{len(words)} words > rom_words {config.rom_words}")
            assert m.pc == len(body)
            _load_rom(m, words)
            _run_checked(m, host)
        except _Reject as e:
            rejects.append(f"attempt {attempt}: {e}")
            continue
        layout = FuzzLayout(info.state_base, lay["state_bytes"], (0, SCRATCH_BYTES), lay["vdump"], info.vlen,
                            lay["fdump"], info.vl_obs, order, shifts)
        return FuzzCase(int(seed), config.name, words, list(g.tokens), lay["state_bytes"], layout, len(body),
                        final_f, f_exact, attempt + 1, tuple(rejects))
    raise RuntimeError(f"sim.fuzz: seed {seed}: no valid program in {MAX_ATTEMPTS} attempts:\n" + "\n".join(rejects))


def run_golden(case: FuzzCase, config: accel.AccelConfig, image: wi.Image) -> Observed:
    """Run a case on golden.machine.GoldenMachine; raises MachineError if it faults or does not
    end with HALT."""
    if len(case.words) > config.rom_words:
        raise ValueError(f"{len(case.words)} words exceed rom_words {config.rom_words}")
    if (image.packing, image.beat_bytes) != (config.packing, config.beat_bytes):
        raise ValueError("image and config disagree on packing / beat_bytes")
    host = ListHost(case.tokens)
    m = _machine(case.words, image, case.state_bytes)
    with _reference_kernels():
        m.run(host)
    if m.halt_reason != "HALT":
        raise MachineError(f"seed {case.seed}: stopped with {m.halt_reason!r}, not HALT")
    return Observed(list(host.outputs), bytes(m.state), case.layout, m.steps, dict(m.profile))


# -- CLI --------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="ecp5", choices=sorted(FUZZ_CONFIGS))
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--count", type=int, default=5, help="number of seeds")
    ap.add_argument("--image-seed", type=int, default=0)
    ap.add_argument("--show", action="store_true", help="print each program's disassembly")
    args = ap.parse_args(argv)
    cfg = fuzz_config(args.config)
    t0 = time.perf_counter()
    img = make_image(cfg, args.image_seed)
    _info(img, cfg).tmm_vls()
    t_img = time.perf_counter() - t0
    executed: collections.Counter[str] = collections.Counter()
    emitted: collections.Counter[str] = collections.Counter()
    t_gen = t_run = 0.0
    steps = 0
    for seed in range(args.seed, args.seed + args.count):
        t1 = time.perf_counter()
        case = random_program(seed, cfg, img)
        t2 = time.perf_counter()
        obs = run_golden(case, cfg, img)
        t3 = time.perf_counter()
        t_gen, t_run, steps = t_gen + t2 - t1, t_run + t3 - t2, steps + obs.steps
        executed.update(obs.profile)
        emitted.update(isa.decode(w).op.mnemonic for w in case.words)
        exact = sum(case.f_exact)
        print(f"seed {seed}: {len(case.words)} words ({case.body_words} prologue+body), {obs.steps} executed, "
              f"{len(case.tokens)} tokens in, {len(obs.tokouts)} out, F exact {exact}/{isa.N_FREGS}, "
              f"attempts {case.attempts}")
        if args.show:
            print(case.description)
    n = max(1, args.count)
    print(f"{args.count} case(s), config {cfg.name}: image {t_img:.2f} s; per case {1e3 * t_gen / n:.1f} ms "
          f"generate (with its validation runs), {1e3 * t_run / n:.1f} ms golden run; {steps} instructions executed")
    print("executed per opcode: " + " ".join(f"{o.mnemonic}={executed[o.mnemonic]}" for o in isa.OPS))
    missing = [o.mnemonic for o in isa.OPS if not executed[o.mnemonic]]
    never = [o.mnemonic for o in isa.OPS if not emitted[o.mnemonic]]
    print(f"opcodes executed {len(isa.OPS) - len(missing)}/{len(isa.OPS)}"
          + (f"; not executed: {' '.join(missing)}" if missing else "")
          + (f"; not emitted: {' '.join(never)}" if never else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
