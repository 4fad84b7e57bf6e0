"""The fuzzer's entry points.

    case = random_program(seed, cfg, img)    # FuzzCase, valid on golden and within the hardware's limits
    want = run_golden(case, cfg, img)        # Observed: the expected TOKOUTs and state region

random_program draws attempt after attempt (rng seeded with (seed, attempt)) until a program passes
the checked golden run (sim.fuzz.validate); the state region holds the scratch area, then the V dump,
then the F probes.
"""
from __future__ import annotations

import numpy as np

from golden.machine import ListHost, MachineError
from sim.fuzz.analysis import _ImageInfo, _info
from sim.fuzz.case import FuzzCase, FuzzLayout, Observed
from sim.fuzz.config import EPILOGUE_RESERVE, MAX_ATTEMPTS, SCRATCH_BYTES
from sim.fuzz.gen import _Gen
from sim.fuzz.validate import _checked_machine, _load_rom, _machine, _reference_kernels, _Reject, _run_checked
from spec import accel, isa
from spec import weight_image as wi


def _state_layout(info: _ImageInfo) -> dict:
    vdump = SCRATCH_BYTES
    fdump = vdump + 8 * isa.N_VREGS * info.vlen
    total = wi.align_up(fdump + 8 * isa.N_FREGS * info.vl_obs, wi.DATA_ALIGN)
    return {"vdump": vdump, "fdump": fdump, "state_bytes": total}


def random_program(seed: int, config: accel.AccelConfig, image: wi.Image) -> FuzzCase:
    """A random program that runs on the golden machine without a fault and within the
    hardware's limits (sim.fuzz's docstring), deterministic in (seed, config, image)."""
    info = _info(image, config)
    lay = _state_layout(info)
    rejects: list[str] = []
    for attempt in range(MAX_ATTEMPTS):
        rng = np.random.default_rng([int(seed), attempt])
        g = _Gen(rng, config, info, lay["state_bytes"])
        g.prologue()
        limit = config.rom_words - EPILOGUE_RESERVE
        g.body(int(rng.integers(10, 61)), limit)
        body = list(g.words)
        try:
            # run the body (ending on a HALT at the epilogue's first address), build the epilogue
            # from the F values it leaves, then let the same machine run on through the epilogue
            m = _checked_machine(body + [isa.encode("HALT")], image, lay["state_bytes"])
            host = ListHost(g.tokens)
            _run_checked(m, host)
            final_f = tuple(m.F)
            epi, order, shifts, f_exact = g.epilogue(final_f, lay)
            words = body + epi
            if len(words) > config.rom_words:
                raise _Reject(f"{len(words)} words > rom_words {config.rom_words}")
            assert m.pc == len(body)
            _load_rom(m, words)
            _run_checked(m, host)
        except _Reject as e:
            rejects.append(f"attempt {attempt}: {e}")
            continue
        layout = FuzzLayout(info.state_base, lay["state_bytes"], (0, SCRATCH_BYTES), lay["vdump"], info.vlen,
                            lay["fdump"], info.vl_obs, order, shifts)
        return FuzzCase(int(seed), config.name, words, list(g.tokens), lay["state_bytes"], layout, len(body),
                        final_f, f_exact, attempt + 1, tuple(rejects))
    raise RuntimeError(f"sim.fuzz: seed {seed}: no valid program in {MAX_ATTEMPTS} attempts:\n" + "\n".join(rejects))


def run_golden(case: FuzzCase, config: accel.AccelConfig, image: wi.Image) -> Observed:
    """Run a case on golden.machine.GoldenMachine; raises MachineError if it faults or does not
    end with HALT."""
    if len(case.words) > config.rom_words:
        raise ValueError(f"{len(case.words)} words exceed rom_words {config.rom_words}")
    if (image.packing, image.beat_bytes) != (config.packing, config.beat_bytes):
        raise ValueError("image and config disagree on packing / beat_bytes")
    host = ListHost(case.tokens)
    m = _machine(case.words, image, case.state_bytes)
    with _reference_kernels():
        m.run(host)
    if m.halt_reason != "HALT":
        raise MachineError(f"seed {case.seed}: stopped with {m.halt_reason!r}, not HALT")
    return Observed(list(host.outputs), bytes(m.state), case.layout, m.steps, dict(m.profile))
