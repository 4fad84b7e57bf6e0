"""Elementwise vector unit: the row-wise functional unit of the core (ISA vector group).

Implements the paper's row-wise ops ("Scalable MatMul-free Language Modeling", Zhu et al. 2024,
section 5: ADD, SUB, MUL, EXP, SIG) and ours (GMUL, ONEM, MOVV, SILU) exactly as `golden/ops.py`
defines them (docs/numerics.md, "Vector operations"). Every width, fraction and the sigmoid table
come from `spec.numerics`; the opcodes come from `spec.isa`. DIV, the one iterative op, is
`VectorDivider` (one quotient bit per cycle).
"""
from __future__ import annotations

import types

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

from .common import LaneComponent

__all__ = ["LATENCY", "PIPELINED_MNEMONICS", "VectorDivider", "VectorOp", "VectorUnit", "divide_layout",
           "request_layout", "result_layout"]

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

#: Register stages from an accepted request to its result on `o` (with no backpressure).
LATENCY = 4

_SIG_TABLE = [int(v) for v in N.sigmoid_table()]
_SIG_ENTRY = unsigned(max(_SIG_TABLE).bit_length())
_SIG_FRAC = N.FX_FRAC - N.SIG_STEP_LOG2          # |z| bits interpolated between table entries
_SIG_LIMIT = N.SIG_RANGE << N.FX_FRAC             # |z| clamp: sigmoid saturates beyond
_GATE = unsigned(N.GATE_ONE.bit_length())         # GATE values, [0, GATE_ONE]

_EXP_TABLE = [int(v) for v in N.exp2_table()]
_EXP_ENTRY = unsigned(max(_EXP_TABLE).bit_length())   # 2**f in [2**FX_FRAC, 2**(FX_FRAC+1)]
_EXP_FRAC = N.FX_FRAC - N.EXP_STEP_LOG2          # fraction bits interpolated between entries
_EXP_UP = N.FX_BITS - N.FX_FRAC                   # p << k saturates for any k >= _EXP_UP
_EXP_DOWN = _EXP_ENTRY.width + 1                  # rshift_round(p, n) is 0 for any n >= _EXP_DOWN


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


def _rshift_round(v, n: int):
    """rshift_round(v, n) = (v + 2**(n-1)) >> n, arithmetic (n > 0)."""
    return (v + (1 << (n - 1))) >> n


def _sat_fx(v):
    """Clamp to [FX_MIN, FX_MAX]."""
    return Mux(v > N.FX_MAX, N.FX_MAX, Mux(v < N.FX_MIN, N.FX_MIN, v))


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

    Both streams follow `amaranth.lib.stream` rules: a transfer happens on a cycle with
    `valid & ready`; `o.valid` never depends on `o.ready`. `i.ready` depends combinationally on
    `o.ready` (a stalled result stalls the stages behind it; empty stages still fill). A result
    leaves `LATENCY` cycles after its request when `o` never stalls; the throughput is one vector
    per cycle.

    Raises
    ------
    TypeError
        If `config` is not an `AccelConfig`.
    """

    def __init__(self, config: AccelConfig):
        super().__init__(config, lambda lanes: {
            "i": In(stream.Signature(request_layout(lanes))),
            "o": Out(stream.Signature(result_layout(lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes

        # Entry k of the ROM holds (T[k], T[k+1]): one read per lane per cycle interpolates.
        pair = data.StructLayout({"lo": _SIG_ENTRY, "hi": _SIG_ENTRY})
        last = len(_SIG_TABLE) - 1
        init = [{"lo": _SIG_TABLE[k], "hi": _SIG_TABLE[min(k + 1, last)]} for k in range(len(_SIG_TABLE))]
        m.submodules.sig_table = table = memory.Memory(shape=pair, depth=len(init), init=init)
        # 2**f: entries (E[i], E[i+1]) for every index the fraction's top bits can take
        epair = data.StructLayout({"lo": _EXP_ENTRY, "hi": _EXP_ENTRY})
        einit = [{"lo": _EXP_TABLE[i], "hi": _EXP_TABLE[i + 1]} for i in range(len(_EXP_TABLE) - 1)]
        m.submodules.exp_table = etable = memory.Memory(shape=epair, depth=len(einit), init=einit)

        # Stage enables: stage k loads when it is empty or stage k+1 loads (bubbles collapse).
        valid = [Signal(name=f"valid{k}") for k in range(1, LATENCY + 1)]
        en = [Signal(name=f"en{k}") for k in range(1, LATENCY + 1)]
        for k in range(LATENCY):
            nxt = self.o.ready if k == LATENCY - 1 else en[k + 1]
            m.d.comb += en[k].eq(~valid[k] | nxt)
            with m.If(en[k]):
                m.d.sync += valid[k].eq(self.i.valid if k == 0 else valid[k - 1])
        m.d.comb += [
            self.i.ready.eq(en[0]),
            self.o.valid.eq(valid[-1]),
        ]

        def stage(k: int, name: str, shape, value, init=None):
            """A register of stage k (1-based) loading `value` when the stage advances."""
            reg = Signal(shape, name=f"{name}_s{k}", init=init)
            with m.If(en[k - 1]):
                m.d.sync += reg.eq(value)
            return reg

        op0 = self.i.payload.op
        op1 = stage(1, "op", VectorOp, op0, init=VectorOp.MOVV)
        op2 = stage(2, "op", VectorOp, op1, init=VectorOp.MOVV)
        op3 = stage(3, "op", VectorOp, op2, init=VectorOp.MOVV)

        for j in range(lanes):
            a0, b0 = self.i.payload.a[j], self.i.payload.b[j]

            # stage 1: |z| clamped, table row read, interpolation fraction, sign
            mag = Signal(unsigned(N.FX_BITS), name=f"mag{j}")
            clamped = Signal(range(_SIG_LIMIT + 1), name=f"clamped{j}")
            m.d.comb += [
                mag.eq(Mux(a0 < 0, -a0, a0)),
                clamped.eq(Mux(mag > _SIG_LIMIT, _SIG_LIMIT, mag)),
            ]
            port = table.read_port()
            m.d.comb += [port.addr.eq(clamped >> _SIG_FRAC), port.en.eq(en[0])]
            a1 = stage(1, f"a{j}", FX, a0)
            b1 = stage(1, f"b{j}", FX, b0)
            neg1 = stage(1, f"neg{j}", 1, a0 < 0)
            fr1 = stage(1, f"fr{j}", unsigned(_SIG_FRAC), clamped[:_SIG_FRAC])

            # stage 2: sigmoid = T[i] + rshift_round((T[i+1] - T[i]) * fr, _SIG_FRAC), odd symmetry
            diff = Signal(signed(_SIG_ENTRY.width + 1), name=f"diff{j}")
            sp = Signal(signed(_SIG_ENTRY.width + 2), name=f"sp{j}")
            m.d.comb += [
                diff.eq(port.data.hi - port.data.lo),
                sp.eq(port.data.lo + _rshift_round(diff * fr1, _SIG_FRAC)),
            ]
            # EXP, stage 2: y = mul_round(a, L2E, L2E_FRAC); 2**frac(y) read from the table
            ey = Signal(FX, name=f"ey{j}")
            m.d.comb += ey.eq(_sat_fx(_rshift_round(a1 * N.EXP_L2E, N.EXP_L2E_FRAC)))
            eport = etable.read_port()
            m.d.comb += [eport.addr.eq(ey[_EXP_FRAC:N.FX_FRAC]), eport.en.eq(en[1])]
            ek2 = stage(2, f"ek{j}", signed(N.FX_BITS - N.FX_FRAC), ey >> N.FX_FRAC)
            efr2 = stage(2, f"efr{j}", unsigned(_EXP_FRAC), ey[:_EXP_FRAC])

            a2 = stage(2, f"a{j}", FX, a1)
            b2 = stage(2, f"b{j}", FX, b1)
            sig2 = stage(2, f"sig{j}", _GATE, Mux(neg1, N.GATE_ONE - sp, sp))

            # stage 3: the exact product (MUL, GMUL, SILU) and the adder results
            y = Signal(FX, name=f"y{j}")
            m.d.comb += y.eq(Mux(op2 == VectorOp.SILU, sig2, b2))
            ediff = Signal(signed(_EXP_ENTRY.width + 1), name=f"ediff{j}")
            m.d.comb += ediff.eq(eport.data.hi - eport.data.lo)
            ep3 = stage(3, f"ep{j}", _EXP_ENTRY, eport.data.lo + _rshift_round(ediff * efr2, _EXP_FRAC))
            ek3 = stage(3, f"ek{j}", signed(N.FX_BITS - N.FX_FRAC), ek2)
            prod3 = stage(3, f"prod{j}", signed(2 * N.FX_BITS), a2 * y)
            alu3 = Signal(FX, name=f"alu{j}_s3")
            with m.If(en[2]):
                with m.Switch(op2):
                    with m.Case(VectorOp.ADD):
                        m.d.sync += alu3.eq(_sat_fx(a2 + b2))
                    with m.Case(VectorOp.SUB):
                        m.d.sync += alu3.eq(_sat_fx(a2 - b2))
                    with m.Case(VectorOp.ONEM):
                        m.d.sync += alu3.eq(_sat_fx(N.GATE_ONE - a2))
                    with m.Case(VectorOp.MOVV):
                        m.d.sync += alu3.eq(a2)
                    with m.Case(VectorOp.SIG):
                        m.d.sync += alu3.eq(sig2)

            # stage 4: round half up, saturate, select
            out = self.o.payload.data[j]
            rounded = {n: _sat_fx(_rshift_round(prod3, n)) for n in {N.FX_FRAC, N.GATE_FRAC}}
            # EXP: p << k (saturating) for k >= 0, rshift_round(p, -k) = ((p >> (-k-1)) + 1) >> 1
            up = Signal(range(_EXP_UP + 1), name=f"eup{j}")
            down = Signal(range(_EXP_DOWN), name=f"edown{j}")
            m.d.comb += [
                up.eq(Mux(ek3 > _EXP_UP, _EXP_UP, ek3)),
                down.eq(Mux(-ek3 > _EXP_DOWN, _EXP_DOWN, -ek3) - 1),
            ]
            exp = Mux(ek3 >= 0, _sat_fx(ep3 << up), ((ep3 >> down) + 1) >> 1)
            with m.If(en[3]):
                with m.Switch(op3):
                    with m.Case(VectorOp.MUL):
                        m.d.sync += out.eq(rounded[N.FX_FRAC])
                    with m.Case(VectorOp.GMUL, VectorOp.SILU):
                        m.d.sync += out.eq(rounded[N.GATE_FRAC])
                    with m.Case(VectorOp.EXP):
                        m.d.sync += out.eq(exp)
                    with m.Default():
                        m.d.sync += out.eq(alu3)

        return m



def divide_layout(lanes: int) -> data.StructLayout:
    """Payload of `VectorDivider.i`: dividends `a` and divisors `b` (`lanes` FX elements each)."""
    return data.StructLayout({"a": data.ArrayLayout(FX, lanes), "b": data.ArrayLayout(FX, lanes)})


class VectorDivider(wiring.Component):
    """The ISA's DIV, iterative: `fx_div(a, b)` for `config.vector_lanes` elements at a time.

    `fx_div(a, b) = sign(a*b) * floor((|a| * 2**FX_FRAC + |b|/2) / |b|)` (ties away from zero),
    saturated to FX; `b == 0` gives FX_MAX for `a > 0`, FX_MIN for `a < 0`, 0 for `a == 0`
    (`golden.ops.fx_div`). Restoring division, one quotient bit per cycle for every lane.

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

    #: Quotient bits formed: every unsaturated |quotient| is below 2**FX_BITS.
    QUOTIENT_BITS = N.FX_BITS
    #: Cycles from an accepted request to its result (one per quotient bit, one to finish).
    DIV_CYCLES = QUOTIENT_BITS + 1

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
        # |a| * 2**(FX_FRAC+1) + |b| < 2**(FX_BITS + FX_FRAC + 1); 2|b| <= 2**FX_BITS
        num_shape = unsigned(N.FX_BITS + N.FX_FRAC + 1)
        den_shape = unsigned(N.FX_BITS + 1)

        step = Signal(range(qbits + 1))
        busy = Signal()
        done = Signal()
        m.d.comb += [self.i.ready.eq(~busy & ~done), self.o.valid.eq(done)]
        accept = self.i.valid & self.i.ready

        with m.If(accept):
            m.d.sync += [busy.eq(1), step.eq(qbits - 1)]
        with m.Elif(busy):
            m.d.sync += step.eq(step - 1)
            with m.If(step == 0):
                m.d.sync += [busy.eq(0), done.eq(1)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += done.eq(0)

        for j in range(self._lanes):
            a, b = self.i.payload.a[j], self.i.payload.b[j]
            rem = Signal(num_shape, name=f"rem{j}")
            den = Signal(unsigned(den_shape.width + qbits - 1), name=f"den{j}")   # 2|b| << step
            quo = Signal(unsigned(qbits), name=f"quo{j}")
            over = Signal(name=f"over{j}")      # quotient >= 2**qbits, or b == 0
            neg = Signal(name=f"neg{j}")
            zero = Signal(name=f"zero{j}")      # a == 0 (the quotient is 0, b == 0 included)

            mag_a = Mux(a < 0, -a, a)[:N.FX_BITS]
            mag_b = Mux(b < 0, -b, b)[:N.FX_BITS]
            num = Signal(num_shape, name=f"num{j}")
            d = Signal(den_shape, name=f"d{j}")
            m.d.comb += [num.eq((mag_a << (N.FX_FRAC + 1)) + mag_b), d.eq(mag_b << 1)]
            with m.If(accept):
                m.d.sync += [
                    rem.eq(num),
                    den.eq(d << (qbits - 1)),
                    quo.eq(0),
                    over.eq((b == 0) | (num >= (d << qbits))),
                    neg.eq((a < 0) ^ (b < 0)),
                    zero.eq(a == 0),
                ]
            with m.Elif(busy):
                # restoring division: one quotient bit per cycle, most significant first
                fits = rem >= den
                m.d.sync += [
                    rem.eq(Mux(fits, rem - den, rem)),
                    den.eq(den >> 1),
                    quo.eq(Cat(fits, quo[:-1])),
                ]
            # sign and saturation: |q| > FX_MAX saturates to FX_MAX, |q| > 2**(FX_BITS-1) to FX_MIN
            pos = Mux(over | (quo > N.FX_MAX), N.FX_MAX, quo)
            negv = Mux(over | (quo > -N.FX_MIN), N.FX_MIN, -quo)
            m.d.comb += self.o.payload.data[j].eq(Mux(zero, 0, Mux(neg, negv, pos)))

        return m
