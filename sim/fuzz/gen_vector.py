"""Generator actions on V registers: the element-wise ops, NORM and QNT, TMATMUL (after a SETVL
to a VL with candidates where needed), the QNT-TMATMUL chain of a BitLinear, ARGMAX.

After a long op (DIV, TMATMUL) follow may emit an op that reads its result (RAW), overwrites a
source (WAR) or the result (WAW), reads the result back through memory, or is independent.
"""
from __future__ import annotations

from collections.abc import Sequence

from sim.fuzz.gen_base import _GenBase, _NoOp
from spec import isa

_VV = ("EXP", "SIG", "SILU", "ONEM", "MOVV")
_VVV = ("ADD", "SUB", "MUL", "DIV", "GMUL")


class _VectorActions(_GenBase):
    """Element-wise ops, NORM, QNT, TMATMUL, ARGMAX, and what follows a long op."""

    def vec(self, mn: str | None = None, d: int | None = None, s: int | None = None, t: int | None = None) -> None:
        mn = mn or self.pick(_VVV + _VV + _VVV)
        s = self.v_src() if s is None else s
        if mn in _VV:
            d = self.v_dst([s]) if d is None else d
            self.emit(mn, d, s)
            self.wrote_v(d, [s])
        else:
            if t is None:
                t = s if self.r() < 0.15 else self.v_src()
            d = self.v_dst([s, t]) if d is None else d
            self.emit(mn, d, s, t)
            self.wrote_v(d, [s, t])
        if mn == "DIV":
            self.follow(d, [s] if t is None else [s, t])

    def norm(self, qnt: bool = False) -> tuple[int, int, int | None]:
        ae = self.gexp_reg()
        self.pinned.add(ae)
        if self.r() < 0.5:
            self.ldg(gamma=True)
            g = self.rv[0]
        else:
            g = self.v_src()
        s = self.v_src()
        if qnt:
            fd = self.f_dst()
            d = self.v_dst([s, g])
            self.emit("QNT", d, fd, s, g, ae)
            self.set_f(fd, None, False)
        else:
            fd = None
            d = self.v_dst([s, g])
            self.emit("NORM", d, s, g, ae)
        self.wrote_v(d, [s, g])
        return d, s, fd

    def ensure_tmm_vl(self) -> list[tuple[int, int, int]]:
        cands = self.info.tmm_candidates(self.vl)
        if cands and (self.mode not in ("top", "dead") or self.r() < 0.7):
            return cands
        if self.mode not in ("top", "dead"):
            raise _NoOp
        vls = self.info.tmm_vls()
        v = vls[0] if self.r() < 0.2 else self.pick(vls)
        self.emit("SETVL", v)
        self.vl = v
        return self.info.tmm_candidates(v)

    def tmatmul(self, vs: int | None = None, f: int | None = None, cands=None) -> None:
        cands = cands or self.ensure_tmm_vl()
        aw, lo, hi = self.pick(cands)
        rows = hi if self.r() < 0.4 else self.ri(lo, hi)
        w = self.reg_with(aw)
        f = self.f_src(good=True) if f is None else f
        vs = self.v_src() if vs is None else vs
        d = self.v_dst([vs])
        self.emit("TMATMUL", d, vs, w, f, rows)
        self.wrote_v(d, [vs])
        self.follow(d, [vs])

    def bitlinear(self) -> None:
        cands = self.ensure_tmm_vl()
        d, _, fq = self.norm(qnt=True)
        if self.r() < 0.5:
            fb = self.pick([r for r in range(isa.N_FREGS) if self.f[r] is not None and self.f[r][0]
                            and -60 <= self.f[r][1] <= 0] or [fq])
            if fb != fq and (self.f_allowed is None or fq in self.f_allowed):
                self.emit("FMUL", fq, fq, fb)
                self.set_f(fq, None, False)
        self.tmatmul(vs=d, f=fq, cands=cands)

    def argmax(self) -> None:
        am = self.a_dst()
        if self.r() < 0.5:
            v = self.pick([-(1 << 31), -1, 0, self.ri(-1000, 1000)])
            self.emit("MOVI", am, v)
            self.set_a(am, v)
        ai = am if self.r() < 0.05 else self.a_dst(avoid=[am])
        ao = self.a_src()
        s = self.v_src()
        self.emit("ARGMAX", ai, am, s, ao)
        self.set_a(am, None)
        self.set_a(ai, None)
        self.rr.insert(0, s)
        if self.r() < 0.5 and self.mode != "dead":
            self.emit("TOKOUT", self.pick([ai, am]))

    def follow(self, d: int, srcs: Sequence[int]) -> None:
        """After a long op: a dependent, anti-dependent, output-dependent or independent op."""
        if self.r() > 0.65:
            return
        try:
            self._follow(d, srcs, self.r())
        except _NoOp:          # raised before anything was emitted: keep the long op
            pass

    def _follow(self, d: int, srcs: Sequence[int], p: float) -> None:
        others = [r for r in range(isa.N_VREGS) if r != d and r not in srcs] or [d]
        if p < 0.3:                                       # RAW on the result
            mn = self.pick(_VVV + _VV)
            dd = self.pick(others + [d])
            if mn in _VV:
                self.emit(mn, dd, d)
                self.wrote_v(dd, [d])
            else:
                t = self.pick([d, self.pick(others)])
                self.emit(mn, dd, d, t)
                self.wrote_v(dd, [d, t])
        elif p < 0.42 and srcs:                           # WAR on a source
            mn = self.pick(_VV)
            s = self.pick(others)
            self.emit(mn, srcs[0], s)
            self.wrote_v(srcs[0], [s])
        elif p < 0.54:                                    # WAW on the result
            s = self.pick(others)
            self.emit(self.pick(_VV), d, s)
            self.wrote_v(d, [s])
        elif p < 0.66:                                    # RAW through memory
            self.sv(d)
        elif p < 0.85:                                    # independent vector op
            s, t = self.pick(others), self.pick(others)
            dd = self.pick(others)
            self.emit(self.pick(_VVV), dd, s, t)
            self.wrote_v(dd, [s, t])
        else:                                             # independent scalar op
            self.scalar()
