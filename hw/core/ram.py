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

The ECP5 mapping (`DP16KD`, port A writes, port B reads, both in the mode of 2**k words of
18 >> k bits that the depth fills: 1024 x 18, 2048 x 9, 4096 x 4, 8192 x 2, 16384 x 1):

* in 1024 x 18 a granule of up to 9 bits sits in one 9-bit half of a column, two granules a
  column, the halves' byte enables (ADA0, ADA1) its `w_en` bits; otherwise (a wider granule, or a
  narrower mode) a granule takes whole columns (`ceil(granularity / mode width)`), written with
  WEA = its `w_en` bit;
* the word address is AD[13:14 - log2(depth)] (the pins below it low, but the byte enables);
* `init` goes into INITVAL_00 .. INITVAL_3F as yosys's own DP16KD mapping writes it: 1024 rows of
  18 bits (two bytes with a ninth bit each) in 20-bit slots, 16 rows an INITVAL; a 9-bit word is a
  row's half, a narrower one lies in the rows' 16 byte bits (the ninth bits unused).

It is used where the depth fills the mode it needs (more than half of it, at most 16384 words): a
shallower memory would waste the rest of every block, and is left to yosys (no output register in
the block RAM; its first register in fabric).

`r_en` (default high) enables the read: the block RAM reads and the first flip-flop loads only
while it is high; `o_en` (default high) enables the output register. With both tied high the read
latency is 2 as above; a pipeline that stalls drives them from its stage enables.
"""
from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Cat, ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import memory

from .arith import is_ecp5

__all__ = ["DP16KD_MODES", "RegisteredRAM", "RegisteredROM", "dp16kd_columns", "dp16kd_mode", "initval"]

#: the DP16KD's modes, (depth, width): 1024 x 18 (two 9-bit halves with their own byte enables) to
#: 16384 x 1
DP16KD_MODES = ((1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
_HALF = 9


def dp16kd_mode(depth: int) -> tuple[int, int] | None:
    """The DP16KD mode (depth, width) whose depth `depth` fills (more than half of it), or None."""
    for d, w in DP16KD_MODES:
        if d // 2 < depth <= d:
            return d, w
    return None


def dp16kd_columns(width: int, granularity: int, mode_width: int = 18) -> list[list[tuple[int, int, int, int]]]:
    """How `width` bits in granules of `granularity` bits fill DP16KD columns of `mode_width` bits.

    One list per column of (data bit offset, bits, column bit offset, granule index) pieces. In the
    18-bit mode a granule of at most 9 bits sits in one 9-bit half (two granules a column);
    otherwise a granule takes ``ceil(granularity / mode_width)`` whole columns of its own."""
    if width < 1 or granularity < 1 or width % granularity:
        raise ValueError(f"width {width} is not a whole number of {granularity}-bit granules")
    if mode_width not in {w for _, w in DP16KD_MODES}:
        raise ValueError(f"no DP16KD mode is {mode_width} bits wide")
    n = width // granularity
    cols: list[list[tuple[int, int, int, int]]] = []
    if mode_width == 18 and granularity <= _HALF:
        for g in range(n):
            if g % 2 == 0:
                cols.append([])
            cols[-1].append((g * granularity, granularity, (g % 2) * _HALF, g))
    else:
        for g in range(n):
            for off in range(0, granularity, mode_width):
                bits = min(mode_width, granularity - off)
                cols.append([(g * granularity + off, bits, 0, g)])
    return cols


def initval(words: Sequence[int], mode_width: int = 18) -> list[int]:
    """The 64 INITVAL_xx values (320 bits each) of a DP16KD holding `words` (`mode_width`-bit words
    from address 0; the rest zero), in yosys's layout: row r of 18 bits (bits 0-7 byte 0, 8 its
    ninth bit, 9-16 byte 1, 17 its ninth bit) at bits [20 * (r % 16), +18) of INITVAL_(r // 16); an
    18-bit word is a row, a 9-bit word a row's half, a narrower word lies in the 16 byte bits."""
    depth = dict((w, d) for d, w in DP16KD_MODES).get(mode_width)
    if depth is None:
        raise ValueError(f"no DP16KD mode is {mode_width} bits wide")
    if len(words) > depth:
        raise ValueError(f"{len(words)} words do not fit a {depth}-word DP16KD")
    out = [0] * 64

    def put(row: int, pos: int, bit: int) -> None:
        out[row // 16] |= bit << (20 * (row % 16) + pos)

    for i, w in enumerate(words):
        if not 0 <= w < 1 << mode_width:
            raise ValueError(f"word {i} = {w:#x} is not a {mode_width}-bit value")
        for b in range(mode_width):
            bit = w >> b & 1
            if mode_width == 18:
                put(i, b, bit)
            elif mode_width == 9:
                put(i // 2, 9 * (i % 2) + b, bit)
            else:
                j = i * mode_width + b              # the bit in the 16 Kbit of byte bits
                row, k = j // 16, j % 16
                put(row, k + (k >= 8), bit)
    return out


def _column_words(init: Sequence[int], pieces) -> list[int]:
    """A column's words from the memory's `init`: the (data offset, bits, column offset) pieces."""
    words = [0] * len(init)
    for doff, bits, coff, _ in pieces:
        for i, v in enumerate(init):
            words[i] |= ((v >> doff) & ((1 << bits) - 1)) << coff
    return words


def _add_dp16kd(m: Module, name: str, mode_width: int, words: list[int], regmode_a: str, ports: dict) -> None:
    """A DP16KD in `mode_width` mode on both ports holding `words`; port B registered (OUTREG)."""
    params = {f"p_INITVAL_{k:02X}": Const(v, 320) for k, v in enumerate(initval(words, mode_width))}
    m.submodules[name] = Instance(
        "DP16KD",
        p_DATA_WIDTH_A=mode_width, p_DATA_WIDTH_B=mode_width,
        p_REGMODE_A=regmode_a, p_REGMODE_B="OUTREG",
        p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC",
        p_CSDECODE_A="0b000", p_CSDECODE_B="0b000",
        p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL",
        p_GSR="DISABLED",
        **params, **ports,
    )


def _read_registers(m: Module, domain: str, data, en, o_en, out, name: str) -> None:
    """An asynchronous read's two registers: the first (yosys's synchronous read port) under `en`,
    `out` under `o_en`."""
    q0 = Signal(len(out), name=name, reset_less=True)
    with m.If(en):
        m.d[domain] += q0.eq(data)
    with m.If(o_en):
        m.d[domain] += out.eq(q0)


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
    r_addr, r_en, o_en : Signal, inputs (`r_en`, `o_en` start high: tied high unless driven)
    r_data : Signal(width), output (from a register)
    mode : (depth, width) or None
        The DP16KD mode used on ECP5 (`dp16kd_mode`), or None where the memory is left to yosys.
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
        self.r_en = Signal(init=1, name=f"{p}r_en")
        self.o_en = Signal(init=1, name=f"{p}o_en")
        self.r_data = Signal(width, name=f"{p}r_data", reset_less=True)
        self._name = name or "ram"
        self.mode = dp16kd_mode(depth)

    @property
    def uses_dp16kd(self) -> bool:
        """Whether, on ECP5, the memory is instantiated DP16KDs."""
        return self.mode is not None

    def elaborate(self, platform):
        m = Module()
        if is_ecp5(platform) and self.mode is not None:
            self._dp16kd(m)
            return m
        # an asynchronous read and a flip-flop after it (no reset): yosys merges the two into the
        # block RAM's synchronous read port (the flip-flop's enable its clock enable); no_rw_check
        # lets it assume the contract (no read and write of one word at one edge) instead of
        # emulating read-first
        mem = m.submodules.mem = memory.Memory(shape=self._width, depth=self._depth, init=self._init,
                                               attrs={"no_rw_check": 1, **self._attrs})
        rp = mem.read_port(domain="comb")
        wp = mem.write_port(domain=self._domain, granularity=self._gran)
        m.d.comb += [rp.addr.eq(self.r_addr), wp.addr.eq(self.w_addr), wp.data.eq(self.w_data),
                     wp.en.eq(self.w_en)]
        _read_registers(m, self._domain, rp.data, self.r_en, self.o_en, self.r_data, f"{self._name}_q0")
        return m

    def _dp16kd(self, m: Module) -> None:
        clk = ClockSignal(self._domain)
        mdepth, mwidth = self.mode
        abits = (mdepth - 1).bit_length()
        lo = 14 - abits                                  # the address's lowest pin
        wa, ra = Signal(abits), Signal(abits)
        m.d.comb += [wa.eq(self.w_addr), ra.eq(self.r_addr)]
        halves = mwidth == 18 and self._gran <= _HALF
        for c, pieces in enumerate(dp16kd_columns(self._width, self._gran, mwidth)):
            di, do = Signal(18, name=f"c{c}_di"), Signal(18, name=f"c{c}_do")
            be = [Const(0, 1), Const(0, 1)] if halves else [Const(1, 1), Const(1, 1)]
            for doff, bits, coff, g in pieces:
                m.d.comb += [di[coff:coff + bits].eq(self.w_data[doff:doff + bits]),
                             self.r_data[doff:doff + bits].eq(do[coff:coff + bits])]
                if halves:
                    be[coff // _HALF] = self.w_en[g]
            grans = sorted({g for *_, g in pieces})
            we = Signal(name=f"c{c}_we")
            m.d.comb += we.eq(Cat(self.w_en[g] for g in grans).any())
            ports = {"i_CLKA": clk, "i_CLKB": clk, "i_CEA": Const(1, 1), "i_CEB": self.r_en,
                     "i_OCEA": Const(1, 1), "i_OCEB": self.o_en, "i_RSTA": Const(0, 1), "i_RSTB": Const(0, 1),
                     "i_WEA": we, "i_WEB": Const(0, 1)}
            for i in range(3):
                ports[f"i_CSA{i}"] = Const(0, 1)
                ports[f"i_CSB{i}"] = Const(0, 1)
            # the word at AD[13:lo]; in x18 ADA[1:0] are the byte enables; every other pin low
            for i in range(14):
                ports[f"i_ADA{i}"] = wa[i - lo] if i >= lo else be[i] if (mwidth == 18 and i < 2) else Const(0, 1)
                ports[f"i_ADB{i}"] = ra[i - lo] if i >= lo else Const(0, 1)
            for i in range(18):
                ports[f"i_DIA{i}"] = di[i] if i < mwidth else Const(0, 1)
                ports[f"i_DIB{i}"] = Const(0, 1)
                ports[f"o_DOB{i}"] = do[i]
            _add_dp16kd(m, f"c{c}", mwidth, _column_words(self._init, pieces), "NOREG", ports)


class _ReadPort:
    """One read port of a :class:`RegisteredROM`: `addr`, `en` (the block RAM's read), `o_en` (its
    output register) in; `data` out, from the output register."""

    def __init__(self, width: int, depth: int, name: str):
        self.addr = Signal(range(max(2, depth)), name=f"{name}_addr")
        self.en = Signal(init=1, name=f"{name}_en")
        self.o_en = Signal(init=1, name=f"{name}_o_en")
        self.data = Signal(width, name=f"{name}_data", reset_less=True)


class RegisteredROM(Elaboratable):
    """`depth` words of `width` bits (`init`), read by one or two ports, each of read latency 2 as
    :class:`RegisteredRAM`'s (`addr` in cycle t, `data` in t + 2; `en` and `o_en` start high).

    On ECP5 (where the depth fills a DP16KD mode, `dp16kd_mode`) the ROM is instantiated DP16KDs
    whose two ports are the two read ports, both with REGMODE OUTREG: two lanes share one copy of a
    table. Elsewhere `lib.memory` with one asynchronous read port and two flip-flops a port.

    Attributes
    ----------
    read : list of read ports (`addr`, `en`, `o_en` in; `data` out)
    mode : (depth, width) or None
    """

    def __init__(self, width: int, depth: int, *, init: Sequence[int], ports: int = 1, domain: str = "sync",
                 name: str | None = None):
        if width < 1 or depth < 1:
            raise ValueError(f"a ROM needs a width and a depth of at least 1, not {width} x {depth}")
        if ports not in (1, 2):
            raise ValueError(f"a ROM has 1 or 2 read ports, not {ports}")
        init = [int(v) for v in init]
        if len(init) > depth or any(not 0 <= v < 1 << width for v in init):
            raise ValueError(f"init must be at most {depth} words of {width} bits")
        self._width, self._depth, self._init, self._domain = width, depth, init, domain
        self._name = name or "rom"
        self.read = [_ReadPort(width, depth, f"{self._name}_r{k}") for k in range(ports)]
        self.mode = dp16kd_mode(depth)

    def elaborate(self, platform):
        m = Module()
        if is_ecp5(platform) and self.mode is not None:
            self._dp16kd(m)
            return m
        mem = m.submodules.mem = memory.Memory(shape=self._width, depth=self._depth, init=self._init,
                                               attrs={"rom_style": "block"})
        for k, port in enumerate(self.read):
            rp = mem.read_port(domain="comb")
            m.d.comb += rp.addr.eq(port.addr)
            _read_registers(m, self._domain, rp.data, port.en, port.o_en, port.data, f"{self._name}_q{k}")
        return m

    def _dp16kd(self, m: Module) -> None:
        clk = ClockSignal(self._domain)
        mdepth, mwidth = self.mode
        abits = (mdepth - 1).bit_length()
        lo = 14 - abits
        # port B reads for read[0], port A for read[1] (or stays idle)
        sides = {"B": self.read[0], "A": self.read[1] if len(self.read) > 1 else None}
        addr = {}
        for p, port in sides.items():
            addr[p] = Signal(abits, name=f"{self._name}_a{p}")
            if port is not None:
                m.d.comb += addr[p].eq(port.addr)
        for c, pieces in enumerate(dp16kd_columns(self._width, self._width, mwidth)):
            ports = {"i_CLKA": clk, "i_CLKB": clk, "i_RSTA": Const(0, 1), "i_RSTB": Const(0, 1),
                     "i_WEA": Const(0, 1), "i_WEB": Const(0, 1)}
            for p, port in sides.items():
                do = Signal(18, name=f"c{c}_do{p.lower()}")
                ports[f"i_CE{p}"] = port.en if port is not None else Const(0, 1)
                ports[f"i_OCE{p}"] = port.o_en if port is not None else Const(0, 1)
                for i in range(3):
                    ports[f"i_CS{p}{i}"] = Const(0, 1)
                for i in range(14):
                    ports[f"i_AD{p}{i}"] = addr[p][i - lo] if i >= lo else Const(0, 1)
                for i in range(18):
                    ports[f"i_DI{p}{i}"] = Const(0, 1)
                    ports[f"o_DO{p}{i}"] = do[i]
                if port is not None:
                    for doff, bits, coff, _ in pieces:
                        m.d.comb += port.data[doff:doff + bits].eq(do[coff:coff + bits])
            _add_dp16kd(m, f"c{c}", mwidth, _column_words(self._init, pieces), "OUTREG", ports)
