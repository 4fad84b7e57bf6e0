# amaranth: UnusedElaboratable=no
"""hw.mem.streamer: a memory port onto 1..4 channel native ports, against Python channel models.

The channel models accept line requests under random backpressure and return each read after a
random latency, in order per channel; a shadow memory of global lines gives the expected read
beats. Random mixes of read and write bursts (1..200 beats) run for channels 1..4, interleave 1
and 4 and port beats of 1, 2 and 4 lines, with random idle cycles / backpressure on every port
stream and with none. Every read beat is checked in port order, every channel's request sequence
against the address map, and the channels' memories against the shadow at the end. Throughput
tests measure a long read burst with fixed latency (full rate; and the in-flight window's limit).
"""
from __future__ import annotations

import collections
import random

import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from hw.mem.streamer import Streamer, channel_of
from sim.tb.streams import HoldCheck, Pauses, receive, send
from spec.dram import Channel

CH = Channel()
LINE = CH.line_bytes
MASK = (1 << (8 * LINE)) - 1


def _init(k: int, local: int) -> int:
    """A channel line's content before any write: distinct per (channel, line)."""
    return random.Random(k * 1_000_003 + local).getrandbits(8 * LINE)


class ChannelModels:
    """N native-port responders with a sparse memory each: `req.ready` low with probability
    `p_req`, a read's data offered `latency()` cycles after it was accepted (never before the
    previous read of the channel), then held until `rdata.ready`. Checks the hold rule on every
    `req` and the `inflight` bound every cycle."""

    def __init__(self, dut: Streamer, seed: int, p_req: float, latency):
        self.ports = dut.channel_ports
        self.n = len(self.ports)
        self.mem = [dict() for _ in range(self.n)]
        self.log = [[] for _ in range(self.n)]            # (local line, write) per accepted request
        self.pauses = [Pauses(seed * 31 + k, p_req) for k in range(self.n)]
        self.latency = latency
        self.inflight_signal = dut.inflight
        self.max_inflight = dut.max_inflight
        self.peak_inflight = 0
        self.cycle = 0

    def read(self, k: int, local: int) -> int:
        return self.mem[k].get(local, _init(k, local))

    def serve(self):
        async def process(ctx):
            queues = [collections.deque() for _ in range(self.n)]
            offering = [False] * self.n
            holds = [HoldCheck(f"c{k}.req") for k in range(self.n)]
            sigs = [self.inflight_signal]
            for cp in self.ports:
                sigs += [cp.req.valid, cp.req.ready, cp.req.payload, cp.rdata.valid, cp.rdata.ready]
            for k, cp in enumerate(self.ports):
                ctx.set(cp.req.ready, not self.pauses[k].stall())
            async for _, _, inflight, *vals in ctx.tick().sample(*sigs):
                self.cycle += 1
                assert inflight <= self.max_inflight, f"inflight {inflight} above {self.max_inflight}"
                self.peak_inflight = max(self.peak_inflight, inflight)
                for k, cp in enumerate(self.ports):
                    rv, rr, req, dv, dr = vals[5 * k:5 * k + 5]
                    holds[k](rv, rr, req)
                    if rv and rr:
                        local, write = int(req.addr), bool(req.write)
                        self.log[k].append((local, write))
                        if write:
                            old, data, mask = self.read(k, local), int(req.data), int(req.mask)
                            bm = sum(0xFF << (8 * i) for i in range(LINE) if (mask >> i) & 1)
                            self.mem[k][local] = (old & ~bm) | (data & bm)
                        else:
                            ready_at = self.cycle + self.latency()
                            if queues[k]:
                                ready_at = max(ready_at, queues[k][-1][0])
                            queues[k].append((ready_at, self.read(k, local)))
                    if dv and dr:
                        assert offering[k]
                        queues[k].popleft()
                        offering[k] = False
                    ctx.set(cp.req.ready, not self.pauses[k].stall())
                    if not offering[k] and queues[k] and queues[k][0][0] <= self.cycle:
                        ctx.set(cp.rdata.payload.data, queues[k][0][1])
                        offering[k] = True
                    ctx.set(cp.rdata.valid, offering[k])
        return process


def _commands(rng: random.Random, bl: int, n_cmds: int, max_len: int = 200) -> list[tuple[int, int, bool]]:
    """(beat address, beats, write): mostly short bursts in a small region (so reads see earlier
    writes), some long ones, some at the top of the 4 GiB port."""
    top = (1 << 26) // bl
    cmds = []
    for _ in range(n_cmds):
        n = rng.randint(1, max_len) if rng.random() < 0.2 else rng.randint(1, 12)
        if rng.random() < 0.1:
            addr = top - n - rng.randrange(64)
        else:
            addr = rng.randrange(0, 512)
        cmds.append((addr, n, rng.random() < 0.45))
    return cmds


def _run(channels: int, interleave: int, bl: int, cmds, seed: int, p: float, *, max_inflight: int = 64,
         latency=None) -> ChannelModels:
    dut = Streamer(CH, channels, interleave=interleave, max_inflight=max_inflight, beat_lines=bl)
    rng = random.Random(seed)
    if latency is None:
        lat_rng = random.Random(seed + 1)
        latency = lambda: lat_rng.randint(1, 30)
    chans = ChannelModels(dut, seed, p, latency)

    # the expected outcome from a shadow of global lines
    shadow: dict[int, int] = {}

    def line_value(g: int) -> int:
        return shadow[g] if g in shadow else _init(*channel_of(g, channels, interleave))

    wr_beats, rd_expect = [], []
    expect_log = [[] for _ in range(channels)]
    for addr, n, write in cmds:
        for b in range(addr, addr + n):
            if write:
                data, mask = rng.getrandbits(8 * LINE * bl), rng.getrandbits(LINE * bl)
                wr_beats.append({"data": data, "mask": mask})
            beat = 0
            for j in range(bl):
                g = b * bl + j
                k, local = channel_of(g, channels, interleave)
                expect_log[k].append((local, write))
                if write:
                    d, mk = (data >> (8 * LINE * j)) & MASK, (mask >> (LINE * j)) & ((1 << LINE) - 1)
                    bm = sum(0xFF << (8 * i) for i in range(LINE) if (mk >> i) & 1)
                    shadow[g] = (line_value(g) & ~bm) | (d & bm)
                else:
                    beat |= line_value(g) << (8 * LINE * j)
            if not write:
                rd_expect.append((addr, b, beat))
    done = []

    async def commands(ctx):
        await send(ctx, dut.port.cmd, [{"addr": a, "len": n, "write": int(w)} for a, n, w in cmds],
                   Pauses(seed + 2, p), name="cmd")
        done.append("cmd")

    async def writes(ctx):
        await send(ctx, dut.port.wr, wr_beats, Pauses(seed + 3, p), name="wr")
        done.append("wr")

    async def reads(ctx):
        got = await receive(ctx, dut.port.rd, len(rd_expect), Pauses(seed + 4, p), name="rd")
        for i, (g, (addr, b, beat)) in enumerate(zip(got, rd_expect, strict=True)):
            assert int(g.data) == beat, f"read beat {i} (beat {b} of the burst at {addr}) differs"
        done.append("rd")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(chans.serve())
    sim.add_testbench(commands)
    sim.add_testbench(writes)
    sim.add_testbench(reads)
    sim.run()
    assert sorted(done) == ["cmd", "rd", "wr"], f"finished: {done}"
    for k in range(channels):
        assert chans.log[k] == expect_log[k], f"channel {k}: request sequence does not follow the address map"
    for g, v in shadow.items():
        assert chans.read(*channel_of(g, channels, interleave)) == v, f"global line {g} differs in its channel"
    assert chans.peak_inflight > 0 or not rd_expect
    return chans


@pytest.mark.parametrize("p", [0.0, 0.3])
@pytest.mark.parametrize("interleave", [1, 4])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_random_bursts(channels, interleave, p):
    seed = channels * 100 + interleave * 10 + int(p * 10)
    cmds = _commands(random.Random(seed), 1, 30)
    _run(channels, interleave, 1, cmds, seed, p)


@pytest.mark.parametrize("channels,interleave,bl,p", [
    (2, 1, 2, 0.0), (2, 1, 2, 0.3), (4, 1, 4, 0.0), (4, 1, 4, 0.3), (1, 1, 4, 0.3), (3, 1, 2, 0.3),
    (3, 2, 4, 0.3), (2, 4, 4, 0.3), (4, 2, 2, 0.0),
])
def test_wide_beats(channels, interleave, bl, p):
    seed = 7000 + channels * 100 + interleave * 10 + bl + int(p * 10)
    cmds = _commands(random.Random(seed), bl, 20, max_len=100)
    _run(channels, interleave, bl, cmds, seed, p)


def test_small_window_and_fast_channels():
    """max_inflight of one beat and latency 1: the window and the FIFO edges."""
    cmds = _commands(random.Random(5), 2, 25, max_len=40)
    _run(2, 1, 2, cmds, 5, 0.2, max_inflight=2, latency=lambda: 1)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("channels,interleave,bl", [(1, 1, 1), (3, 4, 1), (4, 1, 4), (3, 1, 2), (2, 2, 4)])
def test_random_bursts_long(channels, interleave, bl, seed):
    s = 90_000 + seed * 1000 + channels * 100 + interleave * 10 + bl
    cmds = _commands(random.Random(s), bl, 150)
    _run(channels, interleave, bl, cmds, s, random.Random(s).choice([0.0, 0.2, 0.5]))


def _throughput(channels: int, bl: int, beats: int, *, max_inflight: int, latency: int = 40,
                burst: int | None = None) -> float:
    """Read bursts of `burst` beats (default: one of `beats`) back to back, channels always ready
    with a fixed latency, port always ready: beats per cycle from the first beat to the last."""
    dut = Streamer(CH, channels, max_inflight=max_inflight, beat_lines=bl)
    chans = ChannelModels(dut, 0, 0.0, lambda: latency)
    times = []

    async def commands(ctx):
        step = burst or beats
        await send(ctx, dut.port.cmd, [{"addr": 1000 + a, "len": step, "write": 0} for a in range(0, beats, step)])

    async def bench(ctx):
        ctx.set(dut.port.rd.ready, 1)
        cycle = 0
        async for _, _, valid in ctx.tick().sample(dut.port.rd.valid):
            cycle += 1
            if valid:
                times.append(cycle)
                if len(times) == beats:
                    break
            if cycle > 20 * beats + 1000:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(chans.serve())
    sim.add_testbench(commands)
    sim.add_testbench(bench)
    sim.run()
    assert len(times) == beats, f"{len(times)} of {beats} beats came back"
    rate = (beats - 1) / (times[-1] - times[0])
    print(f"\nstreamer channels={channels} beat_lines={bl} max_inflight={max_inflight} latency={latency} "
          f"burst={burst or beats}: "
          f"{rate:.3f} beats/cycle = {rate * bl:.3f} lines/cycle, peak inflight {chans.peak_inflight} lines, "
          f"first beat after {times[0]} cycles")
    return rate


@pytest.mark.parametrize("channels,bl,burst", [(1, 1, None), (4, 1, None), (2, 2, None), (4, 4, None), (3, 1, 1),
                                               (4, 4, 2)])
def test_throughput_full_rate(channels, bl, burst):
    """A long burst, or short ones back to back (no bubble between commands)."""
    rate = _throughput(channels, bl, 400, max_inflight=256, burst=burst)
    assert rate >= 0.99, f"{rate:.3f} beats/cycle: the port should take one beat per cycle"


def test_throughput_window_limited():
    rate = _throughput(1, 1, 200, max_inflight=8)
    assert 6 / 45 <= rate <= 8 / 40, f"{rate:.3f} lines/cycle: expected about 8 / 40 with 8 lines in flight"


@pytest.mark.parametrize("kw", [
    {"channels": 0}, {"channels": 5}, {"interleave": 3}, {"interleave": 0}, {"beat_lines": 3},
    {"beat_lines": 2, "max_inflight": 3}, {"max_inflight": 0},
])
def test_bad_parameters(kw):
    with pytest.raises(ValueError):
        Streamer(CH, **kw)


def test_reference_map():
    assert [channel_of(g, 3, 2) for g in range(8)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1),
                                                       (0, 2), (0, 3)]


@pytest.mark.parametrize("channels,interleave,bl", [(1, 1, 1), (4, 1, 4), (3, 4, 1)])
def test_converts_to_verilog(channels, interleave, bl):
    dut = Streamer(CH, channels, interleave=interleave, max_inflight=256, beat_lines=bl)
    text = verilog.convert(dut, name="streamer")
    assert "module streamer" in text
    for k in range(channels):
        assert f"c{k}__req__valid" in text
