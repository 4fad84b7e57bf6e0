"""One bank machine of the DDR4 controller: the bank's in-order request queue, its open row and its
per-bank timing counters (tRCD, tRP, tRAS, tRC, tRTP, tWR, and tRFC after a refresh).

Open-page policy: the row stays open after its accesses; the machine asks for a PRE only when the
request at the head of its queue is for another row (a refresh precharges through the scheduler's
PREA). Requests leave the queue strictly in order, one per CAS, so a row hit is served in order
within the bank and a read after a write to the same line sees it.

The machine tells the scheduler what its head needs (`want_cas` / `want_act` / `want_pre`) and
when the bank's own counters allow it (`act` / `pre` / `cas`: `Countdown`s, see `timers`). The
scheduler adds the bank-group and rank constraints, picks at most one bank per kind and phase per
cycle and calls `issue_*` for the chosen one.

A bank machine is a builder that adds its logic to the controller's module (not a submodule of its
own): the queue is a register array whose head is entry 0 (a pop shifts), so the head and the
`want_*` flags are plain register expressions. Amaranth's Python simulator re-runs a module's whole
combinational process for every delta cycle in which one of its inputs changes, so this flat,
register-headed structure keeps the controller's simulation several times faster than a hierarchy
of FIFOs and bank components.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data

from spec.dram import Channel

from .timers import Countdown

__all__ = ["BankMachine", "counter_width", "entry_layout"]


def entry_layout(ch: Channel, slot_bits: int) -> data.StructLayout:
    """A queued request: the row and burst column, the direction and its read or write slot."""
    fb = ch.field_bits
    return data.StructLayout({"row": fb["row"], "col": fb["col"], "write": 1, "slot": slot_bits})


def counter_width(ch: Channel) -> int:
    """Bits of a `Countdown` long enough for every timing of `ch` plus a phase."""
    t = ch.timing
    longest = max(t.tRFC, t.tRC, t.CWL + t.tBURST + t.tWR, t.tFAW, t.CWL + t.tBURST + t.tWTR_L,
                  t.CL + t.tBURST + 2, t.tRAS)
    return (longest + 4).bit_length()


class BankMachine:
    """Bank `index` (module docstring); `depth` queue entries."""

    def __init__(self, ch: Channel, index: int, depth: int, slot_bits: int):
        self.ch, self.index, self.depth = ch, index, depth
        self.layout = entry_layout(ch, slot_bits)
        self.entries = [Signal(self.layout, name=f"b{index}_q{i}") for i in range(depth)]
        self.count = Signal(range(depth + 1), name=f"b{index}_count")
        self.open = Signal(name=f"b{index}_open")
        self.open_row = Signal(ch.field_bits["row"], name=f"b{index}_open_row")
        w = counter_width(ch)
        self.act = Countdown(w, f"b{index}_act")      # ACT allowed: tRP, tRC, tRFC
        self.pre = Countdown(w, f"b{index}_pre")      # PRE allowed: tRAS, tRTP, tWR
        self.cas = Countdown(w, f"b{index}_cas")      # RD/WR allowed: tRCD
        self._push = (0, 0)
        self._pop = 0
        self._act = 0
        self._pres = []

    # ---- what the head needs (register expressions) ----
    @property
    def head(self):
        return self.entries[0]

    @property
    def head_valid(self):
        return self.count != 0

    @property
    def push_ready(self):
        return self.count != self.depth

    @property
    def hit(self):
        return self.open_row == self.head.row

    @property
    def want_cas(self):
        return self.head_valid & self.open & self.hit

    @property
    def want_act(self):
        return self.head_valid & ~self.open

    @property
    def want_pre(self):
        return self.head_valid & self.open & ~self.hit

    # ---- the scheduler's decisions ----
    def push(self, cond, entry) -> None:
        """Append `entry` when `cond` (the caller checks `push_ready`)."""
        self._push = (cond, entry)

    def issue_cas(self, cond, phase) -> None:
        """The head's RD/WR goes at `phase` when `cond`; it leaves the queue."""
        t = self.ch.timing
        self._pop = cond
        self.pre.start(cond & ~self.head.write, phase, t.tRTP)
        self.pre.start(cond & self.head.write, phase, t.CWL + t.tBURST + t.tWR)

    def issue_act(self, cond, phase) -> None:
        t = self.ch.timing
        self.act.start(cond, phase, t.tRC)
        self.pre.start(cond, phase, t.tRAS)
        self.cas.start(cond, phase, t.tRCD)
        self._act = cond

    def issue_pre(self, cond, phase) -> None:
        """A PRE of this bank, or a PREA (for every bank)."""
        self.act.start(cond, phase, self.ch.timing.tRP)
        self._pres.append(cond)

    def issue_ref(self, cond, phase) -> None:
        self.act.start(cond, phase, self.ch.timing.tRFC)

    def elaborate(self, m: Module) -> None:
        pop = self._pop
        push, entry = self._push
        q = self.entries
        with m.If(pop):
            m.d.sync += [q[i].eq(q[i + 1]) for i in range(self.depth - 1)]
            with m.If(~push):
                m.d.sync += self.count.eq(self.count - 1)
        with m.Elif(push):
            m.d.sync += self.count.eq(self.count + 1)
        with m.If(push):
            # the new entry goes behind the last one (one place lower when the head leaves)
            with m.Switch(Mux(pop, self.count, self.count + 1)):
                for i in range(self.depth):
                    with m.Case(i + 1):
                        m.d.sync += q[i].eq(entry)
        with m.If(self._act):
            m.d.sync += [self.open.eq(1), self.open_row.eq(self.head.row)]
        for c in self._pres:
            with m.If(c):
                m.d.sync += self.open.eq(0)
        for c in (self.act, self.pre, self.cas):
            c.elaborate(m)
