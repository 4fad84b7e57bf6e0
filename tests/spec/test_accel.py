"""spec.accel: the named configurations, their checks and the channel -> configuration map."""
from __future__ import annotations

import dataclasses

import pytest

from spec import weight_image as wi
from spec.accel import CHANNEL_CONFIGS, CONFIGS, AccelConfig, config_for_channels, get_config
from spec.dram import Channel


def test_beat_bytes_are_the_weight_images():
    """One list of beats: a config takes exactly the beats a weight image can be tiled for."""
    base = get_config("ddr4")
    for b in wi.BEAT_BYTES_ALLOWED:
        assert dataclasses.replace(base, beat_bytes=b).beat_bytes == b
    for b in (2, 48, 96, 512):
        with pytest.raises(ValueError, match="beat_bytes must be one of"):
            dataclasses.replace(base, beat_bytes=b)


@pytest.mark.parametrize("channels", sorted(CHANNEL_CONFIGS))
def test_channel_configs_take_one_line_per_channel_per_cycle(channels):
    """The config for n channels has a beat of one DRAM line of each channel (3 channels: the
    1-channel core) and the vector lanes scaled with the beat, so the array's rows per register word
    (beat / lanes) stay ddr4's."""
    cfg = config_for_channels(channels)
    line = Channel().line_bytes
    lines = 1 if channels == 3 else channels
    assert cfg.beat_bytes == lines * line
    ref = get_config("ddr4")
    assert cfg.beat_bytes // cfg.vector_lanes == ref.beat_bytes // ref.vector_lanes
    assert (cfg.packing, cfg.vlen, cfg.rom_words) == (ref.packing, ref.vlen, ref.rom_words)
    assert CONFIGS[cfg.name] is cfg


def test_config_for_channels_rejects_others():
    for bad in (0, 5, "2"):
        with pytest.raises(ValueError, match="channels must be 1 to 4"):
            config_for_channels(bad)


def test_tensor_alignment_covers_wide_beats():
    assert [wi.tensor_align(b) for b in wi.BEAT_BYTES_ALLOWED] == [64, 64, 64, 64, 64, 128, 256]


def test_unknown_config_lists_the_named_ones():
    with pytest.raises(ValueError, match="valid: ddr4, ddr4x2, ddr4x4, ecp5, ice40"):
        get_config("ddr5")


def test_config_fields_are_checked():
    with pytest.raises(ValueError, match="packing"):
        AccelConfig("x", beat_bytes=64, packing="3bit", vector_lanes=16, vlen=1024, rom_words=64)
    with pytest.raises(ValueError, match="vector_lanes must be >= 1"):
        AccelConfig("x", beat_bytes=64, packing="2bit", vector_lanes=0, vlen=1024, rom_words=64)
