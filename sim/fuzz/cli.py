"""python -m sim.fuzz: generate and golden-run a range of seeds; print each case's size, tokens and
attempts (with --show its disassembly), then the time per case and the opcodes executed.
"""
from __future__ import annotations

import argparse
import collections
import sys
import time

from sim.fuzz.analysis import _info
from sim.fuzz.api import random_program, run_golden
from sim.fuzz.config import FUZZ_CONFIGS, fuzz_config
from sim.fuzz.image import make_image
from spec import isa


def main(argv: list[str] | None = None) -> int:
    summary = sys.modules[__package__].__doc__.split("\n")[0]        # the package docstring's first line
    ap = argparse.ArgumentParser(prog="python -m sim.fuzz", description=summary)
    ap.add_argument("--config", default="ecp5", choices=sorted(FUZZ_CONFIGS))
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--count", type=int, default=5, help="number of seeds")
    ap.add_argument("--image-seed", type=int, default=0)
    ap.add_argument("--show", action="store_true", help="print each program's disassembly")
    args = ap.parse_args(argv)
    cfg = fuzz_config(args.config)
    t0 = time.perf_counter()
    img = make_image(cfg, args.image_seed)
    _info(img, cfg).tmm_vls()
    t_img = time.perf_counter() - t0
    executed: collections.Counter[str] = collections.Counter()
    emitted: collections.Counter[str] = collections.Counter()
    t_gen = t_run = 0.0
    steps = 0
    for seed in range(args.seed, args.seed + args.count):
        t1 = time.perf_counter()
        case = random_program(seed, cfg, img)
        t2 = time.perf_counter()
        obs = run_golden(case, cfg, img)
        t3 = time.perf_counter()
        t_gen, t_run, steps = t_gen + t2 - t1, t_run + t3 - t2, steps + obs.steps
        executed.update(obs.profile)
        emitted.update(isa.decode(w).op.mnemonic for w in case.words)
        exact = sum(case.f_exact)
        print(f"seed {seed}: {len(case.words)} words ({case.body_words} prologue+body), {obs.steps} executed, "
              f"{len(case.tokens)} tokens in, {len(obs.tokouts)} out, F exact {exact}/{isa.N_FREGS}, "
              f"attempts {case.attempts}")
        if args.show:
            print(case.description)
    n = max(1, args.count)
    print(f"{args.count} case(s), config {cfg.name}: image {t_img:.2f} s; per case {1e3 * t_gen / n:.1f} ms "
          f"generate (with its validation runs), {1e3 * t_run / n:.1f} ms golden run; {steps} instructions executed")
    print("executed per opcode: " + " ".join(f"{o.mnemonic}={executed[o.mnemonic]}" for o in isa.OPS))
    missing = [o.mnemonic for o in isa.OPS if not executed[o.mnemonic]]
    never = [o.mnemonic for o in isa.OPS if not emitted[o.mnemonic]]
    print(f"opcodes executed {len(isa.OPS) - len(missing)}/{len(isa.OPS)}"
          + (f"; not executed: {' '.join(missing)}" if missing else "")
          + (f"; not emitted: {' '.join(never)}" if never else ""))
    return 0
