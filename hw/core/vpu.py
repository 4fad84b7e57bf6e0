"""Elementwise vector unit: the row-wise functional unit of the core (ISA vector group).

Implements the paper's row-wise ops ("Scalable MatMul-free Language Modeling", Zhu et al. 2024,
section 5: ADD, SUB, MUL, EXP, SIG) and ours (GMUL, ONEM, MOVV, SILU) exactly as `golden/ops.py`
defines them (docs/numerics.md, "Vector operations"). Every width, fraction and the sigmoid table
come from `spec.numerics`; the opcodes come from `spec.isa`. DIV, the one iterative op, is
`VectorDivider` (one quotient bit per cycle).

Both are pipelined for a 100 MHz ECP5 build: one carry chain, one DSP product or a few LUT levels
between registers, block RAM outputs registered before use. `VectorUnit` runs every op through
one linear pipeline (below, `LATENCY` stages) with ONE wide multiplier per lane, shared by the ops
(one op per element): MUL, GMUL and SILU multiply by b or sigmoid(a), EXP by log2(e), SIG by one;
the ops that need no product (ADD SUB ONEM MOVV) leave early, from stage SHORT_LATENCY. So a lane
has 9 DSPs for its FX x FX product
(`hw.core.arith.pipelined_product`) plus one each for the sigmoid's and 2**f's interpolation.
"""
from __future__ import annotations

import types

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

from .arith import pipelined_product, product_stages
from .common import LaneComponent
from .ram import RegisteredROM

__all__ = ["LATENCY", "PIPELINED_MNEMONICS", "SHORT_LATENCY", "SHORT_MNEMONICS", "VectorDivider", "VectorOp",
           "VectorUnit", "divide_layout", "latency", "request_layout", "result_layout"]

#: The ISA vector operations this unit runs, one per cycle, fully pipelined.
PIPELINED_MNEMONICS = ("ADD", "SUB", "MUL", "EXP", "GMUL", "ONEM", "MOVV", "SIG", "SILU")


def _vector_op_members(ns: dict) -> None:
    for mnemonic in PIPELINED_MNEMONICS:
        ns[mnemonic] = isa.BY_MNEMONIC[mnemonic].code
    ns["__module__"] = __name__
    ns["__doc__"] = ("Operation of a `VectorUnit` request: the ISA mnemonics of PIPELINED_MNEMONICS, "
                     "encoded as their ISA opcodes (spec.isa).")


#: The request's operation; member values are the ISA opcodes, shaped like the opcode field.
VectorOp = types.new_class("VectorOp", (enum.Enum,), {"shape": unsigned(isa.FIELDS["opcode"][1])},
                           _vector_op_members)

FX = signed(N.FX_BITS)
_ONE = 1 << N.FX_FRAC                             # 1.0 in FX: the multiplier's pass-through operand
if N.GATE_FRAC != N.FX_FRAC:
    raise RuntimeError("VectorUnit rounds MUL, GMUL and SILU alike: it needs GATE_FRAC == FX_FRAC")

# -- the sigmoid table: entry k holds T[k] - 2**(GATE_FRAC-1) and T[k+1] - T[k], k < SIG_ENTRIES -----
_SIG_TABLE = [int(v) for v in N.sigmoid_table()]
_SIG_FRAC = N.FX_FRAC - N.SIG_STEP_LOG2          # |z| bits interpolated between table entries
_SIG_LIMIT = N.SIG_RANGE << N.FX_FRAC             # |z| clamp: sigmoid saturates beyond
_SIG_BASE = 1 << (N.GATE_FRAC - 1)                # sigma(0) = 1/2: every entry is in [BASE, 2 BASE)
if not (_SIG_TABLE[0] == _SIG_BASE and max(_SIG_TABLE) < 2 * _SIG_BASE):
    raise RuntimeError("sigmoid table entries outside [GATE_ONE/2, GATE_ONE)")
_SIG_IDX = (N.SIG_ENTRIES - 1).bit_length()       # table address bits (4096 rows)
if _SIG_LIMIT >> _SIG_FRAC != N.SIG_ENTRIES or 1 << _SIG_IDX != N.SIG_ENTRIES:
    raise RuntimeError("the sigmoid table must have a power-of-two number of intervals up to SIG_RANGE")
_SIG_D = unsigned(max(_SIG_TABLE[k + 1] - _SIG_TABLE[k] for k in range(N.SIG_ENTRIES)).bit_length())
_SIG_ROW = data.StructLayout({"lo": unsigned(N.GATE_FRAC - 1), "d": _SIG_D})

# -- the 2**f table: entry i holds E[i] - 2**FX_FRAC and E[i+1] - E[i] ------------------------------------
_EXP_TABLE = [int(v) for v in N.exp2_table()]
_EXP_FRAC = N.FX_FRAC - N.EXP_STEP_LOG2          # fraction bits interpolated between entries
if not (_EXP_TABLE[0] == _ONE and _EXP_TABLE[-1] == 2 * _ONE):
    raise RuntimeError("2**f table entries outside [2**FX_FRAC, 2**(FX_FRAC+1)]")
_EXP_D = unsigned(max(_EXP_TABLE[i + 1] - _EXP_TABLE[i] for i in range(N.EXP_ENTRIES)).bit_length())
_EXP_ROW = data.StructLayout({"lo": unsigned(N.FX_FRAC), "d": _EXP_D})
#: k >= _EXP_KSAT saturates (p >= 2**FX_FRAC); k == _EXP_KSAT - 1 saturates only for p = 2**(FX_FRAC+1)
_EXP_KSAT = N.FX_BITS - 1 - N.FX_FRAC
#: p * 2**k is formed as (p << (k + _EXP_DOWN)) >> _EXP_DOWN, k clamped to [-_EXP_DOWN, _EXP_KSAT]:
#: rshift_round(p, n) is 0 for every n >= _EXP_DOWN (p <= 2**(FX_FRAC+1) < 2**(_EXP_DOWN-1))
_EXP_DOWN = N.FX_FRAC + 4
_EXP_SHIFT = unsigned((_EXP_DOWN + _EXP_KSAT).bit_length())
_EXP_P = unsigned(_EXP_DOWN + 1)                  # p + 2**(n-1) < 2**(FX_FRAC+2) + 2**(_EXP_DOWN-1)

# -- the stages (register stage k loads from stage k-1; the request is stage 0) ----------------------
_S_IN = 1        # a, b, op registered (the register file's read data is late: no logic on it)
_S_ALU = 2       # one adder: a + b, a - b, GATE_ONE - a, or |a| (the sigmoid table address)
_S_TAB = 3       # the sigmoid row (block RAM output) registered; ADD/SUB/ONEM saturated
_S_INT = 4       # (T[k+1] - T[k]) * fraction (one DSP); T[k] or GATE_ONE - T[k] by the sign of a
_S_OPS = 5       # sigmoid(a) (interpolated, odd symmetry); the multiplier's operands by op
_S_PP = 6        # the multiplier's 18x18 partial products, then one adder level per stage
_S_PRD = _S_PP + product_stages(FX, FX) - 1       # the exact product
_S_RND = _S_PRD + 1   # + 2**(n-1), n = FX_FRAC (EXP: EXP_L2E_FRAC)
_S_SAT = _S_RND + 1   # >> n and saturated: y; EXP: the 2**f table read at y's fraction
_S_ETAB = _S_SAT + 1  # the 2**f row registered; k = floor(y) clamped into a shift
_S_EINT = _S_ETAB + 1  # (E[i+1] - E[i]) * fraction (one DSP); E[i] + 2**(n-1) for k = -n < 0
_S_EP = _S_EINT + 1   # p (+ the rounding constant), 2**f interpolated
_S_ESH = _S_EP + 1    # p shifted by a multiple of 8
_S_OUT = _S_ESH + 1   # by the rest, saturated; the result by op
# the two interpolation products (row difference x fraction) are one DSP each: valid one stage later
assert product_stages(_SIG_D, unsigned(_SIG_FRAC + 1)) == 1 and product_stages(_EXP_D, unsigned(_EXP_FRAC)) == 1

#: Register stages from an accepted request to its result on `o` (with no backpressure).
LATENCY = _S_OUT
#: The ops that need no product: their results leave from stage SHORT_LATENCY (the adder's,
#: saturated, or MOVV's a), not from the end of the pipeline.
SHORT_MNEMONICS = ("ADD", "SUB", "ONEM", "MOVV")
SHORT_LATENCY = _S_TAB + 1


def latency(op) -> int:
    """Register stages from an accepted request of `op` (a VectorOp or a mnemonic) to its result."""
    return SHORT_LATENCY if getattr(op, "name", op) in SHORT_MNEMONICS else LATENCY


def request_layout(lanes: int) -> data.StructLayout:
    """Payload of `VectorUnit.i`: `op` (`VectorOp`), `a` and `b` (`lanes` FX elements each)."""
    return data.StructLayout({
        "op": VectorOp,
        "a": data.ArrayLayout(FX, lanes),
        "b": data.ArrayLayout(FX, lanes),
    })


def result_layout(lanes: int) -> data.StructLayout:
    """Payload of `VectorUnit.o`: `data` (`lanes` FX elements)."""
    return data.StructLayout({"data": data.ArrayLayout(FX, lanes)})


class VectorUnit(LaneComponent):
    """Elementwise FX vector operations, `config.vector_lanes` elements per cycle.

    Parameters
    ----------
    config : AccelConfig
        Only `vector_lanes` is used. Element width and fractions are `spec.numerics`' FX format.

    Attributes
    ----------
    i : In(stream.Signature(request_layout(vector_lanes)))
        Requests: `op` and operand vectors `a`, `b` (`b` unused by the one-operand ops).
    o : Out(stream.Signature(result_layout(vector_lanes)))
        Results, one per accepted request, in request order; `data[j]` is, per `op`
        (the `golden.ops` functions, elementwise):

        ======  =============================================================================
        ADD     `fx_add(a, b)` (saturating)
        SUB     `sat_fx(a - b)`
        MUL     `fx_mul(a, b)` = `mul_round(a, b, FX_FRAC)`: exact product, round half up, saturate
        GMUL    `gate_mul(a, b)` = `mul_round(a, b, GATE_FRAC)`; exact for any FX `b`
        ONEM    `GATE_ONE - a`, saturated to FX (the golden int64 result whenever it fits FX,
                which it does for every GATE or `a >= FX_MIN + GATE_ONE`)
        MOVV    `a`
        EXP     `fx_exp(a)`: 2**y, y = mul_round(a, EXP_L2E, EXP_L2E_FRAC), table + interpolation
        SIG     `sigmoid(a)` (GATE, zero-extended)
        SILU    `silu(a)` = `gate_mul(a, sigmoid(a))`
        ======  =============================================================================

    Pipeline (stage k's registers load from stage k-1's; one carry chain, one 18x18 product or a
    few LUT levels per stage). ADD, SUB, ONEM and MOVV leave from stage SHORT_LATENCY (4), the
    others from stage LATENCY; a request for the other exit than the requests in flight waits until
    the pipeline is empty, so results leave in request order:

        1            a, b and the op's selects registered
        2            one adder per lane: a + b, a - b, GATE_ONE - a or |a|; the sigmoid table row
                     |a| >> 16 (or the last row with fraction 1.0 where |a| >= SIG_RANGE) is read
        3            the row registered; the adder's result saturated (ADD, SUB, ONEM)
        4            (T[k+1] - T[k]) * fraction (one DSP); T[k], or GATE_ONE - T[k] for a < 0
        5            sigmoid(a) = T[k] +- round(product) (one adder); the multiplier's operands:
                     a * b (MUL, GMUL), a * sigmoid(a) (SILU), a * EXP_L2E (EXP), 1.0 * sigmoid(a)
                     (SIG); ADD, SUB, ONEM and MOVV have left from stage 4
        6 .. 9       the exact 96-bit product (`hw.core.arith.pipelined_product`: 9 DSPs)
        10, 11       + 2**(n-1); >> n and saturated (n = FX_FRAC, EXP: EXP_L2E_FRAC): y, and for
                     EXP the 2**f table row of y's fraction is read
        12 .. 16     EXP: the row registered and k = floor(y) clamped; the interpolation product
                     (one DSP) and E[i] + 2**(n-1) for k = -n < 0; p; p shifted by a multiple of 8;
                     by the rest, saturated. Every other op's y passes through.

    Both streams follow `amaranth.lib.stream` rules: a transfer happens on a cycle with
    `valid & ready`; `o.valid` never depends on `o.ready`. `i.ready` depends combinationally on
    `o.ready` (a stalled result stalls the stages behind it; empty stages still fill). A result
    leaves `latency(op)` cycles after its request when `o` never stalls; the throughput is one
    vector per cycle while the op's exit does not change.

    `held_op=True` promises that `i.payload.op` is held at least one cycle before `i.valid` rises
    and while it is high (hw.core.vecunit's op register, set when its instruction is accepted,
    cycles before its first word arrives); the exit choice then comes from a register.

    Raises
    ------
    TypeError
        If `config` is not an `AccelConfig`.
    """

    def __init__(self, config: AccelConfig, *, held_op: bool = False):
        self._held_op = held_op
        super().__init__(config, lambda lanes: {
            "i": In(stream.Signature(request_layout(lanes))),
            "o": Out(stream.Signature(result_layout(lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes

        sinit = [{"lo": _SIG_TABLE[k] - _SIG_BASE, "d": _SIG_TABLE[k + 1] - _SIG_TABLE[k]}
                 for k in range(N.SIG_ENTRIES)]
        # the sigmoid table (4096 rows): a RegisteredROM per two lanes (one read port each), its
        # second read register the lane's stage-3 register (on ECP5 the block RAM's output
        # register: a 4096-deep table's output straight from the array was a late path of a -6 build)
        sig_words = [_SIG_ROW.const(r).as_value().value for r in sinit]
        sig_ports = []
        for t in range((lanes + 1) // 2):
            rom = m.submodules[f"sig_table{t}"] = RegisteredROM(_SIG_ROW.size, len(sig_words), init=sig_words,
                                                                ports=min(2, lanes - 2 * t), name=f"sig_table{t}")
            sig_ports += rom.read
        einit = [{"lo": _EXP_TABLE[i] - _ONE, "d": _EXP_TABLE[i + 1] - _EXP_TABLE[i]}
                 for i in range(N.EXP_ENTRIES)]
        m.submodules.exp_table = etable = memory.Memory(shape=_EXP_ROW, depth=len(einit), init=einit,
                                                        attrs={"rom_style": "block"})

        # Two exits: the SHORT_MNEMONICS leave from stage SHORT_LATENCY, the others from stage
        # LATENCY. `short` is the exit of the requests in flight; a request for the other exit
        # waits until the pipeline is empty, so results leave in request order.
        op0 = self.i.payload.op.as_value()

        def is_op(*mns):
            return op0.matches(*(VectorOp[mn].value for mn in mns))

        short = Signal()
        inflight = Signal(range(LATENCY + 1))
        empty = Signal(init=1)
        # Stage enables: stage k loads when it is empty or stage k+1 loads (bubbles collapse); the
        # exit stage loads when it is empty or `o` takes its result. With `o.ready` tied high
        # (VectorOpUnit) they are all constant 1.
        ks = SHORT_LATENCY - 1
        valid = [Signal(name=f"valid{k}") for k in range(1, LATENCY + 1)]
        en = [Signal(name=f"en{k}") for k in range(1, LATENCY + 1)]
        for k in range(LATENCY):
            nxt = self.o.ready if k == LATENCY - 1 else en[k + 1]
            if k == ks:
                nxt = Mux(short, self.o.ready, nxt)
            m.d.comb += en[k].eq(~valid[k] | nxt)
            with m.If(en[k]):
                m.d.sync += valid[k].eq(self.i.valid & self.i.ready if k == 0 else
                                        valid[k - 1] & ~short if k == ks + 1 else valid[k - 1])
        accept = Signal()
        emit = Signal()
        # whether the request's op leaves from the short exit: with `held_op` (the requester holds
        # `op` for at least one cycle before `valid` rises and while it is high) from a register of
        # the previous cycle's op, so `i.ready` is one LUT of registers (an ECPIX-5 build's worst
        # path ran from the requester's op through this compare and `ready` into its read queue)
        op_short = Signal()
        if self._held_op:
            m.d.sync += op_short.eq(is_op(*SHORT_MNEMONICS))
        else:
            m.d.comb += op_short.eq(is_op(*SHORT_MNEMONICS))
        m.d.comb += [
            self.i.ready.eq(en[0] & (empty | (op_short == short))),
            self.o.valid.eq(Mux(short, valid[ks], valid[-1])),
            accept.eq(self.i.valid & self.i.ready),
            emit.eq(self.o.valid & self.o.ready),
        ]
        n_next = Signal.like(inflight)
        m.d.comb += n_next.eq(inflight + accept - emit)
        # empty next: a choice by accept and emit among compares of the register (not the adder's
        # sum compared: an ECPIX-5 build's late arrivals included it)
        is0, is1 = Signal(), Signal()
        m.d.comb += [is0.eq(inflight == 0), is1.eq(inflight == 1)]
        m.d.sync += [inflight.eq(n_next), empty.eq(Mux(emit, Mux(accept, is0, is1), ~accept & is0))]
        with m.If(accept):
            m.d.sync += short.eq(op_short)

        def stage(k: int, name: str, shape, value):
            """A register of stage k (1-based) loading `value` when the stage advances (no reset: it is
            read only under the stage's `valid`)."""
            reg = Signal(shape, name=f"{name}_s{k}", reset_less=True)
            with m.If(en[k - 1]):
                m.d.sync += reg.eq(value)
            return reg

        def carry(v, k0: int, k1: int, name: str) -> dict:
            """`v` (a stage-k0 register) carried through stages k0+1 .. k1: {k: register}."""
            out = {k0: v}
            for k in range(k0 + 1, k1 + 1):
                out[k] = stage(k, name, v.shape(), out[k - 1])
            return out

        # -- the op's selects, shared by the lanes ----------------------------------------------------
        # the stage-2 adder's mode: 0 a + b, 1 a - b, 2 GATE_ONE - a, 3 |a| (SIG, SILU; else don't care)
        mode0 = Cat(is_op("SUB", "SIG", "SILU"), is_op("ONEM", "SIG", "SILU"))
        f_alu = carry(stage(_S_IN, "f_alu", 1, is_op("ADD", "SUB", "ONEM")), _S_IN, _S_ALU, "f_alu")
        f_sig = carry(stage(_S_IN, "f_sig", 1, is_op("SIG")), _S_IN, _S_OPS - 1, "f_sig")
        f_sgl = carry(stage(_S_IN, "f_sgl", 1, is_op("SIG", "SILU")), _S_IN, _S_OPS - 1, "f_sgl")
        f_mul = carry(stage(_S_IN, "f_mul", 1, is_op("MUL", "GMUL")), _S_IN, _S_OPS - 1, "f_mul")
        f_exp = carry(stage(_S_IN, "f_exp", 1, is_op("EXP")), _S_IN, _S_ESH - 1, "f_exp")

        for j in range(lanes):
            a1 = stage(_S_IN, f"a{j}", FX, self.i.payload.a[j])
            a2 = stage(_S_ALU, f"a{j}", FX, a1)
            b = carry(stage(_S_IN, f"b{j}", FX, self.i.payload.b[j]), _S_IN, _S_OPS - 1, f"b{j}")

            # stage 2: one carry chain, x - y = ~(~x + y): s = x' + y' with one LUT level before it
            #   a + b: a + b;  a - b: ~(~a + b);  GATE_ONE - a: ~(~GATE_ONE + a);  |a|: (a + sign) ^ sign
            mode = stage(_S_IN, f"mode{j}", 2, mode0)      # per lane: fan-out
            w = N.FX_BITS + 1
            xw = Signal(unsigned(w), name=f"alu_x{j}")
            yw = Signal(unsigned(w), name=f"alu_y{j}")
            s = Signal(unsigned(w), name=f"alu_s{j}")
            sign = a1[-1]
            abits = a1.as_unsigned()
            m.d.comb += [
                xw.eq(Cat(Mux(mode[1], Mux(mode[0], sign, ~Const(N.GATE_ONE, w)[i]), abits[min(i, w - 2)] ^ mode[0])
                          for i in range(w))),
                yw.eq(Mux(mode[1], a1, b[_S_IN])),
                s.eq(xw + yw),
            ]
            # the sigmoid row and fraction: |a| = row * 2**F + fr with fr in [0, 2**F) for a >= 0 and
            # in [1, 2**F] for a < 0, where |a| - 1 = ~a: row = ~a >> F and fr = (~a mod 2**F) + 1 (the
            # interpolation at fr = 2**F is T[row] + d = T[row + 1], exact), so the block RAM's
            # address is one LUT of registers (a >= 0: a >> F; a < 0: ~a >> F), no carry chain; |a|
            # beyond the table: the last row with fraction 1.0 (T[last+1])
            mag = s ^ sign.replicate(w)
            # |a| beyond the table: compared on the input, a register beside a1 (the compares and the
            # row choice after a1 were an ECPIX-5 build's late path into the table's address)
            a_in = self.i.payload.a[j].as_signed()
            over = stage(_S_IN, f"over{j}", 1, (a_in >= _SIG_LIMIT) | (a_in <= -_SIG_LIMIT))
            row = Signal(_SIG_IDX, name=f"sig_row{j}")
            mid = a1.as_unsigned()[_SIG_FRAC:_SIG_FRAC + _SIG_IDX]
            low_zero = ~a1.as_unsigned()[:_SIG_FRAC].any()
            m.d.comb += row.eq(mid ^ sign.replicate(_SIG_IDX))
            port = sig_ports[j]
            m.d.comb += [
                port.addr.eq(Mux(over, N.SIG_ENTRIES - 1, row)),
                port.en.eq(en[_S_ALU - 1]),             # the block RAM's read: stage 2
                port.o_en.eq(en[_S_TAB - 1]),           # its output register: stage 3
            ]
            sig_row = _SIG_ROW(port.data)
            fr2 = stage(_S_ALU, f"fr{j}", unsigned(_SIG_FRAC + 1),
                        Mux(over | (sign & low_zero), 1 << _SIG_FRAC, mag[:_SIG_FRAC]))
            neg2 = stage(_S_ALU, f"neg{j}", 1, sign)
            sum2 = stage(_S_ALU, f"sum{j}", signed(w), s ^ (mode[0] ^ mode[1]).replicate(w))

            # stage 3: the row registered; the sum saturated
            lo3, d3 = sig_row.lo, sig_row.d
            fr3 = stage(_S_TAB, f"fr{j}", fr2.shape(), fr2)
            neg3 = stage(_S_TAB, f"neg{j}", 1, neg2)
            # from here on `a` is the saturated sum for ADD, SUB and ONEM (they need no other)
            sat2 = Mux(sum2[-1] == sum2[-2], sum2[:N.FX_BITS].as_signed(), Mux(sum2[-1], N.FX_MIN, N.FX_MAX))
            a = carry(stage(_S_TAB, f"a{j}", FX, Mux(f_alu[_S_ALU], sat2, a2)), _S_TAB, _S_OPS - 1, f"a{j}")

            # stage 4: the interpolation product; the base T[k] (a >= 0) or GATE_ONE - T[k] (a < 0),
            # shifted up by _SIG_FRAC with the rounding bits below: sigmoid = (xs +- product) >> _SIG_FRAC
            # (+: 2**(F-1) below rounds half up; -: L - floor((p + 2**(F-1)) / 2**F)
            #  = floor((L 2**F + 2**(F-1) - 1 - p) / 2**F))
            prod4 = pipelined_product(d3, fr3, stage, _S_INT, f"sip{j}", m=m, en=lambda k: en[k - 1])
            lo = Cat(lo3, Const(1, 1))                                   # T[k]
            xs4 = stage(_S_INT, f"xs{j}", unsigned(_SIG_FRAC + N.GATE_FRAC + 1),
                        Cat(Mux(neg3, (1 << (_SIG_FRAC - 1)) - 1, 1 << (_SIG_FRAC - 1))[:_SIG_FRAC],
                            Mux(neg3, N.GATE_ONE - lo, lo)[:N.GATE_FRAC + 1]))
            neg4 = stage(_S_INT, f"neg{j}", 1, neg3)

            # stage 5: sigmoid(a) in one carry chain (xs - p = ~(~xs + p)); the multiplier's operands
            ws = len(xs4)
            t5 = Signal(unsigned(ws), name=f"sigt{j}")
            sig = Signal(unsigned(N.GATE_FRAC + 1), name=f"sig{j}")
            m.d.comb += [
                t5.eq((xs4 ^ neg4.replicate(ws)) + prod4),
                sig.eq((t5 ^ neg4.replicate(ws))[_SIG_FRAC:]),
            ]
            k = _S_OPS - 1
            opa = stage(_S_OPS, f"opa{j}", FX, Mux(f_sig[k], _ONE, a[k]))
            opb = stage(_S_OPS, f"opb{j}", FX,
                        Mux(f_sgl[k], sig, Mux(f_exp[k], N.EXP_L2E, Mux(f_mul[k], b[k], _ONE))))

            # stages 6 ..: the exact product; + 2**(n-1); >> n and saturated
            prod = pipelined_product(opa, opb, stage, _S_PP, f"mul{j}", m=m, en=lambda k: en[k - 1])
            n_fx, n_exp = N.FX_FRAC, N.EXP_L2E_FRAC
            rnd = stage(_S_RND, f"rnd{j}", signed(len(prod) - n_fx + 1),
                        Mux(f_exp[_S_PRD], prod >> (n_exp - 1), prod >> (n_fx - 1)) + 1)
            r = rnd[1:].as_signed()
            fits = Signal(name=f"fits{j}")
            yv = Signal(FX, name=f"y{j}")
            # saturated: the sign r[-1], each other bit r[i] where r fits FX, else ~r[-1] (FX_MIN /
            # FX_MAX): one LUT4 a bit after the two flags of r's top bits
            hi1, hi0 = Signal(name=f"hi1_{j}"), Signal(name=f"hi0_{j}")
            m.d.comb += [
                hi1.eq(r[N.FX_BITS - 1:].all()),
                hi0.eq(~r[N.FX_BITS - 1:].any()),
                fits.eq(hi1 | hi0),
                yv.eq(Cat(Mux(fits, r[:N.FX_BITS - 1], (~r[-1]).replicate(N.FX_BITS - 1)), r[-1]).as_signed()),
            ]
            ysat = stage(_S_SAT, f"y{j}", FX, yv)
            yc = carry(ysat, _S_SAT, _S_ESH - 1, f"y{j}")
            eport = etable.read_port()
            m.d.comb += [
                # the 2**f row from r's fraction bits, not y's: where y saturates (y = FX_MAX: k
                # clamped high, the result saturated; FX_MIN: k clamped low, the result 0 for any p
                # <= 2**(FX_FRAC+1)) the row does not matter, so no saturation select (the
                # compare over r's top bits) sits before the block RAM's address
                eport.addr.eq(r[_EXP_FRAC:N.FX_FRAC]),
                eport.en.eq(en[_S_SAT - 1]),
            ]

            # EXP, stage 12: the row registered; k = floor(y) clamped to [-_EXP_DOWN, _EXP_KSAT]
            elo12 = stage(_S_ETAB, f"elo{j}", _EXP_ROW["lo"].shape, eport.data.lo)
            ed12 = stage(_S_ETAB, f"ed{j}", _EXP_D, eport.data.d)
            efr12 = stage(_S_ETAB, f"efr{j}", unsigned(_EXP_FRAC), ysat[:_EXP_FRAC])
            ek = ysat[N.FX_FRAC:].as_signed()
            klo = Signal(name=f"eklo{j}")
            khi = Signal(name=f"ekhi{j}")
            m.d.comb += [klo.eq(ek < -_EXP_DOWN), khi.eq(ek >= _EXP_KSAT)]
            nsh = _EXP_SHIFT.width
            esh = stage(_S_ETAB, f"esh{j}", _EXP_SHIFT,
                        Mux(klo, 0, Mux(khi, _EXP_DOWN + _EXP_KSAT, (ek[:nsh] + _EXP_DOWN)[:nsh])))
            # k = -n < 0: the rounding constant 2**(n-1) = 2**~k (k clamped: n <= _EXP_DOWN)
            nrc = (_EXP_DOWN - 1).bit_length()
            erc = stage(_S_ETAB, f"erc{j}", unsigned(nrc), Mux(klo, _EXP_DOWN - 1, ~ek[:nrc]))
            ekneg = stage(_S_ETAB, f"ekneg{j}", 1, ek < 0)
            eksat = stage(_S_ETAB, f"eksat{j}", 1, khi)
            ektop = stage(_S_ETAB, f"ektop{j}", 1, ek == _EXP_KSAT - 1)

            # stage 13: the interpolation product; E[i] (+ 2**(n-1) for k = -n < 0)
            eprod = pipelined_product(ed12, efr12, stage, _S_EINT, f"eip{j}", m=m, en=lambda k: en[k - 1])
            elo13 = stage(_S_EINT, f"elo{j}", _EXP_P,
                          Cat(elo12, Const(1, 1)) + Mux(ekneg, Const(1, _EXP_P.width) << erc, 0))
            esh13 = stage(_S_EINT, f"esh{j}", _EXP_SHIFT, esh)
            eksat13 = stage(_S_EINT, f"eksat{j}", 1, eksat)
            ektop13 = stage(_S_EINT, f"ektop{j}", 1, ektop)

            # stage 14: p = E[i] + rshift_round(d * fr, _EXP_FRAC) (+ 2**(n-1))
            p14 = stage(_S_EP, f"ep{j}", _EXP_P,
                        (Cat(Const(1 << (_EXP_FRAC - 1), _EXP_FRAC), elo13) + eprod) >> _EXP_FRAC)
            esh14 = stage(_S_EP, f"esh{j}", _EXP_SHIFT, esh13)
            eksat14 = stage(_S_EP, f"eksat{j}", 1, eksat13)
            ektop14 = stage(_S_EP, f"ektop{j}", 1, ektop13)

            # stage 15: X1 = p << 8 * (shift >> 3), the bits that can reach the result
            # (result = (p << shift)[_EXP_DOWN : _EXP_DOWN + FX_BITS], so X1[_EXP_DOWN - 7 :]);
            # the other ops' y in its low bits, to pass stage 16 as a shift by 7
            lo_bit = _EXP_DOWN - 7
            x1w = N.FX_BITS + 7
            coarse = Array([(p14 << (8 * c))[lo_bit:lo_bit + x1w] for c in range(1 << (nsh - 3))])
            fe = f_exp[_S_ESH - 1]
            x15 = stage(_S_ESH, f"ex{j}", unsigned(x1w), Mux(fe, coarse[esh14[3:]], yc[_S_ESH - 1].as_unsigned()))
            esl15 = stage(_S_ESH, f"esl{j}", unsigned(3), Mux(fe, esh14[:3], 7))
            esat15 = stage(_S_ESH, f"esat{j}", 1, fe & (eksat14 | (ektop14 & p14[N.FX_FRAC + 1])))

            # stage 16: X1 << (shift & 7), saturated. The output register is also the short exit's
            # stage SHORT_LATENCY register (`a` of stage SHORT_LATENCY - 1: the ADD/SUB/ONEM result, MOVV's a)
            fine = Signal(FX, name=f"efine{j}")
            m.d.comb += fine.eq(Array([x15[7 - c:7 - c + N.FX_BITS] for c in range(8)])[esl15])
            out = self.o.payload.data[j]
            with m.If(Mux(short, en[ks], en[_S_OUT - 1])):
                m.d.sync += out.eq(Mux(short, a[ks], Mux(esat15, N.FX_MAX, fine)))

        return m


def divide_layout(lanes: int) -> data.StructLayout:
    """Payload of `VectorDivider.i`: dividends `a` and divisors `b` (`lanes` FX elements each)."""
    return data.StructLayout({"a": data.ArrayLayout(FX, lanes), "b": data.ArrayLayout(FX, lanes)})


class VectorDivider(wiring.Component):
    """The ISA's DIV, iterative: `fx_div(a, b)` for `config.vector_lanes` elements at a time.

    `fx_div(a, b) = sign(a*b) * floor((|a| * 2**FX_FRAC + |b|/2) / |b|)` (ties away from zero),
    saturated to FX; `b == 0` gives FX_MAX for `a > 0`, FX_MIN for `a < 0`, 0 for `a == 0`
    (`golden.ops.fx_div`). That quotient is `(Q + 1) >> 1` with `Q = floor(|a| * 2**(FX_FRAC+1) / |b|)`
    (and `-q = (-Q) >> 1`), so `Q` is formed by restoring division, one bit per cycle for every lane,
    most significant first: its top bit (weight 2**(FX_BITS+1)) says the quotient saturates, and
    `b == 0` sets it. Each step is one 49-bit subtraction; the operands are registered on
    acceptance and their magnitudes in the next cycle, the signed, saturated result in the last.

    Parameters
    ----------
    config : AccelConfig
        Only `vector_lanes` is used.

    Attributes
    ----------
    i : In(stream.Signature(divide_layout(vector_lanes)))
        Requests; accepted only while the unit is idle.
    o : Out(stream.Signature(result_layout(vector_lanes)))
        Quotients, one vector per request, in order. A request takes `DIV_CYCLES` cycles from
        its acceptance to `o.valid`; the next one is accepted after the result's transfer.

    Raises
    ------
    TypeError
        If `config` is not an `AccelConfig`.
    """

    #: Bits of Q formed, one per cycle: Q < 2**(FX_BITS+1) unless the quotient saturates, and one
    #: bit above it that says so.
    QUOTIENT_BITS = N.FX_BITS + 2
    #: Cycles from an accepted request to its result: the magnitudes, one per quotient bit, the
    #: signed result, and the cycle it appears in.
    DIV_CYCLES = QUOTIENT_BITS + 3

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, not {config!r}")
        self._lanes = config.vector_lanes
        super().__init__({
            "i": In(stream.Signature(divide_layout(self._lanes))),
            "o": Out(stream.Signature(result_layout(self._lanes))),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    def elaborate(self, platform):
        m = Module()
        qbits = self.QUOTIENT_BITS
        shift = N.FX_FRAC + 1                   # Q = floor((|a| << shift) / |b|)
        mag = unsigned(N.FX_BITS)               # |FX_MIN| = 2**(FX_BITS-1) fits

        # one state at a time, one-hot: idle (i.ready; the operand registers follow i.payload), load
        # (the magnitudes), run (one bit per cycle), fin (the result), done (o.valid)
        idle = Signal(init=1)
        load = Signal()
        run = Signal()
        fin = Signal()
        done = Signal()
        step = Signal(range(qbits))
        last = Signal()                         # step == 0
        m.d.comb += [self.i.ready.eq(idle), self.o.valid.eq(done)]
        m.d.sync += [
            idle.eq((idle & ~self.i.valid) | (done & self.o.ready)),
            load.eq(idle & self.i.valid),
            run.eq(load | (run & ~last)),
            fin.eq(run & last),
            done.eq(fin | (done & ~self.o.ready)),
        ]
        with m.If(load):
            m.d.sync += [step.eq(qbits - 1), last.eq(0)]
        with m.Elif(run):
            m.d.sync += [step.eq(step - 1), last.eq(step == 1)]

        for j in range(self._lanes):
            a = Signal(FX, name=f"a{j}")
            b = Signal(FX, name=f"b{j}")
            with m.If(idle):
                m.d.sync += [a.eq(self.i.payload.a[j]), b.eq(self.i.payload.b[j])]

            rem = Signal(mag, name=f"rem{j}")                  # < |b| while Q fits
            feed = Signal(unsigned(qbits), name=f"feed{j}")    # the dividend's next bits, top first
            den = Signal(mag, name=f"den{j}")
            quo = Signal(unsigned(qbits), name=f"quo{j}")
            neg = Signal(name=f"neg{j}")
            zero = Signal(name=f"zero{j}")                    # a == 0: the quotient is 0, b == 0 too
            with m.If(load):
                mag_a = Mux(a < 0, -a, a)[:N.FX_BITS]
                mag_b = Mux(b < 0, -b, b)[:N.FX_BITS]
                m.d.sync += [
                    rem.eq(mag_a >> (qbits - shift)),
                    feed.eq(mag_a << shift),
                    den.eq(mag_b),
                    quo.eq(0),
                    neg.eq(a[-1] ^ b[-1]),
                    zero.eq(a == 0),
                ]
            with m.Elif(run):
                # restoring division: one quotient bit per cycle, most significant first
                r2 = Cat(feed[-1], rem)
                diff = Signal(signed(N.FX_BITS + 2), name=f"diff{j}")
                m.d.comb += diff.eq(r2 - den)
                fits = ~diff[-1]
                m.d.sync += [
                    rem.eq(Mux(fits, diff[:N.FX_BITS], r2[:N.FX_BITS])),
                    feed.eq(feed << 1),
                    quo.eq(Cat(fits, quo[:-1])),
                ]
            # the result: (Q + 1) >> 1, or (-Q) >> 1 = (~Q + 1) >> 1, in one carry chain; it saturates
            # where Q has its top bit, or (Q + 1) >> 1 > FX_MAX, or (-Q) >> 1 < FX_MIN
            q = quo[:-1]
            top = N.FX_BITS
            v = Signal(unsigned(qbits - 1), name=f"v{j}")
            m.d.comb += v.eq((q ^ neg.replicate(qbits - 1)) + 1)
            pos_sat = quo[-1] | q[top] | q[:top].all()          # Q >= 2**FX_BITS - 1
            neg_sat = quo[-1] | (q[top] & q[:top].any())        # Q >= 2**FX_BITS + 1
            out = self.o.payload.data[j]
            with m.If(fin):
                m.d.sync += out.eq(Mux(zero, 0, Mux(neg, Mux(neg_sat, N.FX_MIN, v[1:].as_signed()),
                                                    Mux(pos_sat, N.FX_MAX, v[1:].as_signed()))))

        return m
