"""sim.fuzz: random valid programs for RTL-vs-golden differential fuzzing.

Hundreds of seeds on both fuzz configs generate and run on the golden machine without a fault,
together execute every opcode of spec.isa.OPS, and show every F register exactly through the
epilogue's probes; generation is deterministic; Observed.diff names planted mismatches."""
from __future__ import annotations

import collections
import dataclasses
import time

import numpy as np
import pytest

from golden.machine import GoldenMachine, ListHost
from sim import fuzz
from sim.fuzz import analysis, api, config, validate
from spec import isa
from spec import numerics as N
from spec import weight_image as wi

SEEDS_PER_CONFIG = 160          # 320 programs in all


@pytest.fixture(scope="module", params=sorted(fuzz.FUZZ_CONFIGS))
def setup(request):
    cfg = fuzz.fuzz_config(request.param)
    return cfg, fuzz.make_image(cfg)


@pytest.fixture(scope="module")
def runs(setup):
    """(config, image, [(case, observed)], seconds) for SEEDS_PER_CONFIG seeds."""
    cfg, img = setup
    t0 = time.perf_counter()
    out = []
    for seed in range(SEEDS_PER_CONFIG):
        case = fuzz.random_program(seed, cfg, img)
        out.append((case, fuzz.run_golden(case, cfg, img)))
    return cfg, img, out, time.perf_counter() - t0


def test_configs_and_image(setup):
    cfg, img = setup
    amaranth = pytest.importorskip("amaranth")  # noqa: F841 - hw.core.iface needs it
    from hw.core.iface import check_core_config

    check_core_config(cfg)                                      # a core can be built with it
    assert cfg.vlen == 64 and cfg.rom_words == 256
    assert (img.packing, img.beat_bytes) == (cfg.packing, cfg.beat_bytes)
    assert fuzz.make_image(cfg) is img                          # cached
    assert fuzz.make_image(dataclasses.replace(cfg, name="other")) is img
    img.verify()
    with pytest.raises(ValueError):
        fuzz.fuzz_config("nope")


def test_tmatmul_candidates_are_valid_reads(setup):
    """Every candidate (Aw, rows) read is padding-clean and inside one matrix (checked with
    spec.weight_image's own check, independently of the generator's per-beat analysis)."""
    cfg, img = setup
    info = analysis._info(img, cfg)
    mem = np.asarray(img.file_bytes())
    rng = np.random.default_rng(0)
    n_partial_rows = n_partial_groups = 0
    vls = info.tmm_vls()
    assert img.model.hidden_size in vls and img.model.intermediate_size in vls and info.vl_obs in vls
    for vl in vls:
        cands = info.tmm_candidates(vl)
        for i in rng.choice(len(cands), min(len(cands), 12), replace=False):
            aw, lo, hi = cands[i]
            for rows in {lo, hi, int(rng.integers(lo, hi + 1))}:
                assert 1 <= rows <= cfg.vlen and aw % cfg.beat_bytes == 0
                nb = wi.packed_nbytes(rows, vl, cfg.packing, cfg.beat_bytes)
                mat = max((m for m in info.matrices if m.start <= aw), key=lambda m: m.start)
                assert aw + nb <= mat.start + mat.beats.size, (vl, aw, rows)
                assert wi.check_trit_bytes(mem[aw:aw + nb], rows, vl, cfg.packing, cfg.beat_bytes) is None
                n_partial_rows += rows % cfg.beat_bytes != 0
                n_partial_groups += vl % wi.PACKINGS[cfg.packing] != 0
    assert n_partial_rows and n_partial_groups


def test_many_seeds_run_clean(runs):
    cfg, img, out, secs = runs
    executed: collections.Counter[str] = collections.Counter()
    attempts = 0
    for case, obs in out:
        assert len(case.words) <= cfg.rom_words
        assert all(0 <= w < 1 << 64 for w in case.words)
        assert isa.decode(case.words[-1]).op.mnemonic == "HALT"
        assert len(obs.tokouts) >= isa.N_AREGS and len(obs.state) == case.state_bytes
        # generator bugs would show up as MachineError rejections: none allowed
        assert not [r for r in case.rejects if "MachineError" in r], case.rejects
        attempts += case.attempts
        executed.update(obs.profile)
    assert attempts <= 1.1 * len(out)                   # data-dependent limit hits stay rare
    missing = [o.mnemonic for o in isa.OPS if not executed[o.mnemonic]]
    assert not missing, f"opcodes never executed: {missing}"
    assert secs < 45, f"{len(out)} cases took {secs:.1f} s"


def test_all_state_is_observed(runs, monkeypatch):
    """The epilogue shows every F exactly (decoded back from the probes), the V dump holds the
    registers, the last 16 TOKOUTs are A0..A15."""
    monkeypatch.setenv("MMFREE_GOLDEN_KERNEL", "numpy")      # short vectors: numpy beats numba's threads
    cfg, img, out, _ = runs
    n_exact = 0
    for case, obs in out[:60]:
        probed = obs.probed_f()
        for r in range(isa.N_FREGS):
            if case.f_exact[r]:
                assert probed[r] == case.final_f[r], (case.seed, r)
                n_exact += 1
        # re-run the body alone and compare A and V with what the epilogue shows
        m = GoldenMachine(case.words[:case.body_words] + [isa.encode("HALT")], img, state_bytes=case.state_bytes)
        m.run(ListHost(case.tokens))
        assert obs.tokouts[-isa.N_AREGS:] == m.A
        lay = case.layout
        for r in range(isa.N_VREGS):
            off = lay.vdump + 8 * cfg.vlen * r
            got = np.frombuffer(obs.state[off:off + 8 * cfg.vlen], "<i8")
            assert np.array_equal(got, m.V[r][:cfg.vlen]), (case.seed, r)
        assert tuple(m.F) == case.final_f
    assert n_exact >= 0.99 * 60 * isa.N_FREGS


def test_reference_and_fast_golden_agree(runs):
    """run_golden uses golden.ops (MMFREE_GOLDEN_KERNEL=numpy); the machine's default numba
    twins must give the same observation on fuzz programs."""
    cfg, img, out, _ = runs
    for case, obs in out[:4]:
        m = GoldenMachine(case.words, img, state_bytes=case.state_bytes)
        host = ListHost(case.tokens)
        m.run(host)
        assert fuzz.Observed(host.outputs, bytes(m.state)) == obs


def test_deterministic(setup):
    cfg, img = setup
    a = fuzz.random_program(1234, cfg, img)
    b = fuzz.random_program(1234, cfg, img)
    assert a.words == b.words and a.tokens == b.tokens and a.state_bytes == b.state_bytes
    assert a.description == b.description and "HALT" in a.description
    assert fuzz.random_program(1235, cfg, img).words != a.words


def test_diff_finds_planted_mismatch(setup):
    cfg, img = setup
    case = fuzz.random_program(7, cfg, img)
    want = fuzz.run_golden(case, cfg, img)
    assert want.diff(fuzz.run_golden(case, cfg, img)) == ""
    assert want == fuzz.Observed(list(want.tokouts), bytes(want.state))       # layout etc. not compared
    lay = case.layout
    # a V dump element
    st = bytearray(want.state)
    off = lay.vdump + 8 * (cfg.vlen * 3 + 5)
    st[off + 1] ^= 0x40
    got = fuzz.Observed(list(want.tokouts), bytes(st))
    msg = want.diff(got)
    assert got != want and f"state byte +{off + 1}" in msg and "V3[5]" in msg
    # an F probe
    st = bytearray(want.state)
    st[lay.fdump + 8 * lay.fobs_vl * 2] ^= 1
    assert f"probe of F{lay.f_order[2]}" in want.diff(fuzz.Observed(list(want.tokouts), bytes(st)))
    # a scratch word, without a layout
    st = bytearray(want.state)
    st[24] ^= 0x80
    assert "state byte +24" in fuzz.Observed(want.tokouts, want.state).diff(fuzz.Observed(want.tokouts, bytes(st)))
    # TOKOUTs
    toks = list(want.tokouts)
    toks[-2] += 1
    assert "epilogue TOKOUT A14" in want.diff(fuzz.Observed(toks, want.state))
    assert "tokouts: expected" in want.diff(fuzz.Observed(want.tokouts[:-1], want.state))
    assert "state region" in want.diff(fuzz.Observed(list(want.tokouts), want.state + b"\0"))


def test_limits_are_checked(setup):
    """The validation run rejects what the hardware cannot hold: a TMATMUL scale below
    TMM_MIN_SF_EXP (the golden's rshift_round breaks there) and LDV data wider than FX."""
    cfg, img = setup
    info = analysis._info(img, cfg)
    lay = api._state_layout(info)
    e = isa.encode
    tiny = next(a for a, sf in info.ldf_all if sf[0] and sf[1] < config.TMM_MIN_SF_EXP)
    words = [e("SETVL", info.vl_obs), e("MOVI", 1, tiny), e("LDF", 0, (1, 0)), e("MOVI", 2, info.probe_aw),
             e("TMATMUL", 0, 0, 2, 0, cfg.beat_bytes), e("HALT")]
    # ops.py's apply_sf raises OverflowError there (the numba twin would return a wrong value)
    with pytest.raises(validate._Reject, match="scale exponent|OverflowError"):
        validate._run_checked(validate._checked_machine(words, img, lay["state_bytes"]), ListHost())
    wide = int(np.flatnonzero(info.ldv_run == 0)[-1])
    words = [e("SETVL", 1), e("MOVI", 1, 8 * wide), e("LDV", 0, (1, 0)), e("HALT")]
    with pytest.raises(validate._Reject, match="outside FX"):
        validate._run_checked(validate._checked_machine(words, img, lay["state_bytes"]), ListHost())
    assert config.TMM_MIN_SF_EXP == -63 - N.FX_FRAC


def test_cli(capsys):
    assert fuzz.main(["--config", "b8", "--seed", "3", "--count", "2", "--show"]) == 0
    out = capsys.readouterr().out
    assert "seed 3:" in out and "seed 4:" in out and "opcodes executed" in out and "TOKOUT A15" in out
