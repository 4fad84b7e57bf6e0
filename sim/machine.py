"""The golden machine on the command line: a ROM run over a weight image, instruction by instruction.

    python -m sim.machine ROM --image IMG [--prompt 1,2,3] [--new N] [--trace FILE] [--profile]

ROM: a .hex file (one word per line) or a .s file (assembled first). The machine is
golden.machine.GoldenMachine; --trace writes its per-instruction trace (golden.machine.TextTrace).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import assembler
from golden.machine import GoldenMachine, MachineError, TextTrace, read_rom
from spec import weight_image as wi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sim.machine", description="Run a ROM on the golden machine.")
    ap.add_argument("rom", type=Path)
    ap.add_argument("--image", type=Path, required=True)
    ap.add_argument("--prompt", default="1", help="comma-separated token ids (default 1)")
    ap.add_argument("--new", type=int, default=0, help="greedy new tokens after the prompt")
    ap.add_argument("--trace", type=Path, help="write the per-instruction trace to this file")
    ap.add_argument("--profile", action="store_true", help="print executed instructions per opcode")
    args = ap.parse_args(argv)

    try:
        rom = read_rom(args.rom)
        img = wi.read_image(args.image)
        f = open(args.trace, "w") if args.trace else None
        m = GoldenMachine(rom, img, trace=TextTrace(f) if f else None)
        prompt = [int(t) for t in args.prompt.split(",") if t.strip()]
        if args.new:
            out = m.run_tokens(prompt, args.new)
        else:
            out = m.run_teacher(prompt)
        if f:
            f.close()
    except (MachineError, wi.ImageError, OSError, ValueError, assembler.AsmError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(" ".join(map(str, out)))
    print(f"{m.steps} instructions executed; halted: {m.halt_reason}", file=sys.stderr)
    if args.profile:
        for mn, n in sorted(m.profile.items(), key=lambda kv: -kv[1]):
            print(f"{mn:8s} {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
