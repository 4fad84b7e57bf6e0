"""The model compiler (sw/compile.py): its assembly text assembles (assembler package) to exactly
the words it encodes itself, it loops over layers (program size independent of the layer count),
the CLI, and the compiled program on the golden machine bit-identical to GoldenModel: the trained
demo checkpoint (64-token prompt) and, marked slow, the seeded random-init 370m (8 tokens)."""
from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path

import numpy as np
import pytest

from golden import GoldenModel, GoldenWeights
from golden.machine import GoldenMachine
from spec import isa
from spec import weight_image as wi
from spec.models import PRESETS, get_preset
from sw.compile import DEFAULT_VLEN, compile_model, main

DEMO = Path(__file__).resolve().parents[2] / "sw" / "demo"


@pytest.mark.parametrize("name", ["tiny", "demo", "370m"])
def test_assembles_to_the_encoded_words(name):
    assembler = pytest.importorskip("assembler")
    prog = compile_model(name)
    assert assembler.assemble(prog.text).words == prog.words
    for w in prog.words:
        isa.decode(w)
    # every named constant is used by an instruction (VOCAB and N_CHUNKS only document the shape)
    body = prog.text.split("boot:", 1)[1]
    assert [k for k in prog.equ if not re.search(rf"\b{k}\b", body)] == ["VOCAB", "N_CHUNKS"]


def test_program_size_does_not_grow_with_layers():
    base = get_preset("demo")
    sizes = {n: compile_model(dataclasses.replace(base, num_hidden_layers=n)).n_words for n in (2, 8, 24)}
    assert len(set(sizes.values())) == 1, sizes
    p2 = compile_model(dataclasses.replace(base, num_hidden_layers=2))
    p8 = compile_model(dataclasses.replace(base, num_hidden_layers=8))
    assert p2.equ["N_LAYERS"] == 2 and p8.equ["N_LAYERS"] == 8
    assert "layer" in p2.labels and p2.text.count("DJNZ A4, layer") == 1     # one loop body per layer


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_compiles_with_beat_aligned_chunks(name):
    for packing in wi.PACKINGS:
        prog = compile_model(name, packing=packing)
        cfg, e = prog.config, prog.equ
        assert e["CHUNK_ROWS"] % prog.beat_bytes == 0 and e["CHUNK_ROWS"] <= DEFAULT_VLEN
        assert e["N_CHUNKS"] * e["CHUNK_ROWS"] + e.get("TAIL_ROWS", 0) == cfg.vocab_size
        assert e["LAYER_STRIDE"] == wi.layout(cfg, packing).layer_stride
    small = compile_model("370m", vlen=3000)
    assert small.equ["CHUNK_ROWS"] == 2944
    with pytest.raises(ValueError, match=r"vectors are 2816 elements .* \(vlen 2000\)"):
        compile_model("370m", vlen=2000)


def test_cli(tmp_path, capsys):
    out = tmp_path / "tiny.s"
    assert main(["--model", "tiny", "-o", str(out), "--hex", str(tmp_path / "tiny.hex")]) == 0
    assert "instruction words" in capsys.readouterr().out
    assert out.read_text() == compile_model("tiny").text
    words = [int(x, 16) for x in (tmp_path / "tiny.hex").read_text().split()]
    assert words == compile_model("tiny").words
    assert main(["-o", str(out)]) == 1
    assert main(["--model", "nope", "-o", str(out)]) == 1
    assert main(["--checkpoint", str(DEMO), "-o", str(tmp_path / "demo.s")]) == 0
    assert (tmp_path / "demo.s").read_text() == compile_model(get_preset("demo")).text


def _check_bit_identical(img, tokens, n_new: int, vlen: int = 4096):
    prog = compile_model(img, vlen=vlen)
    t0 = time.perf_counter()
    m = GoldenMachine(prog.words, img)
    out, logits = m.run_teacher(tokens, logits=True)
    new = GoldenMachine(prog.words, img).run_tokens(tokens[:8], n_new) if n_new else []
    t_machine = time.perf_counter() - t0
    gm = GoldenModel(GoldenWeights.from_image(img))
    ref = gm.run(tokens)
    assert logits.shape == ref.shape
    assert np.array_equal(logits, ref), "compiled program differs from GoldenModel"
    assert out == [int(np.argmax(r)) for r in ref]
    if n_new:
        gm.reset()
        assert new == gm.generate(tokens[:8], n_new)
    return t_machine


@pytest.fixture(scope="module")
def demo_image(tmp_path_factory):
    pytest.importorskip("torch")
    from sw.checkpoint import load_checkpoint
    from sw.export import export_image
    cfg, sd = load_checkpoint(DEMO)
    path = tmp_path_factory.mktemp("compile") / "demo.img"
    export_image(cfg, sd, path, source=f"checkpoint {DEMO}")
    return wi.read_image(path)


def _heldout(n: int) -> list[int]:
    from sw.tokenizer import load_tokenizer
    tok = load_tokenizer(DEMO)
    return tok.encode((DEMO / "heldout.txt").read_text(encoding="utf-8")).ids[:n]


@pytest.mark.torch
def test_demo_64_tokens_bit_identical(demo_image):
    _check_bit_identical(demo_image, _heldout(64), n_new=16)


@pytest.mark.torch
@pytest.mark.parametrize("layers, vocab, vlen", [
    (1, 256, 4096),     # the first layer is the last: the head's operands, no part b
    (3, 1024, 256),     # 4 chunks: one pair in the chunk loop, one odd chunk after it
    (2, 512, 256),      # 2 chunks: no chunk loop
    (2, 1312, 256),     # 5 chunks and a tail of 32 rows
    (3, 1024, 768),     # 1 chunk of 768 rows and a tail of 256
])
def test_layer_counts_and_chunkings_bit_identical(tmp_path, layers, vocab, vlen):
    """Random tiny models (every norm gamma and lower bound random too, so that operands loaded
    into the wrong register would show) with the layer counts and lm_head chunkings that take the
    program's different paths (last-layer branch, chunk pairs, odd chunk, tail)."""
    import torch

    from sw.export import export_image
    from sw.model import random_state_dict
    cfg = dataclasses.replace(get_preset("tiny"), num_hidden_layers=layers, vocab_size=vocab)
    g = torch.Generator().manual_seed(layers * 1000 + vlen)
    sd = {}
    for k, v in random_state_dict(cfg, 1).items():
        if "norm" in k or "lower_bound" in k:
            v = v + 0.5 * torch.randn(v.shape, generator=g)
        sd[k] = v.to(torch.bfloat16).float()
    path = tmp_path / "tiny.img"
    export_image(cfg, sd, path, source="test")
    img = wi.read_image(path)
    toks = [int(t) for t in np.random.default_rng(layers).integers(0, vocab, 4)]
    _check_bit_identical(img, toks, n_new=2, vlen=vlen)


@pytest.mark.slow
@pytest.mark.torch
def test_370m_random_init_8_tokens_bit_identical(tmp_path):
    import torch

    from sw.export import export_image
    from sw.model import random_state_dict
    cfg = get_preset("370m")
    sd = {k: v.to(torch.bfloat16).float() for k, v in random_state_dict(cfg, 0).items()}
    path = tmp_path / "370m.img"
    export_image(cfg, sd, path, source="seeded random init (sw.model.random_state_dict), seed 0")
    del sd
    img = wi.read_image(path, verify=False)
    toks = [int(t) for t in np.random.default_rng(5).integers(0, cfg.vocab_size, 8)]
    _check_bit_identical(img, toks, n_new=0)
