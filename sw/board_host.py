"""The ``uart`` backend of the Device API: a board built by `make bitstream` (hw/boards/top.py),
driven over its UART with the token protocol of spec/host_link.py (docs/boards.md).

    from sw.board_host import BoardDevice
    dev = BoardDevice("build/images/tiny-seed0-1.6bit-b16.img", "ecp5", port="/dev/ttyUSB0")
    run = dev.generate([[1, 17]], n_new=8)         # the same Run as every backend

    python -m sw.board_host --port /dev/ttyUSB0 --model tiny --config ecp5 --tokens 8 [--prompt "text"]

`port` is a path (opened with pyserial, imported only then) or any object with ``write(bytes)``
and ``read(n) -> bytes`` (a short read is a timeout), e.g. the simulated board of
tests/hw/boards/. The board holds the image and the program it was built with: the host needs the
same image file (the vocabulary, the config check) and does not send weights.

Each prompt (one core) runs as: OP_RESET (the state region zeroed), then golden.machine.GreedyHost's
tokens one OP_TOKEN at a time, each answered by RSP_TOKEN. Run.token_cycles are the board's
TOKIN -> TOKOUT clock cycles (RSP_TOKEN's count); Run.states are empty (the board does not send
its state); Run.cycles is their sum. A RSP_ERROR, a malformed frame or a read timeout raises
DeviceError.

Backend ``uart`` of sw.device.BACKENDS.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from spec import host_link as HL
from sw.device import Device, DeviceError, Run, TokenEvent

__all__ = ["BoardDevice", "BoardLink", "open_serial"]

#: options of BoardDevice
OPTIONS = ("port", "baud", "timeout_s", "resync")


def open_serial(path: str, baud: int, timeout_s: float):
    """A pyserial port (pyserial is needed only here)."""
    try:
        import serial
    except ImportError:
        raise DeviceError("the uart backend needs pyserial for a serial device path: pip install pyserial "
                          "(or pass a file-like port object)") from None
    try:
        return serial.Serial(path, baudrate=baud, bytesize=8, parity="N", stopbits=1, timeout=timeout_s)
    except (OSError, ValueError) as e:
        raise DeviceError(f"cannot open {path}: {e}") from None


class BoardLink:
    """spec.host_link over a byte port (`write(bytes)`, `read(n)`)."""

    def __init__(self, port: Any, *, baud: int = HL.DEFAULT_BAUD, timeout_s: float = 10.0, resync: bool = True):
        self.port = port
        self.baud = baud
        self.timeout_s = timeout_s
        self.resync = resync

    def _read(self, n: int) -> bytes:
        buf = b""
        t0 = time.monotonic()
        while len(buf) < n:
            chunk = self.port.read(n - len(buf))
            if chunk:
                buf += bytes(chunk)
            elif time.monotonic() - t0 > self.timeout_s:
                raise DeviceError(f"no answer from the board within {self.timeout_s} s ({len(buf)} of {n} bytes)")
        return buf

    def _response(self) -> HL.Response:
        try:
            r = HL.decode_response(self._read(HL.RSP_BYTES))
        except HL.LinkError as e:
            raise DeviceError(f"host link: {e}") from None
        if r.tag == HL.RSP_ERROR:
            raise DeviceError(f"the board reports: {HL.ERRORS.get(r.value, f'error {r.value}')}")
        return r

    def reset(self) -> int:
        """OP_RESET (after the gap rule's silence and a flush, with `resync`); returns the board's
        protocol version."""
        if self.resync:
            time.sleep(1.5 * HL.FRAME_GAP_BITS / self.baud)
            flush = getattr(self.port, "reset_input_buffer", None)
            if flush is not None:
                flush()
        self.port.write(HL.request(HL.OP_RESET))
        r = self._response()
        if r.tag != HL.RSP_RESET:
            raise DeviceError(f"expected the reset acknowledgement, got {r!r}")
        if r.value != HL.PROTOCOL_VERSION:
            raise DeviceError(f"the board speaks host-link version {r.value}, this host {HL.PROTOCOL_VERSION}")
        return r.value

    def token(self, tok: int) -> tuple[int, int]:
        """Feed one token; returns (TOKOUT, cycles from TOKIN to TOKOUT)."""
        self.port.write(HL.request(HL.OP_TOKEN, tok))
        r = self._response()
        if r.tag != HL.RSP_TOKEN:
            raise DeviceError(f"expected a token, got {r!r}")
        return r.value, r.cycles


class BoardDevice(Device):
    """A board over its UART (see the module docstring). Options: ``port`` (a path or a byte
    port object; required), ``baud`` (spec.host_link.DEFAULT_BAUD), ``timeout_s`` per response
    (10 s), ``resync`` (wait out the gap rule and flush before each reset; default True for a
    path, False for a port object)."""

    backend = "uart"

    def __init__(self, image, config="ecp5", *, program=None, **options):
        bad = sorted(set(options) - set(OPTIONS))
        if bad:
            raise ValueError(f"unknown option(s) {', '.join(bad)} for the uart backend; valid: {', '.join(OPTIONS)}")
        if options.get("port") is None:
            raise ValueError("the uart backend needs port= (a serial device path or a byte port object)")
        super().__init__(image, config, program=program, **options)
        if self.cores != 1:
            raise ValueError(f"a board runs one core, config {self.config.name} has {self.cores}")
        port = options["port"]
        baud = int(options.get("baud", HL.DEFAULT_BAUD))
        timeout_s = float(options.get("timeout_s", 10.0))
        self._owned = isinstance(port, (str, Path))
        if self._owned:
            port = open_serial(str(port), baud, timeout_s)
        self.link = BoardLink(port, baud=baud, timeout_s=timeout_s, resync=bool(options.get("resync", self._owned)))

    def _generate(self, prompts, n_new, on_token, capture_state, max_cycles):
        from golden.machine import GreedyHost

        host = GreedyHost(prompts[0], n_new)
        lat: list[int | None] = []
        t0 = time.perf_counter()
        self.link.reset()
        while (tok := host.next_token()) is not None:
            out, cycles = self.link.token(tok)
            out -= (out >> 31) << 32             # the low 32 bits of the signed TOKOUT
            host.put_token(out)
            lat.append(cycles)
            if on_token is not None:
                on_token(TokenEvent(0, len(host.outputs) - 1, out, None, cycles, None))
        wall = time.perf_counter() - t0
        total = sum(lat)
        return Run(self.backend, prompts, n_new, [host.outputs], [[]], [lat], total,
                   {"cycles": total, "wall_s": wall, "tokens": len(lat)})

    def close(self) -> None:
        if self._owned:
            self.link.port.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sw.board_host",
                                 description="Generate tokens on a board over its UART (docs/boards.md).")
    ap.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB0")
    ap.add_argument("--baud", type=int, default=HL.DEFAULT_BAUD)
    ap.add_argument("--model", default="tiny", help="the model the bitstream was built with (sw.artifacts.prepare)")
    ap.add_argument("--config", default="ecp5", help="the accelerator config the bitstream was built with")
    ap.add_argument("--tokens", type=int, default=8, help="new tokens to generate")
    ap.add_argument("--prompt", default=None, help="prompt text (tokenized as make sim does); default BOS")
    ap.add_argument("--check", action="store_true", help="compare every token with the golden machine")
    args = ap.parse_args(argv)
    from sw.artifacts import ArtifactError, prepare
    from sw.tokenizer import encode_prompt

    try:
        p = prepare(args.model, config=args.config, log=lambda *a: print(*a, file=sys.stderr))
        prompt = encode_prompt(args.prompt, p.tokenizer, p.model_config)
        with BoardDevice(p.image_path, p.config, program=p.program, port=args.port, baud=args.baud) as dev:
            run = dev.generate([prompt], args.tokens)
        new = run.new_tokens(0)
        print(f"prompt {prompt} -> {new}")
        if p.tokenizer is not None:
            print(repr(p.tokenizer.decode(new)))
        steps = len(run.token_cycles[0])
        print(f"{steps} token steps, {run.cycles} board cycles ({run.cycles / max(1, steps):.0f} per step), "
              f"{run.stats['wall_s']:.2f} s wall")
        if args.check:
            from sw.device import open_device
            gold = open_device("golden", p.image_path, p.config, program=p.program).generate([prompt], args.tokens)
            if gold.tokens != run.tokens:
                print(f"MISMATCH: golden {gold.tokens[0]}, board {run.tokens[0]}", file=sys.stderr)
                return 1
            print("bit-exact with the golden machine")
    except (DeviceError, ArtifactError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
