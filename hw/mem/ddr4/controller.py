"""The DDR4 controller: one channel, one rank, DFI 1:4 (hw/mem/dfi.py), timings from spec/dram.py.

    port  In(NativePortSignature(ch))   64-byte line requests in; read data out in request order
    dfi   Out(DfiSignature(ch))         commands on 4 phases per cycle, write data, read data
    ready                               the init sequence is done (requests are accepted before;
                                        they wait)
    refreshes, ref_debt                 REFs issued, and the refresher's view of the debt

Data flow:

    port.req -> [staging register] -> address map -> bank machine queue (one per bank, in order)
                  |  write: data+mask into the write-data buffer at a free write slot (free list)
                  |  read:  a read slot (the reorder buffer's tail, request order)
    scheduler: per cycle at most one CAS (RD/WR), one ACT and one PRE, on distinct phases
    WR  -> its write slot is read out so the line is on dfi.wrdata at cycle + wr_latency
    RD  -> its read slot goes into the in-flight FIFO; dfi.rddata (issue order) is written to
           that slot; the reorder buffer drains in request order to port.rdata

Scheduling (time in DRAM clocks, "clocks until allowed" counters, see `timers`): each bank
machine (`bank`) keeps its open row (open-page policy), its queue and its tRCD / tRP / tRAS / tRC /
tRTP / tWR / tRFC counters and says what its head needs. The scheduler holds the bank-group
(tCCD_L, tRRD_L, tWTR_L) and rank (tCCD_S, tRRD_S, tWTR_S, tRTW, tFAW as the ring of the last four
ACTs, PRE->REF tRP and REF->REF tRFC) counters and picks, round-robin among the banks whose
constraints allow it this cycle:

- a CAS (row hits at the queue heads, in the current direction) at its earliest phase;
- an ACT (a head whose bank is closed) at its earliest phase, moved one phase later if the CAS
  took it; any bank, so rows open ahead of need while other banks stream;
- a PRE (a head that misses the open row) at its earliest free phase.

Direction: the controller is in read or in write mode (tRTW / tWTR make turnarounds dear). It turns
to the other direction when that one has work at a queue head and either the current one has none,
or (after `min_batch` cycles) the write buffer is above `wr_high` (to write mode) / down to `wr_low`
(to read mode), or the other direction has waited `starve` cycles.

Refresh (`refresher`): while the refresher wants the bus, no ACT, CAS or PRE is scheduled; a PREA
closes the open banks once their tRAS / tRTP / tWR allow, then REFs go tRP after it and tRFC apart.

Init (`init`): the power-up sequence runs once after reset; nothing is scheduled before it ends.
The DFI command pins are registered (a decision in cycle c is on the DFI in cycle c + 1; the
write-data and read-slot pipelines count from there) and reset to DES.

Measured (Amaranth sim, tests/hw/mem/test_ddr4_controller.py; Verilator, sim/benches/dram.py with
60k cycles including refresh, DDR4-2400R 8Gb_x8): sequential reads bg_first 99.3 % between refreshes
/ 95.6 % with refresh; uniform random reads 57.9 % / 56.6 %; col_first 67.8 % / 64.7 % (tCCD_L
bound). Random reads are tFAW-bound (61.5 % at most); read_slots=128, bank_queue=16 add ~1.5 %.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hw.mem.dfi import Cmd, DfiSignature, NativePortSignature, PhaseLayout, encode
from spec.dram import Channel

from .bank import BankMachine, counter_width
from .init import InitSequencer
from .mapper import AddressMapper
from .refresher import Refresher, check_refresh_args
from .timers import Countdown, max2, round_robin

__all__ = ["Controller"]


def _pow2(name: str, v: int, lo: int = 2) -> int:
    if not isinstance(v, int) or v < lo or v & (v - 1):
        raise ValueError(f"{name} = {v!r}: must be a power of two >= {lo}")
    return v.bit_length() - 1


class Controller(wiring.Component):
    """A DDR4 channel controller (module docstring).

    bank_queue   requests each bank machine holds (>= 1)
    read_slots   reads in flight (reorder buffer entries; a power of two)
    write_slots  writes buffered (write-data buffer entries; a power of two)
    wr_high, wr_low, min_batch, starve   the read/write turnaround policy (module docstring)
    ref_postpone, ref_low, idle_refresh  the refresher's thresholds (`refresher.Refresher`)
    """

    def __init__(self, ch: Channel, *, bank_queue: int = 8, read_slots: int = 64, write_slots: int = 32,
                 wr_high: int | None = None, wr_low: int | None = None, min_batch: int = 16, starve: int = 256,
                 ref_postpone: int = 6, ref_low: int = 2, idle_refresh: int = 16):
        if not isinstance(ch, Channel):
            raise ValueError(f"Controller needs a spec.dram.Channel, got {ch!r}")
        if not isinstance(bank_queue, int) or bank_queue < 1:
            raise ValueError(f"bank_queue = {bank_queue!r}: must be an int >= 1")
        self._rbits = _pow2("read_slots", read_slots)
        self._wbits = _pow2("write_slots", write_slots)
        wr_high = write_slots // 2 if wr_high is None else wr_high
        wr_low = write_slots // 8 if wr_low is None else wr_low
        if not 0 <= wr_low < wr_high <= write_slots:
            raise ValueError(f"write watermarks low {wr_low}, high {wr_high}: need 0 <= low < high <= "
                             f"write_slots ({write_slots})")
        if min_batch < 0 or starve < 1:
            raise ValueError(f"min_batch {min_batch} must be >= 0 and starve {starve} >= 1")
        if ch.wr_latency < 1:
            raise ValueError(f"{ch.speed}: wr_latency {ch.wr_latency} < 1 is not supported")
        self._ch = ch
        self._bank_queue, self._read_slots, self._write_slots = bank_queue, read_slots, write_slots
        self._wr_high, self._wr_low, self._min_batch, self._starve = wr_high, wr_low, min_batch, starve
        # checked here, so that a bad value fails at construction
        self._refresher_args = dict(postpone=ref_postpone, low=ref_low, idle_delay=idle_refresh)
        check_refresh_args(ch, **self._refresher_args)
        super().__init__({
            "port": In(NativePortSignature(ch)),
            "dfi": Out(DfiSignature(ch)),
            "ready": Out(1),
            "refreshes": Out(32),
            "ref_debt": Out(signed(8)),
        })

    @property
    def channel(self) -> Channel:
        return self._ch

    def elaborate(self, platform):
        m = Module()
        ch, t, geo, fb = self._ch, self._ch.timing, self._ch.geo, self._ch.field_bits
        nb, ba_bits = geo.banks, fb["ba"]
        R, W = self._read_slots, self._write_slots
        rbits, wbits = self._rbits, self._wbits
        slot_bits = max(rbits, wbits)
        line_bits = 8 * ch.line_bytes
        req, rdata, dfi = self.port.req, self.port.rdata, self.dfi

        def group(b):                          # bank index = bg * banks_per_group + ba
            return b >> ba_bits

        # ---- init and refresh ----
        init = m.submodules.init = InitSequencer(ch)
        ref = m.submodules.refresher = Refresher(ch, **self._refresher_args)
        ready = init.done
        m.d.comb += [self.ready.eq(ready), self.refreshes.eq(ref.refreshes), self.ref_debt.eq(ref.debt),
                     ref.enable.eq(init.zq_issued)]

        # ---- bank machines (builders in this module: see bank.py) ----
        bms = [BankMachine(ch, b, self._bank_queue, slot_bits) for b in range(nb)]
        entry_shape = bms[0].layout

        # ---- intake: staging register, slots ----
        mapper = m.submodules.mapper = AddressMapper(ch)
        m.d.comb += mapper.addr.eq(req.payload.addr)

        fl = m.submodules.free_list = Memory(shape=unsigned(wbits), depth=W, init=range(W))
        fl_r, fl_w = fl.read_port(domain="comb"), fl.write_port()
        fl_head, fl_tail = Signal(wbits), Signal(wbits)
        fl_count = Signal(range(W + 1), init=W)
        wmem = m.submodules.wdata = Memory(shape=unsigned(line_bits + ch.line_bytes), depth=W, init=[])
        wmem_w, wmem_r = wmem.write_port(), wmem.read_port()

        rob = m.submodules.rob = Memory(shape=unsigned(line_bits), depth=R, init=[])
        rob_w, rob_r = rob.write_port(), rob.read_port()
        rob_tail, rob_head = Signal(rbits), Signal(rbits)
        rob_count = Signal(range(R + 1))

        s_valid = Signal()
        s_bank = Signal(range(nb))
        s_entry = Signal(entry_shape)
        s_move = Signal()
        m.d.comb += s_move.eq(s_valid & Array(bm.push_ready for bm in bms)[s_bank])
        for b, bm in enumerate(bms):
            bm.push(s_move & (s_bank == b), s_entry)

        accept = Signal()
        is_write = req.payload.write
        m.d.comb += [
            req.ready.eq((~s_valid | s_move) & (fl_count != 0) & (rob_count != R)),
            accept.eq(req.valid & req.ready),
            fl_r.addr.eq(fl_head),
            wmem_w.addr.eq(fl_r.data), wmem_w.data.eq(Cat(req.payload.data, req.payload.mask)),
            wmem_w.en.eq(accept & is_write),
        ]
        with m.If(accept):
            m.d.sync += [
                s_valid.eq(1),
                s_bank.eq(Cat(mapper.ba[:ba_bits], mapper.bg[:fb["bg"]]) if fb["bg"] else mapper.ba[:ba_bits]),
                s_entry.eq(Cat(mapper.row, mapper.col, is_write, Mux(is_write, fl_r.data, rob_tail))),
            ]
            with m.If(is_write):
                m.d.sync += fl_head.eq(fl_head + 1)
            with m.Else():
                m.d.sync += rob_tail.eq(rob_tail + 1)
        with m.Elif(s_move):
            m.d.sync += s_valid.eq(0)

        # ---- scheduler state ----
        cw = counter_width(ch)
        ngroups = geo.bank_groups
        ccd_l = [Countdown(cw, f"ccd_l{g}") for g in range(ngroups)]
        wtr_l = [Countdown(cw, f"wtr_l{g}") for g in range(ngroups)]
        rrd_l = [Countdown(cw, f"rrd_l{g}") for g in range(ngroups)]
        ccd_s, wtr_s, rtw = Countdown(cw, "ccd_s"), Countdown(cw, "wtr_s"), Countdown(cw, "rtw")
        rrd_s, ref_ctr = Countdown(cw, "rrd_s"), Countdown(cw, "ref_ctr")
        faw = [Countdown(cw, f"faw{k}") for k in range(4)]
        faw_ptr = Signal(2)
        wr_mode = Signal()

        # The combinational scheduler is split into small modules by dependency level (group
        # constraints -> bank requests -> round-robin -> phases): Amaranth's Python simulator
        # re-runs a module's whole combinational process whenever one of its inputs changes.
        mg, mq, mr, mp = Module(), Module(), Module(), Module()
        m.submodules.sched_groups, m.submodules.sched_requests = mg, mq
        m.submodules.sched_choice, m.submodules.sched_phases = mr, mp

        # rank and bank-group constraints of a CAS in the current direction and of an ACT
        r_cas_ok = ccd_s.ok & Mux(wr_mode, rtw.ok, wtr_s.ok)
        r_cas_need = max2(ccd_s.need, Mux(wr_mode, rtw.need, wtr_s.need))
        faw_old = Array(c.value for c in faw)[faw_ptr]
        r_act_ok = rrd_s.ok & (faw_old < 4)
        r_act_need = max2(rrd_s.need, faw_old[:2])
        g_cas_ok, g_act_ok = Signal(ngroups), Signal(ngroups)
        g_cas_need = [Signal(2, name=f"g{g}_cas_need") for g in range(ngroups)]
        g_act_need = [Signal(2, name=f"g{g}_act_need") for g in range(ngroups)]
        mg.d.comb += [
            g_cas_ok.eq(Mux(r_cas_ok, Cat(ccd_l[g].ok & (wr_mode | wtr_l[g].ok) for g in range(ngroups)), 0)),
            g_act_ok.eq(Mux(r_act_ok, Cat(rrd_l[g].ok for g in range(ngroups)), 0)),
        ]
        for g in range(ngroups):
            mg.d.comb += [g_cas_need[g].eq(max2(max2(r_cas_need, ccd_l[g].need), Mux(wr_mode, 0, wtr_l[g].need))),
                          g_act_need[g].eq(max2(r_act_need, rrd_l[g].need))]

        block = Signal()                       # the refresher (or init) owns the bus
        cas_req, act_req, pre_req = Signal(nb), Signal(nb), Signal(nb)
        mq.d.comb += block.eq(~ready | ref.want)
        with mq.If(~block):
            mq.d.comb += [
                cas_req.eq(Cat(bm.want_cas & bm.cas.ok & (bm.head.write == wr_mode) & g_cas_ok[group(b)]
                               for b, bm in enumerate(bms))),
                act_req.eq(Cat(bm.want_act & bm.act.ok & g_act_ok[group(b)] for b, bm in enumerate(bms))),
                pre_req.eq(Cat(bm.want_pre & bm.pre.ok for bm in bms)),
            ]
        cas_v, cas_i, cas_adv = round_robin(mr, cas_req, "cas")
        act_v, act_i, act_adv = round_robin(mr, act_req, "act")
        pre_v, pre_i, pre_adv = round_robin(mr, pre_req, "pre")

        # phases: CAS at its earliest; ACT at its earliest, one later if the CAS took it; PRE at the
        # earliest phase left
        p_cas, p_act, p_pre = Signal(2), Signal(2), Signal(2)
        issue_cas, issue_act, issue_pre = Signal(), Signal(), Signal()
        do_cas, do_act, do_pre = Signal(nb), Signal(nb), Signal(nb)     # one-hot: the bank chosen
        p_act0 = max2(Array(bm.act.need for bm in bms)[act_i], Array(g_act_need)[group(act_i)])
        mp.d.comb += [issue_cas.eq(cas_v),
                      p_cas.eq(max2(Array(bm.cas.need for bm in bms)[cas_i], Array(g_cas_need)[group(cas_i)]))]
        act_bump = issue_cas & (p_act0 == p_cas)
        mp.d.comb += [p_act.eq(p_act0 + act_bump), issue_act.eq(act_v & ~(act_bump & (p_act0 == 3)))]
        taken = Mux(issue_cas, Const(1, 4) << p_cas, 0) | Mux(issue_act, Const(1, 4) << p_act, 0)
        free = ~taken & (Const(0xF, 4) << Array(bm.pre.need for bm in bms)[pre_i])[:4]
        for p in reversed(range(4)):
            with mp.If(free[p]):
                mp.d.comb += [p_pre.eq(p), issue_pre.eq(pre_v)]
        one = Const(1, nb)
        mp.d.comb += [cas_adv.eq(issue_cas), act_adv.eq(issue_act), pre_adv.eq(issue_pre),
                      do_cas.eq(Mux(issue_cas, one << cas_i, 0)), do_act.eq(Mux(issue_act, one << act_i, 0)),
                      do_pre.eq(Mux(issue_pre, one << pre_i, 0))]

        # refresh: PREA once every open bank may precharge, then REF
        any_open = Cat(bm.open for bm in bms).any()
        all_pre_ok = Cat(~bm.open | bm.pre.ok for bm in bms).all()
        issue_prea, issue_ref = Signal(), Signal()
        p_prea, p_ref = 3, ref_ctr.need
        with mp.If(ready & ref.want):
            mp.d.comb += [issue_prea.eq(any_open & all_pre_ok), issue_ref.eq(~any_open & ref_ctr.ok)]
        m.d.comb += ref.ref_issued.eq(issue_ref)

        cas_head = Array(bm.head for bm in bms)[cas_i]
        for b, bm in enumerate(bms):
            bm.issue_cas(do_cas[b], p_cas)
            bm.issue_act(do_act[b], p_act)
            bm.issue_pre(do_pre[b], p_pre)
            bm.issue_pre(issue_prea, p_prea)
            bm.issue_ref(issue_ref, p_ref)
            bm.elaborate(m)

        # bank-group and rank counters
        g_cas, g_act = group(cas_i), group(act_i)
        cas_rd, cas_wr = issue_cas & ~wr_mode, issue_cas & wr_mode
        burst_end = t.CWL + t.tBURST
        for g in range(ngroups):
            ccd_l[g].start(issue_cas & (g_cas == g), p_cas, t.tCCD_L)
            wtr_l[g].start(cas_wr & (g_cas == g), p_cas, burst_end + t.tWTR_L)
            rrd_l[g].start(issue_act & (g_act == g), p_act, t.tRRD_L)
        ccd_s.start(issue_cas, p_cas, t.tCCD_S)
        wtr_s.start(cas_wr, p_cas, burst_end + t.tWTR_S)
        rtw_clocks = t.CL + t.tBURST + 2 - t.CWL
        if rtw_clocks > 0:
            rtw.start(cas_rd, p_cas, rtw_clocks)
        rrd_s.start(issue_act, p_act, t.tRRD_S)
        for k in range(4):
            faw[k].start(issue_act & (faw_ptr == k), p_act, t.tFAW)
        with m.If(issue_act):
            m.d.sync += faw_ptr.eq(faw_ptr + 1)
        ref_ctr.start(issue_pre, p_pre, t.tRP)
        ref_ctr.start(issue_prea, p_prea, t.tRP)
        ref_ctr.start(issue_ref, p_ref, t.tRFC)
        for c in (*ccd_l, *wtr_l, *rrd_l, ccd_s, wtr_s, rtw, rrd_s, ref_ctr, *faw):
            c.elaborate(m)

        # ---- direction (read / write mode) ----
        any_rd = Cat(bm.head_valid & ~bm.head.write for bm in bms).any()
        any_wr = Cat(bm.head_valid & bm.head.write for bm in bms).any()
        age = Signal(range(self._starve + 1))
        has_cur, has_other = Mux(wr_mode, any_wr, any_rd), Mux(wr_mode, any_rd, any_wr)
        pressure = Mux(wr_mode, fl_count >= W - self._wr_low, fl_count <= W - self._wr_high)
        switch = has_other & (~has_cur | (pressure & (age >= self._min_batch)) | (age == self._starve))
        with m.If(switch & ~block):
            m.d.sync += [wr_mode.eq(~wr_mode), age.eq(0)]
        with m.Elif(age != self._starve):
            m.d.sync += age.eq(age + 1)

        # ---- refresher's idle input ----
        m.d.comb += ref.idle.eq(~req.valid & ~s_valid & ~Cat(bm.head_valid for bm in bms).any())

        # ---- DFI command bus (registered) ----
        # the command registers reset to DES (an all-zero phase would be an ACT)
        des = {"cs_n": 1, "act_n": 1, "ras_n": 1, "cas_n": 1, "we_n": 1}
        cmd_reg = Signal(data.ArrayLayout(PhaseLayout(ch), ch.nphases), init=[des] * ch.nphases)
        m.d.comb += dfi.phases.eq(cmd_reg)
        for p in range(ch.nphases):
            ph = cmd_reg[p]
            m.d.sync += encode(ph, Cmd.NOP)
            if p == 0:
                with m.If(init.cmd_valid & init.cmd_mrs):
                    m.d.sync += encode(ph, Cmd.MRS, mr=init.mr, value=init.value)
                with m.If(init.cmd_valid & ~init.cmd_mrs):
                    m.d.sync += encode(ph, Cmd.ZQCL)
            if p == p_prea:
                with m.If(issue_prea):
                    m.d.sync += encode(ph, Cmd.PREA)
            with m.If(issue_ref & (p_ref == p)):
                m.d.sync += encode(ph, Cmd.REF)
            with m.If(issue_cas & (p_cas == p)):
                kw = dict(bg=group(cas_i), ba=cas_i[:ba_bits], col=cas_head.col << 3)
                with m.If(wr_mode):
                    m.d.sync += encode(ph, Cmd.WR, **kw)
                with m.Else():
                    m.d.sync += encode(ph, Cmd.RD, **kw)
            with m.If(issue_act & (p_act == p)):
                m.d.sync += encode(ph, Cmd.ACT, bg=group(act_i), ba=act_i[:ba_bits],
                                   row=Array(bm.head.row for bm in bms)[act_i])
            with m.If(issue_pre & (p_pre == p)):
                m.d.sync += encode(ph, Cmd.PRE, bg=group(pre_i), ba=pre_i[:ba_bits])
        m.d.sync += [dfi.cke.eq(init.cke), dfi.reset_n.eq(init.reset_n)]

        # ---- write data: on dfi.wrdata wr_latency cycles after the WR is on the DFI ----
        L = ch.wr_latency
        wv = [Signal(name=f"wpipe{k}_valid") for k in range(L)]
        ws = [Signal(wbits, name=f"wpipe{k}_slot") for k in range(L)]
        m.d.sync += [wv[0].eq(cas_wr), ws[0].eq(cas_head.slot[:wbits])]
        for k in range(1, L):
            m.d.sync += [wv[k].eq(wv[k - 1]), ws[k].eq(ws[k - 1])]
        m.d.comb += [wmem_r.addr.eq(ws[L - 1]), wmem_r.en.eq(1),
                     dfi.wrdata.eq(wmem_r.data[:line_bits]), dfi.wrdata_mask.eq(~wmem_r.data[line_bits:])]
        m.d.sync += dfi.wrdata_en.eq(wv[L - 1])
        # the slot is free once read out
        m.d.comb += [fl_w.addr.eq(fl_tail), fl_w.data.eq(ws[L - 1]), fl_w.en.eq(wv[L - 1])]
        with m.If(wv[L - 1]):
            m.d.sync += fl_tail.eq(fl_tail + 1)
        with m.If(accept & is_write & ~wv[L - 1]):
            m.d.sync += fl_count.eq(fl_count - 1)
        with m.Elif(wv[L - 1] & ~(accept & is_write)):
            m.d.sync += fl_count.eq(fl_count + 1)

        # ---- read data: in-flight slots in issue order, reorder buffer, drain in request order ----
        inflight = m.submodules.inflight = fifo.SyncFIFO(width=rbits, depth=ch.rd_latency + 4)
        m.d.comb += [inflight.w_en.eq(cas_rd), inflight.w_data.eq(cas_head.slot[:rbits]),
                     inflight.r_en.eq(dfi.rddata_valid),
                     rob_w.addr.eq(inflight.r_data), rob_w.data.eq(dfi.rddata), rob_w.en.eq(dfi.rddata_valid)]
        filled = Signal(R)
        out_valid = Signal()
        load = Signal()
        m.d.comb += [
            load.eq((filled >> rob_head)[0] & (~out_valid | rdata.ready)),
            rob_r.addr.eq(rob_head), rob_r.en.eq(load),
            rdata.valid.eq(out_valid), rdata.payload.data.eq(rob_r.data),
        ]
        set_mask = Mux(dfi.rddata_valid, Const(1, R) << inflight.r_data, 0)
        clr_mask = Mux(load, Const(1, R) << rob_head, 0)
        m.d.sync += filled.eq((filled | set_mask) & ~clr_mask)
        with m.If(load):
            m.d.sync += [out_valid.eq(1), rob_head.eq(rob_head + 1)]
        with m.Elif(rdata.ready):
            m.d.sync += out_valid.eq(0)
        with m.If(accept & ~is_write & ~load):
            m.d.sync += rob_count.eq(rob_count + 1)
        with m.Elif(load & ~(accept & ~is_write)):
            m.d.sync += rob_count.eq(rob_count - 1)
        return m
