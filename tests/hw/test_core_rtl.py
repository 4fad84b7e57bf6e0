"""The whole accelerator as Verilog (hw.top.Accelerator through hw.gen), run by the cocotb bench
sim/rtl/tb_accel.py under Verilator (and Icarus), against the golden machine, bit for bit:

* differential fuzz: random valid programs from sim.fuzz (every opcode, hazards, loops), each
  compared on every TOKOUT and the whole state region including dumps of all registers; a
  sample runs by default, the full count (1,000 programs) is `slow`;
* the compiled demo model (sw/demo, trained): 8 token steps (16 in the slow run), every token
  and the final recurrent state;
* batch (slow): two cores on one broadcast weight stream, different prompts;
* Icarus: one short fuzz run with the same bench.

Every run has random pauses on the memory port (commands, read beats, write beats) and on the
token streams, from sim.rtl.runner's `stall` settings.
"""
from __future__ import annotations

import shutil

import pytest

from sim.rtl import runner as rtl
from sim.rtl.runs import check_model, fuzz_jobs, model_run
from spec.accel import get_config
from sw.artifacts import demo_image

pytestmark = pytest.mark.verilator

STALL = {"seed": 11, "cmd": 0.3, "rd": 0.3, "wr": 0.3, "tok": 0.3}


def _fuzz(name: str, seeds, stall: dict, simulator: str = "verilator") -> int:
    cfg, progs, gold, cases = fuzz_jobs(name, seeds)
    b = rtl.build(cfg, simulator=simulator)
    res = rtl.run_job(b, progs, stall=stall)
    bad = []
    for case, g, r in zip(cases, gold, res, strict=True):
        from sim.fuzz import Observed
        got = Observed(r["tokouts"][0], bytes.fromhex(r["state"][0]), layout=case.layout)
        why = "timeout" if r["timeout"] else "fault" if r["fault"] else g.diff(got)
        if why:
            bad.append(f"seed {case.seed}: {why}\n{case.description}")
    assert not bad, f"{len(bad)} of {len(cases)} programs differ; first:\n" + "\n".join(bad[:1])
    return sum(r["cycles"] for r in res)


@pytest.mark.parametrize("name", ["ecp5", "b8"])
def test_fuzz_sample(name):
    _fuzz(name, range(16), STALL)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ecp5", "b8"])
@pytest.mark.parametrize("p", [0.0, 0.3, 0.6])
def test_fuzz_full(name, p):
    """1,002 programs in all: 167 per (config, stall level), seeds disjoint from the sample."""
    base = 1000 + int(p * 10) * 1000
    _fuzz(name, range(base, base + 167), dict(STALL, seed=base, cmd=p, rd=p, wr=p, tok=p))


@pytest.mark.parametrize("n_new", [4, pytest.param(12, marks=pytest.mark.slow)])
def test_demo_model_token_steps(n_new):
    """The compiled demo program: 4 prompt tokens and `n_new` greedy ones (8 steps by default, 16
    in the slow run), each step's token and the final recurrent state equal to the golden
    machine's."""
    cfg = get_config("ecp5")
    job, gold = model_run(cfg, demo_image(cfg), prompt=[1, 17, 42, 99], n_new=n_new)
    res = rtl.run_job(rtl.build(cfg), [job], stall=STALL)[0]
    check_model(res, gold)
    assert len(res["tokouts"][0]) == 4 + n_new


@pytest.mark.slow
def test_demo_model_long_greedy_no_stalls():
    cfg = get_config("ecp5")
    job, gold = model_run(cfg, demo_image(cfg), prompt=[1], n_new=40)
    res = rtl.run_job(rtl.build(cfg), [job])[0]
    check_model(res, gold)


@pytest.mark.slow
def test_two_cores_run_fuzz_programs_side_by_side():
    """Batch 2 on the fuzz config: both cores run each program with their own state region and
    the weights from the broadcast; each core's observations equal the golden machine's. (Slow:
    a Verilator build of its own; the default run has two cores in the Amaranth simulator,
    tests/sw/test_device.py's batch test.)"""
    from sim.fuzz import Observed

    cfg, progs, gold, cases = fuzz_jobs("ecp5", range(100, 103))
    progs = [dict(p, hosts=p["hosts"] * 2) for p in progs]
    res = rtl.run_job(rtl.build(cfg.with_cores(2)), progs, stall=STALL)
    for case, g, r in zip(cases, gold, res, strict=True):
        assert not r["timeout"] and not r["fault"], f"seed {case.seed}"
        for k in range(2):
            got = Observed(r["tokouts"][k], bytes.fromhex(r["state"][k]), layout=case.layout)
            assert not g.diff(got), f"seed {case.seed}, core {k}: {g.diff(got)}"


@pytest.mark.slow
def test_two_cores_share_the_weight_stream():
    """Batch 2: each core its own prompt and state, weights read once for both."""
    cfg = get_config("ecp5")
    img = demo_image(cfg)
    prompts = ([1, 17], [1, 300])
    runs = [model_run(cfg, img, prompt=p, n_new=1) for p in prompts]
    job = dict(runs[0][0], hosts=[r[0]["hosts"][0] for r in runs])
    one = rtl.run_job(rtl.build(cfg), [runs[0][0]], stall=STALL)[0]
    two = rtl.run_job(rtl.build(cfg.with_cores(2)), [job], stall=STALL)[0]
    for k, (_, gold) in enumerate(runs):
        check_model(two, gold, core=k)
    # the second core's weights come from the same reads: far less than twice the traffic
    assert two["read_beats"] < 1.1 * one["read_beats"], (one["read_beats"], two["read_beats"])


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed (apt install iverilog)")
def test_icarus_runs_the_same_bench():
    _fuzz("ecp5", range(2), STALL, simulator="icarus")
