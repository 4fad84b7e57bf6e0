"""`make bench`: 370m decode on the full-system simulator against the weight-stream roofline.

    python -m sim.benches.system [--model 370m] [--tokens 1] [--points all|quick] [-o build/bench/sim.json]

Every point runs the model through `sim.driver.run_sim` on the Verilator backend (so every token
is checked bit for bit against the golden machine, like `make sim`) and records, from the
simulated cycles: cycles per token (TOKIN to TOKOUT of the last step, the steady state), tokens/s
at the stated clock (the DDR4 controller clock, data rate / 8: a projection from simulated cycles),
DRAM bytes per token, and the efficiency against the weight-stream roofline (peak bandwidth of the
channels / ternary weight bytes per token, ../shared/reference/anchors.md). The points:

* packing: 1.6-bit and 2-bit on one channel (the roofline targets: 0.90 of 281 and 225 tokens/s);
* channels 1, 2, 4 (each with the accelerator configuration whose beat matches the channels:
  `ddr4`, `ddr4x2`, `ddr4x4`: spec.accel.CHANNEL_CONFIGS);
* cores 1, 2, 4 sharing one weight stream (batch; the shape of the paper's core-count table:
  latency per token and aggregate tokens/s against cores).

Output: build/bench/sim.json (every figure with what it is), a readable table on stdout, and the
plots build/bench/sim_channels.png and build/bench/sim_cores.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sw.artifacts import build_dir


def points(kind: str) -> list[dict]:
    from spec.accel import config_for_channels

    pts = [{"group": "packing", "config": "ddr4", "packing": "1.6bit", "cores": 1, "channels": 1},
           {"group": "packing", "config": "ddr4", "packing": "2bit", "cores": 1, "channels": 1}]
    for ch in (2, 4):
        cfg = config_for_channels(ch).name
        pts.append({"group": "channels", "config": cfg, "packing": "1.6bit", "cores": 1, "channels": ch})
    if kind == "all":
        for c in (2, 4):
            pts.append({"group": "cores", "config": "ddr4", "packing": "1.6bit", "cores": c, "channels": 1})
    return pts


def run_point(pt: dict, model: str, tokens: int, log) -> dict:
    from sim.driver import run_sim
    from sw.artifacts import prepare, resolve_config

    cfg = resolve_config(pt["config"], pt["packing"]).with_cores(pt["cores"])
    p = prepare(model, None, config=cfg, log=log)
    t0 = time.perf_counter()
    rep = run_sim(p, "verilator", [p.model_config.bos_token_id], tokens, channels=pt["channels"],
                  progress=True, log=log)
    f = rep["figures"]
    last = [tc[-1] for tc in rep["token_cycles"]]
    cyc = max(last)                         # the steady-state step (every step runs the same program)
    clock = f["clock_mhz"] * 1e6
    tps = clock / cyc
    out = dict(pt, cycles_per_token=cyc, latency_ms=1e3 * cyc / clock, tokens_per_s=tps,
               aggregate_tokens_per_s=tps * pt["cores"], roofline_tokens_per_s=f["roofline_tokens_per_s"],
               efficiency=tps / f["roofline_tokens_per_s"], dram_bytes_per_token=f["dram_bytes_per_token"],
               weight_bytes_per_token=f["weight_bytes_per_token"], clock_mhz=f["clock_mhz"],
               wall_seconds=time.perf_counter() - t0, wall_seconds_per_token=f["wall_seconds_per_token"],
               sim_cycles_per_s=f["sim_cycles_per_s"], bit_exact=rep["bit_exact"],
               violations=sum(c.get("violations", 0) for c in rep["stats"].get("channels", [])))
    return out


def table(rows: list[dict]) -> str:
    head = ("| config | packing | cores | channels | cycles/token | latency | tokens/s (aggregate) | roofline | "
            "efficiency | DRAM MB/token | wall s/token |")
    out = [head, "|" + "---|" * 11]
    for r in rows:
        out.append(f"| {r['config']} | {r['packing']} | {r['cores']} | {r['channels']} | {r['cycles_per_token']:,} | "
                   f"{r['latency_ms']:.2f} ms | {r['tokens_per_s']:.1f} ({r['aggregate_tokens_per_s']:.1f}) | "
                   f"{r['roofline_tokens_per_s']:.1f} | {100 * r['efficiency']:.1f} % | "
                   f"{(r['dram_bytes_per_token'] or 0) / 1e6:.1f} | {r['wall_seconds_per_token']:.1f} |")
    return "\n".join(out)


def plots(rows: list[dict], out_dir: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    base = [r for r in rows if r["packing"] == "1.6bit" and r["cores"] == 1]
    ch = sorted({r["channels"]: r for r in base}.values(), key=lambda r: r["channels"])
    if ch:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        x = [r["channels"] for r in ch]
        ax.plot(x, [r["tokens_per_s"] for r in ch], "o-", label="simulated (projection at the clock)")
        ax.plot(x, [r["roofline_tokens_per_s"] for r in ch], "k--", label="weight-stream roofline")
        ax.set_xlabel("DDR4-2400 x64 channels")
        ax.set_ylabel("370m tokens/s, batch 1")
        ax.set_xticks(x)
        ax.legend(fontsize=8)
        ax.grid(alpha=.3)
        fig.tight_layout()
        p = out_dir / "sim_channels.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made.append(p)
    co = sorted({r["cores"]: r for r in rows if r["channels"] == 1 and r["packing"] == "1.6bit"
                 and r["config"] == "ddr4"}.values(), key=lambda r: r["cores"])
    if len(co) > 1:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        x = [r["cores"] for r in co]
        ax.plot(x, [r["latency_ms"] for r in co], "o-", label="latency per token (ms)")
        ax2 = ax.twinx()
        ax2.plot(x, [r["aggregate_tokens_per_s"] for r in co], "s--", color="C1", label="aggregate tokens/s")
        ax.set_xlabel("cores sharing one weight stream (batch)")
        ax.set_ylabel("ms per token")
        ax2.set_ylabel("tokens/s (all cores)")
        ax.set_xticks(x)
        ax.grid(alpha=.3)
        fig.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        p = out_dir / "sim_cores.png"
        fig.savefig(p, dpi=120)
        plt.close(fig)
        made.append(p)
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.benches.system", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="370m")
    ap.add_argument("--tokens", type=int, default=1, help="generated tokens per point (the last step is measured)")
    ap.add_argument("--points", default="all", choices=("all", "quick"))
    ap.add_argument("-o", "--json", type=Path, default=build_dir("bench", "sim.json"))
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    rows = []
    for pt in points(args.points):
        log(f"== {pt}")
        try:
            rows.append(run_point(pt, args.model, args.tokens, log))
        except Exception as e:
            log(f"error: {pt}: {type(e).__name__}: {e}")
            rows.append(dict(pt, error=f"{type(e).__name__}: {e}"))
    ok = [r for r in rows if "error" not in r]
    args.json.parent.mkdir(parents=True, exist_ok=True)
    one = {r["channels"]: r for r in ok if r["cores"] == 1 and r["packing"] == "1.6bit"}
    summary = {}
    for n in (2, 4):
        if 1 in one and n in one:
            summary[f"speedup_{n}_channels"] = one[n]["tokens_per_s"] / one[1]["tokens_per_s"]
    doc = {"what": "simulated cycles of the RTL under Verilator (bit-exact vs golden every token); tokens/s are "
                   "projections at the stated clock; wall times are measurements on this machine",
           "model": args.model, "points": rows, "summary": summary}
    args.json.write_text(json.dumps(doc, indent=1))
    print(table(ok))
    for k, v in summary.items():
        print(f"{k}: {v:.2f}x")
    for p in plots(ok, args.json.parent):
        print(f"plot: {p}")
    print(f"json: {args.json}")
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
