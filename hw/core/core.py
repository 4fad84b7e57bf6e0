"""One accelerator core: instruction ROM, sequencer with a stalling PC, scalar registers,
the vector register file with its router, and the five functional units (docs/core.md).

The paper's core (Zhu et al. 2024, section 5) issues in order and stalls the program counter
while a functional unit or a register it needs is busy. So does this one:

* Fetch: the ROM (`rom_words` words, contents from `rom` at elaboration, rewritable through
  `rom_wr`) is read one word per cycle; a taken branch costs no bubble (the read address is the
  next PC, known at issue).
* Decode is derived from spec.isa: every opcode of spec.isa.OPS has a case, built from its
  operand list (which fields are registers, which are read or written); a word spec.isa.decode
  would reject (unknown opcode, non-zero unused field, register index out of range, bad
  immediate) stops the core with `fault` set.
* Issue: scalar and control instructions (SCALAR_OPS) execute in the sequencer in the cycle they
  issue. The others go to their unit (UNIT_OF) with their operands read at issue. An
  instruction issues when its unit is idle and none of its registers is reserved by an
  instruction in flight: vector registers it reads or writes must be neither read nor written in
  flight (one read and one write port per register), A and F registers it reads or writes must
  not be pending a write. Each unit reserves its registers at issue and releases them with its
  `done` pulse. Memory order: SV waits for TMATMUL's weight reads to finish and TMATMUL waits for
  a store in progress; loads and stores share one unit and stay in order. HALT and BARRIER wait
  until every unit is idle.
* Units: `lsu` (LDV SV LDG LDGT LDE LDW LDF), `vec` (ADD SUB MUL DIV EXP SIG SILU GMUL ONEM MOVV),
  `nq` (NORM QNT), `mm` (TMATMUL), `arg` (ARGMAX). They run concurrently.

Host side: `tok_in` (TOKIN blocks until a token is offered; `waiting` is high meanwhile),
`tok_out` (TOKOUT; one token buffered), `halted`, `fault`, `start` (restarts a halted core at
PC 0 with its registers kept). Memory: `mem` (the load/store unit) and `wmem` (TMATMUL weight
reads, which hw.top broadcasts to all cores).
"""
from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hw.mem.port import MemPortSignature
from spec import isa
from spec import numerics as N
from spec.accel import AccelConfig

from .argmax import ArgmaxUnit
from .iface import A_BITS, check_core_config, sf_layout, unit_cmd_layout
from .lsu import LoadStoreUnit
from .matmul import MatmulUnit
from .normq import NormQuantUnit
from .regfile import RegisterFile
from .vecunit import VectorOpUnit

__all__ = ["Core", "SCALAR_OPS", "UNITS", "UNIT_OF", "TOKEN_BITS", "rom_write_signature"]

UNITS = ("lsu", "vec", "nq", "mm", "arg")
UNIT_OF: dict[str, str] = {}
for _mn in ("LDV", "SV", "LDG", "LDGT", "LDE", "LDW", "LDF"):
    UNIT_OF[_mn] = "lsu"
for _op in isa.OPS:
    if _op.group == "vector":
        UNIT_OF[_op.mnemonic] = "vec"
UNIT_OF.update({"NORM": "nq", "QNT": "nq", "TMATMUL": "mm", "ARGMAX": "arg"})
SCALAR_OPS = ("NOP", "HALT", "BARRIER", "JMP", "DJNZ", "BLTZ", "SETVL", "MOVI", "ADDI", "ADDS", "SUBS", "MULS",
              "FMUL", "TOKIN", "TOKOUT")
_unplaced = {o.mnemonic for o in isa.OPS} - set(UNIT_OF) - set(SCALAR_OPS)
assert not _unplaced, f"hw.core: opcodes with no place in the core: {sorted(_unplaced)}"

#: Token width on tok_in (sign-extended into the A register).
TOKEN_BITS = 32

#: Operand names that the instruction writes (besides reading): everything else is a read.
_WRITES = {"Vd", "Ad", "Fd", "Ai"}
_READ_WRITE = {"Am"}


def _role(op: isa.Op, opd: isa.Operand) -> tuple[bool, bool]:
    """(reads, writes) of an operand."""
    if op.mnemonic == "DJNZ" and opd.name == "As":
        return True, True
    if opd.name in _READ_WRITE:
        return True, True
    if opd.name in _WRITES:
        return False, True
    return True, False


def rom_write_signature(rom_words: int) -> wiring.Signature:
    return wiring.Signature({"en": Out(1), "addr": Out(range(max(2, rom_words))), "data": Out(isa.WORD_BITS)})


class Core(wiring.Component):
    """One core. See the module docstring.

    Parameters
    ----------
    config : AccelConfig
    rom : sequence of int, optional
        Initial ROM contents (at most ``config.rom_words`` words; the rest are 0 = NOP).

    Attributes
    ----------
    mem, wmem : Out(MemPortSignature(beat_bytes))
    tok_in : In(stream.Signature(signed(TOKEN_BITS)))
    tok_out : Out(stream.Signature(signed(64)))
    rom_wr : In(rom_write_signature(rom_words))
    start : In(1)
    barrier_go : In(1)
        BARRIER proceeds in a cycle where this is high (hw.top: every core is at a barrier or
        halted; tie high for a lone core).
    halted, fault, waiting, at_barrier, busy : Out(1)
    pc : Out(range(rom_words))
    issued : Out(1)
        High in each cycle an instruction issues (for counters).
    """

    def __init__(self, config: AccelConfig, rom: Sequence[int] = ()):
        check_core_config(config)
        rom = [int(w) for w in rom]
        if len(rom) > config.rom_words:
            raise ValueError(f"ROM of {len(rom)} words does not fit rom_words {config.rom_words}")
        self._config = config
        self._rom = rom
        super().__init__({
            "mem": Out(MemPortSignature(config.beat_bytes)),
            "wmem": Out(MemPortSignature(config.beat_bytes)),
            "tok_in": In(stream.Signature(signed(TOKEN_BITS))),
            "tok_out": Out(stream.Signature(signed(A_BITS))),
            "rom_wr": In(rom_write_signature(config.rom_words)),
            "start": In(1),
            "barrier_go": In(1, init=1),
            "halted": Out(1),
            "fault": Out(1),
            "waiting": Out(1),
            "at_barrier": Out(1),
            "busy": Out(1),
            "pc": Out(range(max(2, config.rom_words))),
            "issued": Out(1),
        })

    @property
    def config(self) -> AccelConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config

        # ---- units and register file ------------------------------------------------------------
        units = {
            "lsu": LoadStoreUnit(cfg),
            "vec": VectorOpUnit(cfg),
            "nq": NormQuantUnit(cfg),
            "mm": MatmulUnit(cfg),
            "arg": ArgmaxUnit(cfg),
        }
        for name, u in units.items():
            m.submodules[name] = u
        reads = [units["lsu"].rs, units["vec"].rs, units["vec"].rt, units["nq"].rs, units["nq"].rt,
                 units["mm"].rs, units["arg"].rs]
        writes = [units["lsu"].wd, units["vec"].wd, units["nq"].wd, units["mm"].wd]
        m.submodules.regs = regs = RegisterFile(cfg, len(reads), len(writes))
        for ch, port in zip(reads, regs.rd, strict=True):
            connect(m, ch, port)
        for ch, port in zip(writes, regs.wr, strict=True):
            connect(m, ch, port)
        connect(m, units["lsu"].mem, wiring.flipped(self.mem))
        connect(m, units["mm"].mem, wiring.flipped(self.wmem))

        # ---- architectural state ----------------------------------------------------------------
        A = Array(Signal(signed(A_BITS), name=f"a{i}") for i in range(isa.N_AREGS))
        F = Array(Signal(sf_layout(), name=f"f{i}") for i in range(isa.N_FREGS))
        VL = Signal(range(isa.VL_MAX + 1))
        pc = Signal(range(max(2, cfg.rom_words)))
        halted = Signal()
        fault = Signal()
        m.d.comb += [self.pc.eq(pc), self.halted.eq(halted), self.fault.eq(fault)]

        # ---- fetch --------------------------------------------------------------------------------
        m.submodules.rom = rom = memory.Memory(shape=isa.WORD_BITS, depth=cfg.rom_words, init=self._rom)
        rom_rd = rom.read_port()
        rom_wp = rom.write_port()
        m.d.comb += [rom_wp.en.eq(self.rom_wr.en), rom_wp.addr.eq(self.rom_wr.addr), rom_wp.data.eq(self.rom_wr.data)]
        next_pc = Signal.like(pc)
        fetched = Signal.like(pc)            # address the ROM read port read last cycle
        fetched_ok = Signal()                # ... and no ROM write could have changed it
        m.d.comb += [rom_rd.addr.eq(next_pc), rom_rd.en.eq(1)]
        m.d.sync += [fetched.eq(next_pc), fetched_ok.eq(~self.rom_wr.en)]
        ir = Signal(isa.WORD_BITS)
        m.d.comb += ir.eq(rom_rd.data)
        ir_valid = Signal()
        m.d.comb += ir_valid.eq(fetched_ok & (fetched == pc) & ~halted & ~regs.clearing)

        # ---- decode (from spec.isa) -------------------------------------------------------------
        fld = {name: Signal(width, name=f"f_{name}") for name, (_, width) in isa.FIELDS.items()}
        for name, (lsb, width) in isa.FIELDS.items():
            m.d.comb += fld[name].eq(ir[lsb:lsb + width])
        imm_s = Signal(signed(isa.IMM_BITS))
        m.d.comb += imm_s.eq(fld["imm"])

        known = Signal()
        fields_ok = Signal()
        rv, wv = Signal(isa.N_VREGS), Signal(isa.N_VREGS)
        ra, wa = Signal(isa.N_AREGS), Signal(isa.N_AREGS)
        rf, wf = Signal(isa.N_FREGS), Signal(isa.N_FREGS)
        unit_sel = {u: Signal(name=f"is_{u}") for u in UNITS}
        is_op = {op.mnemonic: Signal(name=f"is_{op.mnemonic.lower()}") for op in isa.OPS}
        vd, vs, vt = (Signal(range(isa.N_VREGS), name=n) for n in ("vd", "vs", "vt"))
        fd_idx = Signal(range(isa.N_FREGS))
        base_val = Signal(signed(A_BITS))    # A[base] + offset of a MEM operand

        def onehot(idx, n):
            return (Const(1, n) << idx)[:n]

        with m.Switch(fld["opcode"]):
            for op in isa.OPS:
                with m.Case(op.code):
                    m.d.comb += [known.eq(1), is_op[op.mnemonic].eq(1)]
                    if op.mnemonic in UNIT_OF:
                        m.d.comb += unit_sel[UNIT_OF[op.mnemonic]].eq(1)
                    used = {"opcode"}
                    conds = []
                    masks = {"rv": [], "wv": [], "ra": [], "wa": [], "rf": [], "wf": []}
                    for opd in op.operands:
                        f = fld[opd.field]
                        used.add(opd.field)
                        r, w = _role(op, opd)
                        if opd.kind is isa.Kind.V:
                            conds.append(f < isa.N_VREGS)
                            if r:
                                masks["rv"].append(onehot(f[:3], isa.N_VREGS))
                            if w:
                                masks["wv"].append(onehot(f[:3], isa.N_VREGS))
                            if opd.name == "Vd":
                                m.d.comb += vd.eq(f[:3])
                            elif opd.name == "Vs":
                                m.d.comb += vs.eq(f[:3])
                            else:                       # Vt, Vg
                                m.d.comb += vt.eq(f[:3])
                        elif opd.kind is isa.Kind.A:
                            if r:
                                masks["ra"].append(onehot(f, isa.N_AREGS))
                            if w:
                                masks["wa"].append(onehot(f, isa.N_AREGS))
                        elif opd.kind is isa.Kind.F:
                            conds.append(f < isa.N_FREGS)
                            if r:
                                masks["rf"].append(onehot(f[:3], isa.N_FREGS))
                            if w:
                                masks["wf"].append(onehot(f[:3], isa.N_FREGS))
                                m.d.comb += fd_idx.eq(f[:3])
                        elif opd.kind is isa.Kind.MEM:
                            used.add("imm")
                            masks["ra"].append(onehot(f, isa.N_AREGS))
                            m.d.comb += base_val.eq(A[f] + imm_s)
                        elif opd.kind is isa.Kind.U16:
                            conds.append(f != 0)
                            conds.append(f <= isa.VL_MAX)
                        elif opd.kind is isa.Kind.LABEL:
                            conds.append(~f[isa.IMM_BITS - 1])
                        # S32: any value
                    for name in isa.FIELDS:
                        if name not in used:
                            conds.append(fld[name] == 0)
                    ok = Const(1)
                    for c in conds:
                        ok = ok & c
                    m.d.comb += fields_ok.eq(ok)
                    sigs = {"rv": rv, "wv": wv, "ra": ra, "wa": wa, "rf": rf, "wf": wf}
                    for key, parts in masks.items():
                        if parts:
                            v = parts[0]
                            for part in parts[1:]:
                                v = v | part
                            m.d.comb += sigs[key].eq(v)

        # ---- scoreboard ---------------------------------------------------------------------------
        held = {u: {k: Signal(n, name=f"held_{k}_{u}") for k, n in
                    (("rv", isa.N_VREGS), ("wv", isa.N_VREGS), ("wa", isa.N_AREGS), ("wf", isa.N_FREGS))}
                for u in UNITS}
        busy = {u: Signal(name=f"busy_{u}") for u in UNITS}
        lsu_store = Signal()

        def any_of(key):
            v = 0
            for u in UNITS:
                v = v | held[u][key]
            return v

        pend_rv, pend_wv, pend_wa, pend_wf = any_of("rv"), any_of("wv"), any_of("wa"), any_of("wf")
        all_idle = Signal()
        m.d.comb += all_idle.eq(~Cat(*busy.values()).any())
        m.d.comb += self.busy.eq(~all_idle)
        hazard = Signal()
        m.d.comb += hazard.eq(((rv | wv) & (pend_rv | pend_wv)).any() | ((ra | wa) & pend_wa).any() |
                              ((rf | wf) & pend_wf).any())

        special_ok = Signal()
        m.d.comb += special_ok.eq(1)
        with m.If(is_op["TOKIN"]):
            m.d.comb += special_ok.eq(self.tok_in.valid)
        with m.If(is_op["TOKOUT"]):
            m.d.comb += special_ok.eq(~self.tok_out.valid)
        with m.If(is_op["HALT"]):
            m.d.comb += special_ok.eq(all_idle)
        with m.If(is_op["BARRIER"]):
            m.d.comb += special_ok.eq(all_idle & self.barrier_go)
        with m.If(is_op["SV"]):
            m.d.comb += special_ok.eq(~busy["mm"])
        with m.If(is_op["TMATMUL"]):
            m.d.comb += special_ok.eq(~(busy["lsu"] & lsu_store))

        can = Signal()          # everything but the unit's readiness
        m.d.comb += can.eq(ir_valid & known & fields_ok & ~hazard & special_ok)
        unit_ready = Signal()
        is_unit = Signal()
        for u in UNITS:
            with m.If(unit_sel[u]):
                m.d.comb += [unit_ready.eq(units[u].cmd.ready), is_unit.eq(1)]
        issue = Signal()
        m.d.comb += issue.eq(can & (~is_unit | unit_ready))
        m.d.comb += self.issued.eq(issue)
        m.d.comb += [
            self.waiting.eq(ir_valid & is_op["TOKIN"] & ~self.tok_in.valid),
            self.at_barrier.eq(ir_valid & is_op["BARRIER"] & all_idle),
        ]
        with m.If(ir_valid & ~(known & fields_ok)):
            m.d.sync += [fault.eq(1), halted.eq(1)]

        # ---- unit commands --------------------------------------------------------------------------
        cmd = Signal(unit_cmd_layout(cfg))
        m.d.comb += [
            cmd.op.eq(fld["opcode"]), cmd.vl.eq(VL),
            cmd.vd.eq(vd), cmd.vs.eq(vs), cmd.vt.eq(vt),
            cmd.fd.eq(fd_idx),
            cmd.addr.eq(base_val),
            cmd.rows.eq(fld["imm"][:16]),
        ]
        with m.If(is_op["LDE"]):
            m.d.comb += cmd.addr.eq(base_val + ((A[fld["c"]] * VL) << 1))
        with m.If(is_op["LDW"]):
            m.d.comb += cmd.ad.eq(fld["a"])
        with m.If(is_op["TMATMUL"]):
            m.d.comb += [cmd.addr.eq(A[fld["c"]]), cmd.sf.eq(F[fld["d"][:3]])]
        with m.If(is_op["NORM"] | is_op["QNT"]):
            m.d.comb += cmd.s0.eq(A[fld["d"]])
        with m.If(is_op["ARGMAX"]):
            m.d.comb += [cmd.ad.eq(fld["a"]), cmd.at.eq(fld["b"]), cmd.s0.eq(A[fld["b"]]), cmd.s1.eq(A[fld["d"]])]
        for u in UNITS:
            m.d.comb += [units[u].cmd.payload.eq(cmd), units[u].cmd.valid.eq(can & unit_sel[u])]

        for u in UNITS:
            with m.If(units[u].done):
                m.d.sync += busy[u].eq(0)
                for k in held[u]:
                    m.d.sync += held[u][k].eq(0)
            with m.If(issue & unit_sel[u]):
                m.d.sync += [busy[u].eq(1), held[u]["rv"].eq(rv), held[u]["wv"].eq(wv), held[u]["wa"].eq(wa),
                             held[u]["wf"].eq(wf)]
                if u == "lsu":
                    m.d.sync += lsu_store.eq(is_op["SV"])

        # ---- sequencer-executed instructions ----------------------------------------------------
        m.d.comb += next_pc.eq(pc)
        a_we = Signal()
        a_widx = Signal(range(isa.N_AREGS))
        a_wval = Signal(signed(A_BITS))
        f_we = Signal()
        f_wval = Signal(sf_layout())
        a_b = A[fld["b"]]
        a_c = A[fld["c"]]
        with m.If(issue):
            m.d.comb += next_pc.eq(pc + 1)
            with m.If(is_op["HALT"]):
                m.d.comb += next_pc.eq(pc)
                m.d.sync += halted.eq(1)
            with m.If(is_op["JMP"]):
                m.d.comb += next_pc.eq(fld["imm"])
            with m.If(is_op["DJNZ"]):
                dec = a_b - 1
                m.d.comb += [a_we.eq(1), a_widx.eq(fld["b"]), a_wval.eq(dec)]
                with m.If(dec != 0):
                    m.d.comb += next_pc.eq(fld["imm"])
            with m.If(is_op["BLTZ"] & (a_b < 0)):
                m.d.comb += next_pc.eq(fld["imm"])
            with m.If(is_op["SETVL"]):
                m.d.sync += VL.eq(fld["imm"][:16])
            with m.If(is_op["MOVI"]):
                m.d.comb += [a_we.eq(1), a_widx.eq(fld["a"]), a_wval.eq(imm_s)]
            with m.If(is_op["ADDI"]):
                m.d.comb += [a_we.eq(1), a_widx.eq(fld["a"]), a_wval.eq(a_b + imm_s)]
            with m.If(is_op["ADDS"]):
                m.d.comb += [a_we.eq(1), a_widx.eq(fld["a"]), a_wval.eq(a_b + a_c)]
            with m.If(is_op["SUBS"]):
                m.d.comb += [a_we.eq(1), a_widx.eq(fld["a"]), a_wval.eq(a_b - a_c)]
            with m.If(is_op["MULS"]):
                m.d.comb += [a_we.eq(1), a_widx.eq(fld["a"]), a_wval.eq((a_b * a_c)[:A_BITS])]
            with m.If(is_op["TOKIN"]):
                m.d.comb += [a_we.eq(1), a_widx.eq(fld["a"]), a_wval.eq(self.tok_in.payload)]
            with m.If(is_op["FMUL"]):
                m.d.comb += [f_we.eq(1), f_wval.eq(_sf_mul(m, F[fld["b"][:3]], F[fld["c"][:3]]))]
            with m.If(is_op["TOKOUT"]):
                m.d.sync += [self.tok_out.valid.eq(1), self.tok_out.payload.eq(a_b)]
        with m.If(self.tok_out.valid & self.tok_out.ready):
            m.d.sync += self.tok_out.valid.eq(0)
        m.d.comb += self.tok_in.ready.eq(issue & is_op["TOKIN"])

        with m.If(self.start & halted):
            m.d.sync += [halted.eq(0), fault.eq(0)]
            m.d.comb += next_pc.eq(0)
        m.d.sync += pc.eq(next_pc)

        # register writes: the sequencer's own, then the units' write-backs (ARGMAX's Ai last)
        wbs = [(a_we, a_widx, a_wval), (units["lsu"].awb.en, units["lsu"].awb.idx, units["lsu"].awb.value),
               (units["arg"].awb.en, units["arg"].awb.idx, units["arg"].awb.value),
               (units["arg"].awb2.en, units["arg"].awb2.idx, units["arg"].awb2.value)]
        for i in range(isa.N_AREGS):
            for en, idx, val in wbs:
                with m.If(en & (idx == i)):
                    m.d.sync += A[i].eq(val)
        fwbs = [(f_we, fd_idx, f_wval), (units["lsu"].fwb.en, units["lsu"].fwb.idx, units["lsu"].fwb.value),
                (units["nq"].fwb.en, units["nq"].fwb.idx, units["nq"].fwb.value)]
        for i in range(isa.N_FREGS):
            for en, idx, val in fwbs:
                with m.If(en & (idx == i)):
                    m.d.sync += F[i].eq(val)
        return m


def _sf_mul(m: Module, a, b):
    """golden.ops.sf_mul of two canonical SF values, combinational (one multiplier)."""
    B = N.SF_BITS
    out = Signal(sf_layout(), name="fmul")
    p = Signal(unsigned(2 * B), name="fmul_p")
    m.d.comb += p.eq(a.mantissa * b.mantissa)
    top = p[2 * B - 1]
    # product of two mantissas in [2**(B-1), 2**B): 2B-1 or 2B bits; round half up to B bits
    r = Signal(unsigned(B + 1), name="fmul_r")
    m.d.comb += r.eq(Mux(top, (p + (1 << (B - 1))) >> B, (p + (1 << (B - 2))) >> (B - 1)))
    carry = r[B]
    exp = a.exponent + b.exponent + Mux(top, B, B - 1) + carry
    with m.If((a.mantissa == 0) | (b.mantissa == 0)):
        m.d.comb += [out.mantissa.eq(0), out.exponent.eq(0)]
    with m.Else():
        m.d.comb += [out.mantissa.eq(Mux(carry, r >> 1, r)), out.exponent.eq(exp)]
    return out

