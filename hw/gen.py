"""The accelerator's tops as Verilog text: `generate(config, rom, top)`.

    text = generate(get_config("ecp5"), rom_words, "accel")     # hw.top.Accelerator
    text = generate(cfg, rom_words, "core")                     # hw.core.core.Core alone
    text = generate(cfg, rom_words, "d5005", name="accel_d5005") # hw.vendor.VendorTop (Avalon-MM / AXI4)

Sizes come from the spec.accel configuration (its `cores` too); the ROM contents, when given, are
built in (the ROM stays writable through the `rom_wr` port). The top module's ports are described
in hw/top.py (Accelerator), hw/core/core.py (Core) and hw/vendor.py (VendorTop). The command lines
that write files (`make verilog`, `python -m bitstreams.verilog`) are in bitstreams/verilog.py.
"""
from __future__ import annotations

from spec.accel import AccelConfig

__all__ = ["TOPS", "build_top", "generate"]

#: the tops that are not vendor targets (hw.vendor.TARGETS are the others)
TOPS = ("accel", "core")


def build_top(config: AccelConfig, rom=(), top: str = "accel"):
    """The top `top` ("accel", "core" or a vendor target of hw.vendor) for `config`."""
    if top in _vendor_targets():
        from hw.vendor import TARGETS, VendorTop
        return VendorTop(TARGETS[top], config, rom)
    if top == "accel":
        from hw.top import Accelerator
        return Accelerator(config, rom)
    if top == "core":
        from hw.core.core import Core
        return Core(config, rom)
    raise ValueError(f"unknown top {top!r}; valid: accel, core, {', '.join(_vendor_targets())}")


def _vendor_targets() -> tuple[str, ...]:
    from hw.vendor import TARGETS
    return tuple(TARGETS)


def generate(config: AccelConfig, rom=(), top: str = "accel", name: str | None = None) -> str:
    """The Verilog text of `top` ("accel", "core" or a vendor target of hw.vendor) for `config`."""
    from amaranth.back import verilog

    return verilog.convert(build_top(config, rom, top), name=name or top)
