"""hw.mem.arbiter: N initiators onto one port (PortArbiter) and the weight broadcast, against a
RAM model, with random pauses on every handshake of both sides."""
from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hw.mem.arbiter import PortArbiter, WeightBroadcast
from sim.tb.streams import Pauses, receive, send
from sim.tb.unit import RamModel

BEAT = 16
REGION = 64          # lines per initiator


def _initiator(port, k: int, rng: random.Random, mem_model: bytearray, n_cmds: int, p: float, log: list,
               written: list):
    async def process(ctx):
        base = k * REGION
        for c in range(n_cmds):
            line = base + rng.randrange(REGION - 8)
            n = rng.randint(1, 8)
            write = rng.random() < 0.4
            await send(ctx, port.cmd, [{"addr": line, "len": n, "write": int(write)}], Pauses(rng.random(), p),
                       name=f"i{k}.cmd")
            if write:
                beats = []
                for j in range(n):
                    data = rng.getrandbits(8 * BEAT)
                    mask = rng.getrandbits(BEAT)
                    beats.append({"data": data, "mask": mask})
                    a = (line + j) * BEAT
                    raw = data.to_bytes(BEAT, "little")
                    for i in range(BEAT):
                        if (mask >> i) & 1:
                            mem_model[a + i] = raw[i]
                await send(ctx, port.wr, beats, Pauses(rng.random(), p), name=f"i{k}.wr")
                written.append(n)
            else:
                got = await receive(ctx, port.rd, n, Pauses(rng.random(), p), name=f"i{k}.rd")
                for j, g in enumerate(got):
                    a = (line + j) * BEAT
                    assert int(g.data) == int.from_bytes(mem_model[a:a + BEAT], "little"), \
                        f"initiator {k} command {c}: beat {j} of line {line + j} differs"
        log.append(k)
    return process


@pytest.mark.parametrize("n,p", [(1, 0.0), (3, 0.0), (3, 0.4), (4, 0.6)])
def test_arbiter_routes_reads_and_writes(n, p):
    dut = PortArbiter(BEAT, n)
    rng = random.Random(n * 100 + int(p * 10))
    init = bytearray(rng.getrandbits(8) for _ in range(n * REGION * BEAT))
    ram = RamModel(bytearray(init), BEAT, Pauses(7, p))
    model = bytearray(init)
    finished: list[int] = []
    written: list[int] = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(ram.serve(dut.o))
    for k in range(n):
        sim.add_testbench(_initiator(dut.inputs[k], k, random.Random(k), model, 25, p, finished, written))

    async def drain(ctx):
        # a beat an initiator has sent may still be in the arbiter: `writing` says so, and once it
        # is low every beat sent is in the RAM (bounded, so a lost beat fails instead of hanging)
        for _ in range(10_000):
            if len(finished) == n and not ctx.get(dut.writing):
                assert ram.writes == sum(written), f"writing low with {ram.writes} of {sum(written)} beats in the RAM"
                return
            await ctx.tick()
        raise AssertionError(f"the RAM took {ram.writes} of {sum(written)} write beats")
    sim.add_testbench(drain)
    sim.run()
    assert sorted(finished) == list(range(n)), f"initiators that finished: {finished}"
    assert sum(written) > 0 and ram.mem == model


@pytest.mark.parametrize("p", [0.0, 0.4])
def test_broadcast_serves_equal_commands_once(p):
    n = 3
    dut = WeightBroadcast(BEAT, n)
    rng = random.Random(5)
    mem = bytearray(rng.getrandbits(8) for _ in range(256 * BEAT))
    ram = RamModel(bytearray(mem), BEAT, Pauses(3, p))
    cmds = [(rng.randrange(200), rng.randint(1, 16)) for _ in range(12)]
    done = []

    def core(k):
        async def process(ctx):
            for line, length in cmds:
                await send(ctx, dut.inputs[k].cmd, [{"addr": line, "len": length, "write": 0}],
                           Pauses(10 + k, p), name=f"c{k}.cmd")
                got = await receive(ctx, dut.inputs[k].rd, length, Pauses(20 + k, p), name=f"c{k}.rd")
                for j, g in enumerate(got):
                    a = (line + j) * BEAT
                    assert int(g.data) == int.from_bytes(mem[a:a + BEAT], "little")
            done.append(k)
        return process

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(ram.serve(dut.o))
    for k in range(n):
        sim.add_testbench(core(k))
    sim.run()
    assert sorted(done) == list(range(n))
    # lockstep cores: every matrix read once, not once per core
    assert len(ram.commands) == len(cmds)


def test_broadcast_parked_core_does_not_block():
    dut = WeightBroadcast(BEAT, 2)
    mem = bytearray(range(256)) * 4
    ram = RamModel(bytearray(mem), BEAT)
    done = []

    async def core0(ctx):
        ctx.set(dut.parked, 0b10)          # core 1 is halted
        await send(ctx, dut.inputs[0].cmd, [{"addr": 3, "len": 2, "write": 0}])
        got = await receive(ctx, dut.inputs[0].rd, 2)
        assert int(got[0].data) == int.from_bytes(mem[48:64], "little")
        done.append(0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(ram.serve(dut.o))
    sim.add_testbench(core0)
    sim.run()
    assert done == [0]


def test_arbiter_has_no_path_from_the_memory_to_an_initiator():
    """The memory's rd.valid / wr.ready / rd.payload reach no initiator in the same cycle (the
    register slices), and an initiator's rd.ready / wr.valid reach the memory only a cycle later."""
    dut = PortArbiter(BEAT, 2)
    same_cycle = []

    def watched(ctx):
        sigs = [s for i in dut.inputs for s in (i.rd.valid, i.rd.payload.data, i.wr.ready, i.cmd.ready)]
        sigs += [dut.o.rd.ready, dut.o.wr.valid, dut.o.wr.payload.data]
        return tuple(ctx.get(s) for s in sigs)

    async def bench(ctx):
        # a write command from initiator 0 and a read command from initiator 1 get the arbiter busy
        ctx.set(dut.i0.cmd.valid, 1)
        ctx.set(dut.i0.cmd.payload, {"addr": 1, "len": 4, "write": 1})
        ctx.set(dut.o.cmd.ready, 1)
        await ctx.tick()
        ctx.set(dut.i0.cmd.valid, 0)
        ctx.set(dut.i1.cmd.valid, 1)
        ctx.set(dut.i1.cmd.payload, {"addr": 9, "len": 4, "write": 0})
        for cyc in range(12):
            before = watched(ctx)
            # everything the memory and the initiators drive, changed inside the cycle
            ctx.set(dut.o.rd.valid, cyc % 2)
            ctx.set(dut.o.rd.payload.data, 0x1234 + cyc)
            ctx.set(dut.o.wr.ready, (cyc // 2) % 2)
            ctx.set(dut.i0.wr.valid, 1)
            ctx.set(dut.i0.wr.payload.data, cyc)
            ctx.set(dut.i1.rd.ready, (cyc + 1) % 2)
            after = watched(ctx)
            same_cycle.append(before == after)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert same_cycle and all(same_cycle), same_cycle
