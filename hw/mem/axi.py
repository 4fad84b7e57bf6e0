"""The compute side's memory port (hw.mem.port) onto an AXI4 manager port (Xilinx MIG / UltraScale DDR4).

    adapter = AxiAdapter(beat_bytes=64, max_pending=256, id_width=4)
    adapter.port    In(MemPortSignature(beat_bytes))    the core side (cmd / rd / wr streams)
    adapter.bus     Out(Axi4Signature(...))             to the MIG's AXI4 slave interface
    adapter.error   Out(1)                              sticky: a bad response was seen

Bus signals (manager view; Verilog names `bus__<name>`, clock `clk`, synchronous active-high `rst`):

    AR  araddr (ADDR_BITS = 32, byte address, beat aligned), arlen (8), arsize (3) = log2(beat_bytes),
        arburst (2) = INCR (1), arid (id_width) = 0, arvalid out; arready in
    R   rdata (8 * beat_bytes), rresp (2), rlast, rid (id_width), rvalid in; rready out
    AW  awaddr, awlen, awsize, awburst, awid, awvalid out; awready in   (as AR)
    W   wdata (8 * beat_bytes), wstrb (beat_bytes, the port's mask), wlast, wvalid out; wready in
    B   bresp (2), bid (id_width), bvalid in; bready out (always 1)

Signals this port does not have are constants at the IP: AxLOCK = 0 (normal), AxPROT = 0,
AxQOS = 0, AxCACHE = 0b0010 (normal non-bufferable, so that B means the write is done; see the
ordering rules below). A MIG with a narrower address takes the low bits of araddr / awaddr.

Design: one command register splits each port command into bursts of at most `max_burst` (<= 256)
beats that never cross a 4 KB boundary (the AXI4 rule; 4096 / beat_bytes beats per 4 KB page),
in port command order: a read command becomes AR requests, a write command AW requests. Write
data goes through a separate W side that splits the same (address, length) again, so W beats can
be offered before their AW is accepted (the manager must not wait for AWREADY before WVALID);
`wvalid` is `port.wr.valid`, `wlast` marks the last beat of each burst, and the payload is held by
the port's stream rules. R beats go straight to `port.rd` (`rready` is `port.rd.ready`); every
request uses the one ID 0, so R and B come back in request order.

Limits: read beats requested and not yet returned on R stay <= `max_pending` (an AR waits until
its beats fit); write bursts whose B has not come back stay <= `max_write_bursts`.

Ordering rules (the port promises that a read sees every earlier write and no later one; AXI
orders nothing between its read and write channels):

* read after write: an AR is not issued while any earlier write burst's B response is
  outstanding (B counted per burst), so a read only starts once every earlier write is done;
* write after read (`war_fence`, default on): an AW is not issued while read beats are
  outstanding, so a write cannot overtake an earlier read of the same bytes.

So a stream of reads or a stream of writes runs at one beat per cycle, and each switch between
reading and writing waits for the bus to drain once. With `war_fence=False` an initiator that
never writes bytes it still has reads in flight for may overlap the two.

`error` is set (until reset) by an R or B response with resp = SLVERR or DECERR, an ID other
than 0, or a response with nothing outstanding; the data of an erroring read still goes to
`port.rd`. Zero-length commands (len = 0, which the port does not allow) are taken and dropped.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .port import ADDR_BITS, LEN_BITS, MemPortSignature

__all__ = ["BURST_INCR", "PAGE_BYTES", "AxiAdapter", "Axi4Signature"]

#: AXI4 bursts may not cross a 4 KB boundary
PAGE_BYTES = 4096
BURST_INCR = 1
#: the largest AXI4 INCR burst
AXI_MAX_BURST = 256


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _is_pow2(n) -> bool:
    return isinstance(n, int) and n >= 1 and n & (n - 1) == 0


class Axi4Signature(wiring.Signature):
    """An AXI4 manager port, channel signals flat as in the AXI specification (manager view)."""

    def __init__(self, *, addr_width: int, data_bytes: int, id_width: int):
        if not isinstance(addr_width, int) or addr_width < 1:
            raise ValueError(f"addr_width must be a positive integer, got {addr_width!r}")
        if not _is_pow2(data_bytes) or data_bytes > 128:
            raise ValueError(f"data_bytes must be a power of two up to 128 (AXI4 data width), got {data_bytes!r}")
        if not isinstance(id_width, int) or id_width < 1:
            raise ValueError(f"id_width must be a positive integer, got {id_width!r}")
        self.addr_width, self.data_bytes, self.id_width = addr_width, data_bytes, id_width
        members = {}
        for ch in ("ar", "aw"):
            members.update({
                f"{ch}id": Out(id_width), f"{ch}addr": Out(addr_width), f"{ch}len": Out(8),
                f"{ch}size": Out(3), f"{ch}burst": Out(2), f"{ch}valid": Out(1), f"{ch}ready": In(1),
            })
        members.update({
            "wdata": Out(8 * data_bytes), "wstrb": Out(data_bytes), "wlast": Out(1),
            "wvalid": Out(1), "wready": In(1),
            "bid": In(id_width), "bresp": In(2), "bvalid": In(1), "bready": Out(1),
            "rid": In(id_width), "rdata": In(8 * data_bytes), "rresp": In(2), "rlast": In(1),
            "rvalid": In(1), "rready": Out(1),
        })
        super().__init__(members)

    def __eq__(self, other):
        return (isinstance(other, Axi4Signature) and other.addr_width == self.addr_width
                and other.data_bytes == self.data_bytes and other.id_width == self.id_width)

    def __repr__(self):
        return (f"Axi4Signature(addr_width={self.addr_width}, data_bytes={self.data_bytes}, "
                f"id_width={self.id_width})")


class _Splitter:
    """Burst split of (line address, beats) by registers `addr`, `left`: `count` beats of the next
    burst (<= max_burst, not crossing 4 KB), `last` when it is the command's last burst."""

    def __init__(self, m: Module, line_bits: int, max_burst: int, page_lines: int, name: str):
        self.addr = Signal(line_bits, name=f"{name}_addr")
        self.left = Signal(LEN_BITS, name=f"{name}_left")
        self.count = Signal(range(max_burst + 1), name=f"{name}_count")
        self.last = Signal(name=f"{name}_last")
        room = Signal(range(page_lines + 1), name=f"{name}_room")     # beats to the 4 KB boundary
        cap = Signal(range(max_burst + 1), name=f"{name}_cap")
        m.d.comb += [
            room.eq(page_lines - self.addr[:_log2(page_lines)] if page_lines > 1 else 1),
            cap.eq(Mux(room < max_burst, room, max_burst)),
            self.count.eq(Mux(self.left < cap, self.left, cap)),
            self.last.eq(self.left <= cap),
        ]

    def advance(self, m: Module) -> list:
        return [self.addr.eq(self.addr + self.count), self.left.eq(self.left - self.count)]


class AxiAdapter(wiring.Component):
    """MemPortSignature(beat_bytes) (`port`, In) onto an AXI4 manager port (`bus`, Out); `error` Out(1).

    `max_pending`: read beats requested and not yet returned (>= max_burst); `id_width`: width of
    the ID signals (the adapter uses ID 0); `max_burst`: longest burst (power of two, <= 256);
    `max_write_bursts`: write bursts awaiting B; `war_fence`: hold writes until earlier reads are
    back (see the module docstring); `w_queue`: write commands whose W beats may be queued.
    """

    def __init__(self, beat_bytes: int = 64, *, max_pending: int = 256, id_width: int = 4,
                 max_burst: int = AXI_MAX_BURST, max_write_bursts: int = 16, war_fence: bool = True,
                 w_queue: int = 4):
        if not _is_pow2(beat_bytes) or beat_bytes > 128:
            raise ValueError(f"beat_bytes must be a power of two up to 128 (AXI4 data width), got {beat_bytes!r}")
        if not _is_pow2(max_burst) or max_burst > AXI_MAX_BURST:
            raise ValueError(f"max_burst must be a power of two <= {AXI_MAX_BURST}, got {max_burst!r}")
        if not isinstance(max_pending, int) or max_pending < max_burst:
            raise ValueError(f"max_pending must be an integer >= max_burst ({max_burst}), got {max_pending!r}")
        if not isinstance(max_write_bursts, int) or max_write_bursts < 1:
            raise ValueError(f"max_write_bursts must be a positive integer, got {max_write_bursts!r}")
        if not isinstance(w_queue, int) or w_queue < 2:
            raise ValueError(f"w_queue must be an integer >= 2, got {w_queue!r}")
        self.beat_bytes, self.max_pending, self.id_width = beat_bytes, max_pending, id_width
        self.max_burst, self.max_write_bursts, self.war_fence = max_burst, max_write_bursts, bool(war_fence)
        self.w_queue = w_queue
        self.line_bits = ADDR_BITS - _log2(beat_bytes)
        self.page_lines = PAGE_BYTES // beat_bytes
        super().__init__({
            "port": In(MemPortSignature(beat_bytes)),
            "bus": Out(Axi4Signature(addr_width=ADDR_BITS, data_bytes=beat_bytes, id_width=id_width)),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        port, bus = self.port, self.bus
        lb, size = self.line_bits, _log2(self.beat_bytes)

        # -- requests (AR / AW) in command order --
        s = _Splitter(m, lb, self.max_burst, self.page_lines, "req")
        is_write = Signal()
        active = Signal()
        rd_out = Signal(range(self.max_pending + 1))          # read beats requested, not yet on R
        wb_out = Signal(range(self.max_write_bursts + 1))     # write bursts issued, B not yet back
        for ch in ("ar", "aw"):
            m.d.comb += [
                getattr(bus, f"{ch}addr").eq(Cat(Const(0, size), s.addr)),
                getattr(bus, f"{ch}len").eq(s.count - 1),
                getattr(bus, f"{ch}size").eq(size),
                getattr(bus, f"{ch}burst").eq(BURST_INCR),
                getattr(bus, f"{ch}id").eq(0),
            ]
        m.d.comb += bus.arvalid.eq(active & ~is_write & (wb_out == 0) & (rd_out + s.count <= self.max_pending))
        aw_ok = active & is_write & (wb_out != self.max_write_bursts)
        if self.war_fence:
            aw_ok = aw_ok & (rd_out == 0)
        m.d.comb += bus.awvalid.eq(aw_ok)
        ar_taken, aw_taken = Signal(), Signal()
        m.d.comb += [ar_taken.eq(bus.arvalid & bus.arready), aw_taken.eq(bus.awvalid & bus.awready)]
        burst_end = Signal()
        m.d.comb += burst_end.eq(ar_taken | aw_taken)
        with m.If(burst_end):
            m.d.sync += s.advance(m)
            with m.If(s.last):
                m.d.sync += active.eq(0)

        # -- W: the same split again, from a queue of write commands --
        wq = m.submodules.w_queue = fifo.SyncFIFOBuffered(width=lb + LEN_BITS, depth=self.w_queue)
        w = _Splitter(m, lb, self.max_burst, self.page_lines, "w")
        w_active = Signal()
        beat = Signal(range(self.max_burst))
        m.d.comb += [
            bus.wvalid.eq(w_active & port.wr.valid),
            bus.wdata.eq(port.wr.payload.data),
            bus.wstrb.eq(port.wr.payload.mask),
            bus.wlast.eq(beat == w.count - 1),
            port.wr.ready.eq(w_active & bus.wready),
        ]
        w_taken = Signal()
        m.d.comb += w_taken.eq(bus.wvalid & bus.wready)
        w_done = Signal()
        m.d.comb += w_done.eq(w_taken & bus.wlast & w.last)
        with m.If(w_taken):
            m.d.sync += beat.eq(Mux(bus.wlast, 0, beat + 1))
            with m.If(bus.wlast):
                m.d.sync += w.advance(m)
                with m.If(w.last):
                    m.d.sync += w_active.eq(0)
        m.d.comb += wq.r_en.eq(~w_active | w_done)
        with m.If(wq.r_en & wq.r_rdy):
            m.d.sync += [w.addr.eq(wq.r_data[:lb]), w.left.eq(wq.r_data[lb:]), w_active.eq(1)]

        # -- the next command, in the cycle the last burst of this one is accepted --
        m.d.comb += port.cmd.ready.eq((~active | (burst_end & s.last)) & wq.w_rdy)
        with m.If(port.cmd.valid & port.cmd.ready):
            c = port.cmd.payload
            m.d.sync += [s.addr.eq(c.addr), s.left.eq(c.len), is_write.eq(c.write), active.eq(c.len != 0)]
            m.d.comb += [wq.w_en.eq(c.write & (c.len != 0)), wq.w_data.eq(Cat(c.addr, c.len))]

        # -- responses --
        m.d.comb += [
            port.rd.valid.eq(bus.rvalid),
            port.rd.payload.data.eq(bus.rdata),
            bus.rready.eq(port.rd.ready),
            bus.bready.eq(1),
        ]
        r_taken, b_taken = Signal(), Signal()
        m.d.comb += [r_taken.eq(bus.rvalid & bus.rready), b_taken.eq(bus.bvalid & bus.bready)]
        r_bad = r_taken & (bus.rresp[1] | (bus.rid != 0) | (rd_out == 0))
        b_bad = b_taken & (bus.bresp[1] | (bus.bid != 0) | (wb_out == 0))
        with m.If(r_bad | b_bad):
            m.d.sync += self.error.eq(1)
        m.d.sync += [
            rd_out.eq(rd_out + Mux(ar_taken, s.count, 0) - (r_taken & (rd_out != 0))),
            wb_out.eq(wb_out + aw_taken - (b_taken & (wb_out != 0))),
        ]
        return m
