"""Shared stream drivers for the Amaranth testbenches: a seeded pause generator, a source and a sink.

The idea is cocotbext-axi's: every stream of a testbench is driven under an "idle" pause generator
(random cycles with `valid` low before a transfer) and every output under a "backpressure" one
(random cycles with `ready` low), and every test also runs with neither. Everything here is plain
Amaranth 0.5 async-testbench code: functions take the simulator context `ctx` and an
`amaranth.lib.stream` interface (anything with `valid`, `ready` and `payload`).

Handshake rules (amaranth.lib.stream) relied on and checked here:

- A transfer happens on a clock edge where `valid` and `ready` are both high.
- The source (`send`) raises `valid` with a payload and keeps both unchanged until the transfer;
  it never withdraws an offered payload. Idle cycles come only *between* transfers.
- The sink (`receive`) may raise and lower `ready` freely; `ready` never depends on `valid` here.
- With `check_hold`, `receive` (through `HoldCheck`, which a hand-written cycle-by-cycle sink can
  call too) asserts the rule the DUT must obey as a source: once `valid` is high
  in a cycle without the transfer (`ready` low), the next cycle still has `valid` high and the same
  payload ("valid dropped before ready" / "payload changed while stalled").
- A transfer that does not happen within `timeout` cycles fails with an AssertionError naming the
  stream and the transfer, instead of hanging the simulation.
"""
from __future__ import annotations

import random

#: cycles one transfer may wait for its handshake before the test fails (a lost transfer)
TIMEOUT = 10_000


class Pauses:
    """A seeded pause generator.

    `p` is the probability of a stall. `next()` gives the idle cycles before the next transfer:
    geometric (each further idle cycle with probability `p`) or, with `burst`, with probability `p`
    a burst of 1..`burst` cycles. `stall()` is one Bernoulli draw, for sinks that decide `ready`
    cycle by cycle. With `p == 0` nothing is drawn and there are no pauses.
    """

    def __init__(self, seed=0, p: float = 0.0, *, burst: int | None = None):
        if not 0.0 <= p < 1.0:               # p = 1 would pause forever
            raise ValueError(f"pause probability must be in [0, 1), got {p!r}")
        self.p = p
        self.burst = burst
        self.rng = random.Random(seed)

    def stall(self) -> bool:
        return bool(self.p) and self.rng.random() < self.p

    def next(self) -> int:
        if self.burst is not None:
            return self.rng.randint(1, self.burst) if self.stall() else 0
        n = 0
        while self.stall():
            n += 1
        return n


NO_PAUSES = Pauses()


class HoldCheck:
    """The hold rule for a stream's source, fed the values sampled on every clock edge in order:
    a payload offered (`valid`) but not taken (`ready` low) is still offered, unchanged, on the next
    edge. `receive` uses one; a hand-written sink calls it once per cycle."""

    def __init__(self, name: str = "stream"):
        self.name = name
        self.held = None

    def __call__(self, valid, ready, payload) -> None:
        if self.held is not None:
            assert valid, f"{self.name}.valid dropped before {self.name}.ready"
            assert payload == self.held, f"{self.name}.payload changed while stalled"
        self.held = payload if valid and not ready else None


async def send(ctx, stream, payloads, pauses: Pauses = NO_PAUSES, *, name: str = "stream",
               timeout: int = TIMEOUT) -> None:
    """Drive `payloads` (anything `ctx.set` takes for `stream.payload`) into `stream` in order.

    Before each transfer `pauses.next()` idle cycles with `valid` low; then `valid` and the payload
    are held until `ready` is sampled high on a clock edge; `valid` is low again when this returns.
    """
    for k, payload in enumerate(payloads):
        idle = pauses.next()
        if idle:
            ctx.set(stream.valid, 0)
            await ctx.tick().repeat(idle)
        ctx.set(stream.payload, payload)
        ctx.set(stream.valid, 1)
        ticks = ctx.tick().sample(stream.ready).__aiter__()  # one trigger per wait, as `until` does
        try:
            for _ in range(timeout):
                _, _, ready = await ticks.__anext__()
                if ready:
                    break
            else:
                raise AssertionError(f"{name}: transfer {k} not accepted within {timeout} cycles")
        finally:
            await ticks.aclose()
        ctx.set(stream.valid, 0)


async def receive(ctx, stream, n: int, pauses: Pauses = NO_PAUSES, *, check_hold: bool = True,
                  name: str = "stream", timeout: int = TIMEOUT) -> list:
    """Accept `n` transfers from `stream` and return their payloads (sampled values), in order.

    Before each transfer `pauses.next()` cycles with `ready` low (backpressure); then `ready` is
    high until the transfer, and low again after it (and when this returns). With `check_hold`,
    every cycle is checked against the hold rule in the module docstring.
    """
    got = []
    hold = HoldCheck(name) if check_hold else None
    for k in range(n):
        ctx.set(stream.ready, 0)
        stall = pauses.next()
        if stall and not check_hold:
            await ctx.tick().repeat(stall)
        elif stall:
            ticks = ctx.tick().sample(stream.valid, stream.payload).__aiter__()
            try:
                for _ in range(stall):
                    _, _, valid, payload = await ticks.__anext__()
                    hold(valid, 0, payload)
            finally:
                await ticks.aclose()
        ctx.set(stream.ready, 1)
        ticks = ctx.tick().sample(stream.valid, stream.payload).__aiter__()
        try:
            for _ in range(timeout):
                _, _, valid, payload = await ticks.__anext__()
                if hold is not None:
                    hold(valid, 1, payload)
                if valid:
                    break
            else:
                raise AssertionError(f"{name}: transfer {k} of {n} not offered within {timeout} cycles")
        finally:
            await ticks.aclose()
        got.append(payload)
    ctx.set(stream.ready, 0)
    return got


async def assert_quiet(ctx, stream, cycles: int, message: str) -> None:
    """With `ready` high, `valid` stays low for `cycles` cycles: nothing extra comes out."""
    ctx.set(stream.ready, 1)
    for _ in range(cycles):
        await ctx.tick()
        assert not ctx.get(stream.valid), message
