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

Pipeline (one carry chain or a few LUT levels between registers; ECP5 estimate 8.4 ns):

* acceptance registers the command as it comes (the opcode decoded, VL, the offset); a setup
  cycle (SETUP_LATENCY) computes the beat counts from those registers; the memory command and
  the reads of Vs start after it;
* every flow-control decision is taken from registers: the counters run down with registered
  "more" / "last" flags beside them (raw beats, aligned beats, elements: ``last`` is
  ``left <= P`` registered, computed as ``left <= 2 P`` the step before), and the data muxes of
  the aligned beat, the previous beat and the write beat select by registered state, so a
  handshake input (``rd.valid``, ``wr.ready``) only enables registers;
* loads: a step's elements are converted and written into Vd LOAD_LATENCY cycles after the step:
  at once for LDV LDG LDGT LDW; LDE through two stages (the bf16 fields, then the signed
  significand: +-(128 + f), or for small values the rounded one) and a shift by a mux per bit in
  the write stage; LDF through the leading-zero count, then the shift;
* SV: the write beats go through a two-entry queue, so a piece is taken while the second entry
  is free (registered), never from ``wr.ready`` of the same cycle; a write beat is offered
  while the accepted write commands have beats left (``may_send``, registered from a count).
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
from .readq import ReadQueue

__all__ = ["ELEMENT_BYTES", "LOAD_LATENCY", "MNEMONICS", "SETUP_LATENCY", "LoadStoreUnit",
           "elements_per_cycle"]

#: The instructions this unit runs and their element size in bytes.
ELEMENT_BYTES = {"LDG": 2, "LDE": 2, "LDGT": 4, "LDW": 4, "LDF": 4, "LDV": 8, "SV": 8}
MNEMONICS = tuple(ELEMENT_BYTES)

FX = signed(N.FX_BITS)
#: Cycles between a command's acceptance and its start: the command is registered as it comes,
#: the counts (beats, aligned beats, the last word) are computed from those registers in the next
#: cycle, and the memory command goes out in the cycle after that.
SETUP_LATENCY = 1
#: Per load: cycles from the step that takes an element out of its aligned beat to its register
#: write (wd, awb or fwb, with done for the last). LDE's bf16 -> FX conversion runs in two stages
#: before the write (the fields; the signed significand, rounded for small values), the shift and
#: the saturation in the write stage; LDF's normalization in one (the leading zeros) before the
#: write (the shift).
LOAD_LATENCY = {"LDV": 1, "LDG": 1, "LDGT": 1, "LDE": 3, "LDW": 1, "LDF": 2}

# bf16 -> FX: value * 2**FX_FRAC = (128 + f) * 2**(e - 127 - 7 + FX_FRAC) for a normal bf16
_BF16_SHIFT0 = 127 + 7 - N.FX_FRAC           # e at which the integer mantissa is the FX value (110)
_BF16_GUARD = 9                              # bits kept below the binary point: m < 2**8 ...
_BF16_LO = _BF16_SHIFT0 - _BF16_GUARD        # ... so for e < 101 |value * 2**24| < 1/2 rounds to 0
_BF16_HI = _BF16_SHIFT0 + N.FX_BITS - 8      # e >= 150: (128 + f) << (e - 110) >= 2**47: saturates


def elements_per_cycle(config: AccelConfig, mnemonic: str) -> int:
    """Elements moved per cycle while the port streams: min(vector_lanes, beat_bytes // es)."""
    return min(config.vector_lanes, config.beat_bytes // ELEMENT_BYTES[mnemonic])


def _sf_normalize(m: Module, e, f, lz, mantissa, exponent) -> None:
    """The second half of golden.ops.sf_from_float of a finite non-negative float32 (the first is
    `lz`, the leading zeros of its fraction): exponent field `e`, fraction `f` (23 bits) to the
    significand normalized to SF_BITS with its top bit set (denormals too), zero as (0, 0)."""
    assert N.SF_BITS == 24, "a float32 significand is 24 bits"
    with m.If(e != 0):
        m.d.comb += [mantissa.eq(Cat(f, C(1, 1))), exponent.eq(e - 150)]
    with m.Elif(f != 0):
        # f * 2**-149: shift the leading one of f (bit 22 - lz) up to bit 23
        m.d.comb += [mantissa.eq((f << 1) << lz[:5]), exponent.eq(-150 - lz[:5])]
    with m.Else():
        m.d.comb += [mantissa.eq(0), exponent.eq(0)]


def _ceil_log2(n: int) -> int:
    return (n - 1).bit_length()


def _lzc(m: Module, x, name: str):
    """Leading zeros of `x` (a width that is a power of two): a tree of muxes, log2(width) levels."""
    n = len(x)
    if n == 1:
        return ~x[0]
    half = n // 2
    hi, lo = _lzc(m, x[half:], name + "h"), _lzc(m, x[:half], name + "l")
    out = Signal(range(n + 1), name=name)
    m.d.comb += out.eq(Mux(x[half:] != 0, hi, half + lo))
    return out


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
        LDF: F[fd] = sf_from_float(float32 at addr), in two stages (the leading zeros, then the shift).
    mem : Out(MemPortSignature(beat_bytes))
        Reads (loads) or writes (SV) of the lines ``addr // beat .. (addr + es*VL - 1) // beat``,
        in commands of at most MAX_BURST beats; SV's beats carry the byte mask of the vector.

    Element conversions (into the 48-bit FX register element):

    ====  =========================================================================================
    LDV   the low 48 bits of the little-endian int64, as signed (programs load FX values, which
          fit; the golden register would keep all 64 bits)
    LDG   int16, sign-extended
    LDGT  uint32, zero-extended
    LDE   value * 2**24 rounded half away from zero, saturated to FX (exact as
          spec.numerics.bf16_to_fx; Inf/NaN saturate where the golden faults), in stages
          (module docstring)
    SV    writes the int64 sign extension of each 48-bit element
    ====  =========================================================================================

    Throughput: while the port streams (``rd.valid`` / ``wr.ready`` every cycle) the unit moves
    :func:`elements_per_cycle` = min(lanes, beat_bytes // es) elements per cycle, i.e. one register
    word per cycle, or one beat per cycle when a beat holds less than a word. It never deadlocks
    under stalls of ``mem.cmd``, ``mem.rd`` or ``mem.wr``: every beat of a read command is taken
    and the write beats are offered in order once their command is accepted.

    Latency (no stalls, ``cmd`` accepted in cycle 0, S = :data:`SETUP_LATENCY`, a port that takes
    the command in the cycle it is offered and returns the first read beat in the next): the
    memory command is offered in cycle ``1 + S``. A load writes its first word in cycle
    ``2 + S + lanes // P + LOAD_LATENCY[op]`` (P = :func:`elements_per_cycle`), one cycle later
    when ``addr`` is not at a line start (the first aligned beat needs the second raw beat, or,
    for a vector within one line, the cycle that flushes the only one); ``done`` comes with the
    last write (LDW/LDF: cycle ``3 + S + LOAD_LATENCY[op]``, one more off a line start). SV reads
    Vs from cycle ``1 + S`` (the words at the read queue's head from cycle ``1 + S + 3``,
    hw.core.readq) and offers its first write beat in cycle ``4 + S + (beat_bytes // 8) // P`` (not
    before the write command is accepted); ``done`` the cycle after its last beat is accepted
    (``done`` is always a register). The
    next instruction can be accepted the cycle after ``done``.
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
        vlen = self._config.vlen
        code = {mn: isa.BY_MNEMONIC[mn].code for mn in MNEMONICS}
        cmd = self.cmd.payload
        port = self.mem
        # widths from vlen (cmd.vl <= vlen): VL, and beats (8 * vlen bytes cover at most vlen + 1 beats)
        vlw = vlen.bit_length()
        count = unsigned((vlen + 1).bit_length())

        # element-size groups: 0 = 2 bytes, 1 = 4 bytes, 2 = 8 bytes (SV's too)
        sizes = (2, 4, 8)
        E = [beat // es for es in sizes]                 # elements per aligned beat
        P = [min(L, e) for e in E]                       # elements per step
        SA = [e // p for e, p in zip(E, P, strict=True)]  # steps per aligned beat
        SW = [L // p for p in P]                         # steps per register word

        # -- instruction state --------------------------------------------------------------------
        busy = Signal()
        setup = Signal()                     # the cycle after acceptance: the counts
        setup2 = Signal()                    # the cycle after that: SV's tail flag
        loading = Signal()                   # a load (vector or scalar) is running
        storing = Signal()                   # SV is running
        grp = Signal(range(3))
        is_lde = Signal()
        is_ldw = Signal()
        is_ldf = Signal()
        scalar = Signal()
        is_sv = Signal()
        off = Signal(lb)                     # addr % beat_bytes
        off0 = Signal()                      # off == 0
        offp = Signal(lb + 1)                # off + beat - 1
        moff = Signal(lb + 1)                # beat - off
        n_raw = Signal(count)                # R: beats of the lines covering the vector
        n_aligned = Signal(count)            # A = ceil(es * VL / beat)
        left = Signal(vlw)                   # elements still to move (VL until the first step)
        last = Signal()                      # this step (SV: piece) holds the vector's last element
        ad = Signal.like(self.awb.idx)
        fd = Signal.like(self.fwb.idx)
        done_r = Signal()                    # done, a register (the sequencer is far away on a board)

        # per-group step constants of the running instruction, registered at acceptance
        p_max = max(P)
        sa_one = Signal()                    # SA[grp] == 1
        sa_m2 = Signal(range(max(2, max(SA))))   # SA[grp] - 2 (SA[grp] > 1)
        sw_last = Signal(range(max(2, max(SW))))

        # memory commands
        cmd_left = Signal(count)             # beats not yet commanded
        cmd_line = Signal(ADDR_BITS - lb)

        m.d.comb += [
            self.cmd.ready.eq(~busy),
            self.done.eq(done_r),
        ]
        m.d.sync += [done_r.eq(0), setup.eq(0), setup2.eq(setup)]
        with m.If(self.done):
            m.d.sync += [busy.eq(0), loading.eq(0), storing.eq(0)]

        # -- accept: the command registered, with no arithmetic ----------------------------------------
        a_grp = Signal(range(3))
        a_scalar = Signal()
        a_known = Signal()
        with m.Switch(cmd.op):
            for mn, es in ELEMENT_BYTES.items():
                with m.Case(code[mn]):
                    m.d.comb += [a_grp.eq(sizes.index(es)), a_known.eq(1), a_scalar.eq(mn in ("LDW", "LDF"))]
        a_off = Signal(lb)
        m.d.comb += a_off.eq(cmd.addr[:lb])
        accept = Signal()
        m.d.comb += accept.eq(self.cmd.valid & self.cmd.ready)
        with m.If(accept):
            m.d.sync += [
                busy.eq(1),
                setup.eq(a_known),
                done_r.eq(~a_known),
                grp.eq(a_grp),
                is_lde.eq(cmd.op == code["LDE"]),
                is_ldw.eq(cmd.op == code["LDW"]),
                is_ldf.eq(cmd.op == code["LDF"]),
                is_sv.eq(cmd.op == code["SV"]),
                scalar.eq(a_scalar),
                off.eq(a_off),
                off0.eq(a_off == 0),
                offp.eq(a_off + (beat - 1)),
                moff.eq(beat - a_off),
                left.eq(Mux(a_scalar, 1, cmd.vl[:vlw])),
                ad.eq(cmd.ad),
                fd.eq(cmd.fd),
                cmd_left.eq(0),
                cmd_line.eq(cmd.addr[lb:ADDR_BITS]),
                self.rs.reg.eq(cmd.vs),
                self.wd.reg.eq(cmd.vd),
            ]
            with m.Switch(a_grp):
                for g in range(3):
                    with m.Case(g):
                        m.d.sync += [sw_last.eq(SW[g] - 1), sa_one.eq(SA[g] == 1),
                                     sa_m2.eq(max(0, SA[g] - 2))]

        # -- setup: the counts from the registered command ---------------------------------------------
        nbytes = Signal(vlw + 3)
        s_raw = Signal(count)
        s_aligned = Signal(count)
        le_p = Signal()                      # left <= P[grp]
        le_2p = Signal()                     # left <= 2 * P[grp]
        left_next = Signal(vlw)              # left - P[grp]
        with m.Switch(grp):
            for g in range(3):
                with m.Case(g):
                    m.d.comb += [nbytes.eq(left << (g + 1)), le_p.eq(left <= P[g]), le_2p.eq(left <= 2 * P[g]),
                                 left_next.eq(left - P[g])]
        m.d.comb += [
            s_raw.eq((nbytes + offp) >> lb),
            s_aligned.eq((nbytes + (beat - 1)) >> lb),
        ]
        with m.If(setup):
            m.d.sync += [
                loading.eq(~is_sv),
                storing.eq(is_sv),
                n_raw.eq(s_raw),
                n_aligned.eq(s_aligned),
                cmd_left.eq(s_raw),
                last.eq(le_p),
            ]

        # -- memory commands: bursts of at most MAX_BURST beats --------------------------------------
        burst = Signal(LEN_BITS)
        cmd_fire = Signal()
        m.d.comb += [
            burst.eq(Mux(cmd_left > MAX_BURST, MAX_BURST, cmd_left)),
            port.cmd.valid.eq(cmd_left != 0),
            port.cmd.payload.addr.eq(cmd_line),
            port.cmd.payload.len.eq(burst),
            port.cmd.payload.write.eq(is_sv),
            cmd_fire.eq(port.cmd.valid & port.cmd.ready),
        ]
        with m.If(cmd_fire):
            m.d.sync += [
                cmd_left.eq(cmd_left - burst),
                cmd_line.eq(cmd_line + burst),
            ]

        # -- a step (loads) or a piece (SV): P[grp] elements --------------------------------------------
        adv = Signal()
        with m.If(adv):
            m.d.sync += [left.eq(left_next), last.eq(le_2p)]

        prev = Signal(bbits)                 # loads: the last raw beat; SV: the last aligned beat
        sv_prev, sv_prev_en = Signal(bbits), Signal()
        with m.If(sv_prev_en | (self.mem.rd.valid & self.mem.rd.ready)):
            m.d.sync += prev.eq(Mux(storing, sv_prev, self.mem.rd.payload.data))
        s = SimpleNamespace(
            prev=prev, sv_prev=sv_prev, sv_prev_en=sv_prev_en, L=L, beat=beat, bbits=bbits, llog=llog, sizes=sizes,
            P=P, SA=SA, SW=SW, p_max=p_max, count=count, grp=grp, loading=loading, storing=storing, scalar=scalar,
            is_lde=is_lde, is_ldw=is_ldw, is_ldf=is_ldf, off=off, off0=off0, moff=moff, n_raw=n_raw,
            n_aligned=n_aligned, left=left, last=last, sa_one=sa_one, sa_m2=sa_m2, sw_last=sw_last, ad=ad, fd=fd,
            done_r=done_r, accept=accept, setup=setup, setup2=setup2, le_2p=le_2p, s_raw=s_raw,
            s_aligned=s_aligned, adv=adv, burst=burst, cmd_fire=cmd_fire, is_sv=is_sv)
        self._elaborate_load(m, s)
        self._elaborate_store(m, s)
        return m

    # -- loads -------------------------------------------------------------------------------------
    def _elaborate_load(self, m: Module, s: SimpleNamespace) -> None:
        L, bbits, sizes, P, SA, SW = s.L, s.bbits, s.sizes, s.P, s.SA, s.SW
        grp, loading, scalar, off, left, last = s.grp, s.loading, s.scalar, s.off, s.left, s.last
        rd, wd = self.mem.rd, self.wd
        accept = s.accept

        prev = s.prev                        # the last raw beat taken
        raw_left = Signal(s.count)           # raw beats still to take
        raw_more = Signal()                  # raw_left != 0
        got_first = Signal()                 # a raw beat was taken
        al_left = Signal(s.count)            # aligned beats still to build
        ab_more = Signal()                   # al_left != 0
        ab = Signal(bbits)                   # the aligned beat being cut into steps
        ab_valid = Signal()
        ab_step = Signal(range(max(2, max(SA))))
        word_step = Signal(range(max(2, max(SW))))
        waddr = Signal.like(wd.addr)
        with m.If(accept):
            m.d.sync += [got_first.eq(0), ab_valid.eq(0), ab_step.eq(0), word_step.eq(0), waddr.eq(0)]
        with m.If(s.setup):
            m.d.sync += [raw_left.eq(s.s_raw), raw_more.eq(1), al_left.eq(s.s_aligned), ab_more.eq(1)]

        ab_last = Signal()                   # this step empties the aligned beat (registered: ab_step ==
        #                                      SA[grp] - 1, or the vector's last step)
        word_last = Signal()                 # this step completes a register word
        step = Signal()
        ab_free = Signal()
        m.d.comb += [
            step.eq(loading & ab_valid),
            word_last.eq((word_step == s.sw_last) | last),
            ab_free.eq(~ab_valid | ab_last),
        ]
        with m.If(step):
            m.d.comb += s.adv.eq(1)

        # -- raw beats -> aligned beats --------------------------------------------------------------
        m.d.comb += rd.ready.eq(loading & raw_more & ab_free)

        def realign(lo, hi):
            # bytes off .. off + beat - 1 of lo ++ hi; off is even (element-aligned, es >= 2)
            return Cat(lo, hi).bit_select(Cat(C(0, 4), off[1:]), bbits)

        with m.If(step):
            m.d.sync += [ab_step.eq(Mux(ab_last, 0, ab_step + 1)),
                         ab_last.eq(Mux(ab_last, s.sa_one, ab_step == s.sa_m2) | s.le_2p)]
            with m.If(ab_last):
                m.d.sync += ab_valid.eq(0)
        # a new aligned beat: with a raw beat (from the second on, or each when off == 0), or after the
        # last raw beat when the vector's tail lies within it (its data chosen from registers alone)
        new_ab = Signal()
        new_ab_data = Signal(bbits)
        rd_fire = Signal()
        m.d.comb += [
            rd_fire.eq(rd.valid & rd.ready),
            new_ab.eq((rd_fire & (s.off0 | got_first)) | (loading & ~raw_more & ab_more & ab_free)),
            new_ab_data.eq(Mux(s.off0, rd.payload.data, realign(prev, Mux(raw_more, rd.payload.data, 0)))),
        ]
        with m.If(rd_fire):
            m.d.sync += [raw_left.eq(raw_left - 1), raw_more.eq(raw_left != 1),
                         got_first.eq(1)]
        with m.If(new_ab):
            m.d.sync += [ab.eq(new_ab_data), ab_valid.eq(1), ab_step.eq(0), al_left.eq(al_left - 1),
                         ab_more.eq(al_left != 1), ab_last.eq(s.sa_one | Mux(step, s.le_2p, last))]

        # -- steps: P elements of the aligned beat, converted, into a word of Vd -------------------------
        # The step's control (valid, word slot, lane mask, word end, last) reaches the write stage
        # at once, or LOAD_LATENCY["LDE"] - 1 cycles later for LDE, whose conversion runs in stages:
        #   E1  the bf16 fields: sign, shifts, saturate (e >= 150), zero (e < 101), small (e < 110)
        #   E2  the signed significand: +-mantissa, or for small values the rounded one
        #   and in the write stage: shifted (a mux per bit, no carry chain), saturated
        # LDF's normalization: F1 the leading zeros of the fraction, F2 the shift (into fwb).
        elems = []
        for g, es in enumerate(sizes):
            width = P[g] * es * 8
            chunk = ab[:width] if SA[g] == 1 else ab.word_select(ab_step[:_ceil_log2(SA[g])], width)
            elems.append([chunk[k * es * 8:(k + 1) * es * 8] for k in range(P[g])])
        smask = Signal(s.p_max)                  # the step's elements below VL
        lo = left[:s.p_max.bit_length()]
        m.d.comb += smask.eq(Cat(~last | (lo > k) for k in range(s.p_max)))
        ctl_layout = [("v", 1), ("slot", len(word_step)), ("mask", s.p_max), ("wl", 1), ("last", 1)]
        ctl_now = Cat(step, word_step, smask, word_last & ~scalar, last)
        # (the chain takes LDE's steps only: another load's last steps must not reach a following LDE)
        ctl = [Cat(step & s.is_lde, ctl_now[1:])]
        for d in range(LOAD_LATENCY["LDE"] - 1):
            r = Signal(len(ctl_now), name=f"lde_ctl{d + 1}")
            m.d.sync += r.eq(ctl[-1])
            ctl.append(r)
        pctl = Signal(len(ctl_now))
        m.d.comb += pctl.eq(Mux(s.is_lde, ctl[-1], ctl_now))
        fields, pos = {}, 0
        for name, w in ctl_layout:
            fields[name] = pctl[pos:pos + w]
            pos += w

        # LDE's stages, per element of the 2-byte group (registers without enables: the control
        # above says when they hold a step). value * 2**24 = (128 + f) << sh >> 9, rounded half away
        # from zero, with sh = e - 101 (0 .. 48 for 101 <= e < 150). From sh = 9 on nothing is
        # rounded: the value is +-(128 + f) << (sh - 9), and the negation can come before the
        # shift; below (e < 110) it is the rounded +-(((128 + f) << sh) + 256) >> 9, at most 128.
        lde_vals = []
        for k, x in enumerate(elems[0]):
            sign, e, f = x[15], x[7:15], x[0:7]
            n1 = f"e1_{k}_"
            e1_sign, e1_sat, e1_zero, e1_small = (Signal(name=n1 + nm) for nm in ("sign", "sat", "zero", "small"))
            e1_sh = Signal(range(_BF16_GUARD), name=n1 + "sh")                    # e - 101 where e < 110
            e1_k = Signal(range(_BF16_HI - _BF16_SHIFT0), name=n1 + "k")           # e - 110 where e < 150
            e1_mant = Signal(8, name=n1 + "mant")
            m.d.sync += [e1_sign.eq(sign), e1_sat.eq(e >= _BF16_HI), e1_zero.eq(e < _BF16_LO),
                         e1_small.eq(e < _BF16_LO + _BF16_GUARD), e1_sh.eq((e - _BF16_LO)[:len(e1_sh)]),
                         e1_k.eq((e - _BF16_SHIFT0)[:len(e1_k)]), e1_mant.eq(Cat(f, C(1, 1)))]
            # E2: the signed significand and its shift. Small: w = (mant << sh) >> 8, mag = (w + 1) >> 1
            # and -mag = ~((w - 1) >> 1) (one carry chain)
            n2 = f"e2_{k}_"
            e2_sign, e2_sat, e2_zero = (Signal(name=n2 + nm) for nm in ("sign", "sat", "zero"))
            e2_s, e2_k = Signal(signed(10), name=n2 + "s"), Signal.like(e1_k, name=n2 + "k")
            w = Signal(8, name=n2 + "w")
            t = Signal(signed(10), name=n2 + "t")
            m.d.comb += [w.eq((e1_mant << e1_sh)[8:16]), t.eq(w + Mux(e1_sign, -1, 1))]
            m.d.sync += [
                e2_sign.eq(e1_sign), e2_sat.eq(e1_sat), e2_zero.eq(e1_zero),
                e2_s.eq(Mux(e1_small, (t[1:] ^ e1_sign.replicate(9)).as_signed(), Mux(e1_sign, -e1_mant, e1_mant))),
                e2_k.eq(Mux(e1_small, 0, e1_k)),
            ]
            # the write stage: the shift (a 48-bit sign extension of e2_s << e2_k), saturate or zero
            v = Signal(FX, name=f"lde{k}")
            m.d.comb += v.eq(Mux(e2_sat, Mux(e2_sign, N.FX_MIN, N.FX_MAX),
                                 Mux(e2_zero, 0, (e2_s << e2_k)[:N.FX_BITS].as_signed())))
            lde_vals.append(v)

        vals = []                            # per group: the P converted elements at the write stage
        for g, es in enumerate(sizes):
            conv = []
            for k, x in enumerate(elems[g]):
                v = Signal(FX, name=f"conv{es}_{k}")
                if es == 2:
                    m.d.comb += v.eq(Mux(s.is_lde, lde_vals[k], x.as_signed()))
                elif es == 4:
                    m.d.comb += v.eq(x)                      # LDGT: zero-extended
                else:
                    m.d.comb += v.eq(x[:N.FX_BITS].as_signed())
                conv.append(v)
            vals.append(conv)

        # LDW / LDF: element 0 of the first aligned beat (the 4 bytes at addr)
        w32 = ab[:32]
        # (ab keeps the word in F2: no aligned beat follows the last step)
        f1_lz = Signal(range(33))
        m.d.sync += f1_lz.eq(_lzc(m, Cat(C(0, 9), w32[0:23]), "f_lz"))
        mant, expo = Signal(N.SF_BITS), Signal(signed(N.SF_EXP_BITS))
        _sf_normalize(m, w32[23:31], w32[0:23], f1_lz, mant, expo)
        f1_last = Signal()
        m.d.sync += f1_last.eq(step & last & s.is_ldf)

        # -- the write stage -------------------------------------------------------------------------
        m.d.sync += [wd.en.eq(0), self.awb.en.eq(0), self.fwb.en.eq(0)]
        with m.If(step):
            m.d.sync += word_step.eq(Mux(word_last, 0, word_step + 1))
            with m.If(last):
                m.d.sync += ab_valid.eq(0)
                with m.If(s.is_ldw):
                    m.d.sync += [s.done_r.eq(1), self.awb.en.eq(1), self.awb.idx.eq(s.ad),
                                 self.awb.value.eq(w32.as_signed())]
        with m.If(f1_last):
            m.d.sync += [s.done_r.eq(1), self.fwb.en.eq(1), self.fwb.idx.eq(s.fd),
                         self.fwb.value.mantissa.eq(mant), self.fwb.value.exponent.eq(expo)]
        with m.If(fields["v"] & ~scalar):
            with m.Switch(grp):
                for g in range(3):
                    with m.Case(g):
                        for lane in range(L):
                            slot, k = divmod(lane, P[g])
                            with m.If(fields["slot"] == slot):
                                m.d.sync += [wd.data[lane].eq(vals[g][k]), wd.mask[lane].eq(fields["mask"][k])]
                            with m.Elif(fields["slot"] == 0):
                                m.d.sync += wd.mask[lane].eq(0)
            with m.If(fields["wl"]):
                m.d.sync += [wd.en.eq(1), wd.addr.eq(waddr), waddr.eq(waddr + 1)]
            with m.If(fields["last"]):
                m.d.sync += s.done_r.eq(1)

    # -- SV ----------------------------------------------------------------------------------------
    def _elaborate_store(self, m: Module, s: SimpleNamespace) -> None:
        L, beat, bbits, llog = s.L, s.beat, s.bbits, s.llog
        storing, left, last = s.storing, s.left, s.last
        rs, wr = self.rs, self.mem.wr
        accept = s.accept
        E = beat // 8
        P = min(L, E)
        SW = L // P                          # pieces per register word
        SA = E // P                          # pieces per aligned beat

        raddr = Signal.like(rs.addr)
        last_word = Signal.like(rs.addr)
        more = Signal()                      # SV runs and words are left to read
        m.submodules.rq = rq = ReadQueue(self._config)
        rvalid = rq.valid                    # the queue's head: a word not yet fully handed on
        wsub = Signal(range(max(2, SW)))
        apos = Signal(range(max(2, SA)))
        acc = Signal(bbits)                  # the aligned beat being gathered (SA > 1)
        acc_mask = Signal(beat)
        prev = s.prev                        # the previous aligned beat and its byte mask
        prev_mask = Signal(beat)
        pieces_done = Signal()
        tail = Signal()                      # the last raw beat is still to be built from prev alone
        # the write beats: a two-entry queue (o0 on the port, o1 behind it), so that a piece is
        # taken from registered state alone (o1 empty), never from wr.ready in the same cycle
        full0, full1 = Signal(), Signal()
        o0_data, o0_mask = Signal(bbits), Signal(beat)
        o1_data, o1_mask = Signal(bbits), Signal(beat)
        credit = Signal(s.count)             # beats of the accepted commands not yet sent
        may_send = Signal()                  # credit != 0
        unsent = Signal(s.count)             # beats still to send
        with m.If(accept):
            m.d.sync += [
                raddr.eq(0), more.eq(0), wsub.eq(0), apos.eq(0), prev_mask.eq(0),
                full0.eq(0), full1.eq(0), credit.eq(0), may_send.eq(0), pieces_done.eq(0), tail.eq(0),
            ]
        with m.If(s.setup):
            m.d.sync += [last_word.eq((left - 1) >> llog), unsent.eq(s.s_raw), more.eq(s.is_sv)]
        with m.If(s.setup2):
            m.d.sync += tail.eq(s.n_raw != s.n_aligned)

        # -- the piece: P elements of the word in rs.data, as int64 bytes and their mask ----------------
        word = rq.dout0.as_value()
        pw = P * N.FX_BITS
        sel = word[:pw] if SW == 1 else word.word_select(wsub[:_ceil_log2(SW)], pw)
        piece = Signal(64 * P)
        pmask = Signal(8 * P)
        lo = left[:P.bit_length()]
        for k in range(P):
            e = sel[k * N.FX_BITS:(k + 1) * N.FX_BITS].as_signed()
            m.d.comb += [
                piece[64 * k:64 * (k + 1)].eq(e),
                pmask[8 * k:8 * (k + 1)].eq((~last | (lo > k)).replicate(8)),
            ]

        completes = Signal()
        consume = Signal()
        word_end = Signal()
        take = Signal()
        m.d.comb += [
            completes.eq(((apos == SA - 1) if SA > 1 else 1) | last),
            consume.eq(rvalid & (~completes | ~full1)),
            word_end.eq((wsub == SW - 1) | last),
            take.eq(consume & word_end),
        ]
        with m.If(consume):
            m.d.comb += s.adv.eq(1)

        # -- reads: the read queue's head is the stage in front of the pieces ------------------------
        ren = Signal()
        # (words only while SV runs: every word read is taken before the instruction ends)
        m.d.comb += [ren.eq(more & rq.space), rs.en.eq(ren), rs.addr.eq(raddr),
                     rq.issue.eq(ren), rq.din0.eq(rs.data), rq.take.eq(take)]
        with m.If(ren):
            m.d.sync += raddr.eq(raddr + 1)
            with m.If(raddr == last_word):
                m.d.sync += more.eq(0)

        # -- the aligned beat this piece completes ----------------------------------------------------
        ab = Signal(bbits)
        ab_mask = Signal(beat)
        for k in range(SA):
            here = apos == k if SA > 1 else C(1, 1)
            m.d.comb += [
                ab[k * 64 * P:(k + 1) * 64 * P].eq(Mux(here, piece, acc[k * 64 * P:(k + 1) * 64 * P])),
                ab_mask[k * 8 * P:(k + 1) * 8 * P].eq(
                    Mux(here, pmask, Mux(apos > k, acc_mask[k * 8 * P:(k + 1) * 8 * P], 0))),
            ]

        def misalign(lo, hi):
            # raw[k] = lo[beat - off:] ++ hi[:beat - off]: bytes beat - off .. 2 * beat - off - 1 (off
            # and beat - off are multiples of 8: element-aligned)
            return Cat(lo, hi).bit_select(Cat(C(0, 6), s.moff[3:]), len(lo))

        def misalign_mask(lo, hi):
            return Cat(lo, hi).bit_select(Cat(C(0, 3), s.moff[3:]), len(lo))

        with m.If(consume):
            m.d.sync += [
                wsub.eq(Mux(word_end, 0, wsub + 1)),
                apos.eq(Mux(completes, 0, apos + 1)),
                acc.eq(ab),
                acc_mask.eq(ab_mask),
            ]
            with m.If(last):
                m.d.sync += pieces_done.eq(1)

        # -- write beats --------------------------------------------------------------------------
        # a raw beat: prev's tail with the aligned beat this piece completes, or, after the last
        # piece, with nothing (the last raw beat); its data chosen from registers alone
        push = Signal()
        new_data, new_mask = Signal(bbits), Signal(beat)
        m.d.comb += [
            new_data.eq(misalign(prev, Mux(pieces_done, 0, ab))),
            new_mask.eq(misalign_mask(prev_mask, Mux(pieces_done, 0, ab_mask))),
            s.sv_prev.eq(ab),
        ]
        with m.If(consume & completes):
            m.d.comb += [push.eq(1), s.sv_prev_en.eq(1)]
            m.d.sync += prev_mask.eq(ab_mask)
        with m.Elif(storing & pieces_done & tail & ~full1):
            m.d.comb += push.eq(1)
            m.d.sync += tail.eq(0)

        pop = Signal()
        m.d.comb += [
            wr.valid.eq(full0 & may_send),
            wr.payload.data.eq(o0_data),
            wr.payload.mask.eq(o0_mask),
            pop.eq(wr.valid & wr.ready),
        ]
        with m.If(storing & pop & (unsent == 1)):          # SV's last write beat accepted
            m.d.sync += s.done_r.eq(1)
        # o0 takes o1 when o1 is full (then nothing is pushed), else the new beat: the data's select
        # is a register, the enables come from push and pop
        load0, load1 = Signal(), Signal()
        m.d.comb += [
            load0.eq((pop & full1) | (push & (~full0 | pop))),
            load1.eq(push & full0 & ~pop),
        ]
        with m.If(load0):
            m.d.sync += [o0_data.eq(Mux(full1, o1_data, new_data)), o0_mask.eq(Mux(full1, o1_mask, new_mask))]
        with m.If(load1):
            m.d.sync += [o1_data.eq(new_data), o1_mask.eq(new_mask)]
        with m.If(pop):
            m.d.sync += unsent.eq(unsent - 1)
            with m.If(full1):
                m.d.sync += full1.eq(0)
            with m.Elif(~push):
                m.d.sync += full0.eq(0)
        with m.If(push):
            with m.If(~full0 | pop):
                m.d.sync += full0.eq(1)
            with m.Else():
                m.d.sync += full1.eq(1)

        # credit: may_send is credit != 0 after this cycle's command (+burst) and beat (-1)
        cmd_w = s.cmd_fire & s.is_sv
        m.d.sync += may_send.eq(cmd_w | (credit[1:] != 0) | (credit[0] & ~pop))
        m.d.sync += credit.eq(credit + Mux(cmd_w, s.burst, 0) - pop)
        with m.If(accept):
            m.d.sync += [credit.eq(0), may_send.eq(0)]
