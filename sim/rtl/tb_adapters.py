"""cocotb testbench of the memory adapters (hw.mem.avalon.AvalonAdapter, hw.mem.axi.AxiAdapter).

Run by tests/hw/mem/test_adapters.py through sim.rtl.runner (`build_verilog` + `run_cocotb`); the job
(JSON, file named by $SIM_JOB) has:

    adapter       "avalon" | "axi"
    beat_bytes, line_bits          the adapter's port geometry
    params        keyword arguments the adapter was built with (max_burst, max_pending, ...)
    seed, n_cmds, max_len, region_bytes   the random command mix (sim.tb.bfm.make_traffic)
    p             pause probability on every stream: idle cycles before commands and write beats,
                  backpressure on read beats, waitrequest / not-ready on the bus, gaps on read data
                  and responses
    latency       [min, max] cycles of the slave's read (and write response) latency
    w_after_aw    AXI: the slave takes W beats only after their AW

The bench drives the port with sim.tb.bfm.PortDriver and serves the bus with sim.tb.bfm.AvalonSlave or
sim.tb.bfm.Axi4Slave (which check the protocol and raise on a violation), checks every read beat in
command order and the final memory against the shadow memory, and writes to job["out"]:
`cycles`, `commands`, `read_beats`, `write_beats`, `bursts`, `max_in_flight` and `error` (the
first failure's message and traceback, or null). A failure is reported there and the cocotb test
itself passes, because sim.rtl.runner.run_cocotb discards the result file of a failed test; the caller
must check `error`.
"""
from __future__ import annotations

import json
import os
import random
import traceback

import cocotb
from cocotb.clock import Clock

from sim.tb.bfm import AvalonSlave, Axi4Slave, PortDriver, ProtocolError, SparseMemory, make_traffic, run_cocotb


def _defaults(kind: str, params: dict) -> dict:
    if kind == "avalon":
        return {"max_burst": params.get("max_burst", 64), "max_pending": params.get("max_pending", 256),
                "aligned": params.get("align_bursts", False)}
    return {"max_burst": params.get("max_burst", 256), "max_pending": params.get("max_pending", 256)}


async def _run(dut, job: dict) -> dict:
    kind, beat, seed, p = job["adapter"], job["beat_bytes"], job["seed"], job.get("p", 0.0)
    t = make_traffic(random.Random(seed), beat, job["n_cmds"], mem_seed=seed, max_len=job.get("max_len", 300),
                     region_bytes=job.get("region_bytes", 1 << 16))
    rng = random.Random(seed + 1)
    mem = SparseMemory(beat, seed)
    drv = PortDriver(t, job["line_bits"], rng, p_cmd=p, p_wr=p, p_rd=p)
    lat = tuple(job.get("latency", (1, 12)))
    opts = _defaults(kind, job.get("params", {}))
    if kind == "avalon":
        slave = AvalonSlave(mem, rng, p_wait=p, latency=lat, p_gap=p / 2, **opts)
    elif kind == "axi":
        slave = Axi4Slave(mem, rng, p_ready=p, p_gap=p / 2, latency=lat, w_after_aw=job.get("w_after_aw", False),
                          **opts)
    else:
        raise ValueError(f"unknown adapter {kind!r}")
    cycles = await run_cocotb(dut, [drv, slave], max_cycles=job.get("max_cycles", 5_000_000))
    if mem.lines.keys() != t.final.lines.keys():
        raise ProtocolError("different lines written than in the shadow memory")
    bad = [line for line in mem.lines if mem.lines[line] != t.final.lines[line]]
    if bad:
        raise ProtocolError(f"{len(bad)} lines differ from the shadow memory, first {bad[0]:#x}")
    if kind == "axi" and int(dut.error.value):
        raise ProtocolError("error flagged on OKAY responses")
    if kind == "avalon":
        bursts, in_flight = slave.bursts, slave.max_seen
    else:
        bursts, in_flight = slave.ar_bursts + slave.aw_bursts, slave.max_rd_out
    return {"cycles": cycles, "commands": len(t.commands), "read_beats": len(t.rd_beats),
            "write_beats": len(t.wr_beats), "bursts": bursts, "max_in_flight": in_flight, "error": None}


@cocotb.test()
async def run_job(dut):
    """Run the job in SIM_JOB and write its result (or the failure) to job["out"]."""
    with open(os.environ["SIM_JOB"]) as f:
        job = json.load(f)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    try:
        result = await _run(dut, job)
    except Exception as e:
        result = {"error": f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}"}
    with open(job["out"], "w") as f:
        json.dump(result, f)
