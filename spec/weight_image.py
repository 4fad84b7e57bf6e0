"""Weight image, format 1.0: the one definition of the file that carries a model to the accelerator.

Everything about the format lives here: the preamble, the JSON header, the tensor names, kinds,
order and alignment, the scalars records and the ternary packing (`pack_trits` / `unpack_trits`).
The exporter (sw/export.py) writes through `ImageWriter`; the golden model, the ISA compiler and
the simulators read through `read_image` / `Image`. docs/weight-image.md describes the same
format for people; tests/spec/test_weight_image.py checks that document against this module.

Source of the model parameters: the official HGRNBit code (github ridgerchu/matmulfreellm) as
captured by spec.models.ModelConfig.state_dict_shapes(); the conversions to stored form are
spec.numerics' (ternary_quantize, gamma_block, lower_bounds_from_param, float_to_bf16_bits).

File = preamble (64 bytes) | JSON header (utf-8) | zero padding up to data_offset (a multiple of
4096) | tensors, each at a multiple of tensor_align(beat_bytes) = max(TENSOR_ALIGN, beat_bytes)
from data_offset, zero padding between them and after the last one up to data_len (a multiple of
the same). Every byte is covered by a
crc32 (preamble, JSON, each tensor) or must be zero (padding), so any changed byte is detected.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spec import numerics
from spec.models import ConfigError, ModelConfig

# -- constants of format 1.0 ---------------------------------------------------------------------

MAGIC = b"MMFLIMG\0"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0

#: magic, major, minor, preamble_crc32, json_len, json_crc32, data_offset, data_len, 24 reserved.
PREAMBLE = struct.Struct("<8sHHIIIQQ24x")
PREAMBLE_SIZE = 64
PREAMBLE_CRC_SLICE = slice(12, 16)   # the preamble crc32 is computed with these bytes zeroed
assert PREAMBLE.size == PREAMBLE_SIZE

DATA_ALIGN = 4096      # data_offset is a multiple of this (page aligned: mmap, DMA)
TENSOR_ALIGN = 64      # the least tensor alignment (see tensor_align): a multiple of it from data_offset

#: Trits per byte of each packing.
PACKINGS: dict[str, int] = {"2bit": 4, "1.6bit": 5}
DEFAULT_PACKING = "1.6bit"
DEFAULT_BEAT_BYTES = 64
#: Powers of two from 4 bytes to 4 DRAM lines (one 64-byte line per channel of up to 4 channels).
BEAT_BYTES_ALLOWED = (4, 8, 16, 32, 64, 128, 256)


def tensor_align(beat_bytes: int) -> int:
    """Every tensor starts at a multiple of this from data_offset (data_len too): TENSOR_ALIGN, or
    the beat when it is wider, so that every tensor starts on a memory-beat boundary."""
    return max(TENSOR_ALIGN, beat_bytes)

#: Stored element type of each kind (little-endian). "trits" is packed, see pack_trits.
KIND_DTYPES: dict[str, np.dtype | None] = {
    "trits": None,
    "gamma": np.dtype("<i2"),     # GAMMA mantissas; the exponent is in a scalars record
    "gate": np.dtype("<u4"),      # GATE values in [0, GATE_ONE]
    "bf16": np.dtype("<u2"),      # bfloat16 bit patterns
    "scalars": np.dtype("<u4"),   # SCALARS_WORDS words, fields below
}
KINDS = tuple(KIND_DTYPES)

SCALARS_WORDS = 16

#: The roles of a layer's tensors: role -> tensor suffix (after "layers.{l}."). The roles are the
#: golden model's names (golden.model.Layer fields) and the model compiler's (sw/compile.py), the
#: suffixes the image's; both read them from here. RMSNorm scales (gamma), in file order:
LAYER_GAMMAS: dict[str, str] = {
    "attn_norm": "attn_norm", "i_norm": "attn.i_proj.norm", "f_norm": "attn.f_proj.norm",
    "g_norm_in": "attn.g_proj.norm", "g_norm": "attn.g_norm", "o_norm": "attn.o_proj.norm",
    "mlp_norm": "mlp_norm", "gate_norm": "mlp.gate_proj.norm", "down_norm": "mlp.down_proj.norm",
}
#: The six ternary matrices of a layer, in file order.
LAYER_MATRIX_ROLES: dict[str, str] = {
    "i_proj": "attn.i_proj", "f_proj": "attn.f_proj", "g_proj": "attn.g_proj",
    "o_proj": "attn.o_proj", "gate_proj": "mlp.gate_proj", "down_proj": "mlp.down_proj",
}
#: The forget gate's lower bound (GATE format), after the input BitLinears' norms in the file.
LAYER_GATE = ("lower_bound", "lower_bound")
LAYER_MATRICES = tuple(LAYER_MATRIX_ROLES.values())
_GAMMA_SUFFIXES = tuple(LAYER_GAMMAS.values())
#: A layer's tensors in file order: (suffix, kind). Matrices last.
LAYER_TENSORS: tuple[tuple[str, str], ...] = (
    (("scalars", "scalars"),)
    + tuple((g, "gamma") for g in _GAMMA_SUFFIXES[:4])
    + ((LAYER_GATE[1], "gate"),)
    + tuple((g, "gamma") for g in _GAMMA_SUFFIXES[4:])
    + tuple((m, "trits") for m in LAYER_MATRICES))
#: After the layers: (name, kind).
HEAD_TENSORS: tuple[tuple[str, str], ...] = (
    ("norm", "gamma"), ("lm_head.norm", "gamma"), ("head.scalars", "scalars"), ("lm_head", "trits"))

#: Word i of a layer's "layers.{l}.scalars" record: (field, tensor suffix). "beta" words hold
#: float32 bit patterns; "gamma_exp" words hold int32 in two's complement. Later words are zero.
LAYER_SCALARS: tuple[tuple[str, str], ...] = (
    tuple(("beta", m) for m in LAYER_MATRICES) + tuple(("gamma_exp", g) for g in _GAMMA_SUFFIXES))
#: Word i of the "head.scalars" record (full tensor names). Later words are zero.
HEAD_SCALARS: tuple[tuple[str, str], ...] = (
    ("beta", "lm_head"), ("gamma_exp", "norm"), ("gamma_exp", "lm_head.norm"))
assert len(LAYER_SCALARS) < SCALARS_WORDS and len(HEAD_SCALARS) < SCALARS_WORDS


class ImageError(ValueError):
    """A file that is not a valid weight image of this format and numerics version."""


def align_up(n: int, a: int) -> int:
    return -(-n // a) * a


# -- ternary packing -------------------------------------------------------------------------------
#
# A matrix [rows, cols] (rows = out_features) is cut into row tiles of B = beat_bytes rows and
# column groups of T trits (T = PACKINGS[packing]); the last tile and group are zero-padded.
# Byte (r, g) holds W[r, g*T + j], j = 0..T-1; byte order: tile, then group, then the B rows of
# the tile. One beat = one column group of one row tile.
#   2bit:   trit j in bits [2j+1:2j]: 0 -> 0b00, +1 -> 0b01, -1 -> 0b11 (0b10 is invalid)
#   1.6bit: byte = sum_j d_j * 3**j with d = 0 for 0, 1 for +1, 2 for -1 (bytes > 242 invalid)

_RADIX = {"2bit": 4, "1.6bit": 3}


def check_packing(packing: str, beat_bytes: int) -> None:
    if packing not in PACKINGS:
        raise ValueError(f"unknown packing {packing!r}; valid: {', '.join(PACKINGS)}")
    if beat_bytes not in BEAT_BYTES_ALLOWED or isinstance(beat_bytes, bool):
        raise ValueError(f"beat_bytes must be one of {', '.join(map(str, BEAT_BYTES_ALLOWED))}, "
                         f"got {beat_bytes!r}")


def packed_shape(rows: int, cols: int, packing: str, beat_bytes: int) -> tuple[int, int, int]:
    """(row tiles, column groups, beat_bytes): the packed bytes as a C-order 3-D array."""
    t = PACKINGS[packing]
    return -(-rows // beat_bytes), -(-cols // t), beat_bytes


def packed_nbytes(rows: int, cols: int, packing: str, beat_bytes: int) -> int:
    tiles, groups, b = packed_shape(rows, cols, packing, beat_bytes)
    return tiles * groups * b


def pack_trits(trits: np.ndarray, packing: str, beat_bytes: int) -> np.ndarray:
    """int8 trits [rows, cols] in {-1, 0, 1} -> packed bytes (uint8, 1-D), layout above."""
    check_packing(packing, beat_bytes)
    t = np.asarray(trits)
    if t.ndim != 2 or t.dtype.kind not in "iu":
        raise ValueError(f"pack_trits expects a 2-D integer array, got {t.dtype} {t.shape}")
    if t.size and (t.min() < -1 or t.max() > 1):
        raise ValueError("pack_trits: values outside {-1, 0, 1}")
    rows, cols = t.shape
    tiles, groups, b = packed_shape(rows, cols, packing, beat_bytes)
    per = PACKINGS[packing]
    d = np.zeros((tiles * b, groups * per), np.uint8)
    d[:rows, :cols] = t.astype(np.int8).view(np.uint8) & 3   # 0 -> 0, +1 -> 1, -1 -> 3
    if packing == "1.6bit":
        d -= d >> 1                                           # -1 -> 2
    d4 = d.reshape(tiles, b, groups, per)
    acc = d4[..., 0].copy()
    radix = _RADIX[packing]
    for j in range(1, per):
        acc += d4[..., j] * np.uint8(radix ** j)
    return np.ascontiguousarray(acc.transpose(0, 2, 1)).reshape(-1)


def _decode_tables(packing: str) -> tuple[np.ndarray, np.ndarray]:
    """(trits of every byte value: int8 [256, 8], valid: bool [256])."""
    per, radix = PACKINGS[packing], _RADIX[packing]
    digit_to_trit = {"2bit": (0, 1, 0, -1), "1.6bit": (0, 1, -1)}[packing]
    lut = np.zeros((256, 8), np.int8)
    valid = np.ones(256, bool)
    for v in range(256):
        x = v
        for j in range(per):
            dig = x % radix
            x //= radix
            lut[v, j] = digit_to_trit[dig]
            if packing == "2bit" and dig == 2:
                valid[v] = False
        if x:                       # 1.6bit: v > 3**5 - 1 = 242
            valid[v] = False
    lut[~valid] = 0
    return lut, valid


_TABLES = {p: _decode_tables(p) for p in PACKINGS}


def decode_table(packing: str) -> tuple[np.ndarray, np.ndarray]:
    """The trit code of `packing` as a table: (trits of every byte value: int8 [256, T], valid:
    bool [256]); an invalid byte decodes to T zero trits. The hardware's decoder ROM is built from
    it (hw.core.tmac)."""
    check_packing(packing, DEFAULT_BEAT_BYTES)
    lut, valid = _TABLES[packing]
    return lut[:, :PACKINGS[packing]].copy(), valid.copy()
_LUT64 = {p: np.ascontiguousarray(_TABLES[p][0]).view("<u8").reshape(256) for p in PACKINGS}


def check_trit_bytes(data: np.ndarray, rows: int, cols: int, packing: str,
                     beat_bytes: int) -> str | None:
    """None if `data` is a valid packed [rows, cols] matrix, else why not (byte offsets are
    relative to the start of `data`): a code that is not a trit pattern, or a non-zero padding
    trit (padded rows of the last tile, padded columns of the last group)."""
    check_packing(packing, beat_bytes)
    data = np.asarray(data, np.uint8).reshape(-1)
    shape = packed_shape(rows, cols, packing, beat_bytes)
    if data.size != shape[0] * shape[1] * shape[2]:
        return f"{data.size} bytes, a packed [{rows}, {cols}] matrix has {shape[0] * shape[1] * shape[2]}"
    valid = _TABLES[packing][1]
    chunk = 1 << 22
    for start in range(0, data.size, chunk):
        part = data[start:start + chunk]
        ok = valid[part]
        if not ok.all():
            i = start + int(np.argmin(ok))
            return f"invalid trit code 0x{int(data[i]):02x} at byte {i}"
    tiles, groups, b = shape
    d3 = data.reshape(shape)
    per, radix = PACKINGS[packing], _RADIX[packing]
    rem_rows, rem_cols = rows % b, cols % per
    if rem_rows:
        pad = d3[-1, :, rem_rows:]
        if pad.any():
            g, r = np.argwhere(pad)[0]
            return f"non-zero padding row {tiles * b - b + rem_rows + int(r)} at byte " \
                   f"{((tiles - 1) * groups + int(g)) * b + rem_rows + int(r)}"
    if rem_cols:
        last = d3[:, -1, :]
        bad = last >= radix ** rem_cols
        if bad.any():
            tile, r = np.argwhere(bad)[0]
            return f"non-zero padding column in row {int(tile) * b + int(r)} at byte " \
                   f"{(int(tile) * groups + groups - 1) * b + int(r)}"
    return None


def unpack_trits(data: np.ndarray, rows: int, cols: int, packing: str, beat_bytes: int) -> np.ndarray:
    """Packed bytes -> int8 trits [rows, cols]. Raises ImageError on an invalid code or a
    non-zero padding trit (check_trit_bytes)."""
    problem = check_trit_bytes(data, rows, cols, packing, beat_bytes)
    if problem:
        raise ImageError(problem)
    tiles, groups, b = packed_shape(rows, cols, packing, beat_bytes)
    per = PACKINGS[packing]
    d3 = np.ascontiguousarray(data, np.uint8).reshape(tiles, groups, b)
    words = _LUT64[packing][d3]                     # [tile, group, row]: 8 trit slots, T used
    full = words.view(np.int8).reshape(tiles, groups, b, 8)[..., :per].transpose(0, 2, 1, 3)
    full = full.reshape(tiles * b, groups * per)     # [row, column]
    return np.ascontiguousarray(full[:rows, :cols])


# -- layout ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TensorSpec:
    name: str
    kind: str
    shape: tuple[int, ...]
    offset: int          # from data_offset
    nbytes: int

    def descriptor(self, crc32: int) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape),
                "offset": self.offset, "nbytes": self.nbytes, "crc32": crc32}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where every tensor of a model goes, for one packing and beat size."""
    config: ModelConfig
    packing: str
    beat_bytes: int
    tensors: tuple[TensorSpec, ...]
    data_len: int
    layer_stride: int    # bytes from layer l's first tensor to layer l+1's
    #: (field, tensor name) -> (scalars record name, word index), fields "beta" / "gamma_exp"
    scalar_slots: Mapping[tuple[str, str], tuple[str, int]]

    @functools.cached_property
    def by_name(self) -> dict[str, TensorSpec]:
        return {t.name: t for t in self.tensors}


def _shape_of(config: ModelConfig, suffix: str, kind: str) -> tuple[int, ...]:
    d, inter = config.hidden_size, config.intermediate_size
    if kind == "scalars":
        return (SCALARS_WORDS,)
    matrices = {"attn.i_proj": (d, d), "attn.f_proj": (d, d), "attn.g_proj": (d, d),
                "attn.o_proj": (d, d), "mlp.gate_proj": (2 * inter, d), "mlp.down_proj": (d, inter),
                "lm_head": (config.vocab_size, d)}
    if kind == "trits":
        return matrices[suffix]
    if suffix.endswith(".norm") and suffix.removesuffix(".norm") in matrices:
        return (matrices[suffix.removesuffix(".norm")][1],)   # a BitLinear's own norm: in_features
    return (d,)


def _nbytes(kind: str, shape: tuple[int, ...], packing: str, beat_bytes: int) -> int:
    if kind == "trits":
        return packed_nbytes(shape[0], shape[1], packing, beat_bytes)
    return int(np.prod(shape)) * KIND_DTYPES[kind].itemsize


@functools.lru_cache(maxsize=32)
def layout(config: ModelConfig, packing: str = DEFAULT_PACKING,
           beat_bytes: int = DEFAULT_BEAT_BYTES) -> Layout:
    """The tensor table of format 1.0: names, kinds, shapes, offsets and sizes, in file order."""
    check_packing(packing, beat_bytes)
    entries: list[tuple[str, str, tuple[int, ...]]] = [
        ("embeddings", "bf16", (config.vocab_size, config.hidden_size))]
    slots: dict[tuple[str, str], tuple[str, int]] = {}
    for layer in range(config.num_hidden_layers):
        p = f"layers.{layer}."
        entries += [(p + s, k, _shape_of(config, s, k)) for s, k in LAYER_TENSORS]
        for i, (field, s) in enumerate(LAYER_SCALARS):
            slots[(field, p + s)] = (p + "scalars", i)
    entries += [(n, k, _shape_of(config, n, k)) for n, k in HEAD_TENSORS]
    for i, (field, n) in enumerate(HEAD_SCALARS):
        slots[(field, n)] = ("head.scalars", i)
    specs, pos = [], 0
    for name, kind, shape in entries:
        nb = _nbytes(kind, shape, packing, beat_bytes)
        specs.append(TensorSpec(name, kind, shape, pos, nb))
        pos = align_up(pos + nb, tensor_align(beat_bytes))
    by = {s.name: s for s in specs}
    n_layers = config.num_hidden_layers
    stride = (by["norm"].offset - by["layers.0.scalars"].offset) // n_layers
    # the hardware loops over layers with a base-address register: layer l = layer 0 + l * stride
    assert all(by[f"layers.{layer}.{suffix}"].offset == by[f"layers.0.{suffix}"].offset + layer * stride
               for layer in range(n_layers) for suffix, _ in LAYER_TENSORS)
    return Layout(config, packing, beat_bytes, tuple(specs), pos, stride, slots)


def scalars_record(fields: tuple[tuple[str, str], ...], prefix: str,
                   betas: Mapping[str, float], exps: Mapping[str, int]) -> np.ndarray:
    """Build a scalars record (uint32 [16]) from betas (float32, by matrix name) and gamma
    exponents (int, by vector name); names are `prefix + suffix` of `fields`."""
    rec = np.zeros(SCALARS_WORDS, np.uint32)
    for i, (field, s) in enumerate(fields):
        if field == "beta":
            rec[i] = np.array(betas[prefix + s], np.float32).view(np.uint32)
        else:
            rec[i] = np.array(exps[prefix + s], np.int32).view(np.uint32)
    return rec


# -- writing ---------------------------------------------------------------------------------------

def _header_json(config: ModelConfig, packing: str, beat_bytes: int, source: str,
                 tensors: list[dict[str, Any]]) -> bytes:
    model = dict(config.to_hf_dict(), name=config.name)
    head = {"model": model, "numerics_version": numerics.NUMERICS_VERSION, "packing": packing,
            "beat_bytes": beat_bytes, "source": source}
    # one tensor per line: readable with `head -c`, and still plain JSON
    lines = ",\n".join("  " + json.dumps(t) for t in tensors)
    text = json.dumps(head, indent=1)[:-2] + ',\n "tensors": [\n' + lines + "\n ]\n}\n"
    return text.encode("utf-8")


def encode_tensor(spec: TensorSpec, array: np.ndarray, packing: str, beat_bytes: int) -> np.ndarray:
    """A tensor in its decoded form (what Image.array returns) -> its stored bytes (uint8)."""
    a = np.asarray(array)
    if tuple(a.shape) != spec.shape:
        raise ValueError(f"{spec.name}: shape {tuple(a.shape)}, the layout wants {spec.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"{spec.name}: {spec.kind} needs an integer array, got {a.dtype}")
    if spec.kind == "trits":
        return pack_trits(a, packing, beat_bytes)
    dt = KIND_DTYPES[spec.kind]
    lo, hi = np.iinfo(dt).min, np.iinfo(dt).max
    if spec.kind == "gate":
        hi = numerics.GATE_ONE
    if a.size and (int(a.min()) < lo or int(a.max()) > hi):
        raise ValueError(f"{spec.name}: values outside [{lo}, {hi}] for kind {spec.kind}")
    return np.ascontiguousarray(a.astype(dt)).view(np.uint8).reshape(-1)


class ImageWriter:
    """Streams an image to disk, tensor by tensor in layout order, so that an exporter never
    holds more than one layer at once. The file appears under `path` only when `close()` has
    written a complete image (it is written to `path + ".partial"` first).

        with ImageWriter(path, config, packing="1.6bit", source="...") as w:
            for spec in w.layout.tensors:
                w.add(spec.name, array)          # decoded form, as Image.array returns it
    """

    def __init__(self, path: str | os.PathLike, config: ModelConfig, *, packing: str = DEFAULT_PACKING,
                 beat_bytes: int = DEFAULT_BEAT_BYTES, source: str = ""):
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(f"{self.path} is a directory, not an image path")
        self.layout = layout(config, packing, beat_bytes)
        self.config, self.packing, self.beat_bytes, self.source = config, packing, beat_bytes, source
        # Reserve room for the JSON with every crc at its widest; readers accept any data_offset
        # that is a multiple of DATA_ALIGN at or after the end of the JSON.
        widest = _header_json(config, packing, beat_bytes, source,
                              [t.descriptor(0xFFFFFFFF) for t in self.layout.tensors])
        self.data_offset = align_up(PREAMBLE_SIZE + len(widest), DATA_ALIGN)
        self._crcs: list[int] = []
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self._tmp, "wb")
        self._f.write(bytes(self.data_offset))     # rewritten by close()
        self._pos = 0                              # bytes of data written

    @property
    def next_name(self) -> str | None:
        n = len(self._crcs)
        return self.layout.tensors[n].name if n < len(self.layout.tensors) else None

    def add(self, name: str, array: np.ndarray) -> None:
        n = len(self._crcs)
        if n >= len(self.layout.tensors):
            raise ValueError(f"{name}: every tensor of the layout is already written")
        spec = self.layout.tensors[n]
        if name != spec.name:
            raise ValueError(f"tensors must be added in layout order: got {name!r}, expected {spec.name!r}")
        data = encode_tensor(spec, array, self.packing, self.beat_bytes)
        assert data.size == spec.nbytes
        self._f.write(bytes(spec.offset - self._pos))
        self._f.write(memoryview(data))
        self._pos = spec.offset + spec.nbytes
        self._crcs.append(zlib.crc32(memoryview(data)))

    def close(self) -> Path:
        if self._f.closed:
            return self.path
        if self.next_name is not None:
            self.abort()
            raise ValueError(f"image incomplete: {self.next_name!r} and later tensors were not added")
        self._f.write(bytes(self.layout.data_len - self._pos))
        text = _header_json(self.config, self.packing, self.beat_bytes, self.source,
                            [t.descriptor(c) for t, c in zip(self.layout.tensors, self._crcs, strict=True)])
        assert PREAMBLE_SIZE + len(text) <= self.data_offset
        pre = bytearray(PREAMBLE.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, 0, len(text), zlib.crc32(text),
                                      self.data_offset, self.layout.data_len))
        pre[PREAMBLE_CRC_SLICE] = struct.pack("<I", zlib.crc32(pre))
        self._f.seek(0)
        self._f.write(bytes(pre) + text)
        self._f.close()
        try:
            os.replace(self._tmp, self.path)
        except OSError:
            self._tmp.unlink(missing_ok=True)
            raise
        return self.path

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ImageWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_image(path: str | os.PathLike, config: ModelConfig,
                arrays: Mapping[str, np.ndarray] | Callable[[str], np.ndarray], *,
                packing: str = DEFAULT_PACKING, beat_bytes: int = DEFAULT_BEAT_BYTES,
                source: str = "") -> Path:
    """Write a whole image from decoded arrays (a mapping or a function of the tensor name)."""
    get = arrays if callable(arrays) else arrays.__getitem__
    with ImageWriter(path, config, packing=packing, beat_bytes=beat_bytes, source=source) as w:
        for spec in w.layout.tensors:
            w.add(spec.name, get(spec.name))
    return w.path


# -- reading ---------------------------------------------------------------------------------------

class Image:
    """A weight image opened for reading (memory-mapped). Use `read_image(path)`.

    img.model, img.packing, img.beat_bytes, img.header (the JSON dict), img.names(),
    img.offset(name) (absolute byte offset in the file), img.nbytes(name), img.raw(name) (uint8
    view), img.array(name) (decoded), img.beta(matrix), img.gamma_exp(vector), img.file_bytes().
    """

    def __init__(self, buf: np.ndarray, label: str = "<image>", verify: bool = True):
        self._buf = buf
        self.label = label
        try:
            self._parse(verify)
        except ImageError as e:
            raise ImageError(f"{label}: {e}") from None

    @classmethod
    def from_buffer(cls, data: bytes | bytearray | memoryview | np.ndarray, label: str = "<buffer>",
                    verify: bool = True) -> Image:
        return cls(np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray)
                   else data.view(np.uint8).reshape(-1), label, verify)

    # -- parsing ---------------------------------------------------------------------------------
    def _parse(self, verify: bool) -> None:
        buf = self._buf
        n = buf.size
        head = bytes(buf[:PREAMBLE_SIZE])
        if head[:len(MAGIC)] != MAGIC:
            if n < len(MAGIC) and MAGIC.startswith(head):
                raise ImageError(f"truncated: {n} bytes, shorter than the {PREAMBLE_SIZE}-byte preamble")
            raise ImageError(f"not a weight image (magic {head[:8]!r}, expected {MAGIC!r})")
        if n >= 12:
            major, minor = struct.unpack_from("<HH", head, 8)
            if major != FORMAT_MAJOR:
                raise ImageError(f"image format {major}.{minor}, this build reads {FORMAT_MAJOR}.x")
        if n < PREAMBLE_SIZE:
            raise ImageError(f"truncated: {n} bytes, shorter than the {PREAMBLE_SIZE}-byte preamble")
        _, major, minor, pcrc, json_len, json_crc, data_offset, data_len = PREAMBLE.unpack(head)
        zeroed = bytearray(head)
        zeroed[PREAMBLE_CRC_SLICE] = bytes(4)
        if zlib.crc32(zeroed) != pcrc:
            raise ImageError(f"preamble crc32 mismatch (stored 0x{pcrc:08x}, computed "
                             f"0x{zlib.crc32(zeroed):08x}): the file is corrupt")
        if any(head[40:]):
            raise ImageError("reserved preamble bytes 40..63 are not zero")
        if data_offset % DATA_ALIGN or data_offset < PREAMBLE_SIZE + json_len:
            raise ImageError(f"malformed preamble: data_offset {data_offset} is not a multiple of "
                             f"{DATA_ALIGN} at or after the JSON end {PREAMBLE_SIZE + json_len}")
        if data_len % TENSOR_ALIGN:
            raise ImageError(f"malformed preamble: data_len {data_len} is not a multiple of {TENSOR_ALIGN}")
        expected = data_offset + data_len
        if n < expected:
            raise ImageError(f"truncated: expected {expected} bytes, the file has {n}")
        if n > expected:
            raise ImageError(f"{n - expected} trailing bytes: expected {expected} bytes, the file has {n}")
        jbytes = buf[PREAMBLE_SIZE:PREAMBLE_SIZE + json_len]
        if zlib.crc32(memoryview(jbytes)) != json_crc:
            raise ImageError(f"crc32 mismatch in the JSON header (stored 0x{json_crc:08x}, "
                             f"computed 0x{zlib.crc32(memoryview(jbytes)):08x})")
        try:
            header = json.loads(bytes(jbytes).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ImageError(f"malformed JSON header: {e}") from None
        if not isinstance(header, dict):
            raise ImageError("malformed JSON header: not an object")
        nv = header.get("numerics_version")
        if nv != numerics.NUMERICS_VERSION or isinstance(nv, bool):
            raise ImageError(f"numerics version {nv!r}, this build implements version "
                             f"{numerics.NUMERICS_VERSION} (re-export the image)")
        for key, typ in (("model", dict), ("packing", str), ("beat_bytes", int), ("source", str),
                         ("tensors", list)):
            if not isinstance(header.get(key), typ) or isinstance(header.get(key), bool):
                raise ImageError(f"malformed JSON header: {key!r} missing or not a {typ.__name__}")
        try:
            check_packing(header["packing"], header["beat_bytes"])
        except ValueError as e:
            raise ImageError(f"malformed JSON header: {e}") from None
        try:
            mdict = header["model"]
            name = mdict.get("name", "custom")
            model = ModelConfig.from_hf_dict(mdict, name=name if isinstance(name, str) else "custom")
        except (ConfigError, TypeError, ValueError) as e:
            raise ImageError(f"malformed JSON header: model: {e}") from None
        n_expected = 1 + len(LAYER_TENSORS) * model.num_hidden_layers + len(HEAD_TENSORS)
        if len(header["tensors"]) != n_expected:
            raise ImageError(f"tensor table has {len(header['tensors'])} entries, the format "
                             f"{FORMAT_MAJOR}.{FORMAT_MINOR} layout of this model has {n_expected}")
        try:
            lay = layout(model, header["packing"], header["beat_bytes"])
        except TypeError as e:    # e.g. an unhashable field value
            raise ImageError(f"malformed JSON header: model: {e}") from None
        crcs = self._check_descriptors(header["tensors"], lay, data_len)
        self.header, self.model, self.layout = header, model, lay
        self.packing, self.beat_bytes = header["packing"], header["beat_bytes"]
        self.format_version = (major, minor)
        self.data_offset, self.data_len = data_offset, data_len
        self._crcs = crcs
        self._check_padding(PREAMBLE_SIZE + json_len)
        if verify:
            self._verify()

    @staticmethod
    def _check_descriptors(tensors: list[Any], lay: Layout, data_len: int) -> list[int]:
        crcs = []
        for i, t in enumerate(tensors):
            if not isinstance(t, dict):
                raise ImageError(f"malformed JSON header: tensors[{i}] is not an object")
            name = t.get("name")
            label = f"tensor {name!r}" if isinstance(name, str) else f"tensors[{i}]"
            if not isinstance(name, str):
                raise ImageError(f"malformed JSON header: {label} has no name")
            kind = t.get("kind")
            if kind not in KINDS:
                raise ImageError(f"{label}: unknown kind {kind!r} (known: {', '.join(KINDS)})")
            for key in ("offset", "nbytes", "crc32"):
                v = t.get(key)
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ImageError(f"malformed JSON header: {label}: {key} is not a non-negative integer")
            if t["crc32"] > 0xFFFFFFFF:
                raise ImageError(f"malformed JSON header: {label}: crc32 {t['crc32']} does not fit 32 bits")
            shape = t.get("shape")
            if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool)
                                                    for s in shape)):
                raise ImageError(f"malformed JSON header: {label}: shape is not a list of integers")
            if t["offset"] + t["nbytes"] > data_len:
                raise ImageError(f"{label}: descriptor out of bounds (offset {t['offset']} + nbytes "
                                 f"{t['nbytes']} > data_len {data_len})")
            crcs.append(t["crc32"])
        if len(tensors) != len(lay.tensors):
            raise ImageError(f"tensor table has {len(tensors)} entries, the format {FORMAT_MAJOR}."
                             f"{FORMAT_MINOR} layout of this model has {len(lay.tensors)}")
        for i, (t, spec) in enumerate(zip(tensors, lay.tensors, strict=True)):
            want = spec.descriptor(t["crc32"])
            if t != want:
                raise ImageError(f"tensor table entry {i} is {json.dumps(t)}, the format layout "
                                 f"wants {json.dumps(want)}")
        if data_len != lay.data_len:
            raise ImageError(f"data_len {data_len}, the layout of this model needs {lay.data_len}")
        return crcs

    def _check_padding(self, json_end: int) -> None:
        gaps = [(json_end, self.data_offset, "after the JSON header")]
        pos = 0
        for spec in self.layout.tensors:
            gaps.append((self.data_offset + pos, self.data_offset + spec.offset,
                         f"before tensor {spec.name!r}"))
            pos = spec.offset + spec.nbytes
        gaps.append((self.data_offset + pos, self.data_offset + self.data_len, "after the last tensor"))
        for a, b, where in gaps:
            if b > a:
                seg = self._buf[a:b]
                if seg.any():
                    raise ImageError(f"non-zero padding byte at offset {a + int(np.argmax(seg != 0))} "
                                     f"({where})")

    def verify(self) -> None:
        """Check every tensor's crc32 and that trits, gates and scalars hold valid values
        (done on open unless read_image(..., verify=False))."""
        try:
            self._verify()
        except ImageError as e:
            raise ImageError(f"{self.label}: {e}") from None

    def _verify(self) -> None:
        for spec, crc in zip(self.layout.tensors, self._crcs, strict=True):
            got = zlib.crc32(memoryview(self.raw(spec.name)))
            if got != crc:
                raise ImageError(f"crc32 mismatch in tensor {spec.name!r} (stored 0x{crc:08x}, "
                                 f"computed 0x{got:08x})")
        for spec in self.layout.tensors:
            self._check_values(spec)

    def _check_values(self, spec: TensorSpec) -> None:
        if spec.kind == "trits":
            problem = check_trit_bytes(self.raw(spec.name), *spec.shape, self.packing, self.beat_bytes)
            if problem:
                raise ImageError(f"tensor {spec.name!r}: {problem}")
        elif spec.kind == "gate":
            a = self.array(spec.name)
            if a.size and int(a.max()) > numerics.GATE_ONE:
                raise ImageError(f"tensor {spec.name!r}: gate value above GATE_ONE")
        elif spec.kind == "scalars":
            fields = HEAD_SCALARS if spec.name == "head.scalars" else LAYER_SCALARS
            rec = self.array(spec.name)
            if rec[len(fields):].any():
                raise ImageError(f"tensor {spec.name!r}: reserved scalars words are not zero")
            betas = rec[[i for i, (f, _) in enumerate(fields) if f == "beta"]].view(np.float32)
            if not (np.all(np.isfinite(betas)) and np.all(betas > 0)):
                raise ImageError(f"tensor {spec.name!r}: a beta is not a positive finite float32")

    # -- API --------------------------------------------------------------------------------------
    def _spec(self, name: str) -> TensorSpec:
        try:
            return self.layout.by_name[name]
        except KeyError:
            raise KeyError(f"no tensor {name!r} in this image (see Image.names())") from None

    def names(self) -> list[str]:
        return [t.name for t in self.layout.tensors]

    def kind(self, name: str) -> str:
        return self._spec(name).kind

    def shape(self, name: str) -> tuple[int, ...]:
        return self._spec(name).shape

    def offset(self, name: str) -> int:
        """Absolute byte offset of the tensor in the file (= in a DRAM loaded with file_bytes())."""
        return self.data_offset + self._spec(name).offset

    def nbytes(self, name: str) -> int:
        return self._spec(name).nbytes

    @property
    def layer_stride(self) -> int:
        """Bytes between the same tensor of consecutive layers (constant by construction)."""
        return self.layout.layer_stride

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of a tensor (read-only uint8 view of the file)."""
        s = self._spec(name)
        a = self.data_offset + s.offset
        return self._buf[a:a + s.nbytes]

    def array(self, name: str) -> np.ndarray:
        """Decoded tensor: trits -> int8 [rows, cols]; gamma -> int16 [n]; gate -> uint32 [n];
        bf16 -> uint16 bit patterns [rows, cols]; scalars -> uint32 [16]."""
        s = self._spec(name)
        if s.kind == "trits":
            try:
                return unpack_trits(self.raw(name), *s.shape, self.packing, self.beat_bytes)
            except ImageError as e:
                raise ImageError(f"{self.label}: tensor {name!r}: {e}") from None
        dt = KIND_DTYPES[s.kind]
        return self.raw(name).view(dt).reshape(s.shape).astype(dt.newbyteorder("="), copy=False)

    def _scalar(self, field: str, name: str) -> np.uint32:
        try:
            rec, i = self.layout.scalar_slots[(field, name)]
        except KeyError:
            what = "ternary matrix" if field == "beta" else "gamma vector"
            raise KeyError(f"{name!r} is not a {what} of this image") from None
        return self.array(rec)[i]

    def beta(self, matrix_name: str) -> np.float32:
        """The float32 beta of a ternary matrix (e.g. "layers.3.mlp.down_proj", "lm_head")."""
        return np.array(self._scalar("beta", matrix_name), np.uint32).view(np.float32)[()]

    def gamma_exp(self, vector_name: str) -> int:
        """The exponent of a gamma vector: value = mantissa * 2**-exp."""
        return int(np.array(self._scalar("gamma_exp", vector_name), np.uint32).view(np.int32))

    def file_bytes(self) -> np.ndarray:
        """The whole image as uint8 (read-only), e.g. to load a simulated DRAM at address 0."""
        return self._buf

    def tensors(self) -> Iterator[TensorSpec]:
        return iter(self.layout.tensors)

    def __repr__(self) -> str:
        return (f"<Image {self.label}: {self.model.name}, {self.packing}, beat {self.beat_bytes}, "
                f"{self._buf.size} bytes>")


def read_image(path: str | os.PathLike, verify: bool = True) -> Image:
    """Open and check a weight image. Raises ImageError (one line, naming the file) for anything
    that is not a valid image of format 1.x with this build's numerics version. verify=False
    skips the tensor crcs and value checks (the preamble, JSON, layout and padding are always
    checked)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size == 0:
            buf = np.zeros(0, np.uint8)
        else:
            buf = np.memmap(path, dtype=np.uint8, mode="r")
    except OSError as e:
        raise ImageError(f"{path}: cannot open ({e.strerror or e})") from None
    return Image(buf, str(path), verify)
