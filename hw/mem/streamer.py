"""The weight streamer: one memory port (hw.mem.port) onto 1..4 DDR4 channels' native line ports.

`Streamer(ch, channels, interleave=, max_inflight=, beat_lines=)` is the target of a
`MemPortSignature(64 * beat_lines)` port (member `port`) and the initiator of one
`NativePortSignature(ch)` per channel (members `c0` .. `c{channels-1}`, also listed by
`channel_ports`; connect `c{i}` to DDR4 controller i). `inflight` reports the read lines asked of
the channels and not yet delivered on `port.rd`.

Address map. Port beat b holds the global lines `b * beat_lines + j` (j < beat_lines; line j of the
beat in bytes 64j .. 64j+63, little-endian). Global line L lives in channel
`(L // interleave) % channels` at channel line `(L // (interleave * channels)) * interleave +
L % interleave` (`channel_of` is the Python reference). Channel lines are truncated to
`ch.line_bits`: a port larger than the channels together aliases.

Datapath, in three stages:

1. Command register: `port.cmd` is taken into a one-entry register, so a new command waits there
   while the previous one is being issued (no bubble between commands). From this register the
   burst's first line is split once into (q, c, r) with L = (q * channels + c) * interleave + r
   (the only division, by the constant `channels`; a shift for 1, 2, 4).
2. Issuer: walks the burst with running (q, c, r) counters, one beat at a time. For every channel it
   offers the lowest not yet accepted line of the current beat that maps to it, so the lines of one
   beat go out in the same cycle when they map to different channels (channels == beat_lines with
   interleave 1: one line per channel per cycle) and in line order when they share a channel. A
   read beat is started only while fewer than `max_inflight // beat_lines` read beats are
   outstanding (issued, not yet delivered on `port.rd`); when its last line is accepted its
   per-line channel numbers are pushed into the order FIFO. A write beat's lines are offered only
   while `port.wr` holds its beat (data and mask split per line: line j takes bits 512j.. and mask
   bits 64j..); the beat is taken from `port.wr` in the cycle its last line is accepted. A read
   request carries zero data and mask (so its payload holds while it waits, as lib.stream asks).
3. Merge: the order FIFO's head says which channel each line of the oldest outstanding read beat
   comes from. Each channel's `rdata` is taken when it holds the next awaited line of that channel;
   lines that arrive before the rest of their beat wait in a beat register. A complete beat goes
   into a two-entry output buffer (a skid register) that drives `port.rd`, so `port.rd.ready` has
   no combinational path to a channel.

Ordering. Every global line always maps to the same channel and the native port applies one
channel's requests in order (a write is visible to every request accepted after it), and the
issuer sends lines in port command order; so writes land in command order and a read issued after
a write sees it, without any ordering logic here. Read data returns per channel in request order,
and per channel the request order is the port order, so the order FIFO suffices to merge it back.

Contract notes: `port.cmd` with `len == 0` is accepted and ignored. The initiator must keep taking
`port.rd` independently of `port.wr` (a full read window stalls the issuer, also before a later
write command). `port.wr.ready` depends combinationally on the channels' `req.ready`, and
`c{i}.req.valid` on `port.wr.valid` (write beats pass straight through, unregistered).
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from spec.dram import Channel, check_channels

from .dfi import NativePortSignature
from .port import ADDR_BITS, LEN_BITS, MemPortSignature

__all__ = ["Streamer", "channel_of"]


def channel_of(line: int, channels: int, interleave: int) -> tuple[int, int]:
    """Reference address map: global line -> (channel, channel-local line)."""
    return (line // interleave) % channels, (line // (interleave * channels)) * interleave + line % interleave


def _pow2(x) -> bool:
    return isinstance(x, int) and x >= 1 and not x & (x - 1)


class Streamer(wiring.Component):
    """Memory port `port` -> native line ports `c0` .. `c{channels-1}` (module docstring)."""

    def __init__(self, ch: Channel, channels: int = 1, *, interleave: int = 1, max_inflight: int = 256,
                 beat_lines: int = 1):
        if not isinstance(ch, Channel):
            raise ValueError(f"ch must be a spec.dram.Channel, got {ch!r}")
        check_channels(channels)
        if not _pow2(interleave):
            raise ValueError(f"interleave must be a power of two (lines per channel in a row), got {interleave!r}")
        if beat_lines not in (1, 2, 4):
            raise ValueError(f"beat_lines must be 1, 2 or 4 (port beat of 64, 128 or 256 bytes), got {beat_lines!r}")
        if not isinstance(max_inflight, int) or max_inflight < beat_lines or max_inflight % beat_lines:
            raise ValueError(f"max_inflight must be a positive multiple of beat_lines ({beat_lines}), "
                             f"got {max_inflight!r}")
        self._ch, self._n, self._il, self._bl, self._max = ch, channels, interleave, beat_lines, max_inflight
        members = {"port": In(MemPortSignature(ch.line_bytes * beat_lines))}
        for k in range(channels):
            members[f"c{k}"] = Out(NativePortSignature(ch))
        members["inflight"] = Out(range(max_inflight + 1))
        super().__init__(members)

    @property
    def channel_ports(self) -> list:
        """The native ports `c0` .. `c{channels-1}`, in channel order."""
        return [getattr(self, f"c{k}") for k in range(self._n)]

    @property
    def channels(self) -> int:
        return self._n

    @property
    def interleave(self) -> int:
        return self._il

    @property
    def beat_lines(self) -> int:
        return self._bl

    @property
    def max_inflight(self) -> int:
        return self._max

    def channel_of(self, line: int) -> tuple[int, int]:
        """This streamer's address map: global line -> (channel, channel-local line)."""
        return channel_of(line, self._n, self._il)

    def elaborate(self, platform):
        m = Module()
        ch, n, il, bl = self._ch, self._n, self._il, self._bl
        log_il, log_bl = il.bit_length() - 1, bl.bit_length() - 1
        lbits = ch.line_bytes * 8
        port, chans = self.port, self.channel_ports
        depth = self._max // bl                       # read beats outstanding at most
        gbits = ADDR_BITS - (ch.line_bytes.bit_length() - 1)   # global line address width
        qbits = max(1, gbits - log_il)
        cbits = max(1, (n - 1).bit_length())

        # ---- 1. command register ----
        s1_valid = Signal()
        s1_addr = Signal(len(port.cmd.payload.addr))
        s1_len = Signal(LEN_BITS)
        s1_write = Signal()
        load = Signal()
        m.d.comb += port.cmd.ready.eq(~s1_valid | load)
        with m.If(port.cmd.valid & port.cmd.ready):
            m.d.sync += [s1_valid.eq(1), s1_addr.eq(port.cmd.payload.addr), s1_len.eq(port.cmd.payload.len),
                         s1_write.eq(port.cmd.payload.write)]
        with m.Elif(load):
            m.d.sync += s1_valid.eq(0)

        # ---- 2. issuer ----
        active = Signal()
        write = Signal()
        remaining = Signal(LEN_BITS)
        q = Signal(qbits)
        c = Signal(range(n))
        r = Signal(max(1, log_il))
        issued = Signal(bl)
        ob = Signal(range(depth + 1))                 # read beats issued, not yet delivered

        def add(k: int):
            """(q, c, r) of the line k after the current beat's first line (k a constant)."""
            t = r + k if log_il else Const(k, 4)
            rr = t[:log_il] if log_il else Const(0, 1)
            u = c + (t >> log_il)
            if n == 1:
                return q + u, Const(0, 1), rr
            return q + u // n, u % n, rr

        lines = []
        for j in range(bl):
            qj, cj, rj = add(j)
            local = Signal(ch.line_bits, name=f"line{j}_addr")
            chan = Signal(cbits, name=f"line{j}_chan")
            m.d.comb += [local.eq((qj << log_il) | rj if log_il else qj), chan.eq(cj)]
            lines.append((chan, local))

        go = Signal()
        m.d.comb += go.eq(active & Mux(write, port.wr.valid, ob < depth))
        accepted = Signal(bl)
        acc_terms = [[] for _ in range(bl)]
        for k, cp in enumerate(chans):
            earlier = Const(0)
            hits = []
            for j, (chan, _local) in enumerate(lines):
                hit = Signal(name=f"c{k}_line{j}")
                m.d.comb += hit.eq((chan == k) & ~issued[j] & ~earlier)
                earlier = earlier | hit
                hits.append(hit)
            m.d.comb += [cp.req.valid.eq(go & earlier), cp.req.payload.write.eq(write)]
            addr, dat, msk = lines[0][1], port.wr.payload.data[:lbits], port.wr.payload.mask[:ch.line_bytes]
            for j in range(1, bl):
                addr = Mux(hits[j], lines[j][1], addr)
                dat = Mux(hits[j], port.wr.payload.data[j * lbits:(j + 1) * lbits], dat)
                msk = Mux(hits[j], port.wr.payload.mask[j * ch.line_bytes:(j + 1) * ch.line_bytes], msk)
            # a read's data and mask are zero, so the offered payload holds while req waits for ready
            m.d.comb += [cp.req.payload.addr.eq(addr), cp.req.payload.data.eq(Mux(write, dat, 0)),
                         cp.req.payload.mask.eq(Mux(write, msk, 0))]
            for j in range(bl):
                acc_terms[j].append(hits[j] & cp.req.valid & cp.req.ready)
        for j in range(bl):
            m.d.comb += accepted[j].eq(Cat(*acc_terms[j]).any())

        beat_done = Signal()
        last = Signal()
        m.d.comb += [beat_done.eq(go & ((issued | accepted) == (1 << bl) - 1)), last.eq(remaining == 1),
                     load.eq(s1_valid & (~active | (beat_done & last))),
                     port.wr.ready.eq(beat_done & write)]
        with m.If(beat_done):
            nq, nc, nr = add(bl)
            m.d.sync += [issued.eq(0), q.eq(nq), c.eq(nc), r.eq(nr), remaining.eq(remaining - 1)]
            with m.If(last):
                m.d.sync += active.eq(0)
        with m.Else():
            m.d.sync += issued.eq(issued | accepted)
        with m.If(load):
            g0 = Signal(gbits)
            m.d.comb += g0.eq(s1_addr << log_bl)
            x = g0 >> log_il
            m.d.sync += [active.eq(s1_len != 0), write.eq(s1_write), remaining.eq(s1_len), issued.eq(0),
                         q.eq(x // n if n > 1 else x), c.eq(x % n if n > 1 else 0),
                         r.eq(g0[:log_il] if log_il else 0)]

        order = fifo.SyncFIFOBuffered(width=cbits * bl, depth=max(2, depth))
        m.submodules.order = order
        m.d.comb += [order.w_en.eq(beat_done & ~write), order.w_data.eq(Cat(*(chan for chan, _ in lines)))]

        # ---- 3. merge ----
        skid_ready = Signal()               # the output buffer can take a beat (registered)
        got = Signal(bl)
        bufs = [Signal(lbits, name=f"buf{j}") for j in range(bl)]
        take = Signal(bl)
        heads = [order.r_data[j * cbits:(j + 1) * cbits] for j in range(bl)]
        take_terms = [[] for _ in range(bl)]
        data_in = [Signal(lbits, name=f"merge{j}") for j in range(bl)]
        for j in range(bl):
            m.d.comb += data_in[j].eq(bufs[j])
        for k, cp in enumerate(chans):
            earlier = Const(0)
            for j in range(bl):
                hit = Signal(name=f"m{k}_line{j}")
                m.d.comb += hit.eq((heads[j] == k) & ~got[j] & ~earlier)
                earlier = earlier | hit
                take_terms[j].append(hit & cp.rdata.valid)
                with m.If(hit & ~got[j]):
                    m.d.comb += data_in[j].eq(cp.rdata.payload.data)
            m.d.comb += cp.rdata.ready.eq(order.r_rdy & skid_ready & earlier)
        for j in range(bl):
            m.d.comb += take[j].eq(order.r_rdy & skid_ready & Cat(*take_terms[j]).any())
        complete = Signal()
        m.d.comb += [complete.eq(order.r_rdy & skid_ready & ((got | take) == (1 << bl) - 1)),
                     order.r_en.eq(complete)]
        with m.If(complete):
            m.d.sync += got.eq(0)
        with m.Else():
            m.d.sync += got.eq(got | take)
        for j in range(bl):
            with m.If(take[j]):
                m.d.sync += bufs[j].eq(data_in[j])

        # output: a main register driving port.rd and a skid register
        beat = Cat(*data_in)
        out_valid = Signal()
        sk_valid = Signal()
        sk_data = Signal(len(beat))
        m.d.comb += [port.rd.valid.eq(out_valid), skid_ready.eq(~sk_valid)]
        with m.If(port.rd.ready | ~out_valid):
            with m.If(sk_valid):
                m.d.sync += [port.rd.payload.data.eq(sk_data), out_valid.eq(1), sk_valid.eq(0)]
            with m.Elif(complete):
                m.d.sync += [port.rd.payload.data.eq(beat), out_valid.eq(1)]
            with m.Else():
                m.d.sync += out_valid.eq(0)
        with m.Elif(complete):
            m.d.sync += [sk_data.eq(beat), sk_valid.eq(1)]

        # ---- counters ----
        delivered = Signal()
        m.d.comb += delivered.eq(port.rd.valid & port.rd.ready)
        m.d.sync += ob.eq(ob + (beat_done & ~write) - delivered)
        nread = Signal(range(bl + 1))
        m.d.comb += nread.eq(sum((accepted[j] & ~write for j in range(bl)), Const(0, range(bl + 1))))
        m.d.sync += self.inflight.eq(self.inflight + nread - Mux(delivered, bl, 0))
        return m
