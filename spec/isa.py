"""The accelerator's instruction set, defined once: opcodes, operand fields, encodings, semantics.

Everything else derives from this table: the assembler encodes with it, the disassembler and the
golden machine decode with it, docs/isa.md is generated from it (`python -m spec.isa`), and the RTL
decoder will switch on it. The vocabulary is a superset of the paper's accelerator ("Scalable
MatMul-free Language Modeling", section 5: LDV, SV, ADD, SUB, MUL, DIV, EXP, SIG, NORM, TMATMUL),
extended so that the whole token step runs on the accelerator (numerics: spec/numerics.py).

Instruction word: 64 bits, little-endian in binary ROM images.

    63      56 55  52 51  48 47  44 43  40 39      32 31                              0
    | opcode  |  a   |  b   |  c   |  d   |    e     |              imm               |

`a`..`d` are 4-bit register fields, `e` an 8-bit field (a fifth register index), `imm` a 32-bit
field (signed or unsigned per operand). Unused fields must be zero (the decoder rejects others).

Architectural state (per core):
  V0..V7   vector registers; elements are integers of at most 48 bits (FX, GATE, codes, ACC)
  A0..A15  scalar integer registers, 64-bit signed (addresses, counters, tokens, max values)
  F0..F7   scale registers, soft floats (SF of spec.numerics: 24-bit mantissa, exponent)
  VL       vector length (elements) used by every vector instruction, set by SETVL
  PC       word index into the instruction ROM
Memory: byte-addressed; the weight image is mapped at address 0, a writable state region follows.
"""
from __future__ import annotations

import dataclasses
import enum

WORD_BITS = 64
IMM_BITS = 32
N_VREGS = 8
N_AREGS = 16
N_FREGS = 8
VL_MAX = (1 << 16) - 1

#: field name -> (lsb, width)
FIELDS: dict[str, tuple[int, int]] = {
    "opcode": (56, 8),
    "a": (52, 4),
    "b": (48, 4),
    "c": (44, 4),
    "d": (40, 4),
    "e": (32, 8),
    "imm": (0, 32),
}


class Kind(enum.Enum):
    """What an operand is, in assembly and in the encoding."""
    V = "vector register"        # V0..V7 in a register field
    A = "scalar register"        # A0..A15 in a register field
    F = "scale register"         # F0..F7 in a register field
    S32 = "signed 32-bit immediate"
    U16 = "unsigned 16-bit immediate (1..65535)"
    MEM = "memory operand [A + offset]: base register in a field, signed offset in imm"
    LABEL = "instruction address (word index) in imm"


@dataclasses.dataclass(frozen=True)
class Operand:
    name: str      # as written in docs and semantics
    kind: Kind
    field: str     # the field holding it ("imm" for immediates; MEM: the base-register field)


@dataclasses.dataclass(frozen=True)
class Op:
    mnemonic: str
    code: int
    fmt: str                       # format name (FORMATS)
    operands: tuple[Operand, ...]
    semantics: str                 # pseudo-code, exact
    group: str
    paper: bool = False            # in the paper's vocabulary


def _o(name: str, kind: Kind, field: str) -> Operand:
    return Operand(name, kind, field)


# Operand layouts, by format name. The assembly syntax is: MNEMONIC op1, op2, ...
FORMATS: dict[str, tuple[Operand, ...]] = {
    "N": (),
    "I": (_o("imm", Kind.U16, "imm"),),
    "J": (_o("target", Kind.LABEL, "imm"),),
    "BJ": (_o("As", Kind.A, "b"), _o("target", Kind.LABEL, "imm")),
    "AI": (_o("Ad", Kind.A, "a"), _o("imm", Kind.S32, "imm")),
    "AAI": (_o("Ad", Kind.A, "a"), _o("As", Kind.A, "b"), _o("imm", Kind.S32, "imm")),
    "AAA": (_o("Ad", Kind.A, "a"), _o("As", Kind.A, "b"), _o("At", Kind.A, "c")),
    "Ad": (_o("Ad", Kind.A, "a"),),
    "As": (_o("As", Kind.A, "b"),),
    "AM": (_o("Ad", Kind.A, "a"), _o("mem", Kind.MEM, "b")),
    "FM": (_o("Fd", Kind.F, "a"), _o("mem", Kind.MEM, "b")),
    "FFF": (_o("Fd", Kind.F, "a"), _o("Fs", Kind.F, "b"), _o("Ft", Kind.F, "c")),
    "VM": (_o("Vd", Kind.V, "a"), _o("mem", Kind.MEM, "b")),
    "MV": (_o("mem", Kind.MEM, "b"), _o("Vs", Kind.V, "c")),
    "VAM": (_o("Vd", Kind.V, "a"), _o("At", Kind.A, "c"), _o("mem", Kind.MEM, "b")),
    "VV": (_o("Vd", Kind.V, "a"), _o("Vs", Kind.V, "b")),
    "VVV": (_o("Vd", Kind.V, "a"), _o("Vs", Kind.V, "b"), _o("Vt", Kind.V, "c")),
    "VVVA": (_o("Vd", Kind.V, "a"), _o("Vs", Kind.V, "b"), _o("Vg", Kind.V, "c"), _o("Ae", Kind.A, "d")),
    "VFVVA": (_o("Vd", Kind.V, "a"), _o("Fd", Kind.F, "e"), _o("Vs", Kind.V, "b"), _o("Vg", Kind.V, "c"),
              _o("Ae", Kind.A, "d")),
    "TMM": (_o("Vd", Kind.V, "a"), _o("Vs", Kind.V, "b"), _o("Aw", Kind.A, "c"), _o("Fs", Kind.F, "d"),
            _o("rows", Kind.U16, "imm")),
    "AAVA": (_o("Ai", Kind.A, "a"), _o("Am", Kind.A, "b"), _o("Vs", Kind.V, "c"), _o("Ao", Kind.A, "d")),
}

_OPS: list[Op] = []


def _op(mn: str, code: int, fmt: str, sem: str, group: str, paper: bool = False) -> None:
    _OPS.append(Op(mn, code, fmt, FORMATS[fmt], sem, group, paper))


# -- control -----------------------------------------------------------------------------------
_op("NOP", 0x00, "N", "pc += 1", "control")
_op("HALT", 0x01, "N", "stop this core", "control")
_op("BARRIER", 0x02, "N", "wait until every core has reached a BARRIER; pc += 1", "control")
_op("JMP", 0x03, "J", "pc = target", "control")
_op("DJNZ", 0x04, "BJ", "As = As - 1; pc = target if As != 0 else pc + 1", "control")
_op("BLTZ", 0x05, "BJ", "pc = target if As < 0 else pc + 1", "control")
_op("SETVL", 0x06, "I", "VL = imm (1..65535); pc += 1", "control")
# -- scalar ------------------------------------------------------------------------------------
_op("MOVI", 0x10, "AI", "Ad = sign_extend(imm)", "scalar")
_op("ADDI", 0x11, "AAI", "Ad = As + sign_extend(imm)  (64-bit wrap)", "scalar")
_op("ADDS", 0x12, "AAA", "Ad = As + At  (64-bit wrap)", "scalar")
_op("SUBS", 0x13, "AAA", "Ad = As - At  (64-bit wrap)", "scalar")
_op("MULS", 0x14, "AAA", "Ad = As * At  (64-bit wrap)", "scalar")
_op("LDW", 0x15, "AM", "Ad = sign_extend(mem32[As + off])  (little-endian)", "scalar")
_op("LDF", 0x16, "FM", "Fd = SF(float32 mem32[As + off])  (exact; the value must be finite, >= 0)", "scalar")
_op("FMUL", 0x17, "FFF", "Fd = sf_mul(Fs, Ft)", "scalar")
_op("TOKIN", 0x18, "Ad", "Ad = next token from the host (blocks; the golden machine halts when the host "
    "has none)", "scalar")
_op("TOKOUT", 0x19, "As", "send As to the host", "scalar")
# -- memory <-> vector -------------------------------------------------------------------------
_op("LDV", 0x20, "VM", "Vd[j] = sign_extend(mem64[As + off + 8j]), j < VL  (FX, little-endian)", "memory",
    paper=True)
_op("SV", 0x21, "MV", "mem64[As + off + 8j] = Vs[j], j < VL", "memory", paper=True)
_op("LDG", 0x22, "VM", "Vd[j] = sign_extend(mem16[As + off + 2j]), j < VL  (GAMMA mantissas)", "memory")
_op("LDGT", 0x23, "VM", "Vd[j] = mem32[As + off + 4j], j < VL  (GATE values, unsigned)", "memory")
_op("LDE", 0x24, "VAM", "Vd[j] = bf16_to_fx(mem16[As + off + 2 * (At * VL + j)]), j < VL  (embedding row At)",
    "memory")
# -- vector arithmetic (FX unless stated; j < VL) -----------------------------------------------
_op("ADD", 0x30, "VVV", "Vd[j] = fx_add(Vs[j], Vt[j])", "vector", paper=True)
_op("SUB", 0x31, "VVV", "Vd[j] = sat(Vs[j] - Vt[j])", "vector", paper=True)
_op("MUL", 0x32, "VVV", "Vd[j] = fx_mul(Vs[j], Vt[j])", "vector", paper=True)
_op("DIV", 0x33, "VVV", "Vd[j] = fx_div(Vs[j], Vt[j])  (exact, ties away from zero; x/0 saturates to the sign "
    "of x, 0/0 = 0)", "vector", paper=True)
_op("EXP", 0x34, "VV", "Vd[j] = fx_exp(Vs[j])  (spec.numerics exp rule)", "vector", paper=True)
_op("SIG", 0x35, "VV", "Vd[j] = sigmoid(Vs[j])  (GATE)", "vector", paper=True)
_op("SILU", 0x36, "VV", "Vd[j] = silu(Vs[j])", "vector")
_op("GMUL", 0x37, "VVV", "Vd[j] = gate_mul(Vs[j], Vt[j])  (FX x GATE)", "vector")
_op("ONEM", 0x38, "VV", "Vd[j] = sat(GATE_ONE - Vs[j])", "vector")
_op("MOVV", 0x39, "VV", "Vd[j] = Vs[j]", "vector")
# -- norms, quantization, ternary matmul, reductions -------------------------------------------
_op("NORM", 0x40, "VVVA", "Vd[:VL] = rmsnorm(Vs[:VL], mant=int16(Vg[:VL]), exp=Ae)  (int16: the low 16 bits, "
    "signed; Ae in [GAMMA_EXP_MIN, GAMMA_EXP_MAX])", "unit", paper=True)
_op("QNT", 0x41, "VFVVA", "Vd[:VL], Fd = quantize(Vs[:VL], mant=int16(Vg[:VL]), exp=Ae)  (codes, per-token "
    "scale; int16 and Ae as NORM)", "unit")
_op("TMATMUL", 0x42, "TMM", "W = trits of a [rows, VL] matrix packed at address Aw (image packing and beat;\n"
    "Aw a multiple of beat_bytes: a row range starting on a row tile);\n"
    "Vd[r] = apply_sf(sum_k W[r, k] * int8(Vs[k]), sf_shift(Fs, FX_FRAC)), r < rows  (int8: the low 8 bits, "
    "signed)", "unit", paper=True)
_op("ARGMAX", 0x43, "AAVA", "for j < VL: if Vs[j] > Am: Am = Vs[j]; Ai = Ao + j  (strict: first maximum kept)",
    "unit")

OPS: tuple[Op, ...] = tuple(_OPS)
BY_MNEMONIC: dict[str, Op] = {o.mnemonic: o for o in OPS}
BY_CODE: dict[int, Op] = {o.code: o for o in OPS}
assert len(BY_MNEMONIC) == len(OPS) and len(BY_CODE) == len(OPS), "duplicate mnemonic or opcode"


class DecodeError(ValueError):
    """A 64-bit word that is not a valid instruction."""


class EncodeError(ValueError):
    """Operands that do not fit an instruction's fields."""


_REG_LIMIT = {Kind.V: N_VREGS, Kind.A: N_AREGS, Kind.F: N_FREGS}
_MASK64 = (1 << WORD_BITS) - 1


def _put(word: int, field: str, value: int) -> int:
    lsb, width = FIELDS[field]
    assert 0 <= value < (1 << width)
    return word | (value << lsb)


def _get(word: int, field: str) -> int:
    lsb, width = FIELDS[field]
    return (word >> lsb) & ((1 << width) - 1)


def encode(mnemonic: str, *args: int | tuple[int, int]) -> int:
    """Encode one instruction. Register operands are indices, immediates and labels ints, MEM
    operands (base_register_index, offset). Raises EncodeError with the offending operand named."""
    op = BY_MNEMONIC.get(mnemonic.upper())
    if op is None:
        raise EncodeError(f"unknown mnemonic {mnemonic!r}")
    if len(args) != len(op.operands):
        raise EncodeError(f"{op.mnemonic} takes {len(op.operands)} operand(s), got {len(args)}")
    w = _put(0, "opcode", op.code)
    for opd, v in zip(op.operands, args, strict=True):
        if opd.kind in _REG_LIMIT:
            lim = _REG_LIMIT[opd.kind]
            if not isinstance(v, int) or not 0 <= v < lim:
                raise EncodeError(f"{op.mnemonic} {opd.name}: register index {v!r} outside 0..{lim - 1}")
            w = _put(w, opd.field, v)
        elif opd.kind is Kind.MEM:
            if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v)):
                raise EncodeError(f"{op.mnemonic} {opd.name}: expected (base register, offset), got {v!r}")
            base, off = v
            if not 0 <= base < N_AREGS:
                raise EncodeError(f"{op.mnemonic} {opd.name}: base register A{base} outside A0..A15")
            if not -(1 << 31) <= off < (1 << 31):
                raise EncodeError(f"{op.mnemonic} {opd.name}: offset {off} outside the signed 32-bit range")
            w = _put(w, opd.field, base)
            w = _put(w, "imm", off & 0xFFFFFFFF)
        elif opd.kind is Kind.S32:
            if not -(1 << 31) <= v < (1 << 31):
                raise EncodeError(f"{op.mnemonic} {opd.name}: {v} outside the signed 32-bit range")
            w = _put(w, "imm", v & 0xFFFFFFFF)
        elif opd.kind is Kind.U16:
            if not 1 <= v <= VL_MAX:
                raise EncodeError(f"{op.mnemonic} {opd.name}: {v} outside 1..{VL_MAX}")
            w = _put(w, "imm", v)
        elif opd.kind is Kind.LABEL:
            if not 0 <= v < (1 << 31):
                raise EncodeError(f"{op.mnemonic} {opd.name}: address {v} outside 0..2**31-1")
            w = _put(w, "imm", v)
        else:  # pragma: no cover
            raise AssertionError(opd.kind)
    return w


@dataclasses.dataclass(frozen=True)
class Instr:
    """A decoded instruction: the Op and its operand values (registers as indices, MEM as
    (base, offset), immediates and labels as ints)."""
    op: Op
    args: tuple

    def __str__(self) -> str:
        return format_instr(self)


def decode(word: int) -> Instr:
    """Decode a 64-bit word; any bit pattern that `encode` cannot produce raises DecodeError."""
    if not 0 <= word <= _MASK64:
        raise DecodeError(f"{word!r} is not a 64-bit word")
    code = _get(word, "opcode")
    op = BY_CODE.get(code)
    if op is None:
        raise DecodeError(f"unknown opcode 0x{code:02x} in word 0x{word:016x}")
    used = {"opcode"}
    args = []
    for opd in op.operands:
        if opd.kind in _REG_LIMIT:
            v = _get(word, opd.field)
            if v >= _REG_LIMIT[opd.kind]:
                raise DecodeError(f"{op.mnemonic}: {opd.name} index {v} out of range in 0x{word:016x}")
            args.append(v)
            used.add(opd.field)
        elif opd.kind is Kind.MEM:
            imm = _get(word, "imm")
            args.append((_get(word, opd.field), imm - (1 << 32) if imm >> 31 else imm))
            used |= {opd.field, "imm"}
        elif opd.kind is Kind.S32:
            imm = _get(word, "imm")
            args.append(imm - (1 << 32) if imm >> 31 else imm)
            used.add("imm")
        elif opd.kind is Kind.U16:
            imm = _get(word, "imm")
            if not 1 <= imm <= VL_MAX:
                raise DecodeError(f"{op.mnemonic}: {opd.name} {imm} outside 1..{VL_MAX} in 0x{word:016x}")
            args.append(imm)
            used.add("imm")
        elif opd.kind is Kind.LABEL:
            imm = _get(word, "imm")
            if imm >> 31:
                raise DecodeError(f"{op.mnemonic}: target {imm} out of range in 0x{word:016x}")
            args.append(imm)
            used.add("imm")
    for f in FIELDS:
        if f not in used and _get(word, f):
            raise DecodeError(f"{op.mnemonic}: unused field {f} is not zero in 0x{word:016x}")
    return Instr(op, tuple(args))


_PREFIX = {Kind.V: "V", Kind.A: "A", Kind.F: "F"}


def format_operand(opd: Operand, v) -> str:
    if opd.kind in _PREFIX:
        return f"{_PREFIX[opd.kind]}{v}"
    if opd.kind is Kind.MEM:
        base, off = v
        return f"[A{base}{off:+d}]" if off else f"[A{base}]"
    return str(v)


def format_instr(ins: Instr) -> str:
    ops = ", ".join(format_operand(o, v) for o, v in zip(ins.op.operands, ins.args, strict=True))
    return f"{ins.op.mnemonic} {ops}".rstrip()


# ---------------------------------------------------------------------------------------------
# docs/isa.md
# ---------------------------------------------------------------------------------------------
def _syntax(op: Op) -> str:
    parts = []
    for o in op.operands:
        parts.append("[As + off]" if o.kind is Kind.MEM else o.name)
    return f"{op.mnemonic} {', '.join(parts)}".rstrip()


def markdown() -> str:
    """docs/isa.md, generated from this module (tests/spec/test_isa.py keeps them equal)."""
    L = ["# Instruction set (generated by `python -m spec.isa > docs/isa.md`; do not edit)", ""]
    L += [line.rstrip() for line in __doc__.split("\n")[2:]]
    L += ["## Fields", "", "| field | bits |", "|---|---|"]
    for f, (lsb, w) in FIELDS.items():
        L.append(f"| {f} | [{lsb + w - 1}:{lsb}] |")
    L += ["", "## Operand kinds", "", "| kind | meaning |", "|---|---|"]
    for k in Kind:
        L.append(f"| {k.name} | {k.value} |")
    L += ["", "## Instructions", "",
          "Numerics functions (fx_add, fx_mul, gate_mul, sigmoid, silu, rmsnorm, quantize, apply_sf, "
          "sf_mul, bf16_to_fx) are those of docs/numerics.md; `sat` saturates to FX.", "",
          "| opcode | syntax | fields | paper | semantics |", "|---|---|---|---|---|"]
    for op in OPS:
        fields = ", ".join(f"{o.name}:{o.field}+imm" if o.kind is Kind.MEM else f"{o.name}:{o.field}"
                           for o in op.operands) or "—"
        sem = op.semantics.replace("\n", "<br>").replace("|", "\\|")
        L.append(f"| 0x{op.code:02x} | `{_syntax(op)}` | {fields} | {'yes' if op.paper else ''} | {sem} |")
    L += ["", "The paper's TMATMUL is spelled TMATMUL here too; its NORM is our NORM; its LDV/SV move FX "
          "vectors; EXP and DIV are kept for the vocabulary but unused by the compiled token step.", ""]
    return "\n".join(L)


if __name__ == "__main__":
    print(markdown(), end="")
