"""The board's host link: the token protocol over the UART (docs/boards.md). The one definition:
hw/boards/link.py builds its frame parser and generator from these constants, sw/board_host.py
encodes and decodes with these functions.

Line: 8N1 (hw/uart.py) at `DEFAULT_BAUD` unless the build says otherwise.

Host -> board: requests of REQ_BYTES bytes: an opcode, then a 32-bit little-endian argument.

    OP_TOKEN  'T'  arg = token id: fed to the core's TOKIN (the board answers with RSP_TOKEN)
    OP_RESET  'R'  arg ignored (send 0): the accelerator is held in reset, the state region is
                   zeroed, the core restarts at PC 0 (a new sequence); the board answers RSP_RESET

Board -> host: responses of RSP_BYTES bytes: a tag, a 32-bit LE value, a 32-bit LE cycle count.

    RSP_TOKEN 'T'  value = the TOKOUT (the token id: low 32 bits), cycles = clock cycles from the
                   token's TOKIN to this TOKOUT (saturating at 2**32 - 1)
    RSP_RESET 'R'  value = PROTOCOL_VERSION, cycles = 0
    RSP_ERROR 'E'  value = one of ERRORS, cycles = 0

Rules:
* One token in flight: the host sends the next OP_TOKEN after the previous one's RSP_TOKEN (a
  token arriving while the previous one is not yet taken by TOKIN is dropped with ERR_BUSY).
* Greedy generation is the host's job (golden.machine.GreedyHost): feed the prompt, then each
  RSP_TOKEN's value back.
* Resynchronisation: a request whose bytes are more than FRAME_GAP_BITS bit times apart is
  dropped (its first bytes are forgotten), so a host that lost count waits that long and sends
  OP_RESET. A byte with a bad stop bit is ERR_FRAMING and drops the request being received.
* Power-up: the state region is zero and the core waits for its first token (as after OP_RESET,
  without a response).
"""
from __future__ import annotations

import struct

__all__ = ["DEFAULT_BAUD", "ERRORS", "ERR_BUSY", "ERR_FAULT", "ERR_FRAMING", "ERR_OP", "ERR_OVERRUN",
           "FRAME_GAP_BITS", "LinkError", "OP_RESET", "OP_TOKEN", "PROTOCOL_VERSION", "REQ_BYTES", "RSP_BYTES",
           "RSP_ERROR", "RSP_RESET", "RSP_TOKEN", "Response", "decode_request", "decode_response", "request",
           "response"]

PROTOCOL_VERSION = 1
DEFAULT_BAUD = 115_200

REQ_BYTES = 5
RSP_BYTES = 9

OP_TOKEN = ord("T")
OP_RESET = ord("R")

RSP_TOKEN = ord("T")
RSP_RESET = ord("R")
RSP_ERROR = ord("E")

ERR_FRAMING = 1     # a byte with a bad stop bit
ERR_OVERRUN = 2     # a byte arrived before the previous one was taken
ERR_OP = 3          # a request with an unknown opcode
ERR_BUSY = 4        # OP_TOKEN while the previous token was not yet taken by TOKIN
ERR_FAULT = 5       # the core stopped on an invalid instruction (send OP_RESET)

ERRORS: dict[int, str] = {
    ERR_FRAMING: "framing error (bad stop bit)",
    ERR_OVERRUN: "receive overrun",
    ERR_OP: "unknown request opcode",
    ERR_BUSY: "token while the previous one is pending",
    ERR_FAULT: "core fault (invalid instruction)",
}

#: bit times of silence after which a partly received request is dropped
FRAME_GAP_BITS = 2000

_U32 = (1 << 32) - 1


class LinkError(ValueError):
    """A malformed frame."""


def request(op: int, arg: int = 0) -> bytes:
    """The REQ_BYTES bytes of a request."""
    if op not in (OP_TOKEN, OP_RESET):
        raise LinkError(f"unknown opcode {op!r}")
    if not 0 <= arg <= _U32:
        raise LinkError(f"argument {arg} does not fit 32 bits")
    return struct.pack("<BI", op, arg)


def decode_request(frame: bytes) -> tuple[int, int]:
    """(op, arg) of a request frame (any opcode: the board decides what it accepts)."""
    if len(frame) != REQ_BYTES:
        raise LinkError(f"a request is {REQ_BYTES} bytes, got {len(frame)}")
    return struct.unpack("<BI", frame)


class Response(tuple):
    """(tag, value, cycles)."""

    __slots__ = ()

    def __new__(cls, tag: int, value: int, cycles: int):
        return super().__new__(cls, (tag, value, cycles))

    tag = property(lambda self: self[0])
    value = property(lambda self: self[1])
    cycles = property(lambda self: self[2])

    def __repr__(self) -> str:
        return f"Response({chr(self.tag)!r}, {self.value}, {self.cycles})"


def response(tag: int, value: int = 0, cycles: int = 0) -> bytes:
    """The RSP_BYTES bytes of a response (what the board sends; for models and tests)."""
    if tag not in (RSP_TOKEN, RSP_RESET, RSP_ERROR):
        raise LinkError(f"unknown response tag {tag!r}")
    return struct.pack("<BII", tag, value & _U32, min(cycles, _U32))


def decode_response(frame: bytes) -> Response:
    if len(frame) != RSP_BYTES:
        raise LinkError(f"a response is {RSP_BYTES} bytes, got {len(frame)}")
    tag, value, cycles = struct.unpack("<BII", frame)
    if tag not in (RSP_TOKEN, RSP_RESET, RSP_ERROR):
        raise LinkError(f"unknown response tag 0x{tag:02x} (lost sync? send OP_RESET after "
                        f"{FRAME_GAP_BITS} bit times of silence)")
    return Response(tag, value, cycles)
