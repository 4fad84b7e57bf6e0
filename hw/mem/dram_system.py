"""A simulated DDR4 memory system: controllers, DFI-side DRAM models and (optionally) the streamer.

    DramSystem(ch, channels=1, frontend="native")     port: the controller's native line port
    DramSystem(ch, channels=4, frontend="streamer", beat_lines=4)
                                                      port: the memory port (hw/mem/port.py)

Per channel i the system has one `hw.mem.ddr4.Controller` whose DFI drives one
`hw.mem.dram_model.DramModel` (a rank with the JEDEC checker). The models' backing stores are served
by the harness through `store{i}` (hw/mem/dfi.py StorePortSignature), and `stat{i}` shows the
model's checker and counters and the controller's refresh state. This is the simulation top used by
the cocotb/Verilator harness (sim/rtl/tb_dram.py), the benchmarks (sim/benches/dram.py) and, in issue
#6, the full-system harness; it is not meant for an FPGA (the model is sim-only).
"""
from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from spec.dram import Channel, check_channels

from .dfi import NativePortSignature, StorePortSignature
from .port import MemPortSignature

__all__ = ["MODEL_STATUS", "DramSystem", "StatusSignature"]


#: the DRAM model's status outputs that the system shows per channel (the model defines them)
MODEL_STATUS = ("violation", "rules", "violations", "clock", "reads", "writes", "acts", "refs", "ref_debt",
                "max_ref_debt", "init_done", "trace_any", "trace")


def StatusSignature(ch: Channel) -> wiring.Signature:
    """A channel's status: the model's checker, counters and trace, the controller's ready and
    refresh count (shapes taken from the two components' signatures)."""
    from .ddr4 import Controller
    from .dram_model import DramModel
    model, ctrl = DramModel(ch), Controller(ch)
    model._MustUse__silence = ctrl._MustUse__silence = True     # built only to read their signatures
    model, ctrl = model.signature.members, ctrl.signature.members
    members = {n: Out(model[n].shape) for n in MODEL_STATUS}
    members.update(ready=Out(ctrl["ready"].shape), refreshes=Out(ctrl["refreshes"].shape))
    return wiring.Signature(members)


class DramSystem(wiring.Component):
    def __init__(self, ch: Channel, channels: int = 1, *, frontend: str = "native", beat_lines: int = 1,
                 interleave: int = 1, max_inflight: int = 256, controller: dict | None = None):
        if frontend not in ("native", "streamer"):
            raise ValueError(f"frontend {frontend!r}: valid are 'native' and 'streamer'")
        check_channels(channels)
        if frontend == "native" and channels != 1:
            raise ValueError("the native frontend exposes one controller port: use channels=1 or frontend='streamer'")
        self.ch, self.channels, self.frontend = ch, channels, frontend
        self.beat_lines, self.interleave, self.max_inflight = beat_lines, interleave, max_inflight
        self.controller_args = dict(controller or {})
        members = {"port": wiring.In(NativePortSignature(ch) if frontend == "native"
                                     else MemPortSignature(ch.line_bytes * beat_lines))}
        for i in range(channels):
            members[f"store{i}"] = Out(StorePortSignature(ch))
            members[f"stat{i}"] = Out(StatusSignature(ch))
        super().__init__(members)

    def elaborate(self, platform):
        from .ddr4 import Controller
        from .dram_model import DramModel

        m = Module()
        ctrls = []
        for i in range(self.channels):
            ctrl = Controller(self.ch, **self.controller_args)
            model = DramModel(self.ch)
            m.submodules[f"ctrl{i}"] = ctrl
            m.submodules[f"model{i}"] = model
            ctrls.append(ctrl)
            wiring.connect(m, ctrl.dfi, model.dfi)
            wiring.connect(m, wiring.flipped(getattr(self, f"store{i}")), model.store)
            st = getattr(self, f"stat{i}")
            for name in MODEL_STATUS:
                m.d.comb += getattr(st, name).eq(getattr(model, name))
            m.d.comb += [st.ready.eq(ctrl.ready), st.refreshes.eq(ctrl.refreshes)]
        if self.frontend == "native":
            wiring.connect(m, wiring.flipped(self.port), ctrls[0].port)
        else:
            from .streamer import Streamer
            s = Streamer(self.ch, self.channels, interleave=self.interleave, max_inflight=self.max_inflight,
                         beat_lines=self.beat_lines)
            m.submodules.streamer = s
            wiring.connect(m, wiring.flipped(self.port), s.port)
            for i in range(self.channels):
                wiring.connect(m, s.channel_ports[i], ctrls[i].port)
        return m
