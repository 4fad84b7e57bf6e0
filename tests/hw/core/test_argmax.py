"""hw.core.argmax: ArgmaxUnit against the golden machine's ARGMAX handler, through the register
channel and write-back ports of hw.core.iface.

Provenance of the vectors: the expected write-backs are `golden.machine._argmax`'s semantics
(j = first index of max(Vs[:VL]); if Vs[j] > A[Am]: A[Am] = Vs[j], then A[Ai] = A[Ao] + j wrapped to
64 bits) on seeded random register contents from value classes: uniform FX, small integers with
many ties, all-equal vectors, negative-only vectors (with A[Am] = -2**63 so the maximum is still
written), the FX limits, the maximum at the first or last element, larger values just past VL
(ignored), and A[Am] at, just below and above the maximum (strict comparison: no write when equal).
A[Ao] is random 64-bit, including values near 2**63 whose sum wraps. Nothing here is a stored vector.

Every run is watched cycle by cycle: reads of words 0 .. W-1 of Vs in order, each once; both
write-backs in the `done` cycle only, together, to A[at] and A[ad], with the golden values (or
neither when nothing exceeds A[Am]); `done` once; `cmd.ready` exactly while idle; nothing while
idle. The test-only `stall` input holds the datapath with seeded random backpressure.
"""
from __future__ import annotations

import dataclasses
import random
import types

import numpy as np
import pytest

from hw.core.argmax import ArgmaxUnit, argmax_cycles, tree_levels
from hw.core.iface import A_BITS, FX
from sim.tb import unit
from sim.tb.streams import Pauses
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

A_MIN, A_MAX = -(1 << (A_BITS - 1)), (1 << (A_BITS - 1)) - 1


CONFIGS = {
    "l1": unit.config(vector_lanes=1, beat_bytes=8, vlen=32),
    "l4": unit.config(vector_lanes=4, beat_bytes=16, vlen=64),
    "l16": unit.config(vector_lanes=16, beat_bytes=64, vlen=256),
}


def _wrap64(v: int) -> int:
    v &= (1 << A_BITS) - 1
    return v - (1 << A_BITS) if v >> (A_BITS - 1) else v


# -- the reference: golden.machine._argmax ----------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instr:
    vl: int
    vs: int
    at: int           # Am: the register index written with the maximum
    ad: int           # Ai: the register index written with the index
    am: int           # A[Am] at issue (cmd.s0)
    ao: int           # A[Ao] at issue (cmd.s1)


def golden(v: np.ndarray, ins: Instr) -> list[tuple[int, int]]:
    """The A writes of one ARGMAX, in the golden machine's order ([] when nothing exceeds Am)."""
    x = v[:ins.vl]
    j = int(np.argmax(x))
    if int(x[j]) > ins.am:
        return [(ins.at, int(x[j])), (ins.ad, _wrap64(ins.ao + j))]
    return []


def apply(A: dict, writes: list[tuple[int, int]]) -> dict:
    A = dict(A)
    for r, val in writes:
        A[r] = val
    return A


# -- operands ------------------------------------------------------------------------------------
CLASSES = ("uniform", "ties", "equal", "negative", "limits", "first", "last", "past_vl", "am_edge")


def case(config: AccelConfig, rng: random.Random, cls: str) -> tuple[list[int], Instr]:
    """Register contents of Vs (all vlen elements) and an instruction reading it."""
    vlen, lanes = config.vlen, config.vector_lanes
    edges = [v for v in (1, 2, lanes - 1, lanes, lanes + 1, vlen - 1, vlen) if 1 <= v <= vlen]
    vl = rng.choice(edges) if rng.random() < 0.4 else rng.randint(1, vlen)
    v = [rng.randint(N.FX_MIN, N.FX_MAX) for _ in range(vlen)]
    am = rng.choice([A_MIN, A_MIN + 1, N.FX_MIN - 1, -rng.randrange(1 << 62)])
    if cls == "ties":
        v = [rng.randint(-3, 3) for _ in range(vlen)]
    elif cls == "equal":
        c = rng.choice([N.FX_MIN, N.FX_MAX, 0, rng.randint(N.FX_MIN, N.FX_MAX)])
        v = [c] * vlen
    elif cls == "negative":
        v = [rng.randint(N.FX_MIN, -1) for _ in range(vlen)]
        am = A_MIN
    elif cls == "limits":
        v = [rng.choice([N.FX_MIN, N.FX_MAX, N.FX_MAX - 1, N.FX_MIN + 1, 0]) for _ in range(vlen)]
    elif cls == "first":
        v[0] = N.FX_MAX
    elif cls == "last":
        v[vl - 1] = N.FX_MAX
        for j in range(vl - 1):
            v[j] = min(v[j], N.FX_MAX - 1)
    elif cls == "past_vl":
        for j in range(vl, vlen):
            v[j] = N.FX_MAX
        for j in range(vl):
            v[j] = min(v[j], N.FX_MAX - 1)
    elif cls == "am_edge":
        mx = max(v[:vl])
        am = mx + rng.choice([-1, 0, 1, 1 << 40, -(1 << 40)])
    if rng.random() < 0.15:
        am = rng.choice([A_MAX, N.FX_MAX])      # nothing can exceed it: no write
    ao = rng.choice([0, rng.randrange(1 << 20), A_MAX - rng.randrange(vlen), A_MIN + rng.randrange(4),
                     rng.randint(A_MIN, A_MAX)])
    regs = range(isa.N_AREGS)
    at = rng.choice(regs)
    ad = at if rng.random() < 0.25 else rng.choice(regs)
    return v, Instr(vl, rng.randrange(isa.N_VREGS), at, ad, am, ao)


# -- the testbench -------------------------------------------------------------------------------
@dataclasses.dataclass
class Run(unit.Run):
    writes: list[list[tuple[int, int]]] = dataclasses.field(default_factory=list)   # awb, then awb2


class Bench:
    """An ArgmaxUnit (with its test `stall` input) and RegModel behind its read channel; a source
    that refills Vs while the unit is idle and sends each instruction after a random idle gap; the
    contract watch (sim.tb.unit.Monitor) with the checks of the module docstring."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.dut = ArgmaxUnit(config, test_stall=True)

    def run(self, cases: list[tuple[list[int], Instr]], *, gap: float = 0.0, stall: float = 0.0,
            seed: int = 0) -> Run:
        dut, config = self.dut, self.config
        lanes = config.vector_lanes
        regs = unit.RegModel(config)
        junk = random.Random(seed)
        payloads = [unit.cmd_payload("ARGMAX", vl=ins.vl, vs=ins.vs, at=ins.at, ad=ins.ad, s0=ins.am, s1=ins.ao,
                                # fields this unit must ignore
                                vd=junk.randrange(isa.N_VREGS), vt=junk.randrange(isa.N_VREGS),
                                fd=junk.randrange(isa.N_FREGS), addr=junk.randrange(-(1 << 40), 1 << 40),
                                rows=junk.randrange(1 << 16))
                    for _, ins in cases]
        limit = sum(-(-ins.vl // lanes) * (1 + 8 * stall) + 40 for _, ins in cases) * (1 + 8 * gap) + 100
        c = types.SimpleNamespace(nread=0)

        def start(k):
            c.nread = 0

        def busy(s):
            ins = cases[s.k][1]
            n_words = -(-ins.vl // lanes)
            if s.rs_en:
                assert c.nread < n_words, f"{s.where}: read past word {n_words - 1}"
                assert s.rs_addr == c.nread, f"{s.where}: read of word {s.rs_addr}, expected {c.nread}"
                assert s.rs_reg == ins.vs, f"{s.where}: rs names V{s.rs_reg}"
                c.nread += 1
            assert s.a_en == s.b_en, f"{s.where}: awb.en {s.a_en}, awb2.en {s.b_en}: not together"
            assert not s.a_en or s.done, f"{s.where}: a write-back before done"
            if s.done:
                assert c.nread == n_words, f"{s.where}: done after {c.nread} reads"
                run.writes.append([(int(s.a_idx), int(s.a_val)), (int(s.b_idx), int(s.b_val))] if s.a_en else [])

        mon = unit.Monitor(
            dut, [ins for _, ins in cases], limit, start=start, busy=busy, run=Run(),
            signals={"rs_en": dut.rs.en, "rs_addr": dut.rs.addr, "rs_reg": dut.rs.reg,
                     "a_en": dut.awb.en, "a_idx": dut.awb.idx, "a_val": dut.awb.value,
                     "b_en": dut.awb2.en, "b_idx": dut.awb2.idx, "b_val": dut.awb2.value},
            idle=("rs_en", "a_en", "b_en"), quiet=(6, [dut.rs.en, dut.awb.en, dut.awb2.en, dut.done]))
        run = mon.run

        async def refill(ctx, k):
            # Vs is refilled while the unit is idle
            await unit.until(ctx, lambda: mon.checked >= k - 1)
            v, ins = cases[k]
            regs.V[ins.vs][:] = v

        async def source(ctx):
            await unit.issue(ctx, dut.cmd, payloads, Pauses(seed * 3 + 1, gap), before=refill)

        unit.simulator(dut, regs, stall=Pauses(seed * 3 + 2, stall), testbenches=[source, mon.watch]).run()
        assert len(run.done) == len(cases)
        for k, (v, ins) in enumerate(cases):
            want = golden(np.array(v, np.int64), ins)
            assert run.writes[k] == want, f"instruction {k} {ins}: writes {run.writes[k]}, golden {want}"
            # the sequencer applies awb, then awb2: the register file ends as the golden machine's
            A0 = {r: 1000 + r for r in range(isa.N_AREGS)}
            assert apply(A0, run.writes[k]) == apply(A0, want)
        return run


def cases_for(config: AccelConfig, rng: random.Random, n: int) -> list:
    return [case(config, rng, CLASSES[k % len(CLASSES)] if k < len(CLASSES) else rng.choice(CLASSES))
            for k in range(n)]


# -- against the golden machine ------------------------------------------------------------------
@pytest.mark.parametrize("idle,stall", [pytest.param(0.0, 0.0, id="nostall"), pytest.param(0.3, 0.3, id="stall")])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_argmax_matches_golden(cfg, idle, stall):
    """Every value class, random VL (edges: 1, around the lanes, vlen), ad == at in a quarter of
    the instructions, idle gaps between commands, random stalls inside."""
    config = CONFIGS[cfg]
    rng = random.Random(f"argmax-{cfg}")
    Bench(config).run(cases_for(config, rng, 2 * len(CLASSES)), gap=idle, stall=stall, seed=len(cfg))


def test_ad_equals_at_gives_the_index():
    """ad == at: both write-backs name one register in the same cycle, awb2 (the index) applied
    last, as the golden machine writes Am then Ai."""
    config = CONFIGS["l4"]
    v = [0] * config.vlen
    v[5], v[9] = 7 << 24, 7 << 24          # a tie: the first is kept
    ins = Instr(config.vlen, 3, 6, 6, -1, 100)
    run = Bench(config).run([(v, ins)])
    assert run.writes == [[(6, 7 << 24), (6, 105)]]
    assert apply({6: -1}, run.writes[0]) == {6: 105}


def test_negative_only_and_no_write():
    """All elements negative: Am = -2**63 gives the first maximum; Am equal to the maximum gives no
    write (strict); Am = FX_MIN - 1 below every FX value."""
    config = CONFIGS["l4"]
    v = [-(1 << 30) - j for j in range(config.vlen)]
    v[13] = v[40] = -5
    cases = [(v, Instr(50, 0, 1, 2, A_MIN, 10)), (v, Instr(50, 0, 1, 2, -5, 10)),
             (v, Instr(50, 0, 1, 2, -6, 10)), (v, Instr(13, 0, 1, 2, N.FX_MIN - 1, A_MAX))]
    run = Bench(config).run(cases)
    assert run.writes == [[(1, -5), (2, 23)], [], [(1, -5), (2, 23)], [(1, -(1 << 30)), (2, A_MAX)]]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_cycles(cfg):
    """No stalls: the measured cycles equal `argmax_cycles` (its docstring is the stage count: one
    word per cycle, QUEUE_LATENCY to the read queue's head, one stage per level of the lane tree, the
    compare, Ao + index, the write-backs), the next cmd the cycle after; consecutive VLs one word
    apart take one cycle more."""
    config = CONFIGS[cfg]
    lanes = config.vector_lanes
    rng = random.Random(f"argmax-cycles-{cfg}")
    cases = []
    for vl in (1, lanes, lanes + 1, config.vlen):
        v, ins = case(config, rng, "uniform")
        cases.append((v, dataclasses.replace(ins, vl=vl)))
    run = Bench(config).run(cases)
    for (_, ins), took in zip(cases, run.cycles(), strict=True):
        assert took == argmax_cycles(-(-ins.vl // lanes), lanes), f"{ins}: {took} cycles"
    took = dict(zip((ins.vl for _, ins in cases), run.cycles(), strict=True))
    if lanes > 1:
        assert took[lanes + 1] == took[lanes] + 1 == took[1] + 1
    assert tree_levels(lanes) == (lanes - 1).bit_length() and (1 << tree_levels(lanes)) >= lanes


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CONFIGS)
def test_argmax_long_sweep(cfg):
    config = CONFIGS[cfg]
    rng = random.Random(f"argmax-sweep-{cfg}")
    Bench(config).run(cases_for(config, rng, 200), gap=0.2, stall=0.4, seed=7)


# -- interface -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS)
def test_signature(cfg):
    config = CONFIGS[cfg]
    dut = ArgmaxUnit(config)
    unit.check_elaborates(dut, config)
    assert len(dut.rs.data) == config.vector_lanes and dut.rs.data[0].shape() == FX
    assert dut.awb.value.shape().width == dut.awb2.value.shape().width == A_BITS
    unit.check_test_stall(dut, ArgmaxUnit(config, test_stall=True))


def test_config_checks():
    unit.rejects(TypeError, r"^config must be an AccelConfig, not 4$", ArgmaxUnit, 4)
    unit.rejects(ValueError, r"beat_bytes >= 8", ArgmaxUnit, unit.config("ice40", beat_bytes=4))
