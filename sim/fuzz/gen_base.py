"""The generator's tracked state and register choice, shared by its action families.

_GenBase knows what is statically known while a program is emitted: VL, the A values, the F values
(and which may be too small for TMATMUL), the tokens the program will read. Its choosers prefer the
registers written or read last, for hazards. An action that cannot be emitted in the current state
raises _NoOp; _Gen.action then undoes what it emitted and draws another.

The actions live in mixins by instruction family (gen_memory, gen_vector, gen_scalar, gen_control),
each a _GenBase; they call each other through self (NORM loads its gamma with ldg, a loop runs
action), so only sim.fuzz.gen._Gen, which combines them, is instantiated. Every method draws from
the same rng in program order: changing the order of draws changes every generated program.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from golden import ops as O
from sim.fuzz.analysis import _ImageInfo
from spec import accel, isa
from spec import numerics as N

_M64 = (1 << 64) - 1


def _wrap64(v: int) -> int:
    """`v` as a 64-bit A register holds it (two's complement)."""
    v &= _M64
    return v - (1 << 64) if v >> 63 else v


class _NoOp(Exception):
    """This action cannot be emitted in the current state; pick another."""


class _GenBase:
    """What is known of the program emitted so far, and the register choosers."""

    def __init__(self, rng: np.random.Generator, config: accel.AccelConfig, info: _ImageInfo, state_bytes: int):
        self.rng, self.cfg, self.info = rng, config, info
        self.sb, self.state_bytes = info.state_base, state_bytes
        self.words: list[int] = []
        self.vl = 0
        self.a: list[int | None] = [0] * isa.N_AREGS
        self.f: list[O.SF | None] = [O.SF_ZERO] * isa.N_FREGS
        self.f_bad = [False] * isa.N_FREGS      # may be too small for TMATMUL (TMM_MIN_SF_EXP)
        self.tokens: list[int] = []
        self.sink: list[int] | None = self.tokens
        self.mode = "top"                       # top | loop | cond | dead
        self.no_ctrl = False
        self.locked: set[int] = set()
        self.pinned: set[int] = set()           # chosen by the current action: not a MOVI target
        self.a_allowed: set[int] | None = None
        self.f_allowed: set[int] | None = None
        self.a_written: set[int] = set()
        self.f_written: set[int] = set()
        self.stream: tuple[int, int, int, int] | None = None
        self.rv: list[int] = []                 # recently written V (most recent first)
        self.rr: list[int] = []                 # recently read V
        self.ra: list[int] = []                 # recently written A
        self.rf: list[int] = []                 # recently written F

    # -- helpers ---------------------------------------------------------------------------------
    def r(self) -> float:
        return float(self.rng.random())

    def ri(self, lo: int, hi: int) -> int:
        """Integer in [lo, hi]."""
        return int(self.rng.integers(lo, hi + 1))

    def pick(self, seq):
        return seq[int(self.rng.integers(0, len(seq)))]

    def emit(self, mn: str, *args) -> int:
        self.words.append(isa.encode(mn, *args))
        return len(self.words) - 1

    def save(self) -> tuple:
        return (self.vl, list(self.a), list(self.f), list(self.f_bad), list(self.rv), list(self.rr),
                list(self.ra), list(self.rf))

    def restore(self, s: tuple) -> None:
        self.vl, a, f, fb, rv, rr, ra, rf = s
        self.a, self.f, self.f_bad = list(a), list(f), list(fb)
        self.rv, self.rr, self.ra, self.rf = list(rv), list(rr), list(ra), list(rf)

    # A registers
    def a_dst(self, avoid: Sequence[int] = ()) -> int:
        c = [r for r in range(isa.N_AREGS) if r not in self.locked and r not in avoid and r not in self.pinned
             and (self.a_allowed is None or r in self.a_allowed)]
        if not c:
            raise _NoOp
        if self.ra and self.ra[0] in c and self.r() < 0.25:
            return self.ra[0]
        return self.pick(c)

    def a_src(self) -> int:
        if self.ra and self.r() < 0.5:
            return self.ra[0] if self.r() < 0.7 else self.pick(self.ra)
        return self.ri(0, isa.N_AREGS - 1)

    def set_a(self, r: int, v: int | None) -> None:
        self.a[r] = None if v is None else _wrap64(v)
        self.ra = [r] + [x for x in self.ra if x != r][:3]
        self.a_written.add(r)

    def base_for(self, target: int) -> tuple[int, int]:
        """A (register, offset) pair addressing `target`, emitting a MOVI when needed."""
        ks = [r for r in range(isa.N_AREGS) if self.a[r] is not None and -(1 << 31) <= target - self.a[r] < 1 << 31]
        rec = [r for r in self.ra if r in ks]
        p = self.r()
        if rec and p < 0.35:
            r = rec[0]
        elif ks and p < 0.8:
            r = self.pick(ks)
        else:
            r = self.a_dst()
            v = target - self.pick([0, 0, 0, 8, 64, -64, 1000, -4096])
            self.emit("MOVI", r, v)
            self.set_a(r, v)
        return r, target - self.a[r]

    def reg_with(self, value: int) -> int:
        """A register holding exactly `value` (emitting MOVI or ADDI when needed)."""
        ks = [r for r in range(isa.N_AREGS) if self.a[r] == value]
        if ks and self.r() < 0.5:
            return self.pick(ks)
        r = self.a_dst()
        srcs = [s for s in range(isa.N_AREGS) if self.a[s] is not None and -(1 << 31) <= value - self.a[s] < 1 << 31]
        if srcs and self.r() < 0.5:
            s = next((x for x in self.ra if x in srcs), None) if self.r() < 0.5 else None
            s = self.pick(srcs) if s is None else s
            self.emit("ADDI", r, s, value - self.a[s])
        else:
            self.emit("MOVI", r, value)
        self.set_a(r, value)
        return r

    def gexp_reg(self) -> int:
        """A register with a known value in [GAMMA_EXP_MIN, GAMMA_EXP_MAX]."""
        ok = [r for r in range(isa.N_AREGS)
              if self.a[r] is not None and N.GAMMA_EXP_MIN <= self.a[r] <= N.GAMMA_EXP_MAX]
        rec = [r for r in self.ra if r in ok]
        p = self.r()
        if rec and p < 0.4:
            return rec[0]
        if ok and p < 0.75:
            return self.pick(ok)
        r = self.a_dst()
        if self.r() < 0.4:
            addr, v = self.pick(self.info.exp_slots)
            self.emit("LDW", r, self.base_for(addr))
        else:
            v = self.pick([N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX, 0, 13, 14, 15, 16,
                           self.ri(N.GAMMA_EXP_MIN, N.GAMMA_EXP_MAX)])
            v = v if self.r() < 0.3 else self.ri(8, 20)
            self.emit("MOVI", r, v)
        self.set_a(r, v)
        return r

    # V registers
    def v_src(self) -> int:
        if self.rv and self.r() < 0.55:
            return self.rv[0] if self.r() < 0.7 else self.pick(self.rv)
        return self.ri(0, isa.N_VREGS - 1)

    def v_dst(self, srcs: Sequence[int] = ()) -> int:
        p = self.r()
        if srcs and p < 0.25:
            return self.pick(list(srcs))                      # in place
        if self.rr and p < 0.4:
            return self.rr[0]                                # WAR
        if self.rv and p < 0.55:
            return self.rv[0]                                # WAW
        return self.ri(0, isa.N_VREGS - 1)

    def wrote_v(self, d: int, srcs: Sequence[int] = ()) -> None:
        self.rv = [d] + [x for x in self.rv if x != d][:2]
        for s in srcs:
            self.rr = [s] + [x for x in self.rr if x != s][:2]

    # F registers
    def f_dst(self) -> int:
        c = [r for r in range(isa.N_FREGS) if self.f_allowed is None or r in self.f_allowed]
        if not c:
            raise _NoOp
        if self.rf and self.rf[0] in c and self.r() < 0.3:
            return self.rf[0]
        return self.pick(c)

    def f_src(self, good: bool = False) -> int:
        c = [r for r in range(isa.N_FREGS) if not (good and self.f_bad[r])]
        if not c:
            raise _NoOp
        rec = [r for r in self.rf if r in c]
        if rec and self.r() < 0.5:
            return rec[0]
        return self.pick(c)

    def set_f(self, r: int, v: O.SF | None, bad: bool) -> None:
        self.f[r], self.f_bad[r] = v, bad
        self.rf = [r] + [x for x in self.rf if x != r][:2]
        self.f_written.add(r)
