"""The core's ARGMAX functional unit (ISA "unit" group) behind the register channels of hw.core.iface.

Specification: ``golden.machine``'s ``_argmax`` handler and the ISA semantics

    for j < VL: if Vs[j] > Am: Am = Vs[j]; Ai = Ao + j      (strict: the first maximum is kept)

with Am = A[Am] (``cmd.s0``, 64-bit signed) and Ao = A[Ao] (``cmd.s1``) at issue; Ai = Ao + j wraps
to 64 bits. When no element exceeds Am neither register is written. The golden machine writes Am
and then Ai, so with ``ad == at`` the register ends up holding Ai; this unit raises both write-backs
in the same cycle, and the sequencer (hw.core.core) applies ``awb2`` after ``awb``: ``awb2`` wins on
the same index.

Datapath: words are read in order, one per cycle, through a hw.core.readq.ReadQueue (as in
hw.core.vecunit); each word is reduced by a tree of pairwise comparisons to its
first maximum among the lanes below VL (ties keep the lower lane), one tree level per pipeline stage
(a compare and the select it drives, registered: one carry chain per stage), registered once more,
then compared strictly with the running maximum (ties keep the earlier word), kept with its index.
The running maximum is FX-wide: A[Am] enters it as its FX bits and two flags (above FX's range:
no element exceeds it; below: the first valid element does), which decide every compare as the
64-bit value would; it is written back sign-extended.
Ao + index is added in the cycle after the last compare; the write-backs and ``done`` come from
registers in the cycle after that.
"""
from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.accel import AccelConfig

from .arith import tree_levels
from .common import CoreUnit
from .iface import A_BITS, FX, AWriteBack, ReadChannel, unit_cmd_layout, words
from .readq import QUEUE_LATENCY, ReadQueue

__all__ = ["ArgmaxUnit", "argmax_cycles", "tree_levels"]


def argmax_cycles(n_words: int, lanes: int) -> int:
    """The ``done`` cycle of an ARGMAX of `n_words` words of `lanes` lanes, counted from the cycle
    ``cmd`` is accepted (cycle 0), with no stalls: reads in cycles 1 .. W, the words at the read
    queue's head in cycles 1 + Q .. W + Q (Q = ``QUEUE_LATENCY``), the lane tree's
    :func:`tree_levels` registers and one more, the compare with the running maximum in cycle
    W + Q + levels + 1, Ao + index in the next and the write-backs from registers one cycle later.
    The next instruction can be accepted one cycle after ``done``."""
    return n_words + 3 + QUEUE_LATENCY + tree_levels(lanes)


class ArgmaxUnit(CoreUnit):
    """Functional unit for ARGMAX (hw.core.iface unit contract).

    Parameters
    ----------
    config : AccelConfig
        ``vector_lanes`` and ``vlen``; checked with ``hw.core.iface.check_core_config`` and the FX
        width check of the hw.core units.
    test_stall : bool
        Adds the member ``stall: In(1)`` (testbenches only): while it is high the datapath does not
        take the word at the read queue's head, which then stays there.

    Attributes
    ----------
    cmd : In(stream.Signature(unit_cmd_layout(config)))
        ``vl`` (1 .. vlen), ``vs``, ``at`` (Am), ``ad`` (Ai), ``s0`` = A[Am], ``s1`` = A[Ao]; other
        fields are ignored. ``ready`` is high exactly while the unit is idle.
    done : Out(1)
        One-cycle pulse when the instruction has finished (the cycle of the write-backs, if any);
        idle from the next cycle.
    rs : Out(ReadChannel(config))
        Vs, words 0 .. W-1 in order, each once.
    awb : Out(AWriteBack())
        A[at] = the new maximum, in the ``done`` cycle, only if some element exceeded A[Am].
    awb2 : Out(AWriteBack())
        A[ad] = Ao + index of the (first) maximum, in the same cycle as ``awb`` and under the same
        condition. The sequencer applies it after ``awb``: with ``ad == at`` this value wins, as in
        the golden machine.

    Timing: ``done`` in cycle :func:`argmax_cycles` (W + 3 + QUEUE_LATENCY + log2(lanes)) when
    nothing stalls.
    """

    def __init__(self, config: AccelConfig, *, test_stall: bool = False):
        self._test_stall = bool(test_stall)

        def members(lanes: int) -> dict:
            d = {
                "cmd": In(stream.Signature(unit_cmd_layout(config))),
                "done": Out(1),
                "rs": Out(ReadChannel(config)),
                "awb": Out(AWriteBack()),
                "awb2": Out(AWriteBack()),
            }
            if self._test_stall:
                d["stall"] = In(1)
            return d

        super().__init__(config, members)
        self._words = words(config)

    def elaborate(self, platform):
        m = Module()
        fx_bits = FX.width
        lanes = self._lanes
        shift = lanes.bit_length() - 1          # lanes divides beat_bytes: a power of two
        assert 1 << shift == lanes
        index = unsigned(isa.VL_MAX.bit_length())

        stall = Signal()
        if self._test_stall:
            m.d.comb += stall.eq(self.stall)

        cmd = self.cmd.payload
        busy = Signal()
        last = Signal.like(self.rs.addr)        # W - 1
        last_count = Signal(range(lanes + 1))   # lanes below VL in word W - 1
        raddr = Signal.like(self.rs.addr)
        more = Signal()
        best = Signal(signed(fx_bits))          # running maximum (Am within FX: module docstring)
        above = Signal()                        # A[Am] > FX max: no element exceeds it
        below = Signal()                        # A[Am] < FX min (until the first update): every element does
        bidx = Signal(index)                    # its element index
        bsum = Signal(A_BITS)                   # Ao + bidx (64-bit wrap)
        found = Signal()                        # some element exceeded A[Am]
        ao = Signal(signed(A_BITS))

        m.d.comb += self.cmd.ready.eq(~busy)
        vl1 = Signal.like(cmd.vl)
        m.d.comb += vl1.eq(cmd.vl - 1)
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                busy.eq(1),
                last.eq(vl1 >> shift),
                last_count.eq((vl1[:shift] if shift else 0) + 1),
                self.rs.reg.eq(cmd.vs),
                self.awb.idx.eq(cmd.at),
                self.awb2.idx.eq(cmd.ad),
                raddr.eq(0),
                more.eq(1),
                # A[Am]'s FX bits, and whether it is above or below FX's range
                best.eq(cmd.s0[:fx_bits].as_signed()),
                above.eq(~cmd.s0[-1] & cmd.s0[fx_bits - 1:].any()),
                below.eq(cmd.s0[-1] & ~cmd.s0[fx_bits - 1:].all()),
                found.eq(0),
                ao.eq(cmd.s1),
            ]

        # -- read: the words through the read queue, tagged with their last flag and address ----------
        tag = data.StructLayout({"last": 1, "word": range(max(2, self._words))})
        m.submodules.rq = rq = ReadQueue(self._config, tag=tag)
        take = Signal()
        ren = Signal()
        m.d.comb += [
            take.eq(rq.valid & ~stall),
            ren.eq(busy & more & rq.space),
            self.rs.en.eq(ren),
            self.rs.addr.eq(raddr),
            rq.issue.eq(ren),
            rq.tag.last.eq(raddr == last),
            rq.tag.word.eq(raddr),
            rq.din0.eq(self.rs.data),
            rq.take.eq(take),
        ]
        plast = rq.tag_out.last
        with m.If(ren):
            m.d.sync += raddr.eq(raddr + 1)
            with m.If(raddr == last):
                m.d.sync += more.eq(0)

        # -- the lane tree: one level per stage (compare, then select, registered) -------------------
        # items: (ok, value, lane index) of the candidates; the tree keeps the first maximum among
        # the valid lanes (ties keep the lower lane)
        count = Mux(plast, last_count, lanes)
        items = [(Signal(1, name=f"ok{j}"), rq.dout0[j], C(j, range(lanes))) for j in range(lanes)]
        for ok, _, j in items:
            m.d.comb += ok.eq(j < count)
        tvalid, tlast, tword = take, plast, rq.tag_out.word
        level = 0
        while len(items) > 1:
            nxt = []
            for k in range(0, len(items), 2):
                o = Signal(1, name=f"ok_l{level}_{k}")
                v = Signal(FX, name=f"v_l{level}_{k}")
                i = Signal(range(lanes), name=f"i_l{level}_{k}")
                if k + 1 == len(items):
                    ao_, av_, ai = items[k]
                    m.d.sync += [o.eq(ao_), v.eq(av_), i.eq(ai)]
                else:
                    (ao_, av_, ai), (bo, bv, bi) = items[k], items[k + 1]
                    d = Signal(signed(fx_bits + 1), name=f"d_l{level}_{k}")
                    m.d.comb += d.eq(av_ - bv)              # av - bv < 0: bv > av, one carry chain
                    pick_b = bo & (~ao_ | d[-1])             # b is later: only a strictly larger value wins
                    m.d.sync += [o.eq(ao_ | bo), v.eq(Mux(pick_b, bv, av_)), i.eq(Mux(pick_b, bi, ai))]
                nxt.append((o, v, i))
            items = nxt
            nv = Signal(name=f"valid_l{level}")
            nl = Signal(name=f"last_l{level}")
            nw = Signal(tword.shape(), name=f"word_l{level}")
            m.d.sync += [nv.eq(tvalid), nl.eq(tlast), nw.eq(tword)]
            tvalid, tlast, tword = nv, nl, nw
            level += 1
        tok, tv, ti = items[0]
        # the word's winner registered once more before the compare: the compare's carry chain and
        # its enables (the running maximum, its index and flags) then start at a flip-flop, not at
        # the read queue's distributed RAM (one lane: no tree level) or a tree level's fan-out
        aok, avalid, alast = Signal(), Signal(), Signal()
        av = Signal(FX)
        aidx = Signal(index)
        m.d.sync += [aok.eq(tok), av.eq(tv), aidx.eq(Cat(ti, tword) if shift else tword),  # word * lanes + lane
                     avalid.eq(tvalid), alast.eq(tlast)]

        # -- the strict compare with the running maximum (FX + 1 bits), kept with its index -----------
        upd = Signal()
        diff = Signal(signed(fx_bits + 1))
        m.d.comb += [diff.eq(best - av),                                       # best - av < 0: one carry chain
                     upd.eq(avalid & aok & ~above & (below | diff[-1]))]
        with m.If(upd):
            m.d.sync += [best.eq(av), bidx.eq(aidx), found.eq(1), below.eq(0)]

        # -- Ao + index the cycle after the last compare, the write-backs from registers the next ------
        fin = Signal()
        wb = Signal()
        m.d.sync += [fin.eq(avalid & alast), wb.eq(fin), bsum.eq(ao + bidx)]
        m.d.comb += [
            self.done.eq(wb),
            self.awb.en.eq(wb & found),
            self.awb.value.eq(best),
            self.awb2.en.eq(wb & found),
            self.awb2.value.eq(bsum),
        ]
        with m.If(wb):
            m.d.sync += busy.eq(0)
        return m
