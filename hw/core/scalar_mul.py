"""The sequencer's multiplier: MULS, FMUL and LDE's address on one 17x17 product per cycle.

These three instructions are rare (a few per layer), so instead of a 64x64 product in the issue
cycle (16 DSPs, about 52 MHz on an ECP5 -6) they share one DSP-sized multiplier and take a few
cycles each while the PC waits (bit for bit ``golden.machine``'s results):

* MULS ``Ad = low 64 bits of Ab * Ac``: the partial products of the 17-bit limbs x_i * y_j with
  i + j <= 3 (the others only reach bits >= 64), 10 of them;
* FMUL ``Fd = sf_mul(Fb, Fc)``: the 24-bit mantissas' product from 4 partial products, then the
  rounding half up to SF_BITS and the exponent in stages of their own (``golden.ops.sf_mul``);
* LDE's address ``A[base] + offset + 2 * A[At] * VL``: 6 partial products (VL is one limb).

Pipeline, one step per cycle: the limbs selected and registered, their product registered (a
:class:`hw.core.arith.Mul18`: on ECP5 one MULT18X18D with its own output register), the product
shifted by a multiple of 17 and added into the 64-bit accumulator; after the last step's sum, one
or two stages of rounding or addition, then ``ready`` until ``ack``.
A MULS takes ``CYCLES[MulOp.MULS]`` cycles from ``start`` to ``ready``.
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

from spec import numerics as N

from .arith import LIMB, Mul18
from .iface import A_BITS, sf_layout

__all__ = ["CYCLES", "ScalarMultiplier", "MulOp"]

N_LIMBS = -(-A_BITS // LIMB)        # 4 limbs of a 64-bit operand
#: the partial products in the order they are formed: a prefix serves each operation
STEPS = ((0, 0), (1, 0), (0, 1), (1, 1), (2, 0), (3, 0), (0, 2), (2, 1), (1, 2), (0, 3))


class MulOp(enum.Enum, shape=2):
    MULS = 0
    FMUL = 1        #: x, y: the SF mantissas (SF_BITS = 24 bits: limbs 0 and 1)
    LDE = 2         #: y: VL (one limb)


#: how many of STEPS each operation needs
STEP_COUNT = {MulOp.MULS: len(STEPS), MulOp.FMUL: 4, MulOp.LDE: 6}
_DRAIN = 2           # cycles after the last step is selected: its limbs registered, its product registered
_POST = {MulOp.MULS: 1, MulOp.FMUL: 2, MulOp.LDE: 1}
#: cycles from the cycle `start` is high to the first cycle `ready` is high: the steps, the drain,
#: the last accumulate, the post stages
CYCLES = {op: STEP_COUNT[op] + _DRAIN + 1 + _POST[op] for op in MulOp}

assert all(i + j < N_LIMBS for i, j in STEPS) and len(set(STEPS)) == len(STEPS)
assert {(i, j) for i, j in STEPS[:STEP_COUNT[MulOp.FMUL]]} == {(i, j) for i in range(2) for j in range(2)}
assert {(i, 0) for i in range(N_LIMBS)} <= set(STEPS[:STEP_COUNT[MulOp.LDE]])
assert -(-N.SF_BITS // LIMB) == 2 and N.SF_BITS * 2 <= A_BITS


class ScalarMultiplier(wiring.Component):
    """See the module docstring.

    Ports: ``start`` (one cycle; operands sampled then), ``op``, ``x``, ``y`` (MULS: A registers;
    FMUL: the mantissas, zero-extended; LDE: A[At] and VL), ``base`` (LDE: A[base] + offset),
    ``fb``/``fc`` (FMUL's operands, for their exponents and zeros); ``busy`` from the cycle after
    ``start`` until ``ready``; ``ready`` holds with ``result`` (MULS, LDE) or ``f_result`` (FMUL)
    until ``ack``.
    """

    def __init__(self):
        super().__init__({
            "start": In(1), "op": In(MulOp), "x": In(signed(A_BITS)), "y": In(signed(A_BITS)),
            "base": In(signed(A_BITS)), "fb": In(sf_layout()), "fc": In(sf_layout()),
            "ack": In(1),
            "busy": Out(1), "ready": Out(1), "result": Out(signed(A_BITS)), "f_result": Out(sf_layout()),
        })

    def elaborate(self, platform):
        m = Module()
        B = N.SF_BITS
        op = Signal(MulOp)
        x, y, base = Signal(A_BITS), Signal(A_BITS), Signal(A_BITS)
        f_zero = Signal()
        e_sum = Signal(signed(N.SF_EXP_BITS + 1))
        step = Signal(range(len(STEPS) + 1))
        last = Signal(range(len(STEPS) + 1))
        stepping = Signal()
        drain = Signal(range(_DRAIN + 1))
        post = Signal(range(3))

        with m.If(self.start):
            m.d.sync += [op.eq(self.op), x.eq(self.x), y.eq(self.y), base.eq(self.base),
                         f_zero.eq((self.fb.mantissa == 0) | (self.fc.mantissa == 0)),
                         e_sum.eq(self.fb.exponent + self.fc.exponent),
                         step.eq(0), stepping.eq(1), self.busy.eq(1),
                         last.eq(Mux(self.op == MulOp.FMUL, STEP_COUNT[MulOp.FMUL],
                                     Mux(self.op == MulOp.LDE, STEP_COUNT[MulOp.LDE], STEP_COUNT[MulOp.MULS])))]

        # stage 1: the limbs of this step
        xs = Array(x[LIMB * i:LIMB * (i + 1)] for i in range(N_LIMBS))
        ys = Array(y[LIMB * j:LIMB * (j + 1)] for j in range(N_LIMBS))
        si = Array(Const(i, 2) for i, _ in STEPS)
        sj = Array(Const(j, 2) for _, j in STEPS)
        la, lb = Signal(LIMB), Signal(LIMB)
        sh1, v1 = Signal(3), Signal()
        m.d.sync += v1.eq(stepping)
        with m.If(stepping):
            m.d.sync += [la.eq(xs[si[step]]), lb.eq(ys[sj[step]]), sh1.eq(si[step] + sj[step]), step.eq(step + 1)]
            with m.If(step + 1 == last):
                m.d.sync += [stepping.eq(0), drain.eq(_DRAIN)]
        # stage 2: the product (one DSP, its output register the stage's register)
        m.submodules.mul = mul = Mul18(unsigned(LIMB), unsigned(LIMB), name="smul_p")
        m.d.comb += [mul.a.eq(la), mul.b.eq(lb), mul.en.eq(1)]
        p, sh2, v2 = mul.p, Signal(3), Signal()
        m.d.sync += [sh2.eq(sh1), v2.eq(v1)]
        # stage 3: accumulate (the low 64 bits)
        acc = Signal(A_BITS)
        with m.If(self.start):
            m.d.sync += acc.eq(0)
        with m.Elif(v2):
            m.d.sync += acc.eq(acc + Array((p << (LIMB * k))[:A_BITS] for k in range(N_LIMBS))[sh2])
        with m.If(drain != 0):
            m.d.sync += drain.eq(drain - 1)
            with m.If(drain == 1):
                m.d.sync += post.eq(1)

        # the post stages: LDE's address add, MULS's copy, FMUL's rounding then exponent
        top = Signal()
        r = Signal(unsigned(B + 1))
        with m.If(post == 1):
            m.d.sync += [self.result.eq(acc), post.eq(0), self.busy.eq(0), self.ready.eq(1)]
            with m.If(op == MulOp.LDE):
                m.d.sync += self.result.eq(base + (acc << 1)[:A_BITS])
            with m.If(op == MulOp.FMUL):
                # a product of two mantissas in [2**(B-1), 2**B) has 2B-1 or 2B bits; round half up to B
                pm = acc[:2 * B]
                m.d.sync += [top.eq(pm[2 * B - 1]),
                             r.eq(Mux(pm[2 * B - 1], (pm + (1 << (B - 1))) >> B, (pm + (1 << (B - 2))) >> (B - 1))),
                             post.eq(2), self.busy.eq(1), self.ready.eq(0)]
        with m.If(post == 2):
            carry = r[B]
            m.d.sync += [post.eq(0), self.busy.eq(0), self.ready.eq(1)]
            with m.If(f_zero):
                m.d.sync += [self.f_result.mantissa.eq(0), self.f_result.exponent.eq(0)]
            with m.Else():
                m.d.sync += [self.f_result.mantissa.eq(Mux(carry, r >> 1, r)),
                             self.f_result.exponent.eq(e_sum + Mux(top, B, B - 1) + carry)]
        with m.If(self.ack):
            m.d.sync += self.ready.eq(0)
        return m
