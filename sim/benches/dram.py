"""DDR4 controller efficiency benchmark: the reference workloads under Verilator, beside the figures
of two independent DRAM simulators.

    python -m sim.benches.dram                      # DDR4-2400R, 8 Gb x8, x64, one rank
    python -m sim.benches.dram --cycles 400000 --speed DDR4-3200AA --geometry 8Gb_x16
    python -m sim.benches.dram --only seq_bg --dram-trace build/dram.trace

Every figure is simulated: the RTL controller (hw.mem.ddr4) driving the DFI-side DRAM model
(hw.mem.dram_model) whose JEDEC checker must report 0 violations. Read efficiency is the reference's
definition: RD commands x 4 clocks / elapsed DRAM clocks, over a window of `--cycles` controller
cycles (4 DRAM clocks each) after a warm-up, open page, 64-byte requests offered every cycle,
refresh included. The JSON goes to build/bench/dram.json.

Reference figures (../shared/reference/dram.md: DRAMSim3 with CL17, Ramulator 2.1 with CL16, both on
DDR4-2400 8 Gb x8, one rank, x64) are printed beside ours; they are not computed here.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from spec.dram import Channel
from sw.artifacts import build_dir

#: name -> (address map, workload, label, DRAMSim3 %, Ramulator 2.1 %)  (reference: ../shared/reference/dram.md)
WORKLOADS = {
    "seq_bg": ("bg_first", {"kind": "seq"}, "sequential reads, bank-group bits above the 64-B offset", 95.0, 95.1),
    "seq_col": ("col_first", {"kind": "seq"}, "sequential reads, column bits lowest", 78.2, 74.7),
    "seq_row": ("row_first", {"kind": "seq"}, "sequential reads, one bank until the row ends", None, 65.9),
    "random": ("bg_first", {"kind": "random"}, "uniform random reads, one rank", 58.2, 58.4),
    "seq_wr": ("bg_first", {"kind": "seq", "read_frac": 0.0}, "sequential writes (bg_first)", None, None),
    "mixed": ("bg_first", {"kind": "mixed", "read_frac": 0.67, "hot_lines": 4096},
              "mixed 2:1 reads/writes: stream + hot set + random", None, None),
}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} %"


def table(rows: list[dict]) -> str:
    out = ["| workload | map | efficiency (RD+WR)x4/clocks | DRAMSim3 | Ramulator 2.1 | ACT | REF | violations |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['label']} | {r['map']} | {_pct(100 * r['efficiency'])} | {_pct(r['dramsim3'])} | "
                   f"{_pct(r['ramulator'])} | {r['window_acts']} | {r['window_refs']} | {r['violations']} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.benches.dram", description=__doc__.split("\n\n")[0])
    ap.add_argument("--speed", default="DDR4-2400R")
    ap.add_argument("--geometry", default="8Gb_x8")
    ap.add_argument("--cycles", type=int, default=200_000, help="controller cycles per workload window")
    ap.add_argument("--warmup", type=int, default=2_000)
    ap.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), help="run only these workloads")
    ap.add_argument("--dram-trace", metavar="FILE",
                    help="write every DRAM command (docs/memory.md); with several workloads FILE.<workload>")
    ap.add_argument("--json", default=str(build_dir("bench", "dram.json")))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        Channel(args.speed, args.geometry)
    except ValueError as e:
        ap.error(str(e))

    from sim.rtl.dram import build, run

    names = args.only or list(WORKLOADS)
    rows = []
    t0 = time.time()
    for k, name in enumerate(names, 1):
        amap, wl, label, ds3, ram = WORKLOADS[name]
        ch = Channel(args.speed, args.geometry, address_map=amap)
        print(f"[{k}/{len(names)}] {name}: building {ch.speed} {ch.geometry} {amap} ...", file=sys.stderr, flush=True)
        b = build(ch, quiet=True)
        trace = None
        if args.dram_trace:
            trace = args.dram_trace if len(names) == 1 else f"{args.dram_trace}.{name}"
        t1 = time.time()
        print(f"[{k}/{len(names)}] {name}: {args.cycles} cycles ...", file=sys.stderr, flush=True)
        out = run(b, [dict(wl, name=name, cycles=args.cycles + args.warmup, warmup=args.warmup)],
                  seed=args.seed, trace=trace, quiet=True)
        r = out["workloads"][0]
        r.update(label=label, map=amap, dramsim3=ds3, ramulator=ram, speed=ch.speed, geometry=ch.geometry,
                 wall_s=round(time.time() - t1, 1), first_violations=out.get("violations", [])[:5])
        rows.append(r)
        print(f"[{k}/{len(names)}] {name}: efficiency {100 * r['efficiency']:.1f} %, violations {r['violations']}, "
              f"data errors {r['data_errors']}, {r['wall_s']} s", file=sys.stderr, flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    doc = {"what": "simulated DRAM clocks (RTL controller + DFI DRAM model under Verilator)",
           "speed": args.speed, "geometry": args.geometry, "window_cycles": args.cycles, "rows": rows,
           "wall_s": round(time.time() - t0, 1)}
    Path(args.json).write_text(json.dumps(doc, indent=1))
    print(f"{args.speed} {args.geometry} x64, one rank; window {args.cycles} controller cycles "
          f"= {4 * args.cycles} DRAM clocks per workload (simulated)")
    print(table(rows))
    print(f"JSON: {args.json}")
    bad = [r["name"] for r in rows if r["violations"] or r["data_errors"]]
    if bad:
        print(f"FAILED: violations or data errors in {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
