"""spec.host_link: request and response encodings (the bytes of docs/boards.md) and their checks."""
from __future__ import annotations

import pytest

from spec import host_link as HL


def test_request_bytes():
    assert HL.request(HL.OP_TOKEN, 0x01020304) == b"T\x04\x03\x02\x01"
    assert HL.request(HL.OP_RESET) == b"R\x00\x00\x00\x00"
    assert len(HL.request(HL.OP_TOKEN, 5)) == HL.REQ_BYTES
    assert HL.decode_request(b"T\x04\x03\x02\x01") == (HL.OP_TOKEN, 0x01020304)


def test_response_round_trip():
    raw = HL.response(HL.RSP_TOKEN, 31999, 1234567)
    assert len(raw) == HL.RSP_BYTES and raw[0] == ord("T")
    r = HL.decode_response(raw)
    assert (r.tag, r.value, r.cycles) == (HL.RSP_TOKEN, 31999, 1234567)
    assert HL.decode_response(HL.response(HL.RSP_TOKEN, 1, 1 << 40)).cycles == (1 << 32) - 1   # saturates


def test_bad_frames_are_rejected():
    with pytest.raises(HL.LinkError, match="opcode"):
        HL.request(0x51)
    with pytest.raises(HL.LinkError, match="32 bits"):
        HL.request(HL.OP_TOKEN, 1 << 32)
    with pytest.raises(HL.LinkError, match="9 bytes"):
        HL.decode_response(b"T\x00")
    with pytest.raises(HL.LinkError, match="lost sync"):
        HL.decode_response(b"\x00" * HL.RSP_BYTES)


def test_codes_are_distinct_and_named():
    assert len({HL.OP_TOKEN, HL.OP_RESET}) == 2
    assert len({HL.RSP_TOKEN, HL.RSP_RESET, HL.RSP_ERROR}) == 3
    assert sorted(HL.ERRORS) == [HL.ERR_FRAMING, HL.ERR_OVERRUN, HL.ERR_OP, HL.ERR_BUSY, HL.ERR_FAULT]
