"""Generator actions on A and F registers, tokens and VL: MOVI / ADDI / ADDS / SUBS / MULS, FMUL
(of known values only where the product's exponent stays 64 inside the SF range), TOKIN, TOKOUT,
SETVL.
"""
from __future__ import annotations

from golden import ops as O
from sim.fuzz.config import SF_EXP_MAX, SF_EXP_MIN, TMM_MIN_SF_EXP
from sim.fuzz.gen_base import _GenBase, _NoOp


class _ScalarActions(_GenBase):
    """Scalar ops on A, FMUL, TOKIN, TOKOUT, SETVL."""

    def scalar(self) -> None:
        mn = self.pick(["MOVI", "ADDI", "ADDI", "ADDS", "SUBS", "MULS"])
        d = self.a_dst()
        if mn == "MOVI":
            v = self.pick([self.ri(-100, 100), self.ri(-(1 << 31), (1 << 31) - 1), self.sb, -1, 0, 1])
            self.emit("MOVI", d, v)
            self.set_a(d, v)
        elif mn == "ADDI":
            s = self.a_src()
            imm = self.pick([self.ri(-64, 64), 8 * self.vl, -8 * self.vl, self.ri(-(1 << 31), (1 << 31) - 1)])
            self.emit("ADDI", d, s, imm)
            self.set_a(d, None if self.a[s] is None else self.a[s] + imm)
        else:
            s, t = self.a_src(), self.a_src()
            self.emit(mn, d, s, t)
            x, y = self.a[s], self.a[t]
            v = None if x is None or y is None else {"ADDS": x + y, "SUBS": x - y, "MULS": x * y}[mn]
            self.set_a(d, v)

    def fmul(self) -> None:
        s, t = self.f_src(), self.f_src()
        x, y = self.f[s], self.f[t]
        if x is not None and y is not None:
            v = O.sf_mul(x, y)
            if v[0] and not SF_EXP_MIN + 64 <= v[1] <= SF_EXP_MAX - 64:
                raise _NoOp
            bad = bool(v[0]) and v[1] < TMM_MIN_SF_EXP
        else:
            if self.r() < 0.5:
                raise _NoOp
            v, bad = None, self.f_bad[s] or self.f_bad[t]
            for z in (x, y):
                if z is not None and z[0] and not -60 <= z[1] <= 10:
                    bad = True
        d = self.f_dst()
        self.emit("FMUL", d, s, t)
        self.set_f(d, v, bad)

    def tokin(self) -> None:
        if self.mode == "cond":
            raise _NoOp
        d = self.a_dst()
        v = self.ri(0, self.info.emb[1] - 1) if self.r() < 0.8 else self.pick(
            [self.ri(0, 1 << 15), -1, (1 << 31) - 1, -(1 << 31), self.ri(-(1 << 31), (1 << 31) - 1)])
        self.emit("TOKIN", d)
        if self.sink is not None:
            self.sink.append(v)
        self.set_a(d, v)

    def tokout(self) -> None:
        self.emit("TOKOUT", self.a_src())

    def setvl(self) -> None:
        if self.mode not in ("top", "dead"):
            raise _NoOp
        info = self.info
        v = self.pick([info.vlen, info.vlen, info.model.hidden_size, info.model.intermediate_size, 1,
                       self.ri(1, info.vlen), self.ri(1, info.vlen), self.pick(info.tmm_vls()),
                       min(info.vlen, self.cfg.vector_lanes * self.ri(1, 8) + self.pick([-1, 0, 1]) or 1)])
        v = max(1, min(info.vlen, v))
        self.emit("SETVL", v)
        self.vl = v
