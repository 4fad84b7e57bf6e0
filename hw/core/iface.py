"""How the core's functional units talk to the sequencer and to the register router.

Every functional unit (docs/core.md) is a `lib.wiring` component with

* ``cmd``: In(stream.Signature(unit_cmd_layout(config))) — one instruction, operands already read.
  ``ready`` is high exactly while the unit is idle (it holds one instruction at a time).
* ``done``: Out(1) — a one-cycle pulse when the instruction has finished: every register and memory
  write it makes has been performed (vector writes on or before the ``done`` cycle; memory writes
  accepted by the port). The sequencer then releases the registers it reserved for the unit.
* vector register channels, named by the unit (``rs``, ``rt``: read; ``wd``: write), each a
  :class:`ReadChannel` / :class:`WriteChannel` routed by :class:`hw.core.regfile.RegisterFile`;
* optional scalar write-back ports ``awb`` / ``awb2`` (:class:`AWriteBack`) and ``fwb``
  (:class:`FWriteBack`), applied by the sequencer in the cycle they are asserted;
* optional ``mem``: Out(hw.mem.port.MemPortSignature(beat_bytes)).

The register file stores a vector register as ``words = vlen // vector_lanes`` words of
``vector_lanes`` FX elements: element j lives in word ``j // lanes``, lane ``j % lanes``.

Read channel: the unit drives ``reg`` (constant for the whole instruction), ``addr`` and ``en``;
``data`` is the word at ``addr`` of a cycle with ``en`` high five cycles later (``READ_LATENCY``:
the address register, the block RAM's read, its output registered twice, then the router's
register), and only in that cycle: in other cycles it is undefined. A unit keeps the words it
has asked for in a hw.core.readq.ReadQueue until it uses them.

Write channel: in a cycle with ``en`` high the lanes with ``mask`` set of word ``addr`` of
register ``reg`` take ``data`` (the register file registers the write beside its block RAM, as it
registers a read's address, so a read in the next cycle sees it); the other lanes keep their value
(elements at or past VL are never written: the golden machine keeps them). A read of a word in the
same cycle as a write of that word is not allowed: its result is undefined on the board
(hw.core.regfile lets yosys assume it never happens, `no_rw_check`), although simulation returns
the old value. The units never do it (each reads a word before it writes it, never in one cycle).
The hazard rules of the sequencer guarantee that no two instructions in flight read (or write)
the same register, so a channel never competes for a port; one unit's two read channels may name
the same register, and then read the same addresses in the same cycles.
"""
from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

__all__ = ["A_BITS", "FX", "READ_LATENCY", "AWriteBack", "FWriteBack", "ReadChannel", "WriteChannel",
           "check_core_config", "sf_layout", "unit_cmd_layout", "words"]

FX = signed(N.FX_BITS)
#: A registers are 64-bit signed.
A_BITS = 64
VREG = unsigned((isa.N_VREGS - 1).bit_length())
AREG = unsigned((isa.N_AREGS - 1).bit_length())
FREG = unsigned((isa.N_FREGS - 1).bit_length())
VL = unsigned(isa.VL_MAX.bit_length())
#: cycles from a read channel's `en` to its `data`
READ_LATENCY = 5


def sf_layout() -> data.StructLayout:
    """An F register: SF mantissa (unsigned SF_BITS) and exponent (signed SF_EXP_BITS), as
    hw.core.sfu.sf_layout()."""
    return data.StructLayout({"mantissa": unsigned(N.SF_BITS), "exponent": signed(N.SF_EXP_BITS)})


def check_core_config(config) -> None:
    """The extra constraints the whole core puts on an AccelConfig (exact messages, tested)."""
    if not isinstance(config, AccelConfig):
        raise TypeError(f"config must be an AccelConfig, not {config!r}")
    if config.beat_bytes < 8:
        raise ValueError(f"the core needs beat_bytes >= 8 (one LDV element per beat), got {config.beat_bytes}")
    if config.beat_bytes % config.vector_lanes:
        raise ValueError(f"vector_lanes {config.vector_lanes} must divide beat_bytes {config.beat_bytes}")
    if config.vlen % config.vector_lanes:
        raise ValueError(f"vector_lanes {config.vector_lanes} must divide vlen {config.vlen}")


def words(config: AccelConfig) -> int:
    """Depth of one vector register in words of `vector_lanes` elements."""
    return config.vlen // config.vector_lanes


def unit_cmd_layout(config: AccelConfig) -> data.StructLayout:
    """The instruction a unit receives, operands read by the sequencer at issue.

    ============  ==============================================================================
    op            ISA opcode (spec.isa), 8 bits
    vl            VL at issue (1 .. vlen)
    vd, vs, vt    vector registers: destination, first source, second source (Vt of VVV, Vg of
                  NORM/QNT); unused ones are 0
    ad, at        A registers written by the unit: LDW's Ad; ARGMAX's Ai (ad) and Am (at)
    fd            F register written by the unit (LDF, QNT)
    addr          byte address: A[base] + offset for memory operands (LDE: plus 2 * A[At] * VL),
                  A[Aw] for TMATMUL (64-bit wrap, as computed)
    s0            LDE: unused; NORM/QNT: A[Ae] (the gamma exponent); ARGMAX: A[Am]
    s1            ARGMAX: A[Ao]
    sf            TMATMUL: F[Fs]
    rows          TMATMUL: rows (1 .. 65535)
    ============  ==============================================================================
    """
    return data.StructLayout({
        "op": unsigned(isa.FIELDS["opcode"][1]),
        "vl": VL,
        "vd": VREG, "vs": VREG, "vt": VREG,
        "ad": AREG, "at": AREG,
        "fd": FREG,
        "addr": signed(A_BITS),
        "s0": signed(A_BITS),
        "s1": signed(A_BITS),
        "sf": sf_layout(),
        "rows": unsigned(16),
    })


class ReadChannel(wiring.Signature):
    """A unit's read access to one vector register (unit side: reg/addr/en out, data in)."""

    def __init__(self, config: AccelConfig):
        self._key = (config.vlen, config.vector_lanes)
        super().__init__({
            "reg": Out(VREG),
            "addr": Out(range(max(2, words(config)))),
            "en": Out(1),
            "data": In(data.ArrayLayout(FX, config.vector_lanes)),
        })

    def __eq__(self, other):
        return isinstance(other, ReadChannel) and other._key == self._key


class WriteChannel(wiring.Signature):
    """A unit's write access to one vector register (unit side: everything out)."""

    def __init__(self, config: AccelConfig):
        self._key = (config.vlen, config.vector_lanes)
        super().__init__({
            "reg": Out(VREG),
            "addr": Out(range(max(2, words(config)))),
            "en": Out(1),
            "mask": Out(config.vector_lanes),
            "data": Out(data.ArrayLayout(FX, config.vector_lanes)),
        })

    def __eq__(self, other):
        return isinstance(other, WriteChannel) and other._key == self._key


class AWriteBack(wiring.Signature):
    """Write of one A register, applied by the sequencer in the cycle `en` is high."""

    def __init__(self):
        super().__init__({"en": Out(1), "idx": Out(AREG), "value": Out(signed(A_BITS))})

    def __eq__(self, other):
        return isinstance(other, AWriteBack)


class FWriteBack(wiring.Signature):
    """Write of one F register, applied by the sequencer in the cycle `en` is high."""

    def __init__(self):
        super().__init__({"en": Out(1), "idx": Out(FREG), "value": Out(sf_layout())})

    def __eq__(self, other):
        return isinstance(other, FWriteBack)
