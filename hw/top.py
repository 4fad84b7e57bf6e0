"""The accelerator: N cores sharing one memory port and one broadcast weight stream (batch N).

    cores[k].wmem --> WeightBroadcast --+
    cores[k].mem  --> state remap(k) ---+--> PortArbiter --> mem (hw.mem.port: RAM model, DDR4, ...)

Every core runs the same program (one ROM image, written to all cores by `rom_wr`) on its own
token stream (`tok_in[k]`, `tok_out[k]`) and its own state: a load/store address at or above the
state region (`state_base`, a line address) is moved up by `k * state_stride` lines, so core k
sees the weight image at 0 and its private state region after it, exactly the golden machine's
memory map. Weight reads (TMATMUL) of cores in lockstep are served once (hw.mem.arbiter).
BARRIER releases when every core is at a barrier or halted.
"""
from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from hw.core.core import TOKEN_BITS, Core, rom_write_signature
from hw.core.iface import A_BITS, check_core_config
from hw.mem.arbiter import PortArbiter, WeightBroadcast
from hw.mem.port import ADDR_BITS, MemPortSignature
from spec.accel import AccelConfig

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """`config.cores` cores, one memory port.

    Attributes
    ----------
    mem : Out(MemPortSignature(beat_bytes))
    tok_in : In(stream.Signature(signed(TOKEN_BITS))).array(cores)
    tok_out : Out(stream.Signature(signed(64))).array(cores)
    rom_wr : In(rom_write_signature(rom_words))   (all cores)
    start : In(1)                                 (restart halted cores at PC 0)
    state_base, state_stride : In(line address width)
    halted, fault, waiting, busy : Out(cores)
    cycles : Out(64)       clock cycles since reset
    """

    def __init__(self, config: AccelConfig, rom: Sequence[int] = ()):
        check_core_config(config)
        self._config = config
        self._rom = list(rom)
        n = self._cores = config.cores
        line_bits = ADDR_BITS - (config.beat_bytes.bit_length() - 1)
        super().__init__({
            "mem": Out(MemPortSignature(config.beat_bytes)),
            "tok_in": In(stream.Signature(signed(TOKEN_BITS))).array(n),
            "tok_out": Out(stream.Signature(signed(A_BITS))).array(n),
            "rom_wr": In(rom_write_signature(config.rom_words)),
            "start": In(1),
            "state_base": In(line_bits),
            "state_stride": In(line_bits),
            "halted": Out(n),
            "fault": Out(n),
            "waiting": Out(n),
            "busy": Out(n),
            "cycles": Out(64),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    @property
    def cores(self) -> int:
        return self._cores

    def elaborate(self, platform):
        m = Module()
        n = self._cores
        cores = [Core(self._config, self._rom) for _ in range(n)]
        for k, c in enumerate(cores):
            m.submodules[f"core{k}"] = c
            connect(m, flipped(self.tok_in[k]), c.tok_in)
            connect(m, c.tok_out, flipped(self.tok_out[k]))
            m.d.comb += [
                c.rom_wr.en.eq(self.rom_wr.en), c.rom_wr.addr.eq(self.rom_wr.addr), c.rom_wr.data.eq(self.rom_wr.data),
                c.start.eq(self.start),
                self.halted[k].eq(c.halted), self.fault[k].eq(c.fault), self.waiting[k].eq(c.waiting),
            ]
        done = Cat(c.at_barrier | c.halted for c in cores).all()
        for c in cores:
            m.d.comb += c.barrier_go.eq(done)
        m.d.sync += self.cycles.eq(self.cycles + 1)

        m.submodules.arbiter = arb = PortArbiter(self._config.beat_bytes, n + 1)
        if n == 1:
            connect(m, cores[0].wmem, arb.inputs[n])
        else:
            m.submodules.broadcast = bc = WeightBroadcast(self._config.beat_bytes, n)
            for k, c in enumerate(cores):
                connect(m, c.wmem, bc.inputs[k])
                m.d.comb += bc.parked[k].eq(c.halted | c.waiting | c.at_barrier)
            connect(m, bc.o, arb.inputs[n])
        for k, c in enumerate(cores):
            port = arb.inputs[k]
            # everything but the command address passes through
            m.d.comb += [
                port.cmd.valid.eq(c.mem.cmd.valid), c.mem.cmd.ready.eq(port.cmd.ready),
                port.cmd.payload.eq(c.mem.cmd.payload),
                c.mem.rd.valid.eq(port.rd.valid), c.mem.rd.payload.eq(port.rd.payload),
                port.rd.ready.eq(c.mem.rd.ready),
                port.wr.valid.eq(c.mem.wr.valid), port.wr.payload.eq(c.mem.wr.payload),
                c.mem.wr.ready.eq(port.wr.ready),
            ]
            if k:
                with m.If(c.mem.cmd.payload.addr >= self.state_base):
                    m.d.comb += port.cmd.payload.addr.eq(c.mem.cmd.payload.addr + k * self.state_stride)
        connect(m, arb.o, flipped(self.mem))
        # a core's HALT and BARRIER wait until the arbiter holds no write (its stores are in memory):
        # registered, a cycle late, which is safe because a store keeps its core's load/store unit
        # busy until its last beat is in the arbiter, and from its command on the arbiter holds a
        # write until the last beat has left; the host sees `busy` until then too (a core is busy
        # while it is not idle, and `mem_idle` is part of that)
        writing = Signal()
        m.d.sync += writing.eq(arb.writing)
        for k, c in enumerate(cores):
            m.d.comb += [c.mem_idle.eq(~writing), self.busy[k].eq(c.busy)]
        return m

