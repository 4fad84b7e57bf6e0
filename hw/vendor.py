"""The accelerator for a vendor FPGA flow: hw.top.Accelerator with its memory port on the Avalon-MM
(Intel EMIF) or the AXI4 (AMD/Xilinx MIG) adapter, one Verilog module to put next to the vendor's
DDR4 controller IP. `make verilog TARGET=d5005|mig` writes it (hw/gen.py); docs/vendor-ddr4.md
says how to instantiate it.

    top = VendorTop(TARGETS["d5005"], get_config("ddr4"), rom=program)

Ports: every port of the Accelerator except `mem` (tok_in[k], tok_out[k], rom_wr, start,
state_base, state_stride, halted, fault, waiting, busy, cycles), under the same names, and `bus`,
the adapter's bus (hw/mem/avalon.py AvalonMMSignature or hw/mem/axi.py Axi4Signature: their
docstrings define every signal); the AXI target adds `mem_error` (the adapter's sticky error). One
clock `clk` and one synchronous active-high reset `rst`: the controller's user clock and its
reset, so there is no clock crossing.

A target names the controller IP's user-side port for each bus signal (`ip_ports`, the names a
default-named IP instance has) and whether the signal is inverted (EMIF's `amm_ready` is Avalon's
waitrequest_n); hw/gen.py writes an instantiation example from that map and the generated
Verilog's port list, so the example never names a port the module does not have.
"""
from __future__ import annotations

import dataclasses
import re

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out, connect, flipped

from hw.mem.avalon import AvalonAdapter
from hw.mem.axi import AxiAdapter
from hw.top import Accelerator
from spec.accel import AccelConfig

__all__ = ["TARGETS", "VendorTarget", "VendorTop", "get_target", "instantiation_example", "verilog_ports"]


@dataclasses.dataclass(frozen=True)
class VendorTarget:
    name: str
    title: str               # the controller IP, short
    bus: str                 # "avalon" | "axi"
    config: str              # the default accelerator config (spec.accel.CONFIGS)
    fpga: str                # what the target is for (docs)
    ip: str                  # the memory controller IP and its user interface
    clock: str               # the IP's user clock and reset the module runs on
    adapter: tuple[tuple[str, int], ...]          # adapter keyword arguments
    #: bus signal (without `bus__`) -> (the IP's port, inverted?)
    ip_ports: tuple[tuple[str, str, bool], ...]
    #: the IP's clock and reset ports, whether its reset is active low, and its "calibration done"
    #: output (the module is held in reset until the memory is calibrated)
    ip_clock: str = ""
    ip_reset: str = ""
    ip_reset_active_low: bool = False
    ip_calibrated: str = ""


_EMIF = tuple((sig, f"amm_{ip}_0", inv) for sig, ip, inv in (
    ("address", "address", False), ("burstcount", "burstcount", False), ("read", "read", False),
    ("write", "write", False), ("writedata", "writedata", False), ("byteenable", "byteenable", False),
    ("waitrequest", "ready", True), ("readdata", "readdata", False), ("readdatavalid", "readdatavalid", False)))

_AXI_SIGNALS = ("araddr", "arlen", "arsize", "arburst", "arid", "arvalid", "arready",
                "rdata", "rresp", "rlast", "rid", "rvalid", "rready",
                "awaddr", "awlen", "awsize", "awburst", "awid", "awvalid", "awready",
                "wdata", "wstrb", "wlast", "wvalid", "wready",
                "bresp", "bid", "bvalid", "bready")
_MIG = tuple((sig, f"c0_ddr4_s_axi_{sig}", False) for sig in _AXI_SIGNALS)

#: The vendor targets `make verilog TARGET=...` knows.
TARGETS: dict[str, VendorTarget] = {
    "d5005": VendorTarget(
        "d5005", "Intel EMIF (Stratix 10) DDR4", "avalon", "ddr4",
        fpga="Intel Stratix 10 SX (Intel FPGA PAC D5005: four DDR4-2400 x64 banks; one bank per module)",
        ip="Intel External Memory Interfaces (EMIF) for Stratix 10, DDR4, Avalon-MM user interface "
           "(word addressing, burstcount up to 64)",
        clock="the EMIF's user clock emif_usr_clk (300 MHz for DDR4-2400 at quarter rate) and its reset",
        adapter=(("max_burst", 64), ("max_pending", 256)),
        ip_ports=_EMIF, ip_clock="emif_usr_clk", ip_reset="emif_usr_reset_n", ip_reset_active_low=True,
        ip_calibrated="local_cal_success"),
    "mig": VendorTarget(
        "mig", "AMD/Xilinx DDR4 SDRAM (MIG)", "axi", "ddr4",
        fpga="AMD/Xilinx UltraScale and UltraScale+ FPGAs with the DDR4 SDRAM (MIG) IP",
        ip="DDR4 SDRAM (MIG) with the AXI4 slave interface (4-bit ID, 32-bit byte address or "
           "narrower: the IP takes the low bits)",
        clock="the MIG's user clock c0_ddr4_ui_clk (300 MHz for DDR4-2400 at 4:1) and c0_ddr4_ui_clk_sync_rst",
        adapter=(("max_pending", 256), ("id_width", 4)),
        ip_ports=_MIG, ip_clock="c0_ddr4_ui_clk", ip_reset="c0_ddr4_ui_clk_sync_rst",
        ip_calibrated="c0_init_calib_complete"),
}


def get_target(name: str) -> VendorTarget:
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown vendor target {name!r}; valid: {', '.join(TARGETS)}") from None


class VendorTop(wiring.Component):
    """Accelerator + the target's memory adapter (module docstring)."""

    def __init__(self, target: VendorTarget, config: AccelConfig, rom=()):
        if not isinstance(target, VendorTarget):
            raise ValueError(f"target must be a VendorTarget, got {target!r}")
        self.target = target
        self.acc = Accelerator(config, rom)
        kw = dict(target.adapter)
        if target.bus == "avalon":
            self.adapter = AvalonAdapter(config.beat_bytes, **kw)
        elif target.bus == "axi":
            self.adapter = AxiAdapter(config.beat_bytes, **kw)
        else:
            raise ValueError(f"target {target.name}: unknown bus {target.bus!r} (avalon, axi)")
        members = {name: m for name, m in self.acc.signature.members.items() if name != "mem"}
        members["bus"] = self.adapter.signature.members["bus"]
        if target.bus == "axi":
            members["mem_error"] = Out(1)
        super().__init__(members)

    @property
    def config(self) -> AccelConfig:
        return self.acc.config

    def elaborate(self, platform):
        m = Module()
        m.submodules.acc = acc = self.acc
        m.submodules.adapter = ad = self.adapter
        connect(m, acc.mem, ad.port)
        connect(m, ad.bus, flipped(self.bus))
        if self.target.bus == "axi":
            m.d.comb += self.mem_error.eq(ad.error)
        for name, member in acc.signature.members.items():
            if name == "mem":
                continue
            outer, inner = getattr(self, name), getattr(acc, name)
            if member.is_port:
                m.d.comb += (inner.eq(outer) if member.flow == In else outer.eq(inner))
                continue
            pairs = zip(outer, inner, strict=True) if member.dimensions else [(outer, inner)]
            for o, i in pairs:
                if member.flow == In:
                    connect(m, flipped(o), i)
                else:
                    connect(m, i, flipped(o))
        return m


_PORT_RE = re.compile(r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s+)?(\w+)\s*;", re.M)


def verilog_ports(text: str) -> list[tuple[str, str, int]]:
    """(direction, name, width) of the first module's ports in Amaranth's Verilog `text`."""
    end = text.find("endmodule")
    ports = []
    for d, hi, lo, name in _PORT_RE.findall(text[:end if end >= 0 else None]):
        ports.append((d, name, abs(int(hi) - int(lo)) + 1 if hi else 1))
    if not ports:
        raise ValueError("no port declarations found in the Verilog text")
    return ports


def instantiation_example(target: VendorTarget, module: str, ports: list[tuple[str, str, int]]) -> str:
    """A Verilog instantiation of `module` wired to the target's controller IP: the bus onto the IP's
    user-side ports, clock and reset from the IP, the other ports onto `acc_<name>` wires of the
    user's design."""
    ip = {f"bus__{sig}": (port, inv) for sig, port, inv in target.ip_ports}
    missing = sorted(set(ip) - {n for _, n, _ in ports})
    if missing:
        raise ValueError(f"target {target.name}: the module has no port(s) {', '.join(missing)}")
    rst = f"~{target.ip_reset}" if target.ip_reset_active_low else target.ip_reset
    if target.ip_calibrated:
        rst = f"{rst} | ~{target.ip_calibrated}"
    lines = [f"// {module} on the {target.ip}.",
             f"// Clock and reset: {target.clock}; held in reset until the memory is calibrated.",
             "// IP port names are those of a default-named IP instance: check them against your IP's",
             "// generated module. Ports not on the bus go to wires of your design (acc_*).",
             f"{module} u_{module} ("]
    conns = []
    for _d, name, _w in ports:
        if name == "clk":
            conns.append(f".clk({target.ip_clock})")
        elif name == "rst":
            conns.append(f".rst({rst})")
        elif name in ip:
            port, inv = ip[name]
            sig = f"~{port}" if inv else port
            conns.append(f".{name}({sig})")
        else:
            conns.append(f".{name}(acc_{name})")
    widths = {name: (d, w) for d, name, w in ports}
    for i, c in enumerate(conns):
        name = c[1:c.index("(")]
        d, w = widths[name]
        lines.append(f"    {c}{',' if i < len(conns) - 1 else ''}  // {d} [{w}]")
    lines.append(");")
    return "\n".join(lines) + "\n"
