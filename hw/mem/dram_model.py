"""The DFI-side DDR4 DRAM model: one rank of one x64 channel behind DFI 1:4, with a JEDEC checker.

Sim-only (it models a DRAM, it is not meant for an FPGA) but plain synthesizable Amaranth: the same
component runs in Amaranth's simulator, and its Verilog (`amaranth.back.verilog`) under Verilator
with cocotb or a C++ harness. There are no Python callbacks inside; the data lives outside, in a
sparse backing store that each harness serves through the `store` port (sim/tb/dram.py has the Python
one).

Interface (see hw/mem/dfi.py for DFI and the store port; the pins decode by spec.dram.COMMANDS):

    dfi          In(DfiSignature(ch))   the model is the DFI target
    store        Out(StorePortSignature(ch))
    violation    Out(1)                 some rule broke in this cycle
    rules        Out(len(RULES))        bit i: spec.dram.RULES[i] broke in this cycle
    violations   Out(32)                running count: the sum over cycles of popcount(rules), saturating
    clock        Out(48)                DRAM clock of phase 0 of this cycle (4 x cycles since reset)
    trace        Out(ArrayLayout(TraceLayout(ch), 4)), trace_any: the decoded command of every phase
    ref_debt, max_ref_debt  Out(signed(8))   refreshes owed now / the most ever owed
    init_done    Out(1)                 MR0..MR6 and ZQCL seen since RESET_n went high
    reads, writes, acts, refs  Out(32)  command counters (RDA/WRA count as RD/WR)

Data path. A WR (or WRA) issued in cycle c expects dfi `wrdata_en` exactly at c + wr_latency; in
that cycle the model issues a store write with the DFI data (store mask = ~DFI mask). A RD issued
in cycle c requests a store read in cycle c itself (combinationally from the DFI pins), takes the
harness's answer in cycle c + 1 and shifts it through a fixed pipeline to `rddata_valid/rddata` at
exactly c + rd_latency. Reading at the RD cycle is DRAM-exact: every legally earlier write has
delivered its data by then (WR to RD is at least CWL + 4 + tWTR_S clocks, more than 4 x
wr_latency + 3), and a write issued after the RD, which may deliver its data before the RD's
burst leaves the pipeline, is not seen. A write arriving in the same cycle as a read request is
only possible when tWTR is broken (and flagged); the write wins the store port and that read
returns whatever the harness drives. Two CAS commands in one cycle always break tCCD; the data
path then serves only the last of them. RDA/WRA (flagged bad_command) act as RD/WR without the
auto-precharge. `rddata` is 0 in cycles without `rddata_valid`.

The checker. A command's time is 4 * cycle + phase; the four phases of a cycle are processed in
order (phase p sees the effects of phases 0..p-1). Rank-wide state is chained phase by phase;
per-bank and per-bank-group state lives in registers indexed by the command's bank, with the
earlier phases of the cycle forwarded (so there is one set of comparators per phase for the
addressed bank, not one per bank). Timestamps are 48 bits; internal time starts at `OFFSET` and
every timestamp at 0 ("never"), so no rule fires on a first command. A violating command still
takes effect, so one mistake is reported once. The rules (one bit each, spec.dram.RULES):

    bank        tRCD, tRP (also: last PRE/PREA of any bank to REF), tRAS, tRC, tRTP,
                tWR (from the write burst end, WR + CWL + 4)
    bank group  tCCD_L, tRRD_L, tWTR_L (from the write burst end)
    rank        tCCD_S, tRRD_S, tWTR_S (the pair in different bank groups), tFAW (last four ACTs),
                tRFC (REF to any command), tMRD, tMOD, tXPR (CKE high to any command),
                tZQinit (ZQCL to any command), tDLLK (MR0 with A8 to a RD/WR)
    data bus    tRTW (WR >= RD + CL + 4 + 2 - CWL, any banks), wrdata (wrdata_en not exactly at
                WR + wr_latency)
    refresh     refresh_debt: after init, one REF falls due every tREFI clocks (counted per cycle);
                each REF pays one, down to -REFRESH_CREDIT (pulled in); flagged on the cycle the
                debt rises above REFRESH_CREDIT
    state       act_open, cas_closed, ref_open, mrs_open; init_order (a command with RESET_n or
                CKE low, RESET_n released < t_reset after reset or its last fall, CKE raised with
                RESET_n low or < t_cke after RESET_n rose, ACT/RD/WR/PRE/PREA/REF before MR0..MR6
                and ZQCL); mode_register (MR0 CL/WR, MR2 CWL differ from spec.dram.mode_registers);
                bad_command (the reserved encoding, RDA/WRA, a RD/WR column with A2:A0 != 0,
                MRS to MR7, an ACT row beyond the device's rows)

A command is anything but DES/NOP. A PRE to a bank with no open row is a NOP for the bank (JEDEC)
and is not timed against it; it still counts as a command for the rank-wide rules. PREA checks
tRAS/tRTP/tWR against the rank's latest ACT/RD/WR burst (exact for legal traffic; it may report a
bank's earlier violation a second time). RESET_n low clears the banks and the init progress.

Simulation cost. In Amaranth's simulator a cycle without commands costs little (phase times are
gated to 0, so the checker's fragments do not wake); a busy cycle a few ms. Verilator (2400R x8,
this 2-core machine, loaded): about 0.15-0.3 M cycles/s (0.6-1.2 M DRAM clocks/s) on its own. A
Verilator top-level port named `trace` collides with the generated class's `trace()` method, so
a C++ harness should instantiate the model below its own top (or rename that port there).
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from hw.mem.dfi import DfiSignature, StorePortSignature
from spec.dram import (
    A10,
    ACT_ROW_ADDRESS_BITS,
    ACT_ROW_PINS,
    ADDRESS_BITS,
    COLUMN_BITS,
    COMMANDS,
    MR_BA_BITS,
    RULES,
    Channel,
    Cmd,
    mode_registers,
    rule_code,
)

__all__ = ["OFFSET", "DramModel", "TraceLayout"]

#: internal time of clock 0: every timestamp starts at 0 (never), far enough in the past
OFFSET = 1 << 21
TIME_BITS = 48


def TraceLayout(ch: Channel) -> data.StructLayout:
    """One phase's decoded command: valid (not DES/NOP), cmd (spec.dram.Cmd), bg, ba, row, col.
    RD/WR: row is the bank's open row (0 if closed); MRS: bg/ba as encoded, the value in row."""
    fb = ch.field_bits
    return data.StructLayout({"valid": 1, "cmd": max(Cmd).bit_length(), "bg": max(fb["bg"], 1),
                              "ba": max(fb["ba"], 1), "row": ADDRESS_BITS, "col": COLUMN_BITS})


class DramModel(wiring.Component):
    """One DDR4 rank behind DFI 1:4 with a JEDEC timing/state checker (module docstring)."""

    def __init__(self, ch: Channel):
        try:
            self._check(ch)
        except ValueError:
            self._MustUse__silence = True        # no "created but never used" warning for a rejected model
            raise
        self.ch = ch
        self.t = ch.timing
        self.mr = mode_registers(self.t)
        super().__init__({
            "dfi": In(DfiSignature(ch)),
            "store": Out(StorePortSignature(ch)),
            "violation": Out(1),
            "rules": Out(len(RULES)),
            "violations": Out(32),
            "clock": Out(TIME_BITS),
            "trace": Out(data.ArrayLayout(TraceLayout(ch), ch.nphases)),
            "trace_any": Out(1),
            "ref_debt": Out(signed(8)),
            "max_ref_debt": Out(signed(8)),
            "init_done": Out(1),
            "reads": Out(32), "writes": Out(32), "acts": Out(32), "refs": Out(32),
        })

    @staticmethod
    def _check(ch: Channel) -> None:
        if not isinstance(ch, Channel):
            raise ValueError(f"DramModel needs a spec.dram.Channel, got {ch!r}")
        mode_registers(ch.timing)                 # raises ValueError for a timing without MR codes
        if ch.wr_latency < 1:
            raise ValueError(f"{ch.speed}: wr_latency {ch.wr_latency} < 1 cycle is not supported")
        if ch.rd_latency < 2:
            raise ValueError(f"{ch.speed}: rd_latency {ch.rd_latency} < 2 cycles is not supported")
        if ch.geo.banks_per_group != 1 << ch.field_bits["ba"] or ch.geo.bank_groups != 1 << ch.field_bits["bg"]:
            raise ValueError(f"{ch.geometry}: bank groups and banks per group must be powers of two")
        if ch.nphases != 4:
            raise ValueError(f"DFI ratio 1:{ch.nphases}: the model is built for 1:4")

    def elaborate(self, platform):
        # Fragments (Amaranth submodules), leveled so that Amaranth's simulator, which
        # re-runs a fragment's whole combinational function whenever one of its inputs changes,
        # runs each about once per busy cycle and not at all in idle cycles (phase times are
        # gated to 0 in cycles without a command): decode (pins -> flags), time, chain0..3 (one
        # phase step each: the addressed bank's forwarded state, the rank state after the phase),
        # chain (register updates), check (rule bits and trace per phase), datapath (write/read
        # data pipelines, store port). Every intermediate is a Signal, so the Verilog shares them.
        m = Module()
        md, mt, mc, mk, mp = Module(), Module(), Module(), Module(), Module()
        m.submodules.decode, m.submodules.time = md, mt
        m.submodules.chain, m.submodules.check, m.submodules.datapath = mc, mk, mp
        ch, t = self.ch, self.t
        fb = ch.field_bits
        nbg, bpg = ch.geo.bank_groups, ch.geo.banks_per_group
        nb = nbg * bpg
        bgb, bab, rowb, colb = fb["bg"], fb["ba"], fb["row"], fb["col"]
        bankb = bgb + bab
        gw = max(bgb, 1)
        NP = ch.nphases
        T = TIME_BITS
        wr_end = t.CWL + t.tBURST                   # WR to the end of its burst
        trtw = t.CL + t.tBURST + 2 - t.CWL
        dfi = self.dfi

        def comb(mod, name, shape, value):
            s = Signal(shape, name=name)
            mod.d.comb += s.eq(value)
            return s

        def before(tm, ts, k):
            """A command at `tm` is earlier than `k` clocks after `ts`."""
            return tm < ts + k

        # ---- time (top) ----
        now = Signal(T, init=OFFSET)
        m.d.sync += now.eq(now + NP)
        m.d.comb += self.clock.eq(now - OFFSET)

        # ---- decode: per phase flags and fields, from the pins only (spec.dram.COMMANDS) ----
        def level(pin, v):
            """`pin` is at level `v` (1: H)."""
            return pin if v else ~pin

        def is_cmd(c, other, key, a10, *, by_a10=True):
            """A non-ACT command with the pins of `c`, and its A10 unless by_a10 is False."""
            e = COMMANDS[c]
            v = other & (key == e.rcw)
            if by_a10 and e.a10 is not None:
                v = v & level(a10, e.a10)
            return v

        act_n, nop = COMMANDS[Cmd.ACT].act_n, COMMANDS[Cmd.NOP]
        cas_rc = COMMANDS[Cmd.RD].rcw >> 1           # {RAS_n, CAS_n} of every CAS command (RD, WR, RDA, WRA)
        row_pins = sorted(ACT_ROW_PINS, key=ACT_ROW_PINS.get)     # the row bits above A13:A0, from A14 up
        ph = [dfi.phases[p] for p in range(NP)]
        dec = []
        for p in range(NP):
            x = ph[p]
            key = Cat(x.we_n, x.cas_n, x.ras_n)          # {ras, cas, we} as a number, ras the MSB: Encoding.rcw
            sel = ~x.cs_n
            other = sel & level(x.act_n, 1 - act_n)
            a10 = x.address[A10]
            d = {
                "act": comb(md, f"is_act{p}", 1, sel & level(x.act_n, act_n)),
                # RD/WR include RDA/WRA: A10 is checked as "ap" (bad_command)
                "rd": comb(md, f"is_rd{p}", 1, is_cmd(Cmd.RD, other, key, a10, by_a10=False)),
                "wr": comb(md, f"is_wr{p}", 1, is_cmd(Cmd.WR, other, key, a10, by_a10=False)),
                "pre": comb(md, f"is_pre{p}", 1, is_cmd(Cmd.PRE, other, key, a10)),
                "prea": comb(md, f"is_prea{p}", 1, is_cmd(Cmd.PREA, other, key, a10)),
                "ref": comb(md, f"is_ref{p}", 1, is_cmd(Cmd.REF, other, key, a10)),
                "mrs": comb(md, f"is_mrs{p}", 1, is_cmd(Cmd.MRS, other, key, a10)),
                "zqcl": comb(md, f"is_zqcl{p}", 1, is_cmd(Cmd.ZQCL, other, key, a10)),
                "zqcs": comb(md, f"is_zqcs{p}", 1, is_cmd(Cmd.ZQCS, other, key, a10)),
                "rsv": comb(md, f"is_rsv{p}", 1, is_cmd(Cmd.BAD, other, key, a10)),
                "cas": comb(md, f"is_cas{p}", 1, other & (key[1:] == cas_rc)),
                "any": comb(md, f"is_cmd{p}", 1, sel & ~(level(x.act_n, nop.act_n) & (key == nop.rcw))),
                "ap": a10,
                "bg": x.bg[:gw] if bgb else Const(0, 1),
                "ba": x.ba[:bab],
                "bank": comb(md, f"bank{p}", bankb, Cat(x.ba[:bab], x.bg[:bgb])),
                "onehot": comb(md, f"onehot{p}", nb, Const(1, nb) << Cat(x.ba[:bab], x.bg[:bgb])),
                "col": x.address[:COLUMN_BITS],
                "acol": x.address[3:3 + colb],
                "row": comb(md, f"arow{p}", ACT_ROW_ADDRESS_BITS + len(row_pins),
                            Cat(x.address[:ACT_ROW_ADDRESS_BITS], *(getattr(x, pin) for pin in row_pins))),
                "mr": comb(md, f"mr{p}", MR_BA_BITS + bgb, Cat(x.ba[:MR_BA_BITS], x.bg[:bgb])),
                "value": x.address,
            }
            dec.append(d)
        any_expr = Cat(*(~x.cs_n & ~(level(x.act_n, nop.act_n) & level(x.ras_n, nop.ras_n) &
                                     level(x.cas_n, nop.cas_n) & level(x.we_n, nop.we_n))
                         for x in ph)).any()
        has_cmd = comb(md, "has_cmd", 1, any_expr)
        # phase times, 0 in cycles without a command (so the checker sleeps in idle cycles)
        tp = [comb(mt, f"t{p}", T, Mux(any_expr, now + p, 0)) for p in range(NP)]
        gsel = [d["bg"] for d in dec]
        m.d.comb += self.trace_any.eq(has_cmd)

        # ---- registers ----
        rows = Array(Signal(rowb, name=f"row_{b}") for b in range(nb))
        b_act = Array(Signal(T, name=f"t_act_{b}") for b in range(nb))
        b_pre = Array(Signal(T, name=f"t_pre_{b}") for b in range(nb))
        b_rd = Array(Signal(T, name=f"t_rd_{b}") for b in range(nb))
        b_wr = Array(Signal(T, name=f"t_wr_{b}") for b in range(nb))
        g_act = Array(Signal(T, name=f"t_act_bg{g}") for g in range(nbg))
        g_cas = Array(Signal(T, name=f"t_cas_bg{g}") for g in range(nbg))
        g_wr = Array(Signal(T, name=f"t_wr_bg{g}") for g in range(nbg))
        rank_fields = {
            # latest ACT / CAS / WR: time, bank group, latest in a bank group other than that one
            "act_t": T, "act_bg": gw, "act_other": T,
            "cas_t": T, "cas_bg": gw, "cas_other": T,
            "wr_t": T, "wr_bg": gw, "wr_other": T,
            "rd_t": T, "pre_t": T,
            "faw0": T, "faw1": T, "faw2": T, "faw3": T,       # the last four ACTs, newest first
            "ref_t": T, "mrs_t": T, "zq_t": T, "dll_t": T,
            "mr_seen": 7, "zq_seen": 1, "open": nb,
        }
        reg = {k: Signal(s, name=f"r_{k}") for k, s in rank_fields.items()}
        init_done_reg = comb(m, "init_done_reg", 1, (reg["mr_seen"] == 0x7F) & reg["zq_seen"])

        # ---- chain: the rank state through the phases, and the addressed bank's state per phase ----
        fw_fields = {"bank_open": 1, "any_open": 1, "init_done": 1, "row": rowb, "act": T, "pre": T, "rd": T,
                     "wr": T, "gact": T, "gcas": T, "gwr": T, "act_t": T, "act_other": T, "cas_other": T,
                     "wr_other": T, "rd_t": T, "wr_t": T, "pre_t": T, "faw3": T, "ref_t": T, "mrs_t": T,
                     "zq_t": T, "dll_t": T}
        fw = [{k: Signal(s, name=f"fw{p}_{k}") for k, s in fw_fields.items()} for p in range(NP)]
        st = dict(reg)                  # the state before phase p (Signals)
        opens, closes, cas_addr = [], [], []
        full = (1 << nb) - 1
        for p in range(NP):
            mcp = Module()                 # one fragment per phase step
            m.submodules[f"chain{p}"] = mcp
            d, tm, b, g = dec[p], tp[p], dec[p]["bank"], gsel[p]
            opens.append(st["open"])
            row_f, act_f, pre_f, rd_f, wr_f = rows[b], b_act[b], b_pre[b], b_rd[b], b_wr[b]
            gact_f, gcas_f, gwr_f = g_act[g], g_cas[g], g_wr[g]
            for q in range(p):
                dq, tq = dec[q], tp[q]
                same = dq["bank"] == b
                same_g = gsel[q] == g
                row_f = Mux(dq["act"] & same, dq["row"][:rowb], row_f)
                act_f = Mux(dq["act"] & same, tq, act_f)
                pre_f = Mux(closes[q].bit_select(b, 1), tq, pre_f)
                rd_f = Mux(dq["rd"] & same, tq, rd_f)
                wr_f = Mux(dq["wr"] & same, tq, wr_f)
                gact_f = Mux(dq["act"] & same_g, tq, gact_f)
                gcas_f = Mux(dq["cas"] & same_g, tq, gcas_f)
                gwr_f = Mux(dq["wr"] & same_g, tq, gwr_f)
            bank_open = st["open"].bit_select(b, 1)
            vals = {
                "bank_open": bank_open, "any_open": st["open"] != 0,
                "init_done": (st["mr_seen"] == 0x7F) & st["zq_seen"],
                "row": row_f, "act": act_f, "pre": pre_f, "rd": rd_f, "wr": wr_f,
                "gact": gact_f, "gcas": gcas_f, "gwr": gwr_f,
                "act_other": Mux(st["act_bg"] != g, st["act_t"], st["act_other"]),
                "cas_other": Mux(st["cas_bg"] != g, st["cas_t"], st["cas_other"]),
                "wr_other": Mux(st["wr_bg"] != g, st["wr_t"], st["wr_other"]),
            }
            for k in ("act_t", "rd_t", "wr_t", "pre_t", "faw3", "ref_t", "mrs_t", "zq_t", "dll_t"):
                vals[k] = st[k]
            with mcp.If(d["any"]):
                mcp.d.comb += [fw[p][k].eq(v) for k, v in vals.items()]
            # the data path's store address: ((row * BG + bg) * BPG + ba) * bursts + col
            cas_row = Mux(fw[p]["bank_open"], fw[p]["row"], 0)
            addr = Cat(d["acol"], d["ba"], d["bg"][:bgb] if bgb else Cat(), cas_row)
            cas_addr.append(Signal(ch.line_bits, name=f"cas_addr{p}"))
            with mcp.If(d["cas"]):
                mcp.d.comb += cas_addr[p].eq(addr)
            # effects of phase p
            clear = Mux(d["prea"], full, Mux(d["pre"], d["onehot"], 0))
            close = comb(mcp, f"closes{p}", nb, st["open"] & clear)
            closes.append(close)
            nxt = dict(st)
            nxt["open"] = (st["open"] & ~clear) | Mux(d["act"], d["onehot"], 0)
            nxt["pre_t"] = Mux(close != 0, tm, st["pre_t"])
            for prefix, ev in (("act", d["act"]), ("cas", d["cas"]), ("wr", d["wr"])):
                nxt[prefix + "_other"] = Mux(ev & (st[prefix + "_bg"] != g), st[prefix + "_t"], st[prefix + "_other"])
                nxt[prefix + "_t"] = Mux(ev, tm, st[prefix + "_t"])
                nxt[prefix + "_bg"] = Mux(ev, g, st[prefix + "_bg"])
            nxt["rd_t"] = Mux(d["rd"], tm, st["rd_t"])
            nxt["faw0"] = Mux(d["act"], tm, st["faw0"])
            nxt["faw1"] = Mux(d["act"], st["faw0"], st["faw1"])
            nxt["faw2"] = Mux(d["act"], st["faw1"], st["faw2"])
            nxt["faw3"] = Mux(d["act"], st["faw2"], st["faw3"])
            nxt["ref_t"] = Mux(d["ref"], tm, st["ref_t"])
            nxt["mrs_t"] = Mux(d["mrs"], tm, st["mrs_t"])
            nxt["zq_t"] = Mux(d["zqcl"], tm, st["zq_t"])
            nxt["dll_t"] = Mux(d["mrs"] & (d["mr"] == 0) & d["value"][8], tm, st["dll_t"])
            mr_hit = Mux(d["mrs"] & (d["mr"] < 7), Const(1, 8) << d["mr"][:3], 0)
            nxt["mr_seen"] = st["mr_seen"] | mr_hit[:7]
            nxt["zq_seen"] = st["zq_seen"] | d["zqcl"]
            st = {k: v if v is st[k] else comb(mcp, f"{k}_{p + 1}", rank_fields[k], v) for k, v in nxt.items()}

        # register updates (a cycle without commands changes nothing; RESET_n low clears the
        # banks and the init progress)
        with mc.If(has_cmd):
            mc.d.sync += [reg[k].eq(st[k]) for k in rank_fields]
            for q in range(NP):
                dq, tq = dec[q], tp[q]
                with mc.If(dq["act"]):
                    mc.d.sync += [b_act[dq["bank"]].eq(tq), rows[dq["bank"]].eq(dq["row"][:rowb]),
                                  g_act[gsel[q]].eq(tq)]
                with mc.If(dq["rd"]):
                    mc.d.sync += [b_rd[dq["bank"]].eq(tq), g_cas[gsel[q]].eq(tq)]
                with mc.If(dq["wr"]):
                    mc.d.sync += [b_wr[dq["bank"]].eq(tq), g_cas[gsel[q]].eq(tq), g_wr[gsel[q]].eq(tq)]
                with mc.If(dq["pre"] & opens[q].bit_select(dq["bank"], 1)):
                    mc.d.sync += b_pre[dq["bank"]].eq(tq)
                with mc.If(dq["prea"]):
                    for bank in range(nb):
                        with mc.If(opens[q][bank]):
                            mc.d.sync += b_pre[bank].eq(tq)
        with mc.If(~dfi.reset_n):
            mc.d.sync += [reg["open"].eq(0), reg["mr_seen"].eq(0), reg["zq_seen"].eq(0)]

        # ---- power-up: RESET_n and CKE edges (top, cycle level) ----
        prev_reset_n, prev_cke = Signal(), Signal()
        t_rst_fall = Signal(T, init=OFFSET)       # the model's own reset counts as RESET_n falling
        t_rst_rise, t_cke_rise = Signal(T), Signal(T)
        m.d.sync += [prev_reset_n.eq(dfi.reset_n), prev_cke.eq(dfi.cke)]
        rst_rise = dfi.reset_n & ~prev_reset_n
        cke_rise = dfi.cke & ~prev_cke
        with m.If(~dfi.reset_n & prev_reset_n):
            m.d.sync += t_rst_fall.eq(now)
        with m.If(rst_rise):
            m.d.sync += t_rst_rise.eq(now)
        with m.If(cke_rise):
            m.d.sync += t_cke_rise.eq(now)
        edge_bad = comb(m, "edge_bad", 1, (rst_rise & before(now, t_rst_fall, ch.t_reset)) |
                        (cke_rise & (~dfi.reset_n | before(now, Mux(rst_rise, now, t_rst_rise), ch.t_cke))))

        # ---- check: the rule bits of each phase's command, and the trace ----
        nrules = len(RULES)
        rp = [Signal(nrules, name=f"rules{p}") for p in range(NP)]
        mr0, mr2 = self.mr[0], self.mr[2]
        mr0_cl = ((mr0 >> 2) & 1) | (((mr0 >> 4) & 7) << 1)
        for p in range(NP):
            d, tm, f = dec[p], tp[p], fw[p]
            act, rd, wr, cas = d["act"], d["rd"], d["wr"], d["cas"]
            pre, prea, ref, mrs = d["pre"], d["prea"], d["ref"], d["mrs"]
            val = d["value"]
            conds = {r.name: [] for r in RULES}

            def flag(name, cond, _conds=conds):
                _conds[name].append(cond)

            # bank
            flag("tRCD", cas & before(tm, f["act"], t.tRCD))
            flag("tRP", act & before(tm, f["pre"], t.tRP))
            flag("tRP", ref & before(tm, f["pre_t"], t.tRP))
            flag("tRAS", pre & f["bank_open"] & before(tm, f["act"], t.tRAS))
            flag("tRAS", prea & f["any_open"] & before(tm, f["act_t"], t.tRAS))
            flag("tRC", act & before(tm, f["act"], t.tRC))
            flag("tRTP", pre & f["bank_open"] & before(tm, f["rd"], t.tRTP))
            flag("tRTP", prea & f["any_open"] & before(tm, f["rd_t"], t.tRTP))
            flag("tWR", pre & f["bank_open"] & before(tm, f["wr"], wr_end + t.tWR))
            flag("tWR", prea & f["any_open"] & before(tm, f["wr_t"], wr_end + t.tWR))
            # bank group
            flag("tCCD_L", cas & before(tm, f["gcas"], t.tCCD_L))
            flag("tRRD_L", act & before(tm, f["gact"], t.tRRD_L))
            flag("tWTR_L", rd & before(tm, f["gwr"], wr_end + t.tWTR_L))
            # rank
            flag("tCCD_S", cas & before(tm, f["cas_other"], t.tCCD_S))
            flag("tRRD_S", act & before(tm, f["act_other"], t.tRRD_S))
            flag("tWTR_S", rd & before(tm, f["wr_other"], wr_end + t.tWTR_S))
            flag("tFAW", act & before(tm, f["faw3"], t.tFAW))
            flag("tRFC", before(tm, f["ref_t"], t.tRFC))
            flag("tMRD", mrs & before(tm, f["mrs_t"], t.tMRD))
            flag("tMOD", ~mrs & before(tm, f["mrs_t"], t.tMOD))
            flag("tXPR", before(tm, t_cke_rise, t.tXPR))
            flag("tZQinit", before(tm, f["zq_t"], t.tZQinit))
            flag("tDLLK", cas & before(tm, f["dll_t"], t.tDLLK))
            # data bus
            flag("tRTW", wr & before(tm, f["rd_t"], trtw))
            # state
            flag("act_open", act & f["bank_open"])
            flag("cas_closed", cas & ~f["bank_open"])
            flag("ref_open", ref & f["any_open"])
            flag("mrs_open", mrs & f["any_open"])
            flag("init_order", ~(dfi.reset_n & dfi.cke))
            flag("init_order", (act | cas | pre | prea | ref) & ~f["init_done"])
            flag("mode_register", mrs & (d["mr"] == 0) &
                 ((Cat(val[2], val[4:7]) != mr0_cl) | (val[9:12] != ((mr0 >> 9) & 7))))
            flag("mode_register", mrs & (d["mr"] == 2) & (val[3:6] != ((mr2 >> 3) & 7)))
            flag("bad_command", d["rsv"] | (cas & (d["ap"] | (d["col"][:3] != 0))) | (mrs & (d["mr"] >= 7)))
            if ch.geo.rows < (1 << 17):
                flag("bad_command", act & (d["row"] >= ch.geo.rows))
            with mk.If(d["any"]):
                mk.d.comb += rp[p].eq(Cat(*(Cat(*c).any() if c else Const(0, 1)
                                            for c in (conds[r.name] for r in RULES))))
                # trace
                cmd = Mux(act, Cmd.ACT, Mux(rd, Mux(d["ap"], Cmd.RDA, Cmd.RD), Mux(wr, Mux(d["ap"], Cmd.WRA, Cmd.WR),
                          Mux(pre, Cmd.PRE, Mux(prea, Cmd.PREA, Mux(ref, Cmd.REF, Mux(mrs, Cmd.MRS,
                              Mux(d["zqcl"], Cmd.ZQCL, Mux(d["zqcs"], Cmd.ZQCS, Cmd.BAD)))))))))
                tr = self.trace[p]
                fields = act | cas | pre | mrs
                mk.d.comb += [
                    tr.valid.eq(1), tr.cmd.eq(cmd),
                    tr.bg.eq(Mux(fields, ph[p].bg, 0)), tr.ba.eq(Mux(fields, ph[p].ba, 0)),
                    tr.row.eq(Mux(act, d["row"], Mux(cas, Mux(f["bank_open"], f["row"], 0), Mux(mrs, val, 0)))),
                    tr.col.eq(Mux(cas, d["col"], 0)),
                ]

        # ---- datapath: write data exactly wr_latency cycles after a WR; read data rd_latency after a RD ----
        # (two CAS in one cycle always break tCCD; the data path then serves the last of them)
        any_rd = comb(mp, "any_rd", 1, Cat(*(d["rd"] for d in dec)).any())
        any_wr = comb(mp, "any_wr", 1, Cat(*(d["wr"] for d in dec)).any())
        rd_addr, wr_addr = Const(0, ch.line_bits), Const(0, ch.line_bits)
        for p in range(NP):
            rd_addr = Mux(dec[p]["rd"], cas_addr[p], rd_addr)
            wr_addr = Mux(dec[p]["wr"], cas_addr[p], wr_addr)
        L = ch.wr_latency
        wr_pipe = [Signal(1 + ch.line_bits, name=f"wr_pipe{i}") for i in range(L)]
        mp.d.sync += wr_pipe[0].eq(Cat(wr_addr, any_wr))
        for i in range(1, L):
            mp.d.sync += wr_pipe[i].eq(wr_pipe[i - 1])
        wr_due = wr_pipe[L - 1][-1]
        wrdata_bad = comb(mp, "wrdata_bad", 1, dfi.wrdata_en != wr_due)
        store_write = dfi.wrdata_en & wr_due
        mp.d.comb += [
            self.store.valid.eq(store_write | any_rd),
            self.store.write.eq(store_write),
            self.store.addr.eq(Mux(store_write, wr_pipe[L - 1][:ch.line_bits], rd_addr)),
            self.store.data.eq(dfi.wrdata),
            self.store.mask.eq(~dfi.wrdata_mask),
        ]
        R = ch.rd_latency
        line = 8 * ch.line_bytes
        rd_req = Signal()
        rd_pipe = [Signal(1 + line, name=f"rd_pipe{i}") for i in range(R - 1)]
        mp.d.sync += [rd_req.eq(any_rd), rd_pipe[0].eq(Mux(rd_req, Cat(self.store.rdata, rd_req), 0))]
        for i in range(1, R - 1):
            mp.d.sync += rd_pipe[i].eq(rd_pipe[i - 1])
        mp.d.comb += [dfi.rddata_valid.eq(rd_pipe[-1][-1]), dfi.rddata.eq(rd_pipe[-1][:line])]

        # ---- refresh debt (top) ----
        refi = Signal(range(t.tREFI + NP + 1))
        debt, max_debt = Signal(signed(8)), Signal(signed(8))
        due = comb(m, "ref_due", 1, init_done_reg & (refi + NP >= t.tREFI))
        with m.If(~init_done_reg | ~dfi.reset_n):
            m.d.sync += refi.eq(0)
        with m.Elif(due):
            m.d.sync += refi.eq(refi + NP - t.tREFI)
        with m.Else():
            m.d.sync += refi.eq(refi + NP)
        nref = sum(d["ref"] for d in dec)
        raw = comb(m, "debt_raw", signed(10), debt + due - nref)
        credit = t.REFRESH_CREDIT
        debt_next = comb(m, "debt_next", signed(8), Mux(raw < -credit, -credit, Mux(raw > 127, 127, raw)))
        debt_bad = comb(m, "debt_bad", 1, (debt_next > credit) & (debt <= credit))
        with m.If(~dfi.reset_n):
            m.d.sync += debt.eq(0)
        with m.Else():
            m.d.sync += debt.eq(debt_next)
        with m.If(debt_next > max_debt):
            m.d.sync += max_debt.eq(debt_next)
        m.d.comb += [self.ref_debt.eq(debt), self.max_ref_debt.eq(max_debt), self.init_done.eq(init_done_reg)]

        # ---- outputs: rules of the cycle, counters (top) ----
        cycle_rules = Signal(nrules)
        m.d.comb += [cycle_rules[rule_code("init_order")].eq(edge_bad), cycle_rules[rule_code("wrdata")].eq(wrdata_bad),
                     cycle_rules[rule_code("refresh_debt")].eq(debt_bad)]
        m.d.comb += [self.rules.eq(rp[0] | rp[1] | rp[2] | rp[3] | cycle_rules), self.violation.eq(self.rules.any())]
        pop = comb(m, "rules_pop", 6, sum(self.rules[i] for i in range(nrules)))
        total = Signal(33)
        m.d.comb += total.eq(self.violations + pop)
        m.d.sync += self.violations.eq(Mux(total[32], 0xFFFF_FFFF, total[:32]))
        with m.If(has_cmd):
            for name, kind in (("reads", "rd"), ("writes", "wr"), ("acts", "act"), ("refs", "ref")):
                counter = getattr(self, name)
                m.d.sync += counter.eq(counter + sum(dec[p][kind] for p in range(NP)))
        return m
