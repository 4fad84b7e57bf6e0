"""hw.mem.dram_model: the DFI-side DDR4 model and its JEDEC checker, in Amaranth simulation.

Positive: legal traffic placed at the minimum spacing by an independent Python scheduler (init,
ACT/RD/WR/PRE/PREA/REF across banks and bank groups) raises nothing, reads return the data last
written (0 for lines never written), counters and the trace are right.

Negative: for every rule of spec.dram.RULES (the parametrization is over RULES, so a rule without a
case fails) one or more scripts that are legal except for one spacing made one clock (or one
cycle, or one step) short: the broken script raises that rule (and nothing else, unless a case
names the rules its mistake necessarily breaks too), the same script at the legal minimum raises
nothing. The short cases of one channel share one simulation (each starts with RESET_n low and a
full power-up), run for DDR4-2400R 8Gb_x8 and, for the bank-group and rank rules, DDR4-3200AA
8Gb_x16 (2 bank groups). refresh_debt has its own long runs (9 x tREFI).
"""
from __future__ import annotations

import random

import pytest

from hw.mem.dfi import Cmd, decode
from hw.mem.dram_model import DramModel
from sim.tb.dram import (
    Report,
    Script,
    Store,
    TraceWriter,
    decode_trace,
    legal_init,
    pins,
    rule_names,
    run_script,
    trace_line,
)
from spec.dram import RULES, Channel, mode_registers, rule_code

CH8 = Channel("DDR4-2400R", "8Gb_x8")
CH16 = Channel("DDR4-3200AA", "8Gb_x16")
RULE_NAMES = [r.name for r in RULES]


# --------------------------------------------------------------------------------------------
# Negative cases: builder(ch, e) -> Script, e = 0 at the legal minimum, e = -1 one step short.

def _wr_end(t):
    return t.CWL + t.tBURST


def _two_banks(ch, same_group: bool):
    """Init, then ACT (0,0) and a second bank ((0,1) or (1,0)) at the minimum spacing. Returns
    (script, second bank, the first clock both may take a CAS)."""
    t = ch.timing
    s, t0 = legal_init(ch)
    second = (0, 1) if same_group else (1, 0)
    gap = t.tRRD_L if same_group else t.tRRD_S
    s.act(t0, 0, 0, 11)
    s.act(t0 + gap, *second, 22)
    return s, second, t0 + gap + t.tRCD


def _phase1(clock: int) -> int:
    """The first clock >= `clock` in phase 1 (two CAS 3 clocks apart fall in two cycles)."""
    return clock + (1 - clock) % 4


def c_trcd(cmd):
    def build(ch, e):
        s, t0 = legal_init(ch)
        s.act(t0, 1, 1, 5)
        (s.rd if cmd == "rd" else s.wr)(t0 + ch.timing.tRCD + e, 1, 1, 8)
        return s
    return build


def c_trp_act(ch, e):
    t = ch.timing
    s, t0 = legal_init(ch)
    s.act(t0, 0, 1, 7).pre(t0 + t.tRAS + 5, 0, 1).act(t0 + t.tRAS + 5 + t.tRP + e, 0, 1, 9)
    return s


def c_trp_prea(ch, e):
    t = ch.timing
    s, t0 = legal_init(ch)
    s.act(t0, 1, 2, 7).prea(t0 + t.tRAS + 5).act(t0 + t.tRAS + 5 + t.tRP + e, 1, 2, 3)
    return s


def c_trp_ref(ch, e):
    t = ch.timing
    s, t0 = legal_init(ch)
    s.act(t0, 0, 0, 7).pre(t0 + t.tRAS, 0, 0).ref(t0 + t.tRAS + t.tRP + e)
    return s


def c_tras(prea: bool):
    def build(ch, e):
        t = ch.timing
        s, t0 = legal_init(ch)
        s.act(t0, 0, 0, 7).act(t0 + t.tRRD_S, 1, 0, 8)
        last = t0 + t.tRRD_S
        if prea:
            s.prea(last + t.tRAS + e)
        else:
            s.pre(last + t.tRAS + e, 1, 0)
        return s
    return build


def c_trc(ch, e):
    t = ch.timing
    s, t0 = legal_init(ch)
    s.act(t0, 0, 0, 7).pre(t0 + t.tRAS, 0, 0).act(t0 + t.tRC + e, 0, 0, 8)
    return s


def c_trtp(prea: bool):
    def build(ch, e):
        t = ch.timing
        s, t0 = legal_init(ch)
        rd = t0 + t.tRAS - t.tRTP + 5               # late enough that tRAS does not bind
        s.act(t0, 0, 2, 7).rd(rd, 0, 2, 16)
        (s.prea(rd + t.tRTP + e) if prea else s.pre(rd + t.tRTP + e, 0, 2))
        return s
    return build


def c_twr(prea: bool):
    def build(ch, e):
        t = ch.timing
        s, t0 = legal_init(ch)
        wr = t0 + t.tRCD
        s.act(t0, 1, 3, 7).wr(wr, 1, 3, 24, data=0x55)
        end = wr + _wr_end(t) + t.tWR + e
        (s.prea(end) if prea else s.pre(end, 1, 3))
        return s
    return build


def c_cas_pair(rule: str, first: str, second: str, same_bank: bool = False):
    """Two CAS commands: tCCD_L / tCCD_S / tRTW / tWTR_L / tWTR_S apart."""
    def build(ch, e):
        t = ch.timing
        same_group = rule.endswith("_L") or (rule == "tRTW" and same_bank)
        s, b2, tc = _two_banks(ch, same_group)
        if same_bank:
            b2 = (0, 0)
        gap = {"tCCD_L": t.tCCD_L, "tCCD_S": t.tCCD_S, "tRTW": t.CL + t.tBURST + 2 - t.CWL,
               "tWTR_L": _wr_end(t) + t.tWTR_L, "tWTR_S": _wr_end(t) + t.tWTR_S}[rule]
        t1 = _phase1(tc)
        for k, (cmd, at, bank) in enumerate(((first, t1, (0, 0)), (second, t1 + gap + e, b2))):
            if cmd == "rd":
                s.rd(at, *bank, 8 * (k + 1))
            else:
                s.wr(at, *bank, 8 * (k + 1), data=0x1234 + k)
        return s
    return build


def c_trrd(rule: str):
    def build(ch, e):
        t = ch.timing
        s, t0 = legal_init(ch)
        same = rule == "tRRD_L"
        s.act(t0, 0, 0, 1).act(t0 + (t.tRRD_L if same else t.tRRD_S) + e, *((0, 1) if same else (1, 0)), 2)
        return s
    return build


def c_tfaw(ch, e):
    """Four ACTs at the tRRD minimum over all bank groups, the fifth tFAW after the first."""
    t, g = ch.timing, ch.geo
    s, t0 = legal_init(ch)
    times, banks = [], [(i % g.bank_groups, i // g.bank_groups) for i in range(5)]
    for i in range(5):
        at = t0 if i == 0 else times[-1] + t.tRRD_S
        if i >= g.bank_groups:
            at = max(at, times[i - g.bank_groups] + t.tRRD_L)
        if i == 4:
            assert at < t0 + t.tFAW - 1, "tFAW does not bind with this schedule"
            at = t0 + t.tFAW + e
        times.append(at)
        s.act(at, *banks[i], 100 + i)
    return s


def c_trfc(then: str):
    def build(ch, e):
        t = ch.timing
        s, t0 = legal_init(ch)
        s.ref(t0)
        (s.ref(t0 + t.tRFC + e) if then == "ref" else s.act(t0 + t.tRFC + e, 1, 1, 1))
        return s
    return build


def c_tmrd(ch, e):
    s, t0 = legal_init(ch)
    return s.mrs(t0, 3, 0).mrs(t0 + ch.timing.tMRD + e, 3, 0)


def c_tmod(ch, e):
    s, t0 = legal_init(ch)
    return s.mrs(t0, 6, 0).act(t0 + ch.timing.tMOD + e, 0, 0, 0)


def c_init_wait(name: str):
    """A power-up with one of its waits one clock short (then one ACT)."""
    def build(ch, e):
        s, t0 = legal_init(ch, adjust={name: e})
        return s.act(t0, 0, 0, 0)
    return build


def c_tdllk(ch, e):
    t = ch.timing
    s, t0 = legal_init(ch)
    s.mrs(t0, 0, mode_registers(t)[0]).act(t0 + t.tMOD, 0, 0, 3).rd(t0 + t.tDLLK + e, 0, 0, 0)
    return s


def c_wrdata(kind: str):
    def build(ch, e):
        t, bad = ch.timing, e < 0
        s, t0 = legal_init(ch)
        s.act(t0, 0, 0, 9)
        wr = t0 + t.tRCD
        due = wr // 4 + ch.wr_latency
        if kind == "late":
            s.wr(wr, 0, 0, 0, data=1, data_cycle=due + bad)
        elif kind == "early":
            s.wr(wr, 0, 0, 0, data=1, data_cycle=due - bad)
        elif kind == "missing":
            s.wr(wr, 0, 0, 0, data=None if bad else 1)
        elif kind == "spurious" and bad:
            s.burst(due + 20, 0xFF)
        return s
    return build


def c_state(rule: str):
    """A state mistake: the legal script has the command that the broken one leaves out."""
    def build(ch, e):
        t, bad = ch.timing, e < 0
        s, t0 = legal_init(ch)
        if rule == "act_open":
            s.act(t0, 0, 0, 1)
            if not bad:
                s.pre(t0 + t.tRAS, 0, 0)
            s.act(t0 + t.tRC, 0, 0, 2)
        elif rule == "cas_closed":
            if not bad:
                s.act(t0, 0, 0, 1)
            s.rd(t0 + t.tRCD, 0, 0, 0)
        elif rule in ("ref_open", "mrs_open"):
            s.act(t0, 2 % ch.geo.bank_groups, 1, 1)
            if not bad:
                s.pre(t0 + t.tRAS, 2 % ch.geo.bank_groups, 1)
            at = t0 + t.tRAS + t.tRP
            (s.ref(at) if rule == "ref_open" else s.mrs(at, 3, 0))
        return s
    return build


def c_init_order(kind: str):
    def build(ch, e):
        bad = e < 0
        if kind in ("t_reset", "t_cke"):                # released one cycle early
            s, t0 = legal_init(ch, adjust={kind: -4 if bad else 0})
        elif kind in ("no_zqcl", "no_mr5"):
            s, t0 = legal_init(ch, skip=({"ZQCL"} if kind == "no_zqcl" else {5}) if bad else ())
        else:
            s, t0 = legal_init(ch)
        if kind == "cke_low" and bad:                     # a command in the cycle before CKE rises
            s.mrs(4 * (s.cke_at - 1), 3, 0)
        if kind == "reset_low" and bad:
            s.at(4, Cmd.ZQCS)
        return s.act(t0, 0, 0, 0)
    return build


def c_mode(field: str):
    def build(ch, e):
        mr = mode_registers(ch.timing)
        flip = {"CL": (0, 1 << 4), "CL_A2": (0, 1 << 2), "WR": (0, 1 << 9), "CWL": (2, 1 << 3)}[field]
        values = {flip[0]: mr[flip[0]] ^ flip[1]} if e < 0 else None
        s, t0 = legal_init(ch, values=values)
        return s.act(t0, 0, 0, 0)
    return build


def c_bad(kind: str):
    def build(ch, e):
        t, bad = ch.timing, e < 0
        s, t0 = legal_init(ch)
        cas = t0 + t.tRCD
        if kind == "rda":
            s.act(t0, 0, 0, 1).at(cas, Cmd.RDA if bad else Cmd.RD, bg=0, ba=0, col=8)
        elif kind == "wra":
            s.act(t0, 0, 0, 1).at(cas, Cmd.WRA if bad else Cmd.WR, bg=0, ba=0, col=8)
            s.burst(cas // 4 + ch.wr_latency, 7)
        elif kind == "column":
            s.act(t0, 0, 0, 1).rd(cas, 0, 0, 12 if bad else 16)
        elif kind == "reserved":
            s.raw(t0 // 4, 0, pins(Cmd.BAD) if bad else pins(Cmd.ZQCS), Cmd.BAD if bad else Cmd.ZQCS)
        elif kind == "mr7":
            s.mrs(t0, 7 if bad else 6, 0)
        elif kind == "row":
            s.act(t0, 0, 0, ch.geo.rows if bad else ch.geo.rows - 1)
        return s
    return build


#: rule -> [(variant, builder, other rules the broken script necessarily breaks)]
CASES: dict[str, list] = {
    "tRCD": [("rd", c_trcd("rd"), set()), ("wr", c_trcd("wr"), set())],
    "tRP": [("act", c_trp_act, set()), ("prea_act", c_trp_prea, set()), ("ref", c_trp_ref, set())],
    "tRAS": [("pre", c_tras(False), set()), ("prea", c_tras(True), set())],
    # tRC = tRAS + tRP in every grade here: an ACT one clock early breaks tRP or tRAS as well
    "tRC": [("act", c_trc, {"tRP"})],
    "tRTP": [("pre", c_trtp(False), set()), ("prea", c_trtp(True), set())],
    "tWR": [("pre", c_twr(False), set()), ("prea", c_twr(True), set())],
    "tCCD_L": [("rd_rd", c_cas_pair("tCCD_L", "rd", "rd"), set()), ("wr_wr", c_cas_pair("tCCD_L", "wr", "wr"), set()),
               ("same_bank", c_cas_pair("tCCD_L", "rd", "rd", same_bank=True), set())],
    "tRRD_L": [("act", c_trrd("tRRD_L"), set())],
    "tWTR_L": [("wr_rd", c_cas_pair("tWTR_L", "wr", "rd"), set()),
               ("same_bank", c_cas_pair("tWTR_L", "wr", "rd", same_bank=True), set())],
    "tCCD_S": [("rd_rd", c_cas_pair("tCCD_S", "rd", "rd"), set()), ("wr_wr", c_cas_pair("tCCD_S", "wr", "wr"), set())],
    "tRRD_S": [("act", c_trrd("tRRD_S"), set())],
    "tWTR_S": [("wr_rd", c_cas_pair("tWTR_S", "wr", "rd"), set())],
    "tFAW": [("fifth_act", c_tfaw, set())],
    "tRFC": [("act", c_trfc("act"), set()), ("ref", c_trfc("ref"), set())],
    "tMRD": [("after_init", c_tmrd, set()), ("init", c_init_wait("tMRD"), set())],
    "tMOD": [("after_init", c_tmod, set()), ("init", c_init_wait("tMOD"), set())],
    "tXPR": [("init", c_init_wait("tXPR"), set())],
    "tZQinit": [("init", c_init_wait("tZQinit"), set())],
    "tDLLK": [("mr0_dll_reset", c_tdllk, set())],
    "tRTW": [("rd_wr", c_cas_pair("tRTW", "rd", "wr"), set()),
             ("same_bank", c_cas_pair("tRTW", "rd", "wr", same_bank=True), set())],
    "wrdata": [(k, c_wrdata(k), set()) for k in ("late", "early", "missing", "spurious")],
    "refresh_debt": [],             # long runs: test_refresh_debt_*
    "act_open": [("act", c_state("act_open"), set())],
    "cas_closed": [("rd", c_state("cas_closed"), set())],
    "ref_open": [("ref", c_state("ref_open"), set())],
    "mrs_open": [("mrs", c_state("mrs_open"), set())],
    "init_order": [(k, c_init_order(k), set()) for k in ("t_reset", "t_cke", "no_zqcl", "no_mr5", "cke_low",
                                                          "reset_low")],
    "mode_register": [(k, c_mode(k), set()) for k in ("CL", "CL_A2", "WR", "CWL")],
    "bad_command": [(k, c_bad(k), set()) for k in ("rda", "wra", "column", "reserved", "mr7", "row")],
}

#: the rules also run on the x16 geometry (2 bank groups)
X16_RULES = [r.name for r in RULES if r.family in ("bank_group", "rank")]


def run_cases(ch: Channel, rules) -> dict:
    """Every case of `rules`, legal and broken, back to back in one simulation (each starts with
    RESET_n low and a full power-up). Returns {(rule, variant, side): Report of that case}."""
    big = Script(ch)
    spans = []
    at = 0
    for rule in rules:
        for variant, build, _ in CASES[rule]:
            for side, e in (("legal", 0), ("broken", -1)):
                s = build(ch, e)
                big.append(s, at)
                end = at + s.last_cycle + ch.rd_latency + 8
                spans.append(((rule, variant, side), at, end))
                at = end
    out = run_script(big, cycles=at)
    reports = {key: Report() for key, _, _ in spans}
    for cycle, clock, names in out["report"].events:
        key = next(k for k, a, b in spans if a <= cycle < b)
        reports[key].events.append((cycle, clock, names))
    return reports


@pytest.fixture(scope="module")
def x8_cases():
    return run_cases(CH8, [r for r in RULE_NAMES if CASES.get(r)])


@pytest.fixture(scope="module")
def x16_cases():
    return run_cases(CH16, X16_RULES)


def _check_rule(rule: str, reports: dict) -> None:
    assert rule in CASES, f"rule {rule} has no negative test case"
    for variant, _, also in CASES[rule]:
        legal, broken = reports[rule, variant, "legal"], reports[rule, variant, "broken"]
        assert legal.ok, f"{rule}/{variant} at the legal minimum: {legal.summary()}"
        assert rule in broken.names(), f"{rule}/{variant} one step short not flagged: {broken.summary()}"
        assert broken.names() <= {rule} | also, f"{rule}/{variant}: other rules fired: {broken.summary()}"


@pytest.mark.parametrize("rule", RULE_NAMES)
def test_rule_x8(rule, x8_cases, refresh_runs):
    if rule == "refresh_debt":
        assert "refresh_debt" in refresh_runs["none"]["report"].names()
        assert refresh_runs["steady"]["report"].ok
        return
    assert CASES.get(rule), f"rule {rule} has no negative test case"
    _check_rule(rule, x8_cases)


@pytest.mark.parametrize("rule", X16_RULES)
def test_rule_x16(rule, x16_cases):
    _check_rule(rule, x16_cases)


def test_every_rule_has_a_case():
    assert set(CASES) == set(RULE_NAMES)
    assert all(CASES[r] for r in RULE_NAMES if r != "refresh_debt")


# --------------------------------------------------------------------------------------------
# refresh debt

def _refresh_script(refs: str):
    """Init, then no REF ("none"), one REF right away ("one": the debt ends at the credit, not
    over it), or ("steady") nine pulled-in REFs (the debt clamps at -REFRESH_CREDIT) and then one
    per tREFI; the run lasts until 40 clocks past the ninth tREFI after init (ZQCL)."""
    t = CH8.timing
    s, t0 = legal_init(CH8)
    zq = max(c for c, cmd, _ in s.commands() if cmd == Cmd.ZQCL)
    if refs == "one":
        s.ref(t0)
    elif refs == "steady":
        for k in range(t.REFRESH_CREDIT + 1):
            s.ref(t0 + k * t.tRFC)
        for k in range(1, t.REFRESH_CREDIT + 1):
            s.ref(zq + k * t.tREFI + 100)
    return s, zq, (zq + (t.REFRESH_CREDIT + 1) * t.tREFI + 40) // 4


@pytest.fixture(scope="module")
def refresh_runs():
    out = {}
    for refs in ("none", "steady"):
        s, zq, end = _refresh_script(refs)
        out[refs] = run_script(s, cycles=end, data=False)
        out[refs]["zq"] = zq
    return out


def test_refresh_debt_without_refresh(refresh_runs):
    t = CH8.timing
    run = refresh_runs["none"]
    rep = run["report"]
    assert rep.counts() == {"refresh_debt": 1}, rep.summary()
    # one REF falls due every tREFI from init; the ninth makes the debt exceed the credit of 8
    _, clock = rep.first("refresh_debt")
    due = run["zq"] + (t.REFRESH_CREDIT + 1) * t.tREFI
    assert due - 8 <= clock <= due + 8, (clock, due)
    assert run["counters"]["max_ref_debt"] == t.REFRESH_CREDIT + 1
    assert run["counters"]["ref_debt"] == t.REFRESH_CREDIT + 1


def test_refresh_one_per_trefi(refresh_runs):
    """Nine REFs pulled in, then one per tREFI: nothing flagged, the debt never above 0."""
    t = CH8.timing
    run = refresh_runs["steady"]
    assert run["report"].ok, run["report"].summary()
    assert run["counters"]["refs"] == 2 * t.REFRESH_CREDIT + 1
    assert run["counters"]["max_ref_debt"] == 0
    assert run["counters"]["ref_debt"] == -t.REFRESH_CREDIT + 1


@pytest.mark.slow
def test_refresh_debt_at_the_credit():
    """One REF in nine tREFI: the debt reaches the credit (8) and is not flagged."""
    s, _, end = _refresh_script("one")
    run = run_script(s, cycles=end, data=False)
    assert run["report"].ok, run["report"].summary()
    assert run["counters"]["ref_debt"] == CH8.timing.REFRESH_CREDIT
    assert run["counters"]["refs"] == 1


# --------------------------------------------------------------------------------------------
# Positive: legal traffic at the minimum spacing

class Scheduler:
    """Places commands at the earliest legal DRAM clock (an independent Python statement of the
    JEDEC rules the model checks), in order, one per clock."""

    def __init__(self, ch: Channel, script: Script, t0: int):
        self.ch, self.t, self.s = ch, ch.timing, script
        self.now = t0 - 1
        self.open: dict[tuple[int, int], int] = {}
        self.act: dict = {}
        self.pre: dict = {}
        self.rd: dict = {}
        self.wr: dict = {}
        self.g_act: dict = {}
        self.g_cas: dict = {}
        self.g_wr: dict = {}
        self.acts: list[int] = []
        self.last_rd = self.last_ref = self.last_pre = -10**9
        self.counts = {"RD": 0, "WR": 0, "ACT": 0, "REF": 0}

    @staticmethod
    def _max_other(d: dict, g: int) -> int:
        return max((v for k, v in d.items() if k != g), default=-10**9)

    def earliest(self, cmd: str, bank=None) -> int:
        t, never = self.t, -10**9
        at = max(self.now + 1, self.last_ref + t.tRFC)
        g = bank[0] if bank else None
        if cmd == "ACT":
            at = max(at, self.pre.get(bank, never) + t.tRP, self.act.get(bank, never) + t.tRC,
                     self.g_act.get(g, never) + t.tRRD_L, self._max_other(self.g_act, g) + t.tRRD_S)
            if len(self.acts) >= 4:
                at = max(at, self.acts[-4] + t.tFAW)
        elif cmd in ("RD", "WR"):
            at = max(at, self.act[bank] + t.tRCD, self.g_cas.get(g, never) + t.tCCD_L,
                     self._max_other(self.g_cas, g) + t.tCCD_S)
            if cmd == "RD":
                at = max(at, self.g_wr.get(g, never) + _wr_end(t) + t.tWTR_L,
                         self._max_other(self.g_wr, g) + _wr_end(t) + t.tWTR_S)
            else:
                at = max(at, self.last_rd + t.CL + t.tBURST + 2 - t.CWL)
        elif cmd in ("PRE", "PREA"):
            banks = [bank] if cmd == "PRE" else list(self.open)
            for b in banks:
                at = max(at, self.act[b] + t.tRAS, self.rd.get(b, never) + t.tRTP,
                         self.wr.get(b, never) + _wr_end(t) + t.tWR)
        elif cmd == "REF":
            at = max(at, self.last_pre + t.tRP)
        return at

    def issue(self, cmd: str, bank=None, row: int = 0, col: int = 0, data: int = 0) -> int:
        at = self.earliest(cmd, bank)
        self.now = at
        g = bank[0] if bank else None
        if cmd == "ACT":
            self.s.act(at, *bank, row)
            self.open[bank] = row
            self.act[bank] = at
            self.g_act[g] = at
            self.acts.append(at)
        elif cmd == "RD":
            self.s.rd(at, *bank, col)
            self.rd[bank] = self.g_cas[g] = self.last_rd = at
        elif cmd == "WR":
            self.s.wr(at, *bank, col, data=data)
            self.wr[bank] = self.g_cas[g] = self.g_wr[g] = at
        elif cmd == "PRE":
            self.s.pre(at, *bank)
            del self.open[bank]
            self.pre[bank] = self.last_pre = at
        elif cmd == "PREA":
            self.s.prea(at)
            for b in self.open:
                self.pre[b] = at
            self.open.clear()
            self.last_pre = at
        elif cmd == "REF":
            self.s.ref(at)
            self.last_ref = at
        if cmd in self.counts:
            self.counts[cmd] += 1
        return at

    def access(self, write: bool, bank, row: int, col: int, data: int = 0) -> None:
        if self.open.get(bank, row) != row:
            self.issue("PRE", bank)
        if bank not in self.open:
            self.issue("ACT", bank, row)
        self.issue("WR" if write else "RD", bank, col=col, data=data)


def _traffic(ch: Channel, n: int, seed: int):
    rng = random.Random(seed)
    s, t0 = legal_init(ch)
    sch = Scheduler(ch, s, t0)
    g = ch.geo
    rows = [3, 4, 70000 % g.rows]
    for i in range(n):
        bank = (rng.randrange(g.bank_groups), rng.randrange(2))
        row = rng.choice(rows)
        col = 8 * rng.randrange(6)
        write = rng.random() < 0.45
        sch.access(write, bank, row, col, data=rng.getrandbits(512) if write else 0)
        if i % 60 == 59:                        # a refresh: close everything, REF
            if sch.open:
                sch.issue("PREA")
            sch.issue("REF")
    return s, sch


@pytest.mark.parametrize("ch", [CH8, CH16], ids=["2400R-x8", "3200AA-x16"])
def test_legal_traffic_at_minimum_spacing(ch):
    s, sch = _traffic(ch, 160, seed=1)
    run = run_script(s)
    assert run["report"].ok, run["report"].summary()
    expected = s.expected_reads()
    got = [d for _, d in run["reads"]]
    assert len(got) == sch.counts["RD"] == len(expected)
    assert got == expected
    assert 0 in expected and any(expected), "the traffic reads both written and never-written lines"
    c = run["counters"]
    assert (c["reads"], c["writes"], c["acts"], c["refs"]) == \
        (sch.counts["RD"], sch.counts["WR"], sch.counts["ACT"], sch.counts["REF"])
    assert c["violations"] == 0 and c["init_done"] == 1
    # the read data comes exactly rd_latency cycles after its RD
    rd_cycles = [t // 4 for t, cmd, _ in s.commands() if cmd == Cmd.RD]
    assert [c for c, _ in run["reads"]] == [c + ch.rd_latency for c in rd_cycles]


def test_masked_writes_and_read_after_write():
    ch = CH8
    t = ch.timing
    s, t0 = legal_init(ch)
    a = 0x1111_2222_3333_4444
    b = (1 << 511) | 0xAAAA_BBBB
    s.act(t0, 2, 3, 77)
    wr1 = t0 + t.tRCD
    s.wr(wr1, 2, 3, 40, data=a)
    wr2 = wr1 + t.tCCD_L
    s.wr(wr2, 2, 3, 40, data=b, mask=0x8000_0000_0000_00F0)     # bytes 4..7 and 63 only
    rd = wr2 + _wr_end(t) + t.tWTR_L
    s.rd(rd, 2, 3, 40)
    s.rd(rd + t.tCCD_L, 2, 3, 48)                          # never written: 0
    run = run_script(s)
    assert run["report"].ok, run["report"].summary()
    merged = (a & ~(0xFFFFFFFF << 32)) | (b & (0xFFFFFFFF << 32)) | (b & (0xFF << 504))
    assert [d for _, d in run["reads"]] == [merged, 0] == s.expected_reads()
    addr = s.store_addr(2, 3, 77, 40)
    assert run["store"].read(addr) == merged


def test_trace_lines():
    ch = CH8
    t = ch.timing
    s, t0 = legal_init(ch)
    assert (s.reset_at, s.cke_at, t0) == (16, 48, 1720)
    s.act(1720, 3, 1, 0x1ABC).wr(1736, 3, 1, 0x3F8, data=5).rd(1761, 3, 1, 8).pre(1780, 3, 1)
    s.ref(1796).at(2216, Cmd.ZQCS).prea(2220)
    run = run_script(s, trace=True)
    assert run["report"].ok, run["report"].summary()
    assert run["trace"] == [
        "624 MRS 0 0 3 0x0 -", "632 MRS 0 1 2 0x0 -", "640 MRS 0 1 1 0x0 -", "648 MRS 0 1 0 0x0 -",
        "656 MRS 0 0 2 0x18 -", "664 MRS 0 0 1 0x1 -", "672 MRS 0 0 0 0x934 -", "696 ZQCL 0 - - - -",
        "1720 ACT 0 3 1 6844 -", "1736 WR 0 3 1 6844 1016", "1761 RD 0 3 1 6844 8", "1780 PRE 0 3 1 - -",
        "1796 REF 0 - - - -", "2216 ZQCS 0 - - - -", "2220 PREA 0 - - - -",
    ]
    assert t.tRAS <= 1780 - 1720


# --------------------------------------------------------------------------------------------
# helpers and conversion

def test_helpers():
    for cmd, kw in [(Cmd.ACT, {"bg": 3, "ba": 1, "row": 0x1ABCD}), (Cmd.RD, {"bg": 1, "ba": 2, "col": 0x3F8}),
                    (Cmd.WR, {"bg": 2, "ba": 0, "col": 8}), (Cmd.PRE, {"bg": 1, "ba": 1}), (Cmd.PREA, {}),
                    (Cmd.REF, {}), (Cmd.MRS, {"mr": 5, "value": 0x1234}), (Cmd.ZQCL, {}), (Cmd.ZQCS, {}),
                    (Cmd.NOP, {}), (Cmd.RDA, {"bg": 0, "ba": 0, "col": 16}), (Cmd.BAD, {})]:
        got, fields = decode(pins(cmd, **kw))
        assert got == cmd
        assert all(fields[k] == v for k, v in kw.items())
    assert trace_line(10, Cmd.REF, 0, 1, 2, 3, 4) == "10 REF 0 - - - -"
    assert trace_line(11, Cmd.MRS, 0, 0, 2, 0x18, 0) == "11 MRS 0 0 2 0x18 -"
    assert trace_line(12, Cmd.RD, 0, 1, 2, 3, 8) == "12 RD 0 1 2 3 8"
    assert rule_names((1 << rule_code("tFAW")) | 1) == ["tRCD", "tFAW"]
    st = Store()
    st.write(5, 0xFFFF_FFFF, 0b0101)
    assert st.serve(1, 0, 5) == 0x00FF_00FF and st.serve(1, 0, 6) == 0 and st.serve(0, 1, 5, 1, 1) is None
    tw = TraceWriter(None)
    tw.add(4, {"cmd": Cmd.ACT, "bg": 1, "ba": 0, "row": 9, "col": 0})
    assert tw.lines == ["4 ACT 0 1 0 9 -"]
    from hw.mem.dram_model import TraceLayout
    lay = TraceLayout(CH8)
    v = lay.const({"valid": 1, "cmd": Cmd.RD, "bg": 2, "ba": 1, "row": 5, "col": 16}).as_value().value
    assert decode_trace(v << lay.size, CH8) == [(1, {"cmd": Cmd.RD, "bg": 2, "ba": 1, "row": 5, "col": 16})]
    sc = Script(CH8).cmd(10, 1, Cmd.WR, bg=1, ba=2, col=8, data=5, mask=3)
    assert sc.wrdata == {10 + CH8.wr_latency: (5, 3)} and sc.commands() == [(41, Cmd.WR, {"bg": 1, "ba": 2, "col": 8})]
    with pytest.raises(ValueError):
        Script(CH8).act(0, 0, 0, 0).act(0, 0, 1, 0)
    with pytest.raises(ValueError):
        legal_init(CH8, adjust={"tFOO": 1})
    with pytest.raises(ValueError):
        DramModel("DDR4-2400R")


@pytest.mark.parametrize("ch", [CH8, CH16], ids=["2400R-x8", "3200AA-x16"])
def test_converts_to_verilog(ch):
    from amaranth.back import verilog
    text = verilog.convert(DramModel(ch), name="dram_model")
    assert "module dram_model" in text
    for port in ("dfi__rddata", "store__rdata", "violation", "rules", "trace_any", "ref_debt"):
        assert port in text


def test_phases_of_one_cycle_are_ordered():
    """Commands in the phases of one DFI cycle see each other in phase order: phase p's checks see
    the state phases 0..p-1 left (open rows, timestamps, init progress)."""
    ch = CH8
    cases = []

    def case(expect: set, place) -> None:
        s, t0 = legal_init(ch)
        c = t0 // 4 + 60                   # room for setup commands 200 clocks before
        place(s, c)
        cases.append((s, expect))

    case({"tRCD"}, lambda s, c: s.cmd(c, 0, Cmd.ACT, bg=1, ba=1, row=3).cmd(c, 3, Cmd.RD, bg=1, ba=1, col=0))
    case({"act_open", "tRC", "tRRD_L"},
         lambda s, c: s.cmd(c, 0, Cmd.ACT, bg=0, ba=0, row=3).cmd(c, 1, Cmd.ACT, bg=0, ba=0, row=4))
    case({"tRRD_S"}, lambda s, c: s.cmd(c, 1, Cmd.ACT, bg=0, ba=0, row=3).cmd(c, 3, Cmd.ACT, bg=1, ba=0, row=4))
    case({"tRFC"}, lambda s, c: s.cmd(c, 0, Cmd.REF).cmd(c, 2, Cmd.ACT, bg=0, ba=0, row=4))
    case({"tMRD"}, lambda s, c: s.cmd(c, 0, Cmd.MRS, mr=3, value=0).cmd(c, 3, Cmd.MRS, mr=3, value=0))
    case({"tRP"}, lambda s, c: s.act(4 * c - 200, 2, 2, 9).cmd(c, 1, Cmd.PREA).cmd(c, 2, Cmd.ACT, bg=2, ba=2, row=1))
    case({"ref_open"}, lambda s, c: s.cmd(c, 0, Cmd.ACT, bg=0, ba=0, row=1).cmd(c + 200, 3, Cmd.REF))
    case({"tRP"}, lambda s, c: s.act(4 * c - 200, 0, 3, 9).cmd(c, 0, Cmd.PRE, bg=0, ba=3).cmd(c, 3, Cmd.REF))
    case({"tCCD_S", "tCCD_L"},
         lambda s, c: s.act(4 * c - 100, 0, 0, 1).act(4 * c - 90, 1, 0, 1).act(4 * c - 80, 1, 1, 1)
         .cmd(c, 0, Cmd.RD, bg=0, ba=0, col=0).cmd(c, 2, Cmd.RD, bg=1, ba=0, col=0).cmd(c + 1, 0, Cmd.RD, bg=1, ba=1))
    # init progress: ZQCL in phase 0 completes init for an ACT in phase 2 (which breaks tZQinit only)
    s, _ = legal_init(ch, skip={"ZQCL"})
    c = max(cy for (cy, _) in s.slots) + 20
    s.cmd(c, 0, Cmd.ZQCL).cmd(c, 2, Cmd.ACT, bg=0, ba=0, row=0)
    cases.append((s, {"tZQinit"}))

    big, spans, at = Script(ch), [], 0
    for s, expect in cases:
        big.append(s, at)
        end = at + s.last_cycle + ch.rd_latency + 8
        spans.append((at, end, expect))
        at = end
    rep = run_script(big, cycles=at)["report"]
    for i, (a, b, expect) in enumerate(spans):
        names = {n for cycle, _, ns in rep.events if a <= cycle < b for n in ns}
        assert names == expect, f"case {i}: {names} != {expect}"
