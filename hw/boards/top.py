"""The board design (DESIGN.md section 9, docs/boards.md): one accelerator core, its memory port on
on-chip RAM holding a weight image and the state region, the program built into the ROM, and a
UART host link speaking spec/host_link.

    uart rx --> UartRx --> HostLink --tok_in--> Accelerator (1 core) --mem--> OnChipMemory
    uart tx <-- UartTx <-- HostLink <-tok_out--/        ^ reset                  ^ clear
                                   \\--clear-------------+-------------------------+

Memory map (the golden machine's, golden/machine.py): the image file's bytes at 0, the core's state
region (`state_bytes`, zero at power-up) at ``state_base = len(image_bytes)``. OP_RESET holds the
accelerator in reset while the memory zeroes the state region, so every sequence starts from the
state of a fresh golden machine.

With a platform (amaranth-boards), `elaborate` runs the `sync` domain at `clk_freq`: the board's
clock as it is when that is its frequency, else an ECP5 PLL from the board clock
(hw/boards/clocks.py). The domain has no reset: the board's (until the PLL locks) is a flip-flop
applied to the link, the memory and the UART, and held in the accelerator's. It uses the
platform's ``uart`` resource; LEDs 0..2, where the board has them, show `waiting`, `fault` and
the memory's out-of-range `error`. Without one (simulation) the pins are the plain
signals `rx` (in) and `tx` (out), with the status signals beside them.
"""
from __future__ import annotations

from collections.abc import Sequence

from amaranth.build import ResourceError
from amaranth.hdl import Elaboratable, Module, ResetInserter, Signal
from amaranth.lib import io
from amaranth.lib.wiring import connect

from hw.boards.link import HostLink
from hw.mem.onchip import OnChipMemory
from hw.mem.port import RegisterSlice
from hw.top import Accelerator
from hw.uart import UartRx, UartTx, divisor_for
from spec import host_link as HL
from spec.accel import AccelConfig

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """The board design (see the module docstring).

    Parameters
    ----------
    config : AccelConfig
        The accelerator's sizes; one core (``config.cores`` must be 1: the board's link serves one).
    image_bytes : bytes
        The weight image file (a multiple of the beat: spec.weight_image images are).
    program_words : sequence of int
        The compiled program, built into the ROM.
    clk_freq : float
        The `sync` clock in Hz (the UART divisor is derived from it).
    baud : int
        UART bit rate (spec.host_link.DEFAULT_BAUD).
    state_bytes : int
        The state region (golden.machine.default_state_bytes of the image's model).
    divisor : int, optional
        Clock cycles per UART bit, instead of ``clk_freq / baud`` (simulation).
    gap_bits : int, optional
        The request gap rule in bit times (spec.host_link.FRAME_GAP_BITS).

    Attributes (without a platform)
    -------------------------------
    rx : Signal, in (idle high)      tx : Signal, out (idle high)
    waiting, fault, halted, mem_error : Signal, out
    """

    def __init__(self, config: AccelConfig, image_bytes: bytes, program_words: Sequence[int], clk_freq: float,
                 baud: int = HL.DEFAULT_BAUD, *, state_bytes: int, divisor: int | None = None,
                 gap_bits: int = HL.FRAME_GAP_BITS):
        if config.cores != 1:
            raise ValueError(f"a board design runs one core, config {config.name} has {config.cores}")
        beat = config.beat_bytes
        image_bytes = bytes(image_bytes)
        if len(image_bytes) % beat or state_bytes % beat or state_bytes <= 0:
            raise ValueError(f"the image ({len(image_bytes)} B) and the state region ({state_bytes} B) must be "
                             f"non-empty multiples of the beat ({beat} B)")
        program_words = [int(w) for w in program_words]
        if len(program_words) > config.rom_words:
            raise ValueError(f"the program has {len(program_words)} words, the ROM {config.rom_words}")
        self.config = config
        self.image_bytes = image_bytes
        self.program = program_words
        self.clk_freq = float(clk_freq)
        self.baud = baud
        self.divisor = divisor_for(clk_freq, baud) if divisor is None else int(divisor)
        self.gap_bits = gap_bits
        self.state_base = len(image_bytes)
        self.state_bytes = state_bytes
        self.mem_bytes = len(image_bytes) + state_bytes
        self.rx = Signal(init=1)
        self.tx = Signal(init=1)
        self.waiting = Signal()
        self.fault = Signal()
        self.halted = Signal()
        self.mem_error = Signal()

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        beat = cfg.beat_bytes
        # the board's reset: with a platform, a flip-flop held until the clock is good (the `sync`
        # domain then has no reset of its own, hw/boards/clocks.py); in simulation the domain's own
        board_rst = None
        if platform is not None:
            from hw.boards.clocks import add_sync_clock
            _, board_rst = add_sync_clock(m, platform, self.clk_freq)

        def board_reset(elaboratable):
            return elaboratable if board_rst is None else ResetInserter(board_rst)(elaboratable)

        acc = Accelerator(cfg, self.program)
        link = HostLink(self.gap_bits * self.divisor, token_bits=len(acc.tok_in[0].payload),
                        tokout_bits=len(acc.tok_out[0].payload))
        mem = OnChipMemory(beat, self.image_bytes + bytes(self.state_bytes), clear_from=self.state_base)
        # the accelerator's reset is a flip-flop that reaches every reset pin of the core (a net
        # of over 12,000 sinks across the device) with no LUT between: it holds the board's reset
        # itself, so the accelerator needs no other (where the domain has one, in simulation,
        # Amaranth ORs the two)
        acc_rst = Signal(init=1)
        m.submodules.acc = ResetInserter(acc_rst)(acc)
        m.submodules.mem = board_reset(mem)
        m.submodules.link = board_reset(link)
        m.submodules.uart_rx = board_reset(rx := UartRx(self.divisor))
        m.submodules.uart_tx = board_reset(tx := UartTx(self.divisor))

        connect(m, acc.mem, mem.port)
        connect(m, rx.o, link.rx)
        connect(m, link.tx, tx.i)
        # the token stream through two register slices: the core's TOKIN decision and the link sit
        # far apart (a routed build's critical path ran link -> core -> link in one cycle; with one
        # slice, a -6 build still spent ~11 ns on a LUT or two and the route from the slice to the
        # core's token buffer), so the placer has a stage to put half-way
        tok_slices = [RegisterSlice(acc.tok_in[0].payload.shape()) for _ in range(2)]
        m.submodules.tok_slice = board_reset(tok_slices[0])
        m.submodules.tok_slice2 = board_reset(tok_slices[1])
        connect(m, link.tok_in, tok_slices[0].i)
        connect(m, tok_slices[0].o, tok_slices[1].i)
        connect(m, tok_slices[1].o, acc.tok_in[0])
        connect(m, acc.tok_out[0], link.tok_out)
        m.d.sync += acc_rst.eq(link.clear | mem.clearing | (0 if board_rst is None else board_rst))
        m.d.comb += [
            mem.clear.eq(link.clear),
            link.clearing.eq(mem.clearing),
            link.rx_frame_error.eq(rx.frame_error),
            link.rx_overrun.eq(rx.overrun),
            link.fault.eq(acc.fault[0]),
            acc.state_base.eq(self.state_base // beat),
            acc.state_stride.eq(self.state_bytes // beat),
            rx.rx.eq(self.rx),
            self.tx.eq(tx.tx),
            self.waiting.eq(acc.waiting[0]),
            self.fault.eq(acc.fault[0]),
            self.halted.eq(acc.halted[0]),
            self.mem_error.eq(mem.error),
        ]

        if platform is not None:
            uart = platform.request("uart", 0, dir="-")
            m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
            m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
            m.d.comb += [self.rx.eq(rx_buf.i), tx_buf.o.eq(self.tx)]
            for i, sig in enumerate((self.waiting, self.fault, self.mem_error)):
                try:
                    led = platform.request("led", i, dir="-")
                except ResourceError:           # the board has fewer LEDs
                    break
                m.submodules[f"led{i}_buf"] = buf = io.Buffer("o", led)
                # from a flip-flop: `waiting` is decoded in the core, across the device from the pin
                led_r = Signal(name=f"led{i}_r")
                m.d.sync += led_r.eq(sig)
                m.d.comb += buf.o.eq(led_r)
        return m
