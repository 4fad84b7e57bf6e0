"""hw.mem.dfi: the controller's command encoder drives the pins of spec.dram.COMMANDS (spec.dram.encode_pins),
and they decode back to the same command."""
from __future__ import annotations

import pytest
from amaranth.hdl import Module, Shape, Signal
from amaranth.sim import Simulator

from hw.mem.dfi import Cmd, DfiSignature, PhaseLayout, decode, encode
from spec.dram import Channel, encode_pins

CASES = [
    (Cmd.NOP, {}, {}),
    (Cmd.ACT, {"bg": 3, "ba": 2, "row": 0x1ABCD}, {"bg": 3, "ba": 2, "row": 0x1ABCD}),
    (Cmd.ACT, {"bg": 0, "ba": 1, "row": 0xFFFF}, {"bg": 0, "ba": 1, "row": 0xFFFF}),
    (Cmd.RD, {"bg": 1, "ba": 3, "col": 0x3F8}, {"bg": 1, "ba": 3, "col": 0x3F8}),
    (Cmd.WR, {"bg": 2, "ba": 0, "col": 8}, {"bg": 2, "ba": 0, "col": 8}),
    (Cmd.PRE, {"bg": 2, "ba": 1}, {"bg": 2, "ba": 1}),
    (Cmd.PREA, {}, {}),
    (Cmd.REF, {}, {}),
    (Cmd.MRS, {"mr": 6, "value": 0x1234}, {"mr": 6, "value": 0x1234}),
    (Cmd.MRS, {"mr": 0, "value": 0x0934}, {"mr": 0, "value": 0x0934}),
    (Cmd.ZQCL, {}, {}),
    (Cmd.ZQCS, {}, {}),
]


@pytest.mark.parametrize("geo", ["8Gb_x8", "8Gb_x16"])
def test_encode_decode_round_trip(geo):
    ch = Channel(geometry=geo)
    lay = PhaseLayout(ch)
    cases = [c for c in CASES if not (geo.endswith("x16") and c[1].get("bg", 0) > 1)]
    sel = Signal(range(len(cases)))
    phase = Signal(lay)
    m = Module()
    with m.Switch(sel):
        for i, (cmd, kw, _) in enumerate(cases):
            with m.Case(i):
                m.d.comb += encode(phase, cmd, **kw)
    seen = []

    async def bench(ctx):
        for i in range(len(cases)):
            ctx.set(sel, i)
            await ctx.delay(1e-9)
            v = ctx.get(phase)
            seen.append({n: int(getattr(v, n)) for n in ("cs_n", "act_n", "ras_n", "cas_n", "we_n", "bg", "ba",
                                                         "address")})

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for (cmd, kw, want), pins in zip(cases, seen, strict=True):
        assert pins == encode_pins(cmd, **kw), cmd          # the pins spec.dram gives (the fields not driven: 0)
        got_cmd, got = decode(pins)
        assert got_cmd == cmd
        for k, v in want.items():
            assert got[k] == v, (cmd, k)


def test_decode_reports_auto_precharge_and_deselect():
    base = {"cs_n": 0, "act_n": 1, "bg": 0, "ba": 0}
    assert decode(dict(base, ras_n=1, cas_n=0, we_n=1, address=1 << 10))[0] == Cmd.RDA
    assert decode(dict(base, ras_n=1, cas_n=0, we_n=0, address=1 << 10))[0] == Cmd.WRA
    assert decode(dict(base, cs_n=1, ras_n=0, cas_n=0, we_n=0, address=0))[0] == Cmd.NOP


def test_dfi_signature_widths():
    ch = Channel()
    sig = DfiSignature(ch)
    assert sig.members["wrdata"].shape == 512 and sig.members["wrdata_mask"].shape == 64
    assert sig.members["phases"].shape.length == 4
    with pytest.raises(ValueError, match="not issued by the controller"):
        encode(Signal(PhaseLayout(ch)), Cmd.RDA)


def test_dfi_phases_reset_to_deselect():
    ch = Channel()
    ifc = DfiSignature(ch).create()
    init = ifc.phases.as_value().init
    lay = PhaseLayout(ch)
    for p in range(ch.nphases):
        v = init >> (p * lay.size)
        pins = {n: (v >> lay[n].offset) & ((1 << Shape.cast(lay[n].shape).width) - 1) for n, _ in lay}
        assert decode(pins)[0] == Cmd.NOP and pins["cs_n"] == 1
