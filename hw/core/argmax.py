"""The core's ARGMAX functional unit (ISA "unit" group) behind the register channels of hw.core.iface.

Specification: ``golden.machine``'s ``_argmax`` handler and the ISA semantics

    for j < VL: if Vs[j] > Am: Am = Vs[j]; Ai = Ao + j      (strict: the first maximum is kept)

with Am = A[Am] (``cmd.s0``, 64-bit signed) and Ao = A[Ao] (``cmd.s1``) at issue; Ai = Ao + j wraps
to 64 bits. When no element exceeds Am neither register is written. The golden machine writes Am
and then Ai, so with ``ad == at`` the register ends up holding Ai; this unit raises both write-backs
in the same cycle, and the sequencer (hw.core.core) applies ``awb2`` after ``awb``: ``awb2`` wins on
the same index.

Datapath: words are read in order, one per cycle (the read port is the one-word stage in front of
the datapath, as in hw.core.vecunit); each word is reduced by a comparison tree to its first
maximum among the lanes below VL (ties keep the lower lane), registered, then compared strictly
with the running maximum (ties keep the earlier word). The write-backs and ``done`` come in the
cycle the last word's result is compared.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from spec import isa
from spec.accel import AccelConfig

from .common import CoreUnit
from .iface import A_BITS, FX, AWriteBack, ReadChannel, unit_cmd_layout, words

__all__ = ["ArgmaxUnit", "argmax_cycles"]


def argmax_cycles(n_words: int) -> int:
    """The ``done`` cycle of an ARGMAX of `n_words` words, counted from the cycle ``cmd`` is
    accepted (cycle 0), with no stalls: reads in cycles 1 .. W, the tree register, the compare with
    the running maximum in cycle W + 2. The next instruction can be accepted one cycle later."""
    return n_words + 2


class ArgmaxUnit(CoreUnit):
    """Functional unit for ARGMAX (hw.core.iface unit contract).

    Parameters
    ----------
    config : AccelConfig
        ``vector_lanes`` and ``vlen``; checked with ``hw.core.iface.check_core_config`` and the FX
        width check of the hw.core units.
    test_stall : bool
        Adds the member ``stall: In(1)`` (testbenches only): while it is high the datapath does not
        take the word in the read port, which must then be held (``en`` low).

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

    Timing: ``done`` in cycle :func:`argmax_cycles` (W + 2) when nothing stalls.
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
        pend = Signal()                         # the read port holds a word not yet taken
        plast = Signal()
        pbase = Signal(index)                   # element index of its lane 0
        best = Signal(signed(A_BITS))           # running maximum (Am)
        bidx = Signal(index)                    # its element index
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
                best.eq(cmd.s0),
                found.eq(0),
                ao.eq(cmd.s1),
            ]

        # -- read ------------------------------------------------------------------------------------
        take = Signal()
        ren = Signal()
        m.d.comb += [
            take.eq(pend & ~stall),
            ren.eq(busy & more & (~pend | take)),
            self.rs.en.eq(ren),
            self.rs.addr.eq(raddr),
        ]
        with m.If(ren):
            m.d.sync += [raddr.eq(raddr + 1), plast.eq(raddr == last), pbase.eq(raddr << shift), pend.eq(1)]
            with m.If(raddr == last):
                m.d.sync += more.eq(0)
        with m.Elif(take):
            m.d.sync += pend.eq(0)

        # -- stage 1: the word's first maximum among its valid lanes ----------------------------------
        count = Mux(plast, last_count, lanes)
        items = [(Signal(1, name=f"ok{j}"), self.rs.data[j], j) for j in range(lanes)]
        for ok, _, j in items:
            m.d.comb += ok.eq(j < count)
        level = 0
        while len(items) > 1:
            nxt = []
            for k in range(0, len(items), 2):
                if k + 1 == len(items):
                    nxt.append(items[k])
                    continue
                (ao_, av, ai), (bo, bv, bi) = items[k], items[k + 1]
                pick_b = bo & (~ao_ | (bv > av))        # b is later: only a strictly larger value wins
                o = Signal(1, name=f"ok_l{level}_{k}")
                v = Signal(FX, name=f"v_l{level}_{k}")
                i = Signal(range(lanes), name=f"i_l{level}_{k}")
                m.d.comb += [o.eq(ao_ | bo), v.eq(Mux(pick_b, bv, av)), i.eq(Mux(pick_b, bi, ai))]
                nxt.append((o, v, i))
            items = nxt
            level += 1
        w_ok, w_v, w_i = items[0]

        avalid = Signal()
        aok = Signal()
        av = Signal(FX)
        aidx = Signal(index)
        alast = Signal()
        m.d.sync += avalid.eq(take)
        with m.If(take):
            m.d.sync += [aok.eq(w_ok), av.eq(w_v), aidx.eq(pbase + w_i), alast.eq(plast)]

        # -- stage 2: strict compare with the running maximum -----------------------------------------
        upd = Signal()
        m.d.comb += upd.eq(avalid & aok & (av > best))
        with m.If(upd):
            m.d.sync += [best.eq(av), bidx.eq(aidx), found.eq(1)]

        fin = avalid & alast
        win = found | upd
        m.d.comb += [
            self.done.eq(fin),
            self.awb.en.eq(fin & win),
            self.awb.value.eq(Mux(upd, av, best)),
            self.awb2.en.eq(fin & win),
            self.awb2.value.eq((ao + Mux(upd, aidx, bidx))[:A_BITS]),
        ]
        with m.If(fin):
            m.d.sync += busy.eq(0)
        return m
