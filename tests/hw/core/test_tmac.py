# amaranth: UnusedElaboratable=no
"""hw.core.tmac: trit decoders and the ternary MAC array in Amaranth simulation.

Vectors: random matrices and codes drawn here from seeded numpy generators, packed with
spec.weight_image.pack_trits (the image layout of docs/weight-image.md); expected sums from the
golden kernel golden/kernels.matvec_numpy and, as the deliberately naive model kept next to
the block, a per-tile Python loop (`tile_model`). Streams are driven under seeded pause
generators (idle cycles on `codes` and `weights`, random backpressure on `acc`, sim/tb/streams.py;
the stream hold rule checked on `acc`); every test also runs with no stalls.
"""
from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from golden.kernels import matvec_numpy
from hw.core.tmac import ARRAY_LATENCY, TernaryArray, TritDecoder, codes_groups
from sim.tb.streams import HoldCheck, Pauses, send
from spec import weight_image as wi
from spec.accel import CONFIGS, TRITS_PER_BYTE, AccelConfig

PACKINGS = tuple(TRITS_PER_BYTE)


def small_config(beat_bytes: int, packing: str, vlen: int = 64) -> AccelConfig:
    return AccelConfig(f"test{beat_bytes}-{packing}", beat_bytes=beat_bytes, packing=packing,
                       vector_lanes=1, vlen=vlen, rom_words=16)


# -- decoder ---------------------------------------------------------------------------------------

def decode_all(packing: str) -> list[list[int]]:
    """Every byte value through TritDecoder: [256][T] trits."""
    dut = TritDecoder(packing)
    out = []

    async def tb(ctx):
        for v in range(256):
            ctx.set(dut.byte, v)
            out.append([ctx.get(dut.trits[j]) for j in range(TRITS_PER_BYTE[packing])])

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    return out


@pytest.mark.parametrize("packing", PACKINGS)
def test_decoder_matches_unpack_trits_on_every_byte(packing):
    t = TRITS_PER_BYTE[packing]
    got = decode_all(packing)
    n_valid = 0
    for v in range(256):
        beat = np.array([v, 0, 0, 0], np.uint8)          # one byte = row 0, group 0, B = 4
        if wi.check_trit_bytes(beat, 1, t, packing, 4) is None:
            expect = wi.unpack_trits(beat, 1, t, packing, 4)[0].tolist()
            n_valid += 1
        else:
            expect = [0] * t                              # invalid codes decode to zero
        assert got[v] == expect, f"byte 0x{v:02x}"
    assert n_valid == {"2bit": 3 ** 4, "1.6bit": 3 ** 5}[packing]


@pytest.mark.parametrize("packing", PACKINGS)
def test_decoder_rejects_nothing_the_image_accepts(packing):
    # the image reader's invalid set is exactly the set the decoder zeroes (and not zero itself)
    got = decode_all(packing)
    for v in range(256):
        valid = wi.check_trit_bytes(np.array([v, 0, 0, 0], np.uint8), 1, TRITS_PER_BYTE[packing],
                                    packing, 4) is None
        if not valid:
            assert v != 0 and not any(got[v])


# -- array harness ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Stalls:
    """Pause-generator probabilities: idle before a transfer on codes / weights; acc not ready."""
    codes: float = 0.0
    weights: float = 0.0
    acc: float = 0.0


NO_STALLS = Stalls()
STALL_SETS = {
    "none": NO_STALLS,
    "light": Stalls(0.2, 0.2, 0.2),
    "heavy": Stalls(0.5, 0.5, 0.8),
    "acc_only": Stalls(0.0, 0.0, 0.7),
}


def beats_of(trits: np.ndarray, cfg: AccelConfig) -> list[tuple[int, int]]:
    """The packed matrix as (beat int, last-group flag) in stream order."""
    packed = wi.pack_trits(trits, cfg.packing, cfg.beat_bytes)
    tiles, groups, b = wi.packed_shape(*trits.shape, cfg.packing, cfg.beat_bytes)
    p3 = packed.reshape(tiles, groups, b)
    return [(int.from_bytes(p3[ti, g].tobytes(), "little"), int(g == groups - 1))
            for ti in range(tiles) for g in range(groups)]


def code_groups_of(codes: np.ndarray, t: int, rng: np.random.Generator) -> list[list[int]]:
    """Codes as column groups of T; columns past the end hold junk (their trits are zero)."""
    g = -(-codes.size // t)
    padded = rng.integers(-127, 128, g * t)
    padded[:codes.size] = codes
    return padded.reshape(g, t).tolist()


def tile_model(trits: np.ndarray, codes: np.ndarray, b: int) -> list[list[int]]:
    """Naive model: per row tile, B sums (padded rows 0), plain Python integers."""
    rows, cols = trits.shape
    out = []
    for tile in range(-(-rows // b)):
        sums = []
        for i in range(b):
            r = tile * b + i
            sums.append(sum(int(trits[r, k]) * int(codes[k]) for k in range(cols)) if r < rows else 0)
        out.append(sums)
    return out


class TB:
    """Drives a TernaryArray through a list of jobs; each job is (trits [rows, cols], codes [cols]),
    with `end` on its last beat (each job loads its own vector)."""

    def __init__(self, cfg: AccelConfig, jobs, *, stalls: Stalls = NO_STALLS, seed: int = 0):
        self.cfg = cfg
        self.dut = TernaryArray(cfg)
        self.jobs = jobs
        self.stalls = stalls
        self.seed = seed
        self.got: list[tuple[list[int], int]] = []
        self.accepted_cycles: list[int] = []
        self.codes_cycles: list[int] = []       # cycles of the codes transfers
        self.cycle = 0
        self.sources_done = set()
        self.n_tiles = sum(-(-w.shape[0] // cfg.row_lanes) for w, _ in jobs)
        # a lost transfer must fail the test, not hang it: a generous bound on the cycles needed
        work = sum(len(beats_of(w, cfg)) + -(-w.shape[1] // cfg.trits_per_byte) for w, _ in jobs)
        self.max_cycles = 100 * work + 1000

    async def codes_source(self, ctx):
        grng = np.random.default_rng(self.seed)

        def payloads():
            for _, codes in self.jobs:
                groups = code_groups_of(codes, self.cfg.trits_per_byte, grng)
                for g, group in enumerate(groups):
                    yield {"data": group, "last": int(g == len(groups) - 1)}

        await send(ctx, self.dut.codes, payloads(), Pauses(self.seed * 3 + 1, self.stalls.codes), name="codes")
        self.sources_done.add("codes")

    async def weights_source(self, ctx):
        def payloads():
            for trits, _ in self.jobs:
                beats = beats_of(trits, self.cfg)
                for n, (beat, last) in enumerate(beats):
                    yield {"data": beat, "last": last, "end": int(n == len(beats) - 1)}

        await send(ctx, self.dut.weights, payloads(), Pauses(self.seed * 3 + 2, self.stalls.weights),
                   name="weights")
        self.sources_done.add("weights")

    async def acc_sink(self, ctx):
        # cycle by cycle (not `receive`): it also counts the cycles on which weights beats are taken
        pauses = Pauses(self.seed * 3 + 3, self.stalls.acc)
        hold = HoldCheck("acc")
        dut = self.dut
        while len(self.got) < self.n_tiles:
            ready = not pauses.stall()
            ctx.set(dut.acc.ready, ready)
            _, _, valid, payload, w_take, c_take = await ctx.tick().sample(
                dut.acc.valid, dut.acc.payload, dut.weights.valid & dut.weights.ready,
                dut.codes.valid & dut.codes.ready)
            hold(valid, ready, payload)
            if w_take:
                self.accepted_cycles.append(self.cycle)
            if c_take:
                self.codes_cycles.append(self.cycle)
            self.cycle += 1
            assert self.cycle < self.max_cycles, f"only {len(self.got)} of {self.n_tiles} tiles came out"
            if valid and ready:
                self.got.append(([payload.data[i] for i in range(self.cfg.row_lanes)], payload.last))
        ctx.set(dut.acc.ready, 0)
        for _ in range(20):                       # nothing more may come out
            _, _, valid = await ctx.tick().sample(dut.acc.valid)
            assert not valid, "extra acc transfer"

    def run(self):
        sim = Simulator(self.dut)
        sim.add_clock(1e-8)
        sim.add_testbench(self.codes_source, background=True)
        sim.add_testbench(self.weights_source, background=True)
        sim.add_testbench(self.acc_sink)
        sim.run()
        return self

    def check(self):
        b = self.cfg.row_lanes
        assert self.sources_done == {"codes", "weights"}, "a source did not finish"
        expect = []
        for trits, codes in self.jobs:
            golden = matvec_numpy(trits, codes)
            model = tile_model(trits, codes, b)
            padded = np.zeros(len(model) * b, np.int64)
            padded[:golden.size] = golden
            assert padded.reshape(-1, b).tolist() == model      # the two references agree
            expect += [(sums, int(n == len(model) - 1)) for n, sums in enumerate(model)]
        assert len(self.got) == len(expect)
        for n, (got, exp) in enumerate(zip(self.got, expect, strict=True)):
            assert got == exp, f"tile {n}: got {got}, expected {exp}"


def random_job(rng: np.random.Generator, rows: int, cols: int, density: float = 0.7):
    trits = rng.choice(np.array([-1, 0, 1], np.int8), size=(rows, cols),
                       p=[density / 2, 1 - density, density / 2])
    codes = rng.integers(-127, 128, cols).astype(np.int8)
    return trits, codes


# -- array tests -----------------------------------------------------------------------------------

@pytest.mark.parametrize("stalls", list(STALL_SETS), ids=list(STALL_SETS))
@pytest.mark.parametrize("packing", PACKINGS)
@pytest.mark.parametrize("beat_bytes", [4, 8])
def test_array_matches_golden_on_random_matrices(beat_bytes, packing, stalls):
    cfg = small_config(beat_bytes, packing)
    seed = beat_bytes * 100 + PACKINGS.index(packing) * 10 + list(STALL_SETS).index(stalls)
    rng = np.random.default_rng(seed)
    # rows and cols not multiples of B or T, a single-group and a full-vlen matrix, back to back
    shapes = [(2 * beat_bytes + 3, 23), (beat_bytes - 1, 3), (beat_bytes + 1, cfg.vlen)]
    jobs = [random_job(rng, r, c) for r, c in shapes]
    TB(cfg, jobs, stalls=STALL_SETS[stalls], seed=seed).run().check()


@pytest.mark.parametrize("stalls", ["none", "heavy"])
@pytest.mark.parametrize("packing", PACKINGS)
def test_array_extremes_do_not_overflow(packing, stalls):
    # all +1 x all -128 and all -1 x all -128 over the longest vector: |sum| = 128 * vlen, the
    # bound config.acc_bits is sized for (TMATMUL reads int8 codes); 127 codes and mixed-sign
    # rows alongside
    cfg = small_config(4, packing, vlen=64)
    k = cfg.vlen
    trits = np.zeros((6, k), np.int8)
    trits[0] = 1
    trits[1] = -1
    trits[2, ::2], trits[2, 1::2] = 1, -1
    trits[3] = 1
    trits[4] = -1
    trits[5] = 0
    jobs = [(trits, np.full(k, -128, np.int8)), (trits, np.full(k, 127, np.int8)), (trits, np.full(k, -127, np.int8))]
    tb = TB(cfg, jobs, stalls=STALL_SETS[stalls], seed=7).run()
    tb.check()
    assert tb.got[0][0][0] == -128 * k and tb.got[0][0][1] == 128 * k
    assert (128 * k).bit_length() + 1 == cfg.acc_bits


@pytest.mark.parametrize("packing", PACKINGS)
def test_array_takes_one_beat_per_cycle_across_tiles(packing):
    # no stalls: the beats of a matrix are accepted in consecutive cycles, tile boundaries
    # included for tiles of at least ARRAY_LATENCY beats (the running sums and the output
    # register double-buffer them); the next matrix's first beat follows its first two codes
    # groups and the register that says so (the load overlaps the first tile)
    cfg = small_config(8, packing)
    t = cfg.trits_per_byte
    rng = np.random.default_rng(11)
    jobs = [random_job(rng, 8 * 5 - 2, 31), random_job(rng, 8 * 3, ARRAY_LATENCY * t)]
    tb = TB(cfg, jobs).run()
    tb.check()
    n0 = len(beats_of(jobs[0][0], cfg))
    first = tb.accepted_cycles[:n0]
    assert first == list(range(first[0], first[0] + n0))
    second = tb.accepted_cycles[n0:]
    assert second == list(range(second[0], second[0] + len(second)))
    # end beat; groups 0 and 1 written in the next two cycles; `ahead2` registered; beat 0
    assert second[0] - first[-1] == 4


@pytest.mark.parametrize("packing", PACKINGS)
def test_a_short_tile_waits_for_the_previous_tiles_sums(packing):
    # tiles of G < ARRAY_LATENCY beats: a last beat is taken only when the previous tile's sums
    # are in the output register and leaving it, so last beats are ARRAY_LATENCY cycles apart; the
    # other beats are not held
    cfg = small_config(8, packing)
    t = cfg.trits_per_byte
    rng = np.random.default_rng(13)
    jobs = [random_job(rng, 8 * 4, 2 * t)]             # G = 2: four tiles
    tb = TB(cfg, jobs).run()
    tb.check()
    cyc = tb.accepted_cycles
    lasts = cyc[1::2]
    assert [b - a for a, b in zip(lasts, lasts[1:], strict=False)] == [ARRAY_LATENCY] * 3
    assert all(cyc[k] - cyc[k - 1] == 1 for k in range(2, len(cyc), 2))       # a first beat right after a last


@pytest.mark.parametrize("stalls", ["none", "codes", "light", "heavy"])
@pytest.mark.parametrize("packing", PACKINGS)
def test_array_takes_first_tile_beats_while_codes_load(packing, stalls):
    # the weights overlap the codes load: beat g of a vector's first tile is taken after the cycle
    # group g was written, never in or before it (the codes memory's read port is not
    # transparent), and before the last group when the weights are there in time; later tiles
    # after the whole vector; G = 1 (a single group) and G = vlen / T included
    cfg = small_config(8, packing)
    t, b = cfg.trits_per_byte, cfg.row_lanes
    rng = np.random.default_rng(23 + PACKINGS.index(packing))
    jobs = [random_job(rng, 2 * b + 3, 23), random_job(rng, b - 1, 3), random_job(rng, b + 1, cfg.vlen),
            random_job(rng, 3 * b, 4 * t + 1)]
    sets = {"none": NO_STALLS, "codes": Stalls(codes=0.6), "light": STALL_SETS["light"],
            "heavy": STALL_SETS["heavy"]}
    tb = TB(cfg, jobs, stalls=sets[stalls], seed=31).run()
    tb.check()
    codes_at, beats_at = iter(tb.codes_cycles), iter(tb.accepted_cycles)
    overlapped = 0
    for trits, _ in jobs:
        rows, cols = trits.shape
        groups, tiles = -(-cols // t), -(-rows // b)
        written = [next(codes_at) for _ in range(groups)]
        beats = [next(beats_at) for _ in range(groups * tiles)]
        for g in range(groups):
            assert beats[g] > written[g], f"beat {g} taken in cycle {beats[g]}, group written in {written[g]}"
        assert beats[groups - 1] > written[-1]
        if stalls == "none":
            # beat g as soon as group g + 1 was written and the register that says so loaded (two
            # cycles after that write), or the whole vector is (the cycle after the last write),
            # one beat per cycle (a tile's last beat may wait)
            want, prev = [], -1
            for g in range(groups - 1):
                prev = max(prev + 1, min(written[g + 1] + 2, written[-1] + 1))
                want.append(prev)
            assert beats[:groups - 1] == want
        overlapped += beats[0] < written[-1]
    assert overlapped >= (3 if stalls in ("none", "codes") else 1)
    assert next(codes_at, None) is None and next(beats_at, None) is None


def test_array_holds_output_under_long_backpressure():
    # acc never ready for a long time: the array fills its accumulators and output register,
    # then stalls weights; all tiles come out once acc is ready
    cfg = small_config(4, "2bit")
    rng = np.random.default_rng(5)
    jobs = [random_job(rng, 4 * 6, 9)]
    tb = TB(cfg, jobs, stalls=Stalls(acc=0.97), seed=3).run()
    tb.check()


@pytest.mark.parametrize("config", [*CONFIGS, "test8-2bit"])
def test_array_has_no_multiplier(config):
    # every named configuration (ddr4 included) and a small 2-bit one: the elaborated RTLIL has
    # adders, subtractors and muxes, but no $mul cell
    cfg = CONFIGS[config] if config in CONFIGS else small_config(8, "2bit")
    text = rtlil.convert(TernaryArray(cfg))
    cells = set(re.findall(r"^\s*cell \\?(\$\w+)", text, re.M))
    assert "$mul" not in cells, cells
    assert "$add" in cells                              # the products are added, not multiplied


def test_bench_reports_full_rate_in_simulated_cycles(tmp_path):
    from sim.benches import tmac as bench_tmac

    out = tmp_path / "tmac.json"
    assert bench_tmac.main(["--config", "ice40", "--stalls", "0.5", "-o", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["unit"] == "simulated cycles"
    unstalled = [c for c in report["cases"] if c["acc_stall_probability"] == 0]
    assert unstalled and all(c["beat_fraction_while_valid"] >= 0.95 for c in unstalled)
    assert all(c["checked_against_golden"] for c in report["cases"])


def test_array_signature_follows_config():
    cfg = small_config(8, "1.6bit", vlen=100)
    dut = TernaryArray(cfg)
    assert dut.config is cfg
    assert dut.weights.payload.data.shape().width == cfg.beat_bits
    assert len(dut.codes.payload.data) == cfg.trits_per_byte
    assert len(dut.acc.payload.data) == cfg.row_lanes
    assert dut.acc.payload.data[0].shape().width == cfg.acc_bits
    assert dut.acc.payload.data[0].shape().signed
    assert codes_groups(cfg) == 20
    assert set(dut.signature.members) == {"codes", "weights", "acc"}


# -- parameter validation --------------------------------------------------------------------------

@pytest.mark.parametrize("packing", ["3bit", "", None, 2])
def test_decoder_rejects_unknown_packing(packing):
    with pytest.raises(ValueError,
                       match=re.escape(f"packing must be one of ['1.6bit', '2bit'], got {packing!r}")):
        TritDecoder(packing)


@pytest.mark.parametrize("config", ["ddr4", None, 64])
def test_array_rejects_non_config(config):
    with pytest.raises(TypeError, match=re.escape(f"config must be an AccelConfig, got {config!r}")):
        TernaryArray(config)
