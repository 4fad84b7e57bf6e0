"""Vector reductions and the quantizer of NORM and QNT (docs/numerics.md, "Reductions and norms").

Specification: ``golden/ops.py`` is the definition reproduced bit for bit —
``mean_square`` (its integer part: the pre-shift k and the exact sum of squares), the maximum
``M = max|t * mant|`` and the int8 codes of ``quantize``. Widths come from spec/numerics.py
(FX_BITS, GAMMA_BITS, SUMSQ_IN_BITS, CODE_MAX, SF_NORM_BITS); sizes from spec/accel.py.

The scalar soft-float arithmetic that turns these integers into ``rms_inv`` and the dequantization
scale (``sf_norm``, ``sf_mul``, ``sf_rsqrt`` ...) is :class:`hw.core.sfu.ScalarUnit`'s job; nothing
here rounds.

Two components:

* :class:`ReductionUnit` — max|t|, max|t * mant| and the sum of squares. The pre-shift k of the
  sum of squares depends on the maximum of the *whole* vector, so the vector is streamed twice
  (two packets): a MAX pass, then a SUMSQ pass of the same vector. No buffer.
* :class:`QuantizeUnit` — the codes ``sign(p) * floor(127 |p| / M + 1/2)``, p = t * mant, as an
  exact restoring division unrolled into a pipeline (one quotient bit per stage), one beat per
  cycle.

Beats: every input beat carries ``vector_lanes`` elements and a ``count``: elements
``[0, count)`` are valid, the others are ignored (a vector whose length is not a multiple of the
lanes ends with a partial beat; any beat may be partial). ``last`` marks a packet's final beat.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream
from amaranth.lib.wiring import In, Out

from spec import numerics as N
from spec.accel import AccelConfig

from .common import LaneComponent

__all__ = ["QUANT_LATENCY", "Pass", "QuantizeUnit", "ReductionUnit", "quantize_in_layout",
           "quantize_out_layout", "reduce_in_layout", "reduce_out_layout"]

FX = signed(N.FX_BITS)
MANT = signed(N.GAMMA_BITS)
#: |t| of an FX value: up to 2**(FX_BITS-1) (FX_MIN's magnitude)
ABS = unsigned(N.FX_BITS)
#: |t * mant|: up to 2**(FX_BITS-1) * 2**(GAMMA_BITS-1)
PABS = unsigned(N.FX_BITS + N.GAMMA_BITS - 1)
#: the pre-shift k = max(0, bitlen(max|t|) - SUMSQ_IN_BITS), at most FX_BITS - SUMSQ_IN_BITS
SHIFT = unsigned((N.FX_BITS - N.SUMSQ_IN_BITS).bit_length())
SUMSQ = unsigned(N.SF_NORM_BITS)
CODE = signed(8)

#: Quotient bits of a code: |code| <= CODE_MAX < 2**7.
_QBITS = N.CODE_MAX.bit_length()
#: Register stages of :class:`QuantizeUnit` from an accepted beat to its codes (no stalls):
#: one for the product and the dividend, one per quotient bit.
QUANT_LATENCY = 1 + _QBITS


class Pass(enum.Enum, shape=1):
    """Which pass over the vector a :class:`ReductionUnit` packet is."""
    MAX = 0      #: max|t| and max|t * mant|; sets the pre-shift k for the next SUMSQ packet
    SUMSQ = 1    #: sum((|t| >> k)**2) with the k of the preceding MAX packet


def _count_shape(lanes: int):
    return unsigned((lanes).bit_length())


def reduce_in_layout(lanes: int) -> data.StructLayout:
    """Payload of `ReductionUnit.i`: ``pass_`` (:class:`Pass`), ``data`` (`lanes` FX), ``mant``
    (`lanes` int16 gamma mantissas, MAX pass only; drive 0 when there is no gamma), ``count``
    (valid elements, ``[0, count)``, 0..lanes) and ``last``."""
    return data.StructLayout({
        "pass_": Pass,
        "data": data.ArrayLayout(FX, lanes),
        "mant": data.ArrayLayout(MANT, lanes),
        "count": _count_shape(lanes),
        "last": 1,
    })


def reduce_out_layout(vlen: int) -> data.StructLayout:
    """Payload of `ReductionUnit.o`: ``pass_``, ``n`` (valid elements in the packet), ``max_abs``
    (max|t|), ``shift`` (k), ``pmax`` (max|t * mant|) and ``sumsq``."""
    return data.StructLayout({
        "pass_": Pass,
        "n": unsigned(vlen.bit_length()),
        "max_abs": ABS,
        "shift": SHIFT,
        "pmax": PABS,
        "sumsq": SUMSQ,
    })


def _abs(v, shape):
    return Mux(v < 0, -v, v)[:shape.width]


def _max(a, b):
    return Mux(a > b, a, b)


def _tree(items, fn):
    while len(items) > 1:
        items = [fn(items[i], items[i + 1]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
    return items[0]



class ReductionUnit(LaneComponent):
    """The vector side of NORM and QNT: max|t|, max|t * mant| and the exact sum of squares.

    A vector is sent as two packets (the register file streams it twice): a :attr:`Pass.MAX`
    packet, then a :attr:`Pass.SUMSQ` packet of the same elements. The pre-shift
    ``k = max(0, bitlen(max|t|) - SUMSQ_IN_BITS)`` of ``golden.ops.mean_square`` needs the
    maximum of the whole vector before the first square, which is why there are two passes rather
    than a buffer. A QNT that only needs M sends the MAX packet alone.

    Parameters
    ----------
    config : AccelConfig
        ``vector_lanes`` (elements per beat) and ``vlen`` (longest vector; sizes ``n``).

    Attributes
    ----------
    i : In(stream.Signature(reduce_in_layout(vector_lanes)))
        Beats. Elements ``[0, count)`` of ``data`` (and ``mant``) are valid; ``last`` ends a
        packet; ``pass_`` must be the same on every beat of a packet.
    o : Out(stream.Signature(reduce_out_layout(vlen)))
        One result per packet, in order, for the valid elements of that packet:

        ========  =================================================================================
        n         number of valid elements (sum of ``count``)
        max_abs   max|t| of the last MAX packet (0 for none or an all-zero vector)
        shift     k = max(0, bitlen(max_abs) - SUMSQ_IN_BITS)
        pmax      max|t * mant| of the last MAX packet: ``M`` of ``quantize``
        sumsq     SUMSQ packet: sum((|t| >> shift)**2), exact; MAX packet: 0
        ========  =================================================================================

        so ``mean_square(t) = sf_mul(sf_norm(sumsq, 2*shift - 2*FX_FRAC), sf_inv_int(n))``
        (zero when ``max_abs == 0``) — the ScalarUnit's NORM and MUL.

    Timing: one beat per cycle; the result is offered the cycle after the ``last`` beat and
    ``i.ready`` is low while a result waits (``i.ready = ~o.valid``), so consecutive packets
    cost one extra cycle each when ``o`` does not stall. ``o.valid`` never depends on ``o.ready``.

    Raises
    ------
    TypeError
        If `config` is not an `AccelConfig`.
    ValueError
        If ``config.fx_bits`` is not FX_BITS.

    ``sumsq`` is SF_NORM_BITS wide: even VL_MAX squares below 2**(2*SUMSQ_IN_BITS) fit (tested).
    """

    def __init__(self, config: AccelConfig):
        super().__init__(config, lambda lanes: {
            "i": In(stream.Signature(reduce_in_layout(lanes))),
            "o": Out(stream.Signature(reduce_out_layout(config.vlen))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        i, o = self.i.payload, self.o.payload

        max_abs = Signal(ABS)
        pmax = Signal(PABS)
        shift = Signal(SHIFT)
        sumsq = Signal(SUMSQ)
        n = Signal.like(o.n)
        fresh = Signal(init=1)          # the next beat starts a packet

        # per-lane magnitudes of the beat, invalid lanes forced to 0 (0 never changes a max or a sum)
        mags, pmags, squares = [], [], []
        for j in range(lanes):
            ok = j < i.count
            a = Signal(ABS, name=f"abs{j}")
            p = Signal(PABS, name=f"pabs{j}")
            s = Signal(unsigned(N.SUMSQ_IN_BITS), name=f"shifted{j}")
            m.d.comb += [
                a.eq(Mux(ok, _abs(i.data[j], ABS), 0)),
                p.eq(Mux(ok, _abs(i.data[j] * i.mant[j], PABS), 0)),
                # shift is the k of the MAX packet: |t| >> k < 2**SUMSQ_IN_BITS for that vector
                s.eq(a >> shift),
            ]
            mags.append(a)
            pmags.append(p)
            squares.append(s * s)
        beat_max = _tree(mags, _max)
        beat_pmax = _tree(pmags, _max)
        beat_ss = _tree(squares, lambda x, y: x + y)

        # k = max(0, bitlen(v) - SUMSQ_IN_BITS): the highest set bit at or above SUMSQ_IN_BITS
        new_max = Signal(ABS)
        new_shift = Signal(SHIFT)
        m.d.comb += new_max.eq(_max(Mux(fresh, 0, max_abs), beat_max))
        for b in range(N.SUMSQ_IN_BITS, N.FX_BITS):
            with m.If(new_max[b]):
                m.d.comb += new_shift.eq(b + 1 - N.SUMSQ_IN_BITS)

        m.d.comb += [
            self.i.ready.eq(~self.o.valid),
            o.max_abs.eq(max_abs),
            o.pmax.eq(pmax),
            o.shift.eq(shift),
            o.sumsq.eq(sumsq),
            o.n.eq(n),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                fresh.eq(i.last),
                self.o.valid.eq(i.last),
                o.pass_.eq(i.pass_),
                n.eq(Mux(fresh, 0, n) + i.count),
            ]
            with m.If(i.pass_ == Pass.MAX):
                m.d.sync += [
                    max_abs.eq(new_max),
                    shift.eq(new_shift),
                    pmax.eq(_max(Mux(fresh, 0, pmax), beat_pmax)),
                    sumsq.eq(0),
                ]
            with m.Else():
                m.d.sync += sumsq.eq(Mux(fresh, 0, sumsq) + beat_ss)

        return m


def quantize_in_layout(lanes: int) -> data.StructLayout:
    """Payload of `QuantizeUnit.i`: ``data`` (`lanes` FX), ``mant`` (`lanes` int16), ``m`` (M, the
    packet's max|t * mant|), ``count`` (valid elements ``[0, count)``) and ``last``."""
    return data.StructLayout({
        "data": data.ArrayLayout(FX, lanes),
        "mant": data.ArrayLayout(MANT, lanes),
        "m": PABS,
        "count": _count_shape(lanes),
        "last": 1,
    })


def quantize_out_layout(lanes: int) -> data.StructLayout:
    """Payload of `QuantizeUnit.o`: ``codes`` (`lanes` int8), ``count`` and ``last`` of the beat."""
    return data.StructLayout({
        "codes": data.ArrayLayout(CODE, lanes),
        "count": _count_shape(lanes),
        "last": 1,
    })


class QuantizeUnit(LaneComponent):
    """QNT's codes: ``sign(p) * floor(CODE_MAX * |p| / M + 1/2)``, p = t * mant, exactly.

    That is ``golden.ops.quantize``'s ``(2*CODE_MAX*|p| + M) // (2*M)`` with its sign, and 0
    everywhere when ``M == 0``. The quotient is below 2**7 because ``|p| <= M``, so a restoring
    division with seven compare-subtract steps is exact; the steps are unrolled into a pipeline
    (one quotient bit per stage, every lane its own divider), so there is no reciprocal to
    precompute and no correction step.

    Parameters
    ----------
    config : AccelConfig
        Only ``vector_lanes`` is used.

    Attributes
    ----------
    i : In(stream.Signature(quantize_in_layout(vector_lanes)))
        Beats of t and gamma mantissas with ``m`` = M = max|t * mant| over the whole vector
        (``ReductionUnit``'s ``pmax``), the same on every beat of a vector. A valid element with
        ``|t * mant| > M`` breaks the contract (its code is unspecified).
    o : Out(stream.Signature(quantize_out_layout(vector_lanes)))
        One beat of codes per input beat, in order, with its ``count`` and ``last``; codes of
        lanes at or above ``count`` are 0.

    Timing: fully pipelined, one beat per cycle; codes leave :data:`QUANT_LATENCY` cycles after
    their beat when ``o`` does not stall. ``i.ready`` depends combinationally on ``o.ready``
    (empty stages still fill); ``o.valid`` never depends on ``o.ready``.

    Raises
    ------
    TypeError
        If `config` is not an `AccelConfig`.
    ValueError
        If ``config.fx_bits`` is not FX_BITS.
    """

    def __init__(self, config: AccelConfig):
        super().__init__(config, lambda lanes: {
            "i": In(stream.Signature(quantize_in_layout(lanes))),
            "o": Out(stream.Signature(quantize_out_layout(lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        stages = QUANT_LATENCY

        # Stage enables as in VectorUnit: stage k loads when empty or when stage k+1 loads.
        valid = [Signal(name=f"valid{k}") for k in range(1, stages + 1)]
        en = [Signal(name=f"en{k}") for k in range(1, stages + 1)]
        for k in range(stages):
            nxt = self.o.ready if k == stages - 1 else en[k + 1]
            m.d.comb += en[k].eq(~valid[k] | nxt)
            with m.If(en[k]):
                m.d.sync += valid[k].eq(self.i.valid if k == 0 else valid[k - 1])
        m.d.comb += [self.i.ready.eq(en[0]), self.o.valid.eq(valid[-1])]

        def stage(k: int, name: str, shape, value):
            """A register of stage k (1-based) loading `value` when the stage advances."""
            reg = Signal(shape, name=f"{name}_s{k}")
            with m.If(en[k - 1]):
                m.d.sync += reg.eq(value)
            return reg

        i = self.i.payload
        count, last = i.count, i.last
        for k in range(1, stages + 1):
            count = stage(k, "count", _count_shape(lanes), count)
            last = stage(k, "last", 1, last)
        m.d.comb += [self.o.payload.count.eq(count), self.o.payload.last.eq(last)]

        # dividend 2*CODE_MAX*|p| + M < 2**8 * M, divisor 2*M (all lanes share it)
        num_shape = unsigned(PABS.width + 8)
        den_shape = unsigned(PABS.width + 1)
        den = stage(1, "den", den_shape, i.m << 1)
        zero = stage(1, "zero", 1, i.m == 0)
        dens, zeros = [den], [zero]
        for k in range(2, stages + 1):
            dens.append(stage(k, "den", den_shape, dens[-1]))
            zeros.append(stage(k, "zero", 1, zeros[-1]))

        for j in range(lanes):
            ok = j < i.count
            p = Signal(signed(N.FX_BITS + N.GAMMA_BITS), name=f"p{j}")
            m.d.comb += p.eq(i.data[j] * i.mant[j])
            # lanes past count divide 0 + M by 2M: quotient 0, so their code is 0
            rem = stage(1, f"rem{j}", num_shape, Mux(ok, 2 * N.CODE_MAX * _abs(p, PABS), 0) + i.m)
            neg = stage(1, f"neg{j}", 1, ok & (p < 0))
            quo = Signal(unsigned(0), name=f"quo{j}_s1")
            # stage 1 + s: quotient bit b = _QBITS - s, most significant first
            for s in range(1, _QBITS + 1):
                b = _QBITS - s
                step = dens[s - 1] << b
                fits = rem >= step
                rem = stage(1 + s, f"rem{j}", num_shape, Mux(fits, rem - step, rem))
                quo = stage(1 + s, f"quo{j}", unsigned(s), Cat(fits, quo))
                neg = stage(1 + s, f"neg{j}", 1, neg)
            code = Mux(zeros[-1], 0, Mux(neg, -quo, quo))
            m.d.comb += self.o.payload.codes[j].eq(code)

        return m
