"""hw.core.lsu: LoadStoreUnit, every memory instruction against the golden machine's handlers,
through the register channels of hw.core.iface and a RAM behind the memory port (hw.mem.port).

Provenance of the vectors: the expected register file, A/F write-backs and RAM after each
instruction are `golden.machine`'s `_ldv _sv _ldg _ldgt _lde _ldw _ldf` re-stated with numpy on the
same bytes (`execute` below; LDE through `spec.numerics.bf16_to_fx`, LDF through
`golden.ops.sf_from_float`), applied to seeded random RAM and register contents: FX values
from magnitude classes and raw 64-bit patterns (LDV keeps the low 48 bits), finite bf16 values
(zero, denormals, rounding ties, saturating exponents), non-negative finite float32 values
(zero, denormals, normals, the largest). Nothing here is a stored vector.

The RAM has three regions: bf16 values (LDE reads there), float32 values (LDF reads there) and a
general region that SV writes and LDV / LDG / LDGT / LDW read (every bit pattern is defined for
those). Addresses are element-aligned and otherwise random, so vectors start and end anywhere in
a beat.

Every run is watched cycle by cycle (`Bench`): `cmd.ready` exactly while idle, nothing on any
channel while idle, the reads of Vs (SV) and the writes of Vd (loads) in word order with the VL
mask on the last word, one A/F write-back (LDW/LDF) in the `done` cycle, `done` once per
instruction, the memory commands (the lines covering the vector, bursts of at most MAX_BURST),
and after every instruction the whole register file (elements past VL included) and the whole
RAM (bytes next to a stored vector included).
"""
from __future__ import annotations

import dataclasses
import random
import types

import numpy as np
import pytest
from amaranth.hdl import Fragment

import hw.core.lsu as lsu
from golden import ops as O
from hw.core.iface import FX
from hw.core.lsu import ELEMENT_BYTES, LOAD_LATENCY, MNEMONICS, SETUP_LATENCY, LoadStoreUnit, elements_per_cycle
from hw.core.readq import QUEUE_LATENCY
from hw.mem.port import MAX_BURST
from sim.tb import unit
from sim.tb.streams import HoldCheck, Pauses
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

VECTOR_LOADS = ("LDV", "LDG", "LDGT", "LDE")
SCALAR = ("LDW", "LDF")

#: (beat_bytes, lanes): a beat of 2 LDV elements and 8 LDG ones around a 4-lane word; one element
#: a word; 16 lanes on a 64-byte beat; 8 lanes on 8 bytes (every word spans beats); 2 lanes on 32.
CONFIGS = {
    "b16l4": unit.config(vlen=64),
    "b8l1": unit.config("ice40", beat_bytes=8, vlen=32),
    "b64l16": unit.config("ddr4", vlen=128),
    "b8l8": unit.config("ice40", beat_bytes=8, vector_lanes=8, vlen=64),
    "b32l2": unit.config("ice40", beat_bytes=32, vector_lanes=2, vlen=32),
}


# -- memory layout and contents ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Layout:
    bf16: tuple[int, int]        # [start, end) of the bf16 region
    f32: tuple[int, int]
    general: tuple[int, int]
    size: int


def layout(config: AccelConfig) -> Layout:
    beat = config.beat_bytes
    up = lambda n: -(-n // beat) * beat
    b = up(2 * config.vlen + 2 * beat)
    f = up(4 * 48)
    g = up(8 * config.vlen + 3 * beat)
    return Layout((0, b), (b, b + f), (b + f, b + f + g), b + f + g)


def _fx(rng: random.Random) -> int:
    cls = rng.randrange(6)
    if cls == 0:
        return rng.choice([0, 1, -1, N.FX_MAX, N.FX_MIN, N.FX_MAX - 1, N.FX_MIN + 1])
    if cls == 1:
        return rng.randint(-(1 << 8), 1 << 8)
    if cls == 2:
        return rng.randint(-(1 << (N.FX_FRAC + 4)), 1 << (N.FX_FRAC + 4))
    if cls == 3:
        return rng.randint(N.FX_MIN, N.FX_MAX)
    if cls == 4:
        return rng.choice([-1, 1]) * (1 << rng.randrange(N.FX_BITS - 1))
    return rng.choice([-1, 1]) * rng.randrange(1 << rng.randrange(1, N.FX_BITS - 1))


#: bf16 specials: +-0, denormals, the smallest normal, 0.5 ulp of FX (a tie) and neighbours,
#: 1.0, the largest exponent that fits FX (149), the first that saturates (150), the largest finite
BF16_SPECIAL = [0x0000, 0x8000, 0x0001, 0x807F, 0x0040, 0x0080, 0x8080,
                (102 << 7), (102 << 7) | 1, 0x8000 | (102 << 7), (101 << 7) | 0x7F, (103 << 7) | 0x40,
                0x3F80, 0xBF80, (149 << 7) | 0x7F, 0x8000 | (149 << 7) | 0x7F, (150 << 7), 0x8000 | (150 << 7),
                0x7F7F, 0xFF7F, (140 << 7) | 0x55, 0x8000 | (100 << 7)]


def _bf16(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.25:
        return rng.choice(BF16_SPECIAL)
    if r < 0.4:                              # around the rounding range and the saturation edge
        e = rng.choice([rng.randint(98, 112), rng.randint(145, 153)])
    else:
        e = rng.randint(0, 254)              # finite
    return (rng.getrandbits(1) << 15) | (e << 7) | rng.getrandbits(7)


#: float32 specials (non-negative, finite): 0, denormals (smallest, largest, one of each bit
#: length), the smallest normal, 1.0, the largest finite
F32_SPECIAL = [0, 1, 0x7FFFFF, 0x400000, 0x000100, 0x00ABCD, 0x800000, 0x3F800000, 0x7F7FFFFF, 0x3DCCCCCD]


def _f32(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.3:
        return rng.choice(F32_SPECIAL)
    if r < 0.5:
        return rng.getrandbits(23)           # a denormal (or 0)
    return (rng.randint(0, 254) << 23) | rng.getrandbits(23)


def _general(rng: random.Random, n: int) -> bytes:
    """int64 slots: sign-extended FX values, raw 64-bit patterns, zeros."""
    out = bytearray()
    for _ in range(-(-n // 8)):
        r = rng.random()
        v = _fx(rng) if r < 0.6 else rng.getrandbits(64) if r < 0.9 else 0
        out += (v & ((1 << 64) - 1)).to_bytes(8, "little")
    return bytes(out[:n])


def fill_ram(config: AccelConfig, rng: random.Random) -> bytearray:
    lay = layout(config)
    mem = bytearray(lay.size)
    b0, b1 = lay.bf16
    mem[b0:b1] = b"".join(_bf16(rng).to_bytes(2, "little") for _ in range((b1 - b0) // 2))
    f0, f1 = lay.f32
    mem[f0:f1] = b"".join(_f32(rng).to_bytes(4, "little") for _ in range((f1 - f0) // 4))
    g0, g1 = lay.general
    mem[g0:g1] = _general(rng, g1 - g0)
    return mem


def fill_regs(config: AccelConfig, rng: random.Random) -> list[np.ndarray]:
    return [np.array([_fx(rng) for _ in range(config.vlen)], np.int64) for _ in range(isa.N_VREGS)]


# -- the reference: golden.machine's memory handlers ----------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Instr:
    mn: str
    vl: int
    addr: int
    vd: int = 0
    vs: int = 0
    ad: int = 0
    fd: int = 0


@dataclasses.dataclass
class State:
    V: list[np.ndarray]
    mem: bytearray
    wb: tuple | None = None          # the A/F write-back of the instruction: ("A" | "F", idx, value)

    def copy(self) -> State:
        return State([v.copy() for v in self.V], bytearray(self.mem), self.wb)


def _low48(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.int64) << 16) >> 16


def execute(s: State, ins: Instr) -> None:
    """One instruction, in place, as golden.machine (LDV: the low 48 bits, the hardware's register)."""
    a, vl = ins.addr, ins.vl
    s.wb = None
    view = lambda dt, n: np.frombuffer(bytes(s.mem[a:a + n * np.dtype(dt).itemsize]), dt)
    match ins.mn:
        case "LDV":
            s.V[ins.vd][:vl] = _low48(view("<i8", vl))
        case "LDG":
            s.V[ins.vd][:vl] = view("<i2", vl).astype(np.int64)
        case "LDGT":
            s.V[ins.vd][:vl] = view("<u4", vl).astype(np.int64)
        case "LDE":
            s.V[ins.vd][:vl] = N.bf16_to_fx(view("<u2", vl))
        case "SV":
            s.mem[a:a + 8 * vl] = s.V[ins.vs][:vl].astype("<i8").tobytes()
        case "LDW":
            s.wb = ("A", ins.ad, int(view("<i4", 1)[0]))
        case "LDF":
            v = view("<f4", 1)[0]
            assert np.isfinite(v) and v >= 0
            s.wb = ("F", ins.fd, O.sf_from_float(float(v)))
        case _:
            raise AssertionError(ins.mn)


def bursts(config: AccelConfig, ins: Instr, max_burst: int = MAX_BURST) -> list[tuple[int, int, bool]]:
    """The memory commands of an instruction: the lines covering its bytes, split at max_burst."""
    beat = config.beat_bytes
    n = ELEMENT_BYTES[ins.mn] * (1 if ins.mn in SCALAR else ins.vl)
    line, last = ins.addr // beat, (ins.addr + n - 1) // beat
    out = []
    while line <= last:
        k = min(max_burst, last - line + 1)
        out.append((line, k, ins.mn == "SV"))
        line += k
    return out


# -- programs ------------------------------------------------------------------------------------
def _vl(config: AccelConfig, rng: random.Random) -> int:
    lanes, vlen, beat = config.vector_lanes, config.vlen, config.beat_bytes
    edges = [v for v in (1, 2, lanes - 1, lanes, lanes + 1, beat // 8 + 1, beat // 2 - 1, vlen - 1, vlen)
             if 1 <= v <= vlen]
    return rng.choice(edges) if rng.random() < 0.4 else rng.randint(1, vlen)


def _addr(rng: random.Random, region: tuple[int, int], es: int, nbytes: int, beat: int) -> int:
    lo, hi = region
    top = (hi - nbytes - lo) // es
    assert top >= 0
    if rng.random() < 0.25:                  # at the start or the end of a line
        cands = [a for a in range(lo, lo + top * es + 1, beat)] + \
                [a - nbytes for a in range(lo + beat, hi + 1, beat) if lo <= a - nbytes <= lo + top * es]
        cands = [c for c in cands if (c - lo) % es == 0]
        if cands:
            return rng.choice(cands)
    return lo + es * rng.randint(0, top)


def instr(config: AccelConfig, rng: random.Random, mn: str, vl: int | None = None) -> Instr:
    lay = layout(config)
    es = ELEMENT_BYTES[mn]
    if mn in SCALAR:
        vl = rng.randint(1, config.vlen)     # ignored
        n = 4
    else:
        vl = _vl(config, rng) if vl is None else vl
        n = es * vl
    region = lay.bf16 if mn == "LDE" else lay.f32 if mn == "LDF" else lay.general
    addr = _addr(rng, region, es, n, config.beat_bytes)
    return Instr(mn, vl, addr, vd=rng.randrange(isa.N_VREGS), vs=rng.randrange(isa.N_VREGS),
                 ad=rng.randrange(isa.N_AREGS), fd=rng.randrange(isa.N_FREGS))


def program(config: AccelConfig, rng: random.Random, mns: tuple[str, ...], n: int) -> list[Instr]:
    return [instr(config, rng, rng.choice(mns)) for _ in range(n)]


# -- the testbench -------------------------------------------------------------------------------
@dataclasses.dataclass
class Run(unit.Run):
    writes: list[list[int]] = dataclasses.field(default_factory=list)   # per instruction: cycles of its wd writes
    beats: list[list[int]] = dataclasses.field(default_factory=list)    # ... of its accepted rd / wr beats
    commands: list[tuple[int, int, bool]] = dataclasses.field(default_factory=list)


class Bench:
    """A LoadStoreUnit with RegModel and RamModel behind it, a command source with random idle
    gaps, and the contract watch (sim.tb.unit.Monitor) with the checks of the module docstring and
    the state against the golden machine after every instruction."""

    def __init__(self, config: AccelConfig):
        self.config = config
        self.dut = LoadStoreUnit(config)

    def run(self, V: list[np.ndarray], mem: bytearray, prog: list[Instr], *, p: float = 0.0,
            gap: float = 0.0, seed: int = 0, max_burst: int = MAX_BURST) -> Run:
        dut, config = self.dut, self.config
        lanes, beat = config.vector_lanes, config.beat_bytes
        regs = unit.RegModel(config, V)
        ram = unit.RamModel(bytearray(mem), beat, Pauses(seed * 7 + 1, p))
        state = State([v.copy() for v in V], bytearray(mem))
        expected = []
        for ins in prog:
            execute(state, ins)
            expected.append(state.copy())
        junk = random.Random(seed)
        payloads = [unit.cmd_payload(ins.mn, vl=ins.vl, vd=ins.vd, vs=ins.vs, ad=ins.ad, fd=ins.fd, addr=ins.addr,
                                     # fields this unit must ignore
                                     vt=junk.randrange(isa.N_VREGS), at=junk.randrange(isa.N_AREGS),
                                     s0=junk.randrange(1 << 20), s1=-junk.randrange(1 << 20),
                                     rows=junk.randrange(1 << 16),
                                     sf={"mantissa": junk.randrange(1 << 24), "exponent": junk.randrange(-99, 99)})
                    for ins in prog]
        slow = 1 / (1 - p) ** 2
        limit = 100 + int(sum(30 + slow * 3 * (ins.vl + 8) for ins in prog) * (1 + 3 * gap))
        run = Run(writes=[[] for _ in prog], beats=[[] for _ in prog], commands=ram.commands)
        hold_wr, hold_cmd = HoldCheck("mem.wr"), HoldCheck("mem.cmd")
        c = types.SimpleNamespace()

        def every(s):
            hold_wr(s.wr_valid, s.wr_ready, s.wr_payload)
            hold_cmd(s.mc_valid, s.mc_ready, s.mc_payload)

        def start(k):
            c.nread = c.nwrite = c.nbeats = 0
            c.last_wr = None
            c.wb = None

        def busy(s):
            ins, where = prog[s.k], s.where
            n_words = -(-ins.vl // lanes)
            if s.rs_en:
                assert ins.mn == "SV", f"{where}: rs read by a load"
                assert s.rs_addr == c.nread < n_words, f"{where}: rs read word {s.rs_addr}, expected {c.nread}"
                assert s.rs_reg == ins.vs, f"{where}: rs names V{s.rs_reg}"
                c.nread += 1
            if s.wd_en:
                assert ins.mn in VECTOR_LOADS, f"{where}: wd written by {ins.mn}"
                assert c.nwrite < n_words, f"{where}: write past word {n_words - 1}"
                unit.check_write(where, s.wd_addr, s.wd_reg, s.wd_mask, word=c.nwrite, vd=ins.vd, lanes=lanes, n=ins.vl)
                run.writes[s.k].append(s.cycle)
                c.nwrite += 1
            if (s.rd_valid and s.rd_ready) or (s.wr_valid and s.wr_ready):
                run.beats[s.k].append(s.cycle)
            if s.wr_valid and s.wr_ready:
                c.nbeats += 1
                c.last_wr = s.cycle
            assert not (s.awb_en and s.fwb_en), f"{where}: two write-backs"
            if s.awb_en:
                assert c.wb is None and ins.mn == "LDW", f"{where}: awb"
                c.wb = ("A", s.awb_idx, s.awb_value)
            if s.fwb_en:
                assert c.wb is None and ins.mn == "LDF", f"{where}: fwb"
                c.wb = ("F", s.fwb_idx, (s.fwb_value.mantissa, s.fwb_value.exponent))
            if s.done:
                if ins.mn in VECTOR_LOADS:
                    assert s.wd_en and c.nwrite == n_words, f"{where}: done after {c.nwrite} writes"
                if ins.mn == "SV":
                    assert c.nread == n_words, f"{where}: done after {c.nread} reads"
                    # done is a register: the cycle after the last write beat
                    n_beats = sum(n for _, n, _ in bursts(config, ins, max_burst))
                    assert c.nbeats == n_beats and c.last_wr == s.cycle - 1, \
                        f"{where}: done after {c.nbeats} of {n_beats} write beats, the last in cycle {c.last_wr}"
                if ins.mn in SCALAR:
                    assert c.wb is not None, f"{where}: done without the write-back"
                assert c.wb == expected[s.k].wb, f"{where}: write-back {c.wb}, expected {expected[s.k].wb}"
                want = bursts(config, ins, max_burst)
                got = ram.commands[-len(want):]
                assert got == want, f"{where}: memory commands {got}, expected {want}"

        def check(k):
            want = expected[k]
            unit.check_regs(regs, want.V, f"instruction {k} {prog[k]}")
            if ram.mem != want.mem:
                diff = [i for i in range(len(ram.mem)) if ram.mem[i] != want.mem[i]]
                raise AssertionError(f"RAM after {k} {prog[k]}: bytes {diff[:16]} differ")

        port = dut.mem
        mon = unit.Monitor(
            dut, prog, limit, start=start, busy=busy, check=check, every=every, run=run,
            signals={"rs_en": dut.rs.en, "rs_addr": dut.rs.addr, "rs_reg": dut.rs.reg,
                     "wd_en": dut.wd.en, "wd_addr": dut.wd.addr, "wd_reg": dut.wd.reg, "wd_mask": dut.wd.mask,
                     "awb_en": dut.awb.en, "awb_idx": dut.awb.idx, "awb_value": dut.awb.value,
                     "fwb_en": dut.fwb.en, "fwb_idx": dut.fwb.idx, "fwb_value": dut.fwb.value,
                     "rd_valid": port.rd.valid, "rd_ready": port.rd.ready,
                     "wr_valid": port.wr.valid, "wr_ready": port.wr.ready, "wr_payload": port.wr.payload,
                     "mc_valid": port.cmd.valid, "mc_ready": port.cmd.ready, "mc_payload": port.cmd.payload},
            idle=("rs_en", "wd_en", "awb_en", "fwb_en", "wr_valid"),
            quiet=(6, [dut.rs.en, dut.wd.en, dut.done, dut.awb.en, dut.fwb.en, port.cmd.valid,
                       port.rd.ready, port.wr.valid]))

        async def source(ctx):
            await unit.issue(ctx, dut.cmd, payloads, Pauses(seed * 7 + 2, gap))

        unit.simulator(dut, regs, ram, testbenches=[source, mon.watch]).run()
        assert len(run.done) == len(prog)
        assert len(ram.commands) == sum(len(bursts(config, i, max_burst)) for i in prog)
        return run


def _setup(cfg: str, key: str):
    config = CONFIGS[cfg]
    rng = random.Random(f"lsu-{cfg}-{key}")
    return config, rng, fill_regs(config, rng), fill_ram(config, rng)


STALLS = [pytest.param(0.0, 0.0, id="nostall"), pytest.param(0.4, 0.3, id="stall")]


# -- every op against the golden machine ---------------------------------------------------------
@pytest.mark.parametrize("p,gap", STALLS)
@pytest.mark.parametrize("cfg", CONFIGS)
def test_mixed_program(cfg, p, gap):
    """Every op, mixed, random VL and element-aligned addresses, stores read back by later loads;
    with and without random stalls on every handshake of the memory port and idle gaps on cmd."""
    config, rng, V, mem = _setup(cfg, f"mixed-{p}")
    prog = program(config, rng, MNEMONICS + ("SV", "LDV"), 14)
    Bench(config).run(V, mem, prog, p=p, gap=gap, seed=len(cfg))


@pytest.mark.parametrize("mn", MNEMONICS)
def test_op_matches_golden(mn):
    """Each op alone on the 4-lane, 16-byte-beat core under stalls: more VLs and offsets."""
    config, rng, V, mem = _setup("b16l4", mn)
    prog = program(config, rng, (mn,), 10)
    Bench(config).run(V, mem, prog, p=0.3, gap=0.2, seed=3)


@pytest.mark.parametrize("cfg", ["b16l4", "b8l8"])
def test_lde_special_values(cfg):
    """LDE of every bf16 special: +-0, denormals (0), ties (away from zero), saturation (FX_MAX,
    FX_MIN), the largest finite values."""
    config, rng, V, mem = _setup(cfg, "lde")
    lay = layout(config)
    vals = BF16_SPECIAL * 2
    n = min(len(vals), config.vlen)
    mem[lay.bf16[0] + 6:lay.bf16[0] + 6 + 2 * n] = b"".join(v.to_bytes(2, "little") for v in vals[:n])
    prog = [Instr("LDE", n, lay.bf16[0] + 6, vd=1), Instr("LDE", n - 3, lay.bf16[0] + 12, vd=2)]
    Bench(config).run(V, mem, prog, p=0.3, seed=5)
    fx = N.bf16_to_fx(np.array(BF16_SPECIAL, np.uint16))
    assert {N.FX_MAX, N.FX_MIN, 0, 1, -1} <= set(fx.tolist())


def test_lde_every_exponent():
    """LDE through the unit's staged conversion (fields, signed significand, shift): every finite
    exponent, both signs, mantissas 0, 1, 0x40 and 0x7F (the small values that are rounded, those
    shifted exactly, the saturating ones), 128 elements an instruction."""
    config, rng, V, mem = _setup("b64l16", "lde-all")
    vals = [(s << 15) | (e << 7) | f for e in range(255) for s in (0, 1) for f in (0, 1, 0x40, 0x7F)]
    b0, n = layout(config).bf16[0], config.vlen
    for k in range(0, len(vals), n):
        part = vals[k:k + n]
        image = bytearray(mem)
        image[b0 + 2:b0 + 2 + 2 * len(part)] = b"".join(v.to_bytes(2, "little") for v in part)
        Bench(config).run(V, image, [Instr("LDE", len(part), b0 + 2, vd=k // n % isa.N_VREGS)])


@pytest.mark.parametrize("cfg", ["b16l4", "b64l16"])
def test_ldf_ldw_special_values(cfg):
    """LDF of zero, denormals (normalized to a 24-bit mantissa), normals, the largest finite;
    LDW of int32 limits; at every 4-byte position of a beat."""
    config, rng, V, mem = _setup(cfg, "ldf")
    lay = layout(config)
    f0 = lay.f32[0]
    mem[f0:f0 + 4 * len(F32_SPECIAL)] = b"".join(v.to_bytes(4, "little") for v in F32_SPECIAL)
    g0 = lay.general[0]
    ints = [0, 1, -1, (1 << 31) - 1, -(1 << 31), 0x12345678, -0x789ABCDE]
    mem[g0:g0 + 4 * len(ints)] = b"".join((v & 0xFFFFFFFF).to_bytes(4, "little") for v in ints)
    prog = [Instr("LDF", 1, f0 + 4 * k, fd=k % 8) for k in range(len(F32_SPECIAL))]
    prog += [Instr("LDW", 1, g0 + 4 * k, ad=k) for k in range(len(ints))]
    Bench(config).run(V, mem, prog, p=0.3, seed=9)
    assert O.sf_from_float(float(np.uint32(1).view(np.float32))) == (1 << 23, -149 - 23)


def test_store_masks_partial_beats():
    """SV of every length 1 .. 2 beats at every 8-byte offset of a 64-byte beat: only the vector's
    bytes change (the RAM is compared whole after each store)."""
    config, rng, V, mem = _setup("b64l16", "svmask")
    g0 = layout(config).general[0]
    prog = [Instr("SV", vl, g0 + 64 + 8 * o, vs=(vl + o) % 8) for o in range(8) for vl in (1, 2, 7, 8, 9, 16, 17)]
    Bench(config).run(V, mem, prog, seed=2)


def test_long_bursts_are_split(monkeypatch):
    """Commands longer than MAX_BURST beats are split (tested with MAX_BURST patched to 3: no legal
    VL reaches the real 65535 beats)."""
    monkeypatch.setattr(lsu, "MAX_BURST", 3)
    config, rng, V, mem = _setup("b16l4", "split")
    prog = [instr(config, rng, mn, vl) for mn in ("LDV", "SV", "LDG", "LDE", "LDGT") for vl in (9, 24, 64)]
    Bench(config).run(V, mem, prog, p=0.3, gap=0.2, seed=4, max_burst=3)
    assert max(n for _, n, _ in bursts(CONFIGS["b8l1"], Instr("LDV", isa.VL_MAX, 0))) <= MAX_BURST


# -- timing --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", CONFIGS)
def test_throughput(cfg):
    """No stalls: loads write a word every lanes / elements_per_cycle cycles (one word per cycle
    when a beat holds a word), SV sends a beat every cycle when a word holds a beat; back-to-back
    instructions are taken the cycle after done. Latencies from lsu.SETUP_LATENCY (the cycles
    before the memory command) and lsu.LOAD_LATENCY (a step to its register write)."""
    config = CONFIGS[cfg]
    lanes, beat = config.vector_lanes, config.beat_bytes
    rng = random.Random(f"lsu-rate-{cfg}")
    V, mem = fill_regs(config, rng), fill_ram(config, rng)
    prog = [instr(config, rng, mn, config.vlen) for mn in MNEMONICS if mn not in SCALAR]
    prog += [instr(config, rng, mn, config.vlen - 1) for mn in ("LDV", "LDG", "SV", "LDW", "LDF", "LDW")]
    run = Bench(config).run(V, mem, prog)
    for k, ins in enumerate(prog):
        if k:
            assert run.accepted[k] == run.done[k - 1] + 1
        epc = elements_per_cycle(config, ins.mn)
        if ins.mn in SCALAR:
            want = run.accepted[k] + 3 + SETUP_LATENCY + LOAD_LATENCY[ins.mn] + (ins.addr % beat != 0)
            assert run.done[k] == want, f"{ins}: done in {run.done[k]}"
        elif ins.mn == "SV":
            gap = beat // 8 // epc                      # cycles per write beat
            b = run.beats[k]
            # Vs read from cycle 1 + SETUP_LATENCY, its first word at the read queue's head
            # QUEUE_LATENCY cycles later, the first aligned beat complete `gap` cycles after that
            assert b[0] == run.accepted[k] + 1 + QUEUE_LATENCY + SETUP_LATENCY + gap, \
                f"{ins}: first write beat in cycle {b[0] - run.accepted[k]}"
            assert all(y - x <= gap for x, y in zip(b, b[1:], strict=False)), f"{ins}: beats in cycles {b}"
            assert b[-2] - b[0] == gap * (len(b) - 2) or b[-1] - b[0] == gap * (len(b) - 1), \
                f"{ins}: beats in cycles {b}"
        else:
            w = run.writes[k]
            gap = lanes // epc
            # the last word may be partial: fewer steps
            last = -(-(ins.vl - (len(w) - 1) * lanes) // epc)
            assert [y - x for x, y in zip(w, w[1:], strict=False)] == [gap] * (len(w) - 2) + [last][:len(w) - 1], \
                f"{ins}: writes in cycles {w}"
            # latency (RamModel takes the command in cycle 1 + SETUP_LATENCY, its first beat comes
            # the cycle after): the first aligned beat in cycle 3 + SETUP_LATENCY (one more when addr
            # is not at a line start), the word written LOAD_LATENCY cycles after its last step
            first = run.accepted[k] + 3 + SETUP_LATENCY + (ins.addr % beat != 0) + gap - 1 + LOAD_LATENCY[ins.mn]
            assert w[0] == first, f"{ins}: first write in cycle {w[0] - run.accepted[k]}"


# -- interface -----------------------------------------------------------------------------------
def test_mnemonics_are_the_memory_ops():
    mem_ops = {o.mnemonic for o in isa.OPS if o.group == "memory"} | {"LDW", "LDF"}
    assert set(MNEMONICS) == mem_ops


@pytest.mark.parametrize("cfg", ["b16l4", "b64l16"])
def test_signature_widths_come_from_config(cfg):
    config = CONFIGS[cfg]
    dut = LoadStoreUnit(config)
    Fragment.get(dut, None)
    assert len(dut.wd.data) == len(dut.rs.data) == config.vector_lanes
    assert dut.wd.data[0].shape() == FX
    assert len(dut.mem.rd.payload.data) == len(dut.mem.wr.payload.data) == 8 * config.beat_bytes
    assert len(dut.mem.wr.payload.mask) == config.beat_bytes


def test_config_checks():
    unit.rejects(TypeError, r"^config must be an AccelConfig, not 'ecp5'$", LoadStoreUnit, "ecp5")
    unit.rejects(ValueError, r"beat_bytes >= 8", LoadStoreUnit, unit.config("ice40", beat_bytes=4))
    unit.rejects(ValueError, r"must divide beat_bytes", LoadStoreUnit, unit.config(vector_lanes=32))


def test_unknown_opcode_is_done_at_once():
    """An opcode that is not a memory op does nothing and is done the cycle after."""
    config = CONFIGS["b16l4"]
    dut = LoadStoreUnit(config)
    seen = []

    async def bench(ctx):
        ctx.set(dut.cmd.payload, unit.cmd_payload("ADD", vl=4, addr=64))
        ctx.set(dut.cmd.valid, 1)
        await ctx.tick()
        ctx.set(dut.cmd.valid, 0)
        for _ in range(4):
            _, _, done, cv, ready = await ctx.tick().sample(dut.done, dut.mem.cmd.valid, dut.cmd.ready)
            seen.append((done, cv, ready))

    unit.simulator(dut, testbenches=[bench]).run()
    assert seen == [(1, 0, 0), (0, 0, 1), (0, 0, 1), (0, 0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CONFIGS)
def test_long_sweep(cfg):
    config, rng, V, mem = _setup(cfg, "sweep")
    for p, gap in ((0.0, 0.0), (0.5, 0.5), (0.2, 0.0)):
        prog = program(config, rng, MNEMONICS + ("SV", "LDV", "LDE"), 80)
        Bench(config).run(V, mem, prog, p=p, gap=gap, seed=int(10 * p))
