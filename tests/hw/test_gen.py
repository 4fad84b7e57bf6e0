"""hw.gen: Verilog of the tops for every named configuration; the cores come from the config."""
from __future__ import annotations

import dataclasses

import pytest

from hw.gen import generate
from spec.accel import CONFIGS, get_config


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_named_config_passes_the_core_checks(name):
    from hw.core.iface import check_core_config
    check_core_config(get_config(name))


def test_generate_builds_config_cores():
    cfg = dataclasses.replace(get_config("ecp5"), vlen=32, rom_words=16).with_cores(2)
    text = generate(cfg, top="accel")
    assert "tok_in__1__valid" in text and "tok_in__2__valid" not in text


def test_generate_rejects_unknown_top():
    with pytest.raises(ValueError, match="unknown top 'soc'"):
        generate(dataclasses.replace(get_config("ecp5"), vlen=32), top="soc")
