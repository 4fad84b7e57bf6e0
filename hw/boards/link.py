"""The board side of the host link (spec/host_link.py, docs/boards.md): request frames from the
UART receiver's bytes to the core's token input and the reset, responses from the core's token
output and the error events to the UART transmitter's bytes.

Everything protocol-specific (frame sizes, opcodes, tags, error codes, the gap rule) comes from
spec.host_link; this file only builds the parser and the serializer from it.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spec import host_link as HL

__all__ = ["HostLink"]

_U32 = (1 << 32) - 1


class HostLink(wiring.Component):
    """Request parser and response generator.

    Parameters
    ----------
    gap_cycles : int
        Clock cycles of silence after which a partly received request is dropped
        (``HL.FRAME_GAP_BITS * divisor`` on a board).
    token_bits : int
        Width of `tok_in`'s payload (the core's TOKEN_BITS).
    tokout_bits : int
        Width of `tok_out`'s payload (the core's A register).

    Attributes
    ----------
    rx : In(stream.Signature(8))            bytes from the UART receiver (always taken)
    rx_frame_error, rx_overrun : In(1)      the receiver's error pulses
    tx : Out(stream.Signature(8))           bytes to the UART transmitter
    tok_in : Out(stream.Signature(signed(token_bits)))   to the core's TOKIN
    tok_out : In(stream.Signature(signed(tokout_bits)))  from the core's TOKOUT
    fault : In(1)                           the core's fault bit
    clear : Out(1)                          one-cycle pulse on OP_RESET: start the reset and state clear
    clearing : In(1)                        the state clear runs (the link answers RSP_RESET after it)
    """

    def __init__(self, gap_cycles: int, *, token_bits: int = 32, tokout_bits: int = 64):
        if gap_cycles < 1:
            raise ValueError(f"gap_cycles must be >= 1, got {gap_cycles}")
        self._gap = gap_cycles
        super().__init__({
            "rx": In(stream.Signature(8)),
            "rx_frame_error": In(1),
            "rx_overrun": In(1),
            "tx": Out(stream.Signature(8)),
            "tok_in": Out(stream.Signature(signed(token_bits))),
            "tok_out": In(stream.Signature(signed(tokout_bits))),
            "fault": In(1),
            "clear": Out(1),
            "clearing": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n_req, n_rsp = HL.REQ_BYTES, HL.RSP_BYTES

        # -- requests ---------------------------------------------------------------------------
        req = Signal(8 * (n_req - 1))           # the bytes so far, the latest at the top
        cnt = Signal(range(n_req))
        gap = Signal(range(self._gap + 1))
        frame = Cat(req, self.rx.payload)       # the whole request when its last byte arrives
        op, arg = frame[:8], frame[8:40]

        tok_pending = Signal()
        err_pending = Signal()
        err_code = Signal(8)
        ack_pending = Signal()
        wait_clear = Signal()
        counting = Signal()                     # TOKIN taken, TOKOUT not yet offered
        lat = Signal(32)
        lat_out = Signal(32)
        lat_valid = Signal()                    # lat_out holds the latency of the offered TOKOUT
        fault_seen = Signal()

        new_err = Signal()                      # an error event in this cycle (comb), recorded at the end
        new_code = Signal(8)

        def error(code: int) -> list:
            return [new_err.eq(1), new_code.eq(code)]

        m.d.comb += self.rx.ready.eq(1)
        m.d.sync += self.clear.eq(0)
        with m.If(self.rx.valid):
            m.d.sync += gap.eq(0)
            with m.If(cnt == n_req - 1):
                m.d.sync += cnt.eq(0)
                with m.If(op == HL.OP_TOKEN):
                    with m.If(tok_pending):
                        m.d.comb += error(HL.ERR_BUSY)
                    with m.Else():
                        m.d.sync += [tok_pending.eq(1), self.tok_in.payload.eq(arg)]
                with m.Elif(op == HL.OP_RESET):
                    m.d.sync += [self.clear.eq(1), wait_clear.eq(1), tok_pending.eq(0), counting.eq(0),
                                 lat_valid.eq(0), ack_pending.eq(0)]
                with m.Else():
                    m.d.comb += error(HL.ERR_OP)
            with m.Else():
                m.d.sync += [req.eq(frame[8:]), cnt.eq(cnt + 1)]
        with m.Elif(cnt != 0):
            with m.If(gap == self._gap - 1):
                m.d.sync += [cnt.eq(0), gap.eq(0)]
            with m.Else():
                m.d.sync += gap.eq(gap + 1)

        # -- the core's token input and the latency counter -------------------------------------------
        m.d.comb += self.tok_in.valid.eq(tok_pending)
        with m.If(counting):
            m.d.sync += lat.eq(lat + (lat != _U32))
            with m.If(self.tok_out.valid):
                m.d.sync += [counting.eq(0), lat_out.eq(lat), lat_valid.eq(1)]
        with m.If(self.tok_in.valid & self.tok_in.ready):
            m.d.sync += [tok_pending.eq(0), counting.eq(1), lat.eq(1)]

        # -- reset: the acknowledgement once the state clear has run ----------------------------------
        with m.If(wait_clear & ~self.clear & ~self.clearing):
            m.d.sync += [wait_clear.eq(0), ack_pending.eq(1), fault_seen.eq(0)]

        # -- responses --------------------------------------------------------------------------------
        rsp = Signal(8 * n_rsp)
        rcnt = Signal(range(n_rsp + 1))
        m.d.comb += [self.tx.valid.eq(rcnt != 0), self.tx.payload.eq(rsp[:8])]
        with m.If(self.tx.valid & self.tx.ready):
            m.d.sync += [rsp.eq(rsp >> 8), rcnt.eq(rcnt - 1)]
        with m.If(rcnt == 0):
            with m.If(err_pending):
                m.d.sync += [rsp.eq(Cat(Const(HL.RSP_ERROR, 8), err_code, Const(0, 24 + 32))), rcnt.eq(n_rsp),
                             err_pending.eq(0)]
            with m.Elif(ack_pending):
                m.d.sync += [rsp.eq(Cat(Const(HL.RSP_RESET, 8), Const(HL.PROTOCOL_VERSION, 32), Const(0, 32))),
                             rcnt.eq(n_rsp), ack_pending.eq(0)]
            with m.Elif(self.tok_out.valid & lat_valid):
                m.d.comb += self.tok_out.ready.eq(1)
                m.d.sync += [rsp.eq(Cat(Const(HL.RSP_TOKEN, 8), self.tok_out.payload[:32], lat_out)),
                             rcnt.eq(n_rsp), lat_valid.eq(0)]

        # -- errors (after the response logic: a new error is never lost to the one being sent) -------
        with m.If(self.fault & ~fault_seen & ~wait_clear):
            m.d.sync += fault_seen.eq(1)
            m.d.comb += error(HL.ERR_FAULT)
        with m.If(self.rx_overrun):
            m.d.comb += error(HL.ERR_OVERRUN)
        with m.If(self.rx_frame_error):
            m.d.comb += error(HL.ERR_FRAMING)
            m.d.sync += [cnt.eq(0), gap.eq(0)]
        with m.If(new_err):
            m.d.sync += [err_pending.eq(1), err_code.eq(new_code)]
        return m
