"""sw.artifacts: the one artifact flow (model -> image -> program -> ROM), its cache names, reuse and
errors, and that make sim, make bench, make bitstream and make verilog get the same file from it."""
from __future__ import annotations

import dataclasses

import pytest

from spec import weight_image as wi
from spec.accel import get_config
from spec.models import MICRO
from sw import artifacts as A

DDR4 = get_config("ddr4")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The image and program caches in a fresh directory."""
    monkeypatch.setattr(A, "IMAGES", tmp_path / "images")
    monkeypatch.setattr(A, "PROGRAMS", tmp_path / "programs")
    return tmp_path


def test_preset_image_name_and_reuse(cache):
    path, mc, source = A.model_image("tiny", packing="1.6bit", beat_bytes=64)
    assert path == cache / "images" / "tiny-seed0-1.6bit-b64.img"
    assert mc.name == "tiny" and "seeded random init" in source
    img = wi.read_image(path)
    assert (img.packing, img.beat_bytes) == ("1.6bit", 64)
    mtime = path.stat().st_mtime_ns
    again, _, _ = A.model_image("tiny", packing="1.6bit", beat_bytes=64)
    assert again == path and path.stat().st_mtime_ns == mtime          # reused, not exported again
    assert A.model_image("tiny", packing="2bit", beat_bytes=16)[0].name == "tiny-seed0-2bit-b16.img"
    assert A.model_image("tiny", packing="1.6bit", beat_bytes=64, seed=3)[0].name == "tiny-seed3-1.6bit-b64.img"
    assert sorted(p.suffix for p in (cache / "images").iterdir()) == [".img"] * 3    # no temporary left


def test_stale_image_is_exported_again(cache):
    path, _, _ = A.model_image("tiny", packing="1.6bit", beat_bytes=64)
    good = path.read_bytes()
    path.write_bytes(b"not an image")
    assert A.model_image("tiny", packing="1.6bit", beat_bytes=64)[0] == path
    assert path.read_bytes() == good


def test_checkpoint_image_is_named_by_its_files(cache):
    path, mc, source = A.model_image("demo")
    assert path.name.startswith("demo-") and path.name.endswith("-1.6bit-b64.img") and len(path.name) > 25
    assert mc.name == "demo" and source.startswith("checkpoint ")
    assert A.model_image(None, A.DEMO_DIR)[0] == path        # the directory itself, the same file


def test_unknown_model_and_missing_checkpoint_are_one_line_errors(cache, tmp_path):
    with pytest.raises(A.ArtifactError, match="unknown model 'nope'; valid: tiny, demo, 370m") as e:
        A.model_image("nope")
    assert "micro" in str(e.value)
    with pytest.raises(A.ArtifactError, match="does not exist"):
        A.model_image(None, tmp_path / "no_such_dir")


def test_random_image_of_a_test_model(cache):
    cfg = get_config("ecp5")
    path = A.random_image(cfg, MICRO, seed=2)
    assert path.name == "micro-1x16x16x80-rand2-1.6bit-b16.img"
    assert A.random_image(cfg, "micro", seed=2) == path
    assert wi.read_image(path).model == MICRO


def test_prepare_compiles_and_assembles(cache):
    from sw.compile import compile_model

    a = A.prepare("tiny", config="ddr4")
    img = wi.read_image(a.image_path)
    assert a.program == list(compile_model(img, vlen=DDR4.vlen).words)
    assert a.rom_hex == cache / "programs" / f"{a.image_path.stem}-vlen{DDR4.vlen}" / "rom.hex"
    assert (a.rom_hex.parent / "prog.s").exists()
    assert a.config == DDR4 and a.tokenizer is None and a.image_bytes == a.image_path.read_bytes()
    assert a.state_bytes > 0 and a.state_bytes % DDR4.beat_bytes == 0
    micro = A.prepare("micro", config=get_config("ecp5"))
    assert micro.image_path.name.startswith("micro-1x16x16x80-rand0") and "numpy random" in micro.source
    demo = A.prepare("demo", config="ddr4")
    assert demo.tokenizer is not None
    with pytest.raises(A.ArtifactError, match="unknown accelerator config"):
        A.prepare("tiny", config="nope")


def test_every_entry_point_gets_the_same_image(cache):
    """make sim (sim.driver via prepare), make bench (prepare with the packing), make bitstream and
    make verilog (bitstreams.build.load_model) and the golden bench (model_image) name one file."""
    from bitstreams.build import load_model

    sim = A.prepare("tiny", config="ddr4").image_path
    bench = A.prepare("tiny", config=A.resolve_config("ddr4", "1.6bit").with_cores(2)).image_path
    board = load_model("tiny", dataclasses.replace(get_config("ecp5"), beat_bytes=64, cores=1)).image_path
    golden_bench = A.model_image("tiny", packing="1.6bit")[0]
    assert sim == bench == board == golden_bench
    assert [p.name for p in (cache / "images").iterdir()] == [sim.name]


def test_provenance():
    rev = A.git_revision()
    assert rev == "unknown" or len(rev) >= 7
    p = A.provenance()
    assert set(p) == {"revision", "dirty"} and isinstance(p["dirty"], bool)
