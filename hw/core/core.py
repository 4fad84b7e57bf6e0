"""One accelerator core: instruction ROM, sequencer with a stalling PC, scalar registers,
the vector register file with its router, and the five functional units (docs/core.md).

The paper's core (Zhu et al. 2024, section 5) issues in order and stalls the program counter
while a functional unit or a register it needs is busy. So does this one:

* Fetch: the ROM (`rom_words` words, contents from `rom` at elaboration, rewritable through
  `rom_wr`) is read one word per cycle, ahead of the PC, into a queue of FETCH_DEPTH words; its
  read address comes from registers only. The queue's head is decoded in two registered stages
  (P, then IR), so issue starts from registers. Instructions issue every two cycles at most
  (below); the one after a taken jump or branch issues seven cycles after it (JMP redirects the
  stream in the cycle after it issues, DJNZ and BLTZ resolve then from a registered condition),
  after a branch not taken three.
* Decode is derived from spec.isa (`_decode_tables`: each opcode's operand list, which fields
  are registers, which are read or written, which checks each field needs); a word
  spec.isa.decode would reject (unknown opcode, non-zero unused field, register index out of
  range, bad immediate) stops the core with `fault` set.
* Issue: the decision is registered (an instruction is judged in one cycle and issues in the
  next, so at most one every two cycles). Scalar and control instructions (SCALAR_OPS) execute in
  the sequencer when they issue (an A register they write is written from registers at the second
  edge after issue, an F register at the first, and reserved until then); MULS, FMUL and LDE's
  address wait first for the sequencer's multiplier (hw.core.scalar_mul: one 17x17 product per
  cycle, `scalar_mul.CYCLES`). The others go to their
  unit (UNIT_OF) with their operands read at issue (A and F operands from registers loaded in the
  cycle before, when the instruction was judged). An instruction issues when its unit is idle
  (nothing of it in flight) and none of its registers is reserved by an instruction in flight;
  its command reaches the unit through a register, so the unit starts a cycle after issue.
  Vector registers it reads or writes must be neither read nor written in flight (one read and
  one write port per register), A and F registers it reads or writes must not be pending a
  write. Each unit reserves its registers at issue and releases them with its `done` pulse.
  Memory order: SV waits for TMATMUL's weight reads to finish and TMATMUL waits for a store in
  progress; loads and stores share one unit and stay in order. HALT and BARRIER wait until every
  unit is idle and no store is in flight beyond the core's port (`mem_idle`).
* Units: `lsu` (LDV SV LDG LDGT LDE LDW LDF), `vec` (ADD SUB MUL DIV EXP SIG SILU GMUL ONEM MOVV),
  `nq` (NORM QNT), `mm` (TMATMUL), `arg` (ARGMAX). They run concurrently.

Host side: `tok_in` (TOKIN blocks until a token is offered; `waiting` is high meanwhile; the
core takes a token into a one-token buffer while the TOKIN that uses it is decoded and will issue),
`tok_out` (TOKOUT; one token buffered), `halted`, `fault`, `start` (restarts a halted core at
PC 0 with its registers kept). Memory: `mem` (the load/store unit) and `wmem` (TMATMUL weight
reads, which hw.top broadcasts to all cores).
"""
from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out, connect

from hw.mem.port import MemPortSignature
from spec import isa
from spec.accel import AccelConfig

from .argmax import ArgmaxUnit
from .common import and_or
from .iface import A_BITS, check_core_config, sf_layout, unit_cmd_layout
from .lsu import LoadStoreUnit
from .matmul import MatmulUnit
from .normq import NormQuantUnit
from .ram import DP16KD_MODES, RegisteredRAM
from .regfile import RegisterFile
from .scalar_mul import MulOp, ScalarMultiplier
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

#: Words the fetch queue holds (fetch: a read every cycle needs one word queued and one in flight,
#: plus one of slack so the read address never waits on this cycle's issue).
FETCH_DEPTH = 4

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


def _decode_tables() -> tuple[dict, dict, dict]:
    """What the decoder needs from spec.isa, per opcode: ``roles[(mask, field)]`` (the opcodes
    whose `field` names a register of `mask`: rv wv ra wa rf wf), ``checks[(check, field)]`` (the
    opcodes that require `check` of `field`: vreg and freg (a V or F register index in range), nz
    and le_vlmax (a U16),
    nonneg (a LABEL), zero (a field the opcode does not use)), ``picks[(name, field)]`` (the opcodes
    whose `field` is their vd, vs, vt, fd or base). Each value lists mnemonics."""
    roles: dict[tuple[str, str], list[str]] = {}
    checks: dict[tuple[str, str], list[str]] = {}
    picks: dict[tuple[str, str], list[str]] = {}
    for op in isa.OPS:
        mn = op.mnemonic

        def add(table, key, field, mn=mn):
            table.setdefault((key, field), []).append(mn)

        used = {"opcode"}
        for opd in op.operands:
            f = opd.field
            used.add(f)
            r, w = _role(op, opd)
            if opd.kind in (isa.Kind.V, isa.Kind.A, isa.Kind.F):
                kind = {isa.Kind.V: "v", isa.Kind.A: "a", isa.Kind.F: "f"}[opd.kind]
                for flag, key in ((r, f"r{kind}"), (w, f"w{kind}")):
                    if flag:
                        add(roles, key, f)
            if opd.kind is isa.Kind.V:
                add(checks, "vreg", f)
                add(picks, {"Vd": "vd", "Vs": "vs"}.get(opd.name, "vt"), f)     # Vt, Vg: vt
            elif opd.kind is isa.Kind.F:
                add(checks, "freg", f)
                if w:
                    add(picks, "fd", f)
            elif opd.kind is isa.Kind.MEM:
                used.add("imm")
                add(roles, "ra", f)
                add(picks, "base", f)
            elif opd.kind is isa.Kind.U16:
                add(checks, "nz", f)
                add(checks, "le_vlmax", f)
            elif opd.kind is isa.Kind.LABEL:
                add(checks, "nonneg", f)
            # S32: any value
        for name in isa.FIELDS:
            if name not in used:
                add(checks, "zero", name)
    return roles, checks, picks


def _oh_low(oh, width: int):
    """The one-hot of an index's low log2(width) bits from the one-hot of the index."""
    return Cat(*(oh[i] | oh[i + width] for i in range(width)))


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
    mem_idle : In(1)
        No write of this core is in flight beyond its `mem` port (hw.top: the arbiter holds no
        write; high by default, for a core wired straight to its memory). HALT and BARRIER wait for
        it, so a halted core's stores have left the accelerator's port.
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
            "mem_idle": In(1, init=1),
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

        # ---- fetch ------------------------------------------------------------------------------
        # The ROM is read ahead of issue into a small queue, and its read address comes from
        # registers only (this cycle's issue decision never reaches it):
        #   F   the read address: the sequential stream `s_next`, or a redirect's target;
        #   Q1  the block RAM reads (its internal register);
        #   Q2  its output register (REGMODE OUTREG), written into the queue;
        #   W   the queue (FETCH_DEPTH words in flip-flops, shifting towards its head), read at its head;
        #   P   the head word predecoded into registers (see "decode");
        #   IR  the instruction decoded into registers, so issue starts from registers.
        # A read is started when the queue has room counting the reads in flight (`fill`). A jump,
        # HALT or fault empties the queue at issue and redirects the stream in the next cycle; DJNZ
        # and BLTZ resolve a cycle after issue from a registered condition and redirect then. Either
        # way the target's word is in IR six cycles after the jump or branch issued. HALT and a
        # fault redirect to 0, so a `start` finds the word at 0 decoded.
        # a block RAM with its output registered in the block (hw.core.ram: read latency 2), at least
        # 1024 words so that on ECP5 it fills a DP16KD mode with REGMODE OUTREG (a ROM read straight
        # into the queue's entries was a -6 build's wall of late paths: 5.8 ns clock-to-out, then
        # the entry's choice)
        rom_depth = max(DP16KD_MODES[0][0], 1 << (cfg.rom_words - 1).bit_length())
        m.submodules.rom = rom = RegisteredRAM(isa.WORD_BITS, rom_depth, init=self._rom, name="rom")
        m.d.comb += [rom.w_en.eq(self.rom_wr.en), rom.w_addr.eq(self.rom_wr.addr), rom.w_data.eq(self.rom_wr.data)]
        next_pc = Signal.like(pc)
        pc1 = Signal.like(pc, init=1)         # pc + 1, kept with pc
        s_next = Signal.like(pc)              # the next address of the sequential stream
        fetch = Signal.like(pc)               # the ROM read address this cycle
        go = Signal()                         # the read of this cycle goes into the queue
        q1 = Signal()                         # the read of the cycle before is a word to queue (in flight)
        q_ok = Signal()                       # the ROM's output this cycle is a word to queue
        fill = Signal(range(FETCH_DEPTH + 1))  # words queued or read
        # the queue shifts towards its head, wq0: the head is a register, with no choice after it
        wq = [Signal(isa.WORD_BITS, name=f"wq{i}") for i in range(FETCH_DEPTH)]
        cnt_oh = Signal(FETCH_DEPTH + 1, init=1)  # words queued, one-hot
        nonempty = Signal()                     # some word is queued (a register beside it)
        ir_has = Signal()
        load, pop, push = Signal(), Signal(), Signal()
        w_word = Signal(isa.WORD_BITS)        # the queue's head
        m.d.comb += w_word.eq(wq[0])
        kill = Signal()                       # empty the stream at this edge (a redirect next cycle)
        kill_to = Signal.like(pc)             # ... to this address
        redir = Signal()                      # registered: this cycle reads `redir_to`
        redir_to = Signal.like(pc)
        br_taken = Signal()                   # a branch resolves taken this cycle (from registers)
        br_target = Signal.like(pc)
        m.d.comb += [fetch.eq(Mux(redir, redir_to, Mux(br_taken, br_target, s_next))),
                     go.eq(redir | br_taken | (fill < FETCH_DEPTH)),
                     rom.r_addr.eq(fetch)]
        ir_ok = Signal()                      # the decoded registers hold the instruction at pc (not
        m.d.comb += ir_ok.eq(ir_has)          # halted: while halted they hold the word at 0)
        ir_valid = Signal()
        m.d.comb += ir_valid.eq(ir_ok & ~halted & ~regs.clearing)

        # ---- decode (from spec.isa), in two registered stages ----------------------------------
        # P (loaded from the queue's head): the word's fields, what depends on the opcode alone
        # (the opcode one-hot, its unit, each field's role and checks, which field names Vd, Vs, ...)
        # and what depends on one field alone (its one-hot register index, its checks). IR (loaded
        # from P when `load`): the instruction decoded, every item an AND-OR of a few P bits.
        word = w_word
        d_fld = {name: Signal(width, name=f"d_{name}") for name, (_, width) in isa.FIELDS.items()}
        for name, (lsb, width) in isa.FIELDS.items():
            m.d.comb += d_fld[name].eq(word[lsb:lsb + width])

        def onehot(idx, n):
            return (Const(1, n) << idx)[:n]

        roles, checks, picks = _decode_tables()
        p_has = Signal()
        p_fld = {name: Signal(width, name=f"p_{name}") for name, (_, width) in isa.FIELDS.items()}
        p_op = {op.mnemonic: Signal(name=f"p_op_{op.mnemonic}") for op in isa.OPS}
        p_role = {rf: Signal(name=f"p_role_{rf[0]}_{rf[1]}") for rf in roles}
        p_need = {fc: Signal(name=f"p_need_{fc[0]}_{fc[1]}") for fc in checks}
        p_pick = {nf: Signal(name=f"p_pick_{nf[0]}_{nf[1]}") for nf in picks}
        p_pass = {fc: Signal(name=f"p_pass_{fc[0]}_{fc[1]}") for fc in checks}
        idx_fields = {f for (_, f) in roles} | {f for (_, f) in picks}
        idx_bits = (isa.N_AREGS - 1).bit_length()     # the widest register index (V and F use its low bits)
        p_oh = {f: Signal(isa.N_AREGS, name=f"p_oh_{f}") for f in idx_fields}
        is_code = {op.mnemonic: d_fld["opcode"] == op.code for op in isa.OPS}

        def any_op(mnemonics):
            return Cat(*(is_code[mn] for mn in mnemonics)).any()

        def passes(chk, f):
            v = d_fld[f]
            return {"vreg": v < isa.N_VREGS, "freg": v < isa.N_FREGS, "nz": v != 0, "le_vlmax": v <= isa.VL_MAX,
                    "nonneg": ~v[-1], "zero": v == 0}[chk]

        p_load = Signal()                     # P takes the queue's head (or empties)
        with m.If(p_load):
            m.d.sync += [p_fld[k].eq(d_fld[k]) for k in p_fld]
            m.d.sync += [p_op[mn].eq(is_code[mn]) for mn in p_op]
            m.d.sync += [p_role[rf].eq(any_op(ops)) for rf, ops in roles.items()]
            m.d.sync += [p_need[fc].eq(any_op(ops)) for fc, ops in checks.items()]
            m.d.sync += [p_pick[nf].eq(any_op(ops)) for nf, ops in picks.items()]
            m.d.sync += [p_pass[fc].eq(passes(*fc)) for fc in checks]
            m.d.sync += [p_oh[f].eq(onehot(d_fld[f][:idx_bits], isa.N_AREGS)) for f in p_oh]

        shapes = {
            "known": 1, "fields_ok": 1, "rv": isa.N_VREGS, "wv": isa.N_VREGS, "ra": isa.N_AREGS,
            "wa": isa.N_AREGS, "rf": isa.N_FREGS, "wf": isa.N_FREGS, "vd": range(isa.N_VREGS),
            "vs": range(isa.N_VREGS), "vt": range(isa.N_VREGS), "fd": range(isa.N_FREGS), "base": range(isa.N_AREGS),
        }
        shapes |= {f"u_{u}": 1 for u in UNITS}
        shapes |= {f"op_{op.mnemonic}": 1 for op in isa.OPS}
        dec = {k: Signal(v, name=f"dec_{k}") for k, v in shapes.items()}
        m.d.comb += dec["known"].eq(Cat(*p_op.values()).any())
        m.d.comb += [dec[f"op_{mn}"].eq(p_op[mn]) for mn in p_op]
        for u in UNITS:
            m.d.comb += dec[f"u_{u}"].eq(Cat(*(p_op[mn] for mn in p_op if UNIT_OF.get(mn) == u)).any())
        for key in ("rv", "wv", "ra", "wa", "rf", "wf"):
            width = len(dec[key])
            v = Const(0, width)
            for (k, f), sig in p_role.items():
                if k == key:
                    # a V or F register is a field's low bits (the vreg / freg check refuses the rest)
                    v = v | Mux(sig, p_oh[f][:width] if width == isa.N_AREGS else _oh_low(p_oh[f], width), 0)
            m.d.comb += dec[key].eq(v)
        ok = Const(1)
        for fc in checks:
            ok = ok & (~p_need[fc] | p_pass[fc])
        m.d.comb += dec["fields_ok"].eq(ok)
        for name in ("vd", "vs", "vt", "fd", "base"):
            width = len(dec[name])
            v = Const(0, width)
            for (n, f), sig in p_pick.items():
                if n == name:
                    v = v | Mux(sig, p_fld[f][:width], 0)
            m.d.comb += dec[name].eq(v)

        # the registered copies the issue logic works on (IR), loaded from P when `load`
        fld = {name: Signal(width, name=f"f_{name}") for name, (_, width) in isa.FIELDS.items()}
        reg = {k: Signal.like(v, name=f"ir_{k}") for k, v in dec.items()}
        # the A operand fields one-hot (the base: field b's where the opcode picks it, else A0), so
        # the operand reads below are an AND-OR whose selects each drive one gate per bit, not a
        # binary 16:1 choice whose low select bit reaches every bit's whole first level
        opa_fields = ("b", "c", "d")
        base_picks = [(sig, p_oh[f]) for (n, f), sig in p_pick.items() if n == "base"]
        base_oh = Signal(isa.N_AREGS)
        m.d.comb += base_oh.eq(and_or([sig for sig, _ in base_picks], [oh for _, oh in base_picks])
                               | Mux(Cat(sig for sig, _ in base_picks).any(), 0, 1))
        ir_oh = {f: Signal(isa.N_AREGS, name=f"ir_oh_{f}") for f in (*opa_fields, "base")}
        with m.If(load):
            m.d.sync += [fld[k].eq(p_fld[k]) for k in fld]
            m.d.sync += [reg[k].eq(dec[k]) for k in dec]
            m.d.sync += [ir_oh[f].eq(p_oh[f]) for f in opa_fields]
            m.d.sync += ir_oh["base"].eq(base_oh)
        known, fields_ok = reg["known"], reg["fields_ok"]
        rv, wv, ra, wa, rf, wf = (reg[k] for k in ("rv", "wv", "ra", "wa", "rf", "wf"))
        unit_sel = {u: reg[f"u_{u}"] for u in UNITS}
        is_op = {op.mnemonic: reg[f"op_{op.mnemonic}"] for op in isa.OPS}
        vd, vs, vt, fd_idx = reg["vd"], reg["vs"], reg["vt"], reg["fd"]
        imm_s = Signal(signed(isa.IMM_BITS))
        m.d.comb += imm_s.eq(fld["imm"])
        base_val = Signal(signed(A_BITS))    # A[base] + offset of a MEM operand
        # The A operands, read into registers every cycle: an instruction issues in the cycle after
        # the one that judged it (`ok`), and no write to a register it reads can land between the
        # two (a write lands at most a cycle after its instruction issued or with its unit's `done`,
        # and the register is reserved until then), so these hold its operands when it issues.
        opa = {f: Signal(signed(A_BITS), name=f"opa_{f}", reset_less=True) for f in ir_oh}
        for f, oh in ir_oh.items():
            m.d.sync += opa[f].eq(and_or([oh[i] for i in range(isa.N_AREGS)], A))
        m.d.comb += base_val.eq(opa["base"] + imm_s)
        # the F operands likewise (FMUL's b and c, TMATMUL's scale d), read into registers every cycle
        opf = {f: Signal(sf_layout(), name=f"opf_{f}") for f in ("b", "c", "d")}
        m.d.sync += [opf[f].eq(F[fld[f][:3]]) for f in opf]

        # ---- scoreboard ---------------------------------------------------------------------------
        # Per unit, the registers its instruction in flight holds (set at issue, cleared by `done`);
        # their union over the units is kept in registers of its own (`pend_*`, computed from the
        # next state), so the hazard check starts from registers one level from `issue`.
        held = {u: {k: Signal(n, name=f"held_{k}_{u}") for k, n in
                    (("v", isa.N_VREGS), ("wa", isa.N_AREGS), ("wf", isa.N_FREGS))}
                for u in UNITS}
        held_next = {u: {k: Signal.like(v, name=f"held_next_{k}_{u}") for k, v in held[u].items()} for u in UNITS}
        pend = {k: Signal.like(held[UNITS[0]][k], name=f"pend_{k}") for k in held[UNITS[0]]}
        busy = {u: Signal(name=f"busy_{u}") for u in UNITS}
        lsu_store = Signal()
        all_idle = Signal()
        m.d.comb += all_idle.eq(~Cat(*busy.values()).any() & self.mem_idle)
        m.d.comb += self.busy.eq(~all_idle)
        s1_we = Signal()        # the sequencer writes an A register, in the write's second cycle
        s1_widx = Signal(range(isa.N_AREGS))
        hazard = Signal()
        m.d.comb += hazard.eq(((rv | wv) & pend["v"]).any() | ((ra | wa) & pend["wa"]).any() |
                              ((rf | wf) & pend["wf"]).any())

        # the waits of particular instructions, as one AND of independent terms (not a chain of
        # conditions: this is in the issue decision's path)
        special_ok = Signal()
        tok_full = Signal()     # a token is in the core's one-token buffer (tok_r, below)
        m.d.comb += special_ok.eq(~(is_op["TOKIN"] & ~tok_full) & ~(is_op["TOKOUT"] & self.tok_out.valid) &
                                  ~(is_op["HALT"] & ~all_idle) & ~(is_op["BARRIER"] & ~(all_idle & self.barrier_go)) &
                                  ~(is_op["SV"] & busy["mm"]) & ~(is_op["TMATMUL"] & busy["lsu"] & lsu_store))

        ready_to_go = Signal()  # everything but a multiply's result and the unit's readiness
        br_wait = Signal()      # the cycle after a conditional branch issued: it resolves (below)
        ready_unless_halted = Signal()
        m.d.comb += [
            ready_unless_halted.eq(ir_ok & ~regs.clearing & known & fields_ok & ~hazard & special_ok & ~br_wait),
            ready_to_go.eq(ready_unless_halted & ~halted),
        ]

        # ---- MULS, FMUL and LDE's address: one 17x17 multiplier, a partial product per cycle -----------
        long_op = Signal()
        m.d.comb += long_op.eq(is_op["MULS"] | is_op["FMUL"] | is_op["LDE"])
        m.submodules.smul = mul = ScalarMultiplier()
        # the start is registered: the operands (`opa`: the A registers of the cycle before) are
        # still the instruction's in the next cycle
        m.d.sync += mul.start.eq(ready_to_go & long_op & ~mul.busy & ~mul.ready & ~mul.start)
        m.d.comb += [mul.op.eq(Mux(is_op["FMUL"], MulOp.FMUL, Mux(is_op["LDE"], MulOp.LDE, MulOp.MULS))),
                     mul.x.eq(opa["b"]), mul.y.eq(opa["c"]), mul.base.eq(base_val),
                     mul.fb.eq(opf["b"]), mul.fc.eq(opf["c"])]
        with m.If(is_op["LDE"]):
            m.d.comb += [mul.x.eq(opa["c"]), mul.y.eq(VL)]
        with m.If(is_op["FMUL"]):
            m.d.comb += [mul.x.eq(opf["b"].mantissa), mul.y.eq(opf["c"].mantissa)]

        can = Signal()          # everything but the unit's readiness and `halted`
        m.d.comb += can.eq(ready_unless_halted & (~long_op | mul.ready))
        # a unit instruction issues when its unit has nothing in flight (`busy`, set at issue and
        # cleared by the unit's `done`): its command goes to the unit through a register (below)
        unit_busy = Signal()
        m.d.comb += unit_busy.eq(Cat(*(unit_sel[u] & busy[u] for u in UNITS)).any())
        # The issue decision is registered: `ok` judges the instruction in IR in one cycle, and it
        # issues in the next, when nothing can have changed the verdict: only an issue adds a busy
        # unit or a reserved register (done pulses, taken tokens and a multiplier's result only free
        # things), so `ok` is not carried across an issue, a redirect or a ROM write. The one thing
        # outside the core that may withdraw is a token offered on tok_in, so the core takes it into
        # a one-token buffer while the TOKIN that will use it is in IR (`tok_in.ready` from
        # registers: the decoded IR, no branch pending, the buffer empty; not the issue decision,
        # whose path into the board's token slice was a -6 build's late path), TOKIN waits for the
        # buffer and writes the token to its A register when it issues. While halted
        # the word at 0 is judged, so that it issues in the cycle after a `start`. An
        # instruction thus takes at least two cycles; a 370m token step issues 2,088 of them in
        # over a million cycles, and every register `issue` enables is a short path away from it.
        ok = Signal()
        m.d.comb += ok.eq(can & ~unit_busy)
        issue = Signal()        # registered: `go_next` of the cycle before
        go_next = Signal()
        tok_r = Signal.like(self.tok_in.payload)
        m.d.comb += self.issued.eq(issue)
        m.d.comb += [
            self.waiting.eq(ir_valid & is_op["TOKIN"] & ~tok_full & ~self.tok_in.valid),
            self.at_barrier.eq(ir_valid & is_op["BARRIER"] & all_idle),
        ]
        bad_word = Signal()     # the word at pc cannot execute (not while a branch before it resolves)
        m.d.comb += bad_word.eq(ir_valid & ~br_wait & ~(known & fields_ok))
        with m.If(bad_word):
            m.d.sync += [fault.eq(1), halted.eq(1)]

        # ---- unit commands --------------------------------------------------------------------------
        cmd = Signal(unit_cmd_layout(cfg))
        # The common fields, assigned under a condition: yosys writes a field assigned alone from a
        # register as a bare `always @*` with nothing to start it, and Icarus never evaluates one
        # whose register keeps its initial value (ir_fd stays 0 until an instruction writes an F
        # register other than F0), so the field would stay X there; a process with a condition
        # gets yosys's time-0 trigger.
        with m.If(ir_ok):
            m.d.comb += [
                cmd.op.eq(fld["opcode"]), cmd.vl.eq(VL),
                cmd.vd.eq(vd), cmd.vs.eq(vs), cmd.vt.eq(vt),
                cmd.fd.eq(fd_idx),
                cmd.addr.eq(base_val),
                cmd.rows.eq(fld["imm"][:16]),
            ]
        with m.If(is_op["LDE"]):
            m.d.comb += cmd.addr.eq(mul.result)
        with m.If(is_op["LDW"]):
            m.d.comb += cmd.ad.eq(fld["a"])
        with m.If(is_op["TMATMUL"]):
            m.d.comb += [cmd.addr.eq(opa["c"]), cmd.sf.eq(opf["d"])]
        with m.If(is_op["NORM"] | is_op["QNT"]):
            m.d.comb += cmd.s0.eq(opa["d"])
        with m.If(is_op["ARGMAX"]):
            m.d.comb += [cmd.ad.eq(fld["a"]), cmd.at.eq(fld["b"]), cmd.s0.eq(opa["b"]), cmd.s1.eq(opa["d"])]
        # The command register of each unit: loaded at issue, offered until the unit takes it (an
        # idle unit takes it in the next cycle). Fields a unit does not use are trimmed by synthesis.
        for u in UNITS:
            c_valid = Signal(name=f"cmd_valid_{u}")
            c_payload = Signal(unit_cmd_layout(cfg), name=f"cmd_{u}")
            # the payload follows the command while none waits, so `issue` enables one register
            with m.If(~c_valid):
                m.d.sync += c_payload.eq(cmd)
            with m.If(units[u].cmd.ready):
                m.d.sync += c_valid.eq(0)
            with m.If(issue & unit_sel[u]):
                m.d.sync += c_valid.eq(1)
            m.d.comb += [units[u].cmd.payload.eq(c_payload), units[u].cmd.valid.eq(c_valid)]

        # Each unit's `done` as the scoreboard sees it: registered here, a cycle after the unit's (the
        # unit is free a cycle later; on a board the units sit far from the sequencer). The A
        # write-backs of LSU and ARGMAX, which come with their `done`, are registered likewise
        # (below), so a register is released in the cycle its new value lands.
        done = {}
        for u in UNITS:
            done[u] = Signal(name=f"done_{u}")
            m.d.sync += done[u].eq(units[u].done)
        for u in UNITS:
            m.d.comb += [held_next[u][k].eq(held[u][k]) for k in held[u]]
            with m.If(done[u]):
                m.d.sync += busy[u].eq(0)
                m.d.comb += [held_next[u][k].eq(0) for k in held[u]]
            with m.If(issue & unit_sel[u]):
                m.d.sync += busy[u].eq(1)
                m.d.comb += [held_next[u]["v"].eq(rv | wv), held_next[u]["wa"].eq(wa), held_next[u]["wf"].eq(wf)]
                if u == "lsu":
                    m.d.sync += lsu_store.eq(is_op["SV"])
            m.d.sync += [held[u][k].eq(held_next[u][k]) for k in held[u]]
        # the union of the next state, with `issue` near its end: a unit's registers are clear
        # while it is idle, so an issue adds the instruction's registers to the others' (A and F
        # registers also for the sequencer's own writes: an F write lands at the edge after the
        # issue's, an A write an edge later, kept pending meanwhile from its first stage's registers)
        is_unit = Signal()
        m.d.comb += is_unit.eq(Cat(*unit_sel.values()).any())
        new = {"v": Mux(is_unit, rv | wv, 0), "wa": wa, "wf": wf}
        for k in pend:
            union = 0
            for u in UNITS:
                union = union | Mux(done[u], 0, held[u][k])
            if k == "wa":       # the sequencer's A write in its second cycle
                union = union | Mux(s1_we, (Const(1, isa.N_AREGS) << s1_widx)[:isa.N_AREGS], 0)
            m.d.sync += pend[k].eq(union | Mux(issue, new[k], 0))

        # ---- sequencer-executed instructions ----------------------------------------------------
        m.d.comb += next_pc.eq(pc)
        a_we = Signal()
        a_widx = Signal(range(isa.N_AREGS))
        f_we = Signal()
        f_wval = Signal(sf_layout())
        a_b = opa["b"]
        a_c = opa["c"]

        def ext(v, mn):         # v sign-extended to A_BITS, as unsigned bits
            w = Signal(signed(A_BITS), name=f"a_term_{mn}")
            m.d.comb += w.eq(v)
            return w.as_unsigned()

        # the instructions whose result the sequencer writes to an A register itself, the one table:
        # those through its one adder (b + y + carry), by their y, and those whose value is chosen
        # as it is (the ops are one-hot: an AND-OR choice, not a chain of overriding muxes)
        a_sum_y = {"ADDI": ext(imm_s, "ADDI"), "ADDS": ext(a_c, "ADDS"), "SUBS": ~ext(a_c, "SUBS"),
                   "DJNZ": Const(-1, signed(A_BITS)).as_unsigned()}
        a_value = {"MOVI": ext(imm_s, "MOVI"), "MULS": ext(mul.result, "MULS"), "TOKIN": ext(tok_r, "TOKIN")}
        # in two stages: at issue the adder's operands and the chosen value are registered (s1_*),
        # in the next cycle the sum and the AND-OR choice (a_wval_r); the write lands at the edge
        # after that (the register is pending until then: `pend` below)
        s1_b = Signal(A_BITS)
        s1_y = Signal(A_BITS)
        s1_cin = Signal()
        s1_sum_op = Signal()
        s1_val = Signal(A_BITS)
        m.d.sync += [s1_we.eq(a_we), s1_widx.eq(a_widx)]
        m.d.sync += [s1_b.eq(a_b), s1_y.eq(and_or([is_op[mn] for mn in a_sum_y], list(a_sum_y.values()))),
                     s1_cin.eq(is_op["SUBS"]), s1_sum_op.eq(Cat(is_op[mn] for mn in a_sum_y).any()),
                     s1_val.eq(and_or([is_op[mn] for mn in a_value], list(a_value.values())))]
        a_result = Signal(signed(A_BITS))
        m.d.comb += a_result.eq(((s1_b + s1_y + s1_cin)[:A_BITS] & s1_sum_op.replicate(A_BITS)) | s1_val)
        # JMP is taken at issue; DJNZ and BLTZ compare an A register, so they resolve in the next
        # cycle from a registered condition (br_wait: nothing issues), as if not taken meanwhile
        br_cond = Signal()
        m.d.comb += br_taken.eq(br_wait & br_cond)
        m.d.comb += mul.ack.eq(issue & long_op)
        m.d.sync += br_wait.eq(0)
        with m.If(br_taken):
            m.d.comb += next_pc.eq(br_target)
        with m.If(issue):
            m.d.comb += next_pc.eq(pc1)
            with m.If(is_op["HALT"]):
                m.d.comb += [next_pc.eq(pc), kill.eq(1), kill_to.eq(0)]
                m.d.sync += halted.eq(1)
            with m.If(is_op["JMP"]):
                m.d.comb += [next_pc.eq(fld["imm"]), kill.eq(1), kill_to.eq(fld["imm"])]
            with m.If(is_op["DJNZ"] | is_op["BLTZ"]):
                m.d.sync += [br_wait.eq(1), br_target.eq(fld["imm"]),
                             br_cond.eq(Mux(is_op["DJNZ"], a_b != 1, a_b < 0))]
            with m.If(is_op["SETVL"]):
                m.d.sync += VL.eq(fld["imm"][:16])
            # the sequencer's A results (a_sum_y and a_value above)
            m.d.comb += [a_we.eq(Cat(is_op[mn] for mn in (*a_sum_y, *a_value)).any()),
                         a_widx.eq(Mux(is_op["DJNZ"], fld["b"], fld["a"]))]
            with m.If(is_op["FMUL"]):
                m.d.comb += f_we.eq(1)
            with m.If(is_op["TOKOUT"]):
                m.d.sync += [self.tok_out.valid.eq(1), self.tok_out.payload.eq(a_b)]
        with m.If(self.tok_out.valid & self.tok_out.ready):
            m.d.sync += self.tok_out.valid.eq(0)
        # the TOKIN in IR will execute (valid, no branch before it unresolved): take its token
        m.d.comb += self.tok_in.ready.eq(ir_valid & is_op["TOKIN"] & ~br_wait & ~tok_full)
        with m.If(self.tok_in.valid & self.tok_in.ready):
            m.d.sync += [tok_r.eq(self.tok_in.payload), tok_full.eq(1)]
        with m.If(issue & is_op["TOKIN"]):
            m.d.sync += tok_full.eq(0)

        # the stream (see "fetch" above)
        with m.If(self.start & halted):
            m.d.sync += [halted.eq(0), fault.eq(0)]
            m.d.comb += next_pc.eq(0)
        with m.If(bad_word):
            m.d.comb += [kill.eq(1), kill_to.eq(0)]
        with m.If(self.rom_wr.en):
            # a ROM write: nothing read now is trusted; the stream restarts at the PC (0 when halted)
            m.d.comb += [kill.eq(1), kill_to.eq(Mux(halted, 0, pc))]
        m.d.comb += [load.eq(issue | ~ir_has), p_load.eq(load | ~p_has), pop.eq(p_load & nonempty),
                     push.eq(q_ok & ~br_taken)]
        with m.If(go):
            m.d.sync += s_next.eq(fetch + 1)
        m.d.sync += [redir.eq(kill), redir_to.eq(kill_to)]
        m.d.comb += go_next.eq(ok & ~issue & ~kill & ~br_taken & ~(halted & ~self.start))
        m.d.sync += issue.eq(go_next)
        # a push lands at count - pop: entry i takes it when count is i + 1 and one pops, or i and
        # none does; a word written as the queue empties (a redirect) is not counted, so the write
        # needs no `br_taken`. Each entry's enable and choice are one LUT from registers: `issue`
        # picks between two per-entry bits computed a cycle ahead from the next state (pop is
        # `nonempty` with an issue, `nonempty & (P or IR empty)` without), so the 64-bit entries'
        # enables do not wait for `pop` (they were a -6 build's late paths: two LUT levels, then a
        # fan-out of 64).
        wr_a = Signal(FETCH_DEPTH)      # entry i takes the ROM's word, with an issue this cycle ...
        wr_b = Signal(FETCH_DEPTH)      # ... and without
        ce_a = Signal(FETCH_DEPTH - 1)  # entry i loads (the ROM's word, or the next entry's), with an issue
        ce_b = Signal(FETCH_DEPTH - 1)  # ... and without
        for i in range(FETCH_DEPTH):
            wr = Mux(issue, wr_a[i], wr_b[i])
            if i + 1 < FETCH_DEPTH:
                with m.If(Mux(issue, ce_a[i], ce_b[i])):
                    m.d.sync += wq[i].eq(Mux(wr, rom.r_data, wq[i + 1]))
            else:                               # the last entry only takes the ROM's word
                with m.If(wr):
                    m.d.sync += wq[i].eq(rom.r_data)
        # the count kept one-hot: a shift by push and pop (no adder and compares after them)
        oh_next = Signal.like(cnt_oh)
        m.d.comb += oh_next.eq(Mux(push & ~pop, cnt_oh << 1, Mux(pop & ~push, cnt_oh >> 1, cnt_oh)))
        with m.If(kill | br_taken):
            m.d.comb += oh_next.eq(1)
        m.d.sync += [cnt_oh.eq(oh_next), nonempty.eq(~oh_next[0])]
        with m.If(kill):
            m.d.sync += [q1.eq(0), q_ok.eq(0), fill.eq(0), p_has.eq(0), ir_has.eq(0)]
        with m.Elif(br_taken):
            # the target's read is this cycle's; the word in flight and the one arriving are dropped
            m.d.sync += [q1.eq(1), q_ok.eq(0), fill.eq(1), p_has.eq(0), ir_has.eq(0)]
        with m.Else():
            m.d.sync += [q1.eq(go), q_ok.eq(q1), fill.eq(fill + go - pop)]
            with m.If(p_load):
                m.d.sync += p_has.eq(nonempty)
            with m.If(load):
                m.d.sync += ir_has.eq(p_has)
        # the entries' next enables: from the state the queue has next cycle where no redirect
        # empties it (a redirect clears them: q_ok is 0 then and the queue empty)
        oh_nk = Signal.like(cnt_oh)
        m.d.comb += oh_nk.eq(Mux(q_ok & ~pop, cnt_oh << 1, Mux(pop & ~q_ok, cnt_oh >> 1, cnt_oh)))
        full_nk = Signal()                    # P and IR both hold a word next cycle: no pop without an issue
        m.d.comb += full_nk.eq(Mux(p_load, nonempty, p_has) & Mux(load, p_has, ir_has))
        for i in range(FETCH_DEPTH):
            at_a = oh_nk[i + 1] | (oh_nk[0] if i == 0 else 0)    # the write slot when one pops
            at_b = Mux(full_nk, oh_nk[i], at_a)
            m.d.sync += [wr_a[i].eq(q1 & at_a), wr_b[i].eq(q1 & at_b)]
            if i + 1 < FETCH_DEPTH:
                m.d.sync += [ce_a[i].eq((q1 & at_a) | ~oh_nk[0]), ce_b[i].eq((q1 & at_b) | (~oh_nk[0] & ~full_nk))]
        # a redirect empties the queue: the registers' synchronous reset (no LUT after `kill`)
        with m.If(kill | br_taken):
            m.d.sync += [wr_a.eq(0), wr_b.eq(0), ce_a.eq(0), ce_b.eq(0)]
        m.d.sync += pc.eq(next_pc)
        with m.If(next_pc == pc1):
            m.d.sync += pc1.eq(pc1 + 1)
        with m.Elif(next_pc != pc):
            m.d.sync += pc1.eq(next_pc + 1)

        # register writes: the sequencer's own (A: at the second edge after issue, F: at the first,
        # each from registers; the register is pending meanwhile, `pend`), then the units'
        # write-backs (ARGMAX's Ai last)
        a_woh_r = Signal(isa.N_AREGS)      # the register written, one-hot (0: none)
        a_wval_r = Signal.like(a_result)
        m.d.sync += [a_woh_r.eq(Mux(s1_we, (Const(1, isa.N_AREGS) << s1_widx)[:isa.N_AREGS], 0)),
                     a_wval_r.eq(a_result)]
        f_we_r = Signal()
        f_widx_r = Signal.like(fd_idx)
        f_wval_r = Signal.like(f_wval)
        m.d.sync += [f_we_r.eq(f_we), f_widx_r.eq(fd_idx), f_wval_r.eq(mul.f_result)]
        # the units' A write-backs registered first, the register one-hot: each A register's enable
        # and choice are then a few registered bits (the units' enables and index compares straight
        # into every A register's enable were a -6 build's late paths)
        wbs = []
        for k, wb in enumerate((units["lsu"].awb, units["arg"].awb, units["arg"].awb2)):
            oh = Signal(isa.N_AREGS, name=f"awb{k}_oh")
            val = Signal.like(wb.value, name=f"awb{k}_value", reset_less=True)
            m.d.sync += [oh.eq(Mux(wb.en, onehot(wb.idx, isa.N_AREGS), 0)), val.eq(wb.value)]
            wbs.append((oh, val))
        for i in range(isa.N_AREGS):
            with m.If(a_woh_r[i]):
                m.d.sync += A[i].eq(a_wval_r)
            for oh, val in wbs:
                with m.If(oh[i]):
                    m.d.sync += A[i].eq(val)
        fwbs = [(f_we_r, f_widx_r, f_wval_r), (units["lsu"].fwb.en, units["lsu"].fwb.idx, units["lsu"].fwb.value),
                (units["nq"].fwb.en, units["nq"].fwb.idx, units["nq"].fwb.value)]
        for i in range(isa.N_FREGS):
            for en, idx, val in fwbs:
                with m.If(en & (idx == i)):
                    m.d.sync += F[i].eq(val)
        return m

