"""End-to-end tests of the Device API (sw/device.py), written once and run on every backend.

The `backend` fixture is parametrized over "golden", "amaranth" and "verilator" (the last marked
`verilator`; a failed import of its module FAILS the test, it does not skip). Each backend runs
the smallest target that fits it (`target`), and every run is compared with the golden backend
on the same image, config and program, token for token and state snapshot byte for byte:

* golden, amaranth: sim.fuzz's "b8" config (beat 8, 2-bit, 1 lane, vlen 64: the cheapest core in
  the Amaranth simulator) with sim.backends.amaranth.MICRO (1 layer, d 16, vocab 80, seeded random
  weights, ~3,700 cycles per token step at ~1,000-2,000 cycles/s);
* verilator: beat 64 is required (one DRAM line per beat): the ddr4 config (the build `make sim`
  uses, so the default run has one full-system build) with the trained demo model
  (sw.artifacts.demo_image).

Tests: greedy generation (tokens, every snapshot, the on_token events, cycles); two cores with
different prompts (batch), each equal to the golden machine on its own prompt; bad input
(ValueError: empty prompt, token id outside the vocabulary, wrong number of prompts, negative
n_new, image/config packing mismatch, unknown options) and an unknown backend name (the message
lists the valid ones); the simulators' errors (max_cycles, a core fault -> DeviceError). The
amaranth backend also runs under random stalls on every memory and token stream, and once with
its quiet-cycle sleep switched off, which must give the same cycle of every TOKOUT. Slow: the tiny
preset and one step of the demo model on reduced ecp5 cores (amaranth), two cores on verilator.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pytest

from sim.fuzz import fuzz_config
from spec import isa
from spec.accel import AccelConfig, get_config
from spec.models import MICRO
from sw.artifacts import random_image
from sw.device import BACKENDS, Device, DeviceError, Run, TokenEvent, open_device

STALL = {"seed": 7, "cmd": 0.3, "rd": 0.3, "wr": 0.3, "tok": 0.3}


@dataclasses.dataclass(frozen=True)
class Target:
    backend: str
    config: AccelConfig
    image: Path


@functools.cache
def target(backend: str) -> Target:
    """The smallest config and image the backend runs (see the module docstring)."""
    if backend == "verilator":
        try:
            import sim.backends.verilator  # noqa: F401
        except Exception as e:
            pytest.fail(f"the verilator backend's module does not import: {type(e).__name__}: {e}")
        from sw.artifacts import demo_image

        cfg = get_config("ddr4")             # the build make sim uses: one full-system build in the default run
        return Target(backend, cfg, demo_image(cfg))
    cfg = fuzz_config("b8")
    return Target(backend, cfg, random_image(cfg, MICRO))


_DEVICES: dict[tuple, Device] = {}


def device(backend: str, cores: int = 1, **options) -> Device:
    """One device per (backend, cores, options) for the whole module (the amaranth backend builds
    its simulator once per device)."""
    key = (backend, cores, tuple(sorted((k, repr(v)) for k, v in options.items())))
    if key not in _DEVICES:
        t = target(backend)
        _DEVICES[key] = open_device(backend, t.image, t.config.with_cores(cores), **options)
    return _DEVICES[key]


@pytest.fixture(scope="module", autouse=True)
def _close_devices():
    yield
    for d in _DEVICES.values():
        d.close()
    _DEVICES.clear()


@functools.cache
def _golden(backend: str, prompts: tuple[tuple[int, ...], ...], n_new: int) -> Run:
    t = target(backend)
    return open_device("golden", t.image, t.config.with_cores(len(prompts))).generate([list(p) for p in prompts],
                                                                                      n_new)


def golden(backend: str, prompts: list[list[int]], n_new: int) -> Run:
    """The golden backend's run of the same image, config and program."""
    return _golden(backend, tuple(tuple(p) for p in prompts), n_new)


def check_same(run: Run, ref: Run, *, states: bool = True) -> None:
    """run == ref: every TOKOUT and (with `states`) every state snapshot; the first difference
    is named."""
    assert len(run.tokens) == len(ref.tokens), f"{len(run.tokens)} cores, golden {len(ref.tokens)}"
    for k, (got, want) in enumerate(zip(run.tokens, ref.tokens, strict=True)):
        for i, (a, b) in enumerate(zip(got, want, strict=False)):
            assert a == b, f"{run.backend} core {k} step {i}: token {a}, golden {b}"
        assert len(got) == len(want), f"{run.backend} core {k}: {len(got)} TOKOUTs, golden {len(want)}"
    if not states:
        return
    for k, (got, want) in enumerate(zip(run.states, ref.states, strict=True)):
        assert len(got) == len(want) == len(ref.tokens[k]), \
            f"{run.backend} core {k}: {len(got)} snapshots, golden {len(want)} ({len(ref.tokens[k])} steps)"
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            if a != b:
                j = next(j for j in range(min(len(a), len(b))) if a[j] != b[j]) if len(a) == len(b) else -1
                raise AssertionError(f"{run.backend} core {k}: the state after step {i} differs from the golden "
                                     f"one ({len(a)} / {len(b)} bytes; first at byte {j}, state element {j // 8})")


def check_timing(run: Run) -> None:
    """Simulated backends report cycles; the golden one none."""
    if run.backend == "golden":
        assert run.cycles is None and all(c is None for t in run.token_cycles for c in t)
        return
    assert isinstance(run.cycles, int) and run.cycles > 0
    assert run.stats["cycles"] == run.cycles and run.stats["cycles_per_s"] > 0
    assert run.stats["cmds"] > 0 and run.stats["rd_beats"] > 0 and run.stats["wr_beats"] > 0
    for k, lat in enumerate(run.token_cycles):
        assert len(lat) == len(run.tokens[k])
        assert all(isinstance(c, int) and 0 < c <= run.cycles for c in lat), f"core {k} latencies {lat}"


# -- the backends -------------------------------------------------------------------------------------

@pytest.fixture(params=["golden", "amaranth", pytest.param("verilator", marks=pytest.mark.verilator)])
def backend(request) -> str:
    return request.param


@pytest.fixture(params=["golden", "amaranth",
                        pytest.param("verilator", marks=[pytest.mark.verilator, pytest.mark.slow])])
def batch_backend(request) -> str:
    """As `backend`; two cores on verilator are another (long) build: slow."""
    return request.param


@pytest.fixture(params=["amaranth", pytest.param("verilator", marks=pytest.mark.verilator)])
def sim_backend(request) -> str:
    return request.param


# -- greedy generation --------------------------------------------------------------------------------

def test_greedy_matches_golden(backend):
    """Two prompt tokens and two generated ones: every TOKOUT, every state snapshot, and the
    on_token events (one per step, in order, with the run's token, state and latency)."""
    prompt, n_new = [1, 7], 2
    events: list[TokenEvent] = []
    run = device(backend).generate([prompt], n_new, on_token=events.append)
    ref = golden(backend, [prompt], n_new)
    check_same(run, ref)
    check_timing(run)
    assert run.backend == backend
    assert len(run.new_tokens(0)) == n_new and run.new_tokens(0) == ref.new_tokens(0)
    assert [(e.core, e.step, e.token) for e in events] == [(0, i, t) for i, t in enumerate(run.tokens[0])]
    assert [e.state for e in events] == run.states[0]
    assert [e.latency for e in events] == run.token_cycles[0]
    if backend != "golden":
        cyc = [e.cycle for e in events]
        assert cyc == sorted(cyc) and cyc[-1] <= run.cycles


def test_batch_two_cores_each_match(batch_backend):
    """Two cores on one weight stream with different prompts (and so different lengths): each
    core's tokens and snapshots equal the golden machine's on its own prompt."""
    prompts, n_new = [[1, 7], [3]], 1
    run = device(batch_backend, cores=2).generate(prompts, n_new)
    ref = golden(batch_backend, prompts, n_new)
    check_same(run, ref)
    check_timing(run)
    for k, p in enumerate(prompts):
        alone = golden(batch_backend, [p], n_new)
        assert run.tokens[k] == alone.tokens[0] and run.states[k] == alone.states[0], f"core {k}"
    assert run.tokens[0] != run.tokens[1]


# -- bad input ----------------------------------------------------------------------------------------

def test_bad_input_raises_value_error(backend):
    dev = device(backend)
    vocab = dev.image.model.vocab_size
    for prompts, n_new, what in [
        ([[]], 1, "at least one token"),
        ([[1, vocab]], 1, "outside the vocabulary"),
        ([[-1]], 1, "outside the vocabulary"),
        ([[1], [2]], 1, "one prompt per core"),
        ([], 1, "one prompt per core"),
        ([[1]], -1, "n_new"),
    ]:
        with pytest.raises(ValueError, match=what):
            dev.generate(prompts, n_new)
    t = target(backend)
    other = get_config("ecp5") if t.config.beat_bytes != 16 else fuzz_config("b8")
    with pytest.raises(ValueError, match="export the image for the config"):
        open_device(backend, t.image, other)
    with pytest.raises(ValueError, match="cores"):
        open_device(backend, t.image, t.config.with_cores(0))


def test_unknown_backend_lists_the_valid_ones():
    t = target("golden")
    with pytest.raises(ValueError, match="unknown backend 'fpga'") as e:
        open_device("fpga", t.image, t.config)
    for name in BACKENDS:
        assert name in str(e.value)


def test_backends_are_registered_without_importing_them():
    """The installed package's entry points register every backend; sw.device names them as strings
    and imports none of them (a fresh interpreter running the golden backend loads no sim module)."""
    import importlib
    import subprocess
    import sys

    assert set(BACKENDS) == {"golden", "amaranth", "verilator", "uart"}
    for name, target_ in BACKENDS.items():
        mod, cls = target_.split(":")
        dev_cls = getattr(importlib.import_module(mod), cls)
        assert issubclass(dev_cls, Device) and dev_cls.backend == name
    t = target("golden")
    code = ("import sys; from sw.device import open_device; from spec.accel import AccelConfig; "
            f"open_device('golden', {str(t.image)!r}, AccelConfig(**{dataclasses.asdict(t.config)!r}))"
            ".generate([[1]], 1); "
            "print(sorted(m for m in sys.modules if m == 'sim' or m.startswith(('sim.', 'hw.', 'amaranth'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_amaranth_options_are_checked():
    t = target("amaranth")
    with pytest.raises(ValueError, match="unknown option.*valid: stall"):
        open_device("amaranth", t.image, t.config, chanels=2)
    with pytest.raises(ValueError, match="unknown stall key"):
        open_device("amaranth", t.image, t.config, stall={"seed": 1, "read": 0.5})
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        open_device("amaranth", t.image, t.config, stall={"rd": 1.0})


# -- the simulators' errors ---------------------------------------------------------------------------

def test_timeout_raises_device_error(sim_backend):
    with pytest.raises(DeviceError, match="max_cycles|timeout|time"):
        device(sim_backend).generate([[1]], 1, max_cycles=300)


def test_fault_raises_device_error(sim_backend):
    """A program whose second word is not an instruction (opcode 0xFF) stops the core with
    `fault`; the backend raises DeviceError and does not hang."""
    t = target(sim_backend)
    bad = (0xFF << 56) | 1
    dev = open_device(sim_backend, t.image, t.config, program=[isa.encode("NOP"), bad])
    try:
        with pytest.raises(DeviceError, match="fault"):
            dev.generate([[1]], 1, max_cycles=100_000)
    finally:
        dev.close()


# -- amaranth only ------------------------------------------------------------------------------------

def test_amaranth_under_random_stalls_matches():
    """Random pauses (p 0.3) on cmd.ready, read beats, wr.ready and both token streams: the same
    tokens and snapshots, in more cycles."""
    prompt, n_new = [5], 1
    run = device("amaranth", stall=STALL).generate([prompt], n_new)
    check_same(run, golden("amaranth", [prompt], n_new))
    check_timing(run)
    calm = device("amaranth").generate([prompt], 0)
    assert run.token_cycles[0][0] > calm.token_cycles[0][0]


def test_amaranth_sleep_keeps_the_cycles():
    """The bench sleeps through cycles in which nothing can happen; waking at every edge
    instead must give the same run, cycle for cycle. Also: capture_state=False."""
    dev = device("amaranth")
    events: list[TokenEvent] = []
    fast = dev.generate([[9]], 0)
    dev.sleep = False
    try:
        slow = dev.generate([[9]], 0, capture_state=False, on_token=events.append)
    finally:
        dev.sleep = True
    check_same(slow, fast, states=False)
    assert (slow.cycles, slow.token_cycles) == (fast.cycles, fast.token_cycles)
    assert {k: slow.stats[k] for k in ("cmds", "rd_beats", "wr_beats")} == \
        {k: fast.stats[k] for k in ("cmds", "rd_beats", "wr_beats")}
    assert slow.states == [[]] and [e.state for e in events] == [None]
    check_same(fast, golden("amaranth", [[9]], 0))


@pytest.mark.slow
def test_amaranth_tiny_preset_on_reduced_ecp5():
    """The tiny preset (2 layers, d 64, vocab 256; ~8,500 cycles per step) on ecp5 at vlen 256,
    ROM built into the design."""
    cfg = dataclasses.replace(get_config("ecp5"), vlen=256)
    img = random_image(cfg, "tiny")
    prompt, n_new = [1, 200], 1
    with open_device("amaranth", img, cfg, rom_wr=False) as dev:
        run = dev.generate([prompt], n_new)
    check_same(run, open_device("golden", img, cfg).generate([prompt], n_new))
    check_timing(run)


@pytest.mark.slow
def test_amaranth_demo_model_one_step():
    """The trained demo model (4 layers, d 192, vocab 1024) on ecp5 at vlen 512: one token step,
    ~38,600 cycles (~2.5 min in the Amaranth simulator)."""
    from sw.artifacts import demo_image

    cfg = dataclasses.replace(get_config("ecp5"), vlen=512)
    img = demo_image(cfg)
    with open_device("amaranth", img, cfg) as dev:
        run = dev.generate([[1]], 0)
    check_same(run, open_device("golden", img, cfg).generate([[1]], 0))
    check_timing(run)
