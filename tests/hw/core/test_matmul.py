# amaranth: UnusedElaboratable=no
"""hw.core.matmul: MatmulUnit (TMATMUL) against the golden machine's formula, through the register
channels of hw.core.iface and a RAM behind the memory port (sim/tb/unit.py).

Provenance of the vectors: seeded random trit matrices packed with spec.weight_image.pack_trits at
the config's packing and beat, placed at random beat-aligned addresses of a RAM whose other bytes
are 0xFF (invalid trit codes: a read outside the matrix would show); register contents drawn here
(int8 codes, elements with high bits set to check the int8 truncation, FX extremes); SF mantissas
in [2**23, 2**24) or 0, exponents from -2048 to 2047 with the rounding, clamp and saturation
boundaries over-sampled. Expected: exactly golden.machine's `_tmatmul` — unpack_trits of the packed
bytes, golden.kernels.matvec_numpy with int8(Vs), ops.apply_sf(acc, ops.sf_shift(Fs, FX_FRAC))
into Vd[:rows], the rest of Vd kept. apply_sf is evaluated by its definition in Python integers
(`apply_sf_exact`) and checked against ops.apply_sf wherever that one can evaluate it: for
``e + FX_FRAC <= -64`` ops.rshift_round overflows int64 (OverflowError), and the definition's
result there is 0.

Every run is watched cycle by cycle (`Bench`): Vs read word 0 .. ceil(VL/lanes)-1 in order, all
at least 8 cycles before the first write (in place works, with the weights overlapping the copy);
Vd written word 0 .. ceil(rows/lanes)-1 in order with the row mask on the last word; `done` with
the last write; `cmd.ready` exactly while idle, no channel activity while idle; the memory port
never writes; its read commands cover exactly the matrix's beats, contiguously from Aw; the whole
register file after every instruction.
"""
from __future__ import annotations

import dataclasses
import json
import random
import types

import numpy as np
import pytest

from golden import ops as O
from golden.kernels import matvec_numpy
from hw.core import matmul as matmul_module
from hw.core.matmul import RESCALE_LATENCY, MatmulUnit, ceil_div_const, copy_keeps_up
from hw.core.readq import QUEUE_LATENCY
from hw.core.tmac import ARRAY_LATENCY
from hw.mem.port import MAX_BURST
from sim.benches import matmul as bench_matmul
from sim.tb import unit
from sim.tb.streams import Pauses
from spec import isa
from spec import numerics as N
from spec import weight_image as wi
from spec.accel import AccelConfig, get_config


def _config(packing: str, beat: int, lanes: int, vlen: int) -> AccelConfig:
    return unit.config(packing=packing, beat_bytes=beat, vector_lanes=lanes, vlen=vlen)


#: 1.6bit/16-byte beat/4 lanes (ecp5-like), 2bit/8/1, 1.6bit/64/16 with vlen not a multiple of B,
#: 1.6bit/256/64 (ddr4x4-like, vlen not a multiple of B either).
#: The first two copy the codes slower than a group a cycle (lanes < T: the weights wait for the whole
#: copy by default), the last two faster (the weights overlap the copy).
CONFIGS = {
    "ecp5s": _config("1.6bit", 16, 4, 128),
    "b8l1": _config("2bit", 8, 1, 64),
    "b64l16": _config("1.6bit", 64, 16, 96),
    "b256l64": _config("1.6bit", 256, 64, 320),     # ddr4x4's beat and lanes (4 DRAM lines a beat)
}
#: ddr4's beat, packing and lanes with a 1024-element register (the 370m model's d): timing tests only
EXTRA_CONFIGS = {"ddr4s": _config("1.6bit", 64, 16, 1024)}
#: Cycles from acceptance to the first weight beat with overlap on a RAM model that never stalls:
#: the first two groups of codes (the read queue's latency, the gearbox) and the array's register
#: that says two groups are in (hw.core.tmac); the command goes out meanwhile (G, the beat count:
#: the setup pipeline, then the RAM model's 1-cycle latency).
FIRST_BEAT = 5 + QUEUE_LATENCY


# -- the reference: golden.machine._tmatmul ---------------------------------------------------------
def int8(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, np.int64).astype(np.int8)       # the low 8 bits, signed (the cast wraps)


def apply_sf_exact(acc: np.ndarray, sf: tuple[int, int]) -> np.ndarray:
    """ops.apply_sf(acc, ops.sf_shift(sf, FX_FRAC)) by its definition, in Python integers:
    round_half_up(acc * m * 2**(e + FX_FRAC)) saturated to FX, 0 when m == 0."""
    m, e = sf
    s = e + N.FX_FRAC
    out = []
    for a in acc.tolist():
        p = a * m
        y = p << s if s >= 0 else (p + (1 << (-s - 1))) >> -s
        out.append(0 if m == 0 else min(max(y, N.FX_MIN), N.FX_MAX))
    return np.array(out, np.int64)


def golden(packed: np.ndarray, rows: int, vs: np.ndarray, sf: tuple[int, int], config: AccelConfig) -> np.ndarray:
    x = int8(vs)
    w = wi.unpack_trits(packed, rows, x.size, config.packing, config.beat_bytes)
    acc = matvec_numpy(w, x).astype(np.int64)
    want = apply_sf_exact(acc, sf)
    try:
        ref = O.apply_sf(acc, O.sf_shift(sf, N.FX_FRAC))
    except OverflowError:
        # golden.ops.rshift_round cannot shift an int64 by 64 or more (e + FX_FRAC <= -64);
        # the definition gives 0 there (rounding included), which is what the exact model returns
        assert -(sf[1] + N.FX_FRAC) >= 64 and not want.any()
    else:
        np.testing.assert_array_equal(want, ref, err_msg=f"exact model vs ops.apply_sf, sf {sf}")
    return want


# -- operands ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instr:
    vl: int
    rows: int
    vd: int
    vs: int
    mant: int
    exp: int
    addr: int = -1           # set when placed in the RAM
    seed: int = 0            # of its trit matrix
    pattern: str = "random"  # "random" | "alternating": rows of all +1 and all -1

    @property
    def sf(self) -> tuple[int, int]:
        return self.mant, self.exp


def product_bits(config: AccelConfig) -> int:
    return config.acc_bits + N.SF_BITS + 1


def _exp(config: AccelConfig, rng: random.Random) -> int:
    """An SF exponent: typical scales, the rounding region (shifts 0 .. 3 either way), the clamp
    edges of the shifter (right shift of the whole product, left shift that saturates), extremes."""
    lo, hi = -(1 << (N.SF_EXP_BITS - 1)), (1 << (N.SF_EXP_BITS - 1)) - 1
    right_edge = N.FX_FRAC - (N.FX_BITS + 1) - product_bits(config)   # rsa clamp
    c = rng.randrange(8)
    if c == 0:
        return rng.randint(-N.FX_FRAC - 4, -N.FX_FRAC + 4)               # n = -(e + 24) near 0
    if c == 1:
        return rng.randint(right_edge - 3, right_edge + 3)
    if c == 2:
        return rng.randint(-N.FX_FRAC - product_bits(config) - 2, -N.FX_FRAC - 20)  # results near 0, +-1
    if c == 3:
        return rng.randint(N.FX_BITS - N.FX_FRAC - 30, N.FX_BITS - N.FX_FRAC + 3)   # saturation edge
    if c == 4:
        return rng.choice([lo, lo + 1, hi, hi - 1, 0, -1, 1])
    if c == 5:
        return rng.randint(lo, hi)
    return rng.randint(-N.FX_FRAC - 40, -N.FX_FRAC - 10)                # typical: FX outputs


def _mant(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.1:
        return 0
    if r < 0.2:
        return rng.choice([1 << (N.SF_BITS - 1), (1 << N.SF_BITS) - 1])
    return rng.randint(1 << (N.SF_BITS - 1), (1 << N.SF_BITS) - 1)


def _vl(config: AccelConfig, rng: random.Random, top: int | None = None) -> int:
    lanes, t, top = config.vector_lanes, config.trits_per_byte, top or config.vlen
    edges = [v for v in (1, 2, t - 1, t, t + 1, lanes - 1, lanes + 1, 2 * t + 1, top - 1, top) if 1 <= v <= top]
    return rng.choice(edges) if rng.random() < 0.4 else rng.randint(1, top)


def _rows(config: AccelConfig, rng: random.Random, top: int | None = None) -> int:
    b, lanes, top = config.beat_bytes, config.vector_lanes, top or config.vlen
    edges = [v for v in (1, lanes - 1, lanes + 1, b - 1, b, b + 1, 2 * b - 1, top - 1, top) if 1 <= v <= top]
    return rng.choice(edges) if rng.random() < 0.4 else rng.randint(1, top)


def program(config: AccelConfig, rng: random.Random, n: int, *, max_vl: int | None = None,
            max_rows: int | None = None) -> list[Instr]:
    prog = []
    for k in range(n):
        vs = rng.randrange(isa.N_VREGS)
        vd = vs if rng.random() < 0.3 else rng.randrange(isa.N_VREGS)
        prog.append(Instr(_vl(config, rng, max_vl), _rows(config, rng, max_rows), vd, vs,
                          _mant(rng), _exp(config, rng), seed=rng.randrange(1 << 30) + k))
    return prog


def fill(config: AccelConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """8 registers: mostly int8 codes, some elements with high bits set (the unit reads the low 8
    bits), some FX extremes."""
    V = []
    for _ in range(isa.N_VREGS):
        v = rng.integers(-128, 128, config.vlen).astype(np.int64)
        hi = rng.random(config.vlen) < 0.2
        v[hi] = rng.integers(N.FX_MIN, N.FX_MAX, int(hi.sum()), endpoint=True)
        ext = rng.random(config.vlen) < 0.03
        v[ext] = rng.choice([N.FX_MIN, N.FX_MAX, -128, 127, 128, -129], int(ext.sum()))
        V.append(v)
    return V


def trits_for(ins: Instr) -> np.ndarray:
    if ins.pattern == "alternating":
        w = np.ones((ins.rows, ins.vl), np.int8)
        w[1::2] = -1
        return w
    rng = np.random.default_rng(ins.seed)
    p = rng.choice([0.1, 0.33, 0.5])
    return rng.choice(np.array([-1, 0, 1], np.int8), size=(ins.rows, ins.vl), p=[p, 1 - 2 * p, p])


# -- the testbench -------------------------------------------------------------------------------
@dataclasses.dataclass
class Run(unit.Run):
    beats: list[list[int]] = dataclasses.field(default_factory=list)   # each instruction's mem.rd transfers
    commands: list[list[tuple[int, int, bool]]] = dataclasses.field(default_factory=list)


class Bench:
    """A MatmulUnit with RegModel and RamModel behind it, in one simulation kept for every run of
    the module (elaborating and compiling the unit for the simulator costs more than most runs).

    Each `run` hands a job to the simulation's two background testbenches: a command source with
    seeded random idle gaps, and the contract watch (sim.tb.unit.Monitor) with the checks of the
    module docstring and the register file against the golden formula after every instruction.
    The RAM contents and stalls and the register file are set per run; a run starts and ends with
    the unit idle. A failed run leaves the simulation unusable: the bench is then dropped.
    """

    def __init__(self, config: AccelConfig, *, max_burst: int = MAX_BURST, overlap: bool | None = None):
        self.config = config
        self.dut = MatmulUnit(config, max_burst=max_burst, overlap=overlap)
        self.max_burst = max_burst
        self.regs = unit.RegModel(config)
        self.ram = unit.RamModel(bytearray(), config.beat_bytes)
        self.job = None
        self.sim = unit.simulator(self.dut, self.regs, self.ram)
        for part in ("source", "watch"):
            self.sim.add_testbench(self._serve(part), background=True)
        self.broken = False

    def _serve(self, part: str):
        """A background testbench that runs `part` of each job once, from the edge it sees the job."""
        async def testbench(ctx):
            while True:
                job = self.job
                if job is None or part in job.finished:
                    await ctx.tick()
                    continue
                await getattr(job, part)(ctx)
                job.finished.add(part)
        return testbench

    def run(self, init: list[np.ndarray], prog: list[Instr], *, mem_stall: float = 0.0, gap: float = 0.0,
            seed: int = 0) -> Run:
        assert not self.broken
        dut, cfg, regs, ram = self.dut, self.config, self.regs, self.ram
        lanes, b, t = cfg.vector_lanes, cfg.beat_bytes, cfg.trits_per_byte
        rng = random.Random(seed)
        # place every matrix at a random beat-aligned address; 0xFF (invalid codes) around them
        placed, pos, chunks = [], rng.randrange(4) * b, []
        for ins in prog:
            packed = wi.pack_trits(trits_for(ins), cfg.packing, b) if ins.rows else np.zeros(0, np.uint8)
            placed.append((dataclasses.replace(ins, addr=pos), packed))
            chunks.append((pos, packed))
            pos += packed.size + rng.randrange(3) * b
        mem = bytearray(b"\xff" * (pos + 2 * b))
        for a, packed in chunks:
            mem[a:a + packed.size] = packed.tobytes()
        prog = [p for p, _ in placed]
        ram.mem, ram.pauses, ram.commands = mem, Pauses(seed + 1, mem_stall), []

        regs.load(init)
        want = [v.copy() for v in init]
        expected = []
        for ins, packed in placed:
            if ins.rows:
                want[ins.vd][:ins.rows] = golden(packed, ins.rows, want[ins.vs][:ins.vl], ins.sf, cfg)
            expected.append([v.copy() for v in want])
        junk = random.Random(seed + 2)
        payloads = [unit.cmd_payload("TMATMUL", vl=ins.vl, vd=ins.vd, vs=ins.vs, addr=ins.addr, rows=ins.rows,
                                     sf={"mantissa": ins.mant, "exponent": ins.exp},
                                     # fields this unit must ignore
                                     vt=junk.randrange(isa.N_VREGS), ad=junk.randrange(isa.N_AREGS),
                                     s0=junk.randrange(1 << 20), s1=junk.randrange(1 << 20))
                    for ins in prog]
        beats_of = [-(-ins.rows // b) * -(-ins.vl // t) for ins in prog]
        work = sum(n + ins.vl + 2 * ins.rows + 30 for n, ins in zip(beats_of, prog, strict=True))
        limit = int(work / (1 - mem_stall) ** 2) * 3 + int(len(prog) * 50 * gap / (1 - gap)) + 200
        run = Run()
        c = types.SimpleNamespace()

        def every(s):
            assert not s.mwr, f"cycle {s.cycle}: mem.wr.valid"

        def start(k):
            run.beats.append([])
            c.nread = c.nwrite = 0
            c.last_read = c.first_write = None
            c.ncmd0 = len(ram.commands)

        def busy(s):
            ins, where = prog[s.k], s.where
            n_reads = -(-ins.vl // lanes) if ins.rows else 0
            n_writes = -(-ins.rows // lanes)
            if s.beat:
                run.beats[s.k].append(s.cycle)
            if s.rs_en:
                assert c.nread < n_reads, f"{where}: read past word {n_reads - 1}"
                assert s.rs_addr == c.nread, f"{where}: rs read word {s.rs_addr}, expected {c.nread}"
                assert s.rs_reg == ins.vs, f"{where}: rs names V{s.rs_reg}"
                c.nread += 1
                c.last_read = s.cycle
            if s.wd_en:
                if c.first_write is None:
                    c.first_write = s.cycle
                    # matmul docstring: the first write >= 8 cycles after the last read
                    assert c.nread == n_reads and c.last_read <= s.cycle - 8, f"{where}: write before the codes are in"
                unit.check_write(where, s.wd_addr, s.wd_reg, s.wd_mask, word=c.nwrite, vd=ins.vd, lanes=lanes,
                                 n=ins.rows)
                c.nwrite += 1
            want_done = (s.wd_en and c.nwrite == n_writes) if ins.rows else s.cycle == run.accepted[s.k] + 1
            assert s.done == want_done, f"{where}: done {s.done} after {c.nwrite} writes"
            if s.done:
                assert c.nread == n_reads, f"{where}: {c.nread} of {n_reads} reads"
                cmds = ram.commands[c.ncmd0:]
                run.commands.append(cmds)
                line = ins.addr // b
                for c_line, c_len, c_write in cmds:
                    assert not c_write and c_line == line and 1 <= c_len <= self.max_burst, \
                        f"{where}: command {(c_line, c_len, c_write)}, expected a read at line {line}"
                    line += c_len
                assert line - ins.addr // b == beats_of[s.k] == len(run.beats[s.k]), \
                    f"{where}: {line - ins.addr // b} beats requested, {len(run.beats[s.k])} taken, " \
                    f"matrix has {beats_of[s.k]}"

        mon = unit.Monitor(
            dut, prog, limit, start=start, busy=busy, every=every, run=run,
            check=lambda k: unit.check_regs(regs, expected[k], f"instruction {k} {prog[k]}"),
            signals={"rs_en": dut.rs.en, "rs_addr": dut.rs.addr, "rs_reg": dut.rs.reg,
                     "wd_en": dut.wd.en, "wd_addr": dut.wd.addr, "wd_reg": dut.wd.reg, "wd_mask": dut.wd.mask,
                     "mcmd": dut.mem.cmd.valid, "mwr": dut.mem.wr.valid, "beat": dut.mem.rd.valid & dut.mem.rd.ready},
            idle=("rs_en", "wd_en", "mcmd", "beat"),
            # nothing after the last instruction
            quiet=(RESCALE_LATENCY + 4, [dut.rs.en, dut.wd.en, dut.done, dut.mem.cmd.valid, dut.mem.rd.ready]))

        async def source(ctx):
            await unit.issue(ctx, dut.cmd, payloads, Pauses(seed, gap))

        job = types.SimpleNamespace(source=source, watch=mon.watch, finished=set())
        self.job = job
        try:
            while "watch" not in job.finished:
                self.sim.advance()
        except BaseException:
            self.broken = True
            raise
        assert job.finished == {"source", "watch"}
        assert len(run.done) == len(prog)
        return run


_BENCHES: dict[tuple[str, int, bool | None], Bench] = {}


def _bench(cfg: str, max_burst: int = MAX_BURST, overlap: bool | None = None) -> Bench:
    """The module's simulation of a config (a new one after a failed run)."""
    key = (cfg, max_burst, overlap)
    if key not in _BENCHES or _BENCHES[key].broken:
        _BENCHES[key] = Bench(CONFIGS[cfg] if cfg in CONFIGS else EXTRA_CONFIGS[cfg], max_burst=max_burst,
                              overlap=overlap)
    return _BENCHES[key]


# -- against the golden formula ------------------------------------------------------------------
@pytest.mark.parametrize("mem_stall", [0.0, 0.4])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_matches_golden(cfg, mem_stall):
    """Random VL, rows (edges around T, lanes, B, vlen), registers (in place too), SF over the whole
    exponent range; random idle gaps between commands; memory with and without stalls."""
    config = CONFIGS[cfg]
    rng = random.Random(f"matmul-{cfg}-{mem_stall}")
    n = {"ecp5s": 10, "b8l1": 10, "b64l16": 8, "b256l64": 4}[cfg]
    prog = program(config, rng, n, max_vl=config.vlen, max_rows=config.vlen)
    init = fill(config, np.random.default_rng(rng.randrange(1 << 30)))
    _bench(cfg).run(init, prog, mem_stall=mem_stall, gap=0.3, seed=rng.randrange(1 << 20))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_edges(cfg):
    """K = 1, K < T, K = vlen, rows = 1, rows < B, rows = vlen, rows = 0 (a no-op), in place; the
    SF extremes (m == 0, the largest and smallest exponents); memory stalls, commands waiting or
    after idle gaps (the unstalled memory: test_matches_golden, test_one_beat_per_cycle)."""
    config = CONFIGS[cfg]
    t, b, lanes, vlen = config.trits_per_byte, config.beat_bytes, config.vector_lanes, config.vlen
    lo, hi = -(1 << (N.SF_EXP_BITS - 1)), (1 << (N.SF_EXP_BITS - 1)) - 1
    mx = (1 << N.SF_BITS) - 1
    prog = [
        Instr(1, 1, 0, 1, 1 << 23, -N.FX_FRAC, seed=1),
        Instr(t - 1, b - 1, 2, 2, mx, -N.FX_FRAC - 20, seed=2),
        Instr(vlen, vlen, 3, 4, mx, -N.FX_FRAC - 30, seed=3),
        Instr(vlen, lanes + 1, 5, 6, 0, hi, seed=4),
        Instr(t + 1, 5, 6, 7, mx, hi, seed=5),
        Instr(vlen, 3, 1, 1, mx, lo, seed=6),
        Instr(7, 0, 0, 3, mx, 0, seed=7),
        Instr(2 * t, min(vlen, b + 1), 4, 4, 1 << 23, N.FX_BITS - N.FX_FRAC - 1, seed=8),
        Instr(vlen - 1, vlen - 1, 7, 3, mx, -N.FX_FRAC - 1, seed=9),
    ]
    init = fill(config, np.random.default_rng(7))
    init[3][:] = 127                 # large sums
    init[4][:] = -128
    _bench(cfg).run(init, prog, mem_stall=0.5, gap=0.5, seed=5)


def test_worst_case_sums_saturate_and_round():
    """All +1 / all -1 rows against all -128 codes: |acc| = 128 * vlen, the array's and the
    product's extremes, through every shift region."""
    config = CONFIGS["ecp5s"]
    vlen = config.vlen
    init = [np.full(vlen, -128, np.int64) for _ in range(isa.N_VREGS)]
    mx = (1 << N.SF_BITS) - 1
    edge = N.FX_FRAC - (N.FX_BITS + 1) - product_bits(config)
    exps = [edge - 1, edge, edge + 1, -N.FX_FRAC - 24, -N.FX_FRAC - 1, -N.FX_FRAC + 1, 0]
    prog = [Instr(vlen, vlen, 1 + k % 7, 0, mx, e, pattern="alternating") for k, e in enumerate(exps)]
    _bench("ecp5s").run(init, prog)


@pytest.mark.parametrize("cfg", ["ecp5s", "b8l1"])
def test_short_bursts(cfg):
    """max_burst below the matrix size: consecutive commands of max_burst beats, under stalls."""
    config = CONFIGS[cfg]
    rng = random.Random(f"matmul-burst-{cfg}")
    prog = program(config, rng, 5, max_vl=config.vlen, max_rows=config.vlen)
    init = fill(config, np.random.default_rng(11))
    run = _bench(cfg, max_burst=3).run(init, prog, mem_stall=0.3, seed=9)
    assert max(len(c) for c in run.commands) > 1


# -- timing --------------------------------------------------------------------------------------
def _copy_cycles(config: AccelConfig, vl: int) -> int:
    return max(-(-vl // config.vector_lanes), -(-vl // config.trits_per_byte))


@pytest.mark.parametrize("cfg", CONFIGS)
def test_one_beat_per_cycle(cfg):
    """No memory stalls, G >= B / lanes + ARRAY_LATENCY - 1: every weight beat in consecutive
    cycles (the rescale of a tile is hidden behind the next tile), done B / lanes + RESCALE_LATENCY
    + ARRAY_LATENCY - 1 cycles after the last beat, the next command taken the cycle after done.
    With overlap (lanes >= T) the first beat comes FIRST_BEAT cycles after acceptance, whatever VL;
    without, after the codes copy."""
    config = CONFIGS[cfg]
    lanes, b, t, vlen = config.vector_lanes, config.beat_bytes, config.trits_per_byte, config.vlen
    wpt = b // lanes
    k_min = (wpt + ARRAY_LATENCY - 1) * t
    assert k_min <= vlen
    prog = [Instr(vlen, vlen, 1, 0, 1 << 23, -N.FX_FRAC - 8, seed=1),
            Instr(k_min, vlen, 2, 2, 1 << 23, -N.FX_FRAC - 8, seed=2),
            Instr(k_min + 3, min(vlen, 2 * b + 1), 3, 1, 1 << 23, -N.FX_FRAC - 8, seed=3)]
    init = fill(config, np.random.default_rng(3))
    bench = _bench(cfg)
    assert bench.dut.overlap == (lanes >= t) == (cfg in ("b64l16", "b256l64"))
    run = bench.run(init, prog)
    for k, ins in enumerate(prog):
        beats = run.beats[k]
        assert beats[-1] - beats[0] + 1 == len(beats), f"{ins}: bubbles in the weight phase"
        last_words = -(-(ins.rows - (-(-ins.rows // b) - 1) * b) // lanes)
        drain = last_words + RESCALE_LATENCY + ARRAY_LATENCY - 1
        assert run.done[k] - beats[-1] == drain, f"{ins}: drain"
        codes = beats[0] - run.accepted[k]
        if bench.dut.overlap:
            assert codes == FIRST_BEAT, f"{ins}: {codes} cycles to the first beat"
            assert run.done[k] - run.accepted[k] + 1 == FIRST_BEAT + len(beats) + drain
        else:
            # codes: ceil(VL / lanes) reads (or ceil(VL / T) groups) plus a few cycles of setup and
            # the read queue's latency
            assert _copy_cycles(config, ins.vl) < codes <= _copy_cycles(config, ins.vl) + 4 + QUEUE_LATENCY, \
                f"{ins}: {codes} cycles to the first beat"
        if k:
            assert run.accepted[k] == run.done[k - 1] + 1


def test_docstring_cycle_examples():
    """The module docstring's worked cycle budgets are its formulas evaluated for the named configs
    (the tests around this one check the formulas in simulation): first beat + ceil(rows / B) * G
    beats + the drain; without overlap the first beat after the codes copy + 8 or 9."""
    doc = " ".join(matmul_module.__doc__.split())
    for name, k, rows in (("ddr4", 1024, 1024), ("ddr4", 2816, 1024), ("ecp5", 192, 192)):
        config = get_config(name)
        b, lanes, t = config.beat_bytes, config.vector_lanes, config.trits_per_byte
        beats = -(-rows // b) * -(-k // t)
        last_words = -(-(rows - (-(-rows // b) - 1) * b) // lanes)
        drain = last_words + RESCALE_LATENCY + ARRAY_LATENCY - 1
        firsts = [FIRST_BEAT] if copy_keeps_up(config) else [_copy_cycles(config, k) + 8, _copy_cycles(config, k) + 9]
        shown = [f"{f} + {beats} + {drain} = {f + beats + drain}" for f in firsts]
        assert any(x in doc for x in shown), f"{name} K={k} rows={rows}: none of {shown} in the docstring"
    # the one example without overlap on an overlapping config (ddr4, K = rows = 1024)
    config = get_config("ddr4")
    b, lanes, t = config.beat_bytes, config.vector_lanes, config.trits_per_byte
    beats = -(-1024 // b) * -(-1024 // t)
    drain = b // lanes + RESCALE_LATENCY + ARRAY_LATENCY - 1
    firsts = [_copy_cycles(config, 1024) + d for d in (8, 9)]
    assert any(f"without overlap {f} + {beats} + {drain} = {f + beats + drain}" in doc for f in firsts)


def test_weights_overlap_the_codes_copy():
    """ddr4's beat, packing and lanes (B = 64, T = 5, 16 lanes), VL = 1024, rows = 64 (G = 205, a
    copy of 205 cycles), memory without stalls: with overlap the instruction takes FIRST_BEAT + G
    beats + the drain, not copy + G + drain (the same unit with overlap=False), in place (vd == vs)
    too. (A 64-byte-beat unit simulates at ~40 cycles/s: one or two
    instructions each.)"""
    config = EXTRA_CONFIGS["ddr4s"]
    lanes, b, t = config.vector_lanes, config.beat_bytes, config.trits_per_byte
    groups = -(-1024 // t)
    drain = b // lanes + RESCALE_LATENCY + ARRAY_LATENCY - 1
    prog = [Instr(1024, 64, 1, 0, 1 << 23, -N.FX_FRAC - 9, seed=21),
            Instr(1024, 64, 3, 3, 1 << 23, -N.FX_FRAC - 9, seed=22)]
    init = fill(config, np.random.default_rng(21))
    totals = {}
    for overlap, n in ((True, 2), (False, 1)):
        run = _bench("ddr4s", overlap=overlap).run(init, prog[:n])
        for k in range(n):
            beats = run.beats[k]
            assert len(beats) == groups and beats[-1] - beats[0] + 1 == len(beats), "bubbles"
            assert run.done[k] - beats[-1] == drain
            totals[overlap, k] = run.done[k] - run.accepted[k] + 1
            if overlap:
                assert beats[0] - run.accepted[k] == FIRST_BEAT
            else:
                assert beats[0] - run.accepted[k] > groups                  # after the whole copy
    assert totals[True, 0] == totals[True, 1] == FIRST_BEAT + groups + drain
    # (216 and 420 with the two-cycle register-file read, QUEUE_LATENCY 3, and one group ahead)
    q = QUEUE_LATENCY - 3
    assert FIRST_BEAT + groups + drain == 218 + q + RESCALE_LATENCY + ARRAY_LATENCY - 2
    assert totals[False, 0] == groups + 5 + q + groups + drain == 420 + q + RESCALE_LATENCY + ARRAY_LATENCY - 2


@pytest.mark.parametrize(("cfg", "overlap"), [("ecp5s", None), ("ecp5s", True), ("b8l1", None), ("b8l1", True),
                                            ("b64l16", None)])
def test_in_place_under_stalls(cfg, overlap):
    """vd == vs: every code is read before the first write (Bench checks it every cycle), with the
    overlap, under memory stalls and command gaps; short vectors on wide tiles (G = 1, 2: the
    write-back of a tile takes longer than its beats), one group short of a word, the longest
    vector. overlap=True forces the overlap on the configs whose copy is slower than a group a
    cycle (the first tile's beats then wait group by group)."""
    config = CONFIGS[cfg]
    t, b, lanes, vlen = config.trits_per_byte, config.beat_bytes, config.vector_lanes, config.vlen
    vls = [1, t, t + 1, lanes, lanes + 1, 2 * t + 1, vlen - 1, vlen]
    rows = [vlen, b, 1, min(vlen, b + 1), vlen, 2, vlen, min(vlen, 3 * b)]
    mx = (1 << N.SF_BITS) - 1
    prog = [Instr(vl, r, k % isa.N_VREGS, k % isa.N_VREGS, mx, -N.FX_FRAC - 6 - k, seed=40 + k)
            for k, (vl, r) in enumerate(zip(vls, rows, strict=True))]
    init = fill(config, np.random.default_rng(41))
    for mem_stall, gap in ((0.0, 0.0), (0.5, 0.3)):
        _bench(cfg, overlap=overlap).run(init, prog, mem_stall=mem_stall, gap=gap, seed=int(mem_stall * 10))


def test_write_back_limits_short_vectors():
    """G < B / lanes (2bit, 8-byte beats, 1 lane, K = 5: G = 2, 8 words a tile): a tile every
    B / lanes + ARRAY_LATENCY - 1 cycles (a tile's last beat waits until the previous tile's sums
    are read), nothing lost."""
    config = CONFIGS["b8l1"]
    prog = [Instr(5, 40, 1, 0, 1 << 23, -N.FX_FRAC - 3, seed=4)]
    run = _bench("b8l1").run(fill(config, np.random.default_rng(4)), prog)
    beats = run.beats[0]
    span = beats[-1] - beats[0] + 1
    assert len(beats) == 10 and span <= (8 + ARRAY_LATENCY - 1) * 4 + 2 + 2


# -- the benchmark ---------------------------------------------------------------------------------
def test_bench_main_tiny(tmp_path):
    out = tmp_path / "bench.json"
    rc = bench_matmul.main(["--config", "ecp5", "--shapes", "33x40", "--stalls", "0.3", "-o", str(out)])
    assert rc == 0
    rep = json.loads(out.read_text())
    assert rep["unit"].startswith("simulated cycles")
    assert rep["config"] == "ecp5" and rep["overlap"] == "auto"
    cases = rep["cases"]
    assert len(cases) == 2
    for c in cases:
        for key in ("rows", "cols", "mem_stall_probability", "overlap", "total_cycles", "weight_beats",
                    "weight_phase_cycles", "mac_utilisation", "codes_cycles", "drain_cycles",
                    "overhead_cycles", "groups_per_tile", "words_per_tile", "checked_against_golden"):
            assert key in c, key
        assert c["checked_against_golden"] is True
        assert c["total_cycles"] == c["codes_cycles"] + c["weight_phase_cycles"] + c["drain_cycles"]
    first = cases[0]
    assert (first["rows"], first["cols"], first["mem_stall_probability"]) == (33, 40, 0.0)
    assert first["groups_per_tile"] >= first["words_per_tile"]
    assert first["mac_utilisation"] >= 0.95
    assert first["overlap"] is False          # ecp5: 4 lanes < T = 5, the copy is the slower


# -- interface -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS)
def test_signature_widths_come_from_config(cfg):
    config = CONFIGS[cfg]
    dut = MatmulUnit(config)
    unit.check_elaborates(dut, config)
    assert dut.max_burst == MAX_BURST
    unit.check_channels(config, dut.rs, dut.wd)
    assert dut.mem.rd.payload.data.shape().width == 8 * config.beat_bytes


def test_ceil_div_const_exact():
    for d in (1, 3, 4, 5, 7):
        for x_max in (1, 100, 1000, isa.VL_MAX):
            assert [ceil_div_const(x, d, x_max) for x in range(x_max + 1)] == \
                [-(-x // d) for x in range(x_max + 1)], (d, x_max)


def test_config_checks():
    unit.rejects(TypeError, r"^config must be an AccelConfig, not 4$", MatmulUnit, 4)
    unit.rejects(ValueError, r"beat_bytes >= 8", MatmulUnit, unit.config("ice40", beat_bytes=4))
    unit.rejects(ValueError, r"vector_lanes 3 must divide beat_bytes 16", MatmulUnit, unit.config(vector_lanes=3))
    unit.rejects(ValueError, r"max_burst", MatmulUnit, get_config("ecp5"), max_burst=0)
    unit.rejects(ValueError, r"max_burst", MatmulUnit, get_config("ecp5"), max_burst=MAX_BURST + 1)
    unit.rejects(ValueError, r"^overlap must be None, True or False, got 1$", MatmulUnit, get_config("ecp5"),
                 overlap=1)
    assert MatmulUnit(get_config("ddr4")).overlap and not MatmulUnit(get_config("ecp5")).overlap
    assert MatmulUnit(get_config("ecp5"), overlap=True).overlap
    assert copy_keeps_up(get_config("ddr4")) and not copy_keeps_up(get_config("ice40"))


# -- long sweep ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("mem_stall", [0.0, 0.3, 0.5])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_long_sweep(cfg, mem_stall):
    config = CONFIGS[cfg]
    rng = random.Random(f"matmul-long-{cfg}-{mem_stall}")
    for rep in range(3):
        prog = program(config, rng, 16)
        init = fill(config, np.random.default_rng(rng.randrange(1 << 30)))
        _bench(cfg, max_burst=rng.choice([MAX_BURST, 1, 5])).run(
            init, prog, mem_stall=mem_stall, gap=rng.choice([0.0, 0.5]), seed=rep)
