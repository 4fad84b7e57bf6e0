"""The golden machine: executes accelerator instruction words (spec/isa.py) one at a time.

It is the reference for the RTL at the instruction level, as golden/model.py is at the token
level: every word is decoded with `spec.isa.decode`, dispatched through a handler table keyed by
mnemonic (one handler per Op of `spec.isa.OPS`, checked at import), and computed with the golden
operations of golden/ops.py (the numba twins of golden/fast.py where they exist; they are
bit-identical).

Memory (byte-addressed): the weight image file at address 0 (read-only), then a zeroed writable
state region of `state_bytes`. Out-of-range or misaligned accesses and writes into the image raise
MachineError naming the PC and the instruction.

Host interface: TOKIN asks `host.next_token()` (None: the machine halts cleanly, with the PC left
on the TOKIN so that a later `run` resumes there); TOKOUT calls `host.put_token(tok)`.

    m = GoldenMachine(rom_words, read_image("build/tiny.img"))
    m.run_tokens(prompt, n_new)          # greedy: TOKOUTs fed back as the next TOKIN
    m.run_teacher(tokens, logits=True)   # (outputs, FX logits [T, V] gathered from the lm_head)

On the command line: python -m sim.machine ROM --image IMG (golden/machine.py). `read_rom` reads a
ROM file: a .hex file, one word per line, or a .s file (assembled by the assembler package).
The trace callback `trace(pc, instr, effects)` gets the written state as a dict ("V3": a view
of the register's written elements, valid until the next instruction: copy it to keep it;
"A1": int; "F0": SF; "VL"; "mem": (address, bytes) of a store; "tokout"; "Aw": the
TMATMUL weight address).
Trace text format, one line per executed instruction:
    <step> <pc> <disassembly> ; <written state>
e.g. `12 7 ADD V0, V0, V5 ; V0[1024] crc=0x1a2b3c4d 0,-5,12,7` (vector: length, crc32 of the
little-endian int64 elements, the first four), `A3=17`, `F0=(12582912,-30)`, `mem[8192+64]`.
"""
from __future__ import annotations

import collections
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from spec import isa
from spec import numerics as N
from spec import weight_image as wi

from . import fast, kernels
from . import ops as O

Trace = Callable[[int, isa.Instr, dict], None]

DEFAULT_MAX_STEPS = 10_000_000
_MASK64 = (1 << 64) - 1


class MachineError(RuntimeError):
    """A program fault: bad word, bad access, runaway program."""


def _wrap64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


class ListHost:
    """A host that feeds a fixed token list and collects the outputs."""

    def __init__(self, tokens: Sequence[int] = ()):
        self.inputs = [int(t) for t in tokens]
        self.fed = 0
        self.outputs: list[int] = []

    def next_token(self) -> int | None:
        if self.fed >= len(self.inputs):
            return None
        self.fed += 1
        return self.inputs[self.fed - 1]

    def put_token(self, tok: int) -> None:
        self.outputs.append(int(tok))


class GreedyHost(ListHost):
    """Feeds the prompt, then each output back as the next input, until n_new new tokens were fed."""

    def __init__(self, prompt: Sequence[int], n_new: int):
        super().__init__(prompt)
        self.n_prompt, self.n_new = len(self.inputs), n_new

    def next_token(self) -> int | None:
        if self.fed >= self.n_prompt:
            if self.fed >= self.n_prompt + self.n_new or len(self.outputs) < self.fed:
                return None
            self.inputs.append(self.outputs[self.fed - 1])
        return super().next_token()


_HANDLERS: dict[str, Callable] = {}


def _handles(*mnemonics: str):
    def deco(fn):
        for mn in mnemonics:
            if mn not in isa.BY_MNEMONIC:
                raise AssertionError(f"handler for unknown mnemonic {mn}")
            _HANDLERS[mn] = fn
        return fn
    return deco


def _use_fast() -> bool:
    return fast.AVAILABLE and kernels.kernel_name() == "numba"


def _bits(v: np.ndarray) -> int:
    return O.bitlen_max(v)


def default_state_bytes(model) -> int:
    """The state region of one core: every layer's recurrent h (one FX vector of d int64 each, at
    l * 8 * d, see sw/compile.py), rounded up to whole DATA_ALIGN pages."""
    return max(wi.DATA_ALIGN, wi.align_up(model.num_hidden_layers * model.hidden_size * 8, wi.DATA_ALIGN))


class GoldenMachine:
    """One core. Registers: V (numpy int64 [VL_MAX] each), A (Python ints), F (SF tuples), VL, PC."""

    def __init__(self, rom: Sequence[int], image: wi.Image, state_bytes: int | None = None,
                 trace: Trace | None = None, max_steps: int = DEFAULT_MAX_STEPS):
        self.rom = [int(w) for w in rom]
        self._decoded: list[isa.Instr | None] = [None] * len(self.rom)
        self.image = image
        self.mem_image = np.asarray(image.file_bytes(), np.uint8).reshape(-1)
        self.state_base = int(self.mem_image.size)
        if state_bytes is None:
            state_bytes = default_state_bytes(image.model)
        self.state = np.zeros(int(state_bytes), np.uint8)
        self.mem_end = self.state_base + self.state.size
        self.trace = trace
        self.observers: list[Trace] = []
        self.max_steps = max_steps
        self.fast = _use_fast()
        self._wcache: dict[tuple[int, int, int], np.ndarray] = {}
        self.profile: collections.Counter[str] = collections.Counter()
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        """Registers, PC and the state region to zero (the weight cache and profile are kept)."""
        self.V = [np.zeros(isa.VL_MAX, np.int64) for _ in range(isa.N_VREGS)]
        self.A = [0] * isa.N_AREGS
        self.F: list[O.SF] = [O.SF_ZERO] * isa.N_FREGS
        self.VL = 0
        self.pc = 0
        self.halted = False
        self.halt_reason = ""
        self.state[:] = 0

    # -- faults and memory ------------------------------------------------------------------------
    def _fault(self, msg: str) -> MachineError:
        ins = self._decoded[self.pc] if 0 <= self.pc < len(self._decoded) else None
        return MachineError(f"pc {self.pc} ({ins if ins is not None else '?'}): {msg}")

    def _check(self, addr: int, n: int, align: int, write: bool) -> None:
        if addr % align:
            raise self._fault(f"misaligned {'write' if write else 'read'} of {n} bytes at {addr} "
                              f"(needs {align}-byte alignment)")
        if addr < 0 or addr + n > self.mem_end:
            raise self._fault(f"{'write' if write else 'read'} of {n} bytes at {addr} outside memory "
                              f"[0, {self.mem_end})")
        if write and addr < self.state_base:
            raise self._fault(f"write of {n} bytes at {addr} into the read-only weight image "
                              f"(state region starts at {self.state_base})")

    def read(self, addr: int, n: int, align: int = 1) -> np.ndarray:
        """n bytes at addr (uint8), bounds and alignment checked."""
        self._check(addr, n, align, False)
        if addr + n <= self.state_base:
            return self.mem_image[addr:addr + n]
        if addr >= self.state_base:
            return self.state[addr - self.state_base:addr - self.state_base + n]
        return np.concatenate([self.mem_image[addr:], self.state[:addr + n - self.state_base]])

    def write(self, addr: int, data: np.ndarray, align: int = 1) -> None:
        b = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        self._check(addr, b.size, align, True)
        self.state[addr - self.state_base:addr - self.state_base + b.size] = b

    def _vl(self) -> int:
        if self.VL <= 0:
            raise self._fault("VL is not set (SETVL first)")
        return self.VL

    def _vec(self, r: int) -> np.ndarray:
        return self.V[r][:self._vl()]

    def _setv(self, r: int, val: np.ndarray, eff: dict) -> None:
        n = val.shape[0]
        self.V[r][:n] = val
        eff[f"V{r}"] = self.V[r][:n]

    # -- execution --------------------------------------------------------------------------------
    def decode_at(self, pc: int) -> isa.Instr:
        if not 0 <= pc < len(self.rom):
            raise MachineError(f"pc {pc} outside the ROM [0, {len(self.rom)})")
        ins = self._decoded[pc]
        if ins is None:
            try:
                ins = isa.decode(self.rom[pc])
            except isa.DecodeError as e:
                raise MachineError(f"pc {pc}: {e}") from None
            self._decoded[pc] = ins
        return ins

    def step(self, host=None) -> None:
        """Execute one instruction."""
        if self.halted:
            return
        pc = self.pc
        ins = self.decode_at(pc)
        self.next_pc = pc + 1
        self.host = host
        eff: dict = {}
        _HANDLERS[ins.op.mnemonic](self, ins.args, eff)
        self.profile[ins.op.mnemonic] += 1
        self.steps += 1
        if self.trace is not None:
            self.trace(pc, ins, eff)
        for ob in self.observers:
            ob(pc, ins, eff)
        if not self.halted:
            self.pc = self.next_pc

    def run(self, host=None, max_steps: int | None = None) -> int:
        """Run until HALT or a TOKIN the host cannot serve; returns the instructions executed."""
        limit = self.max_steps if max_steps is None else max_steps
        self.halted = False
        n = 0
        while not self.halted:
            if n >= limit:
                raise self._fault(f"more than {limit} steps in one run (runaway program?)")
            self.step(host)
            n += 1
        return n

    def run_tokens(self, prompt: Sequence[int], n_new: int) -> list[int]:
        """Greedy generation: feed the prompt, then each TOKOUT back; returns the n_new new tokens."""
        host = GreedyHost(prompt, n_new)
        self.run(host)
        return host.outputs[len(prompt) - 1:len(prompt) - 1 + n_new]

    def run_teacher(self, tokens: Sequence[int], logits: bool = False):
        """Teacher forcing: one TOKOUT per input token. logits=True also returns the FX logits
        [T, V], gathered from the TMATMUL outputs that read the lm_head."""
        host = ListHost(tokens)
        tap = LogitTap(self) if logits else None
        try:
            self.run(host)
        finally:
            if tap is not None:
                tap.detach()
        if tap is None:
            return host.outputs
        return host.outputs, np.stack(tap.logits) if tap.logits else np.zeros((0, 0), np.int64)

    # -- handlers: control ------------------------------------------------------------------------
    @_handles("NOP", "BARRIER")      # one core: a barrier is passed at once
    def _nop(self, a, eff):
        pass

    @_handles("HALT")
    def _halt(self, a, eff):
        self.halted, self.halt_reason = True, "HALT"

    @_handles("JMP")
    def _jmp(self, a, eff):
        self.next_pc = a[0]

    @_handles("DJNZ")
    def _djnz(self, a, eff):
        s, target = a
        self.A[s] = _wrap64(self.A[s] - 1)
        eff[f"A{s}"] = self.A[s]
        if self.A[s] != 0:
            self.next_pc = target

    @_handles("BLTZ")
    def _bltz(self, a, eff):
        if self.A[a[0]] < 0:
            self.next_pc = a[1]

    @_handles("SETVL")
    def _setvl(self, a, eff):
        self.VL = a[0]
        eff["VL"] = self.VL

    # -- scalar -----------------------------------------------------------------------------------
    def _seta(self, r: int, v: int, eff: dict) -> None:
        self.A[r] = _wrap64(v)
        eff[f"A{r}"] = self.A[r]

    @_handles("MOVI")
    def _movi(self, a, eff):
        self._seta(a[0], a[1], eff)

    @_handles("ADDI")
    def _addi(self, a, eff):
        self._seta(a[0], self.A[a[1]] + a[2], eff)

    @_handles("ADDS")
    def _adds(self, a, eff):
        self._seta(a[0], self.A[a[1]] + self.A[a[2]], eff)

    @_handles("SUBS")
    def _subs(self, a, eff):
        self._seta(a[0], self.A[a[1]] - self.A[a[2]], eff)

    @_handles("MULS")
    def _muls(self, a, eff):
        self._seta(a[0], self.A[a[1]] * self.A[a[2]], eff)

    @_handles("LDW")
    def _ldw(self, a, eff):
        d, (b, off) = a
        self._seta(d, int(self.read(self.A[b] + off, 4, 4).view("<i4")[0]), eff)

    @_handles("LDF")
    def _ldf(self, a, eff):
        d, (b, off) = a
        v = self.read(self.A[b] + off, 4, 4).view("<f4")[0]
        if not np.isfinite(v) or v < 0:
            raise self._fault(f"LDF of {float(v)!r}: scale values must be finite and >= 0")
        self.F[d] = O.sf_from_float(float(v))
        eff[f"F{d}"] = self.F[d]

    @_handles("FMUL")
    def _fmul(self, a, eff):
        d, s, t = a
        self.F[d] = O.sf_mul(self.F[s], self.F[t])
        eff[f"F{d}"] = self.F[d]

    @_handles("TOKIN")
    def _tokin(self, a, eff):
        tok = self.host.next_token() if self.host is not None else None
        if tok is None:
            self.halted, self.halt_reason = True, "TOKIN: the host has no more tokens"
            return
        self._seta(a[0], int(tok), eff)

    @_handles("TOKOUT")
    def _tokout(self, a, eff):
        tok = self.A[a[0]]
        eff["tokout"] = tok
        if self.host is not None:
            self.host.put_token(tok)

    # -- memory <-> vector ------------------------------------------------------------------------
    def _load(self, a, eff, dtype: str) -> np.ndarray:
        d, (b, off) = a
        n = self._vl()
        size = np.dtype(dtype).itemsize
        return self.read(self.A[b] + off, n * size, size).view(dtype)

    @_handles("LDV")
    def _ldv(self, a, eff):
        self._setv(a[0], self._load(a, eff, "<i8"), eff)

    @_handles("LDG")
    def _ldg(self, a, eff):
        self._setv(a[0], self._load(a, eff, "<i2").astype(np.int64), eff)

    @_handles("LDGT")
    def _ldgt(self, a, eff):
        self._setv(a[0], self._load(a, eff, "<u4").astype(np.int64), eff)

    @_handles("LDE")
    def _lde(self, a, eff):
        d, t, (b, off) = a
        n = self._vl()
        addr = self.A[b] + off + 2 * (self.A[t] * n)
        bits = self.read(addr, 2 * n, 2).view("<u2")
        try:
            self._setv(d, N.bf16_to_fx(bits), eff)
        except ValueError as e:
            raise self._fault(str(e)) from None

    @_handles("SV")
    def _sv(self, a, eff):
        (b, off), s = a
        v = self._vec(s).astype("<i8")
        addr = self.A[b] + off
        self.write(addr, v, 8)
        eff["mem"] = (addr, v.nbytes)

    # -- vector arithmetic ------------------------------------------------------------------------
    def _vvv(self, a, eff, fn) -> None:
        d, s, t = a
        self._setv(d, fn(self._vec(s), self._vec(t)), eff)

    def _vv(self, a, eff, fn) -> None:
        d, s = a
        self._setv(d, fn(self._vec(s)), eff)

    @_handles("ADD")
    def _add(self, a, eff):
        self._vvv(a, eff, fast.FastOps.fx_add if self.fast else O.fx_add)

    @_handles("SUB")
    def _sub(self, a, eff):
        self._vvv(a, eff, lambda x, y: O.sat_fx(x - y))

    @_handles("MUL")
    def _mul(self, a, eff):
        self._vvv(a, eff, fast.FastOps.fx_mul if self.fast else O.fx_mul)

    @_handles("DIV")
    def _div(self, a, eff):
        self._vvv(a, eff, O.fx_div)

    @_handles("EXP")
    def _exp(self, a, eff):
        self._vv(a, eff, O.fx_exp)

    @_handles("SIG")
    def _sig(self, a, eff):
        self._vv(a, eff, fast.FastOps.sigmoid if self.fast else O.sigmoid)

    @_handles("SILU")
    def _silu(self, a, eff):
        self._vv(a, eff, fast.FastOps.silu if self.fast else O.silu)

    @_handles("GMUL")
    def _gmul(self, a, eff):
        def gm(x, g):
            if self.fast and _bits(x) + _bits(g) <= 62:
                return fast.gate_mul(np.ascontiguousarray(x), np.ascontiguousarray(g))
            return O.gate_mul(x, g)
        self._vvv(a, eff, gm)

    @_handles("ONEM")
    def _onem(self, a, eff):
        self._vv(a, eff, lambda x: O.sat_fx(N.GATE_ONE - np.asarray(x, np.int64)))   # FX registers saturate

    @_handles("MOVV")
    def _movv(self, a, eff):
        self._vv(a, eff, np.copy)

    # -- units ------------------------------------------------------------------------------------
    def _gamma(self, g: int, e: int) -> np.ndarray:
        """int16(Vg): the low GAMMA_BITS bits, signed (numpy's int64 -> int16 cast wraps)."""
        if not N.GAMMA_EXP_MIN <= self.A[e] <= N.GAMMA_EXP_MAX:
            raise self._fault(f"gamma exponent A{e} = {self.A[e]} outside "
                              f"[{N.GAMMA_EXP_MIN}, {N.GAMMA_EXP_MAX}]")
        return self._vec(g).astype(np.int16)

    @_handles("NORM")
    def _norm(self, a, eff):
        d, s, g, e = a
        x, m = self._vec(s), self._gamma(g, e)
        ops = fast.FastOps if self.fast else O
        self._setv(d, ops.rmsnorm(np.ascontiguousarray(x), m, self.A[e]), eff)

    @_handles("QNT")
    def _qnt(self, a, eff):
        d, fd, s, g, e = a
        x, m = self._vec(s), self._gamma(g, e)
        ops = fast.FastOps if self.fast else O
        codes, sf = ops.quantize(np.ascontiguousarray(x), m, self.A[e])
        self._setv(d, codes.astype(np.int64), eff)
        self.F[fd] = sf
        eff[f"F{fd}"] = sf

    def weights(self, addr: int, rows: int, cols: int) -> np.ndarray:
        """The int8 trits [rows, cols] packed at addr (image packing and beat), cached per
        (addr, rows, cols) when they lie in the read-only image."""
        key = (addr, rows, cols)
        w = self._wcache.get(key)
        if w is not None:
            return w
        nb = wi.packed_nbytes(rows, cols, self.image.packing, self.image.beat_bytes)
        data = self.read(addr, nb, self.image.beat_bytes)
        try:
            w = wi.unpack_trits(data, rows, cols, self.image.packing, self.image.beat_bytes)
        except wi.ImageError as e:
            raise self._fault(f"TMATMUL at {addr}: {e}") from None
        if addr + nb <= self.state_base:
            self._wcache[key] = w
        return w

    @_handles("TMATMUL")
    def _tmatmul(self, a, eff):
        d, s, w_reg, f, rows = a
        x = self._vec(s).astype(np.int8)        # int8(Vs): the low 8 bits, signed (the cast wraps)
        addr = self.A[w_reg]
        w = self.weights(addr, rows, x.size)
        acc = kernels.matvec(w, x)
        k = O.sf_shift(self.F[f], N.FX_FRAC)
        if self.fast and k[0] and _bits(acc) + N.SF_BITS + max(0, k[1]) <= 62:
            y = fast.apply_sf(np.ascontiguousarray(acc), k[0], k[1])
        else:
            y = O.apply_sf(acc, k)
        eff["Aw"] = addr
        self._setv(d, y, eff)

    @_handles("ARGMAX")
    def _argmax(self, a, eff):
        i, m, s, o = a
        v = self._vec(s)
        ao = self.A[o]
        j = int(np.argmax(v))
        if int(v[j]) > self.A[m]:
            self._seta(m, int(v[j]), eff)
            self._seta(i, ao + j, eff)


missing = set(isa.BY_MNEMONIC) - set(_HANDLERS)
assert not missing, f"golden machine: no handler for {sorted(missing)}"
HANDLERS = dict(_HANDLERS)


class LogitTap:
    """Gathers the lm_head rows written by TMATMULs (chunked or not) into one FX logit vector
    per TOKOUT."""

    def __init__(self, machine: GoldenMachine):
        img = machine.image
        self.machine = machine
        self.base = img.offset(wi.HEAD_TENSORS[-1][0])
        self.nbytes = img.nbytes(wi.HEAD_TENSORS[-1][0])
        vocab, cols = img.shape(wi.HEAD_TENSORS[-1][0])
        b = img.beat_bytes
        self.tile_bytes = wi.packed_nbytes(b, cols, img.packing, b)
        self.beat = b
        self.vocab = vocab
        self.cur = np.zeros(vocab, np.int64)
        self.seen = np.zeros(vocab, bool)
        self.logits: list[np.ndarray] = []
        machine.observers.append(self)

    def __call__(self, pc: int, ins: isa.Instr, eff: dict) -> None:
        if ins.op.mnemonic == "TMATMUL" and self.base <= eff["Aw"] < self.base + self.nbytes:
            r0 = (eff["Aw"] - self.base) // self.tile_bytes * self.beat
            y = eff[f"V{ins.args[0]}"]
            n = min(y.size, self.vocab - r0)
            self.cur[r0:r0 + n] = y[:n]
            self.seen[r0:r0 + n] = True
        elif ins.op.mnemonic == "TOKOUT":
            if not self.seen.all():
                raise MachineError(f"pc {pc}: TOKOUT before every lm_head row was computed")
            self.logits.append(self.cur.copy())
            self.seen[:] = False

    def detach(self) -> None:
        self.machine.observers.remove(self)


# -- trace text ------------------------------------------------------------------------------------

def format_effects(eff: dict) -> str:
    parts = []
    for k, v in eff.items():
        if isinstance(v, np.ndarray):
            b = np.ascontiguousarray(v, dtype="<i8")
            head = ",".join(str(int(x)) for x in b[:4])
            parts.append(f"{k}[{b.size}] crc=0x{zlib.crc32(b.tobytes()):08x} {head}")
        elif k == "mem":
            parts.append(f"mem[{v[0]}+{v[1]}]")
        elif isinstance(v, tuple):
            parts.append(f"{k}=({v[0]},{v[1]})")
        else:
            parts.append(f"{k}={v}")
    return " ".join(parts)


class TextTrace:
    """trace callback writing one line per executed instruction to a text file."""

    def __init__(self, f):
        self.f = f
        self.n = 0

    def __call__(self, pc: int, ins: isa.Instr, eff: dict) -> None:
        self.f.write(f"{self.n} {pc} {isa.format_instr(ins)} ; {format_effects(eff)}\n")
        self.n += 1


def read_rom(path: str | Path) -> list[int]:
    """A ROM file: assembly (.s / .asm, assembled with the assembler package) or a hex image
    (one 64-bit word per line, the assembler's `to_hex` format)."""
    import assembler

    path = Path(path)
    if path.suffix in (".s", ".asm"):
        return list(assembler.assemble_file(str(path)).words)     # errors and .include relative to the file
    return assembler.from_hex(path.read_text(), str(path))
