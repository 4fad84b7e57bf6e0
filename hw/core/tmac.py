"""Ternary matrix-vector array (TMATMUL's datapath): trit decoders and the adder-only MAC array.

Implements the weight layout of docs/weight-image.md, section "Trit packing" (spec.weight_image,
`pack_trits` / `unpack_trits`): one memory beat = one column group of one row tile, `beat_bytes`
rows x T columns (T = 4 at "2bit", 5 at "1.6bit"); byte i of a beat is row ``tile * B + i``; within
a tile the groups g = 0 .. G-1 come in order, G = ceil(cols / T). The reference is
golden/kernels.matvec: ``acc[r] = sum_k W[r, k] * codes[k]`` (int32). DESIGN.md section 5: the
array consumes a full memory beat per cycle (B * T ternary products), without multipliers.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spec import weight_image as wi
from spec.accel import TRITS_PER_BYTE, AccelConfig

__all__ = ["ARRAY_LATENCY", "CODE_BITS", "TernaryArray", "TritDecoder", "codes_groups", "trit_layout"]

#: Width of one activation code (int8; the numerics keep codes in [-127, 127]).
CODE_BITS = 8


def trit_layout(packing: str) -> data.ArrayLayout:
    """T trits, each a 2-bit two's-complement value in {-1, 0, +1}."""
    return data.ArrayLayout(signed(2), TRITS_PER_BYTE[packing])


def codes_groups(config: AccelConfig) -> int:
    """Depth of the codes memory: column groups of the longest vector (ceil(vlen / T))."""
    return -(-config.vlen // config.trits_per_byte)


def _check_packing(packing) -> None:
    if not isinstance(packing, str) or packing not in TRITS_PER_BYTE:
        raise ValueError(f"packing must be one of {sorted(TRITS_PER_BYTE)}, got {packing!r}")


class TritDecoder(wiring.Component):
    """One packed weight byte -> T trits, combinational.

    Parameters
    ----------
    packing : ``"2bit"`` | ``"1.6bit"``
        Code of docs/weight-image.md: at ``"2bit"`` trit j is bits [2j+1:2j] (0b00 = 0, 0b01 = +1,
        0b11 = -1); at ``"1.6bit"`` the byte is ``sum_j d_j * 3**j`` with d = 0, 1, 2 for 0, +1, -1.

    Attributes
    ----------
    byte : In(8)
        The packed byte.
    trits : Out(ArrayLayout(signed(2), T))
        ``trits[j]`` is the trit of column ``g * T + j``, as a 2-bit two's-complement number.
        Bit 0 is "non-zero", bit 1 is "negative", which is all the MAC array looks at.

    An invalid byte (any 2-bit field 0b10; a 1.6-bit byte > 242) decodes to T zero trits, as in
    spec.weight_image's decode table. The weight-image reader
    (spec.weight_image.check_trit_bytes) rejects such images, so hardware never sees them from a
    valid image; the zero decode only makes the behaviour defined.
    """

    def __init__(self, packing: str):
        _check_packing(packing)
        self._packing = packing
        super().__init__({
            "byte": In(8),
            "trits": Out(trit_layout(packing)),
        })

    @property
    def packing(self) -> str:
        return self._packing

    def elaborate(self, platform):
        m = Module()
        t = TRITS_PER_BYTE[self._packing]
        if self._packing == "2bit":
            fields = [self.byte[2 * j:2 * j + 2] for j in range(t)]
            valid = ~_any(f == 0b10 for f in fields)
            for j in range(t):
                m.d.comb += self.trits[j].eq(Mux(valid, fields[j], 0b00))
        else:
            # Base-3 digits by restoring "division": per digit (most significant first) two
            # compares against 3**j and 2 * 3**j and a constant subtract; no divider or table.
            rest = self.byte
            trits = [None] * t
            for j in reversed(range(t)):
                p = 3 ** j
                ge2 = rest >= 2 * p
                ge1 = rest >= p
                trits[j] = Mux(ge2, 0b11, Mux(ge1, 0b01, 0b00))
                nxt = Signal(range(p), name=f"rest{j}")
                m.d.comb += nxt.eq(Mux(ge2, rest - 2 * p, Mux(ge1, rest - p, rest)))
                rest = nxt
            valid = self.byte < 3 ** t
            for j in range(t):
                m.d.comb += self.trits[j].eq(Mux(valid, trits[j], 0b00))
        return m


#: Cycles from the cycle a tile's last beat is accepted to the cycle its sums are valid on ``acc``:
#: the codes group and the trits are read at the acceptance edge and registered (edge 1), then the
#: products and first sums (2), the lane sum (3) and the accumulation (4) are register stages.
ARRAY_LATENCY = 5


class TernaryArray(wiring.Component):
    """Adder-only ternary matrix x int8 vector array: one weight beat (B rows x T columns) per cycle.

    Parameters
    ----------
    config : spec.accel.AccelConfig
        B = ``config.row_lanes`` (= ``beat_bytes``) row lanes; T = ``config.trits_per_byte``
        trits per byte; the codes memory holds ``ceil(config.vlen / T)`` column groups; sums are
        ``config.acc_bits`` wide (exact for any int8 code, -128 included, and cols <= vlen).

    Attributes
    ----------
    codes : In(stream.Signature(StructLayout({"data": ArrayLayout(signed(8), T), "last": 1})))
        The int8 codes of the vector, one column group per transfer (``data[j]`` = code of column
        ``g * T + j``, columns past the end of the vector may hold anything: their trits are zero),
        groups g = 0, 1, ... in order, ``last`` on the final group. Written into the codes memory
        at address g. ``ready`` is high only while no vector is loaded (after reset, and after the
        beat with ``end`` has been accepted on ``weights``): one codes memory, not double-buffered,
        so the next vector's load starts only after the current one's last beat. At most
        ``ceil(vlen / T)`` groups: more are not checked and wrap around the memory.
    weights : In(stream.Signature(StructLayout({"data": beat_bits, "last": 1, "end": 1})))
        Packed weight beats in image order. ``data`` byte i = row lane i (row ``tile * B + i``),
        ``last`` marks the last column group of a row tile (the beat after it starts the next tile
        at group 0), ``end`` marks the last beat that uses the loaded codes (``end`` must come
        with ``last``: the tile's sums are only emitted on ``last``); the codes memory is then
        free for the next vector. ``ready`` is high only while the next beat's codes group is in
        the memory: once the vector is loaded, every beat; while it is still being loaded (the
        first tile), beat g from the second cycle after group g + 1 was written (a register says
        that two groups are ahead, so no compare is in ``ready``'s path; the weights overlap the
        load: beat g of the first tile needs only groups 0 .. g, and later tiles come after the
        first tile's last beat, which needs the whole vector). A beat with ``last`` is taken only
        while no other tile's last beat is in the pipeline and the ``acc`` register is free or
        being read (so its sums find the register free when they arrive): ``ready``
        depends on ``payload.last``, on ``acc.ready`` and on nothing else of the streams. A tile
        must have exactly as many groups as the vector has codes transfers (G = ceil(cols / T));
        ``end`` may be set on the last beat of one matrix or of several that share the vector.
    acc : Out(stream.Signature(StructLayout({"data": ArrayLayout(signed(acc_bits), B), "last": 1})))
        One transfer per row tile, in tile order: ``data[i]`` = ``sum_k W[tile * B + i, k] *
        code[k]`` (padded rows give 0), ``last`` = the tile's last beat had ``end`` set.

    Handshakes are those of amaranth.lib.stream: a transfer happens in a cycle where ``valid`` and
    ``ready`` are both high; ``valid`` never waits for ``ready``, and once asserted stays with its
    payload until the transfer.

    Pipeline (hardware: one carry chain or one LUT level and a register per stage, no stall
    inside; docs/core.md): a beat's codes group and, at 1.6 bits, its trits (a 256-entry ROM per
    lane pair, spec.weight_image.decode_table) are read at its acceptance and registered; the
    products (+code, -code or 0: muxes, no multiplier) and the first sums, then the lane sum,
    then the accumulation are each a register stage. The control never stalls the pipeline: a
    beat, once taken, reaches the accumulators four edges later.

    Throughput: with a vector loaded and ``acc`` read as soon as it is valid, one beat per cycle
    across tile boundaries and from one matrix to the next for tiles of at least ARRAY_LATENCY
    beats (a shorter tile's last beat waits for the previous tile's sums to leave: last beats are at
    least ARRAY_LATENCY cycles apart); while the codes load at one group per cycle, one beat per
    cycle one cycle behind the load. Latency: a tile's sums are on ``acc`` ARRAY_LATENCY cycles
    after the cycle its last beat was accepted.
    """

    def __init__(self, config: AccelConfig):
        if not isinstance(config, AccelConfig):
            raise TypeError(f"config must be an AccelConfig, got {config!r}")
        self._config = config
        t, b = config.trits_per_byte, config.row_lanes
        super().__init__({
            "codes": In(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(CODE_BITS), t),
                "last": 1,
            }))),
            "weights": In(stream.Signature(data.StructLayout({
                "data": config.beat_bits,
                "last": 1,
                "end": 1,
            }))),
            "acc": Out(stream.Signature(data.StructLayout({
                "data": data.ArrayLayout(signed(config.acc_bits), b),
                "last": 1,
            }))),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        b, t = cfg.row_lanes, cfg.trits_per_byte
        depth = codes_groups(cfg)

        m.submodules.codes_mem = codes_mem = memory.Memory(
            shape=data.ArrayLayout(signed(CODE_BITS), t), depth=depth, init=[])
        wr = codes_mem.write_port()
        rd = codes_mem.read_port()          # synchronous, not transparent: read at acceptance

        loaded = Signal()                   # a vector is in the codes memory
        wptr = Signal(range(depth))         # next codes group to write
        gptr = Signal(range(depth))         # column group of the next weights beat

        # -- codes load: only while no vector is loaded, so a matmul never sees a half vector --
        m.d.comb += [
            self.codes.ready.eq(~loaded),
            wr.addr.eq(wptr),
            wr.data.eq(self.codes.payload.data),
            wr.en.eq(self.codes.valid & self.codes.ready),
        ]
        with m.If(self.codes.valid & self.codes.ready):
            m.d.sync += wptr.eq(wptr + 1)
            with m.If(self.codes.payload.last):
                m.d.sync += [wptr.eq(0), loaded.eq(1)]

        # -- admission (edge 0): the beat's codes group must be in the memory, and a tile's last beat
        # needs the output register free when its sums arrive (no other last beat in flight)
        last_pending = Signal()             # a last beat is in the pipeline, its sums not yet out
        slot_free = Signal()
        m.d.comb += slot_free.eq(~last_pending & (~self.acc.valid | self.acc.ready))
        # the beat's codes group is in the memory: the whole vector is, or (a register) at least two
        # groups were ahead of gptr in the cycle before (at most one beat was taken since), so the
        # compare is not in `ready`'s path; the copy runs a group or two ahead of the beats
        ahead2 = Signal()
        m.d.sync += ahead2.eq(gptr + 1 < wptr)
        group_in = Signal()
        m.d.comb += group_in.eq(loaded | ahead2)
        m.d.comb += self.weights.ready.eq(group_in & (~self.weights.payload.last | slot_free))
        take = Signal()
        m.d.comb += take.eq(self.weights.valid & self.weights.ready)
        m.d.comb += [rd.addr.eq(gptr), rd.en.eq(1)]
        with m.If(take):
            m.d.sync += gptr.eq(Mux(self.weights.payload.last, 0, gptr + 1))
            with m.If(self.weights.payload.end):
                # the end beat's codes are read at this edge; later writes cannot reach it
                m.d.sync += loaded.eq(0)

        # the beat's flags down the pipeline: stage k holds them after edge k (k = 1 .. 4). Only
        # `valid` and the accumulators are reset: the data registers (and `last`, `end`) are read only
        # under `valid`, and a reset net into every lane's registers was an ECPIX-5 build's worst path
        n = ARRAY_LATENCY - 1
        valid = [Signal(name=f"v{k}") for k in range(n + 1)]
        last = [Signal(name=f"last{k}", reset_less=True) for k in range(n + 1)]
        end = [Signal(name=f"end{k}", reset_less=True) for k in range(n + 1)]
        m.d.comb += [valid[0].eq(take), last[0].eq(self.weights.payload.last), end[0].eq(self.weights.payload.end)]
        for k in range(1, n + 1):
            m.d.sync += [valid[k].eq(valid[k - 1]), last[k].eq(last[k - 1]), end[k].eq(end[k - 1])]

        # -- edge 1: the codes group and every lane's trits, registered ------------------------------
        trits = self._trits(m, b, t, take)  # per lane: T trits valid after edge 1 (data.View)
        codes1 = Signal(data.ArrayLayout(signed(CODE_BITS), t), reset_less=True)
        m.d.sync += codes1.eq(rd.data)

        # -- edge 2: products (muxes of +code, ~code, 0) and the first sums --------------------------
        # -code = ~code + 1: the product of a -1 trit is ~code (an inverter in the lane's mux, no
        # carry chain on the codes broadcast to every lane), and the lane's count of -1 trits is
        # added in the lane sum (one more term in the same two adder levels)
        pos = [codes1[j].as_signed() for j in range(t)]
        sum_shape = signed(CODE_BITS + 1 + (t - 1).bit_length())
        with m.If(self.acc.valid & self.acc.ready):
            m.d.sync += self.acc.valid.eq(0)
        with m.If(valid[n] & last[n]):
            m.d.sync += [self.acc.valid.eq(1), self.acc.payload.last.eq(end[n])]
        with m.If(take & self.weights.payload.last):
            m.d.sync += last_pending.eq(1)
        with m.Elif(valid[n] & last[n]):
            m.d.sync += last_pending.eq(0)
        for i in range(b):
            products = []
            negs = []
            for j in range(t):
                trit = trits[i][j]
                p = Signal(signed(CODE_BITS + 1), name=f"p{i}_{j}")
                # bit 0 = non-zero, bit 1 = negative (TritDecoder): a mux, not a multiplier
                m.d.comb += p.eq(Mux(trit[0], Mux(trit[1], ~pos[j], pos[j]), 0))
                products.append(p)
                negs.append(trit[0] & trit[1])
            nneg = Signal(range(t + 1), name=f"nneg{i}", reset_less=True)
            m.d.sync += nneg.eq(sum(negs))
            pairs = []
            for k in range(0, t, 2):
                s2 = Signal(signed(CODE_BITS + 2), name=f"s{i}_{k}", reset_less=True)
                m.d.sync += s2.eq(products[k] + products[k + 1] if k + 1 < t else products[k])
                pairs.append(s2)
            # -- edge 3: the lane sum --------------------------------------------------------------------
            lane_sum = Signal(sum_shape, name=f"lane_sum{i}", reset_less=True)
            m.d.sync += lane_sum.eq(_adder_tree(pairs + [nneg]))
            # -- edge 4: accumulate; a tile's last beat moves the total to the output register and clears
            # the lane, so the next tile's first beat (one edge behind) starts from zero
            acc = Signal(signed(cfg.acc_bits), name=f"acc{i}")
            total = acc + lane_sum
            with m.If(valid[n]):
                m.d.sync += acc.eq(Mux(last[n], 0, total))
            with m.If(valid[n] & last[n]):
                m.d.sync += self.acc.payload.data[i].eq(total)
        return m

    def _trits(self, m: Module, b: int, t: int, take) -> list:
        """Every lane's T trits, registered at edge 1 like the codes group: at 1.6 bits read at the
        acceptance edge from a decoder ROM (the weight image's decode table; a block RAM in
        hardware, two lanes per RAM), at 2 bits the beat registered at acceptance and its bit
        pairs decoded (TritDecoder)."""
        beat = self.weights.payload.data
        layout = trit_layout(self._config.packing)
        out = []
        if self._config.packing == "1.6bit":
            table, _ = wi.decode_table(self._config.packing)
            init = [[int(v) for v in row] for row in table]
            for pair in range(-(-b // 2)):
                rom = m.submodules[f"trit_rom{pair}"] = memory.Memory(
                    shape=layout, depth=256, init=init, attrs={"rom_style": "block"})
                for i in range(2 * pair, min(2 * pair + 2, b)):
                    port = rom.read_port()
                    m.d.comb += [port.addr.eq(beat[8 * i:8 * i + 8]), port.en.eq(1)]
                    r = Signal(layout, name=f"trits{i}", reset_less=True)
                    m.d.sync += r.eq(port.data)
                    out.append(r)
            return out
        beat1 = Signal.like(beat, name="beat1", reset_less=True)
        m.d.sync += beat1.eq(beat)
        for i in range(b):
            dec = m.submodules[f"dec{i}"] = TritDecoder(self._config.packing)
            m.d.comb += dec.byte.eq(beat1[8 * i:8 * i + 8])
            r = Signal(layout, name=f"trits{i}", reset_less=True)
            m.d.sync += r.eq(dec.trits)
            out.append(r)
        return out


def _adder_tree(values):
    """Balanced sum (log2 depth) of a list of values."""
    values = list(values)
    while len(values) > 1:
        values = [values[k] + values[k + 1] if k + 1 < len(values) else values[k]
                  for k in range(0, len(values), 2)]
    return values[0]


def _any(conds):
    conds = list(conds)
    out = conds[0]
    for c in conds[1:]:
        out = out | c
    return out
