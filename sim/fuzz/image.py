"""The fuzz weight image: a tiny 2-layer model (fuzz_model) whose arrays are drawn so that the
generator finds valid reads of every kind.

    img = make_image(cfg, seed)      # wi.Image for cfg's packing and beat_bytes, cached

Every matrix has zero-row runs (partial row tiles) and an alternative column geometry with a
padding-clean last column group; PROBE_MATRIX starts with the epilogue's probe tile and PROBE_CODES
with its codes; the gamma and gate tensors of LDV_LAYER hold 48-bit-clean words; layer 0's betas are
the exact powers of two POW2_SHIFTS; the embedding holds bf16 specials and, read as float32, -0.0
and a denormal.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from sim.fuzz.config import LDV_LAYER, POW2_SHIFTS, PROBE_CODES, PROBE_COLS, PROBE_MATRIX
from spec import accel
from spec import numerics as N
from spec import weight_image as wi
from spec.models import ModelConfig


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
