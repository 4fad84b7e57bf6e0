"""sw.checkpoint: HF directory round trips and strict rejection (tiny preset)."""
from __future__ import annotations

import json

import pytest

from spec.models import PRESETS

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from sw import checkpoint as C  # noqa: E402
from sw import model as M  # noqa: E402

pytestmark = pytest.mark.torch


TINY = PRESETS["tiny"]
I_PROJ = "model.layers.0.attn.i_proj.weight"


@pytest.fixture(scope="module")
def sd():
    return M.random_state_dict(TINY, seed=21)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, TINY.vocab_size, (2, 12), generator=torch.Generator().manual_seed(5))


def _logits(config, state_dict, ids):
    with torch.no_grad():
        return M.build_model(config, state_dict)(ids)[0]


def _bf16(sd):
    return {k: v.to(torch.bfloat16).float() for k, v in sd.items()}


def _write_bin(d, sd, shards=1, dtype=torch.bfloat16):
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(TINY.to_hf_dict()))
    sd = {k: v.to(dtype) for k, v in sd.items()}
    if shards == 1:
        torch.save(sd, d / "pytorch_model.bin")
        return
    names = list(sd)
    wmap = {}
    for k in range(shards):
        fname = f"pytorch_model-{k + 1:05d}-of-{shards:05d}.bin"
        part = {n: sd[n] for n in names[k::shards]}
        torch.save(part, d / fname)
        wmap.update({n: fname for n in part})
    (d / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wmap}))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32])
def test_safetensors_single_round_trip(tmp_path, sd, ids, dtype):
    C.save_checkpoint(tmp_path, TINY, sd, dtype=dtype)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    cfg, loaded = C.load_checkpoint(tmp_path)
    assert cfg.state_dict_shapes() == TINY.state_dict_shapes()
    assert all(v.dtype == torch.float32 for v in loaded.values())
    ref = {k: v.to(dtype).float() for k, v in sd.items()}
    assert all(torch.equal(loaded[k], ref[k]) for k in ref)
    assert torch.equal(_logits(cfg, loaded, ids), _logits(TINY, ref, ids))


def test_safetensors_sharded_round_trip(tmp_path, sd, ids):
    C.save_checkpoint(tmp_path, TINY, sd, shard_bytes=40_000)
    shards = sorted(tmp_path.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 3 and (tmp_path / "model.safetensors.index.json").is_file()
    assert not (tmp_path / "model.safetensors").exists()
    cfg, loaded = C.load_checkpoint(tmp_path)
    assert torch.equal(_logits(cfg, loaded, ids), _logits(TINY, _bf16(sd), ids))


@pytest.mark.parametrize("shards", [1, 3])
def test_bin_round_trip(tmp_path, sd, ids, shards):
    _write_bin(tmp_path, sd, shards=shards)
    cfg, loaded = C.load_checkpoint(tmp_path)
    assert torch.equal(_logits(cfg, loaded, ids), _logits(TINY, _bf16(sd), ids))


def test_load_model_directory_and_preset(tmp_path, sd, ids):
    C.save_checkpoint(tmp_path, TINY, sd, dtype=torch.float32)
    msgs = []
    m = C.load_model(tmp_path, log=msgs.append)
    assert not m.training
    with torch.no_grad():
        assert torch.equal(m(ids)[0], _logits(TINY, sd, ids))
    msgs.clear()
    m2 = C.load_model("tiny", seed=21, log=msgs.append)
    assert any("RANDOM INIT" in s for s in msgs)
    with torch.no_grad():
        assert torch.equal(m2(ids)[0], _logits(TINY, sd, ids))
    with pytest.raises(C.CheckpointError, match="valid presets: tiny, demo"):
        C.load_model("nosuchmodel")


def _expect_error(tmp_path, sd, *needles):
    C.save_checkpoint(tmp_path, TINY, M.random_state_dict(TINY, 0), dtype=torch.float32)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(C.CheckpointError) as ei:
        C.load_checkpoint(tmp_path)
    for n in needles:
        assert n in str(ei.value), str(ei.value)
    return str(ei.value)


def test_reject_wrong_shape(tmp_path, sd):
    bad = dict(sd)
    bad[I_PROJ] = torch.zeros(64, 32)
    msg = _expect_error(tmp_path, bad, f"{I_PROJ}: checkpoint has (64, 32), config expects (64, 64)")
    assert msg.count("\n  ") == 1       # exactly one problem listed


def test_reject_missing(tmp_path, sd):
    bad = {k: v for k, v in sd.items() if k not in (I_PROJ, "lm_head.norm.weight")}
    _expect_error(tmp_path, bad, I_PROJ, "lm_head.norm.weight", "missing", "(64, 64)", "(64,)")


def test_reject_unexpected(tmp_path, sd):
    bad = dict(sd)
    bad["lm_head.bias"] = torch.zeros(TINY.vocab_size)
    _expect_error(tmp_path, bad, "lm_head.bias", "unexpected", f"({TINY.vocab_size},)")


def test_reject_lists_every_problem(tmp_path, sd):
    bad = {k: v for k, v in sd.items() if k != "model.norm.weight"}
    bad["model.layers.1.mlp.down_proj.weight"] = torch.zeros(64, 128)
    bad["model.extra"] = torch.zeros(3)
    msg = _expect_error(tmp_path, bad, "model.norm.weight", "model.extra",
                        "model.layers.1.mlp.down_proj.weight: checkpoint has (64, 128), "
                        "config expects (64, 256)")
    assert msg.startswith("3 problem(s)")


def test_reject_non_finite(tmp_path, sd):
    bad = dict(sd)
    bad["model.norm.weight"] = torch.full((TINY.d,), float("nan"))
    _expect_error(tmp_path, bad, "model.norm.weight", "non-finite")


def test_reject_wrong_shape_in_bin(tmp_path, sd):
    bad = dict(sd)
    bad[I_PROJ] = torch.zeros(64, 32)
    _write_bin(tmp_path, bad, shards=3)
    with pytest.raises(C.CheckpointError,
                       match=r"i_proj.weight: checkpoint has \(64, 32\), config expects \(64, 64\)"):
        C.load_checkpoint(tmp_path)


def test_reject_missing_shard_and_files(tmp_path, sd):
    C.save_checkpoint(tmp_path / "a", TINY, sd, shard_bytes=40_000)
    victim = sorted((tmp_path / "a").glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(C.CheckpointError, match=victim.name):
        C.load_checkpoint(tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(C.CheckpointError, match="no config.json"):
        C.load_checkpoint(tmp_path / "b")
    (tmp_path / "b" / "config.json").write_text(json.dumps(TINY.to_hf_dict()))
    with pytest.raises(C.CheckpointError, match="no weights"):
        C.load_checkpoint(tmp_path / "b")


def test_save_rejects_bad_state_dict(tmp_path, sd):
    bad = dict(sd)
    bad[I_PROJ] = torch.zeros(64, 32)
    with pytest.raises(C.CheckpointError, match="state dict has"):
        C.save_checkpoint(tmp_path, TINY, bad)
    assert not (tmp_path / "model.safetensors").exists()
