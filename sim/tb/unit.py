"""Testbench models for one functional unit in Amaranth simulation: a register file that serves
the unit's read/write channels (hw.core.iface) and a RAM that serves its memory port
(hw.mem.port), both under seeded random stalls.

    regs = RegModel(config)                       # 8 vector registers of config.vlen int elements
    sim.add_process(regs.serve_read(unit.rs))     # one per read channel
    sim.add_process(regs.serve_write(unit.wd))    # one per write channel
    ram = RamModel(bytearray(...), beat_bytes, Pauses(seed, p))
    sim.add_process(ram.serve(unit.mem))

The register model is exact about the channel contract: `data` is the word addressed in the
previous cycle with `en` high and holds while `en` is low; writes apply to masked lanes only.
The RAM accepts commands and moves beats with random pauses on every handshake it controls
(cmd.ready, rd.valid, wr.ready) and checks the port rules (lengths, in-range addresses).
"""
from __future__ import annotations

import numpy as np

from hw.core.iface import words
from sim.tb.streams import NO_PAUSES, Pauses
from spec import isa
from spec.accel import AccelConfig

__all__ = ["RegModel", "RamModel", "cmd_payload"]


class RegModel:
    def __init__(self, config: AccelConfig, rng: np.random.Generator | None = None):
        self.lanes = config.vector_lanes
        self.words = words(config)
        self.V = [np.zeros(config.vlen, np.int64) for _ in range(isa.N_VREGS)]
        self.writes = 0

    def word(self, reg: int, addr: int) -> list[int]:
        assert 0 <= addr < self.words, f"read of word {addr} outside the register ({self.words} words)"
        return [int(v) for v in self.V[reg][addr * self.lanes:(addr + 1) * self.lanes]]

    def serve_read(self, chan):
        async def process(ctx):
            async for _, _, en, reg, addr in ctx.tick().sample(chan.en, chan.reg, chan.addr):
                if en:
                    ctx.set(chan.data, self.word(reg, addr))
        return process

    def serve_write(self, chan):
        async def process(ctx):
            async for _, _, en, reg, addr, mask, data in ctx.tick().sample(
                    chan.en, chan.reg, chan.addr, chan.mask, chan.data):
                if en:
                    assert 0 <= addr < self.words, f"write of word {addr} outside the register"
                    for j in range(self.lanes):
                        if (mask >> j) & 1:
                            self.V[reg][addr * self.lanes + j] = int(data[j])
                    self.writes += 1
        return process


class RamModel:
    """Byte-addressed RAM behind a MemPortSignature port (the test drives the responder side)."""

    def __init__(self, mem: bytearray, beat_bytes: int, pauses: Pauses = NO_PAUSES):
        self.mem = mem
        self.beat = beat_bytes
        self.pauses = pauses
        self.reads = self.writes = 0        # beats
        self.commands: list[tuple[int, int, bool]] = []

    def _beat(self, line: int) -> int:
        a = line * self.beat
        assert 0 <= a and a + self.beat <= len(self.mem), f"read of line {line} outside the RAM"
        return int.from_bytes(self.mem[a:a + self.beat], "little")

    def serve(self, port):
        async def process(ctx):
            while True:
                # accept one command
                idle = self.pauses.next()
                ctx.set(port.cmd.ready, 0)
                if idle:
                    await ctx.tick().repeat(idle)
                ctx.set(port.cmd.ready, 1)
                async for _, _, valid, cmd in ctx.tick().sample(port.cmd.valid, port.cmd.payload):  # noqa: B007
                    if valid:
                        break
                ctx.set(port.cmd.ready, 0)
                line, n, write = int(cmd.addr), int(cmd.len), bool(cmd.write)
                assert n >= 1, "a command of zero beats"
                self.commands.append((line, n, write))
                if write:
                    for k in range(n):
                        idle = self.pauses.next()
                        if idle:
                            await ctx.tick().repeat(idle)
                        ctx.set(port.wr.ready, 1)
                        async for _, _, valid, beat in ctx.tick().sample(port.wr.valid, port.wr.payload):  # noqa: B007
                            if valid:
                                break
                        ctx.set(port.wr.ready, 0)
                        a = (line + k) * self.beat
                        assert 0 <= a and a + self.beat <= len(self.mem), f"write of line {line + k} outside the RAM"
                        d, mask = int(beat.data), int(beat.mask)
                        for i in range(self.beat):
                            if (mask >> i) & 1:
                                self.mem[a + i] = (d >> (8 * i)) & 0xFF
                        self.writes += 1
                else:
                    for k in range(n):
                        idle = self.pauses.next()
                        if idle:
                            ctx.set(port.rd.valid, 0)
                            await ctx.tick().repeat(idle)
                        ctx.set(port.rd.payload.data, self._beat(line + k))
                        ctx.set(port.rd.valid, 1)
                        async for _, _, ready in ctx.tick().sample(port.rd.ready):
                            if ready:
                                break
                        ctx.set(port.rd.valid, 0)
                        self.reads += 1
        return process


def cmd_payload(op: str, **fields) -> dict:
    """A unit_cmd_layout payload for `ctx.set`: opcode from the mnemonic, other fields 0 unless
    given (sf as {"mantissa": m, "exponent": e})."""
    p = {"op": isa.BY_MNEMONIC[op].code, "vl": 0, "vd": 0, "vs": 0, "vt": 0, "ad": 0, "at": 0, "fd": 0,
         "addr": 0, "s0": 0, "s1": 0, "sf": {"mantissa": 0, "exponent": 0}, "rows": 0}
    p.update(fields)
    return p
