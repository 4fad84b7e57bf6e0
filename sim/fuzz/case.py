"""A fuzz case and what a run of it shows.

FuzzCase holds the program (words, the tokens offered on TOKIN, the state region's size) and what
the generator knows of it (the golden F values at the end of the body, which of them the epilogue
shows exactly, the rejected attempts). FuzzLayout says where the epilogue puts things in the state
region. Observed is what a run shows, TOKOUTs and the state region's bytes, compared by equality;
Observed.diff names the first mismatch by its place in the layout.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from golden import ops as O
from sim.fuzz.config import OBS_EXP_WINDOW
from spec import isa
from spec import numerics as N


@dataclasses.dataclass(frozen=True)
class FuzzLayout:
    """Where the epilogue puts things (offsets are from the start of the state region)."""
    state_base: int
    state_bytes: int
    scratch: tuple[int, int]        # the body's SV area [start, end)
    vdump: int                      # V0..V7, vlen elements each
    vlen: int
    fdump: int                      # one probe result per F, fobs_vl elements each
    fobs_vl: int
    f_order: tuple[int, ...]        # the F register observed in slot i
    f_shift: tuple[int, ...] = ()   # slot i shows F[f_order[i]] * 2**f_shift[i]

    def where(self, off: int) -> str:
        """Names the state byte at offset `off`."""
        if self.vdump <= off < self.vdump + 8 * isa.N_VREGS * self.vlen:
            r, j = divmod((off - self.vdump) // 8, self.vlen)
            return f"epilogue dump of V{r}[{j}]"
        if self.fdump <= off < self.fdump + 8 * len(self.f_order) * self.fobs_vl:
            s, j = divmod((off - self.fdump) // 8, self.fobs_vl)
            return f"probe of F{self.f_order[s]}, element {j}"
        if self.scratch[0] <= off < self.scratch[1]:
            return f"scratch +{off - self.scratch[0]}"
        return f"state +{off}"


@dataclasses.dataclass
class FuzzCase:
    seed: int
    config: str
    words: list[int]
    tokens: list[int]
    state_bytes: int
    layout: FuzzLayout
    body_words: int                                   # prologue + body (the epilogue follows)
    final_f: tuple[O.SF, ...] = ()                    # golden F values at the end of the body
    f_exact: tuple[bool, ...] = ()                    # whether the probe shows that F exactly
    attempts: int = 1
    rejects: tuple[str, ...] = ()                     # why earlier attempts were regenerated

    @functools.cached_property
    def description(self) -> str:
        """The program as assembly (assembler.disassemble), with a header of comments."""
        from assembler import disassemble

        lay = self.layout
        head = [f"; sim.fuzz seed {self.seed}, config {self.config}, attempt {self.attempts}: {len(self.words)} "
                f"words, {self.body_words} of prologue + body",
                f"; tokens: {self.tokens}",
                f"; state region at {lay.state_base}, {lay.state_bytes} bytes: scratch [0, {lay.scratch[1]}), "
                f"V dump at +{lay.vdump}, F probes at +{lay.fdump} (F order {list(lay.f_order)}, "
                f"shifts {list(lay.f_shift)})"]
        return "\n".join(head) + "\n" + disassemble(self.words)


@dataclasses.dataclass
class Observed:
    """What a run shows: the TOKOUT values in order and the state region's bytes. Equality and
    diff compare only these two; the other fields are informational."""
    tokouts: list[int]
    state: bytes
    layout: FuzzLayout | None = dataclasses.field(default=None, compare=False, repr=False)
    steps: int = dataclasses.field(default=0, compare=False)
    profile: dict[str, int] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def probed_f(self) -> tuple[O.SF | None, ...]:
        """F0..F7 at the end of the body, read back from the epilogue's probes (row 0: acc 1, row 1:
        acc 4096) and unscaled; None where the probe does not show the whole value."""
        lay = self.layout
        if lay is None:
            raise ValueError("Observed.probed_f needs the case's layout")
        out: list[O.SF | None] = [None] * isa.N_FREGS
        for slot, r in enumerate(lay.f_order):
            base = lay.fdump + 8 * lay.fobs_vl * slot
            y0, y1 = (int.from_bytes(self.state[base + 8 * j:base + 8 * j + 8], "little", signed=True)
                      for j in (0, 1))
            if y0 == 0 and y1 == 0:
                out[r] = O.SF_ZERO
                continue
            if 0 < y1 < N.FX_MAX:
                e, y, k = y1.bit_length() - 60, y1, 36
            elif y0 > 0:
                e, y, k = y0.bit_length() - 48, y0, 24
            else:
                continue
            lo, hi = OBS_EXP_WINDOW
            if not lo <= e <= hi or e + k < 0 or y % (1 << (e + k)):
                continue
            m = y >> (e + k)
            if m >> (N.SF_BITS - 1) == 1:
                out[r] = (m, e - lay.f_shift[slot])
        return tuple(out)

    def diff(self, other: Observed) -> str:
        """The first mismatch, self taken as the expected (golden) side; "" if equal."""
        a, b = list(self.tokouts), list(other.tokouts)
        if a != b:
            n_epi = isa.N_AREGS

            def label(i: int, n: int) -> str:
                return f" (epilogue TOKOUT A{i - (n - n_epi)})" if i >= n - n_epi else " (body TOKOUT)"

            for i in range(min(len(a), len(b))):
                if a[i] != b[i]:
                    return f"tokout {i}{label(i, len(a))}: expected {a[i]}, got {b[i]}"
            return f"tokouts: expected {len(a)}, got {len(b)} (first {min(len(a), len(b))} equal)"
        if self.state != other.state:
            if len(self.state) != len(other.state):
                return f"state region: expected {len(self.state)} bytes, got {len(other.state)}"
            x = np.frombuffer(self.state, np.uint8)
            y = np.frombuffer(other.state, np.uint8)
            i = int(np.argmax(x != y))
            w = i - i % 8
            lay = self.layout or other.layout
            where = lay.where(w) if lay is not None else f"state +{w}"
            va = int.from_bytes(self.state[w:w + 8], "little", signed=True)
            vb = int.from_bytes(other.state[w:w + 8], "little", signed=True)
            more = int(np.count_nonzero(x != y))
            return f"state byte +{i} ({where}): expected word {va}, got {vb} ({more} byte(s) differ)"
        return ""
