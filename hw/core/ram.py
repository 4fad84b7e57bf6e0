"""A block RAM with its read output registered twice: one write port, one read port, read latency 2.

    r_addr (cycle t) -> the block RAM reads at the edge that ends t -> its output register loads at
    the next edge -> r_data holds mem[r_addr(t)] in cycle t + 2

    w_addr, w_data, w_en (cycle t) -> written at the edge that ends t

A read and a write of one address at the same edge are undefined (every user's contract rules them
out); a read at a later edge sees the write. `w_en` has one bit per granule of `granularity` bits.

Why: an ECP5 DP16KD without its output register (what yosys maps a synchronous read port to) has a
5.8 ns clock-to-output at speed grade -6, so even a flip-flop right after it leaves 4 ns of a 10 ns
clock for the route to that flip-flop, and the -6 builds' worst paths were block RAM outputs into
their first fabric register (11.3 ns). yosys does not put a register after a read port into the
block RAM (its REGMODE OUTREG), so on ECP5 this is an instantiated DP16KD with REGMODE_B = OUTREG
(nextpnr times its output from that register). Elsewhere (no platform, another family, the Amaranth
simulator) it is `amaranth.lib.memory.Memory` with an asynchronous read and two flip-flops, the
first of which yosys merges into the block RAM's synchronous read port: the same cycles.

The ECP5 mapping (`DP16KD` in 1024 x 18 mode, port A writes, port B reads):

* a granule of up to 9 bits sits in one 9-bit half of an 18-bit column, two granules a column, the
  halves' byte enables (ADA0, ADA1 in x18 mode) its `w_en` bits; a wider granule takes whole
  columns (`ceil(granularity / 18)`), written with WEA = its `w_en` bit;
* the word address is AD[13:4] (AD[3:2] tied low; ADB[1:0] low);
* `init` goes into INITVAL_00 .. INITVAL_3F, 16 words of 20 bits each (18 data bits, zero-extended),
  the layout yosys's own DP16KD mapping writes.

It is used where the depth fills the 1024 x 18 block (``depth > 512``, at most 1024): a shallower
memory would waste half of every block, and is left to yosys (no output register in the block
RAM; its first register in fabric).
"""
from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import memory

from .arith import is_ecp5

__all__ = ["DP16KD_DEPTH", "DP16KD_WIDTH", "RegisteredRAM", "dp16kd_columns", "initval"]

#: the DP16KD mode used: 1024 words of 18 bits (two 9-bit halves with their own byte enables)
DP16KD_DEPTH = 1024
DP16KD_WIDTH = 18
_HALF = 9


def dp16kd_columns(width: int, granularity: int) -> list[list[tuple[int, int, int, int]]]:
    """How `width` bits in granules of `granularity` bits fill 18-bit DP16KD columns.

    One list per column of (data bit offset, bits, column bit offset, granule index) pieces. A
    granule of at most 9 bits sits in one 9-bit half (two granules a column); a wider one takes
    ``ceil(granularity / 18)`` whole columns of its own."""
    if width < 1 or granularity < 1 or width % granularity:
        raise ValueError(f"width {width} is not a whole number of {granularity}-bit granules")
    n = width // granularity
    cols: list[list[tuple[int, int, int, int]]] = []
    if granularity <= _HALF:
        for g in range(n):
            if g % 2 == 0:
                cols.append([])
            cols[-1].append((g * granularity, granularity, (g % 2) * _HALF, g))
    else:
        for g in range(n):
            for off in range(0, granularity, DP16KD_WIDTH):
                bits = min(DP16KD_WIDTH, granularity - off)
                cols.append([(g * granularity + off, bits, 0, g)])
    return cols


def initval(words: Sequence[int]) -> list[int]:
    """The 64 INITVAL_xx values (320 bits each) of a DP16KD in x18 mode holding `words` (18-bit
    words from address 0; the rest zero): word i in bits [20 * (i % 16), +18) of INITVAL_(i // 16)."""
    if len(words) > DP16KD_DEPTH:
        raise ValueError(f"{len(words)} words do not fit a {DP16KD_DEPTH}-word DP16KD")
    out = [0] * (DP16KD_DEPTH // 16)
    for i, w in enumerate(words):
        if not 0 <= w < 1 << DP16KD_WIDTH:
            raise ValueError(f"word {i} = {w:#x} is not an 18-bit value")
        out[i // 16] |= w << (20 * (i % 16))
    return out


class RegisteredRAM(Elaboratable):
    """`depth` words of `width` bits, written in granules of `granularity` bits; read latency 2.

    Parameters
    ----------
    width, depth : int
    granularity : int, optional
        Bits per write enable (default: `width`, one enable).
    init : sequence of int, optional
        Initial words from address 0 (the rest are zero).
    domain : str
        The clock domain of both ports. The output registers are not reset by it.
    name : str, optional
        A prefix for the signals' names.

    Attributes
    ----------
    w_addr, w_data, w_en : Signal, inputs
    r_addr : Signal, input
    r_data : Signal(width), output (from a register)
    uses_dp16kd : bool
        Whether, on ECP5, the memory is instantiated DP16KDs (set at construction).
    """

    def __init__(self, width: int, depth: int, *, granularity: int | None = None, init: Sequence[int] = (),
                 domain: str = "sync", name: str | None = None, attrs: dict | None = None):
        granularity = width if granularity is None else granularity
        if width < 1 or depth < 1:
            raise ValueError(f"a RAM needs a width and a depth of at least 1, not {width} x {depth}")
        if width % granularity:
            raise ValueError(f"width {width} is not a whole number of {granularity}-bit granules")
        init = [int(v) for v in init]
        if len(init) > depth or any(not 0 <= v < 1 << width for v in init):
            raise ValueError(f"init must be at most {depth} words of {width} bits")
        self._width, self._depth, self._gran, self._init = width, depth, granularity, init
        self._domain = domain
        self._attrs = dict(attrs or {})
        p = f"{name}_" if name else ""
        self.w_addr = Signal(range(max(2, depth)), name=f"{p}w_addr")
        self.w_data = Signal(width, name=f"{p}w_data")
        self.w_en = Signal(width // granularity, name=f"{p}w_en")
        self.r_addr = Signal(range(max(2, depth)), name=f"{p}r_addr")
        self.r_data = Signal(width, name=f"{p}r_data", reset_less=True)
        self._name = name or "ram"
        self.uses_dp16kd = DP16KD_DEPTH // 2 < depth <= DP16KD_DEPTH

    def elaborate(self, platform):
        m = Module()
        if is_ecp5(platform) and self.uses_dp16kd:
            self._dp16kd(m)
            return m
        # an asynchronous read and a plain flip-flop after it (no reset, no enable): yosys merges
        # the two into the block RAM's synchronous read port; no_rw_check lets it assume the
        # contract (no read and write of one word at one edge) instead of emulating read-first
        mem = m.submodules.mem = memory.Memory(shape=self._width, depth=self._depth, init=self._init,
                                               attrs={"no_rw_check": 1, **self._attrs})
        rp = mem.read_port(domain="comb")
        wp = mem.write_port(domain=self._domain, granularity=self._gran)
        q0 = Signal(self._width, name=f"{self._name}_q0", reset_less=True)
        m.d.comb += [rp.addr.eq(self.r_addr), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data),
                     wp.en.eq(self.w_en)]
        m.d[self._domain] += [q0.eq(rp.data), self.r_data.eq(q0)]
        return m

    def _dp16kd(self, m: Module) -> None:
        clk = ClockSignal(self._domain)
        abits = (DP16KD_DEPTH - 1).bit_length()            # 10
        wa, ra = Signal(abits), Signal(abits)
        m.d.comb += [wa.eq(self.w_addr), ra.eq(self.r_addr)]
        for c, pieces in enumerate(dp16kd_columns(self._width, self._gran)):
            di, do = Signal(DP16KD_WIDTH, name=f"c{c}_di"), Signal(DP16KD_WIDTH, name=f"c{c}_do")
            be = [Const(1, 1), Const(1, 1)]
            if self._gran <= _HALF:
                be = [Const(0, 1), Const(0, 1)]
            words = [0] * len(self._init)
            for doff, bits, coff, g in pieces:
                m.d.comb += [di[coff:coff + bits].eq(self.w_data[doff:doff + bits]),
                             self.r_data[doff:doff + bits].eq(do[coff:coff + bits])]
                if self._gran <= _HALF:
                    be[coff // _HALF] = self.w_en[g]
                for i, v in enumerate(self._init):
                    words[i] |= ((v >> doff) & ((1 << bits) - 1)) << coff
            grans = sorted({g for *_, g in pieces})
            we = Signal(name=f"c{c}_we")
            m.d.comb += we.eq(Cat(self.w_en[g] for g in grans).any())
            ports = {"i_CLKA": clk, "i_CLKB": clk, "i_CEA": Const(1, 1), "i_CEB": Const(1, 1),
                     "i_OCEA": Const(1, 1), "i_OCEB": Const(1, 1), "i_RSTA": Const(0, 1), "i_RSTB": Const(0, 1),
                     "i_WEA": we, "i_WEB": Const(0, 1)}
            for i in range(3):
                ports[f"i_CSA{i}"] = Const(0, 1)
                ports[f"i_CSB{i}"] = Const(0, 1)
            # x18: AD[13:4] the word, AD[3:2] low, ADA[1:0] the byte enables (ADB[1:0] low: a read)
            for i in range(14):
                ports[f"i_ADA{i}"] = wa[i - 4] if i >= 4 else be[i] if i < 2 else Const(0, 1)
                ports[f"i_ADB{i}"] = ra[i - 4] if i >= 4 else Const(0, 1)
            for i in range(DP16KD_WIDTH):
                ports[f"i_DIA{i}"] = di[i]
                ports[f"i_DIB{i}"] = Const(0, 1)
                ports[f"o_DOB{i}"] = do[i]
            params = {f"p_INITVAL_{k:02X}": Const(v, 320) for k, v in enumerate(initval(words))}
            m.submodules[f"c{c}"] = Instance(
                "DP16KD",
                p_DATA_WIDTH_A=DP16KD_WIDTH, p_DATA_WIDTH_B=DP16KD_WIDTH,
                p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
                p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
                p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
                p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
                p_GSR="DISABLED",
                **params, **ports,
            )
