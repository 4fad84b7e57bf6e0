"""The core's NORM / QNT functional unit (ISA "unit" group) behind the register channels of
hw.core.iface.

Specification: ``golden.machine``'s ``_norm`` / ``_qnt`` handlers, i.e. ``golden.ops.rmsnorm`` and
``golden.ops.quantize`` on ``Vs[:VL]`` with the gamma mantissas ``int16(Vg[:VL])`` (the low
GAMMA_BITS bits of each element, signed) and the exponent ``A[Ae]`` (``cmd.s0``), bit for bit.

The unit is one lane pipeline shared by every pass, plus :class:`hw.core.sfu.ScalarUnit` for the
soft-float sequence (a fixed list of commands, below). Each lane has two multipliers
(:func:`hw.core.arith.pipelined_product`: registered 18x18 partial products, one adder level per
stage), each serving the pass that needs it:

* A (FX x SF_BITS, 6 DSPs): SUMSQ: ``(|t| >> k)**2``; OUT: ``x * rms_inv.mantissa``;
* B (FX x GAMMA_BITS, 3 DSPs): MAX and SUMSQ: ``p = t * mant`` (max|p|, QNT's codes); OUT:
  ``t * mant`` of the rounded ``t = apply_sf(x, rms_inv)``.

Around them, in stages of their own (one carry chain or a few LUT levels each): |t|, the pre-shift
(:func:`hw.core.reduce.shift_stages`), the lane trees and accumulators of max|t|, max|p| and the
sum of squares (:func:`hw.core.reduce.reduce_tree`), QNT's exact division, one quotient bit per
stage (:func:`hw.core.reduce.code_stages`), and NORM's two roundings (a shifter in two halves, the
rounding add, the saturation). The stage numbers are the module's ``_S_*`` constants; a word's
results are written :data:`NORM_LATENCY` cycles after it left the read queue (hw.core.readq).

Passes over the registers (W = ceil(VL / lanes) words, one word per cycle each):

* NORM: MAX (Vs, Vg) -> SUMSQ (Vs) -> scalar sequence -> OUT (Vs, Vg -> Vd);
* QNT: MAX (Vs, Vg) -> SUMSQ (Vs, Vg), which also computes the codes (they need only M, known
  after the MAX pass) and writes them to Vd -> the scalar sequence, whose last result is F[fd].

The SUMSQ pass starts when the MAX pass's results (max|t|, hence k, and M) have left the pipeline.

ScalarUnit commands (``sf_inv_int(VL)`` is computed while the passes stream, gated steps wait for
the reduction result they need)::

    T   = NORM(VL, 0)                                   # sf_norm(n, 0)
    INV = RECIP(T)                                      # sf_inv_int(n)
    P   = NORM(M, -(FX_FRAC + exp))                     # QNT only; after the MAX pass
    T   = NORM(sumsq, 2 * shift - 2 * FX_FRAC)          # after the SUMSQ pass
    T   = MUL(T, INV)                                   # mean_square (zero when max|t| = 0: sumsq = 0)
    T   = ADD(T, SF_EPS)
    R   = RSQRT(T)                                      # rms_inv
    T   = MUL(P, R)                                     # QNT only
    F   = MUL(T, SF_INV_CODE_MAX)                       # QNT only: the scale s, written to F[fd]

Every operand stays far inside the ScalarUnit's ports (exponents within a few hundred of zero,
integers below 2**64, RSQRT of at least SF_EPS), so every status is OK and every value is the
golden one; the statuses are not looked at.

Flow control. A read channel's word arrives READ_LATENCY cycles after its ``en`` (hw.core.iface), so the
reads go through a hw.core.readq.ReadQueue (both channels in step, each word tagged with its pass
and whether it is the last): ``en`` is raised while the queue has space, and the queue's head is
the stage in front of the pipeline. The pipeline takes a word every cycle (a SUMSQ word once the
MAX pass's results are in); only the test-only ``stall`` holds it (every stage at once), and then
the words wait in the queue. The write channel cannot stall, so results are
written in the cycle they reach the last stage. Words are read in order and every word is written
after its last read, so in-place operation (vd == vs or vd == vt) is exact.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream
from amaranth.lib.wiring import In, Out

from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

from .arith import pipelined_product, product_stages
from .common import CoreUnit
from .iface import FWriteBack, ReadChannel, WriteChannel, unit_cmd_layout, words
from .readq import QUEUE_LATENCY, ReadQueue
from .reduce import (
    ABS,
    CODE,
    CODE_STAGES,
    PABS,
    SHIFT,
    SHIFT_STAGES,
    SUMSQ,
    _abs,
    _max,
    code_stages,
    pre_shift,
    reduce_tree,
    shift_stages,
    tree_levels,
)
from .sfu import Op, ScalarUnit, sf_layout

__all__ = ["NORM_LATENCY", "NormQuantUnit", "Step", "pipeline_cycles"]

FX = signed(N.FX_BITS)
MANT = signed(N.GAMMA_BITS)


#: apply_sf's product p = x * r.mantissa is formed, then shifted left by _L1 (wiring) and rounded right
#: by n + _L1, n = -r.exponent: one rounding right shifter covers every left shift up to _L1 - 1 as
#: well (p * 2**-n is then an integer, and the added half rounds it to itself). A left shift of
#: _L1 or more saturates any p != 0, because |p| >= 2**(SF_BITS-1) for a canonical mantissa.
_L1 = N.FX_BITS - N.SF_BITS + 1
_P1 = signed(N.FX_BITS + N.SF_BITS + 1)
_V1 = signed(_P1.width + _L1)
#: mul_round(t, mant, exp) the same way: shifted left by _L2 so that exp + _L2 >= 1 for every allowed
#: exponent (exp >= GAMMA_EXP_MIN).
_L2 = 1 - N.GAMMA_EXP_MIN
_GSH = unsigned((N.GAMMA_EXP_MAX + _L2 - 1).bit_length())
#: stages of `_round_stages`: two shifter halves, the rounding add, the range compare, the saturation
_ROUND = 5

# The pipeline's stages (the registers of stage k hold a word k cycles after it left the read queue,
# without stalls). Per lane, two multipliers (hw.core.arith.pipelined_product) serve every pass:
#   A (FX x SF_BITS): SUMSQ: (|t| >> k)**2; OUT: x * r.mantissa
#   B (FX x GAMMA):   MAX, SUMSQ: t * mant (max|t * mant|, QNT's codes); OUT: t2 * mant
#:  stage 1: the word (lanes past VL as 0); 2: |t|; 3, 4: |t| >> k (shift_stages)
_S_IN = 1
_S_ABS = _S_IN + 1
_S_SH = _S_ABS + 1
#: product A's first stage (operands from the last shift stage) and the stage it is valid at
_S_A = _S_SH + SHIFT_STAGES
_S_PA = _S_A + product_stages(FX, unsigned(N.SF_BITS)) - 1
#: OUT: t2 = apply_sf(x, r)
_S_T2 = _S_PA + _ROUND
#: product B of a MAX / SUMSQ word (operands from stage 1), of an OUT word (operands t2 and mant)
_S_PB = _S_IN + product_stages(FX, MANT)
_S_QB = _S_T2 + product_stages(FX, MANT)
#: QNT's codes (|p| in stage _S_PB + 1, then hw.core.reduce.code_stages)
_S_CODE = _S_PB + 1 + CODE_STAGES
#: OUT: y = mul_round(t2, mant, exp); the results of the last pass are written from this stage
_S_Y = _S_QB + _ROUND
assert _S_CODE <= _S_Y

#: Cycles from a word leaving the read queue to its write (NORM's OUT pass, QNT's codes): the
#: stages of the pipeline.
NORM_LATENCY = _S_Y


def pipeline_cycles(lanes: int) -> int:
    """Cycles the pipeline adds to an instruction (no stalls), beyond one word per cycle per pass
    and the scalar sequence: the MAX pass's results drain before the SUMSQ pass starts, the SUMSQ
    pass's sum before the sequence uses it, the last word's NORM_LATENCY before its write, and the
    read queue's latency (QUEUE_LATENCY - 1 beyond the old read port's cycle) at the first pass and
    at the OUT pass, which starts reading after the sequence."""
    levels = tree_levels(lanes)
    return (_S_PB + 2 + levels) + (_S_PA + 1 + levels) + NORM_LATENCY + 2 * (QUEUE_LATENCY - 1)


class Step(enum.Enum, shape=4):
    """The ScalarUnit command sequence (module docstring), in order."""
    NORM_N = 0
    RECIP_N = 1
    NORM_M = 2       #: QNT only
    NORM_SS = 3
    MUL_INV = 4
    ADD_EPS = 5
    RSQRT = 6        #: NORM's last
    MUL_R = 7        #: QNT only
    MUL_CODE = 8     #: QNT's last


class _Phase(enum.Enum, shape=2):
    MAX = 0
    SUMSQ = 1
    OUT = 2


def _round_stages(reg, k0: int, name: str, p, left: int, sh, big):
    """sat_fx(rround(p << left, sh)) in _ROUND stages from k0 (p valid at stage k0 - 1), valid at
    stage k0 + _ROUND - 1: the right shift by the high bits of sh, by its low bits, the rounding
    add, the range compare, the saturating choice. `big` (or None): instead FX_MAX, FX_MIN or 0 by
    p's sign (apply_sf's left shifts of _L1 or more). `sh` and `big` are constant while words flow."""
    p = p.as_signed()
    v = p << left
    sh_bits = len(sh)
    lo = sh_bits // 2 + (sh_bits & 1)
    u0 = reg(k0, f"{name}_u0", v.shape(), v >> Cat(Const(0, lo), sh[lo:sh_bits]))
    u1 = reg(k0 + 1, f"{name}_u1", v.shape(), u0 >> sh[:lo])
    w = reg(k0 + 2, f"{name}_w", signed(len(v)), (u1 + 1) >> 1)
    # the range compare of w's top bits in a stage of its own, the saturating choice in the next
    # (compare and choice in one stage were a -6 build's late paths)
    hi = w[N.FX_BITS - 1:]
    inside = reg(k0 + 3, f"{name}_in", 1, (hi == 0) | (hi == (1 << len(hi)) - 1))
    w_lo = reg(k0 + 3, f"{name}_lo", FX, w[:N.FX_BITS])
    w_neg = reg(k0 + 3, f"{name}_neg", 1, w[-1])
    sat = Mux(inside, w_lo, Mux(w_neg, N.FX_MIN, N.FX_MAX))
    if big is not None:
        pz = reg(k0, f"{name}_z", 1, p == 0)
        pn = reg(k0, f"{name}_n", 1, p < 0)
        for k in (k0 + 1, k0 + 2, k0 + 3):
            pz = reg(k, f"{name}_z", 1, pz)
            pn = reg(k, f"{name}_n", 1, pn)
        sat = Mux(big, Mux(pz, 0, Mux(pn, N.FX_MIN, N.FX_MAX)), sat)
    return reg(k0 + 4, f"{name}_r", FX, sat)


class NormQuantUnit(CoreUnit):
    """Functional unit for NORM and QNT (hw.core.iface unit contract).

    Parameters
    ----------
    config : AccelConfig
        ``vector_lanes`` (elements per word) and ``vlen``; checked with
        ``hw.core.iface.check_core_config`` and the FX width check of the hw.core units.
    test_stall : bool
        Adds the member ``stall: In(1)`` (testbenches only): while it is high, every internal
        consumer the unit controls refuses its input (the ScalarUnit's results; the pipeline, all of
        its stages at once), so random backpressure reaches the read queue. Without it the unit never
        stalls internally.

    Attributes
    ----------
    cmd : In(stream.Signature(unit_cmd_layout(config)))
        ``op`` (NORM or QNT), ``vl`` (1 .. vlen), ``vd``, ``vs``, ``vt`` (Vg), ``fd`` (QNT),
        ``s0`` = A[Ae], the gamma exponent, which must lie in [GAMMA_EXP_MIN, GAMMA_EXP_MAX] (the
        golden machine faults otherwise; this unit clamps it into the range, so the results of an
        out-of-range exponent are unspecified). ``ready`` is high exactly while the unit is idle.
    done : Out(1)
        One-cycle pulse when the instruction has finished: in the cycle of the last vector write
        (QNT: or of the F write, whichever is later); idle (``cmd.ready``) from the next cycle.
    rs, rt : Out(ReadChannel(config))
        Vs and Vg, read in lockstep (same addresses, same cycles), words 0 .. W-1 per pass.
        ``rt.en`` is low in NORM's SUMSQ pass (gamma unused there).
    wd : Out(WriteChannel(config))
        Vd, words 0 .. W-1 in order, each once; the last word masked to the lanes below VL.
        NORM: ``rmsnorm`` values; QNT: the int8 codes sign-extended to FX.
    fwb : Out(FWriteBack())
        QNT: F[fd] = s, one cycle with ``en`` high. NORM never writes.

    Timing (W = ceil(VL / lanes) words, no backpressure; cycles from the ``cmd`` transfer to
    ``done``): every pass reads one word per cycle; the SUMSQ pass waits for the MAX pass's results
    to leave the pipeline, the scalar sequence for the SUMSQ sum, and the last write comes
    QUEUE_LATENCY + NORM_LATENCY cycles after the last read (:func:`pipeline_cycles` in all). NORM takes 3W plus
    the scalar sequence after the SUMSQ pass (NORM, MUL, ADD, RSQRT: about 120 to 150 cycles, data
    dependent) plus the pipeline; QNT takes 2W plus NORM, MUL, ADD, RSQRT, MUL, MUL (about 220).
    ``sf_inv_int(VL)`` is hidden behind the passes from W of about 50 on; below that it adds up to
    about 50. Measured at 4 lanes (simulated cycles, printed by ``pytest -s
    tests/hw/core/test_normq.py -k test_cycles``): VL = 1: 214 (NORM), 251 (QNT); VL = 64: 230
    (NORM), 278 (QNT).
    """

    def __init__(self, config: AccelConfig, *, test_stall: bool = False):
        self._test_stall = bool(test_stall)

        def members(lanes: int) -> dict:
            d = {
                "cmd": In(stream.Signature(unit_cmd_layout(config))),
                "done": Out(1),
                "rs": Out(ReadChannel(config)),
                "rt": Out(ReadChannel(config)),
                "wd": Out(WriteChannel(config)),
                "fwb": Out(FWriteBack()),
            }
            if self._test_stall:
                d["stall"] = In(1)
            return d

        super().__init__(config, members)
        self._words = words(config)

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        shift = lanes.bit_length() - 1          # lanes divides beat_bytes: a power of two
        assert 1 << shift == lanes
        m.submodules.sfu = sfu = ScalarUnit()

        stall = Signal()
        if self._test_stall:
            m.d.comb += stall.eq(self.stall)

        cmd = self.cmd.payload
        busy = Signal()
        is_qnt = Signal()
        vl = Signal.like(cmd.vl)
        last = Signal.like(self.rs.addr)        # W - 1
        last_mask = Signal(lanes)               # lanes below VL in word W - 1
        gexp = Signal(signed(8))                # the gamma exponent (clamped into its range)
        gsh = Signal(_GSH)                      # mul_round's right shift - 1: exp + _L2 - 1

        rphase = Signal(_Phase)                 # pass being read
        raddr = Signal.like(self.rs.addr)
        more = Signal()                         # words left to read in this pass
        waddr = Signal.like(self.wd.addr)
        vec_done = Signal()                     # every Vd word written
        s_done = Signal()                       # QNT: F[fd] written

        m_ok = Signal()                         # the MAX pass's results are final (max|t|, k, M)
        sum_ok = Signal()                       # the SUMSQ pass's sum is final
        max_abs = Signal(ABS)
        pmax = Signal(PABS)
        sumsq = Signal(SUMSQ)
        shift_k = Signal(SHIFT)                 # the pre-shift k from max_abs
        out_mode = Signal()                     # NORM's OUT pass: the multipliers' other operands

        step = Signal(Step)
        issued = Signal()                       # the command of `step` is in the ScalarUnit
        seq_end = Signal()                      # the sequence has finished
        sf = sf_layout()
        reg_t = Signal(sf)
        reg_inv = Signal(sf)
        reg_p = Signal(sf)
        reg_r = Signal(sf)
        r_sh = Signal(range(_V1.width))         # apply_sf's right shift - 1: n + _L1 - 1, clamped
        r_calc = Signal()                       # r_sh and r_big are computed from reg_r this cycle
        r_big = Signal()                        # n + _L1 < 1: a left shift that saturates

        m.d.comb += self.cmd.ready.eq(~busy)

        # -- accept: latch the instruction --------------------------------------------------------
        vl1 = Signal.like(cmd.vl)
        exp_in = Signal(signed(8))
        m.d.comb += [
            vl1.eq(cmd.vl - 1),
            exp_in.eq(Mux(cmd.s0 < N.GAMMA_EXP_MIN, N.GAMMA_EXP_MIN,
                          Mux(cmd.s0 > N.GAMMA_EXP_MAX, N.GAMMA_EXP_MAX, cmd.s0))),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                busy.eq(1),
                is_qnt.eq(cmd.op == isa.BY_MNEMONIC["QNT"].code),
                vl.eq(cmd.vl),
                last.eq(vl1 >> shift),
                last_mask.eq(Cat(vl1[:shift] >= j for j in range(lanes)) if shift else 1),
                gexp.eq(exp_in),
                gsh.eq(exp_in + (_L2 - 1)),
                self.rs.reg.eq(cmd.vs),
                self.rt.reg.eq(cmd.vt),
                self.wd.reg.eq(cmd.vd),
                self.fwb.idx.eq(cmd.fd),
                rphase.eq(_Phase.MAX),
                raddr.eq(0),
                more.eq(1),
                waddr.eq(0),
                vec_done.eq(0),
                s_done.eq(0),
                m_ok.eq(0),
                sum_ok.eq(0),
                max_abs.eq(0),
                pmax.eq(0),
                sumsq.eq(0),
                out_mode.eq(0),
                step.eq(Step.NORM_N),
                issued.eq(0),
                seq_end.eq(0),
            ]

        # -- read: the read queue's head is the stage in front of the pipeline -----------------------
        # The pipeline (below) never refuses a word but while `stall` (tests) holds everything; a
        # SUMSQ word waits for the MAX pass's results (the pre-shift k and M).
        adv = Signal()
        m.d.comb += adv.eq(~stall)
        m.submodules.rq = rq = ReadQueue(self._config, (FX, MANT), data.StructLayout({"phase": _Phase, "last": 1}))
        pend = rq.valid                         # the queue's head: the word next into the pipeline
        pphase = rq.tag_out.phase               # its pass
        plast = rq.tag_out.last                 # it is word W - 1
        take = Signal()                         # the head word enters the pipeline this cycle
        ren = Signal()
        m.d.comb += [
            take.eq(pend & adv & ((pphase != _Phase.SUMSQ) | m_ok)),
            ren.eq(busy & more & rq.space),
            self.rs.en.eq(ren),
            self.rt.en.eq(ren & ((rphase != _Phase.SUMSQ) | is_qnt)),
            self.rs.addr.eq(raddr),
            self.rt.addr.eq(raddr),
            rq.issue.eq(ren),
            rq.tag.phase.eq(rphase),
            rq.tag.last.eq(raddr == last),
            rq.din0.eq(self.rs.data),
            *(rq.din1[j].eq(self.rt.data[j][:N.GAMMA_BITS]) for j in range(lanes)),
            rq.take.eq(take),
        ]
        with m.If(ren):
            m.d.sync += raddr.eq(raddr + 1)
            with m.If(raddr == last):
                m.d.sync += raddr.eq(0)
                with m.Switch(rphase):
                    with m.Case(_Phase.MAX):
                        m.d.sync += rphase.eq(_Phase.SUMSQ)      # straight on: the second pass
                    with m.Case(_Phase.SUMSQ):
                        m.d.sync += [rphase.eq(_Phase.OUT), more.eq(0)]
                    with m.Default():
                        m.d.sync += more.eq(0)

        # -- the pipeline ---------------------------------------------------------------------------
        # One register stage per step, all advancing together (`adv`); stage k's tags say which
        # word it holds. Stage numbers are the module constants' (S_*).
        def reg(k: int, name: str, shape, value, *, reset: bool = False):
            # the data registers have no reset: only the stage's valid bit and pass decide
            # whether a word is used (fewer pins on the accelerator's reset, and no LUT merging
            # the reset with a register's zeroing, like lanes at or past VL into x_q1)
            r = Signal(shape, name=f"{name}_q{k}", reset_less=not reset)
            with m.If(adv):
                m.d.sync += r.eq(value)
            return r

        tv, tph, tlast = [None, Signal(name="v_q1")], [None, Signal(_Phase, name="ph_q1")], \
            [None, Signal(name="last_q1")]
        with m.If(adv):
            m.d.sync += [tv[1].eq(take), tph[1].eq(pphase), tlast[1].eq(plast)]
        for k in range(2, _S_Y + 1):
            tv.append(reg(k, "v", 1, tv[k - 1], reset=True))
            tph.append(reg(k, "ph", _Phase, tph[k - 1], reset=True))
            tlast.append(reg(k, "last", 1, tlast[k - 1], reset=True))

        def at(k, phase):
            """Stage k holds the last word of pass `phase` (and advances)."""
            return adv & tv[k] & (tph[k] == phase) & tlast[k]

        x0 = rq.dout0
        g0 = [rq.dout1[j] for j in range(lanes)]
        mags, pabs_l, squares, codes, ys = [], [], [], [], []
        for j in range(lanes):
            # stage 1: the word; lanes at or past VL as 0 (0 changes no maximum, no sum)
            ok = ~plast | last_mask[j]
            x = reg(_S_IN, f"x{j}", FX, Mux(ok, x0[j], 0))
            g = reg(_S_IN, f"g{j}", MANT, g0[j])
            # stage 2: |t| (MAX, SUMSQ)
            a = reg(_S_ABS, f"abs{j}", ABS, _abs(x, ABS))
            mags.append(a)
            # stages 3, 4: |t| >> k (SUMSQ)
            a4 = shift_stages(reg, _S_SH, f"a{j}", a, shift_k)
            xs = x
            for k in range(_S_IN + 1, _S_A):
                xs = reg(k, f"x{j}", FX, xs)
            gs = g
            for k in range(_S_IN + 1, _S_T2 + 1):
                gs = reg(k, f"g{j}", MANT, gs)
            # product A (SUMSQ: (|t| >> k)**2; OUT: x * r.mantissa), operands at stage _S_A - 1
            pa = pipelined_product(Mux(out_mode, xs, a4), Mux(out_mode, reg_r.mantissa, a4), reg, _S_A, f"pa{j}",
                                   m=m, en=lambda k: adv)
            squares.append(pa[:2 * N.SUMSQ_IN_BITS].as_unsigned())
            # apply_sf (OUT): t = sat(rround(p << _L1, r_sh)), or saturated by a large left shift
            t2 = _round_stages(reg, _S_PA + 1, f"t{j}", pa, _L1, r_sh, r_big)
            # product B (MAX, SUMSQ: t * mant at stage 1; OUT: t2 * mant at _S_T2)
            pb = pipelined_product(Mux(out_mode, t2, x), Mux(out_mode, gs, g), reg, _S_IN + 1, f"pb{j}",
                                   m=m, en=lambda k: adv)
            pabs = reg(_S_PB + 1, f"pabs{j}", PABS, _abs(pb, PABS))
            neg = reg(_S_PB + 1, f"neg{j}", 1, pb < 0)
            pabs_l.append(pabs)
            # QNT's code of the SUMSQ pass's word
            code = code_stages(reg, _S_PB + 2, f"c{j}", pabs, neg, lambda k: pmax)
            for k in range(_S_CODE + 1, _S_Y + 1):
                code = reg(k, f"c{j}_code", CODE, code)
            codes.append(code)
            # mul_round (OUT): y = sat(rround(t2 * mant << _L2, gsh))
            ys.append(_round_stages(reg, _S_QB + 1, f"y{j}", pb, _L2, gsh, None))

        # reductions: a tree over the lanes, then the accumulator (reset by the instruction's accept)
        levels = tree_levels(lanes)
        _S_MAXACC = _S_ABS + 1 + levels
        _S_PMAXACC = _S_PB + 2 + levels
        _S_SSACC = _S_PA + 1 + levels
        assert _S_MAXACC + 2 <= _S_PMAXACC      # k (from max_abs) is ready before m_ok
        bmax = reduce_tree(reg, _S_ABS + 1, "bmax", mags, _max, ABS)
        bpmax = reduce_tree(reg, _S_PB + 2, "bpmax", pabs_l, _max, PABS)
        bss = reduce_tree(reg, _S_PA + 1, "bss", squares, lambda u, w: u + w, SUMSQ)
        with m.If(adv & tv[_S_MAXACC - 1] & (tph[_S_MAXACC - 1] == _Phase.MAX)):
            m.d.sync += max_abs.eq(_max(max_abs, bmax))
        with m.If(adv & tv[_S_PMAXACC - 1] & (tph[_S_PMAXACC - 1] == _Phase.MAX)):
            m.d.sync += pmax.eq(_max(pmax, bpmax))
        with m.If(adv & tv[_S_SSACC - 1] & (tph[_S_SSACC - 1] == _Phase.SUMSQ)):
            m.d.sync += sumsq.eq(sumsq + bss)
        m.d.sync += shift_k.eq(pre_shift(max_abs))
        with m.If(at(_S_PMAXACC - 1, _Phase.MAX)):
            m.d.sync += m_ok.eq(1)
        with m.If(at(_S_SSACC - 1, _Phase.SUMSQ)):
            m.d.sync += sum_ok.eq(1)

        # -- the scalar sequence --------------------------------------------------------------------
        sc, res = sfu.cmd.payload, sfu.result.payload
        gate = Signal()
        with m.Switch(step):
            with m.Case(Step.NORM_N):
                m.d.comb += [sc.op.eq(Op.NORM), sc.integer.eq(vl), sc.a.exponent.eq(0), gate.eq(1)]
            with m.Case(Step.RECIP_N):
                m.d.comb += [sc.op.eq(Op.RECIP), sc.a.eq(reg_t), gate.eq(1)]
            with m.Case(Step.NORM_M):
                m.d.comb += [sc.op.eq(Op.NORM), sc.integer.eq(pmax),
                             sc.a.exponent.eq(-N.FX_FRAC - gexp), gate.eq(m_ok)]
            with m.Case(Step.NORM_SS):
                m.d.comb += [sc.op.eq(Op.NORM), sc.integer.eq(sumsq),
                             sc.a.exponent.eq(2 * shift_k - 2 * N.FX_FRAC), gate.eq(sum_ok)]
            with m.Case(Step.MUL_INV):
                m.d.comb += [sc.op.eq(Op.MUL), sc.a.eq(reg_t), sc.b.eq(reg_inv), gate.eq(1)]
            with m.Case(Step.ADD_EPS):
                m.d.comb += [sc.op.eq(Op.ADD), sc.a.eq(reg_t), gate.eq(1),
                             sc.b.mantissa.eq(N.SF_EPS[0]), sc.b.exponent.eq(N.SF_EPS[1])]
            with m.Case(Step.RSQRT):
                m.d.comb += [sc.op.eq(Op.RSQRT), sc.a.eq(reg_t), gate.eq(1)]
            with m.Case(Step.MUL_R):
                m.d.comb += [sc.op.eq(Op.MUL), sc.a.eq(reg_p), sc.b.eq(reg_r), gate.eq(1)]
            with m.Case(Step.MUL_CODE):
                m.d.comb += [sc.op.eq(Op.MUL), sc.a.eq(reg_t), gate.eq(1),
                             sc.b.mantissa.eq(N.SF_INV_CODE_MAX[0]), sc.b.exponent.eq(N.SF_INV_CODE_MAX[1])]
        m.d.comb += [
            sfu.cmd.valid.eq(busy & ~issued & ~seq_end & gate),
            sfu.result.ready.eq(issued & ~stall),
        ]
        with m.If(sfu.cmd.valid & sfu.cmd.ready):
            m.d.sync += issued.eq(1)
        s_fire = Signal()
        r_fire = sfu.result.valid & sfu.result.ready
        m.d.sync += r_calc.eq(0)
        with m.If(r_fire):
            m.d.sync += issued.eq(0)
            v = res.value
            with m.Switch(step):
                with m.Case(Step.NORM_N):
                    m.d.sync += [reg_t.eq(v), step.eq(Step.RECIP_N)]
                with m.Case(Step.RECIP_N):
                    m.d.sync += [reg_inv.eq(v), step.eq(Mux(is_qnt, Step.NORM_M, Step.NORM_SS))]
                with m.Case(Step.NORM_M):
                    m.d.sync += [reg_p.eq(v), step.eq(Step.NORM_SS)]
                with m.Case(Step.NORM_SS):
                    m.d.sync += [reg_t.eq(v), step.eq(Step.MUL_INV)]
                with m.Case(Step.MUL_INV):
                    m.d.sync += [reg_t.eq(v), step.eq(Step.ADD_EPS)]
                with m.Case(Step.ADD_EPS):
                    m.d.sync += [reg_t.eq(v), step.eq(Step.RSQRT)]
                with m.Case(Step.RSQRT):
                    m.d.sync += [reg_r.eq(v), r_calc.eq(1), step.eq(Step.MUL_R)]
                    with m.If(~is_qnt):
                        m.d.sync += [seq_end.eq(1), more.eq(1), out_mode.eq(1)]     # start the OUT pass
                with m.Case(Step.MUL_R):
                    m.d.sync += [reg_t.eq(v), step.eq(Step.MUL_CODE)]
                with m.Case(Step.MUL_CODE):
                    m.d.sync += seq_end.eq(1)
                    m.d.comb += s_fire.eq(1)
        # apply_sf's shift from the registered result, the cycle after (the OUT pass's first word
        # reaches the rounding stages several cycles later: a register read and its queue first):
        # n = -e; right shift by n + _L1 of p << _L1
        k1 = Signal(signed(reg_r.exponent.shape().width + 2))
        m.d.comb += k1.eq(_L1 - 1 - reg_r.exponent)
        with m.If(r_calc):
            m.d.sync += [r_sh.eq(Mux(k1 < 0, 0, Mux(k1 > _V1.width - 1, _V1.width - 1, k1))), r_big.eq(k1 < 0)]
        # the F write-back from registers, the cycle after the result is taken (a -6 build's late
        # paths ran from the scalar unit's result logic through the take into the F registers' enables)
        fwb_en = Signal()
        fwb_value = Signal.like(res.value)
        m.d.sync += fwb_en.eq(s_fire)
        m.d.comb += [self.fwb.en.eq(fwb_en), self.fwb.value.eq(fwb_value)]
        with m.If(s_fire):
            m.d.sync += [s_done.eq(1), fwb_value.eq(res.value)]

        # -- write: the words of the last pass from the last stage, in the cycle they are there -------
        final = Signal()
        m.d.comb += [
            self.wd.en.eq(adv & tv[_S_Y] & Mux(is_qnt, tph[_S_Y] == _Phase.SUMSQ, tph[_S_Y] == _Phase.OUT)),
            self.wd.addr.eq(waddr),
            final.eq(waddr == last),
            self.wd.mask.eq(Mux(final, last_mask, (1 << lanes) - 1)),
        ]
        for j in range(lanes):
            m.d.comb += self.wd.data[j].eq(Mux(is_qnt, codes[j], ys[j]))
        with m.If(self.wd.en):
            m.d.sync += waddr.eq(waddr + 1)
            with m.If(final):
                m.d.sync += vec_done.eq(1)

        m.d.comb += self.done.eq(busy & (vec_done | (self.wd.en & final)) & (~is_qnt | s_done))
        with m.If(self.done):
            m.d.sync += busy.eq(0)
        return m
