"""The DDR4 refresher: one REF falls due every tREFI; postponement credit; early refresh when idle.

The refresher keeps the controller's view of the refresh debt (`debt`: REFs due and not yet
issued; one falls due every tREFI clocks from `enable`) and asks the scheduler for
the bus (`want`):

- while there is traffic, refreshes are postponed until the debt reaches `postpone` (below JEDEC's
  REFRESH_CREDIT of 8: the DRAM may owe at most 8);
- then it forces: `want` stays high (the scheduler stops new ACTs and CASes, precharges all banks
  and issues REFs back to back, tRFC apart) until the debt is down to `low`; an endless stream of
  row hits cannot hold it off, because the scheduler stops CASes while `want` is high;
- when the controller has had no request for `idle_delay` cycles, it refreshes what is owed (down
  to zero, never ahead of time).

`refreshes` counts REFs issued; `ref_issued` is the scheduler's REF strobe; `enable` starts the
tREFI count (the controller raises it after the init's ZQCL, where the DRAM model starts its own).
"""
from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spec.dram import Channel

__all__ = ["Refresher", "check_refresh_args"]


def check_refresh_args(ch: Channel, postpone: int, low: int, idle_delay: int) -> None:
    """ValueError unless the thresholds make sense for `ch`."""
    credit = ch.timing.REFRESH_CREDIT
    if not 1 <= postpone < credit:
        raise ValueError(f"refresh postpone threshold {postpone}: must be in 1 .. {credit - 1} (below the "
                         f"REFRESH_CREDIT of {credit})")
    if not 0 <= low < postpone:
        raise ValueError(f"refresh low threshold {low}: must be in 0 .. {postpone - 1}")
    if idle_delay < 1:
        raise ValueError(f"idle_delay {idle_delay}: must be >= 1")


class Refresher(wiring.Component):
    def __init__(self, ch: Channel, *, postpone: int = 6, low: int = 2, idle_delay: int = 16):
        check_refresh_args(ch, postpone, low, idle_delay)
        self._ch, self._postpone, self._low, self._idle_delay = ch, postpone, low, idle_delay
        super().__init__({
            "enable": In(1), "idle": In(1), "ref_issued": In(1),
            "want": Out(1), "forcing": Out(1), "debt": Out(signed(8)), "refreshes": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        trefi = self._ch.timing.tREFI
        refi = Signal(range(trefi + 1), init=trefi)     # clocks until the next REF falls due
        due = Signal()
        idle_cnt = Signal(range(self._idle_delay + 1))
        with m.If(self.enable):
            with m.If(refi <= 4):
                m.d.comb += due.eq(1)
                m.d.sync += refi.eq(refi + (trefi - 4))
            with m.Else():
                m.d.sync += refi.eq(refi - 4)
        m.d.sync += self.debt.eq(self.debt + due - self.ref_issued)
        with m.If(self.ref_issued):
            m.d.sync += self.refreshes.eq(self.refreshes + 1)
        with m.If(~self.idle):
            m.d.sync += idle_cnt.eq(0)
        with m.Elif(idle_cnt != self._idle_delay):
            m.d.sync += idle_cnt.eq(idle_cnt + 1)
        with m.If(self.debt >= self._postpone):
            m.d.sync += self.forcing.eq(1)
        with m.Elif(self.debt <= self._low):
            m.d.sync += self.forcing.eq(0)
        forced = (self.forcing | (self.debt >= self._postpone)) & (self.debt > self._low)
        idle = (idle_cnt == self._idle_delay) & (self.debt > 0)
        m.d.comb += self.want.eq(self.enable & (forced | idle))
        return m
