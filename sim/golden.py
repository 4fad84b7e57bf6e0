"""Greedy generation with the golden integer model.

    python -m sim.golden --model demo --prompt "ROMEO." -n 60
    python -m sim.golden --image build/images/370m-seed0-1.6bit-b64.img --ids 1,450,21 -n 8

With --model (a preset's seeded random init, `demo` for sw/demo, or a checkpoint dir) the image
comes from sw.artifacts (exported once, cached under build/images/ as make sim caches it); --image
uses an existing image. Text is printed when the checkpoint
has a tokenizer.json, token ids otherwise. Decoding is the accelerator's rule: argmax, first
maximum, over the FX logits.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from golden import GoldenModel, GoldenWeights


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
            from sw import DEMO_DIR
            from sw.artifacts import ArtifactError, model_image
            from sw.tokenizer import load_tokenizer

            d = DEMO_DIR if a.model == "demo" else Path(a.model)
            try:
                img, _, source = model_image(a.model, packing=a.packing, progress=False)
            except ArtifactError as e:
                raise ValueError(str(e)) from None
            if d.is_dir():
                tok = load_tokenizer(d)
            else:
                print(f"{a.model}: no checkpoint, using a {source}", file=sys.stderr)
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
