"""The program generator: _Gen combines the action families over the shared state (gen_base) and
emits a program in three parts.

    g = _Gen(rng, config, info, state_bytes)
    g.prologue()                                        # SETVL vlen; every A, V and F register set
    g.body(n_actions, limit)                            # weighted random actions, up to `limit` words
    epi, order, shifts, f_exact = g.epilogue(final_f, layout)

The epilogue makes all architectural state visible (TOKOUT of every A, SV of every V, a TMATMUL
probe of every F) and is built from the F values the body leaves (`final_f`, from a golden run).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from golden import ops as O
from sim.fuzz.config import OBS_EXP_WINDOW, POW2_SHIFTS, SCRATCH_BYTES, TMM_MIN_SF_EXP
from sim.fuzz.gen_base import _NoOp
from sim.fuzz.gen_control import _ControlActions
from sim.fuzz.gen_memory import _MemoryActions
from sim.fuzz.gen_scalar import _ScalarActions
from sim.fuzz.gen_vector import _VectorActions
from sim.fuzz.validate import _Reject
from spec import isa


class _Gen(_MemoryActions, _VectorActions, _ScalarActions, _ControlActions):
    """The generator of one attempt: the action families over one rng and one tracked state."""

    # -- the action table ------------------------------------------------------------------------
    def _table(self) -> tuple[list[Callable[[], None]], np.ndarray]:
        table = [
            (self.vec, 26), (self.ldv, 5), (self.sv, 6), (self.ldg, 4), (self.ldgt, 3), (self.lde, 5),
            (self.ldw, 3), (self.ldf, 3), (self.norm, 4), (lambda: self.norm(qnt=True), 3),
            (self.bitlinear, 5), (self.tmatmul, 3), (self.argmax, 3), (self.scalar, 8), (self.fmul, 3),
            (self.tokin, 2), (self.tokout, 3), (lambda: self.emit("NOP"), 1), (lambda: self.emit("BARRIER"), 1),
            (self.setvl, 5), (self.loop, 3), (self.branch, 4),
        ]
        w = np.cumsum([x for _, x in table], dtype=float)
        return [f for f, _ in table], w / w[-1]

    def action(self, act: Callable[[], None] | None = None) -> None:
        if not hasattr(self, "_fns"):
            self._fns, self._cum = self._table()
        for _ in range(20):
            fn = act or self._fns[int(np.searchsorted(self._cum, self.rng.random(), side="right"))]
            save_len = len(self.words)
            snap = self.save() if self.mode != "dead" else None
            tok = len(self.sink) if self.sink is not None else 0
            pinned = set(self.pinned)
            try:
                fn()
                return
            except _NoOp:
                del self.words[save_len:]
                if snap is not None:
                    self.restore(snap)
                if self.sink is not None:
                    del self.sink[tok:]
                act = None
            finally:
                self.pinned = pinned
        # give up quietly: nothing was emitted

    # -- program parts ---------------------------------------------------------------------------
    def prologue(self) -> None:
        info = self.info
        self.emit("SETVL", info.vlen)
        self.vl = info.vlen
        e0 = info.emb[0]
        useful = [self.sb, self.sb + SCRATCH_BYTES // 2, e0, info.gammas[0][0], info.matrices[0].start,
                  info.probe_aw, 14, 0, 1, -1]
        for r in range(isa.N_AREGS):
            v = self.pick(useful) if self.r() < 0.6 else self.ri(-1000, 1000)
            self.emit("MOVI", r, v)
            self.set_a(r, v)
        loads = [self.lde, self.ldg, self.ldgt, self.ldv, self.lde, self.ldg]
        for d in range(isa.N_VREGS):
            self.pick(loads)(d=d)
        for f in range(isa.N_FREGS):
            self.ldf(d=f, window=True)
        self.rv, self.rr = [], []

    def body(self, n_actions: int, limit: int) -> None:
        for _ in range(n_actions):
            if len(self.words) > limit - 24:
                break
            self.action()

    def epilogue(self, final_f: Sequence[O.SF], layout_base: dict) -> tuple[list[int], tuple, tuple, tuple]:
        """Words after the body: TOKOUT A*, dump V*, probe every F (scaled into the exact window)."""
        info, vlen, vl_obs, B = self.info, self.info.vlen, self.info.vl_obs, self.info.B
        w: list[int] = []
        e = lambda *a: w.append(isa.encode(*a))
        for r in range(isa.N_AREGS):
            e("TOKOUT", r)
        vd = self.sb + layout_base["vdump"]
        e("MOVI", 0, vd)
        e("SETVL", vlen)
        for r in range(isa.N_VREGS):
            e("SV", (0, 8 * vlen * r), r)
        lo, hi = OBS_EXP_WINDOW

        def direct(sf: O.SF) -> bool:
            return not sf[0] or lo <= sf[1] <= hi

        order = sorted(range(isa.N_FREGS), key=lambda r: (not direct(final_f[r]), r))
        first = final_f[order[0]]
        if first[0] and first[1] < TMM_MIN_SF_EXP:
            raise _Reject("no F register can be probed first")
        e("SETVL", vl_obs)
        e("MOVI", 1, info.probe_aw)
        e("MOVI", 2, info.codes_addr)
        e("LDG", 0, (2, 0))
        e("MOVI", 0, self.sb + layout_base["fdump"])
        l0 = min(info.pow2.values())
        e("MOVI", 3, l0)
        fc, loaded = order[0], None
        exact, shifts = [], []
        for slot, r in enumerate(order):
            m, ex = final_f[r]
            cur = ex
            if slot and m and not direct(final_f[r]):
                while not lo <= cur <= hi:
                    want = (lo + hi) // 2 - cur
                    s = min(POW2_SHIFTS, key=lambda k: abs(want - k))
                    if s != loaded:
                        e("LDF", fc, (3, info.pow2[s] - l0))
                        loaded = s
                    e("FMUL", r, r, fc)
                    cur += s
            e("TMATMUL", 1, 0, 1, r, B)
            e("SV", (0, 8 * vl_obs * slot), 1)
            exact.append(slot > 0 or direct(final_f[r]))
            shifts.append(cur - ex if m else 0)
        e("HALT")
        f_exact = tuple(exact[order.index(r)] for r in range(isa.N_FREGS))
        return w, tuple(order), tuple(shifts), f_exact
