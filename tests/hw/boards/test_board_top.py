"""hw.boards.top: the board design run through its UART pins (tests/hw/boards/sim_board.py: the
bit-level UART model behind a byte port) by sw.board_host, token in, tokens out, bit-exact
against the golden machine (sw.device's golden backend) on the same image and program.

Vectors: the `tiny` preset with seeded random parameters (sim.backends.amaranth.random_image) on the
ecp5 config at vlen 256 (the default run), and the trained demo model (sw.artifacts.prepare("demo"))
on the ecp5 config (slow; its image needs a memory larger than an ECP5-85F's block RAM, which is
fine in simulation).
"""
from __future__ import annotations

import dataclasses
import random
import time

import pytest

from golden.machine import default_state_bytes
from hw.boards.top import BoardTop
from spec import host_link as HL
from spec import weight_image as wi
from spec.accel import get_config
from sw.board_host import BoardDevice, BoardLink
from sw.compile import compile_model
from sw.device import DeviceError, open_device
from tests.hw.boards.sim_board import SimBoard

DIVISOR = 6          # clock cycles per UART bit in simulation
GAP_BITS = 40        # the request gap rule, shortened for simulation


def _board(image_path, cfg, *, idle_bits=None):
    img = wi.read_image(image_path)
    words = compile_model(img, vlen=cfg.vlen).words
    raw = bytes(img.file_bytes())
    top = BoardTop(cfg, raw, words, clk_freq=DIVISOR * HL.DEFAULT_BAUD, state_bytes=default_state_bytes(img.model),
                   divisor=DIVISOR, gap_bits=GAP_BITS)
    return top, words, SimBoard(top, idle_bits=idle_bits)


def _tiny():
    from sw.artifacts import random_image
    cfg = dataclasses.replace(get_config("ecp5"), vlen=256)
    return random_image(cfg, "tiny"), cfg


def test_tiny_model_over_uart_matches_golden():
    """One board simulation (its elaboration is most of the cost): the link's errors reach the
    host and leave the board usable, then a greedy sequence, OP_RESET and a second sequence,
    every token equal to the golden machine's."""
    path, cfg = _tiny()
    rng = random.Random(3)
    top, words, port = _board(path, cfg, idle_bits=lambda: rng.choice([0, 0, 1, 3]))
    link = BoardLink(port, resync=False)
    assert link.reset() == HL.PROTOCOL_VERSION
    port.write(bytes([0x51, 0, 0, 0, 0]))                       # unknown opcode
    with pytest.raises(DeviceError, match="unknown request opcode"):
        link._response()
    port.write(b"T\x01")                                       # a partial request, then silence
    port.run(GAP_BITS * DIVISOR * 2)
    assert link.reset() == HL.PROTOCOL_VERSION                 # dropped: the reset frame is read whole
    t0 = time.perf_counter()
    with BoardDevice(path, cfg, program=words, port=port) as dev:
        run = dev.generate([[1]], 1)
        # a second sequence after OP_RESET starts from a zeroed state: the first token again
        run2 = dev.generate([[1]], 0)
    wall = time.perf_counter() - t0
    gold = open_device("golden", path, cfg, program=words).generate([[1]], 1)
    assert run.tokens == gold.tokens, f"board {run.tokens} golden {gold.tokens}"
    assert run2.tokens[0] == gold.tokens[0][:1]
    assert all(c > 1000 for c in run.token_cycles[0]), run.token_cycles
    print(f"tiny over UART: {len(run.tokens[0])} steps, cycles/step {run.token_cycles[0]}, "
          f"{port.cycles} simulated cycles in {wall:.1f} s")


@pytest.mark.slow
def test_demo_model_over_uart_matches_golden():
    from sw.artifacts import prepare
    p = prepare("demo", config="ecp5", log=lambda *a: None)
    top, words, port = _board(p.image_path, p.config)
    assert words == list(p.program)
    prompt = [1, 450]
    t0 = time.perf_counter()
    with BoardDevice(p.image_path, p.config, program=words, port=port) as dev:
        run = dev.generate([prompt], 2)
    wall = time.perf_counter() - t0
    gold = open_device("golden", p.image_path, p.config, program=words).generate([prompt], 2)
    assert run.tokens == gold.tokens, f"board {run.tokens} golden {gold.tokens}"
    print(f"demo over UART: tokens {run.tokens[0]}, cycles/step {run.token_cycles[0]}, "
          f"{port.cycles} simulated cycles in {wall:.1f} s")
