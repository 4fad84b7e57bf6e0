"""The model compiler: one token step of any model as accelerator assembly (spec/isa.py).

    python -m sw.compile --model 370m -o build/370m.s [--image build/370m.img | --checkpoint DIR]
                         [--packing 1.6bit] [--beat-bytes 64] [--vlen 8192] [--hex build/370m.hex]

The program is an endless loop, one iteration per token, with the dataflow of
golden/model.py (GoldenModel.step / block / head), so the results are bit-identical:

    TOKIN -> embedding row (LDE) -> per layer (ONE loop body, base-address registers advanced by
    the layer stride) -> final norm -> lm_head in row chunks with ARGMAX -> TOKOUT -> loop

Schedule. Batch-1 decode is bound by the weight stream (every ternary matrix read once per token),
so the instructions are ordered to keep the stream busy, given how the core issues (hw/core/core.py:
in order, an instruction waits for its unit and for every register an instruction in flight uses;
operands are read at issue) and that the memory port is in order (a TMATMUL asks for its whole
matrix when it issues, so a load issued after it is served only after that matrix):

* the stream can only idle on the true dependency chains between matrices (x -> NORM -> QNT ->
  TMATMUL; rmsnorm(g) * silu(h') -> QNT; silu(gate) * up -> QNT); the rest overlaps them: the
  three attention BitLinears stream back to back in the order g, f, i (QNT f and i run while g
  streams, NORM(g) while f streams, the forget gate and h * f while i streams, so only
  silu(i) ... QNT(o) is left after i), gate and up share their codes, ARGMAX of an lm_head chunk
  runs while the next chunk streams (chunks alternate between V3 and V5);
* every load (gammas, exponents, betas, lb, h) is placed where the port idles anyway: behind a
  NORM or QNT of a chain (their next instruction waits for the unit anyway), or alone between two
  TMATMULs (served right after the first matrix, which can also keep the DRAM controller from a
  refresh in that gap); the operands of the next layer's first BitLinears are loaded during
  QNT(gate) and QNT(down) of this one (A12 = the next layer's base), the head's instead in the
  last layer (a BLTZ on the layer counter), layer 0's before the loop.

Registers:
    A0 zero   A1 data base   A2 layer base   A3 layer state   A4 layer counter   A5 weight address
    A7 token   A8 state base   A12 next layer base
    exponents: A6 attn_norm (final norm)   A7 g_proj's norm (lm_head's)   A9 f   A10 i   A11 g_norm
               A15 o_proj's norm, then gate_proj's   A14 mlp_norm (then the last-layer flag)   A13 down
    head: A9 argmax index   A10 argmax value   A11 lm_head row of the chunk   A12 chunk pairs
          A13 scratch
    F0, F7 scales (s * beta)   F1..F6 betas of g, f, i, o, gate, down (F1: lm_head's in the head)
    V0 residual x   V1..V7 operands and temporaries (see the comments in the program)
Every offset the program uses is a named constant (.equ); `compile_model` also encodes the words
directly with spec.isa.encode (Program.words), which tests compare with the assembler's output.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from spec import isa
from spec import numerics as N
from spec import weight_image as wi
from spec.accel import CONFIGS
from spec.models import PRESETS, ConfigError, ModelConfig, get_preset

#: The vector register depth the program is compiled for when none is given: the `ddr4` config's.
DEFAULT_VLEN = CONFIGS["ddr4"].vlen


@dataclasses.dataclass(frozen=True)
class R:
    """A register operand."""
    kind: str   # "V", "A", "F"
    n: int

    def __str__(self) -> str:
        return f"{self.kind}{self.n}"


@dataclasses.dataclass(frozen=True)
class Mem:
    base: int
    off: str | int = 0   # an .equ name or 0

    def __str__(self) -> str:
        return f"[A{self.base}]" if self.off == 0 else f"[A{self.base}+{self.off}]"


@dataclasses.dataclass(frozen=True)
class Lbl:
    name: str

    def __str__(self) -> str:
        return self.name


V = [R("V", i) for i in range(isa.N_VREGS)]
A = [R("A", i) for i in range(isa.N_AREGS)]
F = [R("F", i) for i in range(isa.N_FREGS)]


@dataclasses.dataclass
class Program:
    text: str
    words: list[int]
    labels: dict[str, int]
    equ: dict[str, int]
    config: ModelConfig
    packing: str
    beat_bytes: int

    @property
    def n_words(self) -> int:
        return len(self.words)


class _Asm:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.equ: dict[str, int] = {}
        self.labels: dict[str, int] = {}
        self.ins_list: list[tuple[str, tuple]] = []

    def comment(self, text: str = "") -> None:
        self.lines.append(f"; {text}" if text else "")

    def const(self, name: str, value: int, comment: str = "") -> str:
        if name in self.equ and self.equ[name] != value:
            raise AssertionError(f"constant {name} redefined")
        if name not in self.equ:
            self.equ[name] = int(value)
            self.lines.append(f".equ {name}, {int(value)}" + (f"    ; {comment}" if comment else ""))
        return name

    def label(self, name: str) -> None:
        self.labels[name] = len(self.ins_list)
        self.lines.append(f"{name}:")

    def __call__(self, mn: str, *args, c: str = "") -> None:
        isa.BY_MNEMONIC[mn]       # KeyError on a typo
        self.ins_list.append((mn, args))
        ops = ", ".join(str(a) for a in args)
        text = f"    {mn} {ops}".rstrip()
        self.lines.append(f"{text:<44s}; {c}" if c else text)

    def _value(self, a):
        if isinstance(a, R):
            return a.n
        if isinstance(a, Mem):
            return (a.base, self.equ[a.off] if isinstance(a.off, str) else a.off)
        if isinstance(a, Lbl):
            return self.labels[a.name]
        if isinstance(a, str):
            return self.equ[a]
        return a

    def words(self) -> list[int]:
        return [isa.encode(mn, *(self._value(a) for a in args)) for mn, args in self.ins_list]


def _preamble_offsets() -> tuple[int, int]:
    """Byte offsets of data_offset and data_len in the preamble, found by packing sentinels
    through spec.weight_image.PREAMBLE (so the field order is not re-typed here)."""
    s1, s2 = 0x0123456789ABCDEF, 0x0FEDCBA987654321
    raw = wi.PREAMBLE.pack(wi.MAGIC, 0, 0, 0, 0, 0, s1, s2)
    return raw.index(s1.to_bytes(8, "little")), raw.index(s2.to_bytes(8, "little"))


def compile_model(model: ModelConfig | wi.Image | str, packing: str = wi.DEFAULT_PACKING,
                  beat_bytes: int = wi.DEFAULT_BEAT_BYTES, vlen: int = DEFAULT_VLEN) -> Program:
    """The token-step program of `model` (a config, a preset name or an opened Image; an Image
    fixes the packing and beat itself)."""
    if isinstance(model, wi.Image):
        cfg, packing, beat_bytes = model.model, model.packing, model.beat_bytes
        lay = wi.layout(cfg, packing, beat_bytes)
        if model.layout.tensors != lay.tensors:
            raise ValueError("the image's tensor table differs from spec.weight_image.layout")
    else:
        cfg = get_preset(model) if isinstance(model, str) else model
        lay = wi.layout(cfg, packing, beat_bytes)
    d, inter, vocab, n_layers = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.num_hidden_layers
    B = beat_bytes
    if inter % B:
        raise ValueError(f"intermediate_size {inter} is not a multiple of the beat rows {B}: the up "
                         "half of gate_proj would not start on a row tile")
    if max(d, inter) > isa.VL_MAX:
        raise ValueError(f"vector length {max(d, inter)} exceeds VL_MAX {isa.VL_MAX}")
    if max(d, inter) > vlen:
        raise ValueError(f"the model's vectors are {max(d, inter)} elements (hidden {d}, intermediate {inter}): "
                         f"more than the hardware's vector registers hold (vlen {vlen})")
    chunk = min(vocab, min(vlen, isa.VL_MAX) // B * B)
    if chunk <= 0:
        raise ValueError(f"--vlen {vlen} is below one row tile ({B} rows)")
    n_chunks, tail = vocab // chunk, vocab % chunk
    by = lay.by_name
    first_layer = f"layers.0.{wi.LAYER_TENSORS[0][0]}"        # the layer's scalars record
    layer0 = by[first_layer].offset

    def loff(suffix: str) -> int:
        return by[f"layers.0.{suffix}"].offset - layer0

    scal_bytes = wi.KIND_DTYPES["scalars"].itemsize

    def lscal(field: str, suffix: str) -> int:
        rec, i = lay.scalar_slots[(field, f"layers.0.{suffix}")]
        return by[rec].offset - layer0 + scal_bytes * i

    (norm_name, _), (head_norm_name, _), (_, _), (head_name, _) = wi.HEAD_TENSORS

    def hscal(field: str, name: str) -> int:
        rec, i = lay.scalar_slots[(field, name)]
        return by[rec].offset + scal_bytes * i

    a = _Asm()
    a.comment(f"MMfreeLM token step: model {cfg.name} (d={d}, I={inter}, V={vocab}, L={n_layers}), "
              f"packing {packing}, beat {B} bytes")
    a.comment("generated by `python -m sw.compile`; order of golden/model.py GoldenModel.step")
    a.comment("offsets: from the image data start (data_offset) unless named L_* / S_* (from the layer base)")
    a.comment()
    pre_off, pre_len = _preamble_offsets()
    a.const("PRE_DATA_OFFSET", pre_off, "preamble: data_offset (bytes from address 0)")
    a.const("PRE_DATA_LEN", pre_len, "preamble: data_len; the state region follows the image")
    a.const("D", d, "hidden size")
    a.const("INTER", inter, "intermediate size")
    a.const("N_LAYERS", n_layers)
    a.const("EMBED", by[lay.tensors[0].name].offset, "embeddings [V, d] bf16")
    a.const("LAYER0", layer0, f"{first_layer}: layer 0 base")
    a.const("LAYER_STRIDE", lay.layer_stride, "bytes from layer l to layer l+1")
    a.const("STATE_STRIDE", 8 * d, "one FX vector of h per layer")
    g, m = wi.LAYER_GAMMAS, wi.LAYER_MATRIX_ROLES
    for field in ("attn_norm", "i_norm", "f_norm", "g_norm_in", "g_norm", "o_norm", "mlp_norm",
                  "gate_norm", "down_norm"):
        a.const(f"L_{field.upper()}", loff(g[field]), f"layers.l.{g[field]} (gamma mantissas)")
        a.const(f"S_{field.upper()}_EXP", lscal("gamma_exp", g[field]), "its exponent (scalars word)")
    a.const("L_LOWER_BOUND", loff("lower_bound"), "layers.l.lower_bound (GATE)")
    for field in ("i_proj", "f_proj", "g_proj", "o_proj", "gate_proj", "down_proj"):
        a.const(f"L_{field.upper()}", loff(m[field]), f"layers.l.{m[field]} (packed trits)")
        a.const(f"S_{field.upper()}_BETA", lscal("beta", m[field]), "its beta (float32 scalars word)")
    a.const("UP_OFFSET", wi.packed_nbytes(inter, d, packing, B), "gate_proj row INTER (the up half)")
    a.const("NORM", by[norm_name].offset, f"{norm_name} (final norm)")
    a.const("NORM_EXP", hscal("gamma_exp", norm_name))
    a.const("HEAD_NORM", by[head_norm_name].offset, head_norm_name)
    a.const("HEAD_NORM_EXP", hscal("gamma_exp", head_norm_name))
    a.const("LM_HEAD", by[head_name].offset, f"{head_name} [V, d]")
    a.const("LM_HEAD_BETA", hscal("beta", head_name))
    a.const("VOCAB", vocab)
    a.const("CHUNK_ROWS", chunk, f"lm_head rows per TMATMUL (<= vlen {vlen}, a multiple of {B})")
    a.const("CHUNK_BYTES", wi.packed_nbytes(chunk, d, packing, B))
    a.const("N_CHUNKS", n_chunks, "full chunks (then the tail, if any)")
    if (n_chunks - 1) // 2:
        a.const("CHUNK_PAIRS", (n_chunks - 1) // 2, "iterations of the chunk loop: chunks 1..2*CHUNK_PAIRS")
    if tail:
        a.const("TAIL_ROWS", tail, "last, partial chunk")
    # below FX_MIN, so the first logit always replaces it: -2**31 * 2**(FX_BITS - 30) = -2**(FX_BITS+1)
    a.const("ARGMAX_LO", -(1 << 31))
    a.const("ARGMAX_SCALE", 1 << (N.FX_BITS - 30))
    a.comment()

    a.label("boot")
    a("MOVI", A[0], 0, c="A0 = 0")
    a("LDW", A[1], Mem(0, "PRE_DATA_OFFSET"), c="A1 = data base")
    a("LDW", A[8], Mem(0, "PRE_DATA_LEN"))
    a("ADDS", A[8], A[8], A[1], c="A8 = image end = state base")

    def first_operands(base: int, part: str) -> None:
        """What the first TMATMULs of the layer at A<base> need. Part "a": the attn_norm gamma (V2,
        exponent A6) and g_proj's norm gamma (V7), exponent (A7) and beta (F1); part "b": the same
        for f_proj (V5, A9, F2) and i_proj (V4, A10, F3)."""
        if part == "a":
            a("LDG", V[2], Mem(base, "L_ATTN_NORM"), c="V2 = attn_norm gamma")
            a("LDW", A[6], Mem(base, "S_ATTN_NORM_EXP"))
        for vg, ae, fb, norm, mat, what in {"a": ((V[7], A[7], F[1], "G_NORM_IN", "G_PROJ", "g"),),
                                            "b": ((V[5], A[9], F[2], "F_NORM", "F_PROJ", "f"),
                                                  (V[4], A[10], F[3], "I_NORM", "I_PROJ", "i"))}[part]:
            a("LDG", vg, Mem(base, f"L_{norm}"), c=f"{vg} = gamma of {what}_proj's norm")
            a("LDW", ae, Mem(base, f"S_{norm}_EXP"))
            a("LDF", fb, Mem(base, f"S_{mat}_BETA"))

    def tmatmul(vd: R, vs: R, fs: R, fbeta: R, mat: str, rows: str, c: str) -> None:
        a("FMUL", fs, fs, fbeta, c=f"{fs} = s * beta")
        a("ADDI", A[5], A[2], f"L_{mat}")
        a("TMATMUL", vd, vs, A[5], fs, rows, c=c)

    a.label("token")
    a("TOKIN", A[7], c="A7 = token (the golden machine halts here when the host has none)")
    a("SETVL", "D")
    a("LDE", V[0], A[7], Mem(1, "EMBED"), c="x = embed(token)")
    a("ADDI", A[2], A[1], "LAYER0", c="A2 = layer 0 base")
    a("ADDS", A[3], A[8], A[0], c="A3 = layer 0 state h")
    a("MOVI", A[4], "N_LAYERS")
    a.comment("layer 0's first operands (later layers load theirs during the previous layer)")
    first_operands(2, "a")
    first_operands(2, "b")

    a.label("layer")
    a.comment("Matrices stream in the order g, f, i | o | gate, up | down (the module docstring: Schedule).")
    a.comment("On entry: V0 x, V2 attn_norm gamma, V7 V5 V4 the g, f, i norm gammas, A6 A7 A9 A10 their")
    a.comment("exponents, F1 F2 F3 the g, f, i betas.")
    a("ADDI", A[12], A[2], "LAYER_STRIDE", c="A12 = next layer's base")
    a.comment("u = rmsnorm(x, attn_norm)")
    a("NORM", V[2], V[0], V[2], A[6], c="V2 = u")
    a("LDG", V[1], Mem(2, "L_G_NORM"), c="V1 = g_norm gamma (while NORM runs)")
    a("LDV", V[3], Mem(3), c="V3 = h of this layer")
    a.comment("g, fz, i = BL(u; g_proj), BL(u; f_proj), BL(u; i_proj)  (QNT recomputes rms(u) itself)")
    a("QNT", V[7], F[0], V[2], V[7], A[7], c="g codes, F0 = per-token scale s")
    a("LDW", A[11], Mem(2, "S_G_NORM_EXP"), c="(while QNT runs)")
    a("LDW", A[15], Mem(2, "S_O_NORM_EXP"))
    a("LDF", F[4], Mem(2, "S_O_PROJ_BETA"))
    tmatmul(V[7], V[7], F[0], F[1], "G_PROJ", "D", "V7 = g = rescale(W . codes)")
    a("QNT", V[5], F[7], V[2], V[5], A[9], c="f codes (while g streams)")
    a("QNT", V[4], F[0], V[2], V[4], A[10], c="i codes")
    a("LDG", V[2], Mem(2, "L_O_NORM"), c="V2 = o_norm gamma (served after g's matrix)")
    tmatmul(V[5], V[5], F[7], F[2], "F_PROJ", "D", "V5 = fz")
    a("NORM", V[7], V[7], V[1], A[11], c="V7 = rmsnorm(g, g_norm) (while f streams)")
    a("LDGT", V[6], Mem(2, "L_LOWER_BOUND"), c="V6 = lb (served after f's matrix)")
    tmatmul(V[4], V[4], F[0], F[3], "I_PROJ", "D", "V4 = i")
    a.comment("f = lb + gate_mul(1 - lb, sigmoid(fz));  1 - f;  h * f  (while i streams)")
    a("SIG", V[5], V[5], c="sigmoid(fz) (GATE)")
    a("ONEM", V[1], V[6], c="1 - lb")
    a("GMUL", V[1], V[1], V[5])
    a("ADD", V[5], V[6], V[1], c="V5 = f")
    a("ONEM", V[6], V[5], c="V6 = 1 - f")
    a("GMUL", V[3], V[3], V[5], c="V3 = h * f")
    a("LDG", V[1], Mem(2, "L_MLP_NORM"), c="V1 = mlp_norm gamma (served after i's matrix)")
    a.comment("h = h * f + silu(i) * (1 - f);  z = rmsnorm(g, g_norm) * silu(h)")
    a("SILU", V[4], V[4])
    a("GMUL", V[4], V[4], V[6], c="V4 = i_in")
    a("ADD", V[3], V[3], V[4], c="V3 = h'")
    a("LDG", V[5], Mem(2, "L_GATE_NORM"), c="V5 = gate_proj's norm gamma")
    a("SILU", V[4], V[3])
    a("MUL", V[7], V[7], V[4], c="V7 = z")
    a("SV", Mem(3), V[3], c="store h'")
    a.comment("x = x + BL(z; o_proj)")
    a("QNT", V[7], F[7], V[7], V[2], A[15], c="o codes")
    a("LDW", A[14], Mem(2, "S_MLP_NORM_EXP"), c="(while QNT runs)")
    a("LDW", A[15], Mem(2, "S_GATE_NORM_EXP"))
    a("LDF", F[5], Mem(2, "S_GATE_PROJ_BETA"))
    tmatmul(V[7], V[7], F[7], F[4], "O_PROJ", "D", "V7 = o")
    a("ADD", V[0], V[0], V[7])
    a.comment("v = rmsnorm(x, mlp_norm);  gate | up = BL(v; gate_proj) as two TMATMULs")
    a("NORM", V[1], V[0], V[1], A[14], c="V1 = v")
    a("SETVL", "INTER")
    a("LDG", V[6], Mem(2, "L_DOWN_NORM"), c="V6 = down_proj's norm gamma (while NORM runs)")
    a("SETVL", "D")
    a("LDW", A[13], Mem(2, "S_DOWN_NORM_EXP"))
    a("LDF", F[6], Mem(2, "S_DOWN_PROJ_BETA"))
    a("QNT", V[5], F[0], V[1], V[5], A[15], c="gate|up codes")
    a.comment("while QNT runs: the next layer's first operands (part a), after the last layer the head's")
    a("ADDI", A[14], A[4], -2, c="A14 < 0: this is the last layer")
    a("BLTZ", A[14], Lbl("last_layer"))
    first_operands(12, "a")
    a("JMP", Lbl("gate"))
    a.label("last_layer")
    a("LDG", V[2], Mem(1, "NORM"), c="V2 = final norm gamma")
    a("LDW", A[6], Mem(1, "NORM_EXP"))
    a("LDG", V[7], Mem(1, "HEAD_NORM"), c="V7 = lm_head's norm gamma")
    a("LDW", A[7], Mem(1, "HEAD_NORM_EXP"))
    a("LDF", F[1], Mem(1, "LM_HEAD_BETA"))
    a.label("gate")
    tmatmul(V[3], V[5], F[0], F[5], "GATE_PROJ", "INTER", "V3 = gate (rows 0..I-1)")
    a("ADDI", A[5], A[5], "UP_OFFSET")
    a("TMATMUL", V[4], V[5], A[5], F[0], "INTER", c="V4 = up (rows I..2I-1, same codes and scale)")
    a.comment("x = x + BL(silu(gate) * up; down_proj)")
    a("SETVL", "INTER")
    a("SILU", V[3], V[3], c="(while up streams)")
    a("MUL", V[3], V[3], V[4])
    a("QNT", V[3], F[7], V[3], V[6], A[13], c="down codes")
    a.comment("while QNT runs: the next layer's first operands (part b; none after the last layer)")
    a("BLTZ", A[14], Lbl("down"))
    a("SETVL", "D")
    first_operands(12, "b")
    a("SETVL", "INTER")
    a.label("down")
    tmatmul(V[3], V[3], F[7], F[6], "DOWN_PROJ", "D", "V3 = down")
    a("SETVL", "D")
    a("ADD", V[0], V[0], V[3])
    a("ADDS", A[2], A[12], A[0], c="next layer")
    a("ADDI", A[3], A[3], "STATE_STRIDE")
    a("DJNZ", A[4], Lbl("layer"))

    a.comment("logits = BL(rmsnorm(x, norm); lm_head), argmax (first maximum) over row chunks")
    a("NORM", V[2], V[0], V[2], A[6])
    a("QNT", V[7], F[0], V[2], V[7], A[7], c="codes of the lm_head input")
    a("FMUL", F[0], F[0], F[1])
    a("ADDI", A[5], A[1], "LM_HEAD")
    a("MOVI", A[9], 0, c="argmax index")
    a("MOVI", A[10], "ARGMAX_LO")
    a("MOVI", A[13], "ARGMAX_SCALE")
    a("MULS", A[10], A[10], A[13], c="argmax value: below every FX logit")
    a("MOVI", A[11], 0, c="first row of the chunk ARGMAX scans next")
    a.comment("chunk k's logits go to V3 (k even) or V5 (k odd), so ARGMAX of chunk k runs while chunk k+1")
    a.comment("streams")

    def chunk_step(k: int, rows: str) -> None:
        """TMATMUL of chunk k (k >= 1) and, meanwhile, ARGMAX of chunk k-1."""
        a("TMATMUL", V[3 + 2 * (k % 2)], V[7], A[5], F[0], rows, c=f"chunk {'odd' if k % 2 else 'even'}")
        a("ADDI", A[5], A[5], "CHUNK_BYTES")
        argmax(k - 1, "CHUNK_ROWS")

    def argmax(k: int, rows: str, last: bool = False) -> None:
        a("SETVL", rows)
        a("ARGMAX", A[9], A[10], V[3 + 2 * (k % 2)], A[11], c=f"over chunk {'odd' if k % 2 else 'even'}")
        if not last:
            a("ADDI", A[11], A[11], "CHUNK_ROWS")
            a("SETVL", "D")

    a("TMATMUL", V[3], V[7], A[5], F[0], "CHUNK_ROWS", c="chunk 0")
    a("ADDI", A[5], A[5], "CHUNK_BYTES")
    pairs, odd = divmod(n_chunks - 1, 2)
    if pairs:
        a("MOVI", A[12], "CHUNK_PAIRS")
        a.label("chunk_pair")
        chunk_step(1, "CHUNK_ROWS")
        chunk_step(2, "CHUNK_ROWS")
        a("DJNZ", A[12], Lbl("chunk_pair"))
    if odd:
        chunk_step(n_chunks - 1, "CHUNK_ROWS")
    if tail:
        chunk_step(n_chunks, "TAIL_ROWS")
        argmax(n_chunks, "TAIL_ROWS", last=True)
    else:
        argmax(n_chunks - 1, "CHUNK_ROWS", last=True)
    a("TOKOUT", A[9], c="next token = argmax")
    a("JMP", Lbl("token"))
    words = a.words()
    return Program("\n".join(a.lines) + "\n", words, dict(a.labels), dict(a.equ), cfg, packing, beat_bytes)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(1)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m sw.compile", description="Compile a model's token step to assembly.")
    ap.add_argument("--model", help=f"preset: {', '.join(PRESETS)}")
    ap.add_argument("--image", type=Path, help="weight image (its config, packing and beat; must agree "
                                               "with --model/--packing/--beat-bytes when given)")
    ap.add_argument("--checkpoint", type=Path, help="checkpoint directory (its config.json)")
    ap.add_argument("--packing", default=None, help=f"{' | '.join(wi.PACKINGS)} (default {wi.DEFAULT_PACKING})")
    ap.add_argument("--beat-bytes", type=int, default=None, help=f"default {wi.DEFAULT_BEAT_BYTES}")
    ap.add_argument("--vlen", type=int, default=DEFAULT_VLEN,
                    help=f"the hardware's vector register depth: the longest vector and the most lm_head rows per "
                         f"TMATMUL (default {DEFAULT_VLEN}, the ddr4 config's)")
    ap.add_argument("-o", "--output", type=Path, help="assembly output (default build/<model>.s)")
    ap.add_argument("--hex", type=Path, help="also write the words, one hex word per line")
    args = ap.parse_args(argv)
    try:
        packing = args.packing or wi.DEFAULT_PACKING
        beat = args.beat_bytes or wi.DEFAULT_BEAT_BYTES
        if args.image is not None:
            img = wi.read_image(args.image, verify=False)
            if args.model is not None and args.model in PRESETS:
                want = get_preset(args.model)
                if wi.layout(want, img.packing, img.beat_bytes).tensors != img.layout.tensors:
                    raise ValueError(f"{args.image} is not a {args.model} image")
            if args.packing and args.packing != img.packing:
                raise ValueError(f"{args.image} has packing {img.packing}, not {args.packing}")
            if args.beat_bytes and args.beat_bytes != img.beat_bytes:
                raise ValueError(f"{args.image} has beat {img.beat_bytes}, not {args.beat_bytes}")
            prog = compile_model(img, vlen=args.vlen)
        else:
            if args.checkpoint is not None:
                cfg = ModelConfig.from_json_file(args.checkpoint / "config.json",
                                                 name=args.model or args.checkpoint.name)
            elif args.model is not None:
                cfg = get_preset(args.model)
            else:
                raise ConfigError("give --model, --image or --checkpoint")
            prog = compile_model(cfg, packing, beat, vlen=args.vlen)
        from sw.artifacts import build_dir
        out = args.output or build_dir(f"{prog.config.name}.s")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(prog.text)
        if args.hex:
            args.hex.parent.mkdir(parents=True, exist_ok=True)
            args.hex.write_text("".join(f"{w:016x}\n" for w in prog.words))
    except (ConfigError, ValueError, OSError, wi.ImageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {out}: {prog.config.name}, {prog.packing}, beat {prog.beat_bytes}: "
          f"{prog.n_words} instruction words ({8 * prog.n_words} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
