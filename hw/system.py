"""The whole simulated system: the accelerator (hw.top.Accelerator) on a DDR4 memory system
(hw.mem.dram_system.DramSystem: the weight streamer, 1..4 DDR4 controllers, DRAM models with the
JEDEC checker). Sim-only (the DRAM model is not meant for an FPGA); the top of the full-system
Verilator harness (sim/backends/verilator.py, sim/backends/harness/).

    System(config, ch=Channel("DDR4-2400R", "8Gb_x8"), channels=1, interleave=1)   # config.cores cores

    accelerator.mem --(cmd/rd/wr counters)--> DramSystem(ch, channels, frontend="streamer",
                                                         beat_lines=config.beat_bytes // 64).port

Ports: every port of the Accelerator except `mem` (tok_in[k], tok_out[k], rom_wr, start,
state_base, state_stride, halted, fault, waiting, busy, cycles); every channel's `store{i}`
(hw/mem/dfi.py StorePortSignature: the harness serves the DRAM model's backing store) and
`stat{i}` (hw/mem/dram_system.py StatusSignature); and three 64-bit counters of handshakes on the
accelerator's memory port since reset: `cmds` (commands), `rd_beats` and `wr_beats`.

Memory accounting: every write beat of the port is `beat_lines` lines, each one WR command of one
channel's model (the model's `writes` counter counts WR commands when they issue; their data
reaches the store `ch.wr_latency` cycles later), so once the memory is quiet
sum(stat{i}.writes) == wr_beats * beat_lines, and so does the number of store writes the harness
served.
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from hw.mem.dfi import StorePortSignature
from hw.mem.dram_system import DramSystem, StatusSignature
from hw.top import Accelerator
from spec.accel import AccelConfig
from spec.dram import Channel, check_channels

__all__ = ["System", "default_channel"]

#: counters of the accelerator's memory port (handshakes since reset)
PORT_COUNTERS = ("cmds", "rd_beats", "wr_beats")


def default_channel() -> Channel:
    """The default channel: DDR4-2400R, 8 Gb x8 devices, x64, one rank (spec.dram.Channel())."""
    return Channel("DDR4-2400R", "8Gb_x8")


class System(wiring.Component):
    """Accelerator + DRAM system, one simulation top (module docstring)."""

    def __init__(self, config: AccelConfig, *, ch: Channel | None = None, channels: int = 1, interleave: int = 1):
        if not isinstance(config, AccelConfig):
            raise ValueError(f"config must be an AccelConfig, got {config!r}")
        ch = default_channel() if ch is None else ch
        if not isinstance(ch, Channel):
            raise ValueError(f"ch must be a spec.dram.Channel, got {ch!r}")
        if config.beat_bytes % ch.line_bytes or config.beat_bytes // ch.line_bytes not in (1, 2, 4):
            raise ValueError(f"config {config.name}: a memory beat of {config.beat_bytes} B is not 1, 2 or 4 DRAM "
                             f"lines of {ch.line_bytes} B (the streamer joins whole lines into a beat)")
        check_channels(channels)
        self.config, self.cores, self.ch = config, config.cores, ch
        self.channels, self.interleave = channels, interleave
        self.beat_lines = config.beat_bytes // ch.line_bytes
        acc = Accelerator(config)
        acc._MustUse__silence = True            # built here only to read its signature; elaborate builds its own
        members = {name: member for name, member in acc.signature.members.items() if name != "mem"}
        for i in range(channels):
            members[f"store{i}"] = Out(StorePortSignature(ch))
            members[f"stat{i}"] = Out(StatusSignature(ch))
        for name in PORT_COUNTERS:
            members[name] = Out(64)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = acc = Accelerator(self.config)
        m.submodules.dram = dram = DramSystem(self.ch, self.channels, frontend="streamer",
                                              beat_lines=self.beat_lines, interleave=self.interleave)
        wiring.connect(m, acc.mem, dram.port)
        for k in range(self.cores):
            wiring.connect(m, wiring.flipped(self.tok_in[k]), acc.tok_in[k])
            wiring.connect(m, acc.tok_out[k], wiring.flipped(self.tok_out[k]))
        wiring.connect(m, wiring.flipped(self.rom_wr), acc.rom_wr)
        m.d.comb += [acc.start.eq(self.start), acc.state_base.eq(self.state_base),
                     acc.state_stride.eq(self.state_stride)]
        m.d.comb += [getattr(self, n).eq(getattr(acc, n)) for n in ("halted", "fault", "waiting", "busy", "cycles")]
        for i in range(self.channels):
            wiring.connect(m, wiring.flipped(getattr(self, f"store{i}")), getattr(dram, f"store{i}"))
            ours, theirs = getattr(self, f"stat{i}"), getattr(dram, f"stat{i}")
            for name in ours.signature.members:
                m.d.comb += getattr(ours, name).eq(getattr(theirs, name))
        port = acc.mem
        m.d.sync += [
            self.cmds.eq(self.cmds + (port.cmd.valid & port.cmd.ready)),
            self.rd_beats.eq(self.rd_beats + (port.rd.valid & port.rd.ready)),
            self.wr_beats.eq(self.wr_beats + (port.wr.valid & port.wr.ready)),
        ]
        return m
