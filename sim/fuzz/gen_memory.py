"""Generator actions that load and store: LDV, SV, LDG, LDGT, LDE, LDW, LDF.

Each picks an address that is in range, aligned and reads valid data (sim.fuzz's docstring lists
the rules), from the image analysis (sim.fuzz.analysis) or the state region; SV writes only the
scratch area.
"""
from __future__ import annotations

from sim.fuzz.config import SCRATCH_BYTES, TMM_MIN_SF_EXP
from sim.fuzz.gen_base import _GenBase, _NoOp
from spec import isa


class _MemoryActions(_GenBase):
    """LDV, SV, LDG, LDGT, LDE, LDW and LDF at valid addresses."""

    def ldv(self, d: int | None = None) -> None:
        vl = self.vl
        nzw, allw = self.info.ldv_windows(vl)
        if self.r() < 0.5 or not allw.size:
            span = self.state_bytes - 8 * vl
            target = self.sb + 8 * self.ri(0, span // 8)
        else:
            w = nzw if nzw.size and self.r() < 0.85 else allw
            target = 8 * int(self.pick(w))
        d = self.v_dst() if d is None else d
        self.emit("LDV", d, self.base_for(target))
        self.wrote_v(d)

    def sv(self, s: int | None = None) -> None:
        target = self.sb + 8 * self.ri(0, (SCRATCH_BYTES - 8 * self.vl) // 8)
        s = self.v_src() if s is None else s
        self.emit("SV", self.base_for(target), s)
        self.rr = [s] + [x for x in self.rr if x != s][:2]

    def ldg(self, d: int | None = None, gamma: bool = False) -> None:
        need = 2 * self.vl
        if gamma or self.r() < 0.6:
            addr, n, _ = self.pick(self.info.gammas)
            target = addr + 2 * self.ri(0, max(0, n - self.vl)) * (self.r() < 0.3)
        else:
            target = 2 * self.ri(0, (self.sb + self.state_bytes - need) // 2)
        target = min(target, self.sb + self.state_bytes - need)
        d = self.v_dst() if d is None else d
        self.emit("LDG", d, self.base_for(target))
        self.wrote_v(d)

    def ldgt(self, d: int | None = None) -> None:
        need = 4 * self.vl
        if self.r() < 0.5:
            addr, n = self.pick(self.info.gates)
            target = addr
        else:
            target = 4 * self.ri(0, (self.sb + self.state_bytes - need) // 4)
        target = min(target, self.sb + self.state_bytes - need)
        d = self.v_dst() if d is None else d
        self.emit("LDGT", d, self.base_for(target))
        self.wrote_v(d)

    def lde(self, d: int | None = None) -> None:
        vl = self.vl
        e0, vocab, dim = self.info.emb
        end = e0 + 2 * vocab * dim
        if self.r() < 0.7:
            rows = (end - e0) // (2 * vl)              # whole rows of width vl inside the embedding
            ok = [r for r in range(isa.N_AREGS) if self.a[r] is not None and 0 <= self.a[r] < rows]
            if ok and self.r() < 0.8:
                rec = [r for r in self.ra if r in ok]
                t = rec[0] if rec and self.r() < 0.6 else self.pick(ok)
            else:
                t = self.a_dst()
                v = self.ri(0, rows - 1)
                if self.sink is not None and self.mode == "top" and self.r() < 0.5:
                    self.emit("TOKIN", t)
                    self.sink.append(v)
                else:
                    self.emit("MOVI", t, v)
                self.set_a(t, v)
            target = e0 + 2 * self.a[t] * vl
            self.pinned.add(t)
        else:
            wins = self.info.lde_windows(vl)
            target = 2 * int(self.pick(wins))
            ok = [r for r in range(isa.N_AREGS) if self.a[r] is not None and abs(self.a[r]) < (1 << 20)]
            if not ok:
                raise _NoOp
            t = self.pick(ok)
            self.pinned.add(t)
            target_base = target - 2 * self.a[t] * vl
            r, off = self.base_for(target_base)
            d = self.v_dst() if d is None else d
            self.emit("LDE", d, t, (r, off))
            self.wrote_v(d)
            return
        d = self.v_dst() if d is None else d
        self.emit("LDE", d, t, self.base_for(target - 2 * self.a[t] * vl))
        self.wrote_v(d)

    def ldw(self) -> None:
        d = self.a_dst()
        if self.r() < 0.6:
            i = self.ri(0, self.sb // 4 - 1)
            v = int(self.info.i32[i])
            target = 4 * i
        else:
            target = self.sb + 4 * self.ri(0, self.state_bytes // 4 - 1)
            v = None
        self.emit("LDW", d, self.base_for(target))
        self.set_a(d, v)

    def ldf(self, d: int | None = None, window: bool = False) -> None:
        p = self.r()
        src = (self.info.ldf_window if window or p < 0.35 else self.info.ldf_betas if p < 0.7
               else self.info.ldf_special if p < 0.8 else self.info.ldf_all)
        addr, sf = self.pick(src)
        d = self.f_dst() if d is None else d
        self.emit("LDF", d, self.base_for(addr))
        self.set_f(d, sf, bool(sf[0]) and sf[1] < TMM_MIN_SF_EXP)
