"""Compare sw.model with the official MMfreeLM code (Triton kernels) on the same random weights.

Usage (needs a CUDA GPU, Triton and transformers; run on the device machine)::

    git -C <mirror of ridgerchu/matmulfreellm> archive HEAD mmfreelm | tar -x -C .official
    python -m sw.tools.compare_official --official .official --out OUT/official.json \
        [--golden OUT/official_tiny.npz] [--configs tiny,mid,370m]

For each configuration: one ``sw.model.random_state_dict(config, seed)`` (float32) is loaded into
both the official ``HGRNBitForCausalLM`` (CUDA, float32, ``use_cache=False``) and ours; both run
the same random token ids [B=2, T=32]. Reported (JSON, also printed): max |logit diff| of
  ours CPU prefill  vs official prefill
  ours CPU step-by-step decode vs official prefill
  ours CUDA prefill vs official prefill
  official step-by-step decode (its RecurrentCache) vs official prefill (when that path runs)
plus max |logit| for scale, the greedy-token agreement, the first position whose logits differ by
more than 1e-4, and a teacher-forced check ("isolated_*"): each of our BitLinear / RMSNorm modules
and our gate + recurrence run on the inputs the official modules received, relative diff.

Reading the numbers: int8 activation quantization makes the model chaotic at float32 rounding
level. A value that lands within a few ulps of a rounding tie flips its code under any change
of summation order, and that flip spreads through the recurrent state and the layers after it. So
full-model logits agree to ~1e-7 only when no such tie occurs (the tiny preset); otherwise the
useful yardsticks are the isolated diffs (~1e-7 relative) and the official code's own
prefill-vs-decode disagreement, which is of the same size as ours-vs-official.

The official package is imported as found; incompatibilities with newer torch / Triton /
transformers are patched here at runtime (never in their files): ``tl.math.round`` (gone from
Triton 3; libdevice ``round``), ``torch.cuda.amp.custom_fwd/bwd`` and
``torch.get_autocast_gpu_dtype`` (deprecated), ``_tied_weights_keys`` (transformers 5 format).
If the HF wrapper cannot be built, the official blocks (HGRNBitBlock, RMSNorm, FusedBitLinear) are
assembled by a minimal copy of HGRNBitModel.forward instead; the JSON says which ("mode").

``--golden`` writes the tiny case as an .npz (state dict ``sd/<name>``, ``input_ids``,
``logits``), the file tests/sw/test_official_golden.py checks against.
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import time
import traceback
import types
from pathlib import Path

import numpy as np
import torch

from spec.models import PRESETS, ModelConfig, intermediate_size_for
from sw.model import BitLinear, RMSNorm, build_model, hgrn_scan, random_state_dict, swiglu

CONFIGS = {
    "tiny": PRESETS["tiny"],
    "mid": ModelConfig(vocab_size=1024, hidden_size=256, num_hidden_layers=4,
                       intermediate_size=intermediate_size_for(256), name="mid"),
    "370m": PRESETS["370m"],
}


# ---------------------------------------------------------------------------------------------
# runtime shims for the official package
# ---------------------------------------------------------------------------------------------
def _apply_shims(log):
    import triton.language as tl

    if not hasattr(tl.math, "round"):
        lib = None
        for modname in ("triton.language.extra.cuda.libdevice", "triton.language.extra.libdevice",
                        "triton.language.math"):
            try:
                mod = __import__(modname, fromlist=["round"])
                if hasattr(mod, "round"):
                    lib = mod
                    break
            except Exception:
                continue
        if lib is None:
            raise RuntimeError("no libdevice round in this Triton")
        tl.math.round = lib.round
        log(f"shim: tl.math.round = {lib.__name__}.round")
    amp = torch.cuda.amp
    if not hasattr(amp, "custom_fwd"):
        amp.custom_fwd = functools.partial(torch.amp.custom_fwd, device_type="cuda")
        amp.custom_bwd = functools.partial(torch.amp.custom_bwd, device_type="cuda")
        log("shim: torch.cuda.amp.custom_fwd/bwd")
    if not hasattr(torch, "get_autocast_gpu_dtype"):
        torch.get_autocast_gpu_dtype = lambda: torch.get_autocast_dtype("cuda")
        log("shim: torch.get_autocast_gpu_dtype")


def import_official(path: Path, log):
    """Import the official package from ``path`` (the folder holding ``mmfreelm/``)."""
    _apply_shims(log)
    sys.path.insert(0, str(path.resolve()))
    try:
        import mmfreelm.models.hgrn_bit.modeling_hgrn_bit as mod
        return mod
    except Exception:
        log("plain import failed:\n" + traceback.format_exc())
    # bypass the package __init__ files (AutoModel registration etc.)
    for name in list(sys.modules):
        if name == "mmfreelm" or name.startswith("mmfreelm."):
            del sys.modules[name]
    for pkg in ("mmfreelm", "mmfreelm.models", "mmfreelm.models.hgrn_bit"):
        m = types.ModuleType(pkg)
        m.__path__ = [str(path / pkg.replace(".", "/"))]
        sys.modules[pkg] = m
    import importlib
    mod = importlib.import_module("mmfreelm.models.hgrn_bit.modeling_hgrn_bit")
    log("imported with stub package __init__s")
    return mod


def _hf_config(mod, cfg: ModelConfig):
    return mod.HGRNBitConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_hidden_layers,
        intermediate_size=cfg.intermediate_size, rms_norm_eps=cfg.rms_norm_eps,
        use_lower_bound=cfg.use_lower_bound, pad_token_id=cfg.pad_token_id, bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id, tie_word_embeddings=False, fuse_cross_entropy=False)


class _Composite(torch.nn.Module):
    """Fallback: official blocks, top level as HGRNBitModel.forward / HGRNBitForCausalLM.forward."""

    def __init__(self, mod, cfg: ModelConfig):
        super().__init__()
        c = types.SimpleNamespace(
            hidden_size=cfg.hidden_size, rms_norm_eps=cfg.rms_norm_eps, attn_mode="fused_recurrent",
            num_heads=1, expand_ratio=1, use_short_conv=False, conv_size=4, share_conv_kernel=True,
            hidden_ratio=4, intermediate_size=cfg.intermediate_size, hidden_act="swish")
        self.cfg = cfg
        self.model = torch.nn.Module()
        self.model.embeddings = torch.nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.model.lower_bounds = torch.nn.Parameter(torch.zeros(cfg.num_hidden_layers, cfg.hidden_size))
        self.model.layers = torch.nn.ModuleList(mod.HGRNBitBlock(c, k) for k in range(cfg.num_hidden_layers))
        self.model.norm = mod.RMSNorm(cfg.hidden_size, eps=cfg.rms_norm_eps)
        self.lm_head = mod.BitLinear(cfg.hidden_size, cfg.vocab_size, bias=False)

    def forward(self, input_ids, use_cache=False, return_dict=False, **_):
        x = self.model.embeddings(input_ids)
        lb = self.model.lower_bounds.softmax(0)
        lb = lb.cumsum(0) - lb[0]
        for k, layer in enumerate(self.model.layers):
            x, _, _ = layer(x, attention_mask=None, past_key_values=None, use_cache=False,
                            output_attentions=False, lower_bound=lb[k])
        return (self.lm_head(self.model.norm(x)),)


def build_official(mod, cfg: ModelConfig, log):
    try:
        cls = mod.HGRNBitForCausalLM
        cls._tied_weights_keys = None
        model = cls(_hf_config(mod, cfg))
        return model, "hf"
    except Exception:
        log("HGRNBitForCausalLM construction failed, using official blocks:\n" + traceback.format_exc())
        return _Composite(mod, cfg), "blocks"


# ---------------------------------------------------------------------------------------------
def _isolated(ours, cfg: ModelConfig, rec: dict) -> dict:
    """Teacher-forced check: every BitLinear / RMSNorm of ours run on the official module's own
    input (recorded in the official prefill), and our gates + recurrence run on the official
    i/f projections, compared with the official outputs. Returns the worst relative diffs."""
    mods = dict(ours.named_modules())
    worst, worst_name = 0.0, ""
    for n, (a, o) in rec.items():
        m = mods[n]
        if n.endswith("g_norm"):
            r = m(a[0]) * a[1] * torch.sigmoid(a[1])
        elif n.endswith("mlp_norm") and len(a) > 1 and torch.is_tensor(a[1]):
            r = m(a[0] + a[1])              # official fused prenorm: norm(x + residual)
        else:
            r = m(a[0])
        rel = float((r - o).abs().max()) / max(float(o.abs().max()), 1e-30)
        if rel > worst:
            worst, worst_name = rel, n
    lbs = ours.model.lower_bound_table()
    worst_h = 0.0
    for k in range(cfg.num_hidden_layers):
        p = f"model.layers.{k}.attn."
        f = torch.sigmoid(rec[p + "f_proj"][1])
        if lbs is not None and k > 0:
            f = lbs[k] + (1 - lbs[k]) * f
        i = swiglu(rec[p + "i_proj"][1], 1 - f)
        h = hgrn_scan(i, f, torch.zeros(i.shape[0], cfg.hidden_size))
        ho = rec[p + "g_norm"][0][1]
        worst_h = max(worst_h, float((h - ho).abs().max()) / max(float(ho.abs().max()), 1e-30))
    return {"isolated_modules_checked": len(rec), "isolated_worst_rel_diff": worst,
            "isolated_worst_module": worst_name, "isolated_recurrence_worst_rel_diff": worst_h}


def _trit_mismatches(cfg: ModelConfig, sd: dict) -> dict:
    """Ternary weights of the official weight_quant (float32 mean of |W| on the GPU) vs ours
    (spec.numerics: float64 mean rounded to float32): how many trits differ, in how many matrices."""
    from mmfreelm.ops.fusedbitnet import weight_quant as official_weight_quant

    from sw.model import weight_quant
    total, mats, beta_ulps = 0, 0, 0
    for name, _, _ in cfg.ternary_matrices():
        w = sd[name]
        off_trits = torch.sign(official_weight_quant(w.cuda().clone())).cpu()
        trits, sw = weight_quant(w)
        n = int((off_trits != trits).sum())
        total += n
        mats += n > 0
        off_beta = w.cuda().abs().mean().clamp(min=1e-5).cpu()
        our_beta = w.abs().double().mean().float().clamp(min=1e-5)
        beta_ulps = max(beta_ulps, abs(int(off_beta.view(torch.int32)) - int(our_beta.view(torch.int32))))
    return {"trit_mismatches": total, "matrices_with_trit_mismatch": mats,
            "n_ternary_matrices": len(cfg.ternary_matrices()), "max_beta_diff_ulps": beta_ulps}


def compare(mod, name: str, cfg: ModelConfig, seed: int, log, golden: Path | None) -> dict:
    t0 = time.time()
    res: dict = {"config": name, "layers": cfg.num_hidden_layers, "d": cfg.hidden_size,
                 "vocab": cfg.vocab_size, "intermediate": cfg.intermediate_size, "seed": seed}
    sd = random_state_dict(cfg, seed)
    off, mode = build_official(mod, cfg, log)
    res["mode"] = mode
    missing, unexpected = off.load_state_dict(sd, strict=False)
    res["official_missing_keys"] = list(missing)
    res["official_unexpected_keys"] = list(unexpected)
    if missing or unexpected:
        log(f"{name}: key mismatch missing={missing} unexpected={unexpected}")
    off = off.cuda().float().eval()
    B, T = 2, 32
    ids = torch.randint(0, cfg.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed + 1))
    ours = build_model(cfg, sd)
    ourmods = dict(ours.named_modules())
    rec: dict[str, tuple] = {}
    hooks = []
    for n, m in off.named_modules():
        if isinstance(ourmods.get(n), (BitLinear, RMSNorm)):
            def hook(m, a, o, n=n):
                o = o[0] if isinstance(o, tuple) else o
                rec[n] = ([x.detach().float().cpu() if torch.is_tensor(x) else x for x in a],
                          o.detach().float().cpu())
            hooks.append(m.register_forward_hook(hook))
    with torch.no_grad():
        out = off(input_ids=ids.cuda(), use_cache=False, return_dict=False,
                  output_attentions=False, output_hidden_states=False)
        off_logits = out[0].float().cpu()
        for h in hooks:
            h.remove()
        res.update(_isolated(ours, cfg, rec))
        our_logits, _ = ours(ids)
        s, steps = None, []
        for t in range(T):
            lg, s = ours.step(ids[:, t], s)
            steps.append(lg)
        our_steps = torch.stack(steps, 1)
        ours_cuda = build_model(cfg, sd).cuda()
        our_cuda_logits = ours_cuda(ids.cuda())[0].cpu()
        del ours_cuda

        def mad(a, b):
            return float((a - b).abs().max())

        res["max_abs_logit"] = float(off_logits.abs().max())
        res["ours_cpu_prefill_vs_official"] = mad(our_logits, off_logits)
        res["ours_cpu_steps_vs_official"] = mad(our_steps, off_logits)
        res["ours_cuda_prefill_vs_official"] = mad(our_cuda_logits, off_logits)
        res["ours_cpu_prefill_vs_ours_cpu_steps"] = mad(our_logits, our_steps)
        res["ours_cuda_vs_ours_cpu"] = mad(our_cuda_logits, our_logits)
        res.update(_trit_mismatches(cfg, sd))
        res["greedy_agreement"] = float((our_logits.argmax(-1) == off_logits.argmax(-1)).float().mean())
        res["n_logits_over_1e-4"] = int(((our_logits - off_logits).abs() > 1e-4).sum())
        per_pos = (our_logits - off_logits).abs().amax(dim=(0, 2))
        over = (per_pos > 1e-4).nonzero()
        res["first_position_over_1e-4"] = int(over[0]) if len(over) else None
        if mode == "hf":
            try:
                pkv, osteps = None, []
                for t in range(T):
                    o = off(input_ids=ids[:, t:t + 1].cuda(), past_key_values=pkv, use_cache=True,
                            return_dict=False, output_attentions=False, output_hidden_states=False)
                    osteps.append(o[0][:, 0].float().cpu())
                    pkv = o[1]
                off_steps = torch.stack(osteps, 1)
                res["official_steps_vs_official_prefill"] = mad(off_steps, off_logits)
                res["ours_cpu_steps_vs_official_steps"] = mad(our_steps, off_steps)
            except Exception:
                res["official_steps_error"] = traceback.format_exc(limit=3)
    if golden is not None:
        arrays = {f"sd/{k}": v.numpy() for k, v in sd.items()}
        arrays["input_ids"] = ids.numpy().astype(np.int64)
        arrays["logits"] = off_logits.numpy().astype(np.float32)
        arrays["seed"] = np.int64(seed)
        golden.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(golden, **arrays)
        res["golden"] = str(golden)
    res["seconds"] = round(time.time() - t0, 1)
    del off
    torch.cuda.empty_cache()
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--official", type=Path, required=True, help="folder holding the mmfreelm package")
    ap.add_argument("--out", type=Path, required=True, help="JSON report")
    ap.add_argument("--golden", type=Path, default=None, help="write the tiny case as .npz here")
    ap.add_argument("--configs", default="tiny,mid,370m")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    log_lines: list[str] = []

    def log(msg):
        print(msg, flush=True)
        log_lines.append(msg)

    if not torch.cuda.is_available():
        print("compare_official needs a CUDA GPU (the official kernels are Triton)", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "results": [],
              "log": log_lines}
    try:
        import transformers
        import triton
        report["transformers"], report["triton"] = transformers.__version__, triton.__version__
    except Exception:
        pass

    def dump():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))

    mod = import_official(args.official, log)
    for name in args.configs.split(","):
        try:
            r = compare(mod, name, CONFIGS[name], args.seed, log,
                        args.golden if name == "tiny" else None)
        except Exception:
            r = {"config": name, "error": traceback.format_exc()}
        log(json.dumps({k: v for k, v in r.items() if k != "error"}))
        if "error" in r:
            log(r["error"])
        report["results"].append(r)
        dump()
    return 0


if __name__ == "__main__":
    sys.exit(main())
