"""Benchmark (not a test): beat throughput of the ternary array, in simulated cycles.

    python -m sim.benches.tmac [--config ddr4] [--rows N] [--cols K] [--seed S] [-o build/bench/tmac.json]

Builds hw.core.tmac.TernaryArray from a spec.accel configuration, loads a random int8 vector,
then streams a random ternary matrix (packed with spec.weight_image.pack_trits) with the weight
stream never idle, once with `acc` always ready and once per output-stall probability (seeded
random backpressure on `acc`). Checks every sum against golden/kernels.matvec_numpy and
prints, as a table and as JSON: the fraction of cycles in which a beat was consumed while the
weight stream was valid (target >= 95 % without stalls), weight slots and matrix weights per
cycle, and cycle counts. Every figure is counted in simulated clock cycles of the Amaranth
simulator, not measured on hardware, and says so.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
from amaranth.sim import Simulator

from golden.kernels import matvec_numpy
from hw.core.tmac import ARRAY_LATENCY, TernaryArray
from spec import numerics as N
from spec import weight_image as wi
from spec.accel import CONFIGS, get_config
from sw.artifacts import build_dir

UNIT = "simulated cycles"


def run_case(cfg, trits: np.ndarray, codes: np.ndarray, *, acc_stall: float, seed: int) -> dict:
    """One matrix through the array; counts per simulated cycle."""
    dut = TernaryArray(cfg)
    b, t = cfg.row_lanes, cfg.trits_per_byte
    rows, cols = trits.shape
    tiles, groups, _ = wi.packed_shape(rows, cols, cfg.packing, cfg.beat_bytes)
    packed = wi.pack_trits(trits, cfg.packing, cfg.beat_bytes).reshape(tiles, groups, b)
    beats = [(int.from_bytes(packed[ti, g].tobytes(), "little"), int(g == groups - 1))
             for ti in range(tiles) for g in range(groups)]
    code_groups = np.zeros(groups * t, np.int64)
    code_groups[:cols] = codes
    code_groups = code_groups.reshape(groups, t).tolist()

    st = {"codes_cycles": 0, "valid_cycles": 0, "beat_cycles": 0, "cycles": 0, "acc_stall_cycles": 0}
    got: list[list[int]] = []
    loaded = []

    async def codes_source(ctx):
        for g, group in enumerate(code_groups):
            ctx.set(dut.codes.payload, {"data": group, "last": int(g == groups - 1)})
            ctx.set(dut.codes.valid, 1)
            await ctx.tick().until(dut.codes.ready)
            st["codes_cycles"] += 1
        ctx.set(dut.codes.valid, 0)
        loaded.append(True)

    async def weights_source(ctx):
        while not loaded:                         # the vector first, then a never-idle stream
            await ctx.tick()
        for n, (beat, last) in enumerate(beats):
            ctx.set(dut.weights.payload, {"data": beat, "last": last, "end": int(n == len(beats) - 1)})
            ctx.set(dut.weights.valid, 1)
            await ctx.tick().until(dut.weights.ready)
        ctx.set(dut.weights.valid, 0)

    async def monitor(ctx):
        rng = random.Random(seed)
        while len(got) < tiles:
            ready = not (acc_stall and rng.random() < acc_stall)
            ctx.set(dut.acc.ready, ready)
            _, _, w_valid, w_ready, a_valid, payload = await ctx.tick().sample(
                dut.weights.valid, dut.weights.ready, dut.acc.valid, dut.acc.payload)
            if w_valid:
                st["valid_cycles"] += 1
                st["beat_cycles"] += int(w_ready)
            if loaded or w_valid:
                st["cycles"] += 1
            if a_valid and not ready:
                st["acc_stall_cycles"] += 1
            if a_valid and ready:
                got.append([payload.data[i] for i in range(b)])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(codes_source, background=True)
    sim.add_testbench(weights_source, background=True)
    sim.add_testbench(monitor)
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0

    expect = np.zeros(tiles * b, np.int64)
    expect[:rows] = matvec_numpy(trits, codes)
    if np.asarray(got).reshape(-1).tolist() != expect.tolist():
        raise AssertionError("array sums differ from golden.kernels.matvec_numpy")

    util = st["beat_cycles"] / st["valid_cycles"]
    return {
        "acc_stall_probability": acc_stall,
        "beats": len(beats),
        "tiles": tiles,
        "groups_per_tile": groups,
        "codes_load_cycles": st["codes_cycles"],
        "weights_valid_cycles": st["valid_cycles"],
        "beat_cycles": st["beat_cycles"],
        "matmul_cycles": st["cycles"],
        "acc_not_ready_cycles": st["acc_stall_cycles"],
        "beat_fraction_while_valid": util,
        "weight_slots_per_cycle": st["beat_cycles"] * b * t / st["valid_cycles"],
        "matrix_weights_per_cycle": rows * cols / st["cycles"],
        "weight_slots_per_beat": b * t,
        "checked_against_golden": True,
        "simulator_wall_s": round(wall, 2),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.benches.tmac", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="ddr4", choices=list(CONFIGS))
    ap.add_argument("--rows", type=int, default=None, help="matrix rows (default 4 row tiles + 3)")
    ap.add_argument("--cols", type=int, default=None, help="matrix columns (default 64 groups - 2)")
    ap.add_argument("--stalls", default="0.5,0.9", help="acc not-ready probabilities to run besides 0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, default=build_dir("bench", "tmac.json"))
    a = ap.parse_args(argv)

    cfg = get_config(a.config)
    rows = a.rows if a.rows is not None else 4 * cfg.row_lanes + 3
    cols = a.cols if a.cols is not None else 64 * cfg.trits_per_byte - 2
    if not (1 <= cols <= cfg.vlen) or rows < 1:
        ap.error(f"need rows >= 1 and 1 <= cols <= vlen ({cfg.vlen})")
    rng = np.random.default_rng(a.seed)
    stalls = [0.0] + [float(s) for s in a.stalls.split(",") if s.strip()]
    # the requested matrix, and one of many short tiles where output stalls bite: the shortest that
    # still runs at a beat a cycle (ARRAY_LATENCY groups: the array's contract)
    shapes = [(rows, cols), (16 * cfg.row_lanes + 3, ARRAY_LATENCY * cfg.trits_per_byte - 1)]
    cases = []
    for r, k in shapes:
        trits = rng.choice(np.array([-1, 0, 1], np.int8), size=(r, k))
        codes = rng.integers(N.CODE_MIN, N.CODE_MAX + 1, k).astype(np.int8)
        for s in stalls:
            case = run_case(cfg, trits, codes, acc_stall=s, seed=a.seed + len(cases))
            cases.append({"rows": r, "cols": k, **case})
    report = {
        "unit": UNIT,
        "config": a.config,
        "beat_bytes": cfg.beat_bytes,
        "packing": cfg.packing,
        "row_lanes": cfg.row_lanes,
        "trits_per_byte": cfg.trits_per_byte,
        "seed": a.seed,
        "target_beat_fraction_unstalled": 0.95,
        "cases": cases,
    }

    print(f"ternary array, config {a.config} ({cfg.packing}, {cfg.beat_bytes}-byte beats, "
          f"{cfg.row_lanes} lanes x {cfg.trits_per_byte} trits); "
          f"all figures in {UNIT} (Amaranth simulation)")
    hdr = ("W rows x cols", "acc stall p", "beats", "codes load", "w valid", "beats taken", "beat/valid",
           "slots/cycle", "weights/cycle", "matmul cycles")
    print(" | ".join(hdr))
    for c in cases:
        print(" | ".join([
            f"{c['rows']} x {c['cols']}", f"{c['acc_stall_probability']:.2f}",
            str(c["beats"]), str(c["codes_load_cycles"]),
            str(c["weights_valid_cycles"]), str(c["beat_cycles"]),
            f"{100 * c['beat_fraction_while_valid']:.1f} %", f"{c['weight_slots_per_cycle']:.1f}",
            f"{c['matrix_weights_per_cycle']:.1f}", str(c["matmul_cycles"])]))
    print("(beat/valid: cycles a beat was consumed / cycles the weight stream was valid; "
          "slots = B*T trit positions of a beat, padding included; weights = rows*cols of the matrix; "
          "matmul cycles: from the first cycle with the weight stream valid (vector loaded) to the "
          f"last tile's sums out; all {UNIT})")
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"wrote {a.output}", file=sys.stderr)
    ok = cases[0]["beat_fraction_while_valid"] >= report["target_beat_fraction_unstalled"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
