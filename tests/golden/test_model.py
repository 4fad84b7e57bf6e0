"""Golden model end to end: image -> integer token step, against the float PyTorch model, and a
frozen regression vector (tests/golden/golden_tiny.npz) so that any numerics change is deliberate.

Regenerate the vector only when the numerics (bump NUMERICS_VERSION) or the seeded init change:
    python -m tests.golden.test_model --regen
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from golden import GoldenModel, GoldenWeights, logits_to_float
from sim.benches.fidelity import compare_logits
from spec import numerics as N
from spec.models import get_preset

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "golden_tiny.npz"
SEED = 0
TOKENS = np.random.default_rng(1234).integers(0, 256, 48)

pytestmark = pytest.mark.torch


def _tiny(tmp_path: Path):
    import torch

    from sw.export import export_image
    from sw.model import random_state_dict

    cfg = get_preset("tiny")
    sd = {k: v.to(torch.bfloat16).float() for k, v in random_state_dict(cfg, SEED).items()}
    img = tmp_path / "tiny.img"
    export_image(cfg, sd, img, packing="1.6bit", source="test", progress=False)
    return cfg, sd, img


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return _tiny(tmp_path_factory.mktemp("golden"))


def test_golden_tracks_float_model_on_tiny(tiny):
    import torch

    from sw.model import HGRNBitForCausalLM

    cfg, sd, img = tiny
    net = HGRNBitForCausalLM(cfg)
    net.load_state_dict(sd)
    net.eval()
    with torch.no_grad():
        fl = net(torch.tensor(TOKENS)[None])[0][0].numpy()
    gl = logits_to_float(GoldenModel(GoldenWeights.from_path(img)).run(TOKENS))
    m = compare_logits(fl, gl, TOKENS)
    assert m["cosine_min"] > 0.995, m
    assert m["top1_agreement"] >= 0.9, m
    assert m["ppl_rel_diff"] < 0.01, m


def test_both_packings_give_identical_golden_results(tiny, tmp_path):
    from sw.export import export_image

    cfg, sd, img = tiny
    img2 = tmp_path / "tiny2.img"
    export_image(cfg, sd, img2, packing="2bit", beat_bytes=16, source="test", progress=False)
    a = GoldenModel(GoldenWeights.from_path(img)).run(TOKENS[:8])
    b = GoldenModel(GoldenWeights.from_path(img2)).run(TOKENS[:8])
    assert np.array_equal(a, b)


def test_state_persists_and_reset_restarts(tiny):
    _, _, img = tiny
    gm = GoldenModel(GoldenWeights.from_path(img))
    first = gm.step(5)
    second = gm.step(5)
    assert not np.array_equal(first, second)      # the recurrent state changed the output
    gm.reset()
    assert np.array_equal(gm.step(5), first)


def test_trace_sees_every_op_and_matches_outputs(tiny):
    _, _, img = tiny
    seen = []
    gm = GoldenModel(GoldenWeights.from_path(img), trace=lambda l, op, v: seen.append((l, op, np.array(v))))
    logits = gm.step(7)
    ops = {(l, op) for l, op, _ in seen}
    for l in range(2):
        for op in ("attn_norm", "i_proj", "f_proj", "g_proj", "forget", "h", "gated", "o_proj",
                   "resid_attn", "gate_proj", "swiglu", "down_proj", "resid_mlp", "i_proj.codes"):
            assert (l, op) in ops
    assert seen[-1][1] == "lm_head" and np.array_equal(seen[-1][2], logits)
    codes = [v for _, op, v in seen if op.endswith(".codes")]
    assert all(np.abs(c).max() <= N.CODE_MAX for c in codes)


def test_generate_is_greedy_argmax(tiny):
    _, _, img = tiny
    w = GoldenWeights.from_path(img)
    out = GoldenModel(w).generate([1, 2, 3], 5)
    gm = GoldenModel(w)
    for t in [1, 2]:
        gm.step(t)
    logits = gm.step(3)
    ref = []
    for _ in range(5):
        ref.append(int(np.argmax(logits)))
        logits = gm.step(ref[-1])
    assert out == ref


def test_bad_token_is_rejected(tiny):
    _, _, img = tiny
    with pytest.raises(ValueError, match="outside the vocabulary"):
        GoldenModel(GoldenWeights.from_path(img)).step(256)


def _golden_logits(img: Path) -> np.ndarray:
    return GoldenModel(GoldenWeights.from_path(img)).run(TOKENS[:16])


def test_frozen_golden_vector(tiny):
    """The golden model's FX logits for 16 tokens of the tiny random init are frozen: changing
    them requires a NUMERICS_VERSION bump and regenerating the file (see module docstring)."""
    _, _, img = tiny
    ref = np.load(GOLDEN)
    assert int(ref["numerics_version"]) == N.NUMERICS_VERSION
    assert np.array_equal(_golden_logits(img), ref["logits"])


if __name__ == "__main__" and "--regen" in sys.argv:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        _, _, image = _tiny(Path(d))
        np.savez_compressed(GOLDEN, logits=_golden_logits(image), tokens=TOKENS[:16],
                            numerics_version=N.NUMERICS_VERSION)
    print(f"wrote {GOLDEN}")


def test_fast_and_numpy_backends_identical(tiny):
    from golden import fast

    if not fast.AVAILABLE:
        pytest.skip("numba not installed (make setup)")
    _, _, img = tiny
    w = GoldenWeights.from_path(img)
    a = GoldenModel(w, backend="numpy").run(TOKENS[:12])
    b = GoldenModel(w, backend="fast").run(TOKENS[:12])
    assert np.array_equal(a, b)


def test_demo_greedy_text_equals_float_model(tmp_path):
    """The integer model writes the same greedy continuation as the float model (32 tokens)."""
    from sim.benches.fidelity import DEMO_DIR
    from sw.checkpoint import load_checkpoint, load_model
    from sw.export import export_image
    from sw.generate import generate
    from sw.tokenizer import load_tokenizer

    cfg, sd = load_checkpoint(DEMO_DIR)
    img = tmp_path / "demo.img"
    export_image(cfg, sd, img, source="test", progress=False)
    prompt = [cfg.bos_token_id] + load_tokenizer(DEMO_DIR).encode("ROMEO.\n").ids
    golden = GoldenModel(GoldenWeights.from_path(img)).generate(prompt, 32)
    ref = generate(load_model(DEMO_DIR), prompt, 32)     # the new tokens, greedy
    assert len(golden) == 32 and golden == ref
