"""hw.core.readq.ReadQueue: a unit's reads issued ahead of a READ_LATENCY-cycle read channel,
handed on in order, under random issue gaps and random backpressure.

The bench plays both neighbours: a reader that issues word addresses 0, 1, 2, ... whenever `space`
is high (and a random coin says so), tagging each with its address, and a channel model that puts
the word of a read on `din` READ_LATENCY cycles after it and a poison word in every other cycle
(hw.core.iface's contract). The consumer takes the head at random. Checked every cycle: the head is
the oldest word not yet taken, with its tag; nothing is lost or duplicated; `space` is low exactly
when `depth` reads are in flight or queued; `empty` is high exactly when none is; without gaps and
backpressure a word is handed on every cycle.
"""
from __future__ import annotations

import collections
import random

import pytest
from amaranth.hdl import signed
from amaranth.sim import Simulator

from hw.core.iface import FX, READ_LATENCY
from hw.core.readq import DEPTH, QUEUE_LATENCY, ReadQueue
from sim.tb import unit
from spec import numerics as N

CONFIGS = {"l1": unit.config("ecp5", beat_bytes=8, vector_lanes=1, vlen=64),
           "l4": unit.config("ecp5", vlen=64)}


def _word(lanes: int, n: int, addr: int, k: int) -> list[int]:
    return [(addr * 1_000_003 + 7919 * j + 104_729 * k) % (1 << 40) - (1 << 39) for j in range(lanes)]


def _low(v: int, bits: int) -> int:
    """The low `bits` bits of v, signed (what a narrow element keeps)."""
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


#: the elements kept per channel count: whole FX words, or (as NORM/QNT) a narrow second channel
ELEMS = {1: (FX,), 2: (FX, signed(16))}


def _run(cfg: str, n: int, issue_p: float, take_p: float, seed, reads: int = 300) -> dict:
    config = CONFIGS[cfg]
    lanes = config.vector_lanes
    elems = ELEMS[n]
    dut = ReadQueue(config, elems, tag=range(1 << 12))
    rng = random.Random(seed)
    poison = [N.FX_MIN + 5 + j for j in range(lanes)]
    stats = {"taken": 0, "cycles": 0, "full": 0, "first_take": None}

    async def bench(ctx):
        arriving = collections.deque([None] * READ_LATENCY)
        issued = 0
        expect = collections.deque()          # addresses issued, not yet taken
        outstanding = 0                       # issued and not yet taken
        while stats["taken"] < reads:
            space = ctx.get(dut.space)
            assert space == (outstanding < DEPTH), f"space {space} with {outstanding} reads outstanding"
            assert ctx.get(dut.empty) == (outstanding == 0)
            stats["full"] += not space
            issue = space and issued < reads and rng.random() < issue_p
            ctx.set(dut.issue, issue)
            ctx.set(dut.tag, issued if issue else rng.randrange(1 << 12))
            w = arriving.popleft()
            for k in range(n):
                ctx.set(dut.din[k], [_low(v, elems[k].width) for v in (poison if w is None else _word(lanes, n, w, k))])
            valid = ctx.get(dut.valid)
            assert valid == bool(len(expect) and expect[0][1] <= stats["cycles"]), \
                f"cycle {stats['cycles']}: valid {valid}, waiting {list(expect)[:2]}"
            take = valid and rng.random() < take_p
            if valid:
                a = expect[0][0]
                assert ctx.get(dut.tag_out) == a, f"head tag {ctx.get(dut.tag_out)}, expected {a}"
                for k in range(n):
                    want = [_low(v, elems[k].width) for v in _word(lanes, n, a, k)]
                    assert [int(v) for v in ctx.get(dut.dout[k])] == want, f"word {a} channel {k}"
            ctx.set(dut.take, take)
            arriving.append(issued if issue else None)
            if issue:
                expect.append((issued, stats["cycles"] + QUEUE_LATENCY))
                issued += 1
                outstanding += 1
            if take:
                expect.popleft()
                outstanding -= 1
                stats["taken"] += 1
                if stats["first_take"] is None:
                    stats["first_take"] = stats["cycles"]
            await ctx.tick()
            stats["cycles"] += 1
        assert not expect

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return stats


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("n", [1, 2])
def test_full_rate(cfg, n):
    """Issue whenever there is space and take every word: one word per cycle after QUEUE_LATENCY."""
    st = _run(cfg, n, 1.0, 1.0, seed=1, reads=100)
    assert st["first_take"] == QUEUE_LATENCY
    assert st["cycles"] == 100 + QUEUE_LATENCY
    assert st["full"] == 0


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("issue_p,take_p", [(0.5, 1.0), (1.0, 0.3), (0.6, 0.6)])
def test_random_gaps_and_backpressure(cfg, n, issue_p, take_p):
    st = _run(cfg, n, issue_p, take_p, seed=f"readq-{cfg}-{n}-{issue_p}-{take_p}")
    assert st["taken"] == 300
    if take_p < 1.0 and issue_p == 1.0:
        assert st["full"] > 50, st          # the queue really filled and held its words


def test_rejects_bad_parameters():
    config = CONFIGS["l1"]
    unit.rejects(ValueError, r"at least one channel", ReadQueue, config, ())
    least = READ_LATENCY + 2
    unit.rejects(ValueError, rf"power of two >= {least}", ReadQueue, config, (FX,), None, least - 1)
    unit.rejects(ValueError, rf"power of two >= {least}", ReadQueue, config, (FX,), None, DEPTH + 2)
    assert DEPTH >= least and DEPTH & (DEPTH - 1) == 0 and DEPTH // 2 < least
