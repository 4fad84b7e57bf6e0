"""Weight image format 1.0 (spec/weight_image.py) and its document (docs/weight-image.md).

Vectors: the packing example is worked by hand in docs/weight-image.md ("Byte-level example");
every other image here is built from seeded random decoded arrays (numpy default_rng), so these
tests need neither torch nor a checkpoint. The exporter's conversions are tested in
tests/sw/test_export.py.
"""
from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spec import numerics
from spec import weight_image as wi
from spec.models import PRESETS, ModelConfig

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "weight-image.md"
TINY = PRESETS["tiny"]
#: Sizes that are multiples of neither 64 nor 5: padding between tensors, padded rows and columns.
ODD = ModelConfig(vocab_size=40, hidden_size=40, num_hidden_layers=3, intermediate_size=72, name="odd")


# -- a deliberately naive packer, element by element, straight from the document's words --------

def naive_pack(w: np.ndarray, packing: str, beat: int) -> bytes:
    rows, cols = w.shape
    per = {"2bit": 4, "1.6bit": 5}[packing]
    tiles, groups = -(-rows // beat), -(-cols // per)
    out = bytearray()
    for tile in range(tiles):
        for g in range(groups):
            for r in range(tile * beat, tile * beat + beat):
                byte = 0
                for j in range(per):
                    c = g * per + j
                    t = int(w[r, c]) if r < rows and c < cols else 0
                    if packing == "2bit":
                        byte |= {0: 0b00, 1: 0b01, -1: 0b11}[t] << (2 * j)
                    else:
                        byte += {0: 0, 1: 1, -1: 2}[t] * 3 ** j
                out.append(byte)
    return bytes(out)


@settings(max_examples=150, deadline=None)
@given(rows=st.integers(1, 200), cols=st.integers(1, 50), beat=st.sampled_from([16, 32, 64, 128, 256]),
       packing=st.sampled_from(["2bit", "1.6bit"]), seed=st.integers(0, 2**32 - 1),
       density=st.sampled_from([0.0, 0.5, 1.0]))
def test_pack_matches_naive_and_round_trips(rows, cols, beat, packing, seed, density):
    rng = np.random.default_rng(seed)
    w = (rng.integers(-1, 2, (rows, cols)) * (rng.random((rows, cols)) < density)).astype(np.int8)
    packed = wi.pack_trits(w, packing, beat)
    assert packed.dtype == np.uint8 and packed.size == wi.packed_nbytes(rows, cols, packing, beat)
    assert packed.tobytes() == naive_pack(w, packing, beat)
    back = wi.unpack_trits(packed, rows, cols, packing, beat)
    assert back.dtype == np.int8 and back.shape == (rows, cols)
    np.testing.assert_array_equal(back, w)


# -- the byte-level example of the document ------------------------------------------------------

EXAMPLE_W = np.array([[1, -1, 0, 1, 1, -1, 0],
                      [0, 0, 1, -1, -1, 1, 1],
                      [-1, -1, -1, -1, 0, 0, 0],
                      [1, 1, 1, 1, 1, 1, 1],
                      [0, 1, 0, -1, 1, 0, -1]], np.int8)
EXAMPLE_BYTES = {  # worked by hand in the document
    "2bit": "4d d0 ff 55 0d 17 00 15 c4 00 00 00 31 00 00 00",
    "1.6bit": "73 e1 50 79 02 04 00 04 8a 00 00 00 06 00 00 00",
}


@pytest.mark.parametrize("packing", ["2bit", "1.6bit"])
def test_packing_example_exact_bytes(packing):
    assert wi.pack_trits(EXAMPLE_W, packing, 4).tobytes() == bytes.fromhex(EXAMPLE_BYTES[packing])
    np.testing.assert_array_equal(
        wi.unpack_trits(np.frombuffer(bytes.fromhex(EXAMPLE_BYTES[packing]), np.uint8), 5, 7, packing, 4),
        EXAMPLE_W)


def test_document_shows_the_same_example():
    text = DOC.read_text()
    for packing, hexes in EXAMPLE_BYTES.items():
        assert re.search(rf"^{re.escape(packing)}, beat_bytes 4: +{hexes}$", text, re.M), packing
    block = re.search(r"^W = (\[\[.*?\]\])$", text, re.M | re.S)
    assert block, "the example matrix W is missing from the document"
    np.testing.assert_array_equal(np.array(json.loads(block.group(1).replace("\n", " "))), EXAMPLE_W)


@pytest.mark.parametrize("packing,code", [("2bit", 0b10), ("2bit", 0b10 << 6), ("1.6bit", 243),
                                          ("1.6bit", 255)])
def test_unpack_rejects_invalid_trit_codes(packing, code):
    data = np.zeros(wi.packed_nbytes(4, 8, packing, 4), np.uint8)
    data[1] = code
    with pytest.raises(wi.ImageError, match="invalid trit code"):
        wi.unpack_trits(data, 4, 8, packing, 4)


@pytest.mark.parametrize("packing", ["2bit", "1.6bit"])
def test_unpack_rejects_nonzero_padding_trits(packing):
    good = wi.pack_trits(EXAMPLE_W, packing, 4)
    pad_row = good.copy()
    pad_row[8 + 1] = 1                   # tile 1, group 0, row 5 (rows = 5)
    pad_col = good.copy()
    pad_col[4] += {"2bit": 0b01 << 6, "1.6bit": 3 ** 2}[packing]   # row 0, group 1: a padded trit = +1
    for bad in (pad_row, pad_col):
        with pytest.raises(wi.ImageError, match="padding"):
            wi.unpack_trits(bad, 5, 7, packing, 4)


def test_pack_rejects_non_trits_and_bad_parameters():
    with pytest.raises(ValueError, match="outside"):
        wi.pack_trits(np.array([[2]], np.int8), "2bit", 16)
    with pytest.raises(ValueError, match="packing"):
        wi.pack_trits(EXAMPLE_W, "3bit", 16)
    with pytest.raises(ValueError, match="beat_bytes"):
        wi.pack_trits(EXAMPLE_W, "2bit", 48)


# -- layout --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("packing", ["2bit", "1.6bit"])
@pytest.mark.parametrize("beat", [16, 64, 256])
def test_layout_order_alignment_and_constant_layer_stride(name, packing, beat):
    cfg = PRESETS[name]
    lay = wi.layout(cfg, packing, beat)
    names = [t.name for t in lay.tensors]
    expected = ["embeddings"]
    for layer in range(cfg.num_hidden_layers):
        expected += [f"layers.{layer}.{s}" for s, _ in wi.LAYER_TENSORS]
    expected += [n for n, _ in wi.HEAD_TENSORS]
    assert names == expected
    pos = 0
    for t in lay.tensors:
        assert t.offset % wi.tensor_align(beat) == 0 and t.offset % beat == 0 and t.offset >= pos
        pos = t.offset + t.nbytes
    assert lay.data_len == wi.align_up(pos, wi.tensor_align(beat))
    # the hardware loops over layers with base-address registers: a constant stride
    base = lay.by_name["layers.0.scalars"].offset
    stride = lay.layer_stride
    for layer in range(cfg.num_hidden_layers):
        for s, _ in wi.LAYER_TENSORS:
            assert lay.by_name[f"layers.{layer}.{s}"].offset - lay.by_name[f"layers.0.{s}"].offset \
                == layer * stride
    assert lay.by_name["norm"].offset == base + cfg.num_hidden_layers * stride
    # every ternary weight of the model is in the image, once
    assert sum(int(np.prod(t.shape)) for t in lay.tensors if t.kind == "trits") == cfg.n_ternary_weights()


def test_layout_370m_sizes_match_design():
    """DESIGN.md section 2: 341M ternary weights, 85.3 MB at 2 bits, 68.2 MB at 1.6 bits. Column
    groups of 5 pad d = 1024 to 1025 and I = 2816 to 2820: 0.1 % more at 1.6 bits."""
    cfg = PRESETS["370m"]
    n = cfg.n_ternary_weights()
    assert round(n / 1e6) == 341
    for packing, per, mb in (("2bit", 4, 85.3), ("1.6bit", 5, 68.2)):
        trit_bytes = sum(t.nbytes for t in wi.layout(cfg, packing, 64).tensors if t.kind == "trits")
        assert round(n / per / 1e6, 1) == mb
        assert n / per <= trit_bytes < n / per * 1.002


# -- images built from random decoded arrays -------------------------------------------------------

def random_arrays(cfg: ModelConfig, packing: str, beat: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    lay = wi.layout(cfg, packing, beat)
    for t in lay.tensors:
        if t.kind == "trits":
            out[t.name] = rng.integers(-1, 2, t.shape).astype(np.int8)
        elif t.kind == "gamma":
            out[t.name] = rng.integers(-32767, 32768, t.shape).astype(np.int16)
        elif t.kind == "gate":
            out[t.name] = (np.zeros(t.shape, np.uint32) if t.name == "layers.0.lower_bound"
                           else rng.integers(0, numerics.GATE_ONE + 1, t.shape).astype(np.uint32))
        elif t.kind == "bf16":
            out[t.name] = rng.integers(0, 1 << 16, t.shape).astype(np.uint16)
    for t in lay.tensors:
        if t.kind == "scalars":
            fields = wi.HEAD_SCALARS if t.name == "head.scalars" else wi.LAYER_SCALARS
            prefix = "" if t.name == "head.scalars" else t.name.removesuffix("scalars")
            betas = {prefix + s: np.float32(rng.uniform(1e-5, 1)) for f, s in fields if f == "beta"}
            exps = {prefix + s: int(rng.integers(-40, 40)) for f, s in fields if f == "gamma_exp"}
            out[t.name] = wi.scalars_record(fields, prefix, betas, exps)
            out[t.name + ":values"] = (betas, exps)       # for the test, not written
    return out


@pytest.fixture(scope="module")
def tiny_image(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = random_arrays(TINY, "1.6bit", 64, seed=1)
    path = tmp_path_factory.mktemp("img") / "tiny.img"
    wi.write_image(path, TINY, arrays, packing="1.6bit", beat_bytes=64, source="test: random arrays")
    return path, arrays


@pytest.fixture(scope="module")
def tiny_bytes(tiny_image) -> bytes:
    return tiny_image[0].read_bytes()


@pytest.mark.parametrize("packing", ["2bit", "1.6bit"])
@pytest.mark.parametrize("beat", [16, 32, 64, 256])
def test_write_read_round_trip(tmp_path, packing, beat):
    arrays = random_arrays(TINY, packing, beat, seed=beat)
    path = wi.write_image(tmp_path / "t.img", TINY, arrays, packing=packing, beat_bytes=beat, source="s")
    img = wi.read_image(path)
    assert img.model == TINY and img.packing == packing and img.beat_bytes == beat
    assert img.header["source"] == "s" and img.header["numerics_version"] == numerics.NUMERICS_VERSION
    assert img.names() == [t.name for t in wi.layout(TINY, packing, beat).tensors]
    data = path.read_bytes()
    assert img.file_bytes().tobytes() == data
    assert img.data_offset % wi.DATA_ALIGN == 0
    assert len(data) == img.data_offset + img.layout.data_len
    for name in img.names():
        a = img.array(name)
        assert a.dtype == arrays[name].dtype and a.shape == arrays[name].shape, name
        np.testing.assert_array_equal(a, arrays[name], err_msg=name)
        assert img.offset(name) % wi.tensor_align(beat) == 0
        assert img.raw(name).tobytes() == data[img.offset(name):img.offset(name) + img.nbytes(name)]
        if name.endswith("scalars"):
            betas, exps = arrays[name + ":values"]
            for k, v in betas.items():
                assert img.beta(k) == v and img.beta(k).dtype == np.float32
            for k, v in exps.items():
                assert img.gamma_exp(k) == v
    assert sum(1 for n in img.names() if img.kind(n) == "trits") == 6 * TINY.num_hidden_layers + 1
    assert img.offset("layers.1.attn.o_proj") - img.offset("layers.0.attn.o_proj") == img.layer_stride
    with pytest.raises(KeyError):
        img.raw("nope")
    with pytest.raises(KeyError):
        img.beta("layers.0.attn_norm")


def test_writer_is_deterministic_and_checks_order(tmp_path, tiny_image, tiny_bytes):
    _, arrays = tiny_image
    again = wi.write_image(tmp_path / "again.img", TINY, arrays, packing="1.6bit", beat_bytes=64,
                           source="test: random arrays")
    assert again.read_bytes() == tiny_bytes
    w = wi.ImageWriter(tmp_path / "x.img", TINY)
    with pytest.raises(ValueError, match="layout order"):
        w.add("layers.0.scalars", arrays["layers.0.scalars"])
    with pytest.raises(ValueError, match="shape"):
        w.add("embeddings", arrays["embeddings"][:3])
    with pytest.raises(ValueError, match="incomplete"):
        w.close()
    assert not (tmp_path / "x.img").exists() and not (tmp_path / "x.img.partial").exists()


# -- rejection ----------------------------------------------------------------------------------

def expect_image_error(data: bytes | bytearray, match: str | None = None) -> str:
    try:
        wi.Image.from_buffer(bytes(data), label="t.img")
    except wi.ImageError as e:
        msg = str(e)
        assert msg.startswith("t.img: ") and "\n" not in msg, msg
        if match is not None:
            assert re.search(match, msg), msg
        return msg
    raise AssertionError("the image was accepted")


def rewrite_header(data: bytes, edit) -> bytearray:
    """A copy of the image with its JSON header edited (crcs, json_len recomputed): what a
    consistent but different writer would produce."""
    buf = bytearray(data)
    json_len, data_offset = struct.unpack_from("<I", buf, 16)[0], struct.unpack_from("<Q", buf, 24)[0]
    text = edit(buf[64:64 + json_len].decode())
    raw = text.encode() if isinstance(text, str) else text
    assert 64 + len(raw) <= data_offset
    buf[64:data_offset] = raw + bytes(data_offset - 64 - len(raw))
    struct.pack_into("<II", buf, 16, len(raw), zlib.crc32(raw))
    return fix_preamble_crc(buf)


def fix_preamble_crc(buf: bytearray) -> bytearray:
    buf[12:16] = bytes(4)
    buf[12:16] = struct.pack("<I", zlib.crc32(bytes(buf[:64])))
    return buf


def edit_json(fn):
    def edit(text):
        h = json.loads(text)
        fn(h)
        return json.dumps(h)
    return edit


def test_tiny_image_reads(tiny_bytes):
    img = wi.Image.from_buffer(tiny_bytes)
    assert img.model == TINY


def test_rejects_bad_magic(tiny_bytes, tmp_path):
    expect_image_error(b"PK\x03\x04" + tiny_bytes[4:], "not a weight image")
    p = tmp_path / "text.img"
    p.write_text("hello, world, this is not an image at all" * 3)
    with pytest.raises(wi.ImageError, match="not a weight image"):
        wi.read_image(p)


def test_rejects_other_major_version(tiny_bytes):
    buf = bytearray(tiny_bytes)
    struct.pack_into("<HH", buf, 8, 2, 0)
    expect_image_error(fix_preamble_crc(buf), r"image format 2\.0, this build reads 1\.x")


def test_accepts_newer_minor_version(tiny_bytes):
    buf = bytearray(tiny_bytes)
    struct.pack_into("<H", buf, 10, 7)
    assert wi.Image.from_buffer(bytes(fix_preamble_crc(buf))).format_version == (1, 7)


def test_rejects_other_numerics_version(tiny_bytes):
    bad = rewrite_header(tiny_bytes, edit_json(lambda h: h.update(numerics_version=numerics.NUMERICS_VERSION + 1)))
    nv = numerics.NUMERICS_VERSION
    expect_image_error(bad, f"numerics version {nv + 1}, this build implements version {nv}")


@pytest.mark.parametrize("cut", [0, 5, 8, 40, 63, 64, 200, 4096, -4096, -65, -64, -1])
def test_rejects_truncated(tiny_bytes, cut):
    n = cut if cut >= 0 else len(tiny_bytes) + cut
    msg = expect_image_error(tiny_bytes[:n], "truncated")
    if n >= 64:
        assert f"expected {len(tiny_bytes)} bytes, the file has {n}" in msg


def test_rejects_trailing_bytes(tiny_bytes):
    expect_image_error(tiny_bytes + bytes(64), "trailing")


def test_rejects_missing_and_empty_files(tmp_path):
    with pytest.raises(wi.ImageError, match="cannot open"):
        wi.read_image(tmp_path / "absent.img")
    (tmp_path / "empty.img").write_bytes(b"")
    with pytest.raises(wi.ImageError, match="truncated"):
        wi.read_image(tmp_path / "empty.img")


def test_rejects_malformed_json(tiny_bytes):
    expect_image_error(rewrite_header(tiny_bytes, lambda t: t[:-10]), "malformed JSON")
    expect_image_error(rewrite_header(tiny_bytes, lambda t: b"\xff\xfe"), "malformed JSON")
    expect_image_error(rewrite_header(tiny_bytes, lambda t: "[1, 2]"), "malformed JSON")
    expect_image_error(rewrite_header(tiny_bytes, edit_json(lambda h: h.pop("packing"))),
                       "'packing' missing")
    expect_image_error(rewrite_header(tiny_bytes, edit_json(lambda h: h.update(beat_bytes=48))),
                       "beat_bytes")
    expect_image_error(rewrite_header(tiny_bytes, edit_json(lambda h: h["model"].update(hidden_size=-3))),
                       "model")
    expect_image_error(rewrite_header(tiny_bytes, edit_json(lambda h: h["model"].update(pad_token_id=[1]))),
                       "model")


def test_rejects_unknown_kind(tiny_bytes):
    bad = rewrite_header(tiny_bytes, edit_json(lambda h: h["tensors"][3].update(kind="fp8")))
    expect_image_error(bad, "unknown kind 'fp8'")


def test_rejects_descriptor_out_of_bounds(tiny_bytes):
    bad = rewrite_header(tiny_bytes, edit_json(lambda h: h["tensors"][-1].update(nbytes=10**9)))
    expect_image_error(bad, "tensor 'lm_head': descriptor out of bounds")


def test_rejects_tensor_table_that_differs_from_the_layout(tiny_bytes):
    def swap(h):
        h["tensors"][1]["name"], h["tensors"][2]["name"] = h["tensors"][2]["name"], h["tensors"][1]["name"]
    expect_image_error(rewrite_header(tiny_bytes, edit_json(swap)), "tensor table entry 1")
    expect_image_error(rewrite_header(tiny_bytes, edit_json(lambda h: h["tensors"].pop())),
                       "tensor table has")


def test_rejects_crc_mismatch_naming_the_part(tiny_bytes):
    img = wi.Image.from_buffer(tiny_bytes)
    buf = bytearray(tiny_bytes)
    buf[img.offset("layers.1.mlp.gate_proj") + 7] ^= 0x01
    expect_image_error(buf, "crc32 mismatch in tensor 'layers.1.mlp.gate_proj'")
    buf = bytearray(tiny_bytes)
    buf[100] ^= 0x20
    expect_image_error(buf, "crc32 mismatch in the JSON header")
    buf = bytearray(tiny_bytes)
    buf[50] ^= 0x20
    expect_image_error(buf, "preamble crc32 mismatch")


def _with_tensor_bytes(data: bytes, name: str, pos: int, value: int) -> bytearray:
    """Change one stored byte and fix its crc in the header: a consistent but invalid image."""
    img = wi.Image.from_buffer(data)
    buf = bytearray(data)
    buf[img.offset(name) + pos] = value
    crc = zlib.crc32(bytes(buf[img.offset(name):img.offset(name) + img.nbytes(name)]))
    idx = img.names().index(name)
    return rewrite_header(bytes(buf), edit_json(lambda h: h["tensors"][idx].update(crc32=crc)))


@pytest.mark.parametrize("packing,code", [("1.6bit", 243), ("2bit", 0b10)])
def test_rejects_invalid_trit_code(tmp_path, packing, code):
    arrays = random_arrays(TINY, packing, 64)
    data = wi.write_image(tmp_path / "t.img", TINY, arrays, packing=packing).read_bytes()
    bad = _with_tensor_bytes(data, "layers.0.attn.f_proj", 3, code)
    expect_image_error(bad, f"tensor 'layers.0.attn.f_proj': invalid trit code 0x{code:02x}")
    img = wi.Image.from_buffer(bytes(bad), label="t.img", verify=False)    # opens unverified...
    with pytest.raises(wi.ImageError, match="invalid trit code"):
        img.array("layers.0.attn.f_proj")                                  # ...but never decodes it


def test_rejects_out_of_range_values(tiny_bytes):
    expect_image_error(_with_tensor_bytes(tiny_bytes, "layers.1.lower_bound", 3, 0x80), "above GATE_ONE")
    expect_image_error(_with_tensor_bytes(tiny_bytes, "head.scalars", 60, 1), "reserved scalars")
    expect_image_error(_with_tensor_bytes(tiny_bytes, "layers.0.scalars", 3, 0xFF), "beta")


@pytest.fixture(scope="module")
def odd_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("img") / "odd.img"
    return wi.write_image(path, ODD, random_arrays(ODD, "2bit", 16, seed=3), packing="2bit",
                          beat_bytes=16, source="test: odd sizes").read_bytes()


def test_rejects_nonzero_padding(odd_bytes):
    img = wi.Image.from_buffer(odd_bytes)
    gap_before = "layers.0.attn.i_proj.norm"
    assert img.offset(gap_before) > img.offset("layers.0.attn_norm") + img.nbytes("layers.0.attn_norm")
    spots = {"after the JSON header": img.data_offset - 1,
             f"before tensor {gap_before!r}": img.offset(gap_before) - 1,
             "after the last tensor": len(odd_bytes) - 1}
    assert img.offset("lm_head") + img.nbytes("lm_head") < len(odd_bytes)
    for where, pos in spots.items():
        buf = bytearray(odd_bytes)
        buf[pos] = 1
        expect_image_error(buf, re.escape(f"non-zero padding byte at offset {pos} ({where})"))


def _flip_positions(img: wi.Image, n: int) -> list[int]:
    """~n positions: the whole preamble, then JSON, header padding, tensor data and inter-tensor
    padding in proportion, seeded."""
    rng = np.random.default_rng(0)
    size = img.file_bytes().size
    json_end = 64 + struct.unpack_from("<I", img.file_bytes().tobytes()[:64], 16)[0]
    gaps = []
    pos = img.data_offset
    for name in img.names():
        gaps += range(pos, img.offset(name))
        pos = img.offset(name) + img.nbytes(name)
    gaps += range(pos, size)
    picks = [range(64), rng.integers(64, json_end, n // 5), rng.integers(json_end, img.data_offset, n // 10),
             rng.choice(gaps, n // 10) if gaps else [],
             rng.integers(img.data_offset, size, n - 64 - n // 5 - 2 * (n // 10)),
             [json_end - 1, json_end, img.data_offset - 1, img.data_offset, size - 1]]
    return sorted({int(p) for part in picks for p in part})


def _check_flips(data: bytes, positions) -> None:
    buf = bytearray(data)
    for p in positions:
        for mask in (0xFF, 1 << (p % 8)):
            buf[p] ^= mask
            try:
                wi.Image.from_buffer(bytes(buf), label="t.img")
            except wi.ImageError as e:
                assert "\n" not in str(e)
            else:
                raise AssertionError(f"flipping byte {p} with 0x{mask:02x} was not detected")
            buf[p] ^= mask


def test_every_flipped_byte_is_detected_sample(tiny_bytes, odd_bytes):
    for data in (tiny_bytes, odd_bytes):        # odd: padding between tensors too
        positions = _flip_positions(wi.Image.from_buffer(data), 300)
        assert len(positions) >= 250
        _check_flips(data, positions)


@pytest.mark.slow
def test_every_flipped_byte_is_detected_all(tiny_bytes, odd_bytes):
    for data in (tiny_bytes, odd_bytes):
        _check_flips(data, range(len(data)))


def test_verify_false_skips_crcs_but_not_structure(tiny_bytes):
    img = wi.Image.from_buffer(tiny_bytes)
    buf = bytearray(tiny_bytes)
    buf[img.offset("embeddings") + 5] ^= 0x40
    lazy = wi.Image.from_buffer(bytes(buf), verify=False)
    with pytest.raises(wi.ImageError, match="crc32 mismatch in tensor 'embeddings'"):
        lazy.verify()
    buf[img.data_offset - 1] = 1
    with pytest.raises(wi.ImageError, match="padding"):
        wi.Image.from_buffer(bytes(buf), verify=False)


# -- the document matches the module ----------------------------------------------------------------

def _doc_table(heading: str) -> list[list[str]]:
    text = DOC.read_text()
    m = re.search(rf"^#+ {re.escape(heading)}\n(.*?)(?=^#)", text, re.M | re.S)
    assert m, f"section {heading!r} missing from {DOC.name}"
    rows = [line for line in m.group(1).splitlines() if line.startswith("|")]
    return [[c.strip().strip("`") for c in r.strip("|").split("|")] for r in rows[2:]]


def test_document_tensor_table_matches_layout():
    cfg = PRESETS["demo"]
    env = {"V": cfg.vocab_size, "d": cfg.hidden_size, "I": cfg.intermediate_size}
    rows = [(name, kind, tuple(int(eval(x, {}, env)) for x in shape.strip("[]").split(",")))
            for name, kind, shape, *_ in _doc_table("Tensors, in file order")]
    per_layer = [r for r in rows if r[0].startswith("layers.{l}.")]
    first = rows.index(per_layer[0])
    assert rows[first:first + len(per_layer)] == per_layer, "the per-layer rows must be contiguous"
    got = rows[:first]
    for layer in range(cfg.num_hidden_layers):
        got += [(n.replace("{l}", str(layer)), k, s) for n, k, s in per_layer]
    got += rows[first + len(per_layer):]
    lay = wi.layout(cfg)
    assert got == [(t.name, t.kind, t.shape) for t in lay.tensors]


def test_document_scalars_tables_match_module():
    layer = [(int(w), f, s) for w, f, s, *_ in _doc_table("Scalars records")]
    words = {}
    for w, f, s in layer:
        words.setdefault("layer" if not s.startswith("head:") else "head", []).append((w, f, s))
    assert [(f, s) for _, f, s in words["layer"]] == list(wi.LAYER_SCALARS)
    assert [w for w, _, _ in words["layer"]] == list(range(len(wi.LAYER_SCALARS)))
    head = [(f, s.removeprefix("head:").strip().strip("`")) for _, f, s in words["head"]]
    assert head == list(wi.HEAD_SCALARS)
    assert [w for w, _, _ in words["head"]] == list(range(len(wi.HEAD_SCALARS)))


def test_document_preamble_example_is_a_valid_preamble():
    text = DOC.read_text()
    m = re.search(r"```text\n(00000000: .*?)```", text, re.S)
    assert m, "preamble hex dump missing"
    hexes = "".join(line.split(":", 1)[1][:40] for line in m.group(1).splitlines())
    pre = bytes.fromhex(hexes.replace(" ", ""))[:64]
    magic, major, minor, pcrc, json_len, json_crc, data_offset, data_len = wi.PREAMBLE.unpack(pre)
    assert (magic, major, minor) == (wi.MAGIC, wi.FORMAT_MAJOR, wi.FORMAT_MINOR)
    zeroed = bytearray(pre)
    zeroed[12:16] = bytes(4)
    assert zlib.crc32(zeroed) == pcrc
    assert data_offset % wi.DATA_ALIGN == 0 and data_len % wi.TENSOR_ALIGN == 0
    for value in (json_len, data_offset, data_len, f"0x{pcrc:08x}", f"0x{json_crc:08x}"):
        assert str(value) in text, value


def test_document_sizes_table_matches_layout():
    rows = _doc_table("Sizes")
    assert [r[0] for r in rows] == list(PRESETS)
    for name, n, t2, t16, d2, d16, s2, s16, *_ in rows:
        cfg = PRESETS[name]
        assert int(n) == cfg.n_ternary_weights()
        for packing, trits, data_len, stride in (("2bit", t2, d2, s2), ("1.6bit", t16, d16, s16)):
            lay = wi.layout(cfg, packing, 64)
            assert int(trits) == sum(t.nbytes for t in lay.tensors if t.kind == "trits"), (name, packing)
            assert (int(data_len), int(stride)) == (lay.data_len, lay.layer_stride), (name, packing)
