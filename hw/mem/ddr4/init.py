"""The DDR4 power-up and initialisation sequence (JESD79-4 section 3.3.1), in controller cycles.

    RESET_n low, CKE low           >= ch.t_reset clocks
    RESET_n high, CKE low          >= ch.t_cke clocks
    CKE high, DES                  >= tXPR
    MRS MR3, MR6, MR5, MR4, MR2, MR1, MR0 (values spec.dram.mode_registers), tMRD apart
    tMOD after the last MRS: ZQCL
    tZQinit after ZQCL, and tDLLK after MR0 (DLL reset) before the first RD/WR: `done`

Each wait is rounded up to whole cycles plus one cycle of margin for the power-up waits (RESET_n and
CKE change per cycle). `zq_issued` rises the cycle after the ZQCL (the refresh interval counts
from there, as the DRAM model's does). Commands go on phase 0 (`cmd_valid`: an MRS (`cmd_mrs`) of `value` to
register `mr`, or a ZQCL); the controller puts them on the DFI.
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from spec.dram import Channel, mode_registers

__all__ = ["InitSequencer", "init_steps"]

MRS_ORDER = (3, 6, 5, 4, 2, 1, 0)


def _cycles(clocks: int) -> int:
    return max(1, -(-clocks // 4))


def init_steps(ch: Channel) -> list[tuple[int, int, tuple | None, int]]:
    """[(reset_n, cke, command, cycles)]: `command` is ("MRS", mr, value), ("ZQCL",) or None; it
    goes at the first cycle of its step, the step lasts `cycles`."""
    t = ch.timing
    mrs = mode_registers(t)
    steps = [(0, 0, None, _cycles(ch.t_reset) + 1), (1, 0, None, _cycles(ch.t_cke) + 1),
             (1, 1, None, _cycles(t.tXPR) + 1)]
    for i, mr in enumerate(MRS_ORDER):
        last = i == len(MRS_ORDER) - 1
        steps.append((1, 1, ("MRS", mr, mrs[mr]), _cycles(t.tMOD if last else t.tMRD)))
    zq = max(_cycles(t.tZQinit), _cycles(t.tDLLK) - _cycles(t.tMOD))
    steps.append((1, 1, ("ZQCL",), zq + 1))
    return steps


class InitSequencer(wiring.Component):
    """Runs `init_steps(ch)` once after reset; `done` stays high afterwards."""

    def __init__(self, ch: Channel):
        self._ch = ch
        super().__init__({
            "reset_n": Out(1), "cke": Out(1), "done": Out(1), "zq_issued": Out(1),
            "cmd_valid": Out(1), "cmd_mrs": Out(1), "mr": Out(3), "value": Out(18),
        })

    def elaborate(self, platform):
        m = Module()
        steps = init_steps(self._ch)
        step = Signal(range(len(steps) + 1))
        count = Signal(range(max(s[3] for s in steps) + 1))
        with m.Switch(step):
            for i, (reset_n, cke, cmd, cycles) in enumerate(steps):
                with m.Case(i):
                    m.d.comb += [self.reset_n.eq(reset_n), self.cke.eq(cke)]
                    if cmd is not None and cmd[0] == "ZQCL":
                        m.d.comb += self.zq_issued.eq(count != 0)
                    if cmd is not None:
                        m.d.comb += self.cmd_valid.eq(count == 0)
                        if cmd[0] == "MRS":
                            m.d.comb += [self.cmd_mrs.eq(1), self.mr.eq(cmd[1]), self.value.eq(cmd[2])]
                    with m.If(count == cycles - 1):
                        m.d.sync += [step.eq(i + 1), count.eq(0)]
                    with m.Else():
                        m.d.sync += count.eq(count + 1)
            with m.Default():
                m.d.comb += [self.reset_n.eq(1), self.cke.eq(1), self.done.eq(1), self.zq_issued.eq(1)]
        return m
