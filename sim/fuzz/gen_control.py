"""Generator control flow: DJNZ loops, forward BLTZ and JMP.

A loop runs 2..4 times with a counter and, optionally, a pointer streaming through the scratch
area (stream_op) locked; its body writes only a few scratch A and F registers, whose values are
unknown inside it. A forward branch skips a block that never runs (dead: it may hold HALT; its
tokens are never read), may run (cond: what it changes becomes unknown) or always runs.
"""
from __future__ import annotations

from sim.fuzz.config import SCRATCH_BYTES
from sim.fuzz.gen_base import _GenBase, _NoOp, _wrap64
from spec import isa


class _ControlActions(_GenBase):
    """DJNZ loops (with the stream_op they may hold) and forward branches over blocks."""

    def loop(self) -> None:
        if self.mode != "top" or self.no_ctrl:
            raise _NoOp
        n = self.ri(2, 4)
        free = [r for r in range(isa.N_AREGS) if r not in self.locked]
        counter = self.pick(free)
        self.emit("MOVI", counter, n)
        self.set_a(counter, n)
        ptr = None
        if self.r() < 0.6:
            ptr = self.pick([r for r in free if r != counter])
            stride = 8 * self.ri(1, self.vl) * self.pick([1, 1, -1])
            span = (n - 1) * abs(stride) + 8 * self.vl
            p0 = self.sb + 8 * self.ri(0, (SCRATCH_BYTES - span) // 8)
            if stride < 0:
                p0 += (n - 1) * -stride
            self.emit("MOVI", ptr, p0)
            self.set_a(ptr, p0)
        locked = {counter} | ({ptr} if ptr is not None else set())
        cand = [r for r in free if r not in locked]
        scratch_a = {self.pick(cand) for _ in range(self.ri(2, 4))}
        scratch_f = {self.ri(0, isa.N_FREGS - 1) for _ in range(self.ri(0, 3))}
        pre = self.save()
        for r in scratch_a:
            self.a[r] = None
        for r in scratch_f:
            self.f[r], self.f_bad[r] = None, True
        self.a[counter] = None
        if ptr is not None:
            self.a[ptr] = None
            self.stream = (ptr, p0, stride, n)
        self.mode, self.locked, self.a_allowed, self.f_allowed = "loop", locked, scratch_a, scratch_f
        self.a_written, self.f_written = set(), set()
        pending: list[int] = []
        self.sink = pending
        start = len(self.words)
        k = self.ri(1, 5)
        acts = [self.stream_op] * (ptr is not None) + [None] * k
        self.rng.shuffle(acts)
        for act in acts:
            self.action(act)
        if ptr is not None:
            self.emit("ADDI", ptr, ptr, stride)
        self.emit("DJNZ", counter, start)
        # after the loop: body-end values are valid after any iteration; unwritten scratch keeps its value
        for r in scratch_a - self.a_written:
            self.a[r] = pre[1][r]
        for r in scratch_f - self.f_written:
            self.f[r], self.f_bad[r] = pre[2][r], pre[3][r]
        self.a[counter] = 0
        if ptr is not None:
            self.a[ptr] = _wrap64(p0 + n * stride)
        self.mode, self.locked, self.a_allowed, self.f_allowed = "top", set(), None, None
        self.stream = None
        self.sink = self.tokens
        self.tokens.extend(pending * n)

    def stream_op(self) -> None:
        ptr, p0, stride, n = self.stream
        mn = self.pick(["SV", "LDV", "LDG", "LDGT", "SV"])
        es = {"SV": 8, "LDV": 8, "LDG": 2, "LDGT": 4}[mn]
        need = es * self.vl
        lo_a, hi_a = min(p0, p0 + (n - 1) * stride), max(p0, p0 + (n - 1) * stride)
        reg_lo, reg_hi = (self.sb, self.sb + SCRATCH_BYTES) if mn == "SV" else (
            (self.sb, self.sb + self.state_bytes) if mn == "LDV" else (0, self.sb + self.state_bytes))
        off_lo = -((lo_a - reg_lo) // es)
        off_hi = (reg_hi - need - hi_a) // es
        if off_lo > off_hi:
            raise _NoOp
        off = es * self.ri(max(off_lo, -16), min(off_hi, 64)) if max(off_lo, -16) <= min(off_hi, 64) \
            else es * self.ri(off_lo, off_hi)
        if mn == "SV":
            s = self.v_src()
            self.emit("SV", (ptr, off), s)
            self.rr.insert(0, s)
        else:
            d = self.v_dst()
            self.emit(mn, d, (ptr, off))
            self.wrote_v(d)

    def block(self, mode: str) -> None:
        """A forward-branch block: `mode` dead (never runs), cond (may run) or run (runs)."""
        if mode == "dead":
            pre, sink = self.save(), self.sink
            self.mode, self.sink = "dead", None
            for _ in range(self.ri(1, 4)):
                if self.r() < 0.15:
                    self.emit("HALT")
                else:
                    self.action()
            self.restore(pre)
            self.mode, self.sink = "top", sink
        elif mode == "cond":
            pre = self.save()
            self.mode = "cond"
            for _ in range(self.ri(1, 4)):
                self.action()
            post = self.save()
            self.mode = "top"
            for r in range(isa.N_AREGS):
                if post[1][r] != pre[1][r]:
                    self.a[r] = None
            for r in range(isa.N_FREGS):
                if post[2][r] != pre[2][r]:
                    self.f[r] = None
                self.f_bad[r] = pre[3][r] or post[3][r]
        else:
            self.no_ctrl = True
            for _ in range(self.ri(1, 4)):
                self.action()
            self.no_ctrl = False

    def branch(self) -> None:
        if self.mode != "top" or self.no_ctrl:
            raise _NoOp
        if self.r() < 0.25:
            i = self.emit("JMP", 0)
            self.block("dead")
        else:
            unknown = [r for r in range(isa.N_AREGS) if self.a[r] is None]
            if unknown and self.r() < 0.5:
                rec = [r for r in self.ra if r in unknown]
                c = rec[0] if rec and self.r() < 0.6 else self.pick(unknown)
                i = self.emit("BLTZ", c, 0)
                self.block("cond")
            else:
                c = self.a_dst()
                if self.r() < 0.5:
                    v = self.pick([-1, -(1 << 31), 0, 1, self.ri(-50, 50)])
                    self.emit("MOVI", c, v)
                    self.set_a(c, v)
                else:
                    ks = [r for r in range(isa.N_AREGS) if self.a[r] is not None]
                    s = self.pick(ks) if ks else c
                    imm = self.ri(-100, 100)
                    self.emit("ADDI", c, s, imm)
                    self.set_a(c, None if self.a[s] is None else self.a[s] + imm)
                    if self.a[c] is None:
                        self.emit("MOVI", c, -7)
                        self.set_a(c, -7)
                i = self.emit("BLTZ", c, 0)
                self.block("dead" if self.a[c] < 0 else "run")
        self.words[i] = isa.encode(isa.decode(self.words[i]).op.mnemonic,
                                   *isa.decode(self.words[i]).args[:-1], len(self.words))
