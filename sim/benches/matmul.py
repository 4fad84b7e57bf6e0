"""Benchmark (not a test): TMATMUL on hw.core.matmul.MatmulUnit, in simulated cycles.

    python -m sim.benches.matmul [--config ecp5] [--shapes 192x192,1024x192,192x512]
                                   [--stalls 0.3] [--overlap auto|on|off] [--seed S]
                                   [-o build/bench/matmul.json]

Builds MatmulUnit from a spec.accel configuration and runs one TMATMUL per shape (rows x cols) in
the Amaranth simulator, with the register-file and RAM models of sim/tb/unit.py behind
its channels: once on a memory that never stalls and once per memory stall probability (seeded
random pauses on every handshake the RAM controls). Every result is checked against the golden
formula (golden.machine's _tmatmul: unpack_trits, kernels.matvec_numpy, ops.apply_sf). ``--overlap``
is MatmulUnit's ``overlap`` (auto: on when vector_lanes >= T; off: the weights wait for the whole
codes copy, the behaviour before the overlap). Prints a table and writes JSON with, per case:

  total_cycles         the instruction: from the cycle its command is accepted to its done pulse
  weight_beats         beats of the packed matrix (ceil(rows / B) tiles x G groups)
  weight_phase_cycles  first to last weight beat taken by the ternary array, inclusive
  mac_utilisation      weight_beats / weight_phase_cycles (each beat is B x T ternary MACs;
                       target >= 95 % on a memory without stalls when G >= B / lanes)
  codes_cycles         accepted -> first beat (setup and memory latency; without overlap also
                       the copy of the codes into the array)
  drain_cycles         last beat -> done (the last tile's rescale and write-back)
  overhead_cycles      codes_cycles + drain_cycles

Every figure is counted in simulated clock cycles of the Amaranth simulator, not measured on
hardware, and says so.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from golden import ops as O
from golden.kernels import matvec_numpy
from hw.core.iface import check_core_config
from hw.core.matmul import MatmulUnit
from sim.tb import unit
from sim.tb.streams import Pauses
from spec import numerics as N
from spec import weight_image as wi
from spec.accel import CONFIGS, AccelConfig, get_config
from sw.artifacts import build_dir

UNIT = "simulated cycles (Amaranth sim)"
TARGET = 0.95
DEFAULT_SHAPES = "192x192,1024x192,192x512"


def run_case(cfg: AccelConfig, rows: int, cols: int, *, mem_stall: float, seed: int,
             overlap: bool | None = None) -> dict:
    """One TMATMUL of a random [rows, cols] matrix; counts in simulated cycles."""
    rng = np.random.default_rng(seed)
    b, lanes = cfg.beat_bytes, cfg.vector_lanes
    trits = rng.choice(np.array([-1, 0, 1], np.int8), size=(rows, cols))
    packed = wi.pack_trits(trits, cfg.packing, b)
    base = 3 * b
    mem = bytearray(b"\xff" * (base + packed.size + b))
    mem[base:base + packed.size] = packed.tobytes()
    regs = unit.RegModel(cfg)
    vs, vd = 1, 2
    regs.V[vs][:] = rng.integers(N.CODE_MIN, N.CODE_MAX + 1, cfg.vlen)
    sf = (int(rng.integers(1 << (N.SF_BITS - 1), 1 << N.SF_BITS)), -N.FX_FRAC - 12)
    expect = O.apply_sf(matvec_numpy(trits, regs.V[vs][:cols].astype(np.int8)).astype(np.int64),
                        O.sf_shift(sf, N.FX_FRAC))

    dut = MatmulUnit(cfg, overlap=overlap)
    ram = unit.RamModel(mem, b, Pauses(seed + 1, mem_stall))
    st: dict = {"beats": []}
    tiles, groups, _ = wi.packed_shape(rows, cols, cfg.packing, b)
    limit = 50 * (tiles * groups + cols + rows) + 1000

    async def bench(ctx):
        ctx.set(dut.cmd.payload, unit.cmd_payload("TMATMUL", vl=cols, rows=rows, vs=vs, vd=vd, addr=base,
                                                  sf={"mantissa": sf[0], "exponent": sf[1]}))
        ctx.set(dut.cmd.valid, 1)
        cycle = 0
        async for _, _, valid, ready, done, beat in ctx.tick().sample(
                dut.cmd.valid, dut.cmd.ready, dut.done, dut.mem.rd.valid & dut.mem.rd.ready):
            if valid and ready:
                st["accepted"] = cycle
                ctx.set(dut.cmd.valid, 0)
            if beat:
                st["beats"].append(cycle)
            if done:
                st["done"] = cycle
                break
            cycle += 1
            assert cycle < limit, "the instruction did not finish"
        await ctx.tick()                              # the last write lands at the done edge

    sim = unit.simulator(dut, regs, ram, testbenches=[bench], clock=1e-8)
    t0 = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - t0

    if regs.V[vd][:rows].tolist() != expect.tolist():
        raise AssertionError("TMATMUL result differs from the golden formula (golden.machine._tmatmul)")
    beats = st["beats"]
    n_beats = tiles * groups
    assert len(beats) == n_beats
    phase = beats[-1] - beats[0] + 1
    codes = beats[0] - st["accepted"]
    drain = st["done"] - beats[-1]
    return {
        "rows": rows,
        "cols": cols,
        "mem_stall_probability": mem_stall,
        "overlap": dut.overlap,
        "tiles": tiles,
        "groups_per_tile": groups,
        "words_per_tile": b // lanes,
        "total_cycles": st["done"] - st["accepted"] + 1,
        "weight_beats": n_beats,
        "weight_phase_cycles": phase,
        "mac_utilisation": n_beats / phase,
        "codes_cycles": codes,
        "drain_cycles": drain,
        "overhead_cycles": codes + drain,
        "memory_commands": len(ram.commands),
        "matrix_weights_per_cycle": rows * cols / (st["done"] - st["accepted"] + 1),
        "checked_against_golden": True,
        "simulator_wall_s": round(wall, 2),
    }


def _shapes(text: str) -> list[tuple[int, int]]:
    out = []
    for item in text.split(","):
        r, _, c = item.strip().lower().partition("x")
        out.append((int(r), int(c)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.benches.matmul", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="ecp5", choices=list(CONFIGS))
    ap.add_argument("--shapes", default=DEFAULT_SHAPES, help="rows x cols of each matrix, comma separated")
    ap.add_argument("--stalls", default="0.3", help="memory stall probabilities to run besides 0 ('' for none)")
    ap.add_argument("--overlap", default="auto", choices=["auto", "on", "off"],
                    help="weights overlap the codes copy (auto: when vector_lanes >= T)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path, default=build_dir("bench", "matmul.json"))
    a = ap.parse_args(argv)

    cfg = get_config(a.config)
    try:
        check_core_config(cfg)
    except ValueError as e:
        ap.error(f"config {a.config}: {e}")
    shapes = _shapes(a.shapes)
    for r, c in shapes:
        if not (1 <= r <= cfg.vlen and 1 <= c <= cfg.vlen):
            ap.error(f"shape {r}x{c}: need 1 <= rows, cols <= vlen ({cfg.vlen})")
    stalls = [0.0] + [float(s) for s in a.stalls.split(",") if s.strip()]
    overlap = {"auto": None, "on": True, "off": False}[a.overlap]
    cases = []
    for r, c in shapes:
        for s in stalls:
            cases.append(run_case(cfg, r, c, mem_stall=s, seed=a.seed + len(cases), overlap=overlap))
    wpt = cfg.beat_bytes // cfg.vector_lanes
    report = {
        "unit": UNIT,
        "config": a.config,
        "beat_bytes": cfg.beat_bytes,
        "packing": cfg.packing,
        "vector_lanes": cfg.vector_lanes,
        "trits_per_byte": cfg.trits_per_byte,
        "macs_per_beat": cfg.macs_per_cycle,
        "seed": a.seed,
        "overlap": a.overlap,
        "target_mac_utilisation_unstalled": TARGET,
        "cases": cases,
    }

    print(f"TMATMUL unit, config {a.config} ({cfg.packing}, {cfg.beat_bytes}-byte beats = "
          f"{cfg.macs_per_cycle} ternary MACs, {cfg.vector_lanes} vector lanes), overlap "
          f"{'on' if cases[0]['overlap'] else 'off'}; all figures in {UNIT}")
    hdr = ("rows x cols", "mem stall p", "beats", "G", "total", "codes", "weight phase", "drain",
           "MAC util", "weights/cycle")
    print(" | ".join(hdr))
    for c in cases:
        print(" | ".join([
            f"{c['rows']} x {c['cols']}", f"{c['mem_stall_probability']:.2f}", str(c["weight_beats"]),
            str(c["groups_per_tile"]), str(c["total_cycles"]), str(c["codes_cycles"]),
            str(c["weight_phase_cycles"]), str(c["drain_cycles"]), f"{100 * c['mac_utilisation']:.1f} %",
            f"{c['matrix_weights_per_cycle']:.1f}"]))
    print(f"(total = codes + weight phase + drain, from the command's acceptance to done inclusive; "
          f"MAC util = beats / weight-phase cycles; G = beats per row tile, B/lanes = {wpt} write cycles "
          f"per tile; all {UNIT})")
    a.output.parent.mkdir(parents=True, exist_ok=True)
    a.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {a.output}", file=sys.stderr)
    ok = all(c["mac_utilisation"] >= TARGET for c in cases
             if c["mem_stall_probability"] == 0 and c["groups_per_tile"] >= c["words_per_tile"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
