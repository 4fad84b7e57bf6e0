"""On-chip memory behind the compute side's memory port (hw/mem/port.py), for boards whose DRAM
the accelerator cannot use (DESIGN.md section 9): the weight image and the state region in block
RAM, initialised from bytes at configuration.

    mem = OnChipMemory(beat_bytes=16, init=image_bytes + bytes(state_bytes), clear_from=len(image_bytes))
    connect(m, accelerator.mem, mem.port)

One `amaranth.lib.memory.Memory` of beat-wide words (one word per line; byte i of line L is byte
``L * beat_bytes + i``, little-endian, as the port defines), one synchronous read port and one
write port with byte enables. Commands are served one at a time in command order (so a read sees
every earlier write): a command is accepted when the previous one has issued its last beat; a
read's first beat is offered two cycles after its command was accepted, then one beat per cycle
while `rd.ready` is high; write beats are taken one per cycle, byte masks honoured.

`clear` (a level or a pulse, while the port is idle or not) aborts the command in progress and
writes zeros to lines [clear_from / beat_bytes, depth), one line per cycle, with `clearing` high
meanwhile and `cmd.ready` low: the board's host link uses it to start a new sequence with a
zeroed state region. A command that reaches past the last line sets `error` (sticky until reset);
its beats past the end are read as garbage and written nowhere.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out, flipped

from hw.mem.port import MemPortSignature

__all__ = ["OnChipMemory"]


class OnChipMemory(wiring.Component):
    """A memory-port responder over block RAM (see the module docstring).

    Parameters
    ----------
    beat_bytes : int
        Bytes per beat (the port's line size; a power of two).
    init : bytes
        Initial contents from address 0; padded with zeros to whole lines (and to `depth`).
    depth : int, optional
        Lines of memory (default: the lines `init` needs).
    clear_from : int, optional
        Byte address (a multiple of `beat_bytes`) from which `clear` zeroes the memory (default:
        the end of memory: `clear` only aborts the command in progress).

    Attributes
    ----------
    port : In(MemPortSignature(beat_bytes))
        The memory port, seen from the responder's side.
    clear : In(1)
    clearing : Out(1)
    error : Out(1)
    """

    def __init__(self, beat_bytes: int, init: bytes, *, depth: int | None = None, clear_from: int | None = None):
        sig = MemPortSignature(beat_bytes)          # validates beat_bytes
        init = bytes(init)
        need = -(-len(init) // beat_bytes)
        if depth is None:
            depth = max(1, need)
        if depth < max(1, need):
            raise ValueError(f"depth {depth} lines of {beat_bytes} B is too small for {len(init)} B of init "
                             f"({need} lines)")
        if clear_from is None:
            clear_from = depth * beat_bytes
        if clear_from % beat_bytes or not 0 <= clear_from <= depth * beat_bytes:
            raise ValueError(f"clear_from must be a multiple of {beat_bytes} in [0, {depth * beat_bytes}], "
                             f"got {clear_from}")
        self._beat = beat_bytes
        self._depth = depth
        self._clear_line = clear_from // beat_bytes
        init = init + bytes(need * beat_bytes - len(init))
        self._init = [int.from_bytes(init[i:i + beat_bytes], "little") for i in range(0, len(init), beat_bytes)]
        super().__init__({"port": In(sig), "clear": In(1), "clearing": Out(1), "error": Out(1)})

    @property
    def beat_bytes(self) -> int:
        return self._beat

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        beat, depth = self._beat, self._depth
        port = flipped(self.port)       # initiator's view: cmd/wr in from it, rd out to it
        m.submodules.mem = mem = memory.Memory(shape=8 * beat, depth=depth, init=self._init)
        rp = mem.read_port()
        wp = mem.write_port(granularity=8)

        line = Signal.like(port.cmd.payload.addr)   # next line of the command in progress (may be past the end)
        left = Signal(16)                       # beats still to issue
        write = Signal()
        rd_valid = Signal()                     # rp.data holds a beat for rd
        clr = Signal(range(depth + 1))

        # a read is issued into the read port's output register whenever that register is free or
        # being emptied; when nothing is issued the register is refilled with a don't-care word
        advance = ~rd_valid | port.rd.ready
        issue = advance & (left != 0) & ~write & ~self.clearing
        m.d.comb += [
            rp.addr.eq(line), rp.en.eq(advance),
            port.rd.valid.eq(rd_valid), port.rd.payload.data.eq(rp.data),
            port.cmd.ready.eq((left == 0) & ~self.clearing & ~self.clear),
            port.wr.ready.eq((left != 0) & write & ~self.clearing),
        ]
        with m.If(advance):
            m.d.sync += rd_valid.eq(issue)
        with m.If(issue):
            m.d.sync += [line.eq(line + 1), left.eq(left - 1)]

        with m.If(port.wr.valid & port.wr.ready):
            m.d.comb += [wp.addr.eq(line), wp.data.eq(port.wr.payload.data)]
            with m.If(line < depth):
                m.d.comb += wp.en.eq(port.wr.payload.mask)
            m.d.sync += [line.eq(line + 1), left.eq(left - 1)]

        with m.If(port.cmd.valid & port.cmd.ready):
            c = port.cmd.payload
            m.d.sync += [line.eq(c.addr), left.eq(c.len), write.eq(c.write)]
            with m.If(c.addr + c.len > depth):
                m.d.sync += self.error.eq(1)

        # clearing: abort, then zero [clear_line, depth) through the write port
        with m.If(self.clear):
            m.d.sync += [left.eq(0), rd_valid.eq(0), clr.eq(self._clear_line),
                         self.clearing.eq(self._clear_line < depth)]
        with m.Elif(self.clearing):
            m.d.comb += [wp.addr.eq(clr), wp.data.eq(0), wp.en.eq(-1)]
            m.d.sync += clr.eq(clr + 1)
            with m.If(clr == depth - 1):
                m.d.sync += self.clearing.eq(0)
        return m
