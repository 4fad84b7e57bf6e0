"""The core's load/store unit: LDV SV LDG LDGT LDE (vector <-> memory) and LDW LDF (memory -> A, F)
as a functional unit behind the register channels of hw.core.iface and one memory port
(hw.mem.port).

Reference: ``golden.machine``'s handlers ``_ldv _sv _ldg _ldgt _lde _ldw _ldf`` (bit for bit, with the
hardware's definitions below where the golden machine faults or keeps more bits).

Data path. A vector occupies the byte range ``[addr, addr + es * VL)`` (es: the element size,
2 LDG/LDE, 4 LDGT/LDW/LDF, 8 LDV/SV). The unit moves the whole beats of the lines that cover it,
in bursts of at most MAX_BURST beats, and realigns between the port's beats ("raw" beats, which
start at a line) and "aligned" beats, which start at ``addr``: with ``off = addr % beat_bytes``,

    aligned[i] = raw[i][off:] ++ raw[i + 1][:off]          (bytes)

Loads keep the previous raw beat in a register and build ``aligned[i]`` when ``raw[i + 1]`` arrives
(directly from ``raw[i]`` when ``off == 0``; from the previous beat alone after the last raw beat,
when the vector's tail lies within it). An aligned beat is then cut into steps of
``P = min(lanes, beat_bytes // es)`` elements, one step per cycle, each converted to FX and placed
into a word of Vd (a word takes ``lanes // P`` steps). Stores run the same in reverse: words of Vs
are cut into (or gathered into) aligned beats of ``beat_bytes // 8`` elements, and
``raw[k] = aligned[k - 1][beat - off:] ++ aligned[k][:beat - off]`` goes out with the byte mask of
the vector's bytes (partial first and last beats; the others untouched).
"""
from __future__ import annotations

from types import SimpleNamespace

from amaranth import C, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from hw.mem.port import ADDR_BITS, LEN_BITS, MAX_BURST, MemPortSignature
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

from .common import CoreUnit
from .iface import (
    AWriteBack,
    FWriteBack,
    ReadChannel,
    WriteChannel,
    unit_cmd_layout,
)

__all__ = ["ELEMENT_BYTES", "MNEMONICS", "LoadStoreUnit", "bf16_to_fx", "elements_per_cycle", "sf_from_f32"]

#: The instructions this unit runs and their element size in bytes.
ELEMENT_BYTES = {"LDG": 2, "LDE": 2, "LDGT": 4, "LDW": 4, "LDF": 4, "LDV": 8, "SV": 8}
MNEMONICS = tuple(ELEMENT_BYTES)

FX = signed(N.FX_BITS)
#: Beat counters: 8 * VL_MAX bytes from an unaligned start cover at most VL_MAX + 1 beats of 8 bytes.
_COUNT = unsigned((isa.VL_MAX + 1).bit_length())
_LEFT = unsigned(isa.VL_MAX.bit_length() + 1)

# bf16 -> FX: value * 2**FX_FRAC = (128 + f) * 2**(e - 127 - 7 + FX_FRAC) for a normal bf16
_BF16_SHIFT0 = 127 + 7 - N.FX_FRAC           # e at which the integer mantissa is the FX value (110)
_BF16_GUARD = 9                              # bits kept below the binary point: m < 2**8 ...
_BF16_LO = _BF16_SHIFT0 - _BF16_GUARD        # ... so for e < 101 |value * 2**24| < 1/2 rounds to 0
_BF16_HI = _BF16_SHIFT0 + N.FX_BITS - 8      # e >= 150: (128 + f) << (e - 110) >= 2**47: saturates


def elements_per_cycle(config: AccelConfig, mnemonic: str) -> int:
    """Elements moved per cycle while the port streams: min(vector_lanes, beat_bytes // es)."""
    return min(config.vector_lanes, config.beat_bytes // ELEMENT_BYTES[mnemonic])


def bf16_to_fx(bits):
    """Combinational spec.numerics.bf16_to_fx of one 16-bit Value: value * 2**FX_FRAC, half away
    from zero, saturated to FX. Zero and denormals give 0; Inf/NaN saturate (the golden faults)."""
    sign, e, f = bits[15], bits[7:15], bits[0:7]
    mant = Cat(f, C(1, 1))                                     # 128 + f
    wide = (mant << (e - _BF16_LO)[:6])[:8 + N.FX_BITS + _BF16_GUARD - 1]
    mag = ((wide + (1 << (_BF16_GUARD - 1))) >> _BF16_GUARD)[:N.FX_BITS]
    sat = Mux(sign, N.FX_MIN, N.FX_MAX)
    val = Mux(sign, -mag.as_signed(), mag.as_signed())
    return Mux(e >= _BF16_HI, sat, Mux(e < _BF16_LO, 0, val))


def sf_from_f32(m: Module, bits, mantissa, exponent) -> None:
    """Comb statements: (mantissa, exponent) = golden.ops.sf_from_float(float32 `bits`) for a
    finite non-negative value (the sign is ignored; Inf/NaN give some value): the significand
    normalized to SF_BITS with its top bit set (denormals too), zero as (0, 0)."""
    assert N.SF_BITS == 24, "a float32 significand is 24 bits"
    e, f = bits[23:31], bits[0:23]
    with m.If(e != 0):
        m.d.comb += [mantissa.eq(Cat(f, C(1, 1))), exponent.eq(e - 150)]
    with m.Elif(f != 0):
        # f * 2**-149: shift the leading one of f up to bit 23
        for i in range(23):
            with m.If(f[i]):
                m.d.comb += [mantissa.eq(f << (23 - i)), exponent.eq(-149 - (23 - i))]
    with m.Else():
        m.d.comb += [mantissa.eq(0), exponent.eq(0)]


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


class LoadStoreUnit(CoreUnit):
    """Functional unit for the memory instructions (hw.core.iface unit contract).

    Parameters
    ----------
    config : AccelConfig
        ``beat_bytes`` (the memory port's beat), ``vector_lanes`` and ``vlen``; checked with
        `hw.core.iface.check_core_config` (beat_bytes >= 8, lanes divide beat_bytes and vlen).

    Attributes
    ----------
    cmd : In(stream.Signature(unit_cmd_layout(config)))
        The instruction: ``op`` (one of :data:`MNEMONICS`' opcodes), ``vl`` (1 .. vlen), ``vd``
        (loads), ``vs`` (SV), ``ad`` (LDW), ``fd`` (LDF) and ``addr``, the final byte address
        (A[base] + offset, for LDE plus 2 * A[At] * VL), aligned to the element size (the golden
        machine faults otherwise). The port sees ``addr`` modulo 2**ADDR_BITS. ``ready`` is high
        exactly while the unit is idle. Another opcode does nothing and is done the cycle after.
    done : Out(1)
        One-cycle pulse: loads in the cycle of the last register write (``wd``, ``awb`` or
        ``fwb``: performed at the end of that cycle); SV in the cycle the port accepts the last
        write beat. The unit is idle (``cmd.ready``) from the next cycle.
    rs : Out(ReadChannel(config))
        SV's reads of Vs: words 0 .. ceil(VL / lanes) - 1 in order, each once.
    wd : Out(WriteChannel(config))
        Loads' writes of Vd: words 0 .. ceil(VL / lanes) - 1 in order, each once; ``mask`` is the
        lanes below VL (elements at or past VL are never written).
    awb : Out(AWriteBack())
        LDW: A[ad] = sign_extend(int32 at addr), one cycle.
    fwb : Out(FWriteBack())
        LDF: F[fd] = sf_from_float(float32 at addr), one cycle (:func:`sf_from_f32`).
    mem : Out(MemPortSignature(beat_bytes))
        Reads (loads) or writes (SV) of the lines ``addr // beat .. (addr + es*VL - 1) // beat``,
        in commands of at most MAX_BURST beats; SV's beats carry the byte mask of the vector.

    Element conversions (into the 48-bit FX register element):

    ====  =========================================================================================
    LDV   the low 48 bits of the little-endian int64, as signed (programs load FX values, which
          fit; the golden register would keep all 64 bits)
    LDG   int16, sign-extended
    LDGT  uint32, zero-extended
    LDE   :func:`bf16_to_fx`: value * 2**24 rounded half away from zero, saturated to FX (exact as
          spec.numerics.bf16_to_fx; Inf/NaN saturate where the golden faults)
    SV    writes the int64 sign extension of each 48-bit element
    ====  =========================================================================================

    Throughput: while the port streams (``rd.valid`` / ``wr.ready`` every cycle) the unit moves
    :func:`elements_per_cycle` = min(lanes, beat_bytes // es) elements per cycle, i.e. one register
    word per cycle, or one beat per cycle when a beat holds less than a word. It never deadlocks
    under stalls of ``mem.cmd``, ``mem.rd`` or ``mem.wr``: every beat of a read command is taken
    and the write beats are offered in order once their command is accepted.

    Latency (no stalls, ``cmd`` accepted in cycle 0, a port that takes the command in cycle 1 and
    returns the first read beat in cycle 2): the memory command is offered in cycle 1. A load
    writes its first word in cycle ``3 + lanes // P`` (P = :func:`elements_per_cycle`), one cycle
    later when ``addr`` is not at a line start (the first aligned beat needs the second raw beat,
    or, for a vector within one line, the cycle that flushes the only one); ``done`` comes with
    the last write (LDW/LDF: cycle 4, or 5 off a line start). SV reads Vs from cycle 1 and offers
    its first write beat in cycle ``2 + (beat_bytes // 8) // P`` (not before the write command is
    accepted); ``done`` with the last beat accepted. The next instruction can be accepted the
    cycle after ``done``.
    """

    def __init__(self, config: AccelConfig):
        super().__init__(config, lambda lanes: {
            "cmd": In(stream.Signature(unit_cmd_layout(config))),
            "done": Out(1),
            "rs": Out(ReadChannel(config)),
            "wd": Out(WriteChannel(config)),
            "awb": Out(AWriteBack()),
            "fwb": Out(FWriteBack()),
            "mem": Out(MemPortSignature(config.beat_bytes)),
        })

    @property
    def _beat(self) -> int:
        return self._config.beat_bytes

    def elaborate(self, platform):
        m = Module()
        L, beat = self._lanes, self._beat
        lb = beat.bit_length() - 1              # log2(beat_bytes)
        llog = L.bit_length() - 1               # log2(lanes): lanes divides a power of two
        assert 1 << lb == beat and 1 << llog == L
        bbits = 8 * beat
        code = {mn: isa.BY_MNEMONIC[mn].code for mn in MNEMONICS}
        cmd = self.cmd.payload
        port = self.mem

        # element-size groups: 0 = 2 bytes, 1 = 4 bytes, 2 = 8 bytes
        sizes = (2, 4, 8)
        E = [beat // es for es in sizes]                 # elements per aligned beat
        P = [min(L, e) for e in E]                       # elements per step
        SA = [e // p for e, p in zip(E, P, strict=True)]  # steps per aligned beat
        SW = [L // p for p in P]                         # steps per register word

        # -- instruction state --------------------------------------------------------------------
        busy = Signal()
        loading = Signal()                   # a load (vector or scalar) is running
        storing = Signal()                   # SV is running
        grp = Signal(range(3))
        is_lde = Signal()
        is_ldw = Signal()
        is_ldf = Signal()
        scalar = Signal()
        off = Signal(lb)                     # addr % beat_bytes
        n_raw = Signal(_COUNT)               # R: beats of the lines covering the vector
        n_aligned = Signal(_COUNT)           # A = ceil(es * VL / beat)
        left = Signal(_LEFT)                 # elements still to move
        ad = Signal.like(self.awb.idx)
        fd = Signal.like(self.fwb.idx)
        done_r = Signal()                    # registered done (loads, unknown opcodes)
        done_sv = Signal()                   # combinational done (SV's last write beat accepted)

        # memory commands
        cmd_left = Signal(_COUNT)            # beats not yet commanded
        cmd_line = Signal(ADDR_BITS - lb)
        commanded = Signal(_COUNT)           # beats of the accepted commands
        cmd_write = Signal()

        m.d.comb += [
            self.cmd.ready.eq(~busy),
            self.done.eq(done_r | done_sv),
        ]
        m.d.sync += done_r.eq(0)
        with m.If(self.done):
            m.d.sync += [busy.eq(0), loading.eq(0), storing.eq(0)]

        # -- accept ------------------------------------------------------------------------------
        a_grp = Signal(range(3))
        a_scalar = Signal()
        a_known = Signal()
        with m.Switch(cmd.op):
            for mn, es in ELEMENT_BYTES.items():
                with m.Case(code[mn]):
                    m.d.comb += [a_grp.eq(sizes.index(es)), a_known.eq(1), a_scalar.eq(mn in ("LDW", "LDF"))]
        a_vl = Signal(_LEFT)
        a_bytes = Signal(_LEFT.width + 3)
        a_off = Signal(lb)
        m.d.comb += [
            a_vl.eq(Mux(a_scalar, 1, cmd.vl)),
            a_bytes.eq(a_vl << (a_grp + 1)),
            a_off.eq(cmd.addr[:lb]),
        ]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                busy.eq(1),
                loading.eq(a_known & (cmd.op != code["SV"])),
                storing.eq(cmd.op == code["SV"]),
                done_r.eq(~a_known),
                grp.eq(a_grp),
                is_lde.eq(cmd.op == code["LDE"]),
                is_ldw.eq(cmd.op == code["LDW"]),
                is_ldf.eq(cmd.op == code["LDF"]),
                scalar.eq(a_scalar),
                off.eq(a_off),
                n_raw.eq(((a_off + a_bytes - 1) >> lb) + 1),
                n_aligned.eq((a_bytes + beat - 1) >> lb),
                left.eq(a_vl),
                ad.eq(cmd.ad),
                fd.eq(cmd.fd),
                cmd_left.eq(Mux(a_known, ((a_off + a_bytes - 1) >> lb) + 1, 0)),
                cmd_line.eq(cmd.addr[lb:ADDR_BITS]),
                cmd_write.eq(cmd.op == code["SV"]),
                commanded.eq(0),
                self.rs.reg.eq(cmd.vs),
                self.wd.reg.eq(cmd.vd),
            ]

        # -- memory commands: bursts of at most MAX_BURST beats --------------------------------------
        burst = Signal(LEN_BITS)
        m.d.comb += [
            burst.eq(Mux(cmd_left > MAX_BURST, MAX_BURST, cmd_left)),
            port.cmd.valid.eq(busy & (cmd_left != 0)),
            port.cmd.payload.addr.eq(cmd_line),
            port.cmd.payload.len.eq(burst),
            port.cmd.payload.write.eq(cmd_write),
        ]
        with m.If(port.cmd.valid & port.cmd.ready):
            m.d.sync += [
                cmd_left.eq(cmd_left - burst),
                cmd_line.eq(cmd_line + burst),
                commanded.eq(commanded + burst),
            ]

        s = SimpleNamespace(L=L, beat=beat, bbits=bbits, lb=lb, llog=llog, sizes=sizes, P=P, SA=SA, SW=SW,
                            grp=grp, loading=loading, storing=storing, scalar=scalar, is_lde=is_lde,
                            is_ldw=is_ldw, is_ldf=is_ldf, off=off, a_grp=a_grp, n_raw=n_raw,
                            n_aligned=n_aligned,
                            left=left, ad=ad, fd=fd, done_r=done_r, done_sv=done_sv, commanded=commanded)
        self._elaborate_load(m, s)
        self._elaborate_store(m, s)
        return m

    # -- loads -------------------------------------------------------------------------------------
    def _elaborate_load(self, m: Module, s: SimpleNamespace) -> None:
        L, bbits, sizes, P, SA, SW = s.L, s.bbits, s.sizes, s.P, s.SA, s.SW
        grp, loading, scalar, off, left = s.grp, s.loading, s.scalar, s.off, s.left
        rd, wd = self.mem.rd, self.wd
        accept = self.cmd.valid & self.cmd.ready

        prev = Signal(bbits)                 # the last raw beat taken
        rcv = Signal(_COUNT)                 # raw beats taken
        aprod = Signal(_COUNT)               # aligned beats built
        ab = Signal(bbits)                   # the aligned beat being cut into steps
        ab_valid = Signal()
        ab_step = Signal(range(max(2, max(SA))))
        word_step = Signal(range(max(2, max(SW))))
        waddr = Signal.like(wd.addr)
        with m.If(accept):
            m.d.sync += [rcv.eq(0), aprod.eq(0), ab_valid.eq(0), ab_step.eq(0), word_step.eq(0), waddr.eq(0)]

        # per-group step constants of the running instruction
        p_cur = Signal(range(max(P) + 1))
        sa_last = Signal.like(ab_step)
        sw_last = Signal.like(word_step)
        last_elems = Signal()                # this step holds the vector's last element
        # registered at acceptance, from the command's group
        with m.If(accept):
            with m.Switch(s.a_grp):
                for g in range(3):
                    with m.Case(g):
                        m.d.sync += [p_cur.eq(P[g]), sa_last.eq(SA[g] - 1), sw_last.eq(SW[g] - 1)]

        ab_last = Signal()                   # this step empties the aligned beat
        word_last = Signal()                 # this step completes a register word
        step = Signal()
        ab_free = Signal()
        m.d.comb += [
            step.eq(loading & ab_valid),
            last_elems.eq(left <= p_cur),
            ab_last.eq((ab_step == sa_last) | last_elems),
            word_last.eq((word_step == sw_last) | last_elems),
            ab_free.eq(~ab_valid | ab_last),
        ]

        # -- raw beats -> aligned beats --------------------------------------------------------------
        raw_more = Signal()
        m.d.comb += [raw_more.eq(rcv != s.n_raw), rd.ready.eq(loading & raw_more & ab_free)]

        def realign(lo, hi):
            # bytes off .. off + beat - 1 of lo ++ hi; off is even (element-aligned, es >= 2)
            return Cat(lo, hi).bit_select(Cat(C(0, 4), off[1:]), bbits)

        with m.If(step):
            m.d.sync += ab_step.eq(Mux(ab_last, 0, ab_step + 1))
            with m.If(ab_last):
                m.d.sync += ab_valid.eq(0)
        new_ab = Signal()
        new_ab_data = Signal(bbits)
        with m.If(rd.valid & rd.ready):
            m.d.sync += [prev.eq(rd.payload.data), rcv.eq(rcv + 1)]
            with m.If(off == 0):
                m.d.comb += [new_ab.eq(1), new_ab_data.eq(rd.payload.data)]
            with m.Elif(rcv != 0):
                m.d.comb += [new_ab.eq(1), new_ab_data.eq(realign(prev, rd.payload.data))]
        with m.Elif(loading & ~raw_more & (aprod != s.n_aligned) & ab_free):
            # the vector's tail lies within the last raw beat
            m.d.comb += [new_ab.eq(1), new_ab_data.eq(realign(prev, C(0, bbits)))]
        with m.If(new_ab):
            m.d.sync += [ab.eq(new_ab_data), ab_valid.eq(1), ab_step.eq(0), aprod.eq(aprod + 1)]

        # -- steps: P elements of the aligned beat into a word of Vd ---------------------------------
        m.d.sync += [wd.en.eq(0), self.awb.en.eq(0), self.fwb.en.eq(0)]
        vals = []                            # per group: the P converted elements of this step
        for g, es in enumerate(sizes):
            width = P[g] * es * 8
            chunk = ab[:width] if SA[g] == 1 else ab.word_select(ab_step[:_ceil_log2(SA[g])], width)
            elems = [chunk[k * es * 8:(k + 1) * es * 8] for k in range(P[g])]
            conv = []
            for k, x in enumerate(elems):
                v = Signal(FX, name=f"conv{es}_{k}")
                if es == 2:
                    m.d.comb += v.eq(Mux(s.is_lde, bf16_to_fx(x), x.as_signed()))
                elif es == 4:
                    m.d.comb += v.eq(x)                      # LDGT: zero-extended
                else:
                    m.d.comb += v.eq(x[:N.FX_BITS].as_signed())
                conv.append(v)
            vals.append(conv)
        # LDW / LDF: element 0 of the first aligned beat (the 4 bytes at addr)
        w32 = ab[:32]
        mant, expo = Signal(N.SF_BITS), Signal(signed(N.SF_EXP_BITS))
        sf_from_f32(m, w32, mant, expo)
        with m.If(step):
            m.d.sync += word_step.eq(Mux(word_last, 0, word_step + 1))
            m.d.sync += left.eq(left - p_cur)
            with m.Switch(grp):
                for g in range(3):
                    with m.Case(g):
                        for lane in range(L):
                            slot, k = divmod(lane, P[g])
                            with m.If(word_step == slot):
                                m.d.sync += [wd.data[lane].eq(vals[g][k]), wd.mask[lane].eq(k < left)]
                            with m.Elif(word_step == 0):
                                m.d.sync += wd.mask[lane].eq(0)
            with m.If(word_last & ~scalar):
                m.d.sync += [wd.en.eq(1), wd.addr.eq(waddr), waddr.eq(waddr + 1)]
            with m.If(last_elems):
                m.d.sync += [s.done_r.eq(1), ab_valid.eq(0)]
                m.d.sync += [
                    self.awb.en.eq(s.is_ldw),
                    self.awb.idx.eq(s.ad),
                    self.awb.value.eq(w32.as_signed()),
                    self.fwb.en.eq(s.is_ldf),
                    self.fwb.idx.eq(s.fd),
                    self.fwb.value.mantissa.eq(mant),
                    self.fwb.value.exponent.eq(expo),
                ]

    # -- SV ----------------------------------------------------------------------------------------
    def _elaborate_store(self, m: Module, s: SimpleNamespace) -> None:
        L, beat, bbits, lb, llog = s.L, s.beat, s.bbits, s.lb, s.llog
        storing, off, n_raw, left = s.storing, s.off, s.n_raw, s.left
        rs, wr = self.rs, self.mem.wr
        cmd = self.cmd.payload
        accept = self.cmd.valid & self.cmd.ready
        E = beat // 8
        P = min(L, E)
        SW = L // P                          # pieces per register word
        SA = E // P                          # pieces per aligned beat

        raddr = Signal.like(rs.addr)
        last_word = Signal.like(rs.addr)
        more = Signal()                      # words left to read
        rvalid = Signal()                    # rs.data holds a word not yet fully handed on
        wsub = Signal(range(max(2, SW)))
        apos = Signal(range(max(2, SA)))
        acc = Signal(bbits)                  # the aligned beat being gathered (SA > 1)
        acc_mask = Signal(beat)
        prev = Signal(bbits)                 # the previous aligned beat and its byte mask
        prev_mask = Signal(beat)
        out_full = Signal()                  # the write beat register holds a beat
        out_data = Signal(bbits)
        out_mask = Signal(beat)
        outs = Signal(_COUNT)                # write beats built
        sent = Signal(_COUNT)                # write beats accepted by the port
        pieces_done = Signal()
        with m.If(accept):
            m.d.sync += [
                raddr.eq(0), last_word.eq((cmd.vl - 1) >> llog), more.eq(1), rvalid.eq(0),
                wsub.eq(0), apos.eq(0), prev_mask.eq(0), out_full.eq(0), outs.eq(0), sent.eq(0),
                pieces_done.eq(0),
            ]

        # -- the piece: P elements of the word in rs.data, as int64 bytes and their mask ----------------
        word = rs.data.as_value()
        pw = P * N.FX_BITS
        sel = word[:pw] if SW == 1 else word.word_select(wsub[:_ceil_log2(SW)], pw)
        piece = Signal(64 * P)
        pmask = Signal(8 * P)
        for k in range(P):
            e = sel[k * N.FX_BITS:(k + 1) * N.FX_BITS].as_signed()
            m.d.comb += [
                piece[64 * k:64 * (k + 1)].eq(e),
                pmask[8 * k:8 * (k + 1)].eq(Mux(k < left, 0xFF, 0)),
            ]

        last_piece = Signal()
        completes = Signal()
        out_free = Signal()
        consume = Signal()
        word_end = Signal()
        take = Signal()
        m.d.comb += [
            last_piece.eq(left <= P),
            completes.eq((apos == SA - 1) | last_piece),
            out_free.eq(~out_full | (wr.valid & wr.ready)),
            consume.eq(storing & rvalid & (~completes | out_free)),
            word_end.eq((wsub == SW - 1) | last_piece),
            take.eq(consume & word_end),
        ]

        # -- reads: the read port is the stage in front of the pieces ------------------------------
        ren = Signal()
        m.d.comb += [ren.eq(storing & more & (~rvalid | take)), rs.en.eq(ren), rs.addr.eq(raddr)]
        with m.If(ren):
            m.d.sync += [raddr.eq(raddr + 1), rvalid.eq(1)]
            with m.If(raddr == last_word):
                m.d.sync += more.eq(0)
        with m.Elif(take):
            m.d.sync += rvalid.eq(0)

        # -- the aligned beat this piece completes ----------------------------------------------------
        ab = Signal(bbits)
        ab_mask = Signal(beat)
        for k in range(SA):
            here = apos == k
            m.d.comb += [
                ab[k * 64 * P:(k + 1) * 64 * P].eq(Mux(here, piece, acc[k * 64 * P:(k + 1) * 64 * P])),
                ab_mask[k * 8 * P:(k + 1) * 8 * P].eq(
                    Mux(here, pmask, Mux(apos > k, acc_mask[k * 8 * P:(k + 1) * 8 * P], 0))),
            ]

        def misalign(lo, hi):
            # raw[k] = lo[beat - off:] ++ hi[:beat - off]: bytes beat - off .. 2 * beat - off - 1
            sh = Signal(lb + 1)
            m.d.comb += sh.eq(beat - off)
            return Cat(lo, hi).bit_select(Cat(C(0, 6), sh[3:]), len(lo))

        def misalign_mask(lo, hi):
            sh = Signal(lb + 1)
            m.d.comb += sh.eq(beat - off)
            return Cat(lo, hi).bit_select(sh, len(lo))

        with m.If(consume):
            m.d.sync += [
                left.eq(left - P),
                wsub.eq(Mux(word_end, 0, wsub + 1)),
                apos.eq(Mux(completes, 0, apos + 1)),
                acc.eq(ab),
                acc_mask.eq(ab_mask),
            ]
            with m.If(last_piece):
                m.d.sync += pieces_done.eq(1)

        # -- write beats --------------------------------------------------------------------------
        m.d.comb += [
            wr.valid.eq(out_full & (sent != s.commanded)),
            wr.payload.data.eq(out_data),
            wr.payload.mask.eq(out_mask),
            s.done_sv.eq(storing & wr.valid & wr.ready & (sent == n_raw - 1)),
        ]
        with m.If(wr.valid & wr.ready):
            m.d.sync += [sent.eq(sent + 1), out_full.eq(0)]
        with m.If(consume & completes):
            m.d.sync += [
                out_data.eq(misalign(prev, ab)), out_mask.eq(misalign_mask(prev_mask, ab_mask)),
                out_full.eq(1), outs.eq(outs + 1), prev.eq(ab), prev_mask.eq(ab_mask),
            ]
        with m.Elif(storing & pieces_done & (outs != n_raw) & out_free):
            # the last raw beat: the tail of the last aligned beat
            m.d.sync += [
                out_data.eq(misalign(prev, C(0, bbits))), out_mask.eq(misalign_mask(prev_mask, C(0, beat))),
                out_full.eq(1), outs.eq(outs + 1),
            ]
