"""Numeric fidelity of the golden (integer) model against the float PyTorch model.

    python -m sim.benches.fidelity --model demo   [--tokens 2048] -o build/fidelity/demo.json
    python -m sim.benches.fidelity --model 370m   [--tokens 16]   -o build/fidelity/370m.json

`demo` runs teacher-forced over the held-out text shipped with the demo checkpoint
(sw/demo/heldout.txt, never trained on) and reports top-1 agreement and the perplexity of both
models; a preset without a checkpoint uses the seeded random init (said so) on seeded random
tokens and reports the per-token cosine similarity of the logits. Both write JSON and print a
table. Figures are measurements of this code on this machine, not projections.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden import GoldenModel, GoldenWeights, logits_to_float
from sw import DEMO_DIR
from sw.artifacts import build_dir, model_image


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def compare_logits(float_logits: np.ndarray, golden_logits: np.ndarray, tokens: np.ndarray) -> dict:
    """Metrics over positions 0..T-1; perplexity over next-token predictions 0..T-2."""
    f = np.asarray(float_logits, np.float64)
    g = np.asarray(golden_logits, np.float64)
    top1 = float(np.mean(f.argmax(-1) == g.argmax(-1)))
    cos = (f * g).sum(-1) / (np.linalg.norm(f, axis=-1) * np.linalg.norm(g, axis=-1) + 1e-30)
    tgt = np.asarray(tokens)[1:]
    nll_f = -_log_softmax(f[:-1])[np.arange(len(tgt)), tgt]
    nll_g = -_log_softmax(g[:-1])[np.arange(len(tgt)), tgt]
    ppl_f, ppl_g = float(np.exp(nll_f.mean())), float(np.exp(nll_g.mean()))
    return {
        "positions": int(len(f)),
        "top1_agreement": top1,
        "cosine_min": float(cos.min()),
        "cosine_mean": float(cos.mean()),
        "max_abs_logit_diff": float(np.abs(f - g).max()),
        "ppl_float": ppl_f,
        "ppl_golden": ppl_g,
        "ppl_rel_diff": abs(ppl_g - ppl_f) / ppl_f,
    }


def perturbation_floor(cfg, sd: dict, tokens: np.ndarray, f_logits: np.ndarray, rel: float, seed: int = 1) -> dict:
    """Float model vs the same float model with every norm weight scaled by (1 + rel * N(0,1)).

    This is the sensitivity of the float network itself to perturbations of float32-ulp size:
    no implementation that is not bit-identical to the reference can be expected to agree better.
    """
    import torch

    from sw.model import HGRNBitForCausalLM

    g = torch.Generator().manual_seed(seed)
    sd2 = {k: (v * (1 + rel * torch.randn(v.shape, generator=g)) if k.endswith("norm.weight") else v)
           for k, v in sd.items()}
    net = HGRNBitForCausalLM(cfg)
    net.load_state_dict(sd2)
    net.eval()
    with torch.no_grad():
        p_logits = net(torch.tensor(tokens)[None])[0][0].float().numpy()
    return {"relative_perturbation": rel, **compare_logits(f_logits, p_logits, tokens)}


def layer_local(cfg, sd: dict, tokens: np.ndarray, weights: GoldenWeights) -> dict:
    """Numerics error without the network's chaos: every layer of the golden model is fed the
    float model's own inputs (residual x_l and state h_l, converted to FX) and its residual update
    x_{l+1} - x_l and new state are compared with the float layer's, per layer and token."""
    import torch

    from spec import numerics as N
    from sw.model import HGRNBitForCausalLM

    net = HGRNBitForCausalLM(cfg)
    net.load_state_dict(sd)
    net.eval()
    m = net.model
    lbs = m.lower_bound_table()
    state = net.init_state(1)
    gm = GoldenModel(weights)
    def to_fx(t):
        return np.clip(np.round(t.double().numpy()[0, 0] * (1 << N.FX_FRAC)), N.FX_MIN, N.FX_MAX).astype(np.int64)

    to_f = lambda v: np.asarray(v, np.float64) / (1 << N.FX_FRAC)
    cos_upd, cos_h = [], []
    with torch.no_grad():
        for tok in tokens:
            x = m.embeddings(torch.tensor([[int(tok)]])).float()
            for k, layer in enumerate(m.layers):
                gm.h[k] = to_fx(state[k][:, None])
                xg = to_f(gm.block(k, to_fx(x)))
                x_next, h = layer(x, None if lbs is None else lbs[k], state[k])
                uf = (x_next - x).double().numpy()[0, 0]
                ug = xg - x.double().numpy()[0, 0]
                cos_upd.append(float(uf @ ug / (np.linalg.norm(uf) * np.linalg.norm(ug) + 1e-30)))
                hf, hg = h.double().numpy()[0], to_f(gm.h[k])
                cos_h.append(float(hf @ hg / (np.linalg.norm(hf) * np.linalg.norm(hg) + 1e-30)))
                x, state[k] = x_next, h
    return {"layer_update_cosine_min": min(cos_upd), "layer_update_cosine_mean": float(np.mean(cos_upd)),
            "state_cosine_min": min(cos_h), "state_cosine_mean": float(np.mean(cos_h)),
            "layers_x_tokens": len(cos_upd)}


def load_case(model: str, n_tokens: int, seed: int = 0, announce: bool = True):
    """(config, float32 state dict, token ids, source) for a fidelity measurement.

    `demo`: the committed checkpoint and its held-out text (bos + tokens); a checkpoint dir: its
    weights on seeded random tokens; a preset: the seeded random init rounded to bfloat16 like a
    released checkpoint (so the image, whose embedding is bf16, and the float model see the same
    weights) on seeded random tokens.
    """
    import torch

    from spec.models import get_preset
    from sw.checkpoint import load_checkpoint
    from sw.model import random_state_dict

    if model == "demo":
        from sw.tokenizer import load_tokenizer
        cfg, sd = load_checkpoint(DEMO_DIR)
        ids = [cfg.bos_token_id] + load_tokenizer(DEMO_DIR).encode((DEMO_DIR / "heldout.txt").read_text()).ids
        if len(ids) < n_tokens:
            raise ValueError(f"held-out text has only {len(ids)} tokens, {n_tokens} requested")
        return cfg, sd, np.array(ids[:n_tokens]), f"checkpoint {DEMO_DIR}, held-out text"
    if Path(model).is_dir():
        cfg, sd = load_checkpoint(model)
        return cfg, sd, np.random.default_rng(seed).integers(0, cfg.vocab_size, n_tokens), f"checkpoint {model}"
    cfg = get_preset(model)
    sd = {k: v.to(torch.bfloat16).float() for k, v in random_state_dict(cfg, seed).items()}
    source = f"seeded random init (seed {seed}, bf16-rounded), random tokens"
    if announce:
        print(f"{model}: no checkpoint given, using a {source}", file=sys.stderr)
    return cfg, sd, np.random.default_rng(seed).integers(0, cfg.vocab_size, n_tokens), source


def measure(model: str, n_tokens: int, packing: str = "1.6bit", seed: int = 0, workdir: Path | None = None,
            progress: bool = True, floor: float | None = None, local: bool = False) -> dict:
    import torch

    from sw.export import export_image
    from sw.model import HGRNBitForCausalLM

    workdir = build_dir("fidelity") if workdir is None else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    cfg, sd, tokens, source = load_case(model, n_tokens, seed)

    net = HGRNBitForCausalLM(cfg)
    net.load_state_dict(sd)
    net.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        f_logits = net(torch.tensor(tokens)[None])[0][0].float().numpy()
    t_float = time.perf_counter() - t0

    if model == "demo" or Path(model).is_dir():     # a checkpoint as it is: the project's one cached image
        img_path = model_image(model, packing=packing, progress=False)[0]
    else:                   # bf16-rounded parameters (load_case): an image of its own
        img_path = workdir / f"{cfg.name}-bf16-seed{seed}-{packing}.img"
        export_image(cfg, sd, img_path, packing=packing, source=source)
    weights = GoldenWeights.from_path(img_path)
    gm = GoldenModel(weights)
    t0 = time.perf_counter()
    it = tokens
    if progress:
        try:
            from tqdm import tqdm
            it = tqdm(tokens, desc=f"golden {model}", unit="tok", file=sys.stderr)
        except ImportError:
            pass
    g_logits = np.stack([gm.step(int(t)) for t in it])
    t_golden = time.perf_counter() - t0
    res = compare_logits(f_logits, logits_to_float(g_logits), tokens)
    res |= {"model": model, "source": source, "packing": packing, "tokens": int(n_tokens),
            "float_seconds": t_float, "golden_seconds": t_golden,
            "what": "measured on this machine: golden integer model vs float PyTorch model, teacher-forced"}
    if local:
        res["layer_local"] = layer_local(cfg, sd, tokens, weights)
    if floor:
        res["float_vs_perturbed_float"] = perturbation_floor(cfg, sd, tokens, f_logits, floor)
    return res


def print_table(res: dict) -> None:
    rows = [
        ("model", res["model"]), ("source", res["source"]), ("positions", res["positions"]),
        ("top-1 agreement", f"{100 * res['top1_agreement']:.2f} %"),
        ("perplexity float / golden", f"{res['ppl_float']:.4f} / {res['ppl_golden']:.4f}"),
        ("perplexity relative diff", f"{100 * res['ppl_rel_diff']:.3f} %"),
        ("logit cosine min / mean", f"{res['cosine_min']:.5f} / {res['cosine_mean']:.5f}"),
        ("max |logit diff|", f"{res['max_abs_logit_diff']:.4f}"),
    ]
    fl = res.get("float_vs_perturbed_float")
    if fl:
        rows += [(f"float vs float, norms x(1+{fl['relative_perturbation']:g}*N(0,1))",
                  f"top-1 {100 * fl['top1_agreement']:.2f} %, cosine min {fl['cosine_min']:.5f} / mean "
                  f"{fl['cosine_mean']:.5f}, ppl rel diff {100 * fl['ppl_rel_diff']:.3f} %")]
    lo = res.get("layer_local")
    if lo:
        rows += [("layer-local update cosine min / mean",
                  f"{lo['layer_update_cosine_min']:.6f} / {lo['layer_update_cosine_mean']:.6f} "
                  f"({lo['layers_x_tokens']} layer-tokens)"),
                 ("layer-local state cosine min / mean",
                  f"{lo['state_cosine_min']:.6f} / {lo['state_cosine_mean']:.6f}")]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.benches.fidelity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo", help="demo, a preset name (seeded random init) or a checkpoint dir")
    ap.add_argument("--tokens", type=int, default=None, help="positions (default: 2048 for demo, 16 otherwise)")
    ap.add_argument("--packing", default="1.6bit", choices=["1.6bit", "2bit"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--floor", type=float, default=None, metavar="REL",
                    help="also compare the float model with itself after perturbing its norm weights by REL "
                         "(e.g. 1e-7): the agreement any non-bit-identical implementation can hope for")
    ap.add_argument("--local", action="store_true",
                    help="also feed every golden layer the float model's inputs and compare layer by layer")
    ap.add_argument("-o", "--output", type=Path, default=None)
    a = ap.parse_args(argv)
    n = a.tokens or (2048 if a.model == "demo" else 16)
    try:
        res = measure(a.model, n, a.packing, a.seed, floor=a.floor, local=a.local)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print_table(res)
    if a.output:
        a.output.parent.mkdir(parents=True, exist_ok=True)
        a.output.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {a.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
