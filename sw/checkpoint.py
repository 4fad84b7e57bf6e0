"""HF checkpoint directories of MMfreeLM (HGRNBit): strict, offline load and save.

Contract
--------
``load_checkpoint(dir) -> (ModelConfig, state_dict)``: reads ``config.json`` and the weights of a
Hugging Face model directory, with no network access. Weight files, first match wins:
  ``model.safetensors``; ``model.safetensors.index.json`` + its shards;
  ``pytorch_model.bin``; ``pytorch_model.bin.index.json`` + its shards (``torch.load`` with
  ``weights_only=True``). Tensors may be bf16, fp16 or fp32; they come back float32 on CPU.
Validation is strict against ``config.state_dict_shapes()``: any missing tensor, unexpected
tensor (nothing is ignored: these models have no tied or buffer-only entries) or shape mismatch
raises ``CheckpointError`` naming every offending tensor, e.g.
``model.layers.0.attn.i_proj.weight: checkpoint has (64, 32), config expects (64, 64)``.
Also rejected: non-floating or non-finite tensors, an index naming a missing shard, a tensor
present in two shards.

``save_checkpoint(dir, config, state_dict, dtype=torch.bfloat16, shard_bytes=None)`` writes
``config.json`` and ``model.safetensors`` (or ``model-0000i-of-0000n.safetensors`` shards of at
most ``shard_bytes`` each plus ``model.safetensors.index.json``), after the same validation.

``load_model(dir_or_preset, seed=0)``: an eval-mode ``sw.model.HGRNBitForCausalLM``; a preset
name (spec.models.PRESETS) gives a seeded random init and says so on stderr.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

from spec.models import PRESETS, ConfigError, ModelConfig
from sw import DEMO_DIR

SAFE_SINGLE = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
BIN_SINGLE = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


class CheckpointError(ValueError):
    """A checkpoint directory that does not hold exactly the tensors its config.json implies."""


# ---------------------------------------------------------------------------------------------
def validate_state_dict(config: ModelConfig, sd: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
    """Raise CheckpointError listing every missing, unexpected and mis-shaped tensor."""
    expected = config.state_dict_shapes()
    problems = []
    for name in sorted(set(expected) - set(sd)):
        problems.append(f"{name}: missing from the {where} (config expects {expected[name]})")
    for name in sorted(set(sd) - set(expected)):
        problems.append(f"{name}: unexpected tensor in the {where} (shape {tuple(sd[name].shape)}); "
                        "not a parameter of this config")
    for name in sorted(set(sd) & set(expected)):
        t = sd[name]
        if tuple(t.shape) != expected[name]:
            problems.append(f"{name}: {where} has {tuple(t.shape)}, config expects {expected[name]}")
        elif not t.is_floating_point():
            problems.append(f"{name}: dtype {t.dtype} is not a floating-point type")
        elif not bool(torch.isfinite(t).all()):
            problems.append(f"{name}: contains non-finite values")
    if problems:
        raise CheckpointError(f"{len(problems)} problem(s) with the {where} for model "
                              f"{config.name!r}:\n  " + "\n  ".join(problems))


def _read_config(d: Path) -> ModelConfig:
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise CheckpointError(f"{d}: no config.json")
    try:
        return ModelConfig.from_json_file(cfg_path, name=d.name)
    except ConfigError as e:
        raise CheckpointError(f"{cfg_path}: {e}") from None


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read safetensors file ({e})") from None


def _load_bin(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read torch file ({e})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: not a flat state dict of tensors")
    return obj


def _load_sharded(d: Path, index_name: str, loader) -> dict[str, torch.Tensor]:
    index_path = d / index_name
    try:
        index = json.loads(index_path.read_text())
        weight_map: dict[str, str] = index["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{index_path}: not a valid index ({e})") from None
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = d / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{index_path}: names shard {shard!r}, which does not exist")
        for name, t in loader(shard_path).items():
            if name in out:
                raise CheckpointError(f"{name}: present in more than one shard (second: {shard})")
            if weight_map.get(name) != shard:
                raise CheckpointError(f"{name}: found in {shard}, but the index says "
                                      f"{weight_map.get(name)!r}")
            out[name] = t
    missing_from_shards = sorted(set(weight_map) - set(out))
    if missing_from_shards:
        raise CheckpointError(f"{index_path}: tensors listed in the index but absent from their shards: "
                              + ", ".join(missing_from_shards))
    return out


def load_checkpoint(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """Read an HF checkpoint directory; see the module docstring."""
    d = Path(path)
    if not d.is_dir():
        raise CheckpointError(f"{d}: not a directory")
    config = _read_config(d)
    if (d / SAFE_SINGLE).is_file():
        raw = _load_safetensors(d / SAFE_SINGLE)
    elif (d / SAFE_INDEX).is_file():
        raw = _load_sharded(d, SAFE_INDEX, _load_safetensors)
    elif (d / BIN_SINGLE).is_file():
        raw = _load_bin(d / BIN_SINGLE)
    elif (d / BIN_INDEX).is_file():
        raw = _load_sharded(d, BIN_INDEX, _load_bin)
    else:
        raise CheckpointError(f"{d}: no weights ({SAFE_SINGLE}, {SAFE_INDEX}, {BIN_SINGLE} or {BIN_INDEX})")
    bad = sorted(n for n, t in raw.items() if t.is_floating_point() and t.dtype not in _DTYPES)
    if bad:
        raise CheckpointError("unsupported dtypes (bf16/fp16/fp32 only): "
                              + ", ".join(f"{n} ({raw[n].dtype})" for n in bad))
    validate_state_dict(config, raw)
    return config, {k: v.to(torch.float32).contiguous() for k, v in raw.items()}


def save_checkpoint(path: str | Path, config: ModelConfig, state_dict: dict[str, torch.Tensor],
                    dtype: torch.dtype = torch.bfloat16, shard_bytes: int | None = None) -> Path:
    """Write ``config.json`` + safetensors weights in ``dtype``; shards when ``shard_bytes`` is set."""
    from safetensors.torch import save_file

    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype}")
    sd = {k: v.detach() for k, v in state_dict.items()}
    validate_state_dict(config, sd, where="state dict")
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps(config.to_hf_dict(), indent=2) + "\n")
    tensors = {k: sd[k].to(device="cpu", dtype=dtype).contiguous() for k in config.state_dict_shapes()}
    meta = {"format": "pt"}
    for stale in [SAFE_SINGLE, SAFE_INDEX, *[p.name for p in d.glob("model-*-of-*.safetensors")]]:
        (d / stale).unlink(missing_ok=True)
    if shard_bytes is None:
        save_file(tensors, str(d / SAFE_SINGLE), metadata=meta)
        return d
    if shard_bytes <= 0:
        raise ValueError("shard_bytes must be positive")
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t
        size += nbytes
    n = len(shards)
    weight_map = {}
    for k, shard in enumerate(shards, 1):
        fname = f"model-{k:05d}-of-{n:05d}.safetensors"
        save_file(shard, str(d / fname), metadata=meta)
        weight_map.update({name: fname for name in shard})
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (d / SAFE_INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                           indent=2) + "\n")
    return d


def load_model(dir_or_preset: str | Path, seed: int = 0, log=None):
    """An eval-mode HGRNBitForCausalLM from a checkpoint directory or a preset name.

    ``demo`` loads the trained checkpoint in sw/demo/ when it exists. Any other preset name
    gives ``sw.model.random_state_dict(preset, seed)``, and a line saying it is a seeded random
    init goes to ``log`` (default: stderr). Raises CheckpointError for a name that is neither a
    directory nor a preset (the message lists the presets)."""
    from sw.model import build_model, random_state_dict

    log = log or (lambda msg: print(msg, file=sys.stderr))
    p = Path(dir_or_preset)
    if p.is_dir():
        config, sd = load_checkpoint(p)
        log(f"loaded checkpoint {p} ({config.num_hidden_layers} layers, d={config.hidden_size}, "
            f"vocab {config.vocab_size})")
        return build_model(config, sd)
    name = str(dir_or_preset)
    if name == "demo" and (DEMO_DIR / "config.json").is_file():
        return load_model(DEMO_DIR, seed=seed, log=log)
    if name not in PRESETS:
        raise CheckpointError(f"{name!r} is neither a checkpoint directory nor a known model; "
                              f"valid presets: {', '.join(PRESETS)}")
    config = PRESETS[name]
    log(f"model {name!r}: no checkpoint given, using a SEEDED RANDOM INIT (seed {seed}); "
        "its output is not meaningful text")
    return build_model(config, random_state_dict(config, seed))


def state_dict_nbytes(config: ModelConfig, dtype: torch.dtype = torch.bfloat16) -> int:
    """Bytes of all parameters in ``dtype``."""
    item = torch.tensor([], dtype=dtype).element_size()
    return item * sum(math.prod(s) for s in config.state_dict_shapes().values())
