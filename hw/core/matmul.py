"""TMATMUL: the core's ternary matrix x int8 vector unit (spec/isa.py, "TMATMUL").

``Vd[r] = apply_sf(sum_k W[r, k] * int8(Vs[k]), sf_shift(Fs, FX_FRAC))`` for ``r < rows``, with W
the [rows, VL] trit matrix packed at byte address Aw in the image layout (spec.weight_image:
``ceil(rows / B)`` row tiles of B = beat_bytes rows, G = ``ceil(VL / T)`` beats per tile, one beat =
one column group of T trits of the tile's B rows). The reference is ``golden.machine``'s
``_tmatmul``: ``round_half_up(acc * m * 2**(e + FX_FRAC))`` saturated to FX, (m, e) = Fs, 0 when
m == 0, for every exponent of the 12-bit range.

Datapath (one instruction at a time, three overlapping phases):

1. **codes**: Vs is read word by word (``vector_lanes`` elements, the low 8 bits of each, signed)
   through a small gearbox (``vector_lanes + T - 1`` code slots) into column groups of T codes,
   streamed into the :class:`hw.core.tmac.TernaryArray`'s codes memory. ``ceil(VL / lanes)`` reads;
   about ``max(ceil(VL / lanes), ceil(VL / T))`` cycles. Codes past VL in the last group are
   whatever the last word holds (their trits are zero padding). Rate: one word read a cycle, and
   the gearbox takes the next word in the cycle its content drops below T codes, so with
   ``lanes >= T`` it holds at least T codes in every cycle after the first word and writes group g
   at the edge of cycle ``accept + 3 + g`` (one group a cycle); with ``lanes < T`` (ecp5: 4 < 5,
   ice40: 1 < 4) it writes ``lanes / T`` groups a cycle on average.
2. **weights**: the memory read commands are issued right after the instruction is accepted (the
   memory latency overlaps the copy): the ``ceil(rows / B) * G`` beats of the matrix as
   consecutive bursts of up to ``max_burst`` beats (default hw.mem.port.MAX_BURST, so one command
   for every matrix of the named configurations but ddr4's largest). The read data goes straight
   into the array (``mem.rd`` -> ``array.weights``) with ``last`` on each tile's G-th beat and
   ``end`` on the final one. The memory port is read-only here: ``mem.wr`` is never valid.
   **Overlap** (``overlap``, default on exactly when ``lanes >= T``: :func:`copy_keeps_up`): beat g
   of a tile uses only codes group g, so the array takes beat g of the first tile from the cycle
   after group g was written (tmac.TernaryArray's contract); later tiles find the whole vector.
   As the copy writes a group a cycle, the codes never hold the stream: the first command is on
   the port in cycle ``accept + 6`` (the setup: K + T - 1, G by a reciprocal product, G - 1, the
   beat count by a product, each a stage), so beat g comes in ``accept + 7 + g`` at the earliest. With
   ``overlap`` off (the default when the copy is slower than a group a cycle) the unit holds
   ``mem.rd`` until the whole copy is done, so that the weight phase has no bubbles; ``overlap=True``
   there makes the first tile take beats at the copy's pace instead.
3. **rescale / write-back**: each tile's B sums are taken from the array's output register one
   register word (``lanes`` sums) per cycle, ``B / lanes`` cycles per tile, registered, through ``lanes``
   multipliers (acc x m: 18x18 partial products and an adder level per stage, 3 stages), a clamped
   shifter (a shift by a multiple of 8, then by the rest with the rounding add) and the saturation
   (RESCALE_LATENCY = 7 register stages), and written to Vd with the lane mask ``row < rows``;
   words holding no row below ``rows`` are neither computed nor written.

Throughput: the array's output register and running sums double-buffer the tile sums, so while the
memory streams without stalls the array takes one beat per cycle for the whole matrix as long as
``B / lanes + ARRAY_LATENCY - 1 <= G`` (a tile's write-back is hidden behind the next tile's G
beats; hw.core.tmac.ARRAY_LATENCY is the array's pipeline). With shorter tiles (short vectors on a
wide beat with few vector lanes) the write-back limits: a tile takes ``B / lanes + ARRAY_LATENCY
- 1`` cycles instead of G. Measured figures: sim/benches/matmul.py.

Cycle budget, memory without stalls and with a 1-cycle latency (the RAM model of the tests;
simulated cycles, Amaranth sim; tests/hw/core/test_matmul.py checks it exactly): with overlap,
``FIRST_BEAT = 5 + QUEUE_LATENCY`` (11) cycles from acceptance to the first beat (the first two
groups of codes: the read queue's QUEUE_LATENCY cycles, the gearbox, the array's register that says
two groups are in; meanwhile G, the beat count, the command), whatever VL; without,
``max(ceil(VL / lanes), ceil(VL / T)) + 8 or 9`` (the codes copy). Then ``ceil(rows / B) * G`` beats in as many
cycles, then ``words of the last tile + RESCALE_LATENCY + ARRAY_LATENCY - 1`` cycles to ``done``.
ddr4 config (overlap), K = 1024, rows = 1024: 11 + 3280 + 15 = 3306 cycles (without overlap 213 +
3280 + 15 = 3508); K = 2816, rows = 1024: 11 + 9024 + 15 = 9050. ecp5 config (no overlap by
default), K = 192, rows = 192: 57 + 468 + 15 = 540 cycles, 100 % of the weight phase with a beat
(the formulas above, evaluated; test_docstring_cycle_examples re-evaluates these from the formulas).

In place (``vd == vs``): the first write of Vd comes at least 8 cycles after the last read of Vs,
with or without overlap. The first write is tile 0's (RESCALE_LATENCY + ARRAY_LATENCY cycles after
its last beat); that beat is group G - 1's, which the array takes only after the group was written, which
is after the gearbox took the last word of Vs, three cycles after its read (hw.core.readq). So every code is read
before any element is written, whatever the stalls (the register channels do not stall; memory
stalls only delay the beats).

Scaling, for every exponent of the 12-bit range: ``z = floor(p * 2**t)`` with ``p = acc * m`` and
``t = clamp(e + FX_FRAC + 1, -P, FX_BITS + 1)`` (P the product width) is one arithmetic right
shift of ``p << (FX_BITS + 1)``; ``(z + 1) >> 1`` is then ``round_half_up(p * 2**(e + FX_FRAC))``
and is saturated to FX. The clamps are exact: any right shift of ``P`` or more gives 0 after the
rounding, and any left shift of ``FX_BITS`` or more of a non-zero product saturates.

Operand domain (the sequencer's contract, hw.core.iface): ``1 <= VL <= vlen``, ``rows <= vlen``,
Aw a multiple of beat_bytes (its low bits are ignored). ``rows == 0`` is a no-op (``done`` the
cycle after acceptance, no memory access, no write). Rows at or past ``vlen`` are never written.
"""
from __future__ import annotations

import functools

from amaranth.hdl import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from hw.mem.port import LEN_BITS, MAX_BURST, MemPortSignature
from spec import numerics as N
from spec.accel import AccelConfig

from .arith import LIMB, Mul18, pipelined_product, product_stages
from .common import CoreUnit
from .iface import FX, ReadChannel, WriteChannel, unit_cmd_layout, words
from .readq import ReadQueue
from .tmac import CODE_BITS, TernaryArray

__all__ = ["RESCALE_LATENCY", "MatmulUnit", "ceil_div_const", "copy_keeps_up"]

#: Register stages of the product acc * m (hw.core.arith.pipelined_product: the 18x18 partial
#: products, then one adder level per stage; 3 for accumulators of 18 .. 35 bits, fewer padded).
_PRODUCT_STAGES = 3
#: Register stages from a tile's sums on the array output to their write on ``wd``: the word of
#: the tile (a B / lanes : 1 choice), the product, the shift by a multiple of 8, the shift by the
#: rest with the rounding add, the saturation.
RESCALE_LATENCY = _PRODUCT_STAGES + 4
#: Left-shift clamp of z = floor(p * 2**t): t = FX_BITS + 1 (one guard bit for the rounding)
#: already saturates any non-zero product.
_T_MAX = N.FX_BITS + 1
_ROWS_MAX = (1 << 16) - 1


@functools.cache
def _reciprocal(d: int, top: int) -> tuple[int, int]:
    """(c, s) with (y * c) >> s == y // d for every 0 <= y <= top (checked exhaustively)."""
    s = top.bit_length()
    while True:
        c = -(-(1 << s) // d)
        if all((y * c) >> s == y // d for y in range(top + 1)):
            return c, s
        s += 1


def copy_keeps_up(config: AccelConfig) -> bool:
    """Whether the codes copy writes a column group every cycle (``vector_lanes >= T``): then
    MatmulUnit overlaps the weights with the copy by default (module docstring)."""
    return config.vector_lanes >= config.trits_per_byte


def ceil_div_factors(d: int, x_max: int) -> tuple[int, int]:
    """(c, s) with ceil(x / d) == ((x + d - 1) * c) >> s for every 0 <= x <= x_max and a
    constant d >= 1: (1, log2 d) for a power of two (the product is the identity), else a
    constant reciprocal checked exhaustively over the range."""
    if d & (d - 1) == 0:
        return 1, d.bit_length() - 1
    return _reciprocal(d, x_max + d - 1)


def ceil_div_const(x, d: int, x_max: int):
    """ceil(x / d) for 0 <= x <= x_max and a constant d >= 1, without a divider (the factors of
    :func:`ceil_div_factors`). The unit's setup pipeline computes G = ceil(VL / T) from the same
    factors, the add, the product and the shift in stages of their own."""
    c, s = ceil_div_factors(d, x_max)
    return ((x + (d - 1)) * c) >> s


def _product(a, mant, reg, name, m=None, en=None):
    """(acc * m, its last stage): stages 1 .. at most _PRODUCT_STAGES. An accumulator of at most
    2 bits above an unsigned 17-bit limb (ecp5: 19 bits) has its top bits' product built from
    LUTs (one add) beside the DSPs of ``a[:17] * m``, so it takes 2 DSPs, not 4; wider
    accumulators go through hw.core.arith.pipelined_product whole."""
    h = len(a) - LIMB
    if h < 1 or h > 2:
        k = product_stages(a.shape(), mant.shape())
        assert k <= _PRODUCT_STAGES, (k, _PRODUCT_STAGES)
        return pipelined_product(a, mant, reg, 1, name, m=m, en=en), k
    a_lo, a_hi = a.as_unsigned()[:LIMB], a.as_unsigned()[LIMB:]
    assert product_stages(a_lo.shape(), mant.shape()) == 2
    lo = pipelined_product(a_lo, mant, reg, 1, f"{name}_lo", m=m, en=en)               # stages 1, 2
    hw_ = signed(len(mant) + 2)
    # a_hi as signed: -2 * a_hi[1] + a_hi[0] (h = 2) or -a_hi[0] (h = 1); stage 1 registers the
    # choices (a LUT after the accumulator's word), stage 2 their difference (one carry chain)
    t0 = reg(1, f"{name}_hi1a", unsigned(len(mant)), Mux(a_hi[0], mant, 0))
    if h == 2:
        t1 = reg(1, f"{name}_hi1b", unsigned(len(mant) + 1), Mux(a_hi[1], mant << 1, 0))
        hi = reg(2, f"{name}_hi2", hw_, t0 - t1)
    else:
        hi = reg(2, f"{name}_hi2", hw_, -t0)
    shape = signed(len(a) + len(mant))
    return reg(3, f"{name}_sum", shape, lo + (hi << LIMB)), 3


class MatmulUnit(CoreUnit):
    """TMATMUL unit: codes copy, weight streaming through the ternary array, rescale and write-back.

    Parameters
    ----------
    config : AccelConfig
        B = ``beat_bytes`` rows per tile, T = ``trits_per_byte``, ``vector_lanes`` register lanes
        (multipliers), ``vlen`` (register depth, longest VL and rows). Checked with
        hw.core.iface.check_core_config.
    max_burst : int
        Longest memory read command in beats (1 .. hw.mem.port.MAX_BURST).
    overlap : bool or None
        Whether the first tile's weight beats may be taken while the codes are still being copied
        (module docstring, phase 2). None (the default): when the copy writes a group a cycle,
        :func:`copy_keeps_up` (``vector_lanes >= T``: ddr4 yes, ecp5 and ice40 no). False: the
        weights wait for the whole copy (the behaviour before the overlap).

    Attributes
    ----------
    cmd : In(stream.Signature(unit_cmd_layout(config)))
        One TMATMUL: ``vl`` (K columns), ``rows`` (R), ``vs``, ``vd``, ``addr`` (Aw, bytes),
        ``sf`` (F[Fs]). ``ready`` is high exactly while idle; ``op`` is not looked at.
    done : Out(1)
        One-cycle pulse in the cycle of the last register write (for rows == 0: the cycle after
        acceptance). ``cmd.ready`` rises in the next cycle.
    rs : Out(ReadChannel(config))
        Reads Vs (the codes), ``ceil(VL / lanes)`` words, each once, in order.
    wd : Out(WriteChannel(config))
        Writes Vd: word w of the result in one cycle, lanes ``row < rows`` set in ``mask``.
    mem : Out(MemPortSignature(beat_bytes))
        Weight reads (line address = Aw // beat_bytes, consecutive bursts); never writes.
    """

    def __init__(self, config: AccelConfig, *, max_burst: int = MAX_BURST, overlap: bool | None = None):
        if not (isinstance(max_burst, int) and 1 <= max_burst <= MAX_BURST):
            raise ValueError(f"max_burst must be an int in 1 .. {MAX_BURST}, got {max_burst!r}")
        if overlap is not None and not isinstance(overlap, bool):
            raise ValueError(f"overlap must be None, True or False, got {overlap!r}")
        self._max_burst = max_burst
        if overlap is None and isinstance(config, AccelConfig):
            overlap = copy_keeps_up(config)
        self._overlap = overlap
        super().__init__(config, lambda lanes: {
            "cmd": In(stream.Signature(unit_cmd_layout(config))),
            "done": Out(1),
            "rs": Out(ReadChannel(config)),
            "wd": Out(WriteChannel(config)),
            "mem": Out(MemPortSignature(config.beat_bytes)),
        })

    @property
    def max_burst(self) -> int:
        return self._max_burst

    @property
    def overlap(self) -> bool:
        """Whether the first tile's beats are taken while the codes are still being copied."""
        return self._overlap

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        lanes, b, t = self._lanes, cfg.beat_bytes, cfg.trits_per_byte
        wpt = b // lanes                      # register words per row tile
        n_words = words(cfg)
        lane_log2 = lanes.bit_length() - 1
        b_log2 = b.bit_length() - 1
        vl_max = cfg.vlen

        m.submodules.array = arr = TernaryArray(cfg)

        # -- instruction registers -----------------------------------------------------------
        busy = Signal()
        k_cols = Signal(range(vl_max + 1))    # VL (the sequencer keeps it in 1 .. vlen)
        rows = Signal(16)
        vs = Signal.like(self.rs.reg)
        vd = Signal.like(self.wd.reg)
        line0 = Signal(self.mem.cmd.payload.addr.shape())
        mant = Signal(unsigned(N.SF_BITS))
        # right-shift amount of p << _T_MAX: _T_MAX - clamp(e + FX_FRAC + 1, -P, _T_MAX)
        acc_shape = signed(cfg.acc_bits)
        p_shape = (Signal(acc_shape) * Signal(unsigned(N.SF_BITS))).shape()
        p_bits = p_shape.width
        rsa = Signal(range(_T_MAX + p_bits + 1))
        zero_rows = Signal()                  # rows == 0: done next cycle, nothing else

        accept = self.cmd.valid & self.cmd.ready
        m.d.comb += self.cmd.ready.eq(~busy)
        p = self.cmd.payload
        with m.If(accept):
            m.d.sync += [
                busy.eq(1),
                k_cols.eq(p.vl),
                rows.eq(p.rows),
                vs.eq(p.vs),
                vd.eq(p.vd),
                line0.eq(p.addr[b_log2:b_log2 + len(line0)]),
                mant.eq(p.sf.mantissa),
                zero_rows.eq(p.rows == 0),
            ]
            # 24 - e: the exponent is 12-bit signed, so this fits 14 signed bits
            ra = Signal(signed(N.SF_EXP_BITS + 2))
            m.d.comb += ra.eq(N.FX_FRAC - p.sf.exponent)
            m.d.sync += rsa.eq(Mux(ra < 0, 0, Mux(ra > _T_MAX + p_bits, _T_MAX + p_bits, ra)))

        # setup pipeline, one carry chain or one product per stage (the products each a Mul18: on
        # ECP5 a DSP with its output register): st1: K + T - 1 and the tile counts; st2: its product
        # with T's reciprocal; st3: G = ceil(K / T) and G - 1; st4: tiles * G; st5: the beat count
        st = [Signal(name=f"st{k}") for k in range(1, 6)]
        m.d.sync += st[0].eq(accept & (p.rows != 0))
        m.d.sync += [st[k].eq(st[k - 1]) for k in range(1, len(st))]
        groups = Signal(range(-(-vl_max // t) + 1))           # G = ceil(K / T)
        groups_m1 = Signal.like(groups)
        tiles_m1 = Signal(range(-(-_ROWS_MAX // b)))          # ceil(R / B) - 1
        tiles = Signal(range(-(-_ROWS_MAX // b) + 1))         # ceil(R / B)
        kp = Signal(range(vl_max + t))                        # K + T - 1
        with m.If(st[0]):
            m.d.sync += [kp.eq(k_cols + (t - 1)), tiles_m1.eq((rows - 1) >> b_log2),
                         tiles.eq((rows + (b - 1)) >> b_log2)]
        c, s = ceil_div_factors(t, vl_max)
        if c == 1:
            gq = Signal.like(groups)
            with m.If(st[1]):
                m.d.sync += gq.eq(kp >> s)
        else:
            m.submodules.g_mul = g_mul = Mul18(kp.shape(), unsigned(c.bit_length()), name="g_mul")
            m.d.comb += [g_mul.a.eq(kp), g_mul.b.eq(c), g_mul.en.eq(st[1])]
            gq = g_mul.p >> s
        with m.If(st[2]):
            m.d.sync += [groups.eq(gq), groups_m1.eq(gq - 1)]
        m.submodules.n_mul = n_mul = Mul18(tiles.shape(), groups.shape(), name="n_mul")
        m.d.comb += [n_mul.a.eq(tiles), n_mul.b.eq(groups), n_mul.en.eq(st[3])]

        # -- memory read commands: consecutive bursts of up to max_burst beats ----------------
        creq_left = Signal(32)             # beats not yet requested
        cline = Signal.like(line0)
        burst = Signal(LEN_BITS)
        m.d.comb += burst.eq(Mux(creq_left > self._max_burst, self._max_burst, creq_left))
        m.d.comb += [
            self.mem.cmd.valid.eq(busy & (creq_left != 0)),
            self.mem.cmd.payload.addr.eq(cline),
            self.mem.cmd.payload.len.eq(burst),
            self.mem.cmd.payload.write.eq(0),
            self.mem.wr.valid.eq(0),
        ]
        with m.If(st[4]):                  # the whole matrix: ceil(R / B) * G beats
            m.d.sync += [creq_left.eq(n_mul.p), cline.eq(line0)]
        with m.Elif(self.mem.cmd.valid & self.mem.cmd.ready):
            m.d.sync += [creq_left.eq(creq_left - burst), cline.eq(cline + burst)]

        # -- phase 1: Vs words -> gearbox -> groups of T codes -> array.codes -----------------
        codes_on = Signal()                # groups still to send
        raddr = Signal(range(-(-vl_max // lanes) + 1))
        last_read = Signal.like(raddr)     # ceil(VL / lanes) - 1, from the command
        rmore = Signal()                   # words of Vs still to read (raddr <= last_read)
        slots = lanes + t - 1
        buf = [Signal(signed(CODE_BITS), name=f"code_slot{i}") for i in range(slots)]
        nbuf = Signal(range(slots + 1))
        gsent = Signal.like(groups)        # groups sent to the array

        m.submodules.rq = rq = ReadQueue(cfg, (signed(CODE_BITS),))   # only the codes
        rpend = rq.valid                   # the queue's head: a word not yet taken into the gearbox
        all_in = ~rmore & rq.empty         # every word of Vs is in the gearbox
        # nbuf's one-hot code, registered beside it: the gearbox's decisions are LUTs of registers
        nb_oh = Signal(slots + 1, init=1)
        ge_t = Signal()                    # nbuf >= t
        cv = codes_on & (ge_t | all_in)
        emit = cv & arr.codes.ready
        m.d.comb += [
            arr.codes.valid.eq(cv),
            arr.codes.payload.last.eq(gsent == groups_m1),
        ]
        for j in range(t):
            m.d.comb += arr.codes.payload.data[j].eq(buf[j])
        # Every next-state value is computed twice, for emit = 0 and emit = 1, from registers only,
        # and `emit` (the array's `ready`: a late signal) chooses between the two at the end: one
        # LUT level after it, not the adder, the compares and the slot muxes (a -6 build's late
        # arrivals ended in `ge_t` and `nb_oh`).
        take = Signal()                    # the queue's head word goes into the gearbox this cycle
        ren = Signal()
        m.d.comb += [
            ren.eq(codes_on & rmore & rq.space),
            rq.issue.eq(ren),
            *(rq.din0[j].eq(self.rs.data[j][:CODE_BITS]) for j in range(lanes)),
            rq.take.eq(take),
            self.rs.en.eq(ren),
            self.rs.addr.eq(raddr),
            self.rs.reg.eq(vs),
        ]
        word_codes = [rq.dout0[j] for j in range(lanes)]
        # n_after <= t - 1: without an emit nbuf < t; with one nbuf < 2 t (or nbuf < t: n_after = 0)
        lt_2t = Cat(nb_oh[:min(2 * t, slots + 1)]).any()
        nxt = {}
        for e in (0, 1):
            take_e = Signal(name=f"take_e{e}")
            m.d.comb += take_e.eq(codes_on & rpend & ((~ge_t | lt_2t) if e else ~ge_t))
            n_after = Signal(range(slots + 1), name=f"n_after_e{e}")
            m.d.comb += n_after.eq(Mux(ge_t, nbuf - t, 0) if e else nbuf)
            # n_after == k, from the one-hot code
            after_is = [Mux(ge_t, nb_oh[k + t] if k + t <= slots else 0, k == 0) if e else nb_oh[k]
                        for k in range(t)]
            vals = []
            for i in range(slots):
                val = (buf[i + t] if i + t < slots else C(0, signed(CODE_BITS))) if e else buf[i]
                for k in range(t):         # n_after == k: the word lands in slots k .. k+lanes-1
                    if 0 <= i - k < lanes:
                        val = Mux(take_e & after_is[k], word_codes[i - k], val)
                v = Signal(signed(CODE_BITS), name=f"slot{i}_e{e}")
                m.d.comb += v.eq(val)
                vals.append(v)
            n_next = Signal.like(nbuf, name=f"n_next_e{e}")
            m.d.comb += n_next.eq(n_after + Mux(take_e, lanes, 0))
            ge = Signal(name=f"ge_t_e{e}")
            oh = Signal(slots + 1, name=f"nb_oh_e{e}")
            m.d.comb += [ge.eq(n_next >= t), oh.eq(Cat(n_next == n for n in range(slots + 1)))]
            nxt[e] = (take_e, vals, n_next, ge, oh)
        m.d.comb += take.eq(Mux(emit, nxt[1][0], nxt[0][0]))
        for i in range(slots):
            m.d.sync += buf[i].eq(Mux(emit, nxt[1][1][i], nxt[0][1][i]))
        m.d.sync += [nbuf.eq(Mux(emit, nxt[1][2], nxt[0][2])), ge_t.eq(Mux(emit, nxt[1][3], nxt[0][3])),
                     nb_oh.eq(Mux(emit, nxt[1][4], nxt[0][4]))]
        with m.If(ren):
            m.d.sync += [raddr.eq(raddr + 1), rmore.eq(raddr != last_read)]
        with m.If(emit):
            m.d.sync += gsent.eq(gsent + 1)
            with m.If(arr.codes.payload.last):
                m.d.sync += codes_on.eq(0)
        with m.If(accept):
            m.d.sync += [codes_on.eq(p.rows != 0), raddr.eq(0), nbuf.eq(0), gsent.eq(0),
                         nb_oh.eq(1), ge_t.eq(0),
                         rmore.eq(1), last_read.eq((p.vl - 1) >> lane_log2)]

        # -- phase 2: memory beats -> array.weights (last per tile, end on the final beat) ----
        bgrp = Signal.like(groups)
        btile = Signal.like(tiles_m1)
        # bgrp == G - 1 as a register of its own (it is the beat's `last`, which the array's
        # `ready` depends on): G == 1 once G is known, then from bgrp == G - 2 at each beat
        w_last = Signal()
        groups_m2 = Signal.like(groups)            # G - 2 (wraps for G = 1: then unused)
        with m.If(st[2]):
            m.d.sync += groups_m2.eq(gq - 2)
        with m.If(st[3]):
            m.d.sync += w_last.eq(groups_m1 == 0)
        # without overlap the stream waits for the whole copy (the array alone would take beat g
        # once group g is written)
        hold = Signal()
        if not self._overlap:
            m.d.comb += hold.eq(codes_on)
        m.d.comb += [
            arr.weights.valid.eq(self.mem.rd.valid & ~hold),
            self.mem.rd.ready.eq(arr.weights.ready & ~hold),
            arr.weights.payload.data.eq(self.mem.rd.payload.data),
            arr.weights.payload.last.eq(w_last),
            arr.weights.payload.end.eq(w_last & (btile == tiles_m1)),
        ]
        with m.If(arr.weights.valid & arr.weights.ready):
            m.d.sync += [bgrp.eq(Mux(w_last, 0, bgrp + 1)), w_last.eq(Mux(w_last, groups_m1 == 0, bgrp == groups_m2))]
            with m.If(w_last):
                m.d.sync += btile.eq(btile + 1)
        with m.If(accept):
            m.d.sync += [bgrp.eq(0), btile.eq(0)]

        # -- phase 3: tile sums -> (x m, clamped shift, round, saturate) -> Vd -----------------
        wsel = Signal(range(wpt))                              # word of the tile on the output
        rows_left = Signal(range(_ROWS_MAX + 1))               # rows from this word on
        waddr = Signal(range(-(-_ROWS_MAX // lanes) + wpt + 1))
        # final (rows_left <= lanes) and tile_last (the tile's last word) are registers of their
        # own, from the next state: `tile_last` is the array's acc.ready, which its weights `ready`
        # depends on (an ECPIX-5 build's worst path ran rows_left -> tile end -> weight slice enables)
        final = Signal(init=1)                                 # this word holds row rows - 1
        tile_last = Signal(init=1)
        m.d.comb += arr.acc.ready.eq(tile_last)
        go0 = busy & arr.acc.valid
        with m.If(go0):
            m.d.sync += [
                wsel.eq(Mux(tile_last, 0, wsel + 1)),
                rows_left.eq(rows_left - lanes),
                waddr.eq(waddr + 1),
                final.eq(rows_left <= 2 * lanes),
                tile_last.eq(Mux(tile_last, wpt == 1, wsel == wpt - 2) | (rows_left <= 2 * lanes)),
            ]
        with m.If(accept):
            m.d.sync += [wsel.eq(0), rows_left.eq(p.rows), waddr.eq(0), final.eq(p.rows <= lanes),
                         tile_last.eq((wpt == 1) | (p.rows <= lanes))]

        acc_word = arr.acc.payload.data.as_value().word_select(wsel, lanes * cfg.acc_bits)

        # the rescale pipeline: registers loaded every cycle, the word's valid/final/addr/mask
        # travelling beside the data (stage k holds what entered RESCALE_LATENCY - k stages ago)
        def reg(k, name, shape, value):
            r = Signal(shape, name=f"{name}_r{k}")
            m.d.sync += r.eq(value)
            return r

        z_shape = signed(p_bits + _T_MAX)
        # (the write enable travels as its own flag, so the write channel's `en` is a register: on a
        # board its path runs on through the register file's write choice into a block RAM)
        side = [(go0, "valid"), (go0 & final, "final"), (waddr, "addr"),
                (Cat(rows_left > j for j in range(lanes)), "mask"), (go0 & (waddr < n_words), "wen")]
        cur = [v for v, _ in side]
        ys = []
        for j in range(lanes):
            # stage 0: the tile's word chosen by wsel (B / lanes : 1), registered before the DSPs
            # (an ECPIX-5 build's worst path ran from wsel through that choice into a DSP's input)
            a = reg(0, f"accw{j}", acc_shape, acc_word[j * cfg.acc_bits:(j + 1) * cfg.acc_bits].as_signed())
            # stages 1 .. _PRODUCT_STAGES: p = acc * m, 18x18 partial products and one adder level
            # per stage (hw.core.arith), padded to _PRODUCT_STAGES stages
            pr, pk = _product(a, mant, reg, f"prod{j}", m, lambda k: C(1, 1))
            for k in range(pk + 1, _PRODUCT_STAGES + 1):
                pr = reg(k, f"prod{j}_pad", pr.shape(), pr)
            # z = floor(p * 2**t) = (p << _T_MAX) >> rsa (arithmetic), a shift by a multiple of 8 ...
            wide = Signal(z_shape, name=f"wide{j}")
            m.d.comb += wide.eq(pr << _T_MAX)
            k = _PRODUCT_STAGES + 1
            z1 = reg(k, f"zc{j}", z_shape, wide >> Cat(C(0, 3), rsa[3:]))
            # ... then by rsa % 8 and y = (z + 1) >> 1 on the low FX_BITS + 2 bits of z; a z beyond
            # them saturates whatever the rounding (|z| >= 2**(FX_BITS + 1))
            z = Signal(z_shape, name=f"z{j}")
            m.d.comb += z.eq(z1 >> rsa[:3])
            zl = z[:N.FX_BITS + 2].as_signed()
            r = reg(k + 1, f"round{j}", signed(N.FX_BITS + 2), (zl + 1) >> 1)
            top = z[N.FX_BITS + 1:]
            ovf = reg(k + 1, f"ovf{j}", 1, ~((top == 0) | (top == (1 << len(top)) - 1)))
            neg = reg(k + 1, f"neg{j}", 1, z[-1])
            # saturation to FX: r (FX_BITS + 1 bits at most) fits when its top 3 bits agree
            fits = (r[N.FX_BITS - 1:] == 0) | (r[N.FX_BITS - 1:] == 0b111)
            y = reg(k + 2, f"y{j}", FX, Mux(ovf | ~fits, Mux(neg, N.FX_MIN, N.FX_MAX), r[:N.FX_BITS]))
            ys.append(y)
        for k in range(1, RESCALE_LATENCY + 1):
            cur = [reg(k, name, v.shape(), v) for v, (_, name) in zip(cur, side, strict=True)]
        v3, final3, addr3, mask3, wen3 = cur
        m.d.comb += [
            self.wd.reg.eq(vd),
            self.wd.addr.eq(addr3),
            self.wd.mask.eq(mask3),
            self.wd.en.eq(wen3),
        ]
        for j in range(lanes):
            m.d.comb += self.wd.data[j].eq(ys[j])

        # -- done ---------------------------------------------------------------------------
        m.d.comb += self.done.eq(busy & ((v3 & final3) | zero_rows))
        with m.If(self.done):
            m.d.sync += [busy.eq(0), zero_rows.eq(0)]
        return m

