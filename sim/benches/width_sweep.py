"""Width sweep: how the golden model's fidelity depends on the numerics widths.

    python -m sim.benches.width_sweep --model demo [--tokens 2048] -o build/fidelity/width_sweep.json

For each setting, the constants of spec/numerics.py are overridden *in this process only*, the
image is re-exported with them, and the golden model (the numpy definition in golden/ops.py,
which reads the constants at call time) runs teacher-forced against the float model. The contract
itself is the set of values in spec/numerics.py; this tool is how those values were chosen and is
the command that reproduces the table in docs/numerics.md. Measured on this machine.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np

from golden import GoldenModel, GoldenWeights, logits_to_float
from golden import ops as O
from sim.benches.fidelity import compare_logits, load_case
from spec import numerics as N
from sw.artifacts import build_dir

#: (label, overrides) — the first row is the contract as it stands
SETTINGS: list[tuple[str, dict]] = [
    ("contract", {}),
    ("FX_FRAC=10", {"FX_FRAC": 10}),
    ("FX_FRAC=12", {"FX_FRAC": 12}),
    ("FX_FRAC=14", {"FX_FRAC": 14}),
    ("FX_FRAC=16", {"FX_FRAC": 16}),
    ("FX_FRAC=20", {"FX_FRAC": 20}),
    ("FX_FRAC=28", {"FX_FRAC": 28}),
    ("GAMMA_BITS=8", {"GAMMA_BITS": 8, "GAMMA_TOP": 6}),
    ("GAMMA_BITS=12", {"GAMMA_BITS": 12, "GAMMA_TOP": 10}),
    ("SIG_STEP_LOG2=4", {"SIG_STEP_LOG2": 4, "SIG_ENTRIES": N.SIG_RANGE << 4}),
    ("SIG_STEP_LOG2=6", {"SIG_STEP_LOG2": 6, "SIG_ENTRIES": N.SIG_RANGE << 6}),
    ("GATE_FRAC=16", {"GATE_FRAC": 16, "GATE_ONE": 1 << 16}),
]


def _load(model: str, n_tokens: int):
    import torch

    from sw.model import HGRNBitForCausalLM

    cfg, sd, tokens, _ = load_case(model, n_tokens)
    net = HGRNBitForCausalLM(cfg)
    net.load_state_dict(sd)
    net.eval()
    with torch.no_grad():
        f_logits = net(torch.tensor(tokens)[None])[0][0].float().numpy()
    return cfg, sd, tokens, f_logits


def run_setting(cfg, sd, tokens, f_logits, overrides: dict, workdir: Path) -> dict:
    from sw.export import export_image

    overrides = overrides or {"NUMERICS_VERSION": N.NUMERICS_VERSION}   # patch.multiple needs one name
    with mock.patch.multiple(N, **overrides):
        with mock.patch.object(O, "_SIG_LUT", N.sigmoid_table().astype(np.int64)):
            img = workdir / "sweep.img"
            export_image(cfg, sd, img, packing="1.6bit", source="width sweep", progress=False)
            peak = [0]

            def trace(layer, op, v):
                if op.startswith("resid") or op == "h":
                    peak[0] = max(peak[0], int(np.abs(np.asarray(v, np.int64)).max()))

            gm = GoldenModel(GoldenWeights.from_path(img), trace=trace, backend="numpy")
            g = np.stack([gm.step(int(t)) for t in tokens])
            res = compare_logits(f_logits, logits_to_float(g), tokens)
            res["peak_abs_residual_or_state"] = peak[0] / (1 << N.FX_FRAC)
            res["saturated"] = bool(peak[0] >= N.FX_MAX)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.benches.width_sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="demo")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--only", default=None, help="comma-separated labels to run")
    ap.add_argument("-o", "--output", type=Path, default=None)
    a = ap.parse_args(argv)
    cfg, sd, tokens, f_logits = _load(a.model, a.tokens)
    workdir = build_dir("fidelity")
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for label, ov in SETTINGS:
        if a.only and label not in a.only.split(","):
            continue
        r = run_setting(cfg, sd, tokens, f_logits, ov, workdir)
        r["setting"] = label
        rows.append(r)
        print(f"{label:<16} top-1 {100 * r['top1_agreement']:6.2f} %  ppl rel {100 * r['ppl_rel_diff']:6.3f} %  "
              f"cos min {r['cosine_min']:.5f}  peak |x|,|h| {r['peak_abs_residual_or_state']:.1f}"
              f"{'  SATURATED' if r['saturated'] else ''}", flush=True)
    if a.output:
        a.output.parent.mkdir(parents=True, exist_ok=True)
        a.output.write_text(json.dumps({"model": a.model, "tokens": a.tokens, "rows": rows,
                                        "what": "measured on this machine (golden numpy backend vs float model)"},
                                       indent=2) + "\n")
        print(f"wrote {a.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
