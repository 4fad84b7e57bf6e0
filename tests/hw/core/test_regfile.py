"""hw.core.regfile: RegisterFile, the eight vector registers and the router in front of them,
against a Python model of the channel contract of hw.core.iface.

What is checked, cycle by cycle:

* the post-reset clear: `clearing` is high for exactly `words` cycles after power-up and after a
  warm reset (the sync domain's reset pulsed in the middle of the traffic), and afterwards every
  element of every register reads 0 through the channels, whatever was written before the reset;
* random traffic on several read and write channels at once, each channel in "sessions" (one
  instruction: a register held for a random number of cycles, `en` raised at random, random
  addresses), respecting the contract the sequencer guarantees: at most one write channel per
  register, at most one read channel per register except "twins" (two channels naming the same
  register and reading the same addresses in the same cycles, as one unit's rs/rt do); a
  register may be read by one channel while another writes it (in-place instructions), never at
  the same word in the same cycle (a read in the cycle after a write sees it). Idle channels keep
  `en` low with random `reg`/`addr`/`data`
  (they must not disturb the registers in use);
* reads: `data` is the word addressed READ_LATENCY cycles before with `en` high, as it was
  in the cycle of the read, even when the word is overwritten in the cycle after; writes: only the
  lanes with `mask` set change.

Configurations: one lane (16 words), four lanes (8 words) and four lanes with a single word per
register (the edge of the address width), each with the Core's channel counts (7 read, 4 write)
and with a small router (2 read, 1 write).
"""
from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module
from amaranth.sim import Simulator

from hw.core.iface import READ_LATENCY, words
from hw.core.regfile import RegisterFile
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig, get_config

CONFIGS = {
    "l1": AccelConfig("rf-l1", beat_bytes=8, packing="2bit", vector_lanes=1, vlen=16, rom_words=16),
    "l4": dataclasses.replace(get_config("ecp5"), vlen=32),
    "l4w1": dataclasses.replace(get_config("ecp5"), vlen=4),
}
#: (read channels, write channels): the Core's router, a small one
CHANNELS = [(7, 4), (2, 1)]


def _fx(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.2:
        return rng.choice([0, 1, -1, N.FX_MAX, N.FX_MIN])
    if r < 0.5:
        return rng.randint(-1000, 1000)
    return rng.randint(N.FX_MIN, N.FX_MAX)


@dataclasses.dataclass
class _Read:
    """A read channel's session: its register, cycles left, the twin it follows (if any) and the
    words it must show, in flight: `pipe` holds those of the last READ_LATENCY - 1 cycles' reads,
    oldest first (None for none)."""
    reg: int = 0
    left: int = 0
    twin_of: int | None = None
    pipe: list = dataclasses.field(default_factory=lambda: [None] * (READ_LATENCY - 1))
    en: int = 0
    addr: int = 0


@dataclasses.dataclass
class _Write:
    reg: int = 0
    left: int = 0


class Bench:
    def __init__(self, config: AccelConfig, n_read: int, n_write: int, seed: int):
        self.cfg = config
        self.lanes, self.words = config.vector_lanes, words(config)
        self.rf = RegisterFile(config, n_read, n_write)
        self.rng = random.Random(seed)
        self.model = np.zeros((isa.N_VREGS, self.words, self.lanes), np.int64)
        self.reads = [_Read() for _ in range(n_read)]
        self.writes = [_Write() for _ in range(n_write)]
        self.stats = {"reads": 0, "writes": 0, "twin_reads": 0, "rw_same_reg": 0, "checked": 0}
        top = Module()
        top.domains.sync = self.cd = ClockDomain("sync")
        top.submodules.rf = self.rf
        self.sim = Simulator(top)
        self.sim.add_clock(1e-6)

    # -- sessions ------------------------------------------------------------------------------
    def _busy_read_regs(self) -> set[int]:
        return {s.reg for s in self.reads if s.left}

    def _busy_write_regs(self) -> set[int]:
        return {s.reg for s in self.writes if s.left}

    def _schedule(self) -> None:
        rng = self.rng
        for k, s in enumerate(self.reads):
            if s.left or rng.random() > 0.3:
                continue
            free = sorted(set(range(isa.N_VREGS)) - self._busy_read_regs())
            if not free:
                continue
            s.reg, s.left, s.twin_of = rng.choice(free), rng.randint(1, 3 * self.words + 4), None
            s.pipe = [None] * (READ_LATENCY - 1)
            idle = [j for j, t in enumerate(self.reads) if j != k and not t.left]
            if idle and rng.random() < 0.3:
                t = self.reads[rng.choice(idle)]
                t.reg, t.left, t.twin_of, t.pipe = s.reg, s.left, k, [None] * (READ_LATENCY - 1)
        for s in self.writes:
            if s.left or rng.random() > 0.3:
                continue
            free = sorted(set(range(isa.N_VREGS)) - self._busy_write_regs())
            if free:
                s.reg, s.left = rng.choice(free), rng.randint(1, 3 * self.words + 4)

    def _end_sessions(self) -> None:
        for s in self.reads:
            s.left, s.twin_of, s.en = 0, None, 0
            s.pipe = [None] * (READ_LATENCY - 1)
        for s in self.writes:
            s.left = 0

    # -- one cycle ------------------------------------------------------------------------------
    async def cycle(self, ctx, traffic: bool = True) -> None:
        rng, rf = self.rng, self.rf
        if traffic:
            self._schedule()
        # read channels: primaries first, then twins copy them
        for s in self.reads:
            if s.left and s.twin_of is None:
                s.en, s.addr = int(rng.random() < 0.6), rng.randrange(self.words)
            elif not s.left:
                s.en = 0
        for s in self.reads:
            if s.left and s.twin_of is not None:
                p = self.reads[s.twin_of]
                s.en, s.addr = p.en, p.addr
        reading = {(s.reg, s.addr) for s in self.reads if s.left and s.en}
        for ch, s in zip(rf.rd, self.reads, strict=True):
            if s.left:
                ctx.set(ch.reg, s.reg)
                ctx.set(ch.addr, s.addr)
            else:                                   # idle: en low, the rest anything
                ctx.set(ch.reg, rng.randrange(isa.N_VREGS))
                ctx.set(ch.addr, rng.randrange(self.words))
            ctx.set(ch.en, s.en)
        writes = []
        for ch, s in zip(rf.wr, self.writes, strict=True):
            addr = rng.randrange(self.words)
            en = bool(s.left) and rng.random() < 0.6 and (s.reg, addr) not in reading
            data = [_fx(rng) for _ in range(self.lanes)]
            mask = rng.getrandbits(self.lanes) if rng.random() < 0.6 else (1 << self.lanes) - 1
            ctx.set(ch.reg, s.reg if s.left else rng.randrange(isa.N_VREGS))
            ctx.set(ch.addr, addr)
            ctx.set(ch.en, int(en))
            ctx.set(ch.mask, mask)
            ctx.set(ch.data, data)
            if en:
                writes.append((s.reg, addr, mask, data))
                if any(r.left and r.reg == s.reg for r in self.reads):
                    self.stats["rw_same_reg"] += 1
        await ctx.tick()
        # the model: reads see the registers before this cycle's writes (also a word written in
        # the cycle before); the word read READ_LATENCY - 1 cycles ago is on `data` now
        arriving = []
        for s in self.reads:
            new = None
            if s.left and s.en:
                new = [int(v) for v in self.model[s.reg, s.addr]]
                self.stats["reads"] += 1
                self.stats["twin_reads"] += s.twin_of is not None
            s.pipe.append(new)
            arriving.append(s.pipe.pop(0))
        for reg, addr, mask, data in writes:
            for j in range(self.lanes):
                if (mask >> j) & 1:
                    self.model[reg, addr, j] = data[j]
            self.stats["writes"] += 1
        assert not ctx.get(rf.clearing), "clearing outside the post-reset clear"
        for k, (ch, s, want) in enumerate(zip(rf.rd, self.reads, arriving, strict=True)):
            if want is not None:
                got = [int(v) for v in ctx.get(ch.data)]
                assert got == want, f"rd{k} (V{s.reg}): data {got}, expected {want}"
                self.stats["checked"] += 1
        for s in self.reads + self.writes:
            s.left = max(0, s.left - 1)

    async def expect_clear(self, ctx) -> None:
        """`clearing` high for exactly `words` cycles from now, channels idle."""
        for ch in self.rf.rd + self.rf.wr:
            ctx.set(ch.en, 0)
        for c in range(self.words):
            assert ctx.get(self.rf.clearing), f"clearing low in cycle {c} of {self.words}"
            await ctx.tick()
        assert not ctx.get(self.rf.clearing), f"clearing still high after {self.words} cycles"
        self.model[:] = 0

    async def sweep(self, ctx) -> None:
        """Read every word of every register through the channels (word by word, several registers
        at once) and compare with the model."""
        self._end_sessions()
        chans = self.rf.rd
        for ch in chans + self.rf.wr:
            ctx.set(ch.en, 0)
        lag = READ_LATENCY - 1
        for first in range(0, isa.N_VREGS, len(chans)):
            regs = list(range(first, min(first + len(chans), isa.N_VREGS)))
            for a in range(self.words + lag):          # word a read, word a - lag arriving
                for ch, r in zip(chans, regs, strict=False):
                    ctx.set(ch.reg, r)
                    ctx.set(ch.addr, min(a, self.words - 1))
                    ctx.set(ch.en, int(a < self.words))
                await ctx.tick()
                if a < lag:
                    continue
                for ch, r in zip(chans, regs, strict=False):
                    got = [int(v) for v in ctx.get(ch.data)]
                    want = [int(v) for v in self.model[r, a - lag]]
                    assert got == want, f"sweep: V{r} word {a - lag} reads {got}, expected {want}"
        for ch in chans:
            ctx.set(ch.en, 0)

    def run(self, cycles: int) -> None:
        async def bench(ctx):
            await self.expect_clear(ctx)           # power-up
            await self.sweep(ctx)
            for _ in range(cycles):
                await self.cycle(ctx)
            await self.sweep(ctx)
            # warm reset in the middle of the traffic: the clear runs again
            self._end_sessions()
            ctx.set(self.cd.rst, 1)
            await ctx.tick()
            ctx.set(self.cd.rst, 0)
            await self.expect_clear(ctx)
            await self.sweep(ctx)
            for _ in range(cycles // 2):
                await self.cycle(ctx)
            await self.sweep(ctx)

        self.sim.add_testbench(bench)
        self.sim.run()


@pytest.mark.parametrize("cfg", list(CONFIGS))
@pytest.mark.parametrize("n_read,n_write", CHANNELS)
def test_regfile_random_traffic(cfg: str, n_read: int, n_write: int):
    b = Bench(CONFIGS[cfg], n_read, n_write, seed=100 * list(CONFIGS).index(cfg) + n_read)
    b.run(600)
    st = b.stats
    assert st["reads"] > 300 and st["writes"] > 100 and st["checked"] > 300, st
    if n_read > 2:
        assert st["twin_reads"] > 10 and st["rw_same_reg"] > 10, st


@pytest.mark.slow
@pytest.mark.parametrize("cfg", list(CONFIGS))
@pytest.mark.parametrize("seed", range(2))
def test_regfile_random_traffic_long(cfg: str, seed: int):
    Bench(CONFIGS[cfg], 7, 4, seed=1000 + seed).run(5000)


def test_regfile_channels():
    rf = RegisterFile(CONFIGS["l4"], 3, 2)
    Fragment.get(rf, None)
    assert len(rf.rd) == 3 and len(rf.wr) == 2
    assert len(rf.rd[0].data) == 4 and len(rf.wr[1].mask) == 4
