"""Exporter: a model's float parameters -> a weight image (format in spec/weight_image.py,
docs/weight-image.md).

Every stored value comes from one spec.numerics conversion of the checkpoint's own parameter,
computed once (never from a dequantized tensor):

    embeddings              float_to_bf16_bits(model.embeddings.weight)
    layers.l.<matrix>       trits, beta = ternary_quantize(model.layers.l.<matrix>.weight)
    layers.l.<vector>       mantissas, exp = gamma_block(model.layers.l.<vector>.weight)
    layers.l.lower_bound    lower_bounds_from_param(model.lower_bounds)[l]   (zeros for l = 0 and
                            when use_lower_bound is false)
    layers.l.scalars        the betas and gamma exponents of layer l (spec LAYER_SCALARS)
    norm, lm_head.norm      gamma_block(model.norm.weight), gamma_block(lm_head.norm.weight)
    lm_head                 ternary_quantize(lm_head.weight);  head.scalars: spec HEAD_SCALARS

CLI:  python -m sw.export --model 370m [--checkpoint DIR] [--packing 2bit|1.6bit]
                          [--beat-bytes 64] [--seed 0] -o build/370m.img
Without --checkpoint the model is the seeded random init of sw.model.random_state_dict (said so
on screen and in the image's "source").
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from spec import numerics
from spec import weight_image as wi
from spec.models import PRESETS, ConfigError, ModelConfig, get_preset


class ExportError(ValueError):
    """The state dict cannot be exported (missing parameter, wrong shape, non-finite values)."""


def param_name(image_name: str) -> str:
    """The state-dict parameter a stored tensor is converted from (lower_bound: a row of it)."""
    if image_name == "embeddings":
        return "model.embeddings.weight"
    if image_name == "norm":
        return "model.norm.weight"
    if image_name.endswith(".lower_bound"):
        return "model.lower_bounds"
    if image_name.startswith("layers."):
        return f"model.{image_name}.weight"
    if image_name in ("lm_head", "lm_head.norm"):
        return f"{image_name}.weight"
    raise KeyError(f"{image_name!r} is not converted from a single parameter")


def _float32(t: Any) -> np.ndarray:
    """A torch tensor (any float dtype, e.g. bf16) or array -> float32 numpy, exact widening."""
    if hasattr(t, "detach"):
        import torch
        t = t.detach()
        if t.dtype != torch.float32:
            t = t.to(torch.float32)
        return t.cpu().numpy()
    return np.asarray(t, dtype=np.float32)


def _check_state_dict(config: ModelConfig, state_dict: Mapping[str, Any]) -> None:
    want = config.state_dict_shapes()
    missing = [k for k in want if k not in state_dict]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise ExportError(f"state dict lacks {', '.join(missing[:3])}{more}")
    for k, shape in want.items():
        got = tuple(state_dict[k].shape)
        if got != shape:
            raise ExportError(f"{k} has shape {got}, the model config wants {shape}")


def convert(config: ModelConfig, state_dict: Mapping[str, Any]) -> Iterator[tuple[str, np.ndarray]]:
    """(image name, decoded array) for every tensor of the image, in file order. Holds at most
    one layer's trits at a time (a layer's scalars record precedes its matrices)."""
    _check_state_dict(config, state_dict)

    def get(name: str) -> np.ndarray:
        return _float32(state_dict[param_name(name)])

    def quantize(name: str) -> tuple[np.ndarray, np.float32]:
        with np.errstate(invalid="ignore"):      # NaN/inf weights: reported just below
            trits, beta = numerics.ternary_quantize(get(name))
        if not np.isfinite(beta):
            raise ExportError(f"{param_name(name)} has non-finite values")
        return trits, beta

    def gamma(name: str) -> tuple[np.ndarray, int]:
        try:
            return numerics.gamma_block(get(name))
        except ValueError as e:
            raise ExportError(f"{param_name(name)}: {e}") from None

    emb = get("embeddings")
    bits = np.empty(emb.shape, np.uint16)
    for r in range(0, emb.shape[0], 4096):        # elementwise, so row chunks are exact; less memory
        bits[r:r + 4096] = numerics.float_to_bf16_bits(emb[r:r + 4096])
    del emb
    yield "embeddings", bits
    del bits
    d = config.hidden_size
    if config.use_lower_bound:
        lbs = numerics.lower_bounds_from_param(_float32(state_dict["model.lower_bounds"]))
        lbs[0] = 0        # layer 0 has no lower bound (the rule gives exactly 0 there anyway)
    else:
        lbs = np.zeros((config.num_hidden_layers, d), np.uint32)
    for layer in range(config.num_hidden_layers):
        p = f"layers.{layer}."
        vectors, exps, trits, betas = {}, {}, {}, {}
        for suffix, kind in wi.LAYER_TENSORS:
            if kind == "gamma":
                vectors[p + suffix], exps[p + suffix] = gamma(p + suffix)
            elif kind == "trits":
                trits[p + suffix], betas[p + suffix] = quantize(p + suffix)
        yield p + "scalars", wi.scalars_record(wi.LAYER_SCALARS, p, betas, exps)
        for suffix, kind in wi.LAYER_TENSORS[1:]:
            name = p + suffix
            if kind == "gate":
                yield name, lbs[layer]
            else:
                yield name, (vectors if kind == "gamma" else trits).pop(name)
    norm, norm_exp = gamma("norm")
    head_norm, head_norm_exp = gamma("lm_head.norm")
    head_trits, head_beta = quantize("lm_head")
    yield "norm", norm
    yield "lm_head.norm", head_norm
    yield "head.scalars", wi.scalars_record(wi.HEAD_SCALARS, "", {"lm_head": head_beta},
                                            {"norm": norm_exp, "lm_head.norm": head_norm_exp})
    yield "lm_head", head_trits


@dataclasses.dataclass(frozen=True)
class ExportResult:
    path: Path
    nbytes: int          # the whole file
    n_ternary: int       # ternary weights (layers + lm_head)
    trit_nbytes: int     # bytes of the packed ternary matrices, padding included
    seconds: float


def export_image(config: ModelConfig, state_dict: Mapping[str, Any], path: str | Path,
                 packing: str = wi.DEFAULT_PACKING, beat_bytes: int = wi.DEFAULT_BEAT_BYTES,
                 source: str = "", progress: bool = False) -> ExportResult:
    """Convert `state_dict` (official parameter names, torch tensors or arrays) and write the
    image to `path`. Raises ExportError / ValueError; nothing is left at `path` on error."""
    t0 = time.perf_counter()
    wi.check_packing(packing, beat_bytes)
    with wi.ImageWriter(path, config, packing=packing, beat_bytes=beat_bytes, source=source) as w:
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=len(w.layout.tensors), unit="tensor", desc=f"export {config.name}",
                       file=sys.stderr, leave=False)
        try:
            for name, array in convert(config, state_dict):
                w.add(name, array)
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    trit_nbytes = sum(t.nbytes for t in w.layout.tensors if t.kind == "trits")
    return ExportResult(Path(path), Path(path).stat().st_size, config.n_ternary_weights(), trit_nbytes,
                        time.perf_counter() - t0)


# -- CLI -------------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):            # exit 1 with "error: ...", like every other failure
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(1)


_IMAGE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "intermediate_size", "use_lower_bound")


def _checkpoint_config(ckpt_config: ModelConfig, model: str | None) -> ModelConfig:
    """--model with --checkpoint only names the model; a preset name must match its shape."""
    if model is None:
        return ckpt_config
    if model in PRESETS:
        preset = PRESETS[model]
        diff = [f"{f} {getattr(ckpt_config, f)} (preset {getattr(preset, f)})"
                for f in _IMAGE_FIELDS if getattr(ckpt_config, f) != getattr(preset, f)]
        if diff:
            raise ConfigError(f"the checkpoint is not the {model} preset: {', '.join(diff)}; "
                              "omit --model to take the checkpoint's own config")
    return dataclasses.replace(ckpt_config, name=model)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m sw.export", description="Export a model to a weight image.")
    ap.add_argument("--model", help=f"model name: {', '.join(PRESETS)} (with --checkpoint: optional, "
                                    "only names it; a preset name must match the checkpoint)")
    ap.add_argument("--checkpoint", type=Path, help="HF checkpoint directory (default: seeded random init)")
    ap.add_argument("--packing", default=wi.DEFAULT_PACKING, help=f"{' | '.join(wi.PACKINGS)} "
                                                                 f"(default {wi.DEFAULT_PACKING})")
    ap.add_argument("--beat-bytes", type=int, default=wi.DEFAULT_BEAT_BYTES,
                    help=f"memory beat in bytes: {', '.join(map(str, wi.BEAT_BYTES_ALLOWED))} "
                         f"(default {wi.DEFAULT_BEAT_BYTES})")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random init (without --checkpoint)")
    ap.add_argument("-o", "--output", type=Path, help="image path (default build/<model>.img)")
    args = ap.parse_args(argv)
    try:
        wi.check_packing(args.packing, args.beat_bytes)
        if args.output is not None and args.output.is_dir():
            raise ExportError(f"-o {args.output} is a directory; give the image's file name")
        if args.checkpoint is not None:
            if not args.checkpoint.is_dir():
                raise ExportError(f"checkpoint directory {args.checkpoint} does not exist")
            from sw.checkpoint import load_checkpoint
            ckpt_config, state_dict = load_checkpoint(args.checkpoint)
            config = _checkpoint_config(ckpt_config, args.model)
            source = f"checkpoint {args.checkpoint.resolve()}"
            print(f"exporting {config.name} from checkpoint {args.checkpoint}")
        else:
            if args.model is None:
                raise ConfigError(f"give --model ({', '.join(PRESETS)}) or --checkpoint DIR")
            config = get_preset(args.model)
            from sw.model import random_state_dict
            source = f"seeded random init (sw.model.random_state_dict), seed {args.seed}"
            print(f"note: no --checkpoint given: exporting {config.name} with a SEEDED RANDOM INIT "
                  f"(seed {args.seed}), not trained weights")
            state_dict = random_state_dict(config, args.seed)
        from sw.artifacts import build_dir
        out = args.output or build_dir(f"{config.name}.img")
        res = export_image(config, state_dict, out, packing=args.packing, beat_bytes=args.beat_bytes,
                           source=source, progress=True)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except (ConfigError, ExportError, wi.ImageError, ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {res.path}: {res.nbytes} bytes ({res.nbytes / 1e6:.1f} MB), {args.packing}, "
          f"beat {args.beat_bytes} bytes")
    print(f"{res.n_ternary} ternary weights in {res.trit_nbytes} bytes: "
          f"{res.trit_nbytes / res.n_ternary:.4f} bytes ({8 * res.trit_nbytes / res.n_ternary:.3f} bits) "
          f"per ternary weight; {res.nbytes / res.n_ternary:.4f} bytes per ternary weight for the whole "
          f"image (embedding included)")
    print(f"elapsed {res.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
