"""Scalar soft-float unit: the per-token SF arithmetic of docs/numerics.md ("Scalar unit (SF)").

Specification: ``golden/ops.py`` (``sf_norm``, ``sf_mul``, ``sf_add``, ``sf_recip``,
``sf_sqrt``, ``sf_rsqrt``, ``sf_shift``) is the definition this unit reproduces bit for bit; the
prose is docs/numerics.md, the widths are spec/numerics.py (``SF_BITS``). An SF value is a pair
(mantissa, exponent) with the mantissa in [2**(SF_BITS-1), 2**SF_BITS) or 0 for zero, value
``mantissa * 2**exponent``; every operation rounds exactly once, half up.

The unit is sequential: it accepts one command, computes for a number of cycles with a shift-and-add
multiplier, a restoring divider, a digit-by-digit square root and a bit-serial normalizer, and then
offers the result. These operations run a few times per token per BitLinear, so area matters and
latency does not.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from spec import numerics as N
from spec.numerics import SF_BITS

__all__ = ["SF_EXP_BITS", "SF_NORM_BITS", "WORST_LATENCY", "Op", "Status", "sf_layout", "command_layout",
           "result_layout", "ScalarUnit"]

#: Default port widths, from the numerics contract (spec.numerics: SF_EXP_BITS, SF_NORM_BITS).
SF_EXP_BITS = N.SF_EXP_BITS
SF_NORM_BITS = N.SF_NORM_BITS


class Op(enum.Enum, shape=3):
    """Operation of a :class:`ScalarUnit` command (golden function in brackets)."""
    MUL = 0     #: a * b                        [sf_mul(a, b)]
    ADD = 1     #: a + b                        [sf_add(a, b)]
    RECIP = 2   #: 1 / a                        [sf_recip(a)]
    SQRT = 3    #: sqrt(a)                      [sf_sqrt(a)]
    RSQRT = 4   #: 1 / sqrt(a)                  [sf_rsqrt(a)]
    NORM = 5    #: integer * 2**a.exponent      [sf_norm(integer, a.exponent)]
    SHIFT = 6   #: a * 2**b.exponent            [sf_shift(a, b.exponent)]


#: Worst-case cycles from a command's transfer to ``result.valid`` at the default widths (ScalarUnit).
WORST_LATENCY = {Op.MUL: 41, Op.ADD: 43, Op.RECIP: 36, Op.SQRT: 34, Op.RSQRT: 67, Op.NORM: 19, Op.SHIFT: 5}


class Status(enum.Enum, shape=2):
    """Outcome of a :class:`ScalarUnit` command."""
    OK = 0          #: the value is exactly the golden result
    DIV_ZERO = 1    #: RECIP or RSQRT of zero (the golden raises); the value saturates to the largest SF
    OVERFLOW = 2    #: the golden exponent is above the port's range; the value saturates to the largest SF
    UNDERFLOW = 3   #: the golden exponent is below the port's range; the value is zero, (0, 0)


def sf_layout(exponent_bits: int = SF_EXP_BITS) -> data.StructLayout:
    """An SF value: ``mantissa`` unsigned(SF_BITS), ``exponent`` signed(exponent_bits)."""
    return data.StructLayout({"mantissa": unsigned(SF_BITS), "exponent": signed(exponent_bits)})


def command_layout(exponent_bits: int = SF_EXP_BITS, norm_bits: int = SF_NORM_BITS) -> data.StructLayout:
    """A :class:`ScalarUnit` command: ``op`` (:class:`Op`), SF operands ``a`` and ``b``, and the
    NORM operand ``integer`` (unsigned(norm_bits)). Fields an operation does not use are ignored."""
    sf = sf_layout(exponent_bits)
    return data.StructLayout({"op": Op, "a": sf, "b": sf, "integer": unsigned(norm_bits)})


def result_layout(exponent_bits: int = SF_EXP_BITS) -> data.StructLayout:
    """A :class:`ScalarUnit` result: ``value`` (SF) and ``status`` (:class:`Status`)."""
    return data.StructLayout({"value": sf_layout(exponent_bits), "status": Status})


class ScalarUnit(wiring.Component):
    """Sequential soft-float unit, one command at a time.

    Parameters
    ----------
    exponent_bits : int
        Width of the signed SF exponent on both streams, 8..32 (default :data:`SF_EXP_BITS`).
    norm_bits : int
        Width of the NORM integer operand, SF_BITS..128 (default :data:`SF_NORM_BITS`).

    Attributes
    ----------
    cmd : In(stream.Signature(command_layout(exponent_bits, norm_bits)))
        Commands. ``op`` selects the operation (:class:`Op`): MUL a*b, ADD a+b, RECIP 1/a,
        SQRT sqrt(a), RSQRT 1/sqrt(a), NORM integer * 2**a.exponent, SHIFT a * 2**b.exponent.
        SF operands must be canonical: mantissa in [2**(SF_BITS-1), 2**SF_BITS) or 0 (zero, any
        exponent); other mantissas give unspecified results.
    result : Out(stream.Signature(result_layout(exponent_bits)))
        One result per command, in command order. ``value`` equals the golden function of
        ``golden/ops.py`` bit for bit when ``status`` is OK, including the golden's handling of
        zeros (MUL with a zero operand gives (0, 0); ADD with a zero operand returns the other
        operand unchanged, its exponent included; SQRT(0) = (0, 0); SHIFT of a zero returns it
        unchanged). Otherwise ``status`` says why: DIV_ZERO (RECIP or RSQRT of zero: the golden
        raises; value (2**SF_BITS - 1, max exponent)), OVERFLOW (exponent above the port's range;
        same saturated value) or UNDERFLOW (exponent below it; value (0, 0)).

    Both streams follow the ``lib.stream`` rules: a transfer happens on a cycle with ``valid`` and
    ``ready`` both high; ``valid`` never waits for ``ready``. ``cmd.ready`` is high exactly while the
    unit is idle, so a command is accepted only after the previous result has been taken.

    Latency (cycles from the command's transfer to ``result.valid``), worst case at the default
    widths: :data:`WORST_LATENCY` (MUL 41, ADD 43, RECIP 36, SQRT 34, RSQRT 67, NORM 19, about one
    more per 8 bits of ``norm_bits``, SHIFT 5). Zero operands take 3 cycles, NORM of 0 5, ADD's
    "exponents differ by more than SF_BITS" case 5. The command is registered before it is decoded (one
    cycle), so no path starts at the ``cmd`` payload; the exponent differences (ADD), the operands'
    zero flags and each operation's starting registers, the compares of the value being normalized,
    and the result's range checks each have a cycle of their own (PREP, NORM_F, CHECK): on a -6
    board all were among the late paths, through the NORM/QNT unit's command mux, the zero compares
    and the op's choice into ``v`` and the result.
    """

    def __init__(self, *, exponent_bits: int = SF_EXP_BITS, norm_bits: int = SF_NORM_BITS):
        if not isinstance(exponent_bits, int) or isinstance(exponent_bits, bool) or \
                not 8 <= exponent_bits <= 32:
            raise TypeError(f"Exponent width must be an integer between 8 and 32, not {exponent_bits!r}")
        if not isinstance(norm_bits, int) or isinstance(norm_bits, bool) or \
                not SF_BITS <= norm_bits <= 128:
            raise TypeError(f"NORM operand width must be an integer between {SF_BITS} and 128, not {norm_bits!r}")
        self._exponent_bits = exponent_bits
        self._norm_bits = norm_bits
        super().__init__({
            "cmd": In(stream.Signature(command_layout(exponent_bits, norm_bits))),
            "result": Out(stream.Signature(result_layout(exponent_bits))),
        })

    @property
    def exponent_bits(self) -> int:
        return self._exponent_bits

    @property
    def norm_bits(self) -> int:
        return self._norm_bits

    def elaborate(self, platform):
        m = Module()
        B = SF_BITS
        eb = self._exponent_bits
        # internal exponents: sums of two port exponents plus normalization shifts never wrap
        ew = eb + 8
        # working value: NORM's integer, ADD's (a.m << 24) + b.m (2B+1 bits) or MUL's 2B-bit product
        vw = max(self._norm_bits, 2 * B + 2)
        e_max = (1 << (eb - 1)) - 1
        e_min = -(1 << (eb - 1))

        op = Signal(Op)
        a_m = Signal(B)
        a_e = Signal(signed(ew))
        b_m = Signal(B)
        b_e = Signal(signed(ew))
        rsqrt_recip = Signal()          # RSQRT: the square root is done, the reciprocal follows
        to_recip = Signal()             # RANGE starts RSQRT's reciprocal (registered in CHECK)

        v = Signal(vw)                  # value being normalized; MUL product; SQRT radicand
        e = Signal(signed(ew))          # exponent of v
        rnd = Signal()                  # last bit shifted out of v (round half up needs only this bit)
        e_over, e_under = Signal(), Signal()    # e > e_max, e < e_min (registered in CHECK)
        q = Signal(B + 2)               # RECIP quotient, SQRT root
        r = Signal(B + 4)               # RECIP / SQRT remainder
        cnt = Signal(range(max(vw, 2 * B) + 1))

        res = Signal(result_layout(eb))
        m.d.comb += self.result.payload.eq(res)

        cq = Signal(command_layout(eb, self._norm_bits))       # the command being decoded
        d_ab = Signal(signed(eb + 2))                               # ADD: a.exponent - b.exponent
        d_ba = Signal(signed(eb + 2))                               # and b.exponent - a.exponent
        a_zero, b_zero = Signal(), Signal()                         # a.mantissa == 0, b.mantissa == 0
        cmd = cq
        sat = [res.value.mantissa.eq((1 << B) - 1), res.value.exponent.eq(e_max)]

        # v's compares for NORM, as registers (NORM_F loads them, NORM keeps them v's)
        f_zero, f_hi8, f_hi1, f_lo8, f_top = Signal(), Signal(), Signal(), Signal(), Signal()

        def norm_flags(x):
            """v == 0, v >= 2**(B+8), v >= 2**B, v < 2**(B-8), v's bit B-1, for a v of value x."""
            return [f_zero.eq(x == 0), f_hi8.eq(x[B + 8:] != 0), f_hi1.eq(x[B:] != 0),
                    f_lo8.eq(x[B - 8:] == 0), f_top.eq(x[B - 1])]

        def recip_init():
            # floor(2**(2B) / mant) by restoring division: the quotient has at most B+2 bits, and
            # the partial remainder before its top bit is 2**(2B) >> (B+2) < mant
            return [q.eq(0), r.eq(1 << (B - 2)), cnt.eq(B + 2)]

        def start_recip(mant, exp):
            return [a_m.eq(mant), a_e.eq(exp), *recip_init()]

        with m.FSM():
            with m.State("IDLE"):
                # the command is registered first: nothing is computed from the stream's payload.
                # The register loads in every idle cycle, not on `valid` (the command's valid, late
                # from the NORM/QNT sequence, into this 130-bit register's enable was a -6 late path)
                m.d.comb += self.cmd.ready.eq(1)
                m.d.sync += cq.eq(self.cmd.payload)
                with m.If(self.cmd.valid):
                    m.next = "PREP"

            with m.State("PREP"):
                # from the registered command (not from the payload's mux): the exponent differences,
                # the operands' zero flags, and each operation's starting v, e and counters, so that
                # DECODE chooses from flags and nothing wide (a -6 build's worst path ran from the
                # command through the zero compares and the op's choice into v)
                m.d.sync += [d_ab.eq(cmd.a.exponent - cmd.b.exponent), d_ba.eq(cmd.b.exponent - cmd.a.exponent),
                             a_zero.eq(cmd.a.mantissa == 0), b_zero.eq(cmd.b.mantissa == 0),
                             q.eq(0), rnd.eq(0)]
                with m.Switch(cmd.op):
                    with m.Case(Op.MUL):
                        # product register: multiplier in the low half, accumulated above
                        m.d.sync += [v.eq(cmd.b.mantissa), cnt.eq(B), e.eq(cmd.a.exponent + cmd.b.exponent)]
                    with m.Case(Op.RECIP):
                        m.d.sync += recip_init()        # a_m, a_e: DECODE loads them for every op
                    with m.Case(Op.SQRT, Op.RSQRT):
                        # make the exponent even (m <<= 1), radicand m << B (2B+2 bits)
                        odd = cmd.a.exponent[0]
                        m.d.sync += [
                            v.eq(Mux(odd, cmd.a.mantissa << (B + 1), cmd.a.mantissa << B)),
                            e.eq(((cmd.a.exponent - odd) >> 1) - B // 2),
                            r.eq(0), cnt.eq(B + 1),
                        ]
                    with m.Case(Op.NORM):
                        m.d.sync += [v.eq(cmd.integer), e.eq(cmd.a.exponent)]
                    with m.Case(Op.SHIFT):
                        m.d.sync += [v.eq(cmd.a.mantissa), e.eq(cmd.a.exponent + cmd.b.exponent)]
                m.next = "DECODE"

            with m.State("DECODE"):
                m.d.sync += [
                    op.eq(cmd.op),
                    a_m.eq(cmd.a.mantissa), a_e.eq(cmd.a.exponent),
                    b_m.eq(cmd.b.mantissa), b_e.eq(cmd.b.exponent),
                    rsqrt_recip.eq(0),
                    res.status.eq(Status.OK),
                ]
                with m.Switch(cmd.op):
                    with m.Case(Op.MUL):
                        with m.If(a_zero | b_zero):
                            m.d.sync += res.value.eq(0)
                            m.next = "OUT"
                        with m.Else():
                            m.next = "MUL"
                    with m.Case(Op.ADD):
                        a_big = ~d_ab[-1]
                        big = Mux(a_big, cmd.a.as_value(), cmd.b.as_value())
                        small = Mux(a_big, cmd.b.as_value(), cmd.a.as_value())
                        big = data.View(sf_layout(eb), big)
                        small = data.View(sf_layout(eb), small)
                        with m.If(a_zero):
                            m.d.sync += res.value.eq(cmd.b)
                            m.next = "OUT"
                        with m.Elif(b_zero):
                            m.d.sync += res.value.eq(cmd.a)
                            m.next = "OUT"
                        with m.Else():
                            # the larger operand in a, the smaller in b, the difference in d_ab
                            m.d.sync += [a_m.eq(big.mantissa), a_e.eq(big.exponent),
                                         b_m.eq(small.mantissa), b_e.eq(small.exponent),
                                         d_ab.eq(Mux(a_big, d_ab, d_ba))]
                            m.next = "ADD_FAR"
                    with m.Case(Op.RECIP):
                        with m.If(a_zero):
                            m.d.sync += sat + [res.status.eq(Status.DIV_ZERO)]
                            m.next = "OUT"
                        with m.Else():
                            m.next = "DIV"
                    with m.Case(Op.SQRT, Op.RSQRT):
                        with m.If(a_zero & (cmd.op == Op.SQRT)):
                            m.d.sync += res.value.eq(0)
                            m.next = "OUT"
                        with m.Elif(a_zero):
                            m.d.sync += sat + [res.status.eq(Status.DIV_ZERO)]
                            m.next = "OUT"
                        with m.Else():
                            m.next = "SQRT"
                    with m.Case(Op.NORM):
                        m.next = "NORM_F"
                    with m.Case(Op.SHIFT):
                        with m.If(a_zero):
                            m.d.sync += res.value.eq(cmd.a)
                            m.next = "OUT"
                        with m.Else():
                            m.next = "CHECK"
                    with m.Default():
                        # an undefined op code: answer (0, 0) rather than hang
                        m.d.sync += res.value.eq(0)
                        m.next = "OUT"

            with m.State("MUL"):
                # shift-and-add: add a where the multiplier's current bit is set, shift right
                acc = v[B:2 * B] + Mux(v[0], a_m, 0)
                m.d.sync += [v.eq(Cat(v[1:B], acc)), cnt.eq(cnt - 1)]
                with m.If(cnt == 1):
                    m.d.sync += rnd.eq(0)
                    m.next = "NORM_F"

            with m.State("ADD_FAR"):
                with m.If(d_ab > B):
                    # the smaller operand is below half an ulp: the larger one is the rounded sum
                    m.d.sync += [res.value.mantissa.eq(a_m), res.value.exponent.eq(a_e)]
                    m.next = "OUT"
                with m.Else():
                    m.d.sync += [v.eq(a_m), e.eq(b_e), cnt.eq(d_ab)]
                    m.next = "ALIGN"

            with m.State("ALIGN"):
                # (big << d) + small, exact, at the small operand's exponent
                with m.If(cnt == 0):
                    m.d.sync += [v.eq(v + b_m), rnd.eq(0)]
                    m.next = "NORM_F"
                with m.Else():
                    m.d.sync += [v.eq(v << 1), cnt.eq(cnt - 1)]

            with m.State("DIV"):
                r2 = Cat(0, r[:B + 1])          # 2r < 2 * a_m, B+2 bits
                ge = r2 >= a_m
                m.d.sync += [r.eq(Mux(ge, r2 - a_m, r2)), q.eq(Cat(ge, q)), cnt.eq(cnt - 1)]
                with m.If(cnt == 1):
                    m.next = "DIV_END"

            with m.State("DIV_END"):
                # sf_norm(floor(2**(2B) / m), -2B - e) rounds exactly like the golden
                # sf_norm((floor(2**(2B) / m) + 1) >> 1, -(2B-1) - e): the quotient has B+1 or B+2 bits
                m.d.sync += [v.eq(q), e.eq(-2 * B - a_e), rnd.eq(0)]
                m.next = "NORM_F"

            with m.State("SQRT"):
                # one root bit per cycle from the radicand's top two bits: r' = 4r + pair,
                # t = 4q + 1; r' >= t -> subtract, root bit 1
                pair = v[2 * B:2 * B + 2]
                r4 = Cat(pair, r[:B + 2])
                t = Cat(Const(1, 2), q)
                ge = r4 >= t
                m.d.sync += [r.eq(Mux(ge, r4 - t, r4)), q.eq(Cat(ge, q)), v.eq(v << 2), cnt.eq(cnt - 1)]
                with m.If(cnt == 1):
                    m.next = "SQRT_END"

            with m.State("SQRT_END"):
                m.d.sync += [v.eq(q), rnd.eq(0)]
                m.next = "NORM_F"

            with m.State("NORM_F"):
                # v's flags, registered: NORM chooses from them (the wide compares of v had driven
                # v's choice and the result's enable in one cycle, a -6 build's worst path)
                m.d.sync += norm_flags(v)
                m.next = "NORM"

            with m.State("NORM"):
                # bring v into [2**(B-1), 2**B): shift right keeping the last bit shifted out, or
                # left (only when nothing was shifted out); 8 bits at a time where there is room.
                # The flags are v's (registered); each branch loads the flags of the v it makes,
                # computed from this v's bits (a shifted v's compares are v's bits, shifted)
                with m.If(f_zero):
                    m.d.sync += res.value.eq(0)
                    m.next = "OUT"
                with m.Elif(f_hi8):
                    m.d.sync += [rnd.eq(v[7]), v.eq(v >> 8), e.eq(e + 8), *norm_flags(v >> 8)]
                with m.Elif(f_hi1):
                    m.d.sync += [rnd.eq(v[0]), v.eq(v >> 1), e.eq(e + 1), *norm_flags(v >> 1)]
                with m.Elif(f_lo8):
                    m.d.sync += [v.eq(v << 8), e.eq(e - 8), *norm_flags((v << 8)[:vw])]
                with m.Elif(~f_top):
                    m.d.sync += [v.eq(v << 1), e.eq(e - 1), *norm_flags((v << 1)[:vw])]
                with m.Else():
                    # round half up: v takes the sum whatever it is (the carry chain does not select
                    # among v's sources: a -6 build's late path); a carry out (v = 2**B) is
                    # renormalized to 2**(B-1), e + 1 in CHECK, selected by the register bit v[B]
                    m.d.sync += v.eq(v[:B] + rnd)
                    m.next = "CHECK"

            with m.State("CHECK"):
                # the exponent's range, registered: RANGE loads the result from flags, not compares
                # (of e + 1 where rounding carried out: v = 2**B stands for 2**(B-1) * 2, v[:B] = 0,
                # so the mantissa is v[:B] | v[B] << (B-1), an OR where v is read, not a source of v)
                with m.If(v[B]):
                    m.d.sync += e.eq(e + 1)
                m.d.sync += [e_over.eq(Mux(v[B], e >= e_max, e > e_max)),
                             e_under.eq(Mux(v[B], e < e_min - 1, e < e_min)),
                             to_recip.eq((op == Op.RSQRT) & ~rsqrt_recip)]
                m.next = "RANGE"

            with m.State("RANGE"):
                mant = v[:B] | (v[B] << (B - 1))
                with m.If(to_recip):
                    # the square root is in range (its exponent is about half the operand's)
                    m.d.sync += start_recip(mant, e) + [rsqrt_recip.eq(1)]
                    m.next = "DIV"
                with m.Elif(e_over):
                    m.d.sync += sat + [res.status.eq(Status.OVERFLOW)]
                    m.next = "OUT"
                with m.Elif(e_under):
                    m.d.sync += [res.value.eq(0), res.status.eq(Status.UNDERFLOW)]
                    m.next = "OUT"
                with m.Else():
                    m.d.sync += [res.value.mantissa.eq(mant), res.value.exponent.eq(e)]
                    m.next = "OUT"

            with m.State("OUT"):
                m.d.comb += self.result.valid.eq(1)
                with m.If(self.result.ready):
                    m.next = "IDLE"

        return m
