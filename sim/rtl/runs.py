"""Ready-made runs of the RTL (sim.rtl.runner) with their golden expectations: the compiled demo model
and the differential fuzz programs (sim.fuzz). Used by the RTL tests and the benchmarks; the
demo model's image is sw.artifacts.demo_image.

    prog, gold = model_run(config, image_path, prompt=[1, 17], n_new=14)
    res = sim.rtl.runner.run_job(sim.rtl.runner.build(config), [prog], stall=...)[0]
    check_model(res, gold)              # raises AssertionError naming the first mismatch
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from golden.machine import GoldenMachine
from spec import weight_image as wi
from spec.accel import AccelConfig
from sw.artifacts import IMAGES

__all__ = ["ModelGold", "check_model", "fuzz_jobs", "model_run"]


@dataclasses.dataclass
class ModelGold:
    tokens: list[int]           # every TOKOUT of the run (one per token step)
    state: bytes                # the state region at the end (the recurrent states of all layers)
    steps: int                  # instructions executed by the golden machine


def model_run(config: AccelConfig, image_path: Path, prompt: list[int], n_new: int) -> tuple[dict, ModelGold]:
    """The compiled program of the image's model for `config` (its vlen bounds the lm_head chunk),
    as a sim.rtl.runner program with a greedy host, and the golden machine's results."""
    from sw.compile import compile_model

    img = wi.read_image(image_path)
    if (img.packing, img.beat_bytes) != (config.packing, config.beat_bytes):
        raise ValueError(f"{image_path} is {img.packing}/beat {img.beat_bytes}, config {config.name} is "
                         f"{config.packing}/beat {config.beat_bytes}")
    prog = compile_model(img, vlen=config.vlen)
    if len(prog.words) > config.rom_words:
        raise ValueError(f"the program has {len(prog.words)} words, the ROM {config.rom_words}")
    m = GoldenMachine(prog.words, img)
    host_outputs = _greedy(m, prompt, n_new)
    gold = ModelGold(host_outputs, m.state.tobytes(), m.steps)
    job = {"rom": prog.words, "memory": str(image_path), "state_base": m.state_base, "state_bytes": m.state.size,
           "hosts": [{"mode": "greedy", "tokens": list(prompt), "n_new": n_new}]}
    return job, gold


def _greedy(m: GoldenMachine, prompt: list[int], n_new: int) -> list[int]:
    from golden.machine import GreedyHost

    host = GreedyHost(prompt, n_new)
    m.run(host)
    return host.outputs


def check_model(res: dict, gold: ModelGold, core: int = 0) -> None:
    assert not res["timeout"], f"the RTL did not finish within {res['cycles']} cycles"
    assert not (res["fault"] >> core) & 1, "the core stopped on an invalid instruction"
    got = res["tokouts"][core]
    for i, (a, b) in enumerate(zip(gold.tokens, got, strict=False)):
        assert a == b, f"token step {i}: golden {a}, RTL {b}"
    assert len(got) == len(gold.tokens), f"{len(got)} tokens from the RTL, {len(gold.tokens)} from the golden machine"
    state = bytes.fromhex(res["state"][core])
    if state != gold.state:
        i = next(k for k in range(len(state)) if state[k] != gold.state[k])
        raise AssertionError(f"state region differs first at byte {i} (recurrent state element {i // 8})")


def fuzz_jobs(config_name: str, seeds, directory: Path = IMAGES):
    """(fuzz AccelConfig, [sim.rtl.runner programs], [golden Observed], [FuzzCase]) for the seeds."""
    from sim import fuzz

    cfg = fuzz.fuzz_config(config_name)
    img = fuzz.make_image(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    mem = directory / f"fuzz-{config_name}.img"
    data = bytes(img.file_bytes())
    if not mem.exists() or mem.read_bytes() != data:
        tmp = mem.with_name(f"{mem.name}.{os.getpid()}.tmp")      # atomic: parallel test workers read it
        tmp.write_bytes(data)
        tmp.replace(mem)
    cases = [fuzz.random_program(s, cfg, img) for s in seeds]
    gold = [fuzz.run_golden(c, cfg, img) for c in cases]
    progs = [{"rom": c.words, "memory": str(mem), "state_base": c.layout.state_base, "state_bytes": c.state_bytes,
              "hosts": [{"mode": "list", "tokens": c.tokens, "n_new": 0}], "max_cycles": 400_000} for c in cases]
    return cfg, progs, gold, cases
