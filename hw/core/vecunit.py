"""The core's elementwise vector unit: the ISA vector group (ADD SUB MUL DIV EXP SIG SILU GMUL ONEM
MOVV) as a functional unit behind the register channels of hw.core.iface.

`VectorOpUnit` takes one instruction at a time from `cmd`, reads words 0 .. W-1 of Vs (and of Vt
for the two-operand ops), W = ceil(VL / vector_lanes), runs them through `hw.core.vpu.VectorUnit`
(the nine pipelined ops) or `hw.core.vpu.VectorDivider` (DIV) and writes the results to words
0 .. W-1 of Vd, the last word masked to the lanes below VL. The golden reference is
`golden.machine`'s vector handlers (`golden.ops` elementwise on Vs[:VL], Vt[:VL]).

Flow control. A read channel's word arrives READ_LATENCY cycles after its `en` (hw.core.iface), so the reads
go through a hw.core.readq.ReadQueue: the unit raises `en` for the next word while the queue has
space (a registered flag), and the queue's head is the stage in front of the operation.
Backpressure of the operation (the divider is busy; a stalled pipeline) thus keeps words in the
queue and never loses one; with no backpressure a word is read every cycle. The write channel cannot stall,
so the operation's output is always ready and every result is written in the cycle it appears.
"""
from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.accel import AccelConfig

from .common import CoreUnit
from .iface import FX, ReadChannel, WriteChannel, check_core_config, unit_cmd_layout, words
from .readq import QUEUE_LATENCY, ReadQueue
from .vpu import PIPELINED_MNEMONICS, VectorDivider, VectorUnit, latency

__all__ = ["MNEMONICS", "TWO_OPERAND", "VectorOpUnit", "div_cycles", "pipelined_cycles"]

#: The instructions this unit runs: the ISA's vector group.
MNEMONICS = tuple(o.mnemonic for o in isa.OPS if o.group == "vector")
#: Those that read Vt (format VVV); the others (VV) keep `rt.en` low.
TWO_OPERAND = tuple(o.mnemonic for o in isa.OPS if o.group == "vector" and o.fmt == "VVV")

if set(MNEMONICS) != set(PIPELINED_MNEMONICS) | {"DIV"}:
    raise RuntimeError("the ISA's vector group is not VectorUnit's ops plus DIV: update VectorOpUnit")


def pipelined_cycles(n_words: int, mnemonic: str) -> int:
    """The `done` cycle of a pipelined op `mnemonic` of `n_words` words, counted from the cycle `cmd`
    is accepted (cycle 0): one cycle to latch the instruction, the read and the read queue
    (QUEUE_LATENCY), `hw.core.vpu.latency(mnemonic)` stages (SHORT_LATENCY for ADD SUB ONEM MOVV,
    LATENCY for the others), then one word per cycle. The next instruction can be accepted one
    cycle later."""
    return n_words + latency(mnemonic) + QUEUE_LATENCY


def div_cycles(n_words: int) -> int:
    """The `done` cycle of a DIV of `n_words` words, counted as in `pipelined_cycles`: the
    divider takes a word every DIV_CYCLES + 1 cycles (its result cycle, then idle again)."""
    return n_words * (VectorDivider.DIV_CYCLES + 1) + QUEUE_LATENCY


class VectorOpUnit(CoreUnit):
    """Functional unit for the ISA vector group (hw.core.iface unit contract).

    Parameters
    ----------
    config : AccelConfig
        `vector_lanes` (elements per word) and `vlen` (words per register = vlen / lanes); checked
        with `hw.core.iface.check_core_config` and the FX width check of the vpu units.

    Attributes
    ----------
    cmd : In(stream.Signature(unit_cmd_layout(config)))
        The instruction: `op` (a vector-group opcode), `vl` (1 .. vlen), `vd`, `vs`, `vt`; other
        fields are ignored. Other opcodes or a `vl` outside 1 .. vlen are not checked here (the
        sequencer routes and checks them); the unit's behaviour is then unspecified. `ready` is
        high exactly while the unit is idle.
    done : Out(1)
        One-cycle pulse in the cycle of the last register write (the write is performed at the
        end of that cycle); the unit is idle (`cmd.ready`) from the next cycle.
    rs, rt : Out(ReadChannel(config))
        Reads of Vs and Vt: the same word addresses 0 .. W-1 in order, in the same cycles, each
        word once. `rt.en` stays low for the one-operand ops (EXP SIG SILU ONEM MOVV).
    wd : Out(WriteChannel(config))
        Writes of Vd, words 0 .. W-1 in order, each once; `mask` is all lanes except on word W-1,
        where it is the lanes below VL (elements at or past VL are never written).

    Timing (W = ceil(VL / lanes) words, no backpressure inside, L = `hw.core.vpu.latency(op)`:
    SHORT_LATENCY for ADD SUB ONEM MOVV, LATENCY for MUL GMUL EXP SIG SILU): with `cmd` accepted on
    the edge ending cycle 0, the reads are in cycles 1 .. W, the words at the read queue's head
    Q = QUEUE_LATENCY (5) cycles later, the writes in cycles L+Q+1 .. L+W+Q and `done` in cycle
    W + L + Q (`pipelined_cycles(W, op)`); the next instruction can be accepted in the cycle after.
    DIV: one word per `VectorDivider.DIV_CYCLES + 1` cycles, `done` in cycle `div_cycles(W)` =
    W * (DIV_CYCLES + 1) + Q.

    Every word is read before any result of it is written and words are written in the order
    they are read, so in-place instructions (vd == vs or vd == vt) and vs == vt are exact.
    """

    def __init__(self, config: AccelConfig):
        check_core_config(config)
        # built here so that a bad config (fx_bits) is rejected at construction
        self._vu = VectorUnit(config, held_op=True)   # `op` is set at accept, words arrive later
        self._div = VectorDivider(config)
        self._words = words(config)
        super().__init__(config, lambda lanes: {
            "cmd": In(stream.Signature(unit_cmd_layout(config))),
            "done": Out(1),
            "rs": Out(ReadChannel(config)),
            "rt": Out(ReadChannel(config)),
            "wd": Out(WriteChannel(config)),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        shift = lanes.bit_length() - 1          # lanes divides beat_bytes: a power of two
        assert 1 << shift == lanes
        m.submodules.vu = vu = self._vu
        m.submodules.div = div = self._div

        cmd = self.cmd.payload
        busy = Signal()
        op = Signal.like(cmd.op)
        is_div = Signal()
        reads_vt = Signal()
        last = Signal.like(self.rs.addr)        # W - 1
        last_mask = Signal(lanes)               # lanes below VL in word W - 1
        raddr = Signal.like(self.rs.addr)
        rlast = Signal()                        # raddr == last: the next read is the last one
        more = Signal()                         # words left to read (only while busy)
        waddr = Signal.like(self.wd.addr)
        wlast = Signal()                        # waddr == last: the next write is the last one

        m.d.comb += self.cmd.ready.eq(~busy)

        # -- accept: latch the instruction ---------------------------------------------------------
        vl1 = Signal.like(cmd.vl)
        m.d.comb += vl1.eq(cmd.vl - 1)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                busy.eq(1),
                op.eq(cmd.op),
                is_div.eq(cmd.op == isa.BY_MNEMONIC["DIV"].code),
                reads_vt.eq(cmd.op.matches(*(isa.BY_MNEMONIC[mn].code for mn in TWO_OPERAND))),
                last.eq(vl1 >> shift),
                last_mask.eq(Cat(vl1[:shift] >= j for j in range(lanes)) if shift else 1),
                raddr.eq(0),
                rlast.eq((vl1 >> shift) == 0),
                more.eq(1),
                waddr.eq(0),
                wlast.eq((vl1 >> shift) == 0),
                self.rs.reg.eq(cmd.vs),
                self.rt.reg.eq(cmd.vt),
                self.wd.reg.eq(cmd.vd),
            ]

        # -- read: the read queue's head is the stage in front of the operation -------------------
        m.submodules.rq = rq = ReadQueue(self._config, (FX, FX))
        rvalid = rq.valid
        take = Signal()         # the operation accepts the word at the queue's head this cycle
        m.d.comb += take.eq(rvalid & Mux(is_div, div.i.ready, vu.i.ready))
        ren = Signal()
        m.d.comb += [
            ren.eq(more & rq.space),
            self.rs.en.eq(ren),
            self.rt.en.eq(ren & reads_vt),
            self.rs.addr.eq(raddr),
            self.rt.addr.eq(raddr),
            rq.issue.eq(ren),
            rq.din0.eq(self.rs.data),
            rq.din1.eq(self.rt.data),
            rq.take.eq(take),
        ]
        with m.If(ren):
            m.d.sync += [raddr.eq(raddr + 1), rlast.eq(raddr + 1 == last)]
            with m.If(rlast):
                m.d.sync += more.eq(0)

        a, b = rq.dout0, rq.dout1
        m.d.comb += [
            vu.i.valid.eq(rvalid & ~is_div),
            vu.i.payload.op.as_value().eq(op),
            vu.i.payload.a.eq(a),
            vu.i.payload.b.eq(b),
            div.i.valid.eq(rvalid & is_div),
            div.i.payload.a.eq(a),
            div.i.payload.b.eq(b),
            vu.o.ready.eq(1),
            div.o.ready.eq(1),
        ]

        # -- write: every result in the cycle it appears ---------------------------------------------
        m.d.comb += [
            self.wd.en.eq(vu.o.valid | div.o.valid),
            self.wd.addr.eq(waddr),
            self.wd.data.eq(Mux(div.o.valid, div.o.payload.data, vu.o.payload.data)),
            self.wd.mask.eq(Mux(wlast, last_mask, (1 << lanes) - 1)),
            self.done.eq(self.wd.en & wlast),
        ]
        with m.If(self.wd.en):
            m.d.sync += [waddr.eq(waddr + 1), wlast.eq(waddr + 1 == last)]
        with m.If(self.done):
            m.d.sync += busy.eq(0)

        return m
