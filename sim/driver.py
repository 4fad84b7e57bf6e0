"""`make sim`: a model end to end on the full-system simulator, every token checked bit for bit.

    python -m sim --model 370m --tokens 4
    python -m sim --model demo --prompt "ROMEO:" --tokens 40
    python -m sim --checkpoint DIR [--model NAME] --tokens 8 --cores 2 --channels 2 --packing 2bit
    python -m sim --model demo --backend golden|amaranth|verilator --trace

Steps: resolve the model (a preset's seeded random init, the trained demo in sw/demo, or an HF
checkpoint directory), export its weight image for the accelerator configuration, compile the token
program (sw.compile) and assemble it (sw.artifacts: the one cache under build/images/ and
build/programs/), run the golden machine (golden.machine, the definition of correct), then the chosen
backend through the host Device API (sw.device) with a progress bar. Every token's output and the
state region after it (every layer's recurrent state h) are compared with the golden machine's as
they arrive; the first divergence stops the run and names the step, the layer, the operation and
the element. With a tokenizer (the demo model has one) the text is printed.

Figures (printed as a table and written as JSON, default build/sim/<model>.json): simulated cycles
per token, tokens/s at the stated clock (the DDR4 controller clock: data rate / 8), DRAM bytes per
token, the weight-stream roofline (peak channel bandwidth / ternary weight bytes per token) and the
efficiency against it, and the wall time of the simulation on this machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from spec.dram import check_channels
from sw.artifacts import ArtifactError, Artifacts, build_dir, prepare, resolve_config
from sw.tokenizer import encode_prompt

OUT = build_dir("sim")

__all__ = ["Divergence", "SimError", "main", "roofline", "run_sim"]


class SimError(RuntimeError):
    """A user-facing error: printed as one line, exit status 2."""


class Divergence(AssertionError):
    """The backend's output differs from the golden machine's."""


def roofline(p: Artifacts, channels: int, speed: str = "DDR4-2400R") -> dict:
    """The weight-stream roofline of batch-1 decode: every ternary weight read once per token."""
    from spec import weight_image as wi
    from spec.dram import Channel, speed_grade

    lay = wi.layout(p.model_config, p.config.packing, p.config.beat_bytes)
    trit_bytes = sum(t.nbytes for t in lay.tensors if t.kind == "trits")
    sg, ch = speed_grade(speed), Channel(speed=speed)
    clock_hz = float(sg.clock_mhz) * 1e6 / ch.nphases    # the DFI ratio: the controller (and accelerator) clock
    peak = sg.data_rate * 1e6 * (ch.width // 8) * channels    # bytes/s of the channels
    return {"weight_bytes_per_token": trit_bytes, "peak_bytes_per_s": peak, "clock_hz": clock_hz,
            "roofline_tokens_per_s": peak / trit_bytes, "speed": speed, "channels": channels}


def _state_divergence(p: Artifacts, step: int, core: int, gold: bytes, got: bytes) -> str:
    import numpy as np

    g = np.frombuffer(gold, np.int64)
    r = np.frombuffer(got[:len(gold)], np.int64)
    i = int(np.flatnonzero(g != r)[0]) if len(r) == len(g) else min(len(g), len(r))
    d = p.model_config.hidden_size
    layer, elem = divmod(i, d)
    if layer >= p.model_config.num_hidden_layers:
        return f"core {core}, token step {step}: the state region differs at int64 word {i} (past the last layer)"
    return (f"core {core}, token step {step}: layer {layer}, operation: the recurrent state update "
            f"h = h * f + silu(i) * (1 - f) (the SV of h), element {elem}: golden {int(g[i])}, "
            f"{'backend'} {int(r[i]) if i < len(r) else 'missing'} "
            f"({int(np.count_nonzero(g != r))} of {len(g)} state elements differ)")


def run_sim(p: Artifacts, backend: str, prompt: list[int], n_new: int, *, channels: int = 1,
            trace: Path | None = None, progress: bool = True, log=print, max_cycles: int | None = None) -> dict:
    """Golden first, then the backend with every token compared; returns the report (dict).
    Raises Divergence at the first difference."""
    from sw.device import DeviceError, open_device

    cores = p.config.cores                                  # the batch: one prompt per core
    t0 = time.perf_counter()
    gold = open_device("golden", p.image_path, p.config.with_cores(1), program=p.program).generate([prompt], n_new)
    golden_s = time.perf_counter() - t0
    g_tokens, g_states = gold.tokens[0], gold.states[0]
    steps = len(g_tokens)
    log(f"golden machine: {steps} token steps in {golden_s:.1f} s")
    report: dict = {"model": p.name, "source": p.source, "image": str(p.image_path), "backend": backend,
                    "config": dataclasses.asdict(p.config), "cores": cores, "channels": channels,
                    "prompt": prompt, "n_new": n_new, "golden_tokens": g_tokens, "golden_seconds": golden_s}
    if backend == "golden":
        report.update(tokens=[g_tokens] * cores, bit_exact=True)
        return report
    opts = {"channels": channels} if backend == "verilator" else {}
    if trace is not None:
        opts["waveform"] = trace
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps * cores, unit="tok", desc=f"{backend} {p.name}", file=sys.stderr)
    checked = [0] * cores
    t_first: list[float | None] = [None]

    def on_token(ev) -> None:
        if t_first[0] is None:
            t_first[0] = time.perf_counter()
        k = ev.step
        if k >= steps or ev.token != g_tokens[k]:
            want = g_tokens[k] if k < steps else "no token"
            raise Divergence(f"core {ev.core}, token step {k}: operation lm_head + ARGMAX (TOKOUT): "
                             f"golden token {want}, {backend} token {ev.token}")
        if ev.state is not None and ev.state != g_states[k]:
            raise Divergence(_state_divergence(p, k, ev.core, g_states[k], ev.state))
        checked[ev.core] += 1
        if bar is not None:
            bar.update(1)
            if ev.latency:
                bar.set_postfix_str(f"{ev.latency} cycles/token")

    t1 = time.perf_counter()
    try:
        with open_device(backend, p.image_path, p.config, program=p.program, **opts) as dev:
            run = dev.generate([prompt] * cores, n_new, on_token=on_token, max_cycles=max_cycles)
    except DeviceError as e:
        raise SimError(f"{backend}: {e}") from None
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t1
    for c in range(cores):
        if checked[c] != steps or run.tokens[c] != g_tokens:
            raise Divergence(f"core {c}: {len(run.tokens[c])} tokens from {backend}, {steps} from the golden machine")
    lat = [x for c in range(cores) for x in run.token_cycles[c] if x is not None]
    sim_wall = run.stats.get("wall_s") or wall
    report.update(tokens=run.tokens, bit_exact=True, cycles=run.cycles, token_cycles=run.token_cycles,
                  wall_seconds=wall, stats=run.stats)
    if lat:
        import statistics
        rl = roofline(p, channels)
        cyc = statistics.median(lat)
        tps = rl["clock_hz"] / cyc                     # per core (every core streams the shared weights)
        dram_bytes = run.stats.get("dram_bytes")
        report["figures"] = {
            "what": "simulated cycles of the RTL; tokens/s are projections at the stated clock; wall times are "
                    "measurements on this machine",
            "cycles_per_token_median": cyc, "cycles_per_token_min": min(lat), "cycles_per_token_max": max(lat),
            "clock_mhz": rl["clock_hz"] / 1e6, "tokens_per_s": tps, "aggregate_tokens_per_s": tps * cores,
            "roofline_tokens_per_s": rl["roofline_tokens_per_s"],
            "efficiency": tps / rl["roofline_tokens_per_s"],
            "weight_bytes_per_token": rl["weight_bytes_per_token"],
            "dram_bytes_per_token": dram_bytes / steps if dram_bytes else None,
            # the simulation alone: the harness's own clock when it reports one (open_device's one-time
            # build is not part of it), else the whole call
            "wall_seconds_per_token": sim_wall / steps,
            "sim_cycles_per_s": (run.cycles / sim_wall) if run.cycles and sim_wall else None,
        }
    return report


def _table(rep: dict) -> str:
    f = rep.get("figures")
    rows = [("model", f"{rep['model']} ({rep['source']})"), ("backend", rep["backend"]),
            ("config", f"{rep['config']['name']}: beat {rep['config']['beat_bytes']} B, {rep['config']['packing']}, "
                       f"{rep['config']['vector_lanes']} lanes; {rep['cores']} core(s), {rep['channels']} channel(s)"),
            ("bit-exact vs golden", f"yes, {len(rep['golden_tokens'])} token steps x {rep['cores']} core(s) "
                                    "(token and every layer's state)")]
    if f:
        cyc = (f"{f['cycles_per_token_median']:,.0f} (min {f['cycles_per_token_min']:,}, "
               f"max {f['cycles_per_token_max']:,})")
        rows += [("cycles/token (simulated)", cyc),
                 ("tokens/s at the clock", f"{f['tokens_per_s']:.1f} at {f['clock_mhz']:.0f} MHz (projection from "
                                           "simulated cycles)"),
                 ("weight-stream roofline", f"{f['roofline_tokens_per_s']:.1f} tokens/s "
                                            f"({f['weight_bytes_per_token'] / 1e6:.2f} MB of weights per token)"),
                 ("efficiency vs roofline", f"{100 * f['efficiency']:.1f} %")]
        if f["dram_bytes_per_token"]:
            rows.append(("DRAM bytes/token", f"{f['dram_bytes_per_token'] / 1e6:.2f} MB (simulated)"))
        rows.append(("wall time/token", f"{f['wall_seconds_per_token']:.2f} s on this machine"
                     + (f" ({f['sim_cycles_per_s'] / 1e3:.0f}k cycles/s)" if f["sim_cycles_per_s"] else "")))
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"  {a:<{w}}  {b}" for a, b in rows)


def main(argv: list[str] | None = None) -> int:
    from sw.device import BACKENDS

    ap = argparse.ArgumentParser(prog="python -m sim", description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="tiny | demo | 370m | 1.3b | 2.7b (default 370m; with "
                                                  "--checkpoint: optional name)")
    ap.add_argument("--checkpoint", type=Path, default=None, help="HF checkpoint directory")
    ap.add_argument("--tokens", type=int, default=4, help="tokens to generate (default 4)")
    ap.add_argument("--prompt", default="", help="prompt text (default: the BOS token alone)")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--channels", type=int, default=1, help="DDR4 channels (verilator backend)")
    ap.add_argument("--packing", default=None, help="1.6bit | 2bit (default: the config's)")
    ap.add_argument("--config", default=None, help="accelerator configuration (spec/accel.py; default: the one "
                                                   "sized for --channels: ddr4, ddr4x2, ddr4x4)")
    ap.add_argument("--backend", default="verilator",
                    choices=sorted(b for b in BACKENDS if b != "uart"))    # uart: a board (sw.board_host)
    ap.add_argument("--trace", action="store_true", help="write a waveform (FST) under build/sim/")
    ap.add_argument("--seed", type=int, default=0, help="random-init seed (presets without a checkpoint)")
    ap.add_argument("--max-cycles", type=int, default=None)
    ap.add_argument("-o", "--json", type=Path, default=None, help="report JSON (default build/sim/<model>.json)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    try:
        if args.tokens < 0 or args.cores < 1:
            raise SimError("--tokens must be >= 0, --cores >= 1")
        try:
            check_channels(args.channels)
        except ValueError as e:
            raise SimError(f"--channels: {e}") from None
        config = args.config
        if config is None:
            from spec.accel import config_for_channels
            config = config_for_channels(args.channels).name
            log(f"config {config} (sized for {args.channels} channel(s); --config names another)")
        cfg = resolve_config(config, args.packing).with_cores(args.cores)
        p = prepare(args.model, args.checkpoint, config=cfg, seed=args.seed, log=log)
        log(f"model {p.name}: {p.source}")
        prompt = encode_prompt(args.prompt, p.tokenizer, p.model_config)
        trace = OUT / p.image_path.stem / "wave.fst" if args.trace else None
        rep = run_sim(p, args.backend, prompt, args.tokens, channels=args.channels, trace=trace,
                      progress=not args.no_progress, log=log, max_cycles=args.max_cycles)
    except Divergence as e:
        print(f"DIVERGENCE: {e}", file=sys.stderr)
        return 1
    except (SimError, ArtifactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    toks = rep["tokens"][0]
    new = toks[len(prompt) - 1:len(prompt) - 1 + args.tokens]
    if p.tokenizer is not None:
        print(f"text: {p.tokenizer.decode(prompt + new)}")
    else:
        print(f"prompt ids: {prompt}  generated ids: {new}")
    print(_table(rep))
    out = args.json or OUT / f"{p.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rep, indent=1, default=str))
    print(f"report: {out}")
    if trace is not None:
        print(f"waveform: {trace}")
    return 0
