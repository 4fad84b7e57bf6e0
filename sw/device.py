"""The host Device API: one interface to run a compiled model on any backend.

    from sw.device import open_device
    dev = open_device("golden", image=sw.artifacts.demo_image(cfg), config=cfg)    # cfg: a spec.accel config
    run = dev.generate([[1, 17, 42]], n_new=8)      # one prompt per core (batch = config.cores)
    run.tokens[0]          # every TOKOUT of core 0: one per token fed (prompt, then generated)
    run.new_tokens(0)      # the n_new generated tokens (the greedy continuation)
    run.states[0][k]       # the state region (every layer's recurrent h) after token k (bytes)
    run.token_cycles[0][k] # simulated cycles from token k's TOKIN to its TOKOUT (None: golden)

Backends (`BACKENDS`: name -> "module:Class"; the module is imported when the backend is opened):

* ``golden``    golden.machine.GoldenMachine, one per core: the definition of correct. No cycles.
* ``amaranth``  the Amaranth simulator of hw.top.Accelerator with a RAM model behind the memory
  port (small configs only: slow). sim/backends/amaranth.py.
* ``verilator`` the full-system Verilator C++ harness (sim/backends/verilator.py): the accelerator,
  the weight streamer, DDR4 controllers and DRAM models with the JEDEC checker.
* ``uart``      a board (hw/boards) over its UART host link (sw/board_host.py, spec/host_link.py):
  a serial device path (``port=``) or any byte stream with read/write; no state snapshots.

Only ``golden`` is defined here. The others implement this interface in the layers above (sim/)
or beside it (sw.board_host) and are registered by the package's entry points (group
`ENTRY_POINTS`, pyproject.toml), so this module never imports a backend and no backend imports
its user back.

Every backend runs the same program (sw.compile.compile_model for the image and the config's vlen,
unless one is given) with the same greedy host contract as golden.machine.GreedyHost: the prompt is
fed token by token, then every TOKOUT is fed back until `n_new` generated tokens were fed. The
state snapshot of token k is the state region when the core waits for token k + 1 (nothing is
stored between a TOKOUT and the next TOKIN), so snapshots are comparable across backends bit for
bit. End-to-end tests are written once against this interface (tests/sw/test_device.py).
"""
from __future__ import annotations

import abc
import dataclasses
import importlib
import importlib.metadata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spec import weight_image as wi
from spec.accel import AccelConfig, get_config

__all__ = ["BACKENDS", "ENTRY_POINTS", "Device", "DeviceError", "GoldenDevice", "Run", "TokenEvent", "open_device"]

#: the entry-point group through which the installed package registers its other backends
ENTRY_POINTS = "mmfree_accel.devices"

#: backend name -> "module:Class": golden, then the registered ones
BACKENDS: dict[str, str] = {
    "golden": "sw.device:GoldenDevice",
    **{ep.name: ep.value for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINTS), key=lambda e: e.name)},
}


class DeviceError(RuntimeError):
    """A backend could not run the program (build failure, fault, timeout, DRAM rule violation)."""


@dataclasses.dataclass
class TokenEvent:
    """One TOKOUT, as the backend reports it to `on_token` while it runs."""
    core: int
    step: int                   # index of the token fed (0 = the first prompt token)
    token: int                  # the TOKOUT value (the argmax after this input token)
    cycle: int | None           # simulated cycle of the TOKOUT (None on the golden machine)
    latency: int | None         # cycles from the TOKIN of this step to its TOKOUT
    state: bytes | None         # the state region after this step, when captured


@dataclasses.dataclass
class Run:
    backend: str
    prompts: list[list[int]]
    n_new: int
    tokens: list[list[int]]                 # per core: every TOKOUT
    states: list[list[bytes]]               # per core, per step (empty when not captured)
    token_cycles: list[list[int | None]]    # per core, per step: TOKIN -> TOKOUT cycles
    cycles: int | None = None               # simulated cycles of the whole run
    stats: dict[str, Any] = dataclasses.field(default_factory=dict)

    def new_tokens(self, core: int = 0) -> list[int]:
        """The generated continuation of `core`'s prompt (n_new tokens)."""
        p = len(self.prompts[core])
        return self.tokens[core][p - 1:p - 1 + self.n_new]


class Device(abc.ABC):
    """A loaded model on one backend. Subclasses implement `_generate`."""

    backend = "?"

    def __init__(self, image: str | Path | wi.Image, config: str | AccelConfig = "ddr4", *,
                 program: Sequence[int] | None = None, **options: Any):
        """`config`: a spec.accel name or AccelConfig; its `cores` is the batch (config.with_cores(n))."""
        self.config = get_config(config) if isinstance(config, str) else config
        self.cores = self.config.cores
        self.image_path = None if isinstance(image, wi.Image) else Path(image)
        self.image = image if isinstance(image, wi.Image) else wi.read_image(self.image_path)
        if (self.image.packing, self.image.beat_bytes) != (self.config.packing, self.config.beat_bytes):
            raise ValueError(f"the image is {self.image.packing} / beat {self.image.beat_bytes} B, config "
                             f"{self.config.name} is {self.config.packing} / beat {self.config.beat_bytes} B: "
                             "export the image for the config")
        if program is None:
            from sw.compile import compile_model
            program = compile_model(self.image, vlen=self.config.vlen).words
        self.program = [int(w) for w in program]
        if len(self.program) > self.config.rom_words:
            raise ValueError(f"the program has {len(self.program)} words, the ROM of config "
                             f"{self.config.name} {self.config.rom_words}")
        from golden.machine import default_state_bytes
        self.state_bytes = default_state_bytes(self.image.model)
        self.options = options

    def generate(self, prompts: Sequence[Sequence[int]], n_new: int, *,
                 on_token: Callable[[TokenEvent], None] | None = None, capture_state: bool = True,
                 max_cycles: int | None = None) -> Run:
        """Greedy generation, one prompt per core (see the module docstring)."""
        prompts = [[int(t) for t in p] for p in prompts]
        if len(prompts) != self.cores:
            raise ValueError(f"{len(prompts)} prompts for {self.cores} core(s): give one prompt per core")
        vocab = self.image.model.vocab_size
        for p in prompts:
            if not p:
                raise ValueError("every prompt needs at least one token")
            bad = [t for t in p if not 0 <= t < vocab]
            if bad:
                raise ValueError(f"token ids {bad[:4]} outside the vocabulary [0, {vocab})")
        if n_new < 0:
            raise ValueError(f"n_new must be >= 0, got {n_new}")
        return self._generate(prompts, n_new, on_token, capture_state, max_cycles)

    @abc.abstractmethod
    def _generate(self, prompts: list[list[int]], n_new: int, on_token: Callable[[TokenEvent], None] | None,
                  capture_state: bool, max_cycles: int | None) -> Run: ...

    def close(self) -> None:
        """Release the backend's resources (a simulator process); the base holds none."""
        return None

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GoldenDevice(Device):
    """golden.machine.GoldenMachine, one machine per core (cores do not interact)."""

    backend = "golden"

    def _generate(self, prompts, n_new, on_token, capture_state, max_cycles):
        from golden.machine import GoldenMachine, GreedyHost

        tokens, states = [], []
        steps = 0
        for core, prompt in enumerate(prompts):
            m = GoldenMachine(self.program, self.image, state_bytes=self.state_bytes)
            snaps: list[bytes] = []

            class _Host(GreedyHost):
                def put_token(self, tok: int, _m=m, _snaps=snaps, _core=core) -> None:
                    super().put_token(tok)
                    st = _m.state.tobytes() if capture_state else None
                    if st is not None:
                        _snaps.append(st)
                    if on_token is not None:
                        on_token(TokenEvent(_core, len(self.outputs) - 1, int(tok), None, None, st))

            host = _Host(prompt, n_new)
            m.run(host)
            steps += m.steps
            tokens.append(host.outputs)
            states.append(snaps)
        return Run(self.backend, prompts, n_new, tokens, states, [[None] * len(t) for t in tokens],
                   None, {"instructions": steps})


def open_device(backend: str, image: str | Path | wi.Image, config: str | AccelConfig = "ddr4", **kw: Any) -> Device:
    """A Device of `backend` (a key of BACKENDS) for `image` on `config`."""
    try:
        target = BACKENDS[backend]
    except KeyError:
        hint = "" if len(BACKENDS) > 1 else (f" (the other backends are registered by the installed package's "
                                             f"{ENTRY_POINTS!r} entry points: run `make setup`)")
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}{hint}") from None
    mod, cls = target.split(":")
    return getattr(importlib.import_module(mod), cls)(image, config, **kw)
