"""The core's NORM / QNT functional unit (ISA "unit" group) behind the register channels of
hw.core.iface.

Specification: ``golden.machine``'s ``_norm`` / ``_qnt`` handlers, i.e. ``golden.ops.rmsnorm`` and
``golden.ops.quantize`` on ``Vs[:VL]`` with the gamma mantissas ``int16(Vg[:VL])`` (the low
GAMMA_BITS bits of each element, signed) and the exponent ``A[Ae]`` (``cmd.s0``), bit for bit.

The unit is built from the existing blocks:

* :class:`hw.core.reduce.ReductionUnit` — max|t|, M = max|t * mant| and the exact pre-shifted sum of
  squares, from a MAX packet and a SUMSQ packet of the same vector (two passes over Vs);
* :class:`hw.core.sfu.ScalarUnit` — the soft-float sequence (a fixed list of commands, below);
* :class:`hw.core.reduce.QuantizeUnit` — QNT's exact int8 codes (M only, no scale needed);
* for NORM, its own four-stage output pipeline: ``t = apply_sf(x, rms_inv)`` then
  ``y = mul_round(t, mant, exp)``, both products exact before the rounding.

Passes over the registers (W = ceil(VL / lanes) words, one word per cycle each):

* NORM: MAX (Vs, Vg) -> SUMSQ (Vs) -> scalar sequence -> OUT (Vs, Vg -> Vd);
* QNT: MAX (Vs, Vg) -> SUMSQ (Vs, Vg), which also feeds the codes to the QuantizeUnit (they need
  only M, known after the MAX pass) and writes them to Vd -> the scalar sequence, whose last
  result is F[fd].

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

Flow control. A read channel's ``data`` is the word addressed in the previous cycle with ``en``
high and holds while ``en`` is low, so the read ports are the one-word stage in front of the
consumers: the unit keeps a ``valid`` bit for that word and raises ``en`` for the next one only when
the stage is empty or handed on in the same cycle. A word that goes to two consumers (QNT's second
pass: the ReductionUnit and the QuantizeUnit) is handed to each as it becomes ready (an eager fork,
``valid`` never depends on ``ready``) and released when both have it. Downstream backpressure (the
ReductionUnit's result handshake between its packets, a stalled pipeline) therefore holds the word
in the read port and never loses one. The write channel cannot stall, so outputs are written in the
cycle they appear. Words are read in order and every word is written after its last read, so
in-place operation (vd == vs or vd == vt) is exact.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import enum, stream
from amaranth.lib.wiring import In, Out

from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

from .common import CoreUnit
from .iface import FWriteBack, ReadChannel, WriteChannel, unit_cmd_layout, words
from .reduce import Pass, QuantizeUnit, ReductionUnit
from .sfu import Op, ScalarUnit, sf_layout

__all__ = ["NORM_LATENCY", "NormQuantUnit", "Step"]

FX = signed(N.FX_BITS)
MANT = signed(N.GAMMA_BITS)

#: Register stages of NORM's output pipeline: the product x * r, its rounding, the product with
#: the gamma mantissa, its rounding.
NORM_LATENCY = 4

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
_P2 = signed(N.FX_BITS + N.GAMMA_BITS)
_V2 = signed(_P2.width + _L2)
_GSH = unsigned((N.GAMMA_EXP_MAX + _L2 - 1).bit_length())


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


def _rround(v, sh):
    """rshift_round(v, sh + 1) = floor((v + 2**sh) / 2**(sh + 1)) for a shift amount `sh` >= 0."""
    return ((v >> sh) + 1) >> 1


def _sat_fx(v):
    return Mux(v > N.FX_MAX, N.FX_MAX, Mux(v < N.FX_MIN, N.FX_MIN, v))


class NormQuantUnit(CoreUnit):
    """Functional unit for NORM and QNT (hw.core.iface unit contract).

    Parameters
    ----------
    config : AccelConfig
        ``vector_lanes`` (elements per word) and ``vlen``; checked with
        ``hw.core.iface.check_core_config`` and the FX width check of the hw.core units.
    test_stall : bool
        Adds the member ``stall: In(1)`` (testbenches only): while it is high, every internal
        consumer the unit controls refuses its input (the ReductionUnit's and ScalarUnit's results,
        the QuantizeUnit's and NORM pipeline's outputs), so random backpressure reaches the read
        ports. Without it the unit never stalls internally except for the ReductionUnit's result
        handshake.

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
    ``done``): every pass reads one word per cycle, with one bubble between the MAX and SUMSQ
    passes (the ReductionUnit's result handshake). NORM takes 3W plus the scalar sequence after the
    SUMSQ pass (NORM, MUL, ADD, RSQRT: about 120 to 150 cycles, data dependent) plus the output
    pipeline; QNT takes 2W plus NORM, MUL, ADD, RSQRT, MUL, MUL (about 220). ``sf_inv_int(VL)`` is
    hidden behind the passes from W of about 50 on; below that it adds up to about 50. Measured
    (tests/hw/core/test_normq.py, test_cycles): VL = 1024 at 4 lanes, NORM 885 .. 910 cycles,
    QNT about 735; VL = 1 about 190 (NORM) and 240 .. 280 (QNT).
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
        m.submodules.red = red = ReductionUnit(self._config)
        m.submodules.qu = qu = QuantizeUnit(self._config)
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
        last_count = Signal(range(lanes + 1))   # their number
        gexp = Signal(signed(8))                # the gamma exponent (clamped into its range)
        gsh = Signal(_GSH)                      # mul_round's right shift - 1: exp + _L2 - 1

        rphase = Signal(_Phase)                 # pass being read
        raddr = Signal.like(self.rs.addr)
        more = Signal()                         # words left to read in this pass
        pend = Signal()                         # the read ports hold a word not yet handed on
        pphase = Signal(_Phase)                 # its pass
        plast = Signal()                        # it is word W - 1
        waddr = Signal.like(self.wd.addr)
        vec_done = Signal()                     # every Vd word written
        s_done = Signal()                       # QNT: F[fd] written

        m_ok = Signal()                         # the MAX packet's result is in
        sum_ok = Signal()                       # the SUMSQ packet's result is in
        pmax = Signal.like(red.o.payload.pmax)
        sumsq = Signal.like(red.o.payload.sumsq)
        ssh = Signal.like(red.o.payload.shift)

        step = Signal(Step)
        issued = Signal()                       # the command of `step` is in the ScalarUnit
        seq_end = Signal()                      # the sequence has finished
        sf = sf_layout()
        reg_t = Signal(sf)
        reg_inv = Signal(sf)
        reg_p = Signal(sf)
        reg_r = Signal(sf)
        r_sh = Signal(range(_V1.width))         # apply_sf's right shift - 1: n + _L1 - 1, clamped
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
                last_count.eq((vl1[:shift] if shift else 0) + 1),
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
                step.eq(Step.NORM_N),
                issued.eq(0),
                seq_end.eq(0),
            ]

        # -- read: the read ports are the stage in front of the consumers ---------------------------
        take = Signal()                         # the pending word is handed on this cycle
        ren = Signal()
        m.d.comb += [
            ren.eq(busy & more & (~pend | take)),
            self.rs.en.eq(ren),
            self.rt.en.eq(ren & ((rphase != _Phase.SUMSQ) | is_qnt)),
            self.rs.addr.eq(raddr),
            self.rt.addr.eq(raddr),
        ]
        with m.If(ren):
            m.d.sync += [raddr.eq(raddr + 1), pphase.eq(rphase), plast.eq(raddr == last)]
            with m.If(raddr == last):
                m.d.sync += raddr.eq(0)
                with m.Switch(rphase):
                    with m.Case(_Phase.MAX):
                        m.d.sync += rphase.eq(_Phase.SUMSQ)      # straight on: the second pass
                    with m.Case(_Phase.SUMSQ):
                        m.d.sync += [rphase.eq(_Phase.OUT), more.eq(0)]
                    with m.Default():
                        m.d.sync += more.eq(0)
        with m.If(ren):
            m.d.sync += pend.eq(1)
        with m.Elif(take):
            m.d.sync += pend.eq(0)

        x = self.rs.data
        g = [self.rt.data[j][:N.GAMMA_BITS].as_signed() for j in range(lanes)]
        count = Mux(plast, last_count, lanes)

        # consumers of the pending word: the ReductionUnit (MAX, SUMSQ), the QuantizeUnit (QNT's
        # SUMSQ pass, once M is known) and the NORM pipeline (OUT); an eager fork for the first two
        taken_r = Signal()
        taken_q = Signal()
        to_red = pend & (pphase != _Phase.OUT) & ~taken_r
        to_qu = pend & (pphase == _Phase.SUMSQ) & is_qnt & ~taken_q & m_ok
        pipe_ready = Signal()
        m.d.comb += [
            red.i.valid.eq(to_red),
            red.i.payload.pass_.eq(Mux(pphase == _Phase.MAX, Pass.MAX, Pass.SUMSQ)),
            red.i.payload.count.eq(count),
            red.i.payload.last.eq(plast),
            qu.i.valid.eq(to_qu),
            qu.i.payload.m.eq(pmax),
            qu.i.payload.count.eq(count),
            qu.i.payload.last.eq(plast),
        ]
        for j in range(lanes):
            m.d.comb += [
                red.i.payload.data[j].eq(x[j]),
                red.i.payload.mant[j].eq(g[j]),
                qu.i.payload.data[j].eq(x[j]),
                qu.i.payload.mant[j].eq(g[j]),
            ]
        red_fire = red.i.valid & red.i.ready
        qu_fire = qu.i.valid & qu.i.ready
        red_has = taken_r | red_fire | (pphase == _Phase.OUT)
        qu_has = taken_q | qu_fire | (pphase != _Phase.SUMSQ) | ~is_qnt
        pipe_has = (pphase != _Phase.OUT) | pipe_ready
        m.d.comb += take.eq(pend & red_has & qu_has & pipe_has)
        with m.If(take):
            m.d.sync += [taken_r.eq(0), taken_q.eq(0)]
        with m.Else():
            with m.If(red_fire):
                m.d.sync += taken_r.eq(1)
            with m.If(qu_fire):
                m.d.sync += taken_q.eq(1)

        # -- reduction results ----------------------------------------------------------------------
        m.d.comb += red.o.ready.eq(~stall)
        with m.If(red.o.valid & red.o.ready):
            with m.If(red.o.payload.pass_ == Pass.MAX):
                m.d.sync += [pmax.eq(red.o.payload.pmax), m_ok.eq(1)]
            with m.Else():
                m.d.sync += [sumsq.eq(red.o.payload.sumsq), ssh.eq(red.o.payload.shift), sum_ok.eq(1)]

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
                             sc.a.exponent.eq(2 * ssh - 2 * N.FX_FRAC), gate.eq(sum_ok)]
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
                    # apply_sf's shift: n = -e; right shift by n + _L1 of p << _L1
                    k1 = Signal(signed(v.exponent.shape().width + 2))
                    m.d.comb += k1.eq(_L1 - 1 - v.exponent)
                    m.d.sync += [
                        reg_r.eq(v),
                        r_sh.eq(Mux(k1 < 0, 0, Mux(k1 > _V1.width - 1, _V1.width - 1, k1))),
                        r_big.eq(k1 < 0),
                        step.eq(Step.MUL_R),
                    ]
                    with m.If(~is_qnt):
                        m.d.sync += [seq_end.eq(1), more.eq(1)]     # start the OUT pass
                with m.Case(Step.MUL_R):
                    m.d.sync += [reg_t.eq(v), step.eq(Step.MUL_CODE)]
                with m.Case(Step.MUL_CODE):
                    m.d.sync += seq_end.eq(1)
                    m.d.comb += s_fire.eq(1)
        m.d.comb += [self.fwb.en.eq(s_fire), self.fwb.value.eq(res.value)]
        with m.If(s_fire):
            m.d.sync += s_done.eq(1)

        # -- NORM's output pipeline -------------------------------------------------------------------
        valid = [Signal(name=f"nvalid{k}") for k in range(1, NORM_LATENCY + 1)]
        en = [Signal(name=f"nen{k}") for k in range(1, NORM_LATENCY + 1)]
        out_ready = ~stall
        for k in range(NORM_LATENCY):
            nxt = out_ready if k == NORM_LATENCY - 1 else en[k + 1]
            m.d.comb += en[k].eq(~valid[k] | nxt)
            with m.If(en[k]):
                m.d.sync += valid[k].eq((pend & (pphase == _Phase.OUT)) if k == 0 else valid[k - 1])
        m.d.comb += pipe_ready.eq(en[0])

        def stage(k: int, name: str, shape, value):
            reg = Signal(shape, name=f"{name}_n{k}")
            with m.If(en[k - 1]):
                m.d.sync += reg.eq(value)
            return reg

        ys = []
        for j in range(lanes):
            p1 = stage(1, f"p{j}", _P1, x[j] * reg_r.mantissa)
            g1 = stage(1, f"g{j}", MANT, g[j])
            v1 = Signal(_V1, name=f"v{j}")
            m.d.comb += v1.eq(p1 << _L1)
            t_big = Mux(p1 == 0, 0, Mux(p1 < 0, N.FX_MIN, N.FX_MAX))
            t2 = stage(2, f"t{j}", FX, Mux(r_big, t_big, _sat_fx(_rround(v1, r_sh))))
            g2 = stage(2, f"g{j}", MANT, g1)
            q3 = stage(3, f"q{j}", _P2, t2 * g2)
            v3 = Signal(_V2, name=f"w{j}")
            m.d.comb += v3.eq(q3 << _L2)
            ys.append(stage(4, f"y{j}", FX, _sat_fx(_rround(v3, gsh))))

        # -- write: every result in the cycle it appears --------------------------------------------
        m.d.comb += qu.o.ready.eq(~stall)
        final = Signal()
        m.d.comb += [
            self.wd.en.eq(Mux(is_qnt, qu.o.valid & qu.o.ready, valid[-1] & out_ready)),
            self.wd.addr.eq(waddr),
            final.eq(waddr == last),
            self.wd.mask.eq(Mux(final, last_mask, (1 << lanes) - 1)),
        ]
        for j in range(lanes):
            m.d.comb += self.wd.data[j].eq(Mux(is_qnt, qu.o.payload.codes[j], ys[j]))
        with m.If(self.wd.en):
            m.d.sync += waddr.eq(waddr + 1)
            with m.If(final):
                m.d.sync += vec_done.eq(1)

        m.d.comb += self.done.eq(busy & (vec_done | (self.wd.en & final)) & (~is_qnt | s_done | s_fire))
        with m.If(self.done):
            m.d.sync += busy.eq(0)
        return m
