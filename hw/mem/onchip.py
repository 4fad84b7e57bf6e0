"""On-chip memory behind the compute side's memory port (hw/mem/port.py), for boards whose DRAM
the accelerator cannot use (DESIGN.md section 9): the weight image and the state region in block
RAM, initialised from bytes at configuration.

    mem = OnChipMemory(beat_bytes=16, init=image_bytes + bytes(state_bytes), clear_from=len(image_bytes))
    connect(m, accelerator.mem, mem.port)

Banks of block RAM (hw.core.ram.RegisteredRAM) of beat-wide words (one word per line; byte i of
line L is byte ``L * beat_bytes + i``, little-endian, as the port defines; `bank_lines` lines a
bank), each with one read port whose output is registered in the block RAM and one write port with
byte enables. Commands are served one at a
time in command order (so a read sees every earlier write): a command is accepted when the previous
one has issued its last beat; a read's first beat is offered five cycles after its command was
accepted (the line's address, the banks' outputs, the addressed bank's word and the read FIFO are
registers), then one beat per cycle while `rd.ready` is high; write beats are taken one per cycle,
byte masks honoured, and written from registers beside the banks at the next edge.

`clear` (a level or a pulse, while the port is idle or not) aborts the command in progress and
writes zeros to lines [clear_from / beat_bytes, depth), one line per cycle, with `clearing` high
meanwhile and `cmd.ready` low: the board's host link uses it to start a new sequence with a
zeroed state region. A command that reaches past the last line sets `error` (sticky until reset);
its beats past the end are read as garbage and written nowhere.
"""
from __future__ import annotations

from amaranth.hdl import Array, Module, ResetInserter, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out, flipped

from hw.core.ram import RegisteredRAM
from hw.mem.port import MemPortSignature

__all__ = ["BANK_LINES", "OnChipMemory", "READ_FIFO"]

#: Lines per block RAM bank (the 1024 x 18 shape of an ECP5 DP16KD, in which hw.core.ram uses its
#: output register): each bank's read data is registered in it, and the addressed bank's word is
#: chosen in a stage of its own.
BANK_LINES = 1024

#: Words the read FIFO holds: the three reads in flight plus room to stream one beat per cycle.
READ_FIFO = 8


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
    bank_lines : int, optional
        Lines per block RAM bank (a power of two; default BANK_LINES).
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

    def __init__(self, beat_bytes: int, init: bytes, *, depth: int | None = None, clear_from: int | None = None,
                 bank_lines: int = BANK_LINES):
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
        if not isinstance(bank_lines, int) or bank_lines < 1 or bank_lines & (bank_lines - 1):
            raise ValueError(f"bank_lines must be a power of two, got {bank_lines!r}")
        self._clear_line = clear_from // beat_bytes
        self._bank_lines = bank_lines
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
        lg = max(0, (min(self._bank_lines, depth) - 1).bit_length())
        lines = 1 << lg                 # lines per bank
        n_banks = -(-depth // lines)
        banks = []
        for b in range(n_banks):
            # hw.core.ram.RegisteredRAM: the read's output registered in the block RAM (on ECP5 the
            # DP16KD's output register, whose short clock-to-output replaces the 5.8 ns of the array's
            # at -6: the block RAM into its first fabric register had been among the worst paths).
            # A read and a write of one bank never share a cycle (reads issue only in a read
            # command, writes only in a write command or while clearing, which drops the reads).
            ram = m.submodules[f"bank{b}"] = RegisteredRAM(
                8 * beat, lines, granularity=8, init=self._init[b * lines:(b + 1) * lines], name=f"bank{b}")
            banks.append(ram)

        line = Signal.like(port.cmd.payload.addr)   # next line of the command in progress (may be past the end)
        left = Signal(16)                       # beats still to issue
        write = Signal()
        clr = Signal(range(depth + 1))
        # Reads: issue (every bank reads the line's offset) -> the banks' outputs registered (v2) ->
        # the addressed bank's word registered (v3) -> a FIFO whose output is the rd stream. A read
        # is issued while the words in flight and queued (`pend`) leave room in the FIFO.
        m.submodules.fifo = fifo = ResetInserter(self.clear)(SyncFIFOBuffered(width=8 * beat, depth=READ_FIFO))
        pend = Signal(range(READ_FIFO + 1))
        v1, v2, v3 = Signal(), Signal(), Signal()
        s1, s2 = Signal(range(max(2, n_banks))), Signal(range(max(2, n_banks)))
        bank_q = Array(ram.r_data for ram in banks)
        d3 = Signal(8 * beat, reset_less=True)
        issue = (left != 0) & ~write & ~self.clearing & (pend < READ_FIFO)
        taken = port.rd.valid & port.rd.ready
        for ram in banks:
            m.d.comb += ram.r_addr.eq(line[:lg])
        m.d.sync += [v1.eq(issue), s1.eq(line[lg:]), v2.eq(v1), s2.eq(s1), v3.eq(v2), d3.eq(bank_q[s2]),
                     pend.eq(pend + issue - taken)]
        m.d.comb += [
            fifo.w_en.eq(v3), fifo.w_data.eq(d3),
            port.rd.valid.eq(fifo.r_rdy), port.rd.payload.data.eq(fifo.r_data), fifo.r_en.eq(port.rd.ready),
            port.cmd.ready.eq((left == 0) & ~self.clearing & ~self.clear),
            port.wr.ready.eq((left != 0) & write & ~self.clearing),
        ]
        with m.If(issue):
            m.d.sync += [line.eq(line + 1), left.eq(left - 1)]
        # Writes: each bank's address, data and byte enables are registers beside its block RAM,
        # loaded from the accepted beat (or the clear) and written at the next edge (an ECPIX-5
        # build's worst path ran from `line` through the write choice into a block RAM's address).
        # A read of a line never shares a cycle with its delayed write: the next command is taken
        # the cycle after the last beat at the earliest and issues its first read a cycle later.
        w_addr = Signal(max(1, lg), name="w_addr", reset_less=True)
        w_data = Signal(8 * beat, name="w_data", reset_less=True)
        w_en = [Signal(beat, name=f"bank{b}_w_en") for b in range(n_banks)]
        for b, ram in enumerate(banks):
            m.d.comb += [ram.w_addr.eq(w_addr), ram.w_data.eq(w_data), ram.w_en.eq(w_en[b])]
            m.d.sync += w_en[b].eq(0)
        with m.If(port.wr.valid & port.wr.ready):
            m.d.sync += [w_addr.eq(line[:lg]), w_data.eq(port.wr.payload.data)]
            for b in range(n_banks):
                with m.If((line < depth) & (line[lg:] == b)):
                    m.d.sync += w_en[b].eq(port.wr.payload.mask)
            m.d.sync += [line.eq(line + 1), left.eq(left - 1)]
        with m.If(port.cmd.valid & port.cmd.ready):
            c = port.cmd.payload
            m.d.sync += [line.eq(c.addr), left.eq(c.len), write.eq(c.write)]
            with m.If(c.addr + c.len > depth):
                m.d.sync += self.error.eq(1)
        # clearing: abort (the reads in flight and queued are dropped), then zero [clear_line, depth)
        # through the write ports
        with m.If(self.clear):
            m.d.sync += [left.eq(0), v1.eq(0), v2.eq(0), v3.eq(0), pend.eq(0), clr.eq(self._clear_line),
                         self.clearing.eq(self._clear_line < depth)]
        with m.Elif(self.clearing):
            m.d.sync += [w_addr.eq(clr[:lg]), w_data.eq(0)]
            for b in range(n_banks):
                with m.If(clr[lg:] == b):
                    m.d.sync += w_en[b].eq(-1)
            m.d.sync += clr.eq(clr + 1)
            with m.If(clr == depth - 1):
                m.d.sync += self.clearing.eq(0)
        return m
