"""The table of board builds in docs/boards.md, from the builds' own reports.

    python -m bitstreams.table DIR [DIR ...] [-o FILE]
    python -m bitstreams.table DIR [DIR ...] --append docs/boards.md

Each DIR is a `python -m bitstreams --out DIR` (or `make bitstream`) output directory; its
manifest.json (what was built: board, git revision, config and overrides, clock) and report.json
(nextpnr's resource use, post-route Fmax and critical path, wall times) become one row, in the order
given; the FPGA and its speed grade come from the board's platform. Nothing in the table is typed
by hand: a figure that is not in a report is not in the table.

`--append FILE` adds the rows to the table already in FILE (the one under this header), after its
last row, and replaces a row of the same board and git revision: the rows of earlier builds,
generated from their reports when they were made, stay when their directories are gone.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["COLUMNS", "append_rows", "load_build", "row", "table"]

COLUMNS = ("board", "device", "git", "config", "LUT", "FF", "BRAM", "DSP", "post-route Fmax", "critical path", "wall")


class TableError(ValueError):
    pass


def load_build(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(manifest, report) of one build directory; TableError names what is missing."""
    out = []
    for name in ("manifest.json", "report.json"):
        f = path / name
        if not f.is_file():
            raise TableError(f"{path}: no {name} (not a finished `python -m bitstreams` build directory)")
        try:
            out.append(json.loads(f.read_text()))
        except json.JSONDecodeError as e:
            raise TableError(f"{f}: not JSON ({e})") from e
    return out[0], out[1]


def _use(res: dict[str, Any], key: str, pct: bool) -> str:
    r = res.get(key)
    if not r:
        return "-"
    s = f"{r['used']:,} / {r['available']:,}" if r.get("available") else f"{r['used']:,}"
    if pct and r.get("available"):
        s += f" ({100 * r['used'] / r['available']:.0f} %)"
    return s


def device(board: str) -> str:
    """The board's FPGA and speed grade, from its amaranth-boards platform ("-" for an unknown board)."""
    from bitstreams.build import BOARDS, make_platform

    if board not in BOARDS:
        return "-"
    plat = make_platform(BOARDS[board])
    speed = getattr(plat, "speed", None)
    return f"{plat.device}-{speed}" if speed is not None else plat.device


def row(man: dict[str, Any], rep: dict[str, Any]) -> list[str]:
    cfg = man["accel_config"]
    over = man.get("config_overrides") or {}
    config = (f"{cfg['name']}: beat {cfg['beat_bytes']} B ({cfg['packing']}), {cfg['vector_lanes']} vector "
              f"lane{'s' if cfg['vector_lanes'] != 1 else ''}, vlen {cfg['vlen']}; model {man['model']['name']}")
    if over:
        config += " (" + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in sorted(over.items())) + ")"
    git = man["git"]["revision"][:7] + (" (dirty)" if man["git"].get("dirty") else "")
    ach, target = rep.get("achieved_mhz"), rep.get("target_mhz")
    if ach is None:
        fmax = "not reported"
    else:
        fmax = f"**{ach:.1f} MHz** (target {target:g}: {'met' if rep.get('timing_met') else 'not met'})"
    crit = "-"
    paths = [p for p in rep.get("critical_paths", []) if "<async>" not in (p.get("from"), p.get("to"))]
    if paths:
        p = paths[0]
        crit = f"{p['delay_ns']:.2f} ns, {p['start']} -> {p['end']}"
    wall = rep.get("wall_s") or {}
    w = "-"
    if wall.get("total") is not None:
        w = f"{wall['total'] / 60:.1f} min"
        parts = [f"{k} {wall[k] / 60:.1f}" for k in ("yosys", "nextpnr_ecp5", "nextpnr_ice40") if k in wall]
        if parts:
            w += " (" + ", ".join(parts) + ")"
    res = rep.get("resources", {})
    return [man["board"], device(man["board"]), git, config, _use(res, "LUT", True), _use(res, "FF", False),
            _use(res, "BRAM", False), _use(res, "DSP", False), fmax, crit, w]


def table(dirs: list[Path]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for d in dirs:
        man, rep = load_build(d)
        lines.append(_row_line(row(man, rep)))
    return "\n".join(lines) + "\n"


def _row_line(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def append_rows(text: str, dirs: list[Path]) -> str:
    """`text` (markdown) with the rows of `dirs` added to its build table (see the module docstring)."""
    header = "| " + " | ".join(COLUMNS) + " |"
    lines = text.split("\n")
    if header not in lines:
        raise TableError("no build table in the file (its header row: " + header + ")")
    start = lines.index(header) + 2              # the header, the separator
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    def key(cells: list[str]) -> tuple[str, str]:      # board, git revision (without "(dirty)")
        return cells[0].strip(), cells[2].strip().split(" ")[0]

    rows = lines[start:end]
    for d in dirs:
        man, rep = load_build(d)
        cells = row(man, rep)
        rows = [r for r in rows if key(r.strip().strip("|").split("|")) != key(cells)]
        rows.append(_row_line(cells))
    return "\n".join(lines[:start] + rows + lines[end:])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bitstreams.table",
                                 description="The markdown table of board builds (docs/boards.md) from their reports.")
    ap.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="build output directories, one row each")
    out = ap.add_mutually_exclusive_group()
    out.add_argument("-o", "--output", type=Path, help="write the table here (default: stdout)")
    out.add_argument("--append", type=Path, metavar="FILE",
                     help="add the rows to the build table in FILE (a row of the same board and git revision "
                          "is replaced), in place")
    args = ap.parse_args(argv)
    try:
        if args.append:
            if not args.append.is_file():
                raise TableError(f"{args.append}: no such file")
            args.append.write_text(append_rows(args.append.read_text(), args.dirs))
            return 0
        text = table(args.dirs)
    except TableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
