"""Build the DDR4 memory system (hw.mem.dram_system) into Verilator and run traffic on it.

    b = build(Channel("DDR4-2400R", "8Gb_x8"))                  # cached under build/rtl/
    out = run(b, [{"kind": "seq", "cycles": 50_000}], trace="build/dram.trace")

`run` returns the bench's result (sim/rtl/tb_dram.py): per workload the efficiency over its window,
the command counts, the data errors, the checker's violation count and the maximum refresh debt;
and the first violations with their rule names. Workload kinds: seq, stride (`stride`), random,
row_hits (one row of one bank, `columns` bursts), mixed (reads and writes: a stream, a hot set of
`hot_lines` lines, random lines; `read_frac`); options `cycles`, `warmup`, `idle` (probability of
an idle cycle before a request), `backpressure` (probability that read data is not taken), `start`.
With the streamer frontend workloads are bursts on the memory port: `bursts`, `max_len`,
`span_beats`, `read_frac`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from sim.rtl.runner import VerilogBuild, build_verilog, run_cocotb
from spec.dram import Channel

__all__ = ["SystemBuild", "build", "run"]


@dataclasses.dataclass
class SystemBuild:
    channel: Channel
    channels: int
    frontend: str
    beat_lines: int
    verilog: VerilogBuild


def build(ch: Channel, channels: int = 1, *, frontend: str = "native", beat_lines: int = 1,
          interleave: int = 1, quiet: bool = False) -> SystemBuild:
    from amaranth.back import verilog

    from hw.mem.dram_system import DramSystem

    top = DramSystem(ch, channels, frontend=frontend, beat_lines=beat_lines, interleave=interleave)
    text = verilog.convert(top, name="dram_system", emit_src=False)
    name = f"dram-{ch.speed}-{ch.geometry}-{ch.address_map}-{channels}c-{frontend}"
    return SystemBuild(ch, channels, frontend, beat_lines, build_verilog(name, text, "dram_system", quiet=quiet))


def run(b: SystemBuild, workloads: list[dict], *, seed: int = 1, trace: str | Path | None = None,
        quiet: bool = False) -> dict:
    ch = b.channel
    job = {
        "channel": {"speed": ch.speed, "geometry": ch.geometry, "address_map": ch.address_map,
                    "fast_init": ch.fast_init},
        "channels": b.channels, "frontend": b.frontend, "seed": seed,
        "trace": str(Path(trace).resolve()) if trace else None, "workloads": workloads,
        "beat_bytes": ch.line_bytes * b.beat_lines,
    }
    return run_cocotb(b.verilog, "sim.rtl.tb_dram", job, quiet=quiet)
