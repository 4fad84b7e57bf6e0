"""Write the accelerator's Verilog: python -m hw.gen --config NAME -o build/accel_NAME.v

    python -m hw.gen --config ecp5 -o build/rtl/ecp5.v [--cores 2] [--rom build/demo.hex]
                     [--vlen 1024] [--rom-words 512] [--top accel|core]

Sizes come from the named spec.accel configuration (overrides for vlen, rom_words and cores are
for test builds); the ROM contents, when given, are built in (the ROM stays writable through the
`rom_wr` port). The top module's ports are described in hw/top.py (Accelerator) and hw/core/core.py
(Core).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from spec.accel import CONFIGS, AccelConfig, get_config

__all__ = ["generate", "main"]


def build_top(config: AccelConfig, rom=(), top: str = "accel", cores: int | None = None):  # noqa: ANN001, ANN201
    if top == "accel":
        from hw.top import Accelerator
        return Accelerator(config, rom, cores=cores)
    if top == "core":
        from hw.core.core import Core
        return Core(config, rom)
    raise ValueError(f"unknown top {top!r}; valid: accel, core")


def generate(config: AccelConfig, rom=(), top: str = "accel", cores: int | None = None, name: str | None = None) -> str:  # noqa: ANN001
    """The Verilog text of `top` ("accel" or "core") for `config`."""
    from amaranth.back import verilog

    return verilog.convert(build_top(config, rom, top, cores), name=name or top)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.gen", description="Write the accelerator's Verilog.")
    ap.add_argument("--config", required=True, help=f"accelerator config: {', '.join(CONFIGS)}")
    ap.add_argument("-o", "--output", type=Path, required=True, help="Verilog file to write")
    ap.add_argument("--cores", type=int, help="override config.cores")
    ap.add_argument("--vlen", type=int, help="override config.vlen")
    ap.add_argument("--rom-words", type=int, help="override config.rom_words")
    ap.add_argument("--rom", type=Path, help="initial ROM: a .hex file (python -m assembler ... -o rom.hex)")
    ap.add_argument("--top", default="accel", choices=("accel", "core"))
    args = ap.parse_args(argv)
    try:
        cfg = get_config(args.config)
        over = {k: v for k, v in (("vlen", args.vlen), ("rom_words", args.rom_words), ("cores", args.cores))
                if v is not None}
        cfg = dataclasses.replace(cfg, **over)
        rom = []
        if args.rom is not None:
            import assembler
            rom = assembler.from_hex(args.rom.read_text(), str(args.rom))
        t0 = time.perf_counter()
        text = generate(cfg, rom, args.top, cfg.cores, name=args.top)
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}: {args.top} for config {cfg.name} (beat {cfg.beat_bytes} B, {cfg.packing}, "
          f"{cfg.vector_lanes} lanes, vlen {cfg.vlen}, {cfg.cores} core(s), ROM {cfg.rom_words} words, "
          f"{len(rom)} initialised), {len(text.splitlines())} lines in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
