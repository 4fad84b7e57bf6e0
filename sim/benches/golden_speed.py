"""Benchmark (not a test): golden-model decode speed.

    python -m sim.benches.golden_speed --model 370m [--tokens 32] [--image IMG] -o build/bench/golden_370m.json

Exports the seeded random-init model if no image is given (sw.artifacts.model_image: cached under
build/images/ as make sim caches it),
decodes greedily and prints tokens/s, ms/token and the share spent in the ternary matvec kernel,
as a table and as JSON. Wall-clock measurement of this machine (`nproc` cores, kernel named).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from golden import GoldenModel, GoldenWeights, kernels


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.benches.golden_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="370m")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--packing", default="1.6bit", choices=["1.6bit", "2bit"])
    ap.add_argument("--image", type=Path, default=None)
    ap.add_argument("-o", "--output", type=Path, default=None)
    a = ap.parse_args(argv)

    img = a.image
    if img is None:
        from sw.artifacts import ArtifactError, model_image
        try:
            img, _, _ = model_image(a.model, packing=a.packing, log=lambda m: print(m, file=sys.stderr))
        except ArtifactError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    w = GoldenWeights.from_path(img)
    t_load = time.perf_counter() - t0
    gm = GoldenModel(w)

    # time the kernel separately by wrapping it
    spent = [0.0]
    inner = kernels.matvec

    def timed(trits, codes):
        t = time.perf_counter()
        r = inner(trits, codes)
        spent[0] += time.perf_counter() - t
        return r

    gm.step(w.config.bos_token_id)            # warm-up (JIT compile / cache load)
    gm.reset()
    kernels.matvec = timed                    # GoldenModel looks the kernel up at call time
    try:
        tok = w.config.bos_token_id
        t0 = time.perf_counter()
        for _ in range(a.tokens):
            logits = gm.step(tok)
            tok = int(np.argmax(logits))
        dt = time.perf_counter() - t0
    finally:
        kernels.matvec = inner
    res = {
        "what": "measured on this machine: golden model greedy decode, wall clock",
        "model": a.model, "image": str(img), "packing": a.packing, "tokens": a.tokens,
        "tokens_per_s": a.tokens / dt, "ms_per_token": 1000 * dt / a.tokens,
        "matvec_share": spent[0] / dt, "kernel": kernels.kernel_name(),
        "load_seconds": t_load, "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "ternary_weights": w.config.n_ternary_weights(),
    }
    rows = [("model", a.model), ("kernel", res["kernel"]), ("tokens", a.tokens),
            ("tokens/s", f"{res['tokens_per_s']:.1f}"), ("ms/token", f"{res['ms_per_token']:.1f}"),
            ("matvec share", f"{100 * res['matvec_share']:.0f} %"), ("image load", f"{t_load:.1f} s"),
            ("cpus", res["cpus"])]
    for k, v in rows:
        print(f"{k:<14}{v}")
    if a.output:
        a.output.parent.mkdir(parents=True, exist_ok=True)
        a.output.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
