"""sw/export.py: conversions into the weight image, and the CLI.

Vectors: seeded random float32 state dicts built here from ModelConfig.state_dict_shapes()
(numpy default_rng; norm weights and lower bounds random too, so every conversion is exercised),
and sw.model.random_state_dict for the torch paths. Expected values are spec.numerics'
conversions applied directly to the float parameters.
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spec import numerics
from spec import weight_image as wi
from spec.models import PRESETS, ModelConfig
from sw import export

ROOT = Path(__file__).resolve().parents[2]
TINY = PRESETS["tiny"]
ODD = ModelConfig(vocab_size=40, hidden_size=40, num_hidden_layers=3, intermediate_size=72, name="odd")


def numpy_state_dict(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sd = {}
    for name, shape in config.state_dict_shapes().items():
        scale = 0.02 if len(shape) == 2 and name != "model.lower_bounds" else 1.0
        sd[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return sd


def expected_arrays(config: ModelConfig, sd: dict[str, np.ndarray]) -> dict[str, object]:
    """Every stored value, from spec.numerics applied to the float parameters (the contract of
    docs/weight-image.md, "Tensors, in file order")."""
    out: dict[str, object] = {"embeddings": numerics.float_to_bf16_bits(sd["model.embeddings.weight"])}
    lbs = (numerics.lower_bounds_from_param(sd["model.lower_bounds"]) if config.use_lower_bound
           else np.zeros((config.num_hidden_layers, config.hidden_size), np.uint32))
    for layer in range(config.num_hidden_layers):
        p = f"layers.{layer}."
        for suffix, kind in wi.LAYER_TENSORS:
            param = sd.get(f"model.{p}{suffix}.weight")
            if kind == "gamma":
                out[p + suffix] = numerics.gamma_block(param)          # (mantissas, exp)
            elif kind == "trits":
                out[p + suffix] = numerics.ternary_quantize(param)     # (trits, beta)
        out[p + "lower_bound"] = np.zeros(config.hidden_size, np.uint32) if layer == 0 else lbs[layer]
    out["norm"] = numerics.gamma_block(sd["model.norm.weight"])
    out["lm_head.norm"] = numerics.gamma_block(sd["lm_head.norm.weight"])
    out["lm_head"] = numerics.ternary_quantize(sd["lm_head.weight"])
    return out


def check_image_against_conversions(img: wi.Image, config: ModelConfig, sd: dict[str, np.ndarray]):
    want = expected_arrays(config, sd)
    for name in img.names():
        kind = img.kind(name)
        if kind == "scalars":
            continue
        got = img.array(name)
        if kind == "trits":
            trits, beta = want[name]
            np.testing.assert_array_equal(got, trits, err_msg=name)
            assert img.beta(name).view(np.uint32) == np.float32(beta).view(np.uint32), name
        elif kind == "gamma":
            mant, exp = want[name]
            np.testing.assert_array_equal(got, mant, err_msg=name)
            assert img.gamma_exp(name) == exp, name
        else:
            np.testing.assert_array_equal(got, want[name], err_msg=name)
    assert not img.array("layers.0.lower_bound").any()


@pytest.mark.parametrize("config", [TINY, ODD], ids=["tiny", "odd"])
@pytest.mark.parametrize("packing,beat", [("1.6bit", 64), ("2bit", 64), ("1.6bit", 16), ("2bit", 32)])
def test_image_holds_exactly_the_spec_conversions(tmp_path, config, packing, beat):
    sd = numpy_state_dict(config, seed=beat)
    res = export.export_image(config, sd, tmp_path / "m.img", packing=packing, beat_bytes=beat,
                              source="test: numpy random")
    assert res.nbytes == (tmp_path / "m.img").stat().st_size
    assert res.n_ternary == config.n_ternary_weights()
    img = wi.read_image(tmp_path / "m.img")
    assert (img.model, img.packing, img.beat_bytes) == (config, packing, beat)
    assert img.header["source"] == "test: numpy random"
    check_image_against_conversions(img, config, sd)


def test_use_lower_bound_false_stores_zero_lower_bounds(tmp_path):
    config = dataclasses.replace(TINY, use_lower_bound=False)
    sd = numpy_state_dict(config, seed=3)
    assert "model.lower_bounds" not in sd
    export.export_image(config, sd, tmp_path / "m.img")
    img = wi.read_image(tmp_path / "m.img")
    assert not img.model.use_lower_bound
    for layer in range(config.num_hidden_layers):
        assert not img.array(f"layers.{layer}.lower_bound").any()
    check_image_against_conversions(img, config, sd)


def test_lower_bounds_of_later_layers_are_nonzero(tmp_path):
    sd = numpy_state_dict(TINY, seed=4)
    export.export_image(TINY, sd, tmp_path / "m.img")
    assert wi.read_image(tmp_path / "m.img").array("layers.1.lower_bound").any()


def test_rejects_bad_state_dicts_and_leaves_no_file(tmp_path):
    sd = numpy_state_dict(TINY)
    out = tmp_path / "m.img"
    missing = dict(sd)
    del missing["model.layers.1.mlp.down_proj.weight"]
    with pytest.raises(export.ExportError, match="lacks model.layers.1.mlp.down_proj.weight"):
        export.export_image(TINY, missing, out)
    wrong = dict(sd, **{"lm_head.weight": sd["lm_head.weight"][:, :10]})
    with pytest.raises(export.ExportError, match=r"lm_head.weight has shape \(256, 10\)"):
        export.export_image(TINY, wrong, out)
    nan = dict(sd, **{"model.layers.0.attn.g_proj.weight": np.full((64, 64), np.nan, np.float32)})
    with pytest.raises(export.ExportError, match="non-finite"):
        export.export_image(TINY, nan, out)
    nan_norm = dict(sd, **{"model.norm.weight": np.full(64, np.inf, np.float32)})
    with pytest.raises(export.ExportError, match="model.norm.weight"):
        export.export_image(TINY, nan_norm, out)
    with pytest.raises(ValueError, match="packing"):
        export.export_image(TINY, sd, out, packing="3bit")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.torch
def test_torch_state_dict_exports_like_numpy(tmp_path):
    import torch

    from sw.model import random_state_dict
    sd = random_state_dict(TINY, seed=5)
    export.export_image(TINY, sd, tmp_path / "torch.img", source="s")
    export.export_image(TINY, {k: v.numpy() for k, v in sd.items()}, tmp_path / "np.img", source="s")
    assert (tmp_path / "torch.img").read_bytes() == (tmp_path / "np.img").read_bytes()
    # bf16 parameters (as checkpoints store them) are widened exactly
    bf = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    export.export_image(TINY, bf, tmp_path / "bf.img", source="s")
    check_image_against_conversions(wi.read_image(tmp_path / "bf.img"), TINY,
                                    {k: v.to(torch.float32).numpy() for k, v in bf.items()})


@pytest.mark.torch
def test_checkpoint_export_matches_in_process_export(tmp_path):
    import torch

    from sw.checkpoint import load_checkpoint, save_checkpoint
    from sw.model import random_state_dict
    ckpt = save_checkpoint(tmp_path / "ckpt", TINY, random_state_dict(TINY, seed=6), dtype=torch.bfloat16)
    assert export.main(["--checkpoint", str(ckpt), "--model", "tiny", "--packing", "2bit",
                        "-o", str(tmp_path / "cli.img")]) == 0
    config, sd = load_checkpoint(ckpt)
    img = wi.read_image(tmp_path / "cli.img")
    assert img.model.name == "tiny" and img.packing == "2bit"
    assert img.header["source"] == f"checkpoint {ckpt.resolve()}"
    check_image_against_conversions(img, config, {k: v.numpy() for k, v in sd.items()})
    # without --model the checkpoint's own config (named after its directory) is used
    assert export.main(["--checkpoint", str(ckpt), "-o", str(tmp_path / "own.img")]) == 0
    assert wi.read_image(tmp_path / "own.img").model.hidden_size == TINY.hidden_size


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "sw.export", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.torch
def test_cli_random_init_says_so(tmp_path):
    r = run_cli("--model", "tiny", "--seed", "7", "-o", str(tmp_path / "t.img"))
    assert r.returncode == 0, r.stderr
    assert "SEEDED RANDOM INIT" in r.stdout and "seed 7" in r.stdout
    for words in ("bytes", "MB", f"{TINY.n_ternary_weights()} ternary weights", "per ternary weight",
                  "elapsed"):
        assert words in r.stdout, words
    img = wi.read_image(tmp_path / "t.img")
    assert img.header["source"] == "seeded random init (sw.model.random_state_dict), seed 7"
    assert img.packing == "1.6bit" and img.beat_bytes == 64


@pytest.mark.parametrize("args,message", [
    (["--model", "7b"], "unknown model '7b'; valid: tiny, demo, 370m, 1.3b, 2.7b"),
    (["--model", "tiny", "--packing", "3bit"], "unknown packing '3bit'; valid: 2bit, 1.6bit"),
    (["--model", "tiny", "--beat-bytes", "48"], "beat_bytes must be one of"),
    (["--model", "tiny", "--beat-bytes", "lots"], "invalid int value"),
    (["--checkpoint", "/nonexistent/ckpt"], "checkpoint directory /nonexistent/ckpt does not exist"),
    ([], "give --model"),
    (["--model", "tiny", "--frobnicate"], "unrecognized arguments"),
])
def test_cli_errors_exit_1_without_traceback(tmp_path, args, message):
    r = run_cli(*args, "-o", str(tmp_path / "x.img"))
    assert r.returncode == 1
    assert "error: " in r.stderr and message in r.stderr, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert not (tmp_path / "x.img").exists()


@pytest.mark.torch
def test_cli_checkpoint_errors(tmp_path):
    import torch

    from sw.checkpoint import save_checkpoint
    from sw.model import random_state_dict
    ckpt = save_checkpoint(tmp_path / "ckpt", TINY, random_state_dict(TINY), dtype=torch.bfloat16)
    r = run_cli("--checkpoint", str(ckpt), "--model", "demo", "-o", str(tmp_path / "x.img"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error: the checkpoint is not the demo preset: vocab_size 256 (preset 1024)" in r.stderr
    (tmp_path / "empty").mkdir()
    r = run_cli("--checkpoint", str(tmp_path / "empty"), "-o", str(tmp_path / "x.img"))
    assert r.returncode == 1 and "error: " in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.img").exists()


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("packing", ["1.6bit", "2bit"])
def test_export_370m_in_under_a_minute(tmp_path, packing):
    t0 = time.perf_counter()
    r = run_cli("--model", "370m", "--packing", packing, "-o", str(tmp_path / "370m.img"))
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    assert elapsed < 60, elapsed
    img = wi.read_image(tmp_path / "370m.img")
    t0 = time.perf_counter()
    n = sum(img.array(name).size for name in img.names() if img.kind(name) == "trits")
    assert n == PRESETS["370m"].n_ternary_weights()
    assert time.perf_counter() - t0 < 10
