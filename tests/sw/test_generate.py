"""sw.generate: greedy and nucleus sampling on the tiny preset, and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spec.models import PRESETS

torch = pytest.importorskip("torch")

from sw import generate as G  # noqa: E402
from sw import model as M  # noqa: E402

pytestmark = pytest.mark.torch


TINY = PRESETS["tiny"]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    return M.build_model(TINY, seed=4)


PROMPT = [1, 17, 99, 200, 3]


def test_greedy_deterministic_and_equals_argmax_of_full_forward(tiny):
    a = G.generate(tiny, PROMPT, 12)
    b = G.generate(tiny, torch.tensor(PROMPT), 12)
    assert a == b and len(a) == 12 and all(0 <= t < TINY.vocab_size for t in a)
    # greedy continuation == argmax of the full-sequence forward at every position
    seq = PROMPT + a
    with torch.no_grad():
        logits, _ = tiny(torch.tensor([seq]))
    assert logits[0, len(PROMPT) - 1:-1].argmax(-1).tolist() == a


def test_top_p_seeded_determinism(tiny):
    kw = dict(temperature=1.5, top_p=0.9)
    a = G.generate(tiny, PROMPT, 20, seed=7, **kw)
    b = G.generate(tiny, PROMPT, 20, seed=7, **kw)
    c = G.generate(tiny, PROMPT, 20, seed=8, **kw)
    assert a == b
    assert a != c
    assert a != G.generate(tiny, PROMPT, 20)      # sampling differs from greedy at T=1.5


def test_top_p_tiny_keeps_only_the_top_token(tiny):
    # top_p -> 0 keeps the most likely token only: identical to greedy
    assert G.generate(tiny, PROMPT, 10, temperature=1.0, top_p=1e-9, seed=3) == G.generate(tiny, PROMPT, 10)


def test_pick_nucleus_support():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    seen = {int(G._pick(logits, 1.0, 0.7, gen)) for _ in range(300)}
    assert seen == {0, 1}                          # 0.5 < 0.7, 0.5 + 0.3 >= 0.7: tokens 0 and 1


def test_batch_and_eos(tiny):
    batch = torch.tensor([PROMPT, [1, 5, 6, 7, 8]])
    out = G.generate(tiny, batch, 6)
    assert out[0] == G.generate(tiny, PROMPT, 6) and len(out) == 2
    first = G.generate(tiny, PROMPT, 1)[0]
    assert G.generate(tiny, PROMPT, 10, eos_id=first) == [first]


def test_bad_arguments(tiny):
    with pytest.raises(ValueError):
        G.generate(tiny, [], 3)
    with pytest.raises(ValueError):
        G.generate(tiny, PROMPT, 3, top_p=0.0)
    assert G.generate(tiny, PROMPT, 0) == []


def _cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sw.generate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_unknown_model_is_a_clean_error():
    r = _cli("--model", "nosuchmodel", "-n", "3")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "valid presets: tiny, demo, 370m, 1.3b, 2.7b" in r.stderr


def test_cli_preset_prints_ids_and_says_random(tmp_path):
    r = _cli("--model", "tiny", "--ids", "1,5,9", "-n", "4")
    assert r.returncode == 0, r.stderr
    ids = [int(x) for x in r.stdout.split()]
    assert ids[:3] == [1, 5, 9] and len(ids) == 7
    assert "RANDOM INIT" in r.stderr


def test_cli_checkpoint_dir_with_tokenizer(tmp_path):
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    from sw.checkpoint import save_checkpoint
    vocab = {chr(c): c - 32 for c in range(32, 127)}
    vocab.update({f"<x{k}>": k + 95 for k in range(TINY.vocab_size - 95)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<x0>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    save_checkpoint(tmp_path, TINY, M.random_state_dict(TINY, 2))
    tok.save(str(tmp_path / "tokenizer.json"))
    assert json.loads((tmp_path / "tokenizer.json").read_text())["model"]["type"] == "WordLevel"
    r = _cli("--model", str(tmp_path), "--prompt", "abc", "-n", "5")
    assert r.returncode == 0, r.stderr
    assert "RANDOM INIT" not in r.stderr
    assert r.stdout.strip() and not r.stdout.strip().replace(" ", "").isdigit()
