"""A unit's reads of the vector register file, issued ahead and handed on as a stream of words.

The register file answers a read READ_LATENCY (5) cycles after it (hw.core.iface: the address
register, the block RAM's read, its output registered twice, the router's registered output), and its
`data` holds that word for that one cycle only. A unit that
cannot always take a word in the cycle it arrives (the divider is busy, the write queue is full, the
gearbox holds enough codes) therefore needs somewhere to keep the words it has asked for.
`ReadQueue` is that place, the same in every unit:

    unit:  issue (the cycle its channels' `en` is high, only while `space`), tag
             |                                            channel data (5 cycles later)
             v                                                   |
    [tag delay x5] --------------------------------------> [DEPTH words, LUT RAM] --> valid/dout/tag_out
                                                                                    <-- take

* `space` is a register: high while fewer than DEPTH reads are in flight or queued. DEPTH = 8
  covers the read latency (5), the queue's own write-to-read cycle (1) and the word being handed
  on, so a unit that takes a word every cycle reads a word every cycle.
* A word is visible (`valid`, `dout`, `tag_out`) from the sixth cycle after its `issue` (QUEUE_LATENCY), and stays
  until a cycle with `take` high (the unit raises `take` only with `valid`).
* `tag` is whatever the unit wants to know about the word when it uses it (its pass, whether it
  is the last); it is taken in the `issue` cycle and comes out beside the word.

Every unit reads words in address order, so the queue is a plain FIFO; the unit's `issue` also
drives its channels' `en` (a channel whose data the unit does not need, such as `rt` of a one
operand op, may keep `en` low: the queue stores what the channel shows, unused).

The words are held in DEPTH-deep memories read asynchronously (ECP5 TRELLIS_DPR16X4 LUT RAM,
instead of DEPTH flip-flops and a DEPTH:1 mux per bit), so the unit's first logic on a word starts at a LUT RAM's
output at a registered pointer, not at the register file's block RAM. Only the bits of each element
the unit uses are stored (`elems`).
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from spec.accel import AccelConfig

from .iface import FX, READ_LATENCY

__all__ = ["DEPTH", "QUEUE_LATENCY", "ReadQueue"]

#: cycles from a read's `issue` to its word at the queue's head (`valid`): the channel's latency
#: and the queue's write
QUEUE_LATENCY = READ_LATENCY + 1
#: reads in flight or queued: the smallest power of two that covers the read latency, the queue's
#: write-to-read cycle and the word being handed on, so that a unit taking a word every cycle reads
#: one every cycle
DEPTH = 1 << (READ_LATENCY + 1).bit_length()


class ReadQueue(wiring.Component):
    """Parameters
    ----------
    config : AccelConfig
        Its `vector_lanes` sets the word.
    elems : tuple of shape-castable
        One per channel read together (one: rs; two: rs and rt at the same address): the part of
        each element the unit uses, its low bits (FX for a whole element; TMATMUL keeps a
        code, NORM/QNT a gamma mantissa).
    tag : shape-castable or None
        What rides with each read.
    depth : int
        Reads in flight or queued at most (a power of two; DEPTH keeps one read per cycle).

    Attributes
    ----------
    issue : In(1)
        A read is issued this cycle (its channels' `en`); only while `space`.
    tag : In(tag)
    din0, din1, ... : In(ArrayLayout(elems[k], lanes))
        The channels' `data` (the low bits of each element); `din` lists them.
    space : Out(1)
        Registered: another read may be issued this cycle.
    valid, dout0, dout1, ..., tag_out : Out
        The oldest word not yet taken (`dout` lists the words) (`valid` a register; `dout`, `tag_out` the LUT RAM's
        asynchronous read at a registered pointer).
    take : In(1)
        The unit hands the word on this cycle (only with `valid`).
    empty : Out(1)
        Registered: no read is in flight or queued (every word issued has been taken).
    """

    def __init__(self, config: AccelConfig, elems=(FX,), tag=None, depth: int = DEPTH):
        elems = tuple(elems)
        if not elems:
            raise ValueError("a ReadQueue reads at least one channel")
        if depth < READ_LATENCY + 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= {READ_LATENCY + 2}, got {depth}")
        self._n, self._depth, self._lanes = len(elems), depth, config.vector_lanes
        self._elems = elems
        self._tag = tag if tag is not None else unsigned(1)
        members = {"issue": In(1), "tag": In(self._tag)}
        members |= {f"din{k}": In(data.ArrayLayout(e, self._lanes)) for k, e in enumerate(elems)}
        members |= {"space": Out(1, init=1), "valid": Out(1)}
        members |= {f"dout{k}": Out(data.ArrayLayout(e, self._lanes)) for k, e in enumerate(elems)}
        members |= {"tag_out": Out(self._tag), "take": In(1), "empty": Out(1, init=1)}
        super().__init__(members)

    @property
    def din(self) -> list:
        return [getattr(self, f"din{k}") for k in range(self._n)]

    @property
    def dout(self) -> list:
        return [getattr(self, f"dout{k}") for k in range(self._n)]

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        # the reads in flight: `issue` and `tag` delayed to the cycle the channel shows the word
        arrive = [self.issue]
        tags = [self.tag]
        for k in range(READ_LATENCY):
            a = Signal(name=f"arrive_d{k + 1}")
            t = Signal(self._tag, name=f"tag_d{k + 1}")
            m.d.sync += [a.eq(arrive[-1]), t.eq(tags[-1])]
            arrive.append(a)
            tags.append(t)

        wptr = Signal(range(depth))         # depth is a power of two: the pointers wrap
        rptr = Signal(range(depth))
        # one small memory per element and one for the tag (the same LUT RAM as one wide memory;
        # narrow words keep the Python simulator's expressions short)
        fields = [(f"d{k}_{j}", e, self.din[k][j], self.dout[k][j])
                  for k, e in enumerate(self._elems) for j in range(self._lanes)]
        fields.append(("tag", self._tag, tags[-1], self.tag_out))
        for name, shape, src, dst in fields:
            mem = m.submodules[name] = memory.Memory(shape=shape, depth=depth, init=[])
            wp = mem.write_port()
            rp = mem.read_port(domain="comb")
            m.d.comb += [
                wp.addr.eq(wptr),
                wp.en.eq(arrive[-1]),
                wp.data.eq(src),
                rp.addr.eq(rptr),
                dst.eq(rp.data),
            ]
        with m.If(arrive[-1]):
            m.d.sync += wptr.eq(wptr + 1)
        popped = Signal()
        m.d.comb += popped.eq(self.take & self.valid)
        with m.If(popped):
            m.d.sync += rptr.eq(rptr + 1)
        # words stored (written, not yet taken) and reads issued and not yet taken; `valid`, `space`
        # and `empty` are registers. The unit's `take` (often late: its own decision) and `issue` only
        # choose among values computed from registers (the `arrive` flag, the counts): one LUT level
        # after them, no carry chain or compare (a -6 build's late paths ended here)
        stored = Signal(range(depth + 1))
        s_up, s_down = Signal.like(stored), Signal.like(stored)     # stored + arrive, - 1
        m.d.comb += [s_up.eq(stored + arrive[-1]), s_down.eq(stored + arrive[-1] - 1)]
        up_nz, down_nz = Signal(), Signal()
        m.d.comb += [up_nz.eq(stored.any() | arrive[-1]), down_nz.eq(s_down.any())]
        m.d.sync += [stored.eq(Mux(popped, s_down, s_up)), self.valid.eq(Mux(popped, down_nz, up_nz))]

        occ = Signal(range(depth + 1))
        inc, dec = Signal(), Signal()
        m.d.comb += [inc.eq(self.issue & ~popped), dec.eq(~self.issue & popped)]
        occ_p1, occ_m1 = Signal.like(occ), Signal.like(occ)
        m.d.comb += [occ_p1.eq(occ + 1), occ_m1.eq(occ - 1)]
        lt_m1, lt, is0, is1 = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [lt_m1.eq(occ < depth - 1), lt.eq(occ < depth), is0.eq(occ == 0), is1.eq(occ == 1)]
        m.d.sync += [
            occ.eq(Mux(inc, occ_p1, Mux(dec, occ_m1, occ))),
            self.space.eq(Mux(inc, lt_m1, Mux(dec, 1, lt))),
            self.empty.eq(Mux(inc, 0, Mux(dec, is1, is0))),
        ]
        return m
