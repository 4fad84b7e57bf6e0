"""The artifact flow: model -> weight image -> program -> ROM, one cache under build/, provenance.

Every entry point that needs a model on the accelerator goes through this module: `make sim`
(sim.driver), `make bench` (sim.benches.system), `make bitstream` (bitstreams.build), `make
verilog` (bitstreams.verilog), the board host (sw.board_host), the golden CLI and benches, and the
tests. So a model exported by any of them is one file under one name:

    build/images/<model>-<source>-<packing>-b<beat>.img
        <model>-seed<N>     a preset's seeded random init (sw.model.random_state_dict, as the
                            official code initialises; needs torch)
        <dir>-<hash>        an HF checkpoint directory (`demo` is sw/demo); the hash covers the
                            names, sizes and modification times of its weight and config files
        <model>-<LxDxIxV>-rand<N>   a model with numpy random parameters (`random_image`: the small
                            test models, e.g. spec.models.MICRO; no torch)
    build/programs/<image stem>-vlen<V>/prog.s, rom.hex
                            the token program compiled for a vector length, and its ROM image
                            (assembled from prog.s and checked against the compiler's words)

An image in the cache is reused when its header reads (spec.weight_image.read_image); one of an
older format is exported again. Writers go through a unique temporary name and an atomic rename,
so concurrent test workers share the cache safely.

    a = prepare("370m", config="ddr4")            # Artifacts: image, program, ROM, tokenizer, source
    path, model_config, source = model_image("demo", packing="1.6bit", beat_bytes=64)
    path = random_image(config, MICRO)

Build paths: `BUILD` (the repository's build/, git-ignored) and `build_dir(...)` below it, for every
generated file of the project. Provenance: `git(...)` and `git_revision()`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spec import weight_image as wi
from spec.accel import AccelConfig, get_config
from spec.models import PRESETS, TEST_MODELS, ModelConfig, get_preset
from sw import DEMO_DIR

__all__ = ["BUILD", "IMAGES", "PROGRAMS", "ROOT", "ArtifactError", "Artifacts", "build_dir", "demo_image", "git",
           "git_revision", "model_image", "prepare", "provenance", "random_image", "resolve_config"]

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
IMAGES = BUILD / "images"
PROGRAMS = BUILD / "programs"

Log = Callable[[str], Any]


class ArtifactError(RuntimeError):
    """A user-facing error of the flow (unknown model, missing or bad checkpoint): one line."""


def build_dir(*parts: str) -> Path:
    """A directory under build/ (not created)."""
    return BUILD.joinpath(*parts)


def _quiet(_msg: str) -> None:
    return None


def _tmp_name(path: Path) -> Path:
    """A temporary name beside `path`, unique per process and call (concurrent writers)."""
    return path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")


def _cached(path: Path) -> wi.Image | None:
    """The cached image at `path` if its header reads; a stale one (an older format) is removed."""
    if not path.exists():
        return None
    try:
        return wi.read_image(path, verify=False)
    except wi.ImageError:
        path.unlink(missing_ok=True)
        return None


def _shown(path: Path) -> str:
    """`path` relative to the repository when it is inside it (messages)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _checkpoint_tag(checkpoint: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(checkpoint.iterdir()):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return f"{checkpoint.resolve().name}-{h.hexdigest()[:10]}"


def model_image(model: str | None, checkpoint: str | Path | None = None, *, packing: str = wi.DEFAULT_PACKING,
                beat_bytes: int = wi.DEFAULT_BEAT_BYTES, seed: int = 0, log: Log = _quiet,
                progress: bool = True) -> tuple[Path, ModelConfig, str]:
    """The weight image of a model, exported once into the cache.

    `model`: a preset of spec.models (its seeded random init), `demo` (the trained checkpoint in
    sw/demo) or a checkpoint directory; `checkpoint` names the directory explicitly (then `model`
    is ignored). Returns (path, ModelConfig, source), source saying where the weights came from."""
    if checkpoint is None and model == "demo":
        checkpoint = DEMO_DIR
    if checkpoint is None and model is not None and model not in PRESETS and Path(model).is_dir():
        checkpoint = Path(model)
    if checkpoint is not None:
        checkpoint = Path(checkpoint)
        if not checkpoint.is_dir():
            raise ArtifactError(f"checkpoint directory {checkpoint} does not exist")
        tag = _checkpoint_tag(checkpoint)
        source = f"checkpoint {checkpoint}"
    else:
        if model not in PRESETS:
            raise ArtifactError(f"unknown model {model!r}; valid: {', '.join(PRESETS)}, a test model "
                                f"({', '.join(TEST_MODELS)}) or a checkpoint directory")
        tag = f"{model}-seed{seed}"
        source = f"seeded random init (seed {seed}): no checkpoint given, the output is not meaningful text"
    path = IMAGES / f"{tag}-{packing}-b{beat_bytes}.img"
    img = _cached(path)
    if img is not None:
        return path, img.model, source
    from sw.export import export_image
    if checkpoint is not None:
        from sw.checkpoint import CheckpointError, load_checkpoint
        try:
            mc, sd = load_checkpoint(checkpoint)
        except CheckpointError as e:
            raise ArtifactError(str(e)) from None
    else:
        from sw.model import random_state_dict
        mc = PRESETS[model]
        log(f"model {model}: no checkpoint given, exporting a SEEDED RANDOM INIT (seed {seed})")
        sd = random_state_dict(mc, seed)
    IMAGES.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    log(f"exporting {mc.name} ({packing}, beat {beat_bytes} B) to {_shown(path)}")
    try:
        export_image(mc, sd, tmp, packing=packing, beat_bytes=beat_bytes, source=source, progress=progress)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, mc, source


def random_image(config: AccelConfig, model: str | ModelConfig = "tiny", seed: int = 0) -> Path:
    """`model` (a preset or test model name, e.g. "tiny": 2 layers, d 64, vocab 256, or a ModelConfig)
    with seeded random float parameters, exported at the config's packing and beat (cached).

    numpy only (no torch): matrices N(0, 0.5), norm weights 1 +- 0.25, lower bounds N(0, 1), so
    that the greedy tokens vary from step to step."""
    import numpy as np

    from sw.export import export_image

    mc = (TEST_MODELS[model] if model in TEST_MODELS else get_preset(model)) if isinstance(model, str) else model
    sizes = f"{mc.num_hidden_layers}x{mc.hidden_size}x{mc.intermediate_size}x{mc.vocab_size}"
    path = IMAGES / f"{mc.name}-{sizes}-rand{seed}-{config.packing}-b{config.beat_bytes}.img"
    if _cached(path) is not None:
        return path
    rng = np.random.default_rng([0x7111, seed])
    sd = {}
    for name, shape in mc.state_dict_shapes().items():
        if name == "model.lower_bounds":
            sd[name] = rng.normal(0.0, 1.0, shape).astype(np.float32)
        elif len(shape) == 1:
            sd[name] = (1.0 + rng.uniform(-0.25, 0.25, shape)).astype(np.float32)
        else:
            sd[name] = rng.normal(0.0, 0.5, shape).astype(np.float32)
    IMAGES.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        export_image(mc, sd, tmp, packing=config.packing, beat_bytes=config.beat_bytes,
                     source=f"sw.artifacts.random_image: {mc.name} {sizes}, numpy seed {seed}")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def demo_image(config: AccelConfig) -> Path:
    """The trained demo checkpoint (sw/demo) exported at the config's packing and beat (cached)."""
    return model_image("demo", packing=config.packing, beat_bytes=config.beat_bytes, progress=False)[0]


@dataclasses.dataclass
class Artifacts:
    """Everything a backend, a board build or a Verilog export needs for one model on one config."""
    name: str                    # the model's name (preset, test model or checkpoint directory)
    model_config: ModelConfig
    image_path: Path
    config: AccelConfig
    program: list[int]           # the ROM words (as assembled from prog.s)
    rom_hex: Path                # the ROM image ($readmemh hex)
    tokenizer: Any               # tokenizers.Tokenizer | None
    source: str                  # where the weights came from ("checkpoint ...", "seeded random init ...")
    state_bytes: int             # one core's state region (golden.machine.default_state_bytes)

    @property
    def image_bytes(self) -> bytes:
        """The image file's bytes, as the accelerator's memory holds them at address 0."""
        return self.image_path.read_bytes()


def resolve_config(config: str | AccelConfig, packing: str | None = None) -> AccelConfig:
    """A named config (spec.accel) or the config itself, with `packing` replaced when given."""
    try:
        cfg = get_config(config) if isinstance(config, str) else config
        if packing is not None and packing != cfg.packing:
            cfg = dataclasses.replace(cfg, packing=packing)
    except ValueError as e:
        raise ArtifactError(str(e)) from None
    return cfg


def prepare(model: str | None, checkpoint: str | Path | None = None, *, config: str | AccelConfig = "ddr4",
            packing: str | None = None, seed: int = 0, log: Log = _quiet, progress: bool = True) -> Artifacts:
    """Export (cached), compile for the config's vlen and assemble: everything a backend needs.
    `model` None with a checkpoint: the directory's name; None without: 370m."""
    import assembler
    from golden.machine import default_state_bytes
    from sw.compile import compile_model
    from sw.tokenizer import load_tokenizer

    cfg = resolve_config(config, packing)
    checkpoint = None if checkpoint is None else Path(checkpoint)
    name = model or (checkpoint.resolve().name if checkpoint is not None else "370m")
    if checkpoint is None and name in TEST_MODELS:
        image_path = random_image(cfg, name, seed)
        source = f"numpy random parameters (seed {seed}): a test model, the output is not meaningful text"
    else:
        image_path, _, source = model_image(name, checkpoint, packing=cfg.packing, beat_bytes=cfg.beat_bytes,
                                            seed=seed, log=log, progress=progress)
    img = wi.read_image(image_path, verify=False)
    try:
        prog = compile_model(img, vlen=cfg.vlen)
    except ValueError as e:
        raise ArtifactError(f"compiling {name} for config {cfg.name}: {e}") from None
    d = PROGRAMS / f"{image_path.stem}-vlen{cfg.vlen}"
    d.mkdir(parents=True, exist_ok=True)
    asm = d / "prog.s"
    _write(asm, prog.text)
    try:
        words = assembler.assemble_file(str(asm)).words
    except assembler.AsmError as e:
        raise ArtifactError(f"assembling {asm}: {e}") from None
    rom_hex = d / "rom.hex"
    _write(rom_hex, assembler.to_hex(words))
    words = assembler.from_hex(rom_hex.read_text(), str(rom_hex))      # the ROM image is what runs
    if list(words) != list(prog.words):
        raise ArtifactError("the assembler's ROM differs from the compiler's direct encoding (a bug: report it)")
    if checkpoint is not None:
        tok_dir = checkpoint
    elif name == "demo":
        tok_dir = DEMO_DIR
    elif name not in PRESETS and name not in TEST_MODELS and Path(name).is_dir():
        tok_dir = Path(name)
    else:
        tok_dir = None
    return Artifacts(name, img.model, image_path, cfg, list(words), rom_hex, load_tokenizer(tok_dir), source,
                     default_state_bytes(img.model))


def _write(path: Path, text: str) -> None:
    """Write `text` unless the file holds it already (atomic: concurrent writers, readers)."""
    if path.exists() and path.read_text() == text:
        return
    tmp = _tmp_name(path)
    tmp.write_text(text)
    tmp.replace(path)


# -- provenance ----------------------------------------------------------------------------------

def git(*args: str) -> str:
    """`git args...` in the repository: its stdout, stripped; "" when git or the repository is absent."""
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def git_revision(short: bool = True) -> str:
    """The checkout's commit ("unknown" outside a git checkout)."""
    return git("rev-parse", *(["--short"] if short else []), "HEAD") or "unknown"


def provenance() -> dict[str, Any]:
    """What a build's manifest records of the source: the full commit and whether the tree has changes."""
    return {"revision": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
