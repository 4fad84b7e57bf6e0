"""spec/isa.py: docs/isa.md is its generated text; encode/decode are inverse; decode rejects every
word that encode cannot produce (unknown opcodes, out-of-range registers, non-zero unused fields)."""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spec import isa

DOC = Path(__file__).resolve().parents[2] / "docs" / "isa.md"

_REG_COUNT = {isa.Kind.V: isa.N_VREGS, isa.Kind.A: isa.N_AREGS, isa.Kind.F: isa.N_FREGS}
_S32 = st.integers(-(1 << (isa.IMM_BITS - 1)), (1 << (isa.IMM_BITS - 1)) - 1)


def operand_values(opd: isa.Operand) -> st.SearchStrategy:
    """Every value `encode` accepts for one operand."""
    if opd.kind in _REG_COUNT:
        return st.integers(0, _REG_COUNT[opd.kind] - 1)
    if opd.kind is isa.Kind.MEM:
        return st.tuples(st.integers(0, isa.N_AREGS - 1), _S32)
    if opd.kind is isa.Kind.S32:
        return _S32
    if opd.kind is isa.Kind.U16:
        return st.integers(1, isa.VL_MAX)
    if opd.kind is isa.Kind.LABEL:
        return st.integers(0, (1 << (isa.IMM_BITS - 1)) - 1)
    raise AssertionError(opd.kind)


def instructions() -> st.SearchStrategy:
    return st.sampled_from(isa.OPS).flatmap(
        lambda op: st.tuples(st.just(op), st.tuples(*(operand_values(o) for o in op.operands))))


def _field_mask(name: str) -> int:
    lsb, width = isa.FIELDS[name]
    return ((1 << width) - 1) << lsb


def test_doc_is_generated_from_spec():
    assert DOC.read_text() == isa.markdown(), "regenerate: python -m spec.isa > docs/isa.md"


def test_fields_tile_the_word():
    masks = [_field_mask(f) for f in isa.FIELDS]
    assert sum(masks) == (1 << isa.WORD_BITS) - 1
    for i, m in enumerate(masks):
        assert all(m & n == 0 for n in masks[i + 1:])


@pytest.mark.parametrize("op", isa.OPS, ids=lambda o: o.mnemonic)
def test_every_opcode_round_trips(op):
    @settings(deadline=None, max_examples=30)
    @given(st.tuples(*(operand_values(o) for o in op.operands)))
    def check(args):
        w = isa.encode(op.mnemonic, *args)
        assert 0 <= w < (1 << isa.WORD_BITS)
        ins = isa.decode(w)
        assert ins.op is op and ins.args == args
        assert isa.encode(op.mnemonic.lower(), *ins.args) == w

    check()


@settings(deadline=None, max_examples=300)
@given(st.integers(0, (1 << isa.WORD_BITS) - 1))
def test_decode_accepts_exactly_what_encode_produces(word):
    try:
        ins = isa.decode(word)
    except isa.DecodeError:
        return
    assert isa.encode(ins.op.mnemonic, *ins.args) == word


def test_decode_rejects_unknown_opcodes():
    lsb, width = isa.FIELDS["opcode"]
    unknown = [c for c in range(1 << width) if c not in isa.BY_CODE]
    assert unknown
    for c in unknown:
        with pytest.raises(isa.DecodeError, match="unknown opcode"):
            isa.decode(c << lsb)


@pytest.mark.parametrize("op", isa.OPS, ids=lambda o: o.mnemonic)
def test_decode_rejects_out_of_range_registers(op):
    base = isa.encode(op.mnemonic, *(_smallest(o) for o in op.operands))
    regs = [o for o in op.operands if o.kind in _REG_COUNT]
    for o in regs:
        lsb, width = isa.FIELDS[o.field]
        for bad in range(_REG_COUNT[o.kind], 1 << width):
            with pytest.raises(isa.DecodeError, match="out of range"):
                isa.decode(base | (bad << lsb))


@pytest.mark.parametrize("op", isa.OPS, ids=lambda o: o.mnemonic)
def test_decode_rejects_nonzero_unused_fields(op):
    base = isa.encode(op.mnemonic, *(_smallest(o) for o in op.operands))
    used = {o.field for o in op.operands} | {"opcode"}
    used |= {"imm" for o in op.operands if o.kind is isa.Kind.MEM}
    for f in isa.FIELDS:
        if f in used:
            continue
        lsb, _ = isa.FIELDS[f]
        with pytest.raises(isa.DecodeError, match=f"unused field {f}"):
            isa.decode(base | (1 << lsb))


def test_decode_rejects_bad_immediates():
    for op in isa.OPS:
        base = isa.encode(op.mnemonic, *(_smallest(o) for o in op.operands)) & ~_field_mask("imm")
        for o in op.operands:
            bad = {isa.Kind.U16: [0, isa.VL_MAX + 1], isa.Kind.LABEL: [1 << (isa.IMM_BITS - 1)]}.get(o.kind, [])
            for b in bad:
                with pytest.raises(isa.DecodeError):
                    isa.decode(base | b)


def test_encode_rejects_out_of_range_operands():
    with pytest.raises(isa.EncodeError, match="register index"):
        isa.encode("ADD", isa.N_VREGS, 0, 0)
    with pytest.raises(isa.EncodeError, match="signed 32-bit"):
        isa.encode("MOVI", 0, 1 << 31)
    with pytest.raises(isa.EncodeError, match="outside 1.."):
        isa.encode("SETVL", 0)
    with pytest.raises(isa.EncodeError, match="unknown mnemonic"):
        isa.encode("FROB")


def _smallest(opd: isa.Operand):
    if opd.kind is isa.Kind.MEM:
        return (0, 0)
    return 1 if opd.kind is isa.Kind.U16 else 0
