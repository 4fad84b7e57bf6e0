"""Greedy generation with the golden integer model.

    python -m sim.golden --model demo --prompt "ROMEO." -n 60
    python -m sim.golden --image build/370m-1.6bit.img --ids 1,450,21 -n 8

With --model (a preset or a checkpoint dir; `demo` is sw/demo) the image is exported to
build/golden/<name>.img first; --image uses an existing image. Text is printed when the checkpoint
has a tokenizer.json, token ids otherwise. Decoding is the accelerator's rule: argmax, first
maximum, over the FX logits.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import GoldenModel, GoldenWeights


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.golden", description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="preset name (seeded random init), 'demo', or a checkpoint directory")
    src.add_argument("--image", type=Path, help="an exported weight image")
    ap.add_argument("--prompt", default=None, help="prompt text (needs the checkpoint's tokenizer)")
    ap.add_argument("--ids", default=None, help="comma-separated prompt token ids")
    ap.add_argument("-n", type=int, default=40, help="tokens to generate")
    ap.add_argument("--packing", default="1.6bit", choices=["1.6bit", "2bit"])
    a = ap.parse_args(argv)

    tok = None
    try:
        if a.image is not None:
            weights = GoldenWeights.from_path(a.image)
        else:
            from spec.models import get_preset
            from sw.checkpoint import load_checkpoint
            from sw.export import export_image
            from sw.model import random_state_dict
            from sw.tokenizer import load_tokenizer

            d = Path(__file__).resolve().parents[2] / "sw" / "demo" if a.model == "demo" else Path(a.model)
            if d.is_dir():
                cfg, sd = load_checkpoint(d)
                tok = load_tokenizer(d)
                source = f"checkpoint {d}"
            else:
                cfg = get_preset(a.model)
                sd = random_state_dict(cfg, 0)
                source = "seeded random init (sw.model.random_state_dict), seed 0"
                print(f"{a.model}: no checkpoint, using a {source}", file=sys.stderr)
            img = Path("build/golden") / f"{cfg.name if not d.is_dir() else d.name}-{a.packing}.img"
            export_image(cfg, sd, img, packing=a.packing, source=source, progress=False)
            weights = GoldenWeights.from_path(img)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    cfg = weights.config
    if a.ids:
        prompt = [int(x) for x in a.ids.split(",")]
    elif a.prompt is not None:
        if tok is None:
            print("error: --prompt needs a checkpoint with tokenizer.json; use --ids", file=sys.stderr)
            return 1
        prompt = [cfg.bos_token_id] + tok.encode(a.prompt).ids
    else:
        prompt = [cfg.bos_token_id]
    t0 = time.perf_counter()
    try:
        out = GoldenModel(weights).generate(prompt, a.n)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dt = time.perf_counter() - t0
    if tok is not None:
        print(tok.decode(prompt + out))
    else:
        print(" ".join(map(str, prompt + out)))
    print(f"[golden model: {len(prompt) + a.n} steps in {dt:.2f} s, measured here]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
