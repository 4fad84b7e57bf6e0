"""The golden machine (golden/machine.py): one small program per opcode checking its semantics against
golden/ops.py, memory faults, TOKIN halting, completeness over spec.isa.OPS, and the compiled
tiny token step bit-identical to GoldenModel (teacher-forced logits and greedy continuation).

Images are synthetic (spec.weight_image.write_image from seeded arrays), so no torch is needed."""
from __future__ import annotations

import collections

import numpy as np
import pytest

from golden import GoldenModel, GoldenWeights
from golden import ops as O
from golden.machine import HANDLERS, GoldenMachine, ListHost, MachineError, TextTrace, format_effects
from spec import isa
from spec import numerics as N
from spec import weight_image as wi
from spec.models import get_preset

E = isa.encode
FX = 1 << N.FX_FRAC
EXECUTED: collections.Counter[str] = collections.Counter()


def synthetic_arrays(cfg, seed: int = 0):
    """Decoded arrays of a valid image with seeded values shaped like a real model's."""
    rng = np.random.default_rng(seed)
    lay = wi.layout(cfg)
    betas, exps = {}, {}
    arrays = {}
    for t in lay.tensors:
        if t.kind == "trits":
            arrays[t.name] = rng.integers(-1, 2, t.shape).astype(np.int8)
            betas[t.name] = np.float32(rng.uniform(0.01, 0.05))
        elif t.kind == "gamma":
            arrays[t.name] = rng.integers(1 << 13, 1 << 15, t.shape).astype(np.int16)
            exps[t.name] = int(rng.integers(13, 16))
        elif t.kind == "gate":
            arrays[t.name] = rng.integers(0, N.GATE_ONE // 2, t.shape).astype(np.uint32)
        elif t.kind == "bf16":
            arrays[t.name] = N.float_to_bf16_bits(rng.normal(0, 1, t.shape).astype(np.float32))
    for t in lay.tensors:
        if t.kind == "scalars":
            if t.name == "head.scalars":
                arrays[t.name] = wi.scalars_record(wi.HEAD_SCALARS, "", betas, exps)
            else:
                prefix = t.name[:-len(wi.LAYER_TENSORS[0][0])]
                arrays[t.name] = wi.scalars_record(wi.LAYER_SCALARS, prefix, betas, exps)
    return arrays


@pytest.fixture(scope="module")
def img(tmp_path_factory):
    cfg = get_preset("tiny")
    path = tmp_path_factory.mktemp("machine") / "tiny.img"
    wi.write_image(path, cfg, synthetic_arrays(cfg), source="synthetic test image")
    return wi.read_image(path)


def run(img, words, tokens=(), setup=None, **kw):
    m = GoldenMachine(words, img, **kw)
    if setup is not None:
        setup(m)
    host = ListHost(tokens)
    m.run(host)
    m.host_outputs = host.outputs
    EXECUTED.update(m.profile)
    return m


def vec_prog(mn: str, n_in: int, vl: int) -> list[int]:
    """Load n_in vectors from the state region (A1 = state base), apply mn, store V7 back."""
    w = [E("SETVL", vl), E("LDW", 2, (0, 32)), E("LDW", 1, (0, 24)), E("ADDS", 1, 1, 2)]
    for i in range(n_in):
        w.append(E("LDV", i, (1, 8 * vl * i)))
    regs = [7] + list(range(n_in))
    w += [E(mn, *regs), E("SV", (1, 8 * vl * n_in), 7), E("HALT")]
    return w


def run_vec(img, mn: str, *inputs: np.ndarray) -> np.ndarray:
    vl = inputs[0].size

    def setup(m):
        for i, v in enumerate(inputs):
            m.write(m.state_base + 8 * vl * i, np.asarray(v, "<i8"))

    m = run(img, vec_prog(mn, len(inputs), vl), setup=setup)
    out = m.read(m.state_base + 8 * vl * len(inputs), 8 * vl).view("<i8").copy()
    assert np.array_equal(out, m.V[7][:vl])
    return out


RNG = np.random.default_rng(7)
X = RNG.integers(-40 * FX, 40 * FX, 96)
Y = RNG.integers(-40 * FX, 40 * FX, 96)
G = RNG.integers(0, N.GATE_ONE + 1, 96)


# -- control and scalar ------------------------------------------------------------------------------
def case_control(img):
    w = [E("NOP"), E("BARRIER"), E("MOVI", 1, 3), E("MOVI", 2, 0),
         E("ADDI", 2, 2, 10), E("DJNZ", 1, 4),            # 4: A2 += 10, three times
         E("MOVI", 3, -1), E("BLTZ", 3, 9), E("MOVI", 2, 999),
         E("BLTZ", 2, 8), E("JMP", 12), E("MOVI", 2, 777), E("HALT"), E("MOVI", 2, 555)]
    m = run(img, w)
    assert m.A[2] == 30 and m.A[1] == 0 and m.halt_reason == "HALT" and m.pc == 12
    return m


def case_scalar(img):
    w = [E("MOVI", 1, -(1 << 31)), E("MOVI", 2, 1 << 30), E("MULS", 3, 1, 2), E("MULS", 4, 3, 3),
         E("ADDS", 5, 1, 2), E("SUBS", 6, 1, 2), E("ADDI", 7, 2, -5), E("SETVL", 7), E("HALT")]
    m = run(img, w)
    assert m.A[3] == -(1 << 61)
    assert m.A[4] == 0                      # 2**122 wraps to 0 in 64 bits
    assert m.A[5] == -(1 << 30) and m.A[6] == -(3 << 30) and m.A[7] == (1 << 30) - 5 and m.VL == 7
    return m


def case_scalar_loads(img):
    rec = "layers.0.scalars"
    beta_name = "layers.0." + wi.LAYER_MATRICES[3]
    _, bi = img.layout.scalar_slots[("beta", beta_name)]
    exp_name = "layers.0." + wi.LAYER_SCALARS[-1][1]
    _, ei = img.layout.scalar_slots[("gamma_exp", exp_name)]
    w = [E("MOVI", 1, img.offset(rec)), E("LDW", 2, (1, 4 * ei)), E("LDF", 3, (1, 4 * bi)),
         E("FMUL", 4, 3, 3), E("HALT")]
    m = run(img, w)
    assert m.A[2] == img.gamma_exp(exp_name)
    b = O.sf_from_float(img.beta(beta_name))
    assert m.F[3] == b and m.F[4] == O.sf_mul(b, b)
    return m


def case_tokens(img):
    w = [E("TOKIN", 1), E("ADDI", 1, 1, 1), E("TOKOUT", 1), E("JMP", 0)]
    m = run(img, w, tokens=[5, 9, 200])
    assert m.host_outputs == [6, 10, 201]
    assert m.halted and m.pc == 0 and "TOKIN" in m.halt_reason   # halted cleanly on TOKIN
    m.run(ListHost([41]))                                        # resumes at the TOKIN
    assert m.A[1] == 42
    return m


# -- memory <-> vector ------------------------------------------------------------------------------
def case_memory(img):
    name_g, name_lb, name_e = "layers.1.attn_norm", "layers.1.lower_bound", "embeddings"
    d = img.model.hidden_size
    w = [E("SETVL", d), E("MOVI", 1, img.offset(name_g)), E("LDG", 0, (1, 0)),
         E("MOVI", 2, img.offset(name_lb)), E("LDGT", 1, (2, 0)),
         E("MOVI", 3, img.offset(name_e)), E("MOVI", 4, 77), E("LDE", 2, 4, (3, 0)),
         E("LDW", 5, (0, 32)), E("LDW", 6, (0, 24)), E("ADDS", 5, 5, 6),
         E("SV", (5, 64), 2), E("LDV", 3, (5, 64)), E("HALT")]
    m = run(img, w)
    assert np.array_equal(m.V[0][:d], img.array(name_g).astype(np.int64))
    assert np.array_equal(m.V[1][:d], img.array(name_lb).astype(np.int64))
    assert np.array_equal(m.V[2][:d], N.bf16_to_fx(img.array(name_e)[77]))
    assert np.array_equal(m.V[3][:d], m.V[2][:d]) and m.state_base == m.A[5]
    assert np.array_equal(m.read(m.state_base + 64, 8 * d).view("<i8"), m.V[2][:d])
    return m


# -- vector arithmetic ------------------------------------------------------------------------------
VEC_CASES = {
    "ADD": ((X, Y), lambda x, y: O.fx_add(x, y)),
    "SUB": ((X, Y), lambda x, y: O.sat_fx(x - y)),
    "MUL": ((X, Y), O.fx_mul),
    "DIV": ((X, Y), O.fx_div),
    "EXP": ((X // 4,), O.fx_exp),
    "SIG": ((X,), O.sigmoid),
    "SILU": ((X,), O.silu),
    "GMUL": ((X, G), O.gate_mul),
    "ONEM": ((G,), lambda g: N.GATE_ONE - g),
    "MOVV": ((X,), lambda x: x),
}


def case_vector(img, mn):
    ins, ref = VEC_CASES[mn]
    assert np.array_equal(run_vec(img, mn, *ins), ref(*ins)), mn


def case_vector_saturation(img):
    big = np.array([N.FX_MAX, N.FX_MIN, N.FX_MAX, 3 * FX], np.int64)
    assert run_vec(img, "ADD", big, big).tolist() == [N.FX_MAX, N.FX_MIN, N.FX_MAX, 6 * FX]
    assert run_vec(img, "SUB", big, -big).tolist()[:2] == [N.FX_MAX, N.FX_MIN]
    assert run_vec(img, "MUL", big, big).tolist() == O.fx_mul(big, big).tolist()
    # ONEM of a very negative FX value would need 49 bits: vector registers saturate (as the RTL)
    assert run_vec(img, "ONEM", np.array([N.FX_MIN, -1, 0, N.GATE_ONE], np.int64)).tolist() == \
        [N.FX_MAX, N.GATE_ONE + 1, N.GATE_ONE, 0]


# -- units --------------------------------------------------------------------------------------------
def case_norm_qnt(img):
    d = img.model.hidden_size
    gname = "layers.0.attn.i_proj.norm"
    mant, gexp = img.array(gname), img.gamma_exp(gname)
    x = X[:d]
    rec, ei = img.layout.scalar_slots[("gamma_exp", gname)]

    def setup(m):
        m.write(m.state_base, x.astype("<i8"))

    w = [E("SETVL", d), E("LDW", 1, (0, 24)), E("LDW", 2, (0, 32)), E("ADDS", 2, 2, 1),
         E("LDV", 0, (2, 0)), E("MOVI", 3, img.offset(gname)), E("LDG", 1, (3, 0)),
         E("MOVI", 4, img.offset(rec)), E("LDW", 5, (4, 4 * ei)),
         E("NORM", 2, 0, 1, 5), E("QNT", 3, 6, 0, 1, 5), E("HALT")]
    m = run(img, w, setup=setup)
    assert np.array_equal(m.V[2][:d], O.rmsnorm(x, mant, gexp))
    codes, s = O.quantize(x, mant, gexp)
    assert np.array_equal(m.V[3][:d], codes.astype(np.int64)) and m.F[6] == s
    return m


def case_tmatmul_argmax(img):
    """lm_head in two chunks of 128 rows (the second at the byte offset of row 128) + ARGMAX."""
    d, vocab = img.model.hidden_size, img.model.vocab_size
    codes = RNG.integers(-127, 128, d)
    half = vocab // 2
    assert half % img.beat_bytes == 0
    off2 = wi.packed_nbytes(half, d, img.packing, img.beat_bytes)
    scal, bi = img.layout.scalar_slots[("beta", "lm_head")]

    def setup(m):
        m.write(m.state_base, codes.astype("<i8"))

    w = [E("SETVL", d), E("LDW", 1, (0, 24)), E("LDW", 2, (0, 32)), E("ADDS", 2, 2, 1),
         E("LDV", 0, (2, 0)), E("MOVI", 3, img.offset(scal)), E("LDF", 1, (3, 4 * bi)),
         E("MOVI", 4, img.offset("lm_head")), E("TMATMUL", 1, 0, 4, 1, half),
         E("ADDI", 4, 4, off2), E("TMATMUL", 2, 0, 4, 1, half),
         E("MOVI", 9, 0), E("MOVI", 10, -(1 << 31)), E("MOVI", 11, 0), E("SETVL", half),
         E("ARGMAX", 9, 10, 1, 11), E("ADDI", 11, 11, half), E("ARGMAX", 9, 10, 2, 11), E("HALT")]
    m = run(img, w, setup=setup)
    acc = img.array("lm_head").astype(np.int64) @ codes
    ref = O.apply_sf(acc, O.sf_shift(O.sf_from_float(img.beta("lm_head")), N.FX_FRAC))
    got = np.concatenate([m.V[1][:half], m.V[2][:half]])
    assert np.array_equal(got, ref)
    assert m.A[9] == int(np.argmax(ref)) and m.A[10] == int(ref.max())
    return m


def case_argmax_first_maximum(img):
    v = np.array([3, 9, 1, 9, 9, -4], np.int64)
    w = [E("SETVL", 6), E("LDW", 1, (0, 24)), E("LDW", 2, (0, 32)), E("ADDS", 2, 2, 1),
         E("LDV", 0, (2, 0)), E("MOVI", 5, 100), E("MOVI", 6, 9), E("MOVI", 7, 1000),
         E("ARGMAX", 5, 6, 0, 7),          # 9 is not > 9: unchanged
         E("MOVI", 6, 8), E("ARGMAX", 5, 6, 0, 7), E("HALT")]
    m = run(img, w, setup=lambda m: m.write(m.state_base, v.astype("<i8")))
    assert m.A[5] == 1001 and m.A[6] == 9
    return m


CASES = {"control": case_control, "scalar": case_scalar, "scalar_loads": case_scalar_loads,
         "tokens": case_tokens, "memory": case_memory, "vector_saturation": case_vector_saturation,
         "norm_qnt": case_norm_qnt, "tmatmul_argmax": case_tmatmul_argmax,
         "argmax_first": case_argmax_first_maximum}
CASES |= {f"vec_{mn}": (lambda img, mn=mn: case_vector(img, mn)) for mn in VEC_CASES}


@pytest.mark.parametrize("name", list(CASES))
def test_opcode_programs(img, name):
    CASES[name](img)


# -- faults -------------------------------------------------------------------------------------------
def _fault(img, words, match, **kw):
    with pytest.raises(MachineError, match=match):
        run(img, words, **kw)


def test_memory_faults_name_pc_and_instruction(img):
    size = img.file_bytes().size
    _fault(img, [E("SETVL", 4), E("SV", (0, 64), 0)], r"pc 1 \(SV \[A0\+64\], V0\).*read-only weight image")
    _fault(img, [E("LDW", 1, (0, 2))], r"pc 0 .*misaligned read")
    _fault(img, [E("MOVI", 1, size + 4096 * 1024), E("LDW", 2, (1, 0))], r"pc 1 .*outside memory")
    _fault(img, [E("MOVI", 1, -8), E("LDW", 2, (1, 0))], "outside memory")
    _fault(img, [E("MOVI", 1, size), E("SETVL", 4), E("SV", (1, 4), 0)], "misaligned write")
    _fault(img, [E("LDV", 0, (0, 0))], "VL is not set")
    _fault(img, [E("MOVI", 1, 1), E("SETVL", 4), E("TMATMUL", 0, 0, 1, 0, 4)], "misaligned")


def test_bad_words_runaway_and_rom_end(img):
    _fault(img, [0xFF << 56], r"pc 0: unknown opcode")
    _fault(img, [E("NOP")], "outside the ROM")
    _fault(img, [E("JMP", 0)], "runaway", max_steps=1000)
    # a bad word that is never executed is fine
    m = run(img, [E("HALT"), 0xFF << 56])
    assert m.halted


def test_trace_callback_and_text(img, tmp_path):
    seen = []
    m = GoldenMachine([E("MOVI", 1, 5), E("SETVL", 3), E("LDE", 0, 1, (0, img.offset("embeddings"))),
                       E("TOKOUT", 1), E("HALT")], img,
                      trace=lambda pc, ins, eff: seen.append((pc, str(ins), format_effects(eff))))
    m.run(ListHost())
    assert [s[0] for s in seen] == [0, 1, 2, 3, 4]
    assert seen[0][2] == "A1=5" and seen[1][2] == "VL=3" and seen[3][2] == "tokout=5"
    assert seen[2][1].startswith("LDE V0, A1") and "V0[3] crc=0x" in seen[2][2]
    f = tmp_path / "t.txt"
    with open(f, "w") as fh:
        GoldenMachine([E("MOVI", 1, 5), E("HALT")], img, trace=TextTrace(fh)).run()
    assert f.read_text().splitlines() == ["0 0 MOVI A1, 5 ; A1=5", "1 1 HALT ; "]


# -- completeness -----------------------------------------------------------------------------------
def test_every_op_has_a_handler_and_round_trips():
    assert set(HANDLERS) == {op.mnemonic for op in isa.OPS}
    rng = np.random.default_rng(0)
    for op in isa.OPS:
        args = []
        for o in op.operands:
            lim = {isa.Kind.V: isa.N_VREGS, isa.Kind.A: isa.N_AREGS, isa.Kind.F: isa.N_FREGS}.get(o.kind)
            if lim:
                args.append(int(rng.integers(0, lim)))
            elif o.kind is isa.Kind.MEM:
                args.append((int(rng.integers(0, isa.N_AREGS)), int(rng.integers(-1000, 1000))))
            elif o.kind is isa.Kind.U16:
                args.append(int(rng.integers(1, isa.VL_MAX + 1)))
            else:
                args.append(int(rng.integers(0, 1 << 20)))
        ins = isa.decode(isa.encode(op.mnemonic, *args))
        assert ins.op is op and list(ins.args) == args


def test_programs_execute_every_op(img, tiny_compiled):
    seen = collections.Counter()
    for case in CASES.values():
        before = EXECUTED.copy()
        case(img)
        seen += EXECUTED - before
    seen += tiny_compiled.profile
    missing = {op.mnemonic for op in isa.OPS} - set(seen)
    assert not missing, f"no test program executes {sorted(missing)}"


# -- the compiled token step --------------------------------------------------------------------------
TOKENS = np.random.default_rng(99).integers(0, 256, 16)


@pytest.fixture(scope="module")
def tiny_compiled(img):
    from sw.compile import compile_model
    prog = compile_model(img)
    m = GoldenMachine(prog.words, img)
    out, logits = m.run_teacher(TOKENS, logits=True)
    m.teacher = (out, logits)
    return m


def test_compiled_tiny_bit_identical_teacher_forced(img, tiny_compiled):
    out, logits = tiny_compiled.teacher
    ref = GoldenModel(GoldenWeights.from_image(img)).run(TOKENS)
    assert logits.shape == ref.shape and np.array_equal(logits, ref)
    assert out == [int(np.argmax(r)) for r in ref]


def test_compiled_tiny_bit_identical_greedy(img):
    from sw.compile import compile_model
    m = GoldenMachine(compile_model(img).words, img)
    got = m.run_tokens(TOKENS[:4], 12)
    ref = GoldenModel(GoldenWeights.from_image(img)).generate(TOKENS[:4], 12)
    assert got == ref and len(got) == 12
    # the state region holds each layer's h after the last fed token; reset clears it
    assert m.state.any()
    m.reset()
    assert not m.state.any()
