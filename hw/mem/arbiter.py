"""Joining memory ports (hw.mem.port): an arbiter of N initiators, a weight-stream broadcaster.

`PortArbiter` serves N initiator ports from one port: commands are taken round-robin into a
one-entry command register (so a command offered downstream is never withdrawn), read data is
routed back by an order queue of (initiator, beats), and a write command locks the arbiter to its
initiator until all of its beats have passed (the port sees a command's write beats in order).
Read and write beats pass a register slice (hw.mem.port.RegisterSlice) on the port's side, and
every initiator's commands and read beats one on its side, so no combinational path runs from the
memory through the arbiter into an initiator or back, nor from one initiator's command through the
round-robin choice into its `ready` and back, nor from an initiator's read `ready` through the
order queue's choice into the port's slice: on a board, the arbiter sits between units placed far
apart (the first routed build's critical path ran memory -> arbiter -> load/store unit, later ones'
TMATMUL's command -> the choice -> its beat count and the weight array's `ready` -> the choice ->
the slice's 128 flip-flop enables). A command and a read beat each cost a cycle of latency, no
throughput.

`WeightBroadcast` serves the weight reads of N cores that run the same program on different
tokens (batch N, DESIGN.md section 5): a read command is issued once and its beats are delivered
to every core that asked for the same (address, length). It waits until every core either has a
weight command pending or is `parked` (halted, waiting for a token, at a barrier), so cores in
lockstep share each matrix; cores that diverge are still served correctly, only not together.
Each core gets a small FIFO so one slow core does not need a combinational path to the others.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .port import LEN_BITS, MemPortSignature, RegisterSlice, cmd_layout

__all__ = ["PortArbiter", "WeightBroadcast"]


class _OrderQueue:
    """A small register FIFO of (tag, beats) entries with a head counter, built inline.

    The head entry's tag and length and whether the queue holds anything are registers of their
    own (`head`, `nonempty`; the head's last beat a compare of two registers, the beats so far + 1
    against the length), loaded from the
    entry behind the head or from the push: the beats' routing and the pop then start at flip-flops,
    not at a choice among the entries by the read pointer (an ECPIX-5 build's critical path)."""

    def __init__(self, m: Module, tag_shape, depth: int, name: str):
        self.depth = depth
        self.tags = Array(Signal(tag_shape, name=f"{name}_tag{k}") for k in range(depth))
        self.lens = Array(Signal(LEN_BITS, name=f"{name}_len{k}") for k in range(depth))
        self.wp = Signal(range(depth), name=f"{name}_wp")
        self.rp = Signal(range(depth), name=f"{name}_rp")
        rp1 = Signal(range(depth), name=f"{name}_rp1", init=1 % depth)     # rp + 1, kept with rp
        self.count = Signal(range(depth + 1), name=f"{name}_count")
        self.done_beats = Signal(LEN_BITS, name=f"{name}_beats", init=1)   # the head's beats so far + 1
        self.push = Signal(name=f"{name}_push")
        self.push_tag = Signal(tag_shape, name=f"{name}_push_tag")
        self.push_len = Signal(LEN_BITS, name=f"{name}_push_len")
        self.beat = Signal(name=f"{name}_beat")          # one beat of the head entry transferred
        self.nonempty = Signal(name=f"{name}_nonempty")  # a register
        self.full = Signal(name=f"{name}_full")          # a register
        self.head = Signal(tag_shape, name=f"{name}_head")               # the head's tag, a register
        head_len = Signal(LEN_BITS, name=f"{name}_head_len")            # its beats, a register
        more = Signal(name=f"{name}_more")              # count >= 2 (a register)
        pop = Signal(name=f"{name}_pop")
        m.d.comb += pop.eq(self.beat & (self.done_beats == head_len))     # no subtraction on the way in
        with m.If(self.push):
            m.d.sync += [self.tags[self.wp].eq(self.push_tag), self.lens[self.wp].eq(self.push_len),
                         self.wp.eq(Mux(self.wp == depth - 1, 0, self.wp + 1))]
        with m.If(self.beat):
            m.d.sync += self.done_beats.eq(self.done_beats + 1)
        with m.If(pop):
            m.d.sync += [self.done_beats.eq(1), self.rp.eq(rp1), rp1.eq(Mux(rp1 == depth - 1, 0, rp1 + 1))]
        # the next head: the entry behind the head (when there is one), else the push
        nxt_tag, nxt_len = self.tags[rp1], self.lens[rp1]
        with m.If(pop):
            with m.If(more):
                m.d.sync += [self.head.eq(nxt_tag), head_len.eq(nxt_len)]
            with m.Else():
                m.d.sync += [self.head.eq(self.push_tag), head_len.eq(self.push_len)]
        with m.Elif(~self.nonempty):
            m.d.sync += [self.head.eq(self.push_tag), head_len.eq(self.push_len)]
        count_next = Signal(range(depth + 2), name=f"{name}_count_next")
        m.d.comb += count_next.eq(self.count + self.push - pop)
        m.d.sync += [self.count.eq(count_next), self.nonempty.eq(count_next != 0),
                     self.full.eq(count_next == depth), more.eq(count_next >= 2)]


class _Side:
    """The three streams the arbiter's logic drives: the port's `cmd`, the slices' `rd` and `wr`."""

    def __init__(self, cmd, rd, wr):
        self.cmd, self.rd, self.wr = cmd, rd, wr


class PortArbiter(wiring.Component):
    """N initiators (`i0`..`i{n-1}`, In(MemPortSignature)) onto one port `o`.

    `writing` (Out(1)) is high while a write is inside the arbiter: a write command in an
    initiator's slice or the command register, a write locked to its initiator, or a beat in the
    write slice. Once it is low, every write beat the arbiter took has been taken by `o`, whose
    later reads see it (hw.mem.port's command order); a core's HALT waits for that.
    """

    def __init__(self, beat_bytes: int, n: int, *, depth: int = 8):
        if n < 1:
            raise ValueError(f"need at least one initiator, got {n}")
        self._beat, self._n, self._depth = beat_bytes, n, depth
        members = {f"i{k}": In(MemPortSignature(beat_bytes)) for k in range(n)}
        members["o"] = Out(MemPortSignature(beat_bytes))
        members["writing"] = Out(1)
        super().__init__(members)

    @property
    def inputs(self) -> list:
        return [getattr(self, f"i{k}") for k in range(self._n)]

    def elaborate(self, platform):
        m = Module()
        ins, port, n = self.inputs, self.o, self._n
        q = _OrderQueue(m, range(max(2, n)), self._depth, "order")
        # the beats pass register slices; `o` below is the arbiter's side of them
        m.submodules.rd_slice = rd_slice = RegisterSlice(port.rd.payload.shape())
        m.submodules.wr_slice = wr_slice = RegisterSlice(port.wr.payload.shape())
        wiring.connect(m, wiring.flipped(port.rd), rd_slice.i)
        wiring.connect(m, wr_slice.o, wiring.flipped(port.wr))
        o = _Side(port.cmd, rd_slice.o, wr_slice.i)
        cmds, rds = [], []
        for k in range(n):
            sl = m.submodules[f"cmd_slice{k}"] = RegisterSlice(cmd_layout(self._beat))
            wiring.connect(m, wiring.flipped(ins[k].cmd), sl.i)
            cmds.append(sl.o)
            sl = m.submodules[f"rd_slice{k}"] = RegisterSlice(port.rd.payload.shape())
            wiring.connect(m, sl.o, wiring.flipped(ins[k].rd))
            rds.append(sl.i)

        creg = Signal(cmd_layout(self._beat))
        cfull = Signal()
        wlock = Signal()
        wsrc = Signal(range(max(2, n)))
        wleft = Signal(LEN_BITS)
        last = Signal(range(max(2, n)))             # last granted, for round-robin

        m.d.comb += [o.cmd.valid.eq(cfull), o.cmd.payload.eq(creg)]
        with m.If(o.cmd.valid & o.cmd.ready):
            m.d.sync += cfull.eq(0)

        # round-robin pick among valid commands, starting after `last`
        can_take = ~cfull & ~wlock & ~q.full
        pick = Signal(range(max(2, n)))
        found = Signal()
        # the lowest valid initiator, overridden by the lowest valid one after `last`
        for k in reversed(range(n)):
            with m.If(cmds[k].valid):
                m.d.comb += [pick.eq(k), found.eq(1)]
        for k in reversed(range(n)):
            with m.If(cmds[k].valid & (last < k)):
                m.d.comb += pick.eq(k)
        # the pick is registered (`grant`): the slices' `ready` is an AND of registers, not the
        # round-robin logic (that path into the command slices' enables was a -6 build's late path).
        # A command waits a cycle longer where the arbiter was idle; loads of `creg` are at least two
        # cycles apart (`cfull`), so the grant is never older than the state it serves, and a slice's
        # `valid` falls only when it is taken
        grant = Signal(range(max(2, n)))
        granted = Signal()
        m.d.sync += [grant.eq(pick), granted.eq(found)]
        for k in range(n):
            m.d.comb += cmds[k].ready.eq(can_take & granted & (grant == k))
        with m.If(can_take & granted & Array(c.valid for c in cmds)[grant]):
            sel = Array(c.payload for c in cmds)[grant]
            m.d.sync += [creg.eq(sel), cfull.eq(1), last.eq(grant)]
            with m.If(sel.write):
                m.d.sync += [wlock.eq(1), wsrc.eq(grant), wleft.eq(sel.len)]
            with m.Else():
                m.d.comb += [q.push.eq(1), q.push_tag.eq(grant), q.push_len.eq(sel.len)]

        # write beats from the locked initiator
        for k in range(n):
            m.d.comb += ins[k].wr.ready.eq(wlock & (wsrc == k) & o.wr.ready)
        with m.If(wlock):
            m.d.comb += [o.wr.valid.eq(Array(i.wr.valid for i in ins)[wsrc]),
                         o.wr.payload.eq(Array(i.wr.payload for i in ins)[wsrc])]
            with m.If(o.wr.valid & o.wr.ready):
                m.d.sync += wleft.eq(wleft - 1)
                with m.If(wleft == 1):
                    m.d.sync += wlock.eq(0)

        # read beats to the initiator at the head of the order queue
        for k in range(n):
            m.d.comb += [rds[k].valid.eq(o.rd.valid & q.nonempty & (q.head == k)),
                         rds[k].payload.eq(o.rd.payload)]
        with m.If(q.nonempty):
            m.d.comb += o.rd.ready.eq(Array(r.ready for r in rds)[q.head])
        m.d.comb += q.beat.eq(o.rd.valid & o.rd.ready)

        # a write anywhere inside (every term a register or a slice's register)
        m.d.comb += self.writing.eq(Cat(c.valid & c.payload.write for c in cmds).any() | (cfull & creg.write) |
                                    wlock | wr_slice.o.valid)
        return m


class WeightBroadcast(wiring.Component):
    """N read-only initiators (`i0`..) whose equal commands are served once, onto port `o`.

    `parked` (In(n)): core k cannot issue a weight read until something else happens (halted,
    waiting for a token, at a barrier); it does not hold the others back.
    """

    def __init__(self, beat_bytes: int, n: int, *, depth: int = 4, fifo_depth: int = 4):
        if n < 1:
            raise ValueError(f"need at least one initiator, got {n}")
        self._beat, self._n, self._depth, self._fifo_depth = beat_bytes, n, depth, fifo_depth
        members = {f"i{k}": In(MemPortSignature(beat_bytes)) for k in range(n)}
        members["o"] = Out(MemPortSignature(beat_bytes))
        members["parked"] = In(n)
        super().__init__(members)

    @property
    def inputs(self) -> list:
        return [getattr(self, f"i{k}") for k in range(self._n)]

    def elaborate(self, platform):
        m = Module()
        ins, o, n = self.inputs, self.o, self._n
        q = _OrderQueue(m, n, self._depth, "group")

        creg = Signal(cmd_layout(self._beat))
        cfull = Signal()
        m.d.comb += [o.cmd.valid.eq(cfull), o.cmd.payload.eq(creg), o.wr.valid.eq(0)]
        with m.If(o.cmd.valid & o.cmd.ready):
            m.d.sync += cfull.eq(0)

        valid = Cat(i.cmd.valid for i in ins)
        everyone = (valid | self.parked).all() & valid.any()
        leader = Signal(range(max(2, n)))
        for k in reversed(range(n)):
            with m.If(ins[k].cmd.valid):
                m.d.comb += leader.eq(k)
        lead_cmd = Array(i.cmd.payload for i in ins)[leader]
        group = Signal(n)
        for k in range(n):
            m.d.comb += group[k].eq(ins[k].cmd.valid & (ins[k].cmd.payload.as_value() == lead_cmd.as_value()))
        take = ~cfull & ~q.full & everyone
        for k in range(n):
            m.d.comb += ins[k].cmd.ready.eq(take & group[k])
        with m.If(take):
            m.d.sync += [creg.eq(lead_cmd), cfull.eq(1)]
            m.d.comb += [q.push.eq(1), q.push_tag.eq(group), q.push_len.eq(lead_cmd.len)]

        # beats into the FIFOs of the head group, when all of them have room
        room = Signal(n)
        for k in range(n):
            f = m.submodules[f"fifo{k}"] = fifo.SyncFIFOBuffered(width=8 * self._beat, depth=self._fifo_depth)
            m.d.comb += [
                room[k].eq(f.w_rdy),
                f.w_data.eq(o.rd.payload.data),
                f.w_en.eq(o.rd.valid & o.rd.ready & q.head[k]),
                ins[k].rd.valid.eq(f.r_rdy),
                ins[k].rd.payload.data.eq(f.r_data),
                f.r_en.eq(ins[k].rd.ready),
            ]
        m.d.comb += [o.rd.ready.eq(q.nonempty & ((room | ~q.head).all())), q.beat.eq(o.rd.valid & o.rd.ready)]
        return m
