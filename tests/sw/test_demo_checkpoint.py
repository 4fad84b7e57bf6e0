"""The committed demo checkpoint (sw/demo/): loads, has the demo shapes, its tokenizer round-trips,
it models held-out Shakespeare far better than chance, and it generates text.

Numbers: sw/demo/README.md (written by sw/train_demo.py). Measured there on CPU in float32 after
bf16 rounding: the first 512 tokens of heldout.txt have loss 3.147 nats/token (perplexity 23.3);
the add-one unigram baseline on the held-out plays is 5.75 (314), a random init ~6.9 (~1000).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
tokenizers = pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from spec.models import get_preset  # noqa: E402
from sw.checkpoint import load_checkpoint  # noqa: E402
from sw.model import build_model  # noqa: E402

pytestmark = pytest.mark.torch

DEMO = Path(__file__).resolve().parents[2] / "sw" / "demo"
#: measured 23.28 (README.md); the bound leaves ~0.25 nats of margin and is still 10x below unigram
PPL_BOUND_512 = 30.0


@pytest.fixture(scope="module")
def ckpt():
    return load_checkpoint(DEMO)


@pytest.fixture(scope="module")
def model(ckpt):
    config, sd = ckpt
    return build_model(config, sd)


@pytest.fixture(scope="module")
def tok():
    return tokenizers.Tokenizer.from_file(str(DEMO / "tokenizer.json"))


@pytest.fixture(scope="module")
def heldout_ids(tok):
    return tok.encode((DEMO / "heldout.txt").read_text(encoding="utf-8")).ids


def test_directory_holds_only_small_files():
    names = sorted(p.name for p in DEMO.iterdir())
    assert names == ["README.md", "config.json", "heldout.txt", "model.safetensors", "tokenizer.json"]
    assert (DEMO / "model.safetensors").stat().st_size < 5_000_000
    assert (DEMO / "heldout.txt").stat().st_size < 40_000


def test_config_and_shapes_are_the_demo_preset(ckpt):
    config, sd = ckpt
    demo = get_preset("demo")
    for f in ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size",
              "bos_token_id", "eos_token_id", "rms_norm_eps", "use_lower_bound"):
        assert getattr(config, f) == getattr(demo, f), f
    assert json.loads((DEMO / "config.json").read_text()) == demo.to_hf_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == demo.state_dict_shapes()
    assert all(v.dtype == torch.float32 and bool(torch.isfinite(v).all()) for v in sd.values())


def test_weights_are_stored_in_bfloat16():
    from safetensors import safe_open

    with safe_open(str(DEMO / "model.safetensors"), framework="pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
    assert dtypes == {"BF16"}


def test_tokenizer_round_trips_and_has_the_special_ids(tok, heldout_ids):
    text = (DEMO / "heldout.txt").read_text(encoding="utf-8")
    assert tok.get_vocab_size() == 1024
    assert [tok.token_to_id(s) for s in ("<unk>", "<s>", "</s>")] == [0, 1, 2]
    assert len(heldout_ids) >= 3000
    assert tok.decode(heldout_ids) == text
    odd = "O brave new world,\n\tthat has such people in't! 123 \u00e9\u00e8 \u2014 \U0001f451\n\n"
    assert tok.decode(tok.encode(odd).ids) == odd


def test_heldout_perplexity_of_first_512_tokens(model, heldout_ids):
    x = torch.tensor([heldout_ids[:512]])
    with torch.no_grad():
        logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:]).item()
    ppl = math.exp(loss)
    assert ppl < PPL_BOUND_512, f"held-out perplexity {ppl:.2f} (loss {loss:.4f}) >= {PPL_BOUND_512}"


def test_greedy_generation_decodes_to_text(model, tok):
    prompt = "ROMEO.\n"
    ids = [1, *tok.encode(prompt).ids]
    with torch.no_grad():
        logits, state = model(torch.tensor([ids]))
        nxt = int(logits[0, -1].argmax())
        out = []
        for _ in range(24):
            if nxt == 2:
                break
            out.append(nxt)
            step_logits, state = model.step(torch.tensor([nxt]), state)
            nxt = int(step_logits[0].argmax())
    text = tok.decode(out)
    assert len(out) >= 8 and all(3 <= t < 1024 for t in out)
    assert text.strip(), repr(text)
    assert all(c.isprintable() or c in "\n\t" for c in text), repr(text)
    assert sum(c.isalpha() for c in text) >= 10, repr(text)
