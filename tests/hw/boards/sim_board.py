"""The board design in the Amaranth simulator behind a byte port: `SimBoard(top)` has
``write(bytes)`` and ``read(n)`` like a serial port, so sw.board_host drives it exactly as it drives
a board. Bytes cross hw.boards.top.BoardTop's `rx` / `tx` pins through the bit-level UART model
(tests/hw/boards/uart_model.py, strict: every bit constant over its `divisor` cycles).

`read(n)` runs the simulation until n bytes came back; more than `max_cycles` cycles in one read
raise sw.device.DeviceError (a hung design fails, it does not hang the test).
"""
from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

from sw.device import DeviceError
from tests.hw.boards.uart_model import drive_frame, read_frame

PERIOD = 1e-8
#: cycles between looks at the host's queue while the line is idle
POLL = 64


class SimBoard:
    def __init__(self, top, *, max_cycles: int = 500_000, chunk: int = 2048, idle_bits=None):
        self.top = top
        self.max_cycles = max_cycles
        self.chunk = chunk
        self.idle_bits = idle_bits          # callable -> idle bit times before each frame (None: 0)
        self.txq: deque[int] = deque()      # host -> board bytes not yet on the line
        self.rxq = bytearray()              # board -> host bytes received
        self.cycles = 0
        self.sim = Simulator(top)
        self.sim.add_clock(PERIOD)
        self.sim.add_testbench(self._drive)
        self.sim.add_testbench(self._listen, background=True)

    async def _drive(self, ctx) -> None:
        d = self.top.divisor
        ctx.set(self.top.rx, 1)
        while True:
            if not self.txq:
                await ctx.delay(POLL * PERIOD)      # not tick().repeat: an unfinished one warns when collected
                await ctx.tick()
                continue
            idle = self.idle_bits() if self.idle_bits is not None else 0
            for _ in range(idle * d):
                await ctx.tick()
            await drive_frame(ctx, self.top.rx, self.txq.popleft(), d)

    async def _listen(self, ctx) -> None:
        while True:
            b = await read_frame(ctx, self.top.tx, self.top.divisor)
            self.rxq.append(b)

    # -- the byte port ------------------------------------------------------------------------------
    def write(self, data: bytes) -> int:
        self.txq.extend(bytes(data))
        return len(data)

    def read(self, n: int) -> bytes:
        start = self.cycles
        while len(self.rxq) < n:
            if self.cycles - start > self.max_cycles:
                raise DeviceError(f"the simulated board sent {len(self.rxq)} of {n} bytes in {self.max_cycles} cycles")
            self.cycles += self.chunk
            self.sim.run_until(self.cycles * PERIOD)
        out = bytes(self.rxq[:n])
        del self.rxq[:n]
        return out

    def run(self, cycles: int) -> None:
        """Let `cycles` clock cycles pass (the host silent)."""
        self.cycles += cycles
        self.sim.run_until(self.cycles * PERIOD)
