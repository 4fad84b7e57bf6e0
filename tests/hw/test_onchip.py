# amaranth: UnusedElaboratable=no
"""hw.mem.onchip: the block-RAM memory-port responder against a bytearray model (reads, masked
writes, bursts), commands and data driven by separate processes under random idle cycles and
backpressure; `clear` zeroes the state region; out-of-range commands set `error`."""
from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from hw.mem.onchip import OnChipMemory
from sim.tb.streams import Pauses, receive, send

BEAT = 8
LINES = 48


def _commands(rng: random.Random, n: int, lines: int, beat: int, model: bytearray):
    """Random commands and, per command, the beats to write or the beats a read must return
    (computed in command order on `model`, the naive memory)."""
    cmds = []
    for _ in range(n):
        length = rng.choice([1, 1, 2, 3, rng.randint(1, 12)])
        line = rng.randrange(lines - length + 1)
        if rng.random() < 0.45:
            beats = []
            for j in range(length):
                data = rng.getrandbits(8 * beat)
                mask = rng.choice([(1 << beat) - 1, 0, rng.getrandbits(beat)])
                beats.append({"data": data, "mask": mask})
                raw = data.to_bytes(beat, "little")
                a = (line + j) * beat
                for i in range(beat):
                    if (mask >> i) & 1:
                        model[a + i] = raw[i]
            cmds.append(({"addr": line, "len": length, "write": 1}, beats))
        else:
            want = [int.from_bytes(model[(line + j) * beat:(line + j + 1) * beat], "little") for j in range(length)]
            cmds.append(({"addr": line, "len": length, "write": 0}, want))
    return cmds


def _run(dut, processes, limit_s: float = 1e-3) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for p in processes:
        sim.add_testbench(p)
    sim.run_until(limit_s)


@pytest.mark.parametrize("p,bank_lines", [(0.0, 512), (0.3, 512), (0.7, 512), (0.3, 8), (0.7, 16)])
def test_reads_and_masked_writes_match_the_model(p, bank_lines):
    """One bank (the default bank size) and several (48 lines in banks of 8 or 16)."""
    rng = random.Random(int(p * 100) + bank_lines)
    init = bytes(rng.getrandbits(8) for _ in range(LINES * BEAT - 5))      # not a whole line: padded
    model = bytearray(init) + bytearray(5)
    dut = OnChipMemory(BEAT, init, bank_lines=bank_lines)
    assert dut.depth == LINES
    cmds = _commands(rng, 150, LINES, BEAT, model)
    done = []

    async def commands(ctx):
        await send(ctx, dut.port.cmd, [c for c, _ in cmds], Pauses(rng.random(), p), name="cmd")

    async def data(ctx):
        for k, (c, beats) in enumerate(cmds):
            if c["write"]:
                await send(ctx, dut.port.wr, beats, Pauses(k, p), name="wr")
            else:
                got = await receive(ctx, dut.port.rd, c["len"], Pauses(k, p), name="rd")
                assert [int(g.data) for g in got] == beats, f"command {k} {c}: read data differs"
        assert not ctx.get(dut.error)
        done.append(True)

    _run(dut, [commands, data])
    assert done, "the commands did not finish"


def test_back_to_back_reads_stream_one_beat_per_cycle():
    init = bytes(range(256)) * 2
    dut = OnChipMemory(BEAT, init)
    cycles = []

    async def bench(ctx):
        ctx.set(dut.port.rd.ready, 1)
        await send(ctx, dut.port.cmd, [{"addr": 0, "len": 16, "write": 0}])
        n = 0
        while n < 16:
            await ctx.tick()
            cycles.append(ctx.get(dut.port.rd.valid))
            n += ctx.get(dut.port.rd.valid)
            if ctx.get(dut.port.rd.valid):
                want = int.from_bytes(init[(n - 1) * BEAT:n * BEAT], "little")
                assert ctx.get(dut.port.rd.payload.data) == want

    _run(dut, [bench])
    assert cycles[-16:] == [1] * 16, "a burst's beats are not back to back"


@pytest.mark.parametrize("bank_lines", [512, 16])
def test_clear_zeroes_from_clear_from_and_keeps_the_rest(bank_lines):
    rng = random.Random(5)
    init = bytes(rng.getrandbits(8) for _ in range(LINES * BEAT))
    dut = OnChipMemory(BEAT, init, clear_from=40 * BEAT, bank_lines=bank_lines)

    async def bench(ctx):
        # a read in progress is aborted by clear
        await send(ctx, dut.port.cmd, [{"addr": 2, "len": 20, "write": 0}])
        await ctx.tick().repeat(3)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        assert ctx.get(dut.clearing) and not ctx.get(dut.port.cmd.ready)
        n = 0
        while ctx.get(dut.clearing):
            await ctx.tick()
            n += 1
        assert n == LINES - 40
        await send(ctx, dut.port.cmd, [{"addr": 0, "len": LINES, "write": 0}])
        got = await receive(ctx, dut.port.rd, LINES, Pauses(3, 0.3))
        want = [int.from_bytes(init[i * BEAT:(i + 1) * BEAT], "little") if i < 40 else 0 for i in range(LINES)]
        assert [int(g.data) for g in got] == want

    _run(dut, [bench])


def test_out_of_range_command_sets_error():
    dut = OnChipMemory(BEAT, bytes(16 * BEAT))

    async def bench(ctx):
        await send(ctx, dut.port.cmd, [{"addr": 14, "len": 2, "write": 0}])
        await receive(ctx, dut.port.rd, 2)
        assert not ctx.get(dut.error)
        await send(ctx, dut.port.cmd, [{"addr": 15, "len": 2, "write": 1}])
        await send(ctx, dut.port.wr, [{"data": 1, "mask": 0xFF}] * 2)
        await ctx.tick()
        assert ctx.get(dut.error)

    _run(dut, [bench])


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="too small"):
        OnChipMemory(8, bytes(100), depth=12)
    with pytest.raises(ValueError, match="clear_from"):
        OnChipMemory(8, bytes(64), clear_from=12)
    with pytest.raises(ValueError, match="power of two"):
        OnChipMemory(12, bytes(64))
    with pytest.raises(ValueError, match="bank_lines"):
        OnChipMemory(8, bytes(64), bank_lines=12)
