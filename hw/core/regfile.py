"""The vector register file and the register router (the paper's "register router", section 5).

Eight vector registers V0..V7, each its own SRAM with one read and one write port, as in the
paper's core. A register holds `vlen` FX elements as `vlen // vector_lanes` words of
`vector_lanes` elements (hw.core.iface). The router connects the functional units' read and write
channels (iface.ReadChannel / iface.WriteChannel) to the register ports: a channel names its
register in `reg`, and the register's port follows whichever channel addresses it with `en` high.
The sequencer's hazard rules (hw.core.core) guarantee that at most one instruction in flight reads
a register and at most one writes it, so no arbitration is needed and a port's address, data and
enables are an AND-OR of the channels that name its register; when two channels of one unit name
the same register they read the same word in the same cycle (equal addresses).

Reads take five cycles (hw.core.iface.READ_LATENCY), each ending in a register: the address of
the channel that names the register, registered beside its block RAM; the block RAM's read; its
output register (hw.core.ram.RegisteredRAM: on ECP5 the DP16KD's own, whose clock-to-output is
short where the array's, 5.8 ns at -6, had been the worst path into a fabric register); a fabric
register towards the units; the router's 8:1 choice of the channel's register. So `data` comes
from a flip-flop five cycles after `en`, and no path runs from a unit to a block RAM or back in
one cycle (the routed builds' worst paths did). The
block RAMs read every cycle; a channel's `data` is valid in the one cycle its read arrives
(hw.core.readq queues it).

Writes are registered beside the block RAM too and written at the next edge, in step with the
registered read address: a read in the cycle after a write sees it, a read in the same cycle is
undefined (hw.core.iface).

After reset the file clears itself: for `words` cycles every register's write port writes zeros
(`clearing` is high meanwhile; the last zeros land the cycle after), so every element starts at 0
as in the golden machine's `reset()`.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.accel import AccelConfig

from .common import and_or
from .iface import FX, READ_LATENCY, ReadChannel, WriteChannel, check_core_config, words
from .ram import RegisteredRAM

__all__ = ["RegisterFile"]


class RegisterFile(wiring.Component):
    """V0..V7 with the router in front.

    Parameters
    ----------
    config : AccelConfig
    n_read, n_write : int
        Number of unit read and write channels to route.

    Attributes
    ----------
    rd : list of In(ReadChannel(config)), n_read of them
    wr : list of In(WriteChannel(config)), n_write of them
    clearing : Out(1)
        High while the post-reset clear runs (channels must stay idle).
    """

    def __init__(self, config: AccelConfig, n_read: int, n_write: int):
        check_core_config(config)
        self._config = config
        members = {f"rd{k}": In(ReadChannel(config)) for k in range(n_read)}
        members |= {f"wr{k}": In(WriteChannel(config)) for k in range(n_write)}
        members["clearing"] = Out(1)
        self._n_read, self._n_write = n_read, n_write
        super().__init__(members)

    @property
    def rd(self) -> list:
        return [getattr(self, f"rd{k}") for k in range(self._n_read)]

    @property
    def wr(self) -> list:
        return [getattr(self, f"wr{k}") for k in range(self._n_write)]

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lanes, depth = cfg.vector_lanes, words(cfg)
        shape = data.ArrayLayout(FX, lanes)

        clear_addr = Signal(range(max(2, depth)))
        clearing = Signal(init=1)
        m.d.comb += self.clearing.eq(clearing)
        with m.If(clearing):
            m.d.sync += clear_addr.eq(clear_addr + 1)
            with m.If(clear_addr == depth - 1):
                m.d.sync += clearing.eq(0)

        rdata = []
        for r in range(isa.N_VREGS):
            # The block RAM (hw.core.ram): its read address the register below, its read output
            # registered in it (on ECP5 the DP16KD's output register: the 5.8 ns clock-to-output of a
            # -6 block RAM without it had been the worst path into the first fabric register), then
            # once more in fabric, towards the units
            ram = m.submodules[f"v{r}"] = RegisteredRAM(shape.size, depth, granularity=FX.width, name=f"v{r}")
            # the read address, chosen among the channels and registered beside the block RAM
            raddr = Signal.like(ram.r_addr, name=f"v{r}_raddr")
            m.d.comb += ram.r_addr.eq(raddr)
            rq = Signal(shape, name=f"v{r}_rdata", reset_less=True)
            m.d.sync += rq.eq(ram.r_data)
            # the read address: an AND-OR of the channels that name the register (at most one
            # instruction reads it; two channels of one unit that name it read the same word in the
            # same cycle, so their addresses are equal), not a priority chain of muxes
            rhits = [ch.en & (ch.reg == r) for ch in self.rd]
            with m.If(Cat(rhits).any()):
                m.d.sync += raddr.eq(and_or(rhits, [ch.addr for ch in self.rd]))
            # The write port's address, data and enables are registers beside the block RAM: the
            # channel's choice is registered, and the word is written at the edge after (a routed
            # build's worst paths ended in a long last hop from the choice to the block RAM).
            # (address and data loaded when a channel names the register, the enable an OR of the
            # channels' hits, not the end of the choice's priority chain)
            w_addr = Signal.like(ram.w_addr, name=f"v{r}_waddr")
            w_data = Signal(shape, name=f"v{r}_wdata")
            w_en = Signal.like(ram.w_en, name=f"v{r}_wen")
            s_addr, s_data, s_en = Signal.like(w_addr), Signal.like(w_data), Signal.like(w_en)
            hits = Signal(len(self.wr), name=f"v{r}_whits")
            m.d.comb += hits.eq(Cat(ch.en & (ch.reg == r) for ch in self.wr))
            # at most one instruction writes a register: the channels' AND-OR (zeros while clearing)
            with m.If(clearing):
                m.d.comb += [s_addr.eq(clear_addr), s_en.eq((1 << lanes) - 1)]
            with m.Else():
                m.d.comb += [s_addr.eq(and_or(hits, [ch.addr for ch in self.wr])),
                             s_data.eq(and_or(hits, [ch.data for ch in self.wr])),
                             s_en.eq(and_or(hits, [ch.mask for ch in self.wr]))]
            with m.If(clearing | hits.any()):
                m.d.sync += [w_addr.eq(s_addr), w_data.eq(s_data)]
            m.d.sync += w_en.eq(s_en)
            m.d.comb += [ram.w_addr.eq(w_addr), ram.w_data.eq(w_data), ram.w_en.eq(w_en)]
            rdata.append(rq)

        # the router: each channel's register chosen by its `reg` of the read cycle, registered
        for k, ch in enumerate(self.rd):
            reg_d = ch.reg
            for j in range(READ_LATENCY - 1):
                r_next = Signal.like(ch.reg, name=f"rd{k}_reg_d{j + 1}")
                m.d.sync += r_next.eq(reg_d)
                reg_d = r_next
            with m.Switch(reg_d):
                for r in range(isa.N_VREGS):
                    with m.Case(r):
                        m.d.sync += ch.data.eq(rdata[r])
        return m
