"""hw.vendor / `python -m bitstreams.verilog --target`: the accelerator on the Avalon-MM (d5005) and AXI4 (mig)
adapters, run in the Amaranth simulator against the sim.tb.bfm bus models (random waitrequest /
ready pauses, random read latency and read-data gaps, protocol and ordering checks that raise),
token in, tokens out, bit-exact against the golden machine: every TOKOUT and the state region in
memory at the end. Plus the CLI (files written, the instantiation example names every bus port,
errors) and the helpers.

Vectors: sim.backends.amaranth.MICRO with seeded random parameters on sim.fuzz's "b8" config (beat
8, 2-bit packing, 1 vector lane, vlen 64): the smallest core the compiler takes, so that a few
token steps simulate in seconds.
"""
from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from bitstreams.verilog import main
from golden.machine import GreedyHost, default_state_bytes
from hw.vendor import TARGETS, VendorTop, get_target, instantiation_example, verilog_ports
from sim.fuzz import fuzz_config
from sim.tb.bfm import AvalonSlave, Axi4Slave, SparseMemory
from spec import weight_image as wi
from spec.models import MICRO
from sw.artifacts import random_image
from sw.compile import compile_model
from sw.device import open_device


class TokenHost:
    """A golden.machine.GreedyHost on the top's tok_in[0] / tok_out[0], with random idle cycles on
    tok_in and backpressure on tok_out (probability `p`)."""

    def __init__(self, prompt: list[int], n_new: int, rng: random.Random, p: float):
        self.host, self.rng, self.p = GreedyHost(prompt, n_new), rng, p
        self.pending = None                 # the token offered on tok_in
        self.in_flight = False              # fed and its TOKOUT not yet back
        self.valid = self.ready = 0
        self.total = len(prompt) + n_new

    def quiet(self) -> dict[str, int]:
        return {"tok_in__0__valid": 0, "tok_out__0__ready": 0}

    @property
    def done(self) -> bool:
        return len(self.host.outputs) == self.total and not self.in_flight

    def drive(self) -> dict[str, int]:
        if self.pending is None and not self.in_flight:
            self.pending = self.host.next_token()
        self.valid = int(self.pending is not None and self.rng.random() >= self.p)
        self.ready = int(self.rng.random() >= self.p)
        out = {"tok_in__0__valid": self.valid, "tok_out__0__ready": self.ready}
        if self.valid:
            out["tok_in__0__payload"] = self.pending
        return out

    def sample(self, get) -> None:
        if self.valid and get("tok_in__0__ready"):
            self.pending, self.in_flight = None, True
        if self.ready and get("tok_out__0__valid"):
            assert self.in_flight, "a TOKOUT with no token in flight"
            self.host.put_token(get("tok_out__0__payload"))
            self.in_flight = False


def _micro():
    cfg = fuzz_config("b8")
    path = random_image(cfg, MICRO)
    img = wi.read_image(path)
    return cfg, path, img, [int(w) for w in compile_model(img, vlen=cfg.vlen).words]


def run_vendor(target: str, prompt: list[int], n_new: int, p: float, seed: int) -> dict:
    cfg, path, img, words = _micro()
    raw = bytes(img.file_bytes())
    beat = cfg.beat_bytes
    state_bytes = default_state_bytes(img.model)
    top = VendorTop(get_target(target), cfg, words)
    rng = random.Random(seed)
    mem = SparseMemory(beat, seed)
    full = (1 << beat) - 1
    for line in range(len(raw) // beat):
        mem.write(line, int.from_bytes(raw[line * beat:(line + 1) * beat], "little"), full)
    base = len(raw) // beat
    for line in range(base, base + state_bytes // beat):     # a sequence starts from a zeroed state
        mem.write(line, 0, full)
    if target == "d5005":
        kw = dict(TARGETS[target].adapter)
        slave = AvalonSlave(mem, rng, max_burst=kw["max_burst"], max_pending=kw["max_pending"], p_wait=p,
                            latency=(1, 10), p_gap=p / 2)
    else:
        slave = Axi4Slave(mem, rng, max_pending=dict(TARGETS[target].adapter)["max_pending"], p_ready=p,
                          p_gap=p / 2, latency=(1, 10), w_after_aw=bool(seed % 2))
    host = TokenHost(prompt, n_new, rng, p)
    models = [slave, host]
    res = {}

    def sig(name: str):
        obj = top
        for part in name.split("__"):
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        return obj

    async def bench(ctx):
        ctx.set(top.state_base, base)
        ctx.set(top.state_stride, state_bytes // beat)
        for m in models:
            for name, v in m.quiet().items():
                ctx.set(sig(name), v)
        cycles = 0
        while not (host.done and slave.done and ctx.get(top.waiting)):
            for m in models:
                for name, v in m.drive().items():
                    ctx.set(sig(name), v)
            for m in models:
                m.sample(lambda name: ctx.get(sig(name)))
            assert not ctx.get(top.fault), f"core fault at cycle {cycles}"
            if target == "mig":
                assert not ctx.get(top.mem_error), f"AXI error response at cycle {cycles}"
            await ctx.tick()
            cycles += 1
            assert cycles < 400_000, "the run did not end"
        res["cycles"] = cycles

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    state = b"".join(mem.read(line).to_bytes(beat, "little") for line in range(base, base + state_bytes // beat))
    gold = open_device("golden", path, cfg, program=words).generate([prompt], n_new)
    return {"tokens": host.host.outputs, "state": state, "gold": gold, "cycles": res["cycles"], "slave": slave}


@pytest.mark.parametrize("target,p,seed", [("d5005", 0.3, 2), ("mig", 0.3, 3),
                                           pytest.param("mig", 0.3, 4, marks=pytest.mark.slow),
                                           pytest.param("d5005", 0.0, 1, marks=pytest.mark.slow),
                                           pytest.param("mig", 0.0, 5, marks=pytest.mark.slow)])
def test_vendor_top_matches_golden(target, p, seed):
    """Odd seeds: the AXI slave takes W beats only after their AW (w_after_aw)."""
    r = run_vendor(target, [1, 17], 2, p, seed)
    gold = r["gold"]
    assert r["tokens"] == gold.tokens[0], f"{target}: {r['tokens']} golden {gold.tokens[0]}"
    assert any(gold.states[0][-1]), "the golden state is all zero: the comparison would not see a missing write"
    assert r["state"] == gold.states[0][-1], f"{target}: the state region differs from the golden machine's"
    s = r["slave"]
    reads = s.read_words if target == "d5005" else s.read_beats
    writes = s.write_words if target == "d5005" else s.write_beats
    assert reads > 0 and writes > 0


def test_every_target_builds_and_names_its_ip_ports(tmp_path, capsys):
    for name, t in TARGETS.items():
        out = tmp_path / name / f"accel_{name}.v"
        assert main(["--target", name, "--config", "ecp5", "--vlen", "64", "--rom-words", "256", "--model", "micro",
                     "-o", str(out)]) == 0
        text = out.read_text()
        assert f"module accel_{name}(" in text
        ports = {n for _, n, _ in verilog_ports(text)}
        assert "mem__cmd__valid" not in ports and "tok_in__0__valid" in ports and "rom_wr__data" in ports
        assert {f"bus__{sig}" for sig, _, _ in t.ip_ports} <= ports
        inst = (out.parent / f"accel_{name}_inst.v").read_text()
        for sig, ip, inv in t.ip_ports:
            assert f".bus__{sig}({'~' if inv else ''}{ip})" in inst, sig
        assert f".clk({t.ip_clock})" in inst and f"~{t.ip_calibrated})" in inst
        readme = (out.parent / "README.md").read_text()
        assert "Model `micro`" in readme and "state_base" in readme
        imgs = list(out.parent.glob("*.img"))
        assert len(imgs) == 1
        assert wi.read_image(imgs[0]).model.name == "micro"
    assert "wrote" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert main(["--target", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown target 'nope'" in err and all(t in err for t in TARGETS)
    with pytest.raises(SystemExit):
        main(["--model", "micro", "--config", "ecp5", "-o", str(tmp_path / "x.v")])
    assert "--model needs --target" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", "ecp5"])
    assert "required without --target" in capsys.readouterr().err
    assert main(["--target", "mig", "--config", "nope", "-o", str(tmp_path / "x.v")]) == 1
    assert "unknown accelerator config 'nope'" in capsys.readouterr().err


def test_helpers():
    text = "module m(a, b);\n  input [7:0] a;\n  wire [7:0] a;\n  output b;\n  wire b;\nendmodule\n"
    assert verilog_ports(text) == [("input", "a", 8), ("output", "b", 1)]
    with pytest.raises(ValueError, match="no port declarations"):
        verilog_ports("module m; endmodule")
    with pytest.raises(ValueError, match="has no port"):
        instantiation_example(TARGETS["mig"], "m", [("input", "clk", 1)])
    with pytest.raises(ValueError, match="unknown vendor target"):
        get_target("stratix")
