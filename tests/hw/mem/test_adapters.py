# amaranth: UnusedElaboratable=no
"""hw.mem.avalon / hw.mem.axi: the memory port onto Avalon-MM and AXI4, against the slave models
of sim.tb.bfm (random waitrequest / ready pauses, random read latency, protocol checks that raise),
driven by sim.tb.bfm.PortDriver (random command mix, lengths 1..300, addresses across 4 KB pages,
idle cycles on cmd / wr and backpressure on rd), with every read beat checked against a shadow
memory in command order and the final memory compared.

Amaranth simulator: both adapters at several beat widths, with and without pauses, small
in-flight limits, aligned Avalon bursts, W after AW, error responses, throughput; negative tests
show the ordering checks fire on an adapter without its write-after-read fence and the BFM rules
fire on broken traffic. cocotb + Verilator (`verilator` marker): the same models through
sim/rtl/tb_adapters.py on the generated Verilog.
"""
from __future__ import annotations

import random

import pytest
from amaranth.back import verilog
from amaranth.lib import data
from amaranth.sim import Simulator

from hw.mem.avalon import AvalonAdapter, AvalonMMSignature
from hw.mem.axi import Axi4Signature, AxiAdapter
from sim.tb.bfm import AvalonSlave, Axi4Slave, PortDriver, ProtocolError, SparseMemory, make_traffic

# -- the Amaranth harness: the sim.tb.bfm models stepped once per clock ---------------------------


def _signal(dut, name: str):
    obj = dut
    for part in name.split("__"):
        obj = getattr(obj, part)
    return obj.as_value() if isinstance(obj, data.View) else obj


def simulate(dut, models: list, *, max_cycles: int = 200_000, watch=None) -> int:
    """Run `models` against `dut` until all are done; returns the cycles. `watch(ctx)` runs every
    cycle (extra checks on internal signals)."""
    result = {}
    sigs: dict = {}

    def sig(name: str):
        s = sigs.get(name)
        if s is None:
            s = sigs[name] = _signal(dut, name)
        return s

    async def bench(ctx):
        last: dict[str, int] = {}
        for m in models:
            for name, v in m.quiet().items():
                ctx.set(sig(name), v)
                last[name] = v
        cycles = 0
        get = lambda name: ctx.get(sig(name))
        while not all(m.done for m in models):
            for m in models:
                for name, v in m.drive().items():
                    if last.get(name) != v:
                        ctx.set(sig(name), v)
                        last[name] = v
            for m in models:
                m.sample(get)
            if watch is not None:
                watch(ctx)
            await ctx.tick()
            cycles += 1
            assert cycles < max_cycles, f"not done after {max_cycles} cycles: " + \
                str([type(m).__name__ for m in models if not m.done])
        result["cycles"] = cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result["cycles"]


def _check_final(mem: SparseMemory, traffic) -> None:
    assert mem.lines.keys() == traffic.final.lines.keys(), "different lines written"
    bad = [line for line in mem.lines if mem.lines[line] != traffic.final.lines[line]]
    assert not bad, f"{len(bad)} lines differ from the shadow memory, first {bad[0]:#x}"


def _budget(t) -> int:
    """Cycles after which a run counts as hung: generous for the pauses, short of a long wait."""
    return 20 * (len(t.rd_beats) + len(t.wr_beats) + len(t.commands)) + 5000


def _traffic(seed: int, beat: int, n: int, **kw):
    return make_traffic(random.Random(seed), beat, n, mem_seed=seed, **kw)


# -- Avalon-MM -----------------------------------------------------------------------------------


def run_avalon(beat: int, seed: int, n: int, p: float, *, max_burst: int = 64, max_pending: int = 256,
               align: bool = False, latency=(1, 12), **kw) -> dict:
    dut = AvalonAdapter(beat, max_burst=max_burst, max_pending=max_pending, align_bursts=align)
    t = _traffic(seed, beat, n, **kw)
    rng = random.Random(seed + 1)
    mem = SparseMemory(beat, seed)
    drv = PortDriver(t, dut.line_bits, rng, p_cmd=p, p_wr=p, p_rd=p)
    slave = AvalonSlave(mem, rng, max_burst=max_burst, max_pending=max_pending, p_wait=p, latency=latency,
                        p_gap=p / 2, aligned=align)
    def watch(ctx):
        fifo = dut.read_buffer
        assert not (ctx.get(fifo.w_en) and not ctx.get(fifo.w_rdy)), "read buffer written while full"

    cycles = simulate(dut, [drv, slave], watch=watch, max_cycles=_budget(t))
    _check_final(mem, t)
    assert slave.read_words == len(t.rd_beats) and slave.write_words == len(t.wr_beats)
    return {"cycles": cycles, "slave": slave, "traffic": t}


@pytest.mark.parametrize("beat,p", [(16, 0.0), (16, 0.3), (64, 0.0), (64, 0.5)])
def test_avalon_random_traffic(beat, p):
    r = run_avalon(beat, 10 + beat + int(10 * p), 40, p)
    assert r["slave"].bursts > len(r["traffic"].commands)      # long commands were split


def test_avalon_small_buffer_and_aligned_bursts():
    """max_burst 8 and 16 read words in flight: the credit limit binds; bursts aligned to 8 words."""
    r = run_avalon(16, 3, 40, 0.3, max_burst=8, max_pending=16, align=True, latency=(5, 30))
    assert r["slave"].max_seen == 16


def test_avalon_read_stream_throughput():
    """Long reads, no pauses, latency 40: one word per cycle once the pipe is full."""
    beat = 64
    dut = AvalonAdapter(beat)
    from sim.tb.bfm import Traffic
    t = Traffic(beat, 0)
    rng = random.Random(0)
    for k in range(8):
        t.add(k * 256, 256, False, rng)
    drv = PortDriver(t, dut.line_bits, rng)
    slave = AvalonSlave(SparseMemory(beat), rng, max_burst=64, max_pending=256, latency=(40, 40))
    cycles = simulate(dut, [drv, slave])
    first, last = drv.rd_cycles[0], drv.rd_cycles[-1]
    rate = (len(drv.rd_cycles) - 1) / (last - first)
    assert rate > 0.99, f"{rate:.3f} words per cycle"
    assert cycles < len(t.rd_beats) + 60
    assert slave.max_seen > 128                  # deep pipelining: many words in flight


def test_avalon_bad_parameters():
    with pytest.raises(ValueError, match="max_burst"):
        AvalonAdapter(64, max_burst=48)
    with pytest.raises(ValueError, match="max_pending"):
        AvalonAdapter(64, max_burst=64, max_pending=32)
    with pytest.raises(ValueError, match="beat_bytes"):
        AvalonAdapter(48)
    sig = AvalonAdapter(64).bus.signature
    assert sig == AvalonMMSignature(addr_width=26, data_bytes=64, max_burst=64)
    assert sig.members["burstcount"].shape == 7


# -- AXI4 ----------------------------------------------------------------------------------------


def run_axi(beat: int, seed: int, n: int, p: float, *, max_pending: int = 256, max_burst: int = 256,
            w_after_aw: bool = False, war_fence: bool = True, check_war: bool = True, latency=(1, 12),
            error_r=None, error_b=None, **kw) -> dict:
    dut = AxiAdapter(beat, max_pending=max_pending, max_burst=max_burst, war_fence=war_fence)
    t = _traffic(seed, beat, n, **kw)
    rng = random.Random(seed + 1)
    mem = SparseMemory(beat, seed)
    drv = PortDriver(t, dut.line_bits, rng, p_cmd=p, p_wr=p, p_rd=p)
    slave = Axi4Slave(mem, rng, max_pending=max_pending, max_burst=max_burst, p_ready=p, p_gap=p / 2,
                      latency=latency, w_after_aw=w_after_aw, check_war=check_war, error_r=error_r,
                      error_b=error_b)
    errors = []

    def watch(ctx):
        errors.append(ctx.get(dut.error))

    cycles = simulate(dut, [drv, slave], watch=watch, max_cycles=_budget(t))
    _check_final(mem, t)
    assert slave.read_beats == len(t.rd_beats) and slave.write_beats == len(t.wr_beats)
    return {"cycles": cycles, "slave": slave, "traffic": t, "errors": errors}


@pytest.mark.parametrize("beat,p,w_after_aw", [(16, 0.0, False), (16, 0.3, True), (64, 0.0, True),
                                               (64, 0.5, False), (8, 0.3, False)])
def test_axi_random_traffic(beat, p, w_after_aw):
    """Beat 8: the 256-beat limit splits first; beat 64: the 4 KB page (64 beats); beat 16: both."""
    r = run_axi(beat, 20 + beat + int(10 * p), 40, p, w_after_aw=w_after_aw,
                region_bytes=max(1 << 16, 8192 * beat // 16))
    s = r["slave"]
    assert s.ar_bursts + s.aw_bursts > len(r["traffic"].commands)
    assert not any(r["errors"]), "error flagged on OKAY responses"


def test_axi_small_in_flight_limits():
    r = run_axi(16, 4, 40, 0.3, max_pending=32, max_burst=16, latency=(5, 40))
    assert r["slave"].max_rd_out == 32


def test_axi_error_responses_are_sticky():
    r = run_axi(16, 5, 30, 0.2, error_r=7)
    first = r["errors"].index(1)
    assert all(r["errors"][first:]), "error dropped"
    r = run_axi(16, 6, 30, 0.2, error_b=2)
    assert r["errors"][-1] == 1 and r["errors"][0] == 0


def test_axi_stream_throughput():
    """Long reads then long writes, no pauses, latency 40: ~one beat per cycle each way."""
    beat = 64
    dut = AxiAdapter(beat)
    from sim.tb.bfm import Traffic
    t = Traffic(beat, 0)
    rng = random.Random(0)
    for k in range(8):
        t.add(k * 256, 256, False, rng)
    drv = PortDriver(t, dut.line_bits, rng)
    slave = Axi4Slave(SparseMemory(beat), rng, max_pending=256, latency=(40, 40))
    simulate(dut, [drv, slave])
    rate = (len(drv.rd_cycles) - 1) / (drv.rd_cycles[-1] - drv.rd_cycles[0])
    assert rate > 0.99, f"read {rate:.3f} beats per cycle"
    assert slave.max_rd_out > 128

    t = Traffic(beat, 0)
    for k in range(8):
        t.add(k * 256, 256, True, rng)
    drv = PortDriver(t, dut.line_bits, rng)
    slave = Axi4Slave(SparseMemory(beat), rng, max_pending=256, latency=(40, 40))
    cycles = simulate(AxiAdapter(beat), [drv, slave])
    assert cycles < len(t.wr_beats) * 1.05 + 100, f"{cycles} cycles for {len(t.wr_beats)} write beats"


def test_axi_without_war_fence_is_caught():
    """With the fence off the adapter issues AW while reads are outstanding: the BFM's check fires."""
    with pytest.raises(ProtocolError, match="write issued while"):
        run_axi(16, 7, 40, 0.0, war_fence=False, latency=(20, 40))


def test_axi_bad_parameters():
    with pytest.raises(ValueError, match="max_burst"):
        AxiAdapter(64, max_burst=512)
    with pytest.raises(ValueError, match="max_pending"):
        AxiAdapter(64, max_pending=100)
    with pytest.raises(ValueError, match="beat_bytes"):
        AxiAdapter(256)
    assert AxiAdapter(64).bus.signature == Axi4Signature(addr_width=32, data_bytes=64, id_width=4)


# -- the BFM rules themselves fire ---------------------------------------------------------------


def _step(model, values: dict) -> None:
    model.drive()
    model.sample(lambda name: values.get(name, 0))


def test_bfm_axi_rules_fire():
    def ar(addr, length, **kw):
        return {"bus__arvalid": 1, "bus__araddr": addr, "bus__arlen": length, "bus__arsize": 4,
                "bus__arburst": 1, **kw}

    s = Axi4Slave(SparseMemory(16), random.Random(0), max_pending=256)
    with pytest.raises(ProtocolError, match="4 KB"):
        _step(s, ar(4096 - 32, 3))
    s = Axi4Slave(SparseMemory(16), random.Random(0), max_pending=256)
    with pytest.raises(ProtocolError, match="INCR"):
        _step(s, ar(0, 3, bus__arburst=2))
    s = Axi4Slave(SparseMemory(16), random.Random(0), max_pending=8)
    with pytest.raises(ProtocolError, match="outstanding"):
        _step(s, ar(0, 15))
    # valid dropped while stalled, then payload changed while stalled
    s = Axi4Slave(SparseMemory(16), random.Random(1), max_pending=256, p_ready=0.99)
    _step(s, ar(0, 3))
    with pytest.raises(ProtocolError, match="valid dropped"):
        _step(s, {})
    s = Axi4Slave(SparseMemory(16), random.Random(1), max_pending=256, p_ready=0.99)
    _step(s, ar(0, 3))
    with pytest.raises(ProtocolError, match="payload changed"):
        _step(s, ar(16, 3))
    # wlast on the wrong beat of a known AW burst
    s = Axi4Slave(SparseMemory(16), random.Random(0), max_pending=256)
    _step(s, {"bus__awvalid": 1, "bus__awaddr": 0, "bus__awlen": 3, "bus__awsize": 4, "bus__awburst": 1})
    with pytest.raises(ProtocolError, match="wlast"):
        _step(s, {"bus__wvalid": 1, "bus__wdata": 1, "bus__wstrb": 0xFFFF, "bus__wlast": 1})


def test_bfm_avalon_rules_fire():
    s = AvalonSlave(SparseMemory(16), random.Random(0), max_burst=8, max_pending=16)
    with pytest.raises(ProtocolError, match="burstcount"):
        _step(s, {"bus__read": 1, "bus__address": 0, "bus__burstcount": 9})
    s = AvalonSlave(SparseMemory(16), random.Random(0), max_burst=8, max_pending=16)
    with pytest.raises(ProtocolError, match="together"):
        _step(s, {"bus__read": 1, "bus__write": 1, "bus__burstcount": 1})
    s = AvalonSlave(SparseMemory(16), random.Random(0), max_burst=8, max_pending=16, p_wait=0.99)
    _step(s, {"bus__write": 1, "bus__address": 4, "bus__burstcount": 2, "bus__writedata": 5, "bus__byteenable": 3})
    with pytest.raises(ProtocolError, match="waitrequest"):
        _step(s, {"bus__write": 1, "bus__address": 4, "bus__burstcount": 2, "bus__writedata": 6,
                  "bus__byteenable": 3})
    s = AvalonSlave(SparseMemory(16), random.Random(0), max_burst=8, max_pending=16)
    _step(s, {"bus__write": 1, "bus__address": 4, "bus__burstcount": 2, "bus__writedata": 5, "bus__byteenable": 3})
    with pytest.raises(ProtocolError, match="inside a write burst"):
        _step(s, {"bus__read": 1, "bus__address": 4, "bus__burstcount": 2})


def test_bfm_port_driver_catches_wrong_data():
    from sim.tb.bfm import Traffic
    t = Traffic(16, 0)
    t.add(5, 1, False, random.Random(0))
    drv = PortDriver(t, 28, random.Random(0))
    with pytest.raises(ProtocolError, match="expected"):
        _step(drv, {"port__rd__valid": 1, "port__rd__payload": t.rd_beats[0] ^ 1})


# -- cocotb + Verilator --------------------------------------------------------------------------


def _verilator_run(kind: str, job: dict) -> dict:
    from sim.rtl import runner as rtl

    beat = job["beat_bytes"]
    cls = AvalonAdapter if kind == "avalon" else AxiAdapter
    dut = cls(beat, **job.get("params", {}))
    text = verilog.convert(dut, name=f"{kind}_adapter")
    b = rtl.build_verilog(f"{kind}-adapter-{beat}", text, f"{kind}_adapter", "verilator")
    res = rtl.run_cocotb(b, "sim.rtl.tb_adapters", dict(job, adapter=kind, line_bits=dut.line_bits))
    assert not res.get("error"), res["error"]
    return res


def _job(kind: str, seed: int, n: int, p: float) -> dict:
    job = {"beat_bytes": 64, "seed": seed, "n_cmds": n, "max_len": 300, "p": p, "latency": [1, 30],
           "region_bytes": 1 << 17}
    if kind == "axi":
        job["w_after_aw"] = bool(seed % 2)
    return job


@pytest.mark.verilator
@pytest.mark.parametrize("kind", ["avalon", "axi"])
def test_verilator_random_traffic(kind):
    """400 commands per adapter: 150 without pauses, 250 with pauses on every stream."""
    for seed, n, p in ((1, 150, 0.0), (2, 250, 0.3)):
        res = _verilator_run(kind, _job(kind, seed, n, p))
        assert res["commands"] == n and res["read_beats"] > 0 and res["write_beats"] > 0
        assert res["bursts"] > res["commands"]
        assert res["max_in_flight"] > 128


@pytest.mark.verilator
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["avalon", "axi"])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.6])
def test_verilator_random_traffic_long(kind, p):
    """2,000 commands (~100k beats) per adapter and pause level."""
    res = _verilator_run(kind, _job(kind, 100 + int(10 * p), 2000, p))
    assert res["commands"] == 2000


@pytest.mark.verilator
@pytest.mark.slow
def test_verilator_bfm_catches_missing_war_fence():
    """The cocotb path reports a BFM violation: an AXI adapter built without its write-after-read fence."""
    with pytest.raises(AssertionError, match="write issued while"):
        _verilator_run("axi", dict(_job("axi", 3, 60, 0.0), params={"war_fence": False}))
