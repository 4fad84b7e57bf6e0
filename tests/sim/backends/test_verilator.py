"""The full-system Verilator harness (sim/backends/verilator.py, sim/backends/harness/, hw/system.py).

Default: the vectorized store map against the scalar reference (every address map, 1..4 channels,
interleaves); System's parameter checks; the event parser and the exit-code errors with a fake
executable; the demo model on the ddr4 config (the build make sim uses), 1 core on 1 channel:
every token and every state snapshot equal the golden device's. Slow: 2 channels, 2 cores with
different prompts, 4 channels.
"""
from __future__ import annotations

import random
import stat
from pathlib import Path

import numpy as np
import pytest

from hw.mem.streamer import channel_of
from spec.accel import get_config
from spec.dram import ADDRESS_MAPS, Channel, rule_code

#: the full ddr4 config: the one build that `make sim` (and sim.driver's tests) use too, so the
#: default run compiles one full-system simulator (a build takes 10-20 min on 2 cores)
CONFIG = get_config("ddr4")
#: a test that builds a simulator the first time may take ~10-20 min on a 2-core machine (then cached)
BUILD_TIMEOUT = pytest.mark.timeout(3600)
PROMPT, N_NEW = [1, 17, 42], 4


def _store_ref(ch: Channel, line: int, channels: int, interleave: int) -> tuple[int, int]:
    c, local = channel_of(line, channels, interleave)
    f = ch.split(local & (ch.lines - 1))
    g = ch.geo
    return c, ((f["row"] * g.bank_groups + f["bg"]) * g.banks_per_group + f["ba"]) * ch.bursts_per_row + f["col"]


@pytest.mark.parametrize("amap", sorted(ADDRESS_MAPS))
@pytest.mark.parametrize("geometry", ["8Gb_x8", "8Gb_x16"])
def test_store_map_matches_reference(amap: str, geometry: str) -> None:
    from sim.backends.verilator import map_lines

    ch = Channel("DDR4-2400R", geometry, address_map=amap)
    rng = random.Random(f"{amap}{geometry}")
    for channels in (1, 2, 3, 4):
        for interleave in (1, 2, 8):
            lines = [rng.randrange(channels * ch.lines) for _ in range(300)] + list(range(64))
            chan, addr = map_lines(np.array(lines), ch, channels, interleave)
            got = list(zip(chan.tolist(), addr.tolist(), strict=True))
            assert got == [_store_ref(ch, x, channels, interleave) for x in lines], (channels, interleave)


def test_store_images_and_state_map() -> None:
    from sim.backends.verilator import state_map, store_images

    ch = Channel()
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, 64 * 700 + 13, dtype=np.uint8)
    for channels in (1, 3):
        stores = store_images(image.tobytes(), ch, channels, 2)
        for line in (0, 5, 333, 700):
            c, a = _store_ref(ch, line, channels, 2)
            want = np.zeros(64, np.uint8)
            chunk = image[64 * line:64 * line + 64]
            want[:chunk.size] = chunk
            assert np.array_equal(stores[c][64 * a:64 * a + 64], want)
        smap = state_map(64 * 704, 128, 2, ch, channels, 2)
        assert smap.shape == (2, 2, 2)
        assert tuple(smap[1, 1]) == _store_ref(ch, 704 + 3, channels, 2)
    with pytest.raises(ValueError, match="multiples of 64"):
        state_map(100, 128, 1, ch)


def test_system_parameters() -> None:
    from hw.system import System

    with pytest.raises(ValueError, match="1, 2 or 4 DRAM lines"):
        System(get_config("ecp5"))
    with pytest.raises(ValueError, match="channels must be"):
        System(CONFIG, channels=5)
    s = System(CONFIG.with_cores(2), channels=2)
    s._MustUse__silence = True          # built only to read its signature
    names = set(s.signature.members)
    assert {"tok_in", "tok_out", "rom_wr", "store0", "store1", "stat1", "cmds", "rd_beats", "wr_beats"} <= names
    assert "mem" not in names


# ---- the run loop with a fake executable (no Verilator) ------------------------------------

def _fake_build(tmp_path: Path, script: str):
    from sim.backends.verilator import SystemBuild

    exe = tmp_path / "fake_sim"
    exe.write_text("#!/bin/sh\n" + script)
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return SystemBuild(CONFIG, 1, Channel(), 1, False, tmp_path, exe)      # CONFIG.cores = 1, 1 channel


def _fake_run(tmp_path: Path, script: str, **kw):
    from sim.backends.verilator import run_system

    img = tmp_path / "x.img"
    img.write_bytes(bytes(128))
    return run_system(_fake_build(tmp_path, script), img, [0x12], [[5]], 1, state_bytes=64, **kw)


STATS = ('stats {"cycles": 9, "wall_s": 0.1, "cycles_per_s": 90, "cmds": 1, "rd_beats": 2, "wr_beats": 1, '
         '"beat_lines": 1, "channels": [{"reads": 2, "writes": 1, "acts": 1, "refs": 0, "refreshes": 0, '
         '"violations": 0, "max_ref_debt": 0}]}')


def test_events_parsed(tmp_path: Path) -> None:
    # the fake writes two 64-byte snapshots into the job's state_out and reports them
    script = ("out=$(grep '^state_out' \"$1\" | cut -d' ' -f2)\n"
              "head -c 64 /dev/zero > \"$out\"; printf 'A%.0s' $(seq 64) >> \"$out\"\n"
              "echo 'tok 0 0 7 100 40'; echo 'state 0 0 0'; echo 'tok 0 1 8 200 30'; echo 'state 0 1 64'\n"
              f"echo '{STATS}'\n")
    events = []
    run = _fake_run(tmp_path, script, on_token=events.append)
    assert run.tokens == [[7, 8]] and run.token_cycles == [[40, 30]] and run.cycles == 9
    assert run.states == [[bytes(64), b"A" * 64]]
    assert [(e.step, e.token, e.cycle, e.latency, e.state[:1]) for e in events] == [(0, 7, 100, 40, b"\0"),
                                                                                    (1, 8, 200, 30, b"A")]
    assert run.stats["dram_bytes"] == 3 * 64 and run.stats["rd_beats"] == 2


@pytest.mark.parametrize(("script", "match"), [
    (f"echo 'violation 0 1234 {1 << rule_code('tFAW'):x}'; echo '{STATS}'; exit 3", "channel 0 at cycle 1234: tFAW"),
    (f"echo 'fault 1 77'; echo '{STATS}'; exit 4", "fault"),
    (f"echo 'timeout 50'; echo '{STATS}'; exit 2", "max_cycles=50"),
    ("echo 'harness: boom' >&2; exit 1", "boom"),
])
def test_exit_codes(tmp_path: Path, script: str, match: str) -> None:
    from sw.device import DeviceError

    with pytest.raises(DeviceError, match=match):
        _fake_run(tmp_path, script, max_cycles=50)


# ---- the demo model on the whole system --------------------------------------------------

@pytest.fixture(scope="module")
def golden():
    from sw.artifacts import demo_image

    image = demo_image(CONFIG)
    return image, {}


def _golden_run(golden, prompts):
    from sw.device import open_device

    image, cache = golden
    key = tuple(map(tuple, prompts))
    if key not in cache:
        cache[key] = open_device("golden", image, CONFIG.with_cores(len(prompts))).generate(prompts, N_NEW)
    return cache[key]


def _check(run, gold) -> None:
    for k in range(len(gold.prompts)):
        assert run.tokens[k] == gold.tokens[k], f"core {k}: tokens"
        assert len(run.states[k]) == len(gold.states[k])
        for step, (a, b) in enumerate(zip(run.states[k], gold.states[k], strict=True)):
            if a != b:
                i = next(j for j in range(len(a)) if a[j] != b[j])
                raise AssertionError(f"core {k} step {step}: state differs first at byte {i}")
        assert all(c is not None and c > 0 for c in run.token_cycles[k])
    st = run.stats
    assert all(c["violations"] == 0 for c in st["channels"])
    assert sum(c["writes"] for c in st["channels"]) == st["wr_beats"] * st["beat_lines"]


def _device_run(golden, prompts, channels: int):
    from sw.device import open_device

    image, _ = golden
    events = []
    dev = open_device("verilator", image, CONFIG.with_cores(len(prompts)), channels=channels)
    run = dev.generate(prompts, N_NEW, on_token=events.append, max_cycles=3_000_000)
    assert [e.token for e in events if e.core == 0] == run.tokens[0]
    assert all(e.state == run.states[e.core][e.step] for e in events)
    return run


@pytest.mark.verilator
@BUILD_TIMEOUT
@pytest.mark.parametrize("channels", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_demo_matches_golden(golden, channels: int) -> None:
    run = _device_run(golden, [PROMPT], channels)
    _check(run, _golden_run(golden, [PROMPT]))


@pytest.mark.verilator
@pytest.mark.slow
@BUILD_TIMEOUT
def test_demo_two_cores(golden) -> None:
    prompts = [PROMPT, [3, 99]]
    _check(_device_run(golden, prompts, 1), _golden_run(golden, prompts))


@pytest.mark.verilator
@pytest.mark.slow
@BUILD_TIMEOUT
def test_demo_four_channels(golden) -> None:
    _check(_device_run(golden, [PROMPT], 4), _golden_run(golden, [PROMPT]))


@pytest.mark.verilator
@BUILD_TIMEOUT
def test_timeout(golden) -> None:
    from sim.backends.verilator import build_system, run_system
    from spec import weight_image as wi
    from sw.compile import compile_model
    from sw.device import DeviceError

    image, _ = golden
    b = build_system(CONFIG)
    prog = compile_model(wi.read_image(image), vlen=CONFIG.vlen).words
    with pytest.raises(DeviceError, match="max_cycles=5000"):
        run_system(b, image, prog, [PROMPT], 1, state_bytes=8192, max_cycles=5000)


def test_sources_left_out_of_the_verilog_cache_key_are_not_part_of_the_system():
    """sim.backends.verilator.NOT_IN_SYSTEM: elaborating a System (a small one) imports none of them, so
    editing them cannot change the full-system Verilog the cache key stands for."""
    import subprocess
    import sys

    from sim.backends.verilator import NOT_IN_SYSTEM, ROOT

    code = (
        "import dataclasses, sys\n"
        "from amaranth.back import rtlil\n"
        "from hw.system import System\n"
        "from spec.accel import get_config\n"
        "rtlil.convert(System(dataclasses.replace(get_config('ddr4'), vlen=64, rom_words=16)))\n"
        "print('\\n'.join(getattr(m, '__file__', None) or '' for m in list(sys.modules.values())))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = {Path(f).resolve().relative_to(ROOT).as_posix() for f in out.stdout.split()
              if f and Path(f).resolve().is_relative_to(ROOT)}
    assert "hw/system.py" in loaded and "hw/core/core.py" in loaded
    assert not [f for f in loaded if f.startswith(NOT_IN_SYSTEM)], sorted(loaded)
    for prefix in NOT_IN_SYSTEM:        # every entry names something that exists
        assert (ROOT / prefix).exists(), prefix
