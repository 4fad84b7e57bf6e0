"""The compute side's memory port (hw.mem.port) onto an Avalon-MM host port (Intel EMIF user side).

    adapter = AvalonAdapter(beat_bytes=64, max_burst=64, max_pending=256)
    adapter.port   In(MemPortSignature(beat_bytes))     the core side (cmd / rd / wr streams)
    adapter.bus    Out(AvalonMMSignature(...))          to the EMIF's Avalon-MM agent (one per bank)

Bus signals (host view; Verilog names `bus__<name>`, clock `clk`, synchronous active-high `rst`):

    address        out  line address (word addressing, one word = one beat = beat_bytes bytes):
                        ADDR_BITS - log2(beat_bytes) bits (26 for 64-byte beats). EMIF with
                        "word addressing" takes it as is; a byte-addressed agent needs it shifted
                        left by log2(beat_bytes).
    burstcount     out  words of the burst, 1 .. max_burst; log2(max_burst) + 1 bits (7 for 64)
    read, write    out  one of them per command; never both
    writedata      out  8 * beat_bytes bits; byte i is the byte at address * beat_bytes + i
    byteenable     out  beat_bytes bits (1 = write the byte), the port's `mask`
    waitrequest    in   the agent is not taking the command / write word this cycle
    readdata       in   8 * beat_bytes bits
    readdatavalid  in   one read word; there is no backpressure on it (the adapter buffers it)

Design: one command register splits each port command into bursts of at most `max_burst` words
(with `align_bursts`, bursts also never cross a multiple of `max_burst` words, for agents that
want aligned bursts). A read burst is one cycle of `read` with address/burstcount, held while
`waitrequest`; it is issued only when its words fit in the read buffer: the adapter counts the
words issued and not yet handed to `port.rd` and keeps that count <= `max_pending`, and the read
buffer (a block-RAM FIFO of max_pending + 1 words) therefore never overflows although
`readdatavalid` cannot be stalled. Read words go to `port.rd` in order (Avalon returns read data
in command order). A write burst takes its words straight from `port.wr`: `write` is
`port.wr.valid`, and address/burstcount/writedata/byteenable are held (with `write`) while
`waitrequest`; address and burstcount stay the same for all words of a burst, and `write` may be
low between words of a burst when `port.wr` has no data (Avalon allows a host to pause a burst).
A new port command is taken in the cycle the previous one's last burst is accepted, so a
stream of commands keeps the bus busy.

Throughput: one word per cycle in either direction; at max_pending = 256 a read stream keeps
~256 words in flight, which is what saturates an EMIF bank (reference: ../shared/reference/dram.md).

Ordering (the port's promise that a read sees every earlier write and no later one): the adapter
issues bursts to the bus strictly in port command order and relies on the Avalon-MM agent
serving accepted commands in that order (Avalon-MM semantics), so there is no fence and reads and
writes overlap freely. Anything between the adapter and the memory (an interconnect, the EMIF's
command reordering if enabled) must keep the order of accesses to the same address.

Zero-length commands (len = 0, which the port does not allow) are taken and dropped.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from .port import ADDR_BITS, LEN_BITS, MemPortSignature

__all__ = ["AvalonAdapter", "AvalonMMSignature"]


def _log2(n: int) -> int:
    return n.bit_length() - 1


def _is_pow2(n) -> bool:
    return isinstance(n, int) and n >= 1 and n & (n - 1) == 0


class AvalonMMSignature(wiring.Signature):
    """An Avalon-MM host port with bursts (host view: command and write data out, read data in).

    `addr_width`: width of `address` (words); `data_bytes`: bytes per word; `max_burst`: the
    largest burstcount (a power of two; burstcount is log2(max_burst) + 1 bits wide).
    """

    def __init__(self, *, addr_width: int, data_bytes: int, max_burst: int):
        if not isinstance(addr_width, int) or addr_width < 1:
            raise ValueError(f"addr_width must be a positive integer, got {addr_width!r}")
        if not _is_pow2(data_bytes):
            raise ValueError(f"data_bytes must be a power of two, got {data_bytes!r}")
        if not _is_pow2(max_burst):
            raise ValueError(f"max_burst must be a power of two (Avalon burstcount), got {max_burst!r}")
        self.addr_width, self.data_bytes, self.max_burst = addr_width, data_bytes, max_burst
        super().__init__({
            "address": Out(addr_width),
            "burstcount": Out(_log2(max_burst) + 1),
            "read": Out(1),
            "write": Out(1),
            "writedata": Out(8 * data_bytes),
            "byteenable": Out(data_bytes),
            "waitrequest": In(1),
            "readdata": In(8 * data_bytes),
            "readdatavalid": In(1),
        })

    def __eq__(self, other):
        return (isinstance(other, AvalonMMSignature) and other.addr_width == self.addr_width
                and other.data_bytes == self.data_bytes and other.max_burst == self.max_burst)

    def __repr__(self):
        return (f"AvalonMMSignature(addr_width={self.addr_width}, data_bytes={self.data_bytes}, "
                f"max_burst={self.max_burst})")


class AvalonAdapter(wiring.Component):
    """MemPortSignature(beat_bytes) (`port`, In) onto an Avalon-MM host port (`bus`, Out).

    `max_burst`: longest burst in words (power of two; EMIF: 64). `max_pending`: read words in
    flight (issued and not yet taken by `port.rd`), >= max_burst; it sizes the read buffer.
    `align_bursts`: no burst crosses a multiple of max_burst words.
    """

    def __init__(self, beat_bytes: int = 64, *, max_burst: int = 64, max_pending: int = 256,
                 align_bursts: bool = False):
        if not _is_pow2(beat_bytes):
            raise ValueError(f"beat_bytes must be a power of two, got {beat_bytes!r}")
        if not _is_pow2(max_burst):
            raise ValueError(f"max_burst must be a power of two (Avalon burstcount), got {max_burst!r}")
        if not isinstance(max_pending, int) or max_pending < max_burst:
            raise ValueError(f"max_pending must be an integer >= max_burst ({max_burst}), got {max_pending!r}")
        self.beat_bytes, self.max_burst, self.max_pending = beat_bytes, max_burst, max_pending
        self.align_bursts = bool(align_bursts)
        self.line_bits = ADDR_BITS - _log2(beat_bytes)
        super().__init__({
            "port": In(MemPortSignature(beat_bytes)),
            "bus": Out(AvalonMMSignature(addr_width=self.line_bits, data_bytes=beat_bytes, max_burst=max_burst)),
        })
        #: the read buffer, once elaborated (a testbench may watch it: never written while full)
        self.read_buffer = None

    def elaborate(self, platform):
        m = Module()
        port, bus = self.port, self.bus
        mb = self.max_burst
        rbuf = fifo.SyncFIFOBuffered(width=8 * self.beat_bytes, depth=self.max_pending + 1)
        m.submodules.read_buffer = self.read_buffer = rbuf

        # -- the command being split into bursts --
        addr = Signal(self.line_bits)
        left = Signal(LEN_BITS)
        is_write = Signal()
        active = Signal()
        cap = Signal(range(mb + 1))
        if self.align_bursts and mb > 1:
            m.d.comb += cap.eq(mb - addr[:_log2(mb)])
        else:
            m.d.comb += cap.eq(mb)
        count = Signal(range(mb + 1))               # words of the current burst
        m.d.comb += count.eq(Mux(left < cap, left, cap))
        last_burst = Signal()
        m.d.comb += last_burst.eq(left <= cap)
        m.d.comb += [bus.address.eq(addr), bus.burstcount.eq(count)]

        # -- reads: issue a burst when its words fit in the buffer --
        pending = Signal(range(self.max_pending + 1))     # words issued and not yet taken by port.rd
        m.d.comb += bus.read.eq(active & ~is_write & (pending + count <= self.max_pending))
        read_taken = Signal()
        m.d.comb += read_taken.eq(bus.read & ~bus.waitrequest)
        m.d.comb += [
            rbuf.w_en.eq(bus.readdatavalid),
            rbuf.w_data.eq(bus.readdata),
            port.rd.valid.eq(rbuf.r_rdy),
            port.rd.payload.data.eq(rbuf.r_data),
            rbuf.r_en.eq(port.rd.ready),
        ]
        popped = Signal()
        m.d.comb += popped.eq(port.rd.valid & port.rd.ready)
        m.d.sync += pending.eq(pending + Mux(read_taken, count, 0) - popped)

        # -- writes: words straight from port.wr, held by the stream rules while waitrequest --
        in_write = Signal()
        m.d.comb += in_write.eq(active & is_write)
        word = Signal(range(mb))                   # words of the current write burst already taken
        m.d.comb += [
            bus.write.eq(in_write & port.wr.valid),
            bus.writedata.eq(port.wr.payload.data),
            bus.byteenable.eq(port.wr.payload.mask),
            port.wr.ready.eq(in_write & ~bus.waitrequest),
        ]
        write_taken = Signal()
        m.d.comb += write_taken.eq(bus.write & ~bus.waitrequest)
        burst_end = Signal()
        m.d.comb += burst_end.eq(read_taken | (write_taken & (word == count - 1)))
        with m.If(write_taken):
            m.d.sync += word.eq(Mux(word == count - 1, 0, word + 1))

        with m.If(burst_end):
            m.d.sync += [addr.eq(addr + count), left.eq(left - count)]
            with m.If(last_burst):
                m.d.sync += active.eq(0)
        # -- the next command, in the cycle the last burst of this one is accepted --
        m.d.comb += port.cmd.ready.eq(~active | (burst_end & last_burst))
        with m.If(port.cmd.valid & port.cmd.ready):
            c = port.cmd.payload
            m.d.sync += [addr.eq(c.addr), left.eq(c.len), is_write.eq(c.write), active.eq(c.len != 0)]
        return m
