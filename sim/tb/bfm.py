"""Bus-functional models for the memory adapters (hw.mem.avalon, hw.mem.axi): an Avalon-MM slave,
an AXI4 slave and a driver of the compute side's memory port, each serving or checking one side.

Every model is a plain-Python cycle model, so that one implementation of the protocol rules runs
in both harnesses, cocotb (`run_cocotb`, used by sim/rtl/tb_adapters.py under Verilator) and
the Amaranth simulator (tests/hw/mem/test_adapters.py):

    model.drive() -> {signal name: int}   the model's outputs for this cycle; decided before it
                                          sees this cycle's inputs (so `ready` never waits for
                                          `valid`, which both protocols allow)
    model.sample(get)                     `get(name) -> int` reads a settled signal of this cycle;
                                          the model takes the transfers of the clock edge
    model.quiet() -> {name: int}          outputs during reset (no offers, no readies)
    model.done                            nothing left to do

Signal names are the Verilog port names of the adapter (`port__cmd__valid`, `bus__araddr`, ...);
payloads are the packed integers (amaranth.lib.data layouts: the first field in the low bits).

The slaves serve a `SparseMemory` (lines that were never written read as a seeded hash of their
address) with random waitrequest / ready pauses and random read latency, and raise
`ProtocolError` on a violation:

* Avalon-MM (`AvalonSlave`): read and write never together; command, address, burstcount,
  writedata and byteenable held while waitrequest; burstcount in 1..max_burst (and, with
  `aligned`, no burst across a multiple of max_burst); address and burstcount equal on every word
  of a write burst and no read inside one; read words in flight <= max_pending. Reads take their
  data when accepted, writes apply word by word when accepted (Avalon's in-order semantics), and
  read data comes back in order after the latency, with random gaps.
* AXI4 (`Axi4Slave`): on AR, AW and W valid is held until ready with a stable payload; INCR
  bursts of size log2(beat_bytes), beat-aligned addresses, no burst across 4 KB, at most
  `max_burst` beats; wlast exactly on the last beat of the matching AW burst (W may run ahead
  of AW, or, with `w_after_aw`, wait for it); read beats outstanding <= max_pending. Channels are
  served independently, as a real controller may: a read takes its data when its R beat is first
  offered and a write is applied when its B response is first offered, so with the ordering
  checks off an adapter that does not fence would read stale or too-new data; with them on, an AR
  while an earlier write awaits its B, or an AW while read beats are outstanding (`check_war`),
  raises at once. `error_r` / `error_b` inject SLVERR on that R beat / B response (0-based).

`PortDriver` drives the port: commands and write beats with seeded idle cycles, read beats taken
under seeded backpressure; it checks every read beat against the data expected in command order
(`make_traffic` builds a random command mix with the expected read data from a shadow memory)
and the hold rule on `rd`.
"""
from __future__ import annotations

import random
from collections import deque

from sim.tb.dram import byte_mask

__all__ = ["Axi4Slave", "AvalonSlave", "PortDriver", "ProtocolError", "SparseMemory", "Traffic",
           "make_traffic", "run_cocotb"]

_M64 = (1 << 64) - 1


class ProtocolError(AssertionError):
    """A bus rule was broken (or read data differs)."""


def _mix(x: int) -> int:
    """splitmix64's finaliser."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class SparseMemory:
    """Lines of `beat` bytes as ints (byte i in bits 8i..8i+7); unwritten lines read as a hash."""

    def __init__(self, beat: int, seed: int = 0):
        self.beat = beat
        self.seed = seed
        self.lines: dict[int, int] = {}
        self._full = (1 << (8 * beat)) - 1

    def init(self, line: int) -> int:
        v = 0
        for k in range((self.beat + 7) // 8):
            v |= _mix((self.seed << 40) ^ (line << 4) ^ k) << (64 * k)
        return v & self._full

    def read(self, line: int) -> int:
        v = self.lines.get(line)
        return self.init(line) if v is None else v

    def write(self, line: int, data: int, mask: int) -> None:
        if mask == 0:
            return
        bits = self._full if mask == (1 << self.beat) - 1 else byte_mask(mask & ((1 << self.beat) - 1), self.beat)
        self.lines[line] = (self.read(line) & ~bits) | (data & bits)


class _Hold:
    """A source's hold rule: offered (valid) and not taken (ready low) -> same offer next cycle."""

    def __init__(self, name: str):
        self.name = name
        self.held = None

    def __call__(self, valid: int, ready: int, payload) -> None:
        if self.held is not None:
            if not valid:
                raise ProtocolError(f"{self.name}: valid dropped before ready")
            if payload != self.held:
                raise ProtocolError(f"{self.name}: payload changed while stalled: {self.held} -> {payload}")
        self.held = payload if valid and not ready else None


class _Gaps:
    """Seeded geometric pauses before each transfer (p = probability of one more idle cycle)."""

    def __init__(self, rng: random.Random, p: float):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"pause probability must be in [0, 1), got {p!r}")
        self.rng, self.p = rng, p

    def next(self) -> int:
        n = 0
        while self.p and self.rng.random() < self.p:
            n += 1
        return n

    def stall(self) -> bool:
        return bool(self.p) and self.rng.random() < self.p


# -- traffic -------------------------------------------------------------------------------------

class Traffic:
    """A command list for the port: `commands` [(line, len, write)], `wr_beats` [(data, mask)] of
    all writes in order, `rd_beats` the expected data of all reads in order, `final` the shadow
    memory after all commands (in command order)."""

    def __init__(self, beat: int, seed: int):
        self.beat = beat
        self.commands: list[tuple[int, int, int]] = []
        self.wr_beats: list[tuple[int, int]] = []
        self.rd_beats: list[int] = []
        self.final = SparseMemory(beat, seed)

    def add(self, line: int, n: int, write: bool, rng: random.Random) -> None:
        self.commands.append((line, n, int(write)))
        mem = self.final
        for k in range(n):
            if write:
                data = rng.getrandbits(8 * self.beat)
                r = rng.random()
                mask = (1 << self.beat) - 1 if r < 0.6 else 0 if r < 0.65 else rng.getrandbits(self.beat)
                self.wr_beats.append((data, mask))
                mem.write(line + k, data, mask)
            else:
                self.rd_beats.append(mem.read(line + k))


def make_traffic(rng: random.Random, beat: int, n: int, *, mem_seed: int = 0, max_len: int = 300,
                 base: int = 0, region_bytes: int = 1 << 16, p_write: float = 0.4,
                 long_share: float = 0.3) -> Traffic:
    """`n` random commands in `region_bytes` from line `base` (so commands overlap and cross 4 KB
    pages): lengths mostly 1..16, a `long_share` of them up to `max_len`; 40 % writes by default."""
    region = max(1, region_bytes // beat)
    t = Traffic(beat, mem_seed)
    for _ in range(n):
        r = rng.random()
        length = rng.randint(1, max_len) if r < long_share else rng.randint(1, min(16, max_len))
        line = base + rng.randrange(region)
        t.add(line, length, rng.random() < p_write, rng)
    return t


# -- the port side -------------------------------------------------------------------------------

class PortDriver:
    """Drives MemPortSignature(beat) (`prefix` = "port__") with `traffic`; `p_cmd`, `p_wr`: idle
    cycles before each command / write beat; `p_rd`: backpressure on read beats."""

    def __init__(self, traffic: Traffic, line_bits: int, rng: random.Random, *, p_cmd: float = 0.0,
                 p_wr: float = 0.0, p_rd: float = 0.0, len_bits: int = 16, prefix: str = "port__"):
        self.t = traffic
        self.beat = traffic.beat
        self.lb, self.len_bits = line_bits, len_bits
        self.pre = prefix
        self.g_cmd, self.g_wr, self.g_rd = _Gaps(rng, p_cmd), _Gaps(rng, p_wr), _Gaps(rng, p_rd)
        self.ci = self.wi = self.ri = 0
        self.cmd_wait, self.wr_wait = self.g_cmd.next(), self.g_wr.next()
        self.cmd_on = self.wr_on = False
        self.rd_ready = 0
        self.hold_rd = _Hold("port.rd")
        self.cycle = 0
        self.rd_cycles: list[int] = []

    def quiet(self) -> dict[str, int]:
        p = self.pre
        return {f"{p}cmd__valid": 0, f"{p}wr__valid": 0, f"{p}rd__ready": 0}

    @property
    def done(self) -> bool:
        t = self.t
        return self.ci == len(t.commands) and self.wi == len(t.wr_beats) and self.ri == len(t.rd_beats)

    def drive(self) -> dict[str, int]:
        out, p = {}, self.pre
        if not self.cmd_on and self.ci < len(self.t.commands):
            if self.cmd_wait:
                self.cmd_wait -= 1
            else:
                line, n, w = self.t.commands[self.ci]
                out[f"{p}cmd__payload"] = line | (n << self.lb) | (w << (self.lb + self.len_bits))
                self.cmd_on = True
        out[f"{p}cmd__valid"] = int(self.cmd_on)
        if not self.wr_on and self.wi < len(self.t.wr_beats):
            if self.wr_wait:
                self.wr_wait -= 1
            else:
                data, mask = self.t.wr_beats[self.wi]
                out[f"{p}wr__payload"] = data | (mask << (8 * self.beat))
                self.wr_on = True
        out[f"{p}wr__valid"] = int(self.wr_on)
        self.rd_ready = int(not self.g_rd.stall())
        out[f"{p}rd__ready"] = self.rd_ready
        return out

    def sample(self, get) -> None:
        p = self.pre
        self.cycle += 1
        if self.cmd_on and get(f"{p}cmd__ready"):
            self.cmd_on = False
            self.ci += 1
            self.cmd_wait = self.g_cmd.next()
        if self.wr_on and get(f"{p}wr__ready"):
            self.wr_on = False
            self.wi += 1
            self.wr_wait = self.g_wr.next()
        valid = get(f"{p}rd__valid")
        data = get(f"{p}rd__payload") if valid else None
        self.hold_rd(valid, self.rd_ready, data)
        if valid and self.rd_ready:
            if self.ri >= len(self.t.rd_beats):
                raise ProtocolError(f"port.rd: read beat {self.ri} more than the {len(self.t.rd_beats)} asked for")
            want = self.t.rd_beats[self.ri]
            if data != want:
                raise ProtocolError(f"port.rd: read beat {self.ri} (command order) is {data:#x}, expected {want:#x}")
            self.ri += 1
            self.rd_cycles.append(self.cycle)


# -- Avalon-MM -----------------------------------------------------------------------------------

class AvalonSlave:
    """An Avalon-MM agent with bursts over `mem` (word = line); see the module docstring."""

    def __init__(self, mem: SparseMemory, rng: random.Random, *, max_burst: int, max_pending: int,
                 p_wait: float = 0.0, latency: tuple[int, int] = (1, 1), p_gap: float = 0.0,
                 aligned: bool = False, prefix: str = "bus__"):
        self.mem, self.rng = mem, rng
        self.beat = mem.beat
        self.max_burst, self.max_pending = max_burst, max_pending
        self.p_wait, self.latency, self.p_gap, self.aligned = p_wait, latency, p_gap, aligned
        self.pre = prefix
        self.cycle = 0
        self.wait = 0
        self.held = None
        self.wburst = None                  # [address, burstcount, words taken]
        self.returns: deque = deque()       # [cycle due, data]
        self.rdv = 0
        self.in_flight = 0
        self.max_seen = 0
        self.bursts = self.read_words = self.write_words = 0

    def quiet(self) -> dict[str, int]:
        return {f"{self.pre}waitrequest": 1, f"{self.pre}readdatavalid": 0}

    @property
    def done(self) -> bool:
        return not self.returns and self.wburst is None

    def drive(self) -> dict[str, int]:
        p = self.pre
        self.wait = int(bool(self.p_wait) and self.rng.random() < self.p_wait)
        out = {f"{p}waitrequest": self.wait}
        self.rdv = 0
        if self.returns and self.returns[0][0] <= self.cycle and not (self.p_gap and self.rng.random() < self.p_gap):
            self.rdv = 1
            out[f"{p}readdata"] = self.returns[0][1]
        out[f"{p}readdatavalid"] = self.rdv
        return out

    def _check_burst(self, addr: int, count: int, what: str) -> None:
        if not 1 <= count <= self.max_burst:
            raise ProtocolError(f"avalon: {what} burstcount {count} outside 1..{self.max_burst}")
        if self.aligned and addr // self.max_burst != (addr + count - 1) // self.max_burst:
            raise ProtocolError(f"avalon: {what} burst of {count} at {addr:#x} crosses a "
                                f"{self.max_burst}-word boundary")

    def sample(self, get) -> None:
        p = self.pre
        self.cycle += 1
        rd, wr = get(f"{p}read"), get(f"{p}write")
        if rd and wr:
            raise ProtocolError("avalon: read and write asserted together")
        offer = None
        if rd or wr:
            addr, count = get(f"{p}address"), get(f"{p}burstcount")
            offer = (rd, wr, addr, count) + ((get(f"{p}writedata"), get(f"{p}byteenable")) if wr else ())
        if self.held is not None and offer != self.held:
            raise ProtocolError(f"avalon: command changed under waitrequest: {self.held[:4]} -> "
                                f"{offer[:4] if offer else 'nothing'}")
        self.held = offer if offer is not None and self.wait else None
        if self.wburst is not None and rd:
            raise ProtocolError("avalon: read inside a write burst")
        if rd:
            self._check_burst(addr, count, "read")
            if not self.wait:
                self.in_flight += count
                self.max_seen = max(self.max_seen, self.in_flight)
                if self.in_flight > self.max_pending:
                    raise ProtocolError(f"avalon: {self.in_flight} read words in flight > {self.max_pending}")
                due = self.cycle + self.rng.randint(*self.latency)
                for k in range(count):
                    self.returns.append([due, self.mem.read(addr + k)])
                self.bursts += 1
        if wr:
            if self.wburst is None:
                self._check_burst(addr, count, "write")
            elif (addr, count) != tuple(self.wburst[:2]):
                raise ProtocolError(f"avalon: address/burstcount changed inside a write burst: "
                                    f"{tuple(self.wburst[:2])} -> {(addr, count)}")
            if not self.wait:
                if self.wburst is None:
                    self.wburst = [addr, count, 0]
                    self.bursts += 1
                self.mem.write(addr + self.wburst[2], offer[4], offer[5])
                self.write_words += 1
                self.wburst[2] += 1
                if self.wburst[2] == count:
                    self.wburst = None
        if self.rdv:
            self.returns.popleft()
            self.in_flight -= 1
            self.read_words += 1


# -- AXI4 ----------------------------------------------------------------------------------------

class Axi4Slave:
    """An AXI4 slave over `mem` with independent channels; see the module docstring."""

    RESP_OKAY, RESP_SLVERR = 0, 2

    def __init__(self, mem: SparseMemory, rng: random.Random, *, max_pending: int, max_burst: int = 256,
                 p_ready: float = 0.0, p_gap: float = 0.0, latency: tuple[int, int] = (1, 1),
                 w_after_aw: bool = False, check_raw: bool = True, check_war: bool = True,
                 error_r: int | None = None, error_b: int | None = None, prefix: str = "bus__"):
        self.mem, self.rng = mem, rng
        self.beat = mem.beat
        self.size = self.beat.bit_length() - 1
        self.max_pending, self.max_burst = max_pending, max_burst
        self.p_ready, self.p_gap, self.latency = p_ready, p_gap, latency
        self.w_after_aw, self.check_raw, self.check_war = w_after_aw, check_raw, check_war
        self.error_r, self.error_b = error_r, error_b
        self.pre = prefix
        self.cycle = 0
        self.hold = {ch: _Hold(f"axi.{ch}") for ch in ("ar", "aw", "w")}
        self.ready = {"ar": 0, "aw": 0, "w": 0}
        self.reads: deque = deque()         # [due, line, beats, next beat, id]
        self.r_offer = None                 # (data, last, id, resp)
        self.r_count = 0
        self.rd_out = 0                     # read beats accepted on AR and not yet taken on R
        self.max_rd_out = 0
        self.aw_lens: list[int] = []        # beats of every AW burst, in order
        self.aw_wait: deque = deque()       # AW bursts without their complete W burst: (line, beats, id)
        self.w_done: deque = deque()        # complete W bursts without their AW: [(data, strb)]
        self.w_cur: list = []
        self.w_bursts = 0                   # W bursts completed
        self.b_queue: deque = deque()       # [due, line, beats, id, W beats]
        self.b_offer = None                 # (id, resp)
        self.b_count = 0
        self.wr_out = 0                     # AW bursts accepted and their B not yet taken
        self.max_wr_out = 0
        self.ar_bursts = self.aw_bursts = self.read_beats = self.write_beats = 0

    def quiet(self) -> dict[str, int]:
        return {f"{self.pre}{n}": 0 for n in ("arready", "awready", "wready", "rvalid", "bvalid")}

    @property
    def done(self) -> bool:
        return (not self.reads and self.r_offer is None and not self.aw_wait and not self.w_done
                and not self.w_cur and not self.b_queue and self.b_offer is None)

    def _stall(self, p: float) -> bool:
        return bool(p) and self.rng.random() < p

    def drive(self) -> dict[str, int]:
        p = self.pre
        out = {}
        self.ready["ar"] = int(not self._stall(self.p_ready))
        self.ready["aw"] = int(not self._stall(self.p_ready))
        w_ok = not self.w_after_aw or len(self.aw_lens) > self.w_bursts
        self.ready["w"] = int(w_ok and not self._stall(self.p_ready))
        for ch in ("ar", "aw", "w"):
            out[f"{p}{ch}ready"] = self.ready[ch]
        if self.r_offer is None and self.reads and self.reads[0][0] <= self.cycle and not self._stall(self.p_gap):
            _, line, n, k, rid = self.reads[0]
            resp = self.RESP_SLVERR if self.r_count == self.error_r else self.RESP_OKAY
            self.r_offer = (self.mem.read(line + k), int(k == n - 1), rid, resp)
        if self.r_offer is not None:
            data, last, rid, resp = self.r_offer
            out.update({f"{p}rdata": data, f"{p}rlast": last, f"{p}rid": rid, f"{p}rresp": resp})
        out[f"{p}rvalid"] = int(self.r_offer is not None)
        if self.b_offer is None and self.b_queue and self.b_queue[0][0] <= self.cycle and not self._stall(self.p_gap):
            _, line, n, bid, beats = self.b_queue[0]
            for k, (data, strb) in enumerate(beats):       # the write is done when B is offered
                self.mem.write(line + k, data, strb)
            resp = self.RESP_SLVERR if self.b_count == self.error_b else self.RESP_OKAY
            self.b_offer = (bid, resp)
        if self.b_offer is not None:
            out.update({f"{p}bid": self.b_offer[0], f"{p}bresp": self.b_offer[1]})
        out[f"{p}bvalid"] = int(self.b_offer is not None)
        return out

    def _check_burst(self, ch: str, addr: int, length: int, size: int, burst: int) -> int:
        n = length + 1
        if burst != 1:
            raise ProtocolError(f"axi.{ch}: burst type {burst}, expected INCR (1)")
        if size != self.size:
            raise ProtocolError(f"axi.{ch}: size {size}, expected {self.size} ({self.beat} bytes)")
        if addr % self.beat:
            raise ProtocolError(f"axi.{ch}: address {addr:#x} not aligned to {self.beat} bytes")
        if n > self.max_burst:
            raise ProtocolError(f"axi.{ch}: burst of {n} beats > {self.max_burst}")
        if addr % 4096 + n * self.beat > 4096:
            raise ProtocolError(f"axi.{ch}: burst of {n} beats at {addr:#x} crosses a 4 KB boundary")
        return n

    def _request(self, get, ch: str):
        p = self.pre
        valid = get(f"{p}{ch}valid")
        payload = tuple(get(f"{p}{ch}{f}") for f in ("addr", "len", "size", "burst", "id")) if valid else None
        self.hold[ch](valid, self.ready[ch], payload)
        return payload if valid and self.ready[ch] else None

    def _match(self) -> None:
        while self.aw_wait and self.w_done:
            line, n, awid = self.aw_wait.popleft()
            beats = self.w_done.popleft()
            if len(beats) != n:
                raise ProtocolError(f"axi.w: wlast after {len(beats)} beats of a {n}-beat AW burst")
            self.b_queue.append([self.cycle + self.rng.randint(*self.latency), line, n, awid, beats])

    def sample(self, get) -> None:
        p = self.pre
        self.cycle += 1
        ar = self._request(get, "ar")
        if ar is not None:
            addr, length, size, burst, arid = ar
            n = self._check_burst("ar", addr, length, size, burst)
            if self.check_raw and self.wr_out:
                raise ProtocolError(f"axi.ar: read issued while {self.wr_out} earlier write burst(s) await B")
            self.rd_out += n
            self.max_rd_out = max(self.max_rd_out, self.rd_out)
            if self.rd_out > self.max_pending:
                raise ProtocolError(f"axi.ar: {self.rd_out} read beats outstanding > {self.max_pending}")
            self.reads.append([self.cycle + self.rng.randint(*self.latency), addr // self.beat, n, 0, arid])
            self.ar_bursts += 1
        aw = self._request(get, "aw")
        if aw is not None:
            addr, length, size, burst, awid = aw
            n = self._check_burst("aw", addr, length, size, burst)
            if self.check_war and self.rd_out:
                raise ProtocolError(f"axi.aw: write issued while {self.rd_out} earlier read beat(s) are outstanding")
            self.aw_lens.append(n)
            self.aw_wait.append((addr // self.beat, n, awid))
            self.wr_out += 1
            self.max_wr_out = max(self.max_wr_out, self.wr_out)
            self.aw_bursts += 1
        wvalid = get(f"{p}wvalid")
        w = (get(f"{p}wdata"), get(f"{p}wstrb"), get(f"{p}wlast")) if wvalid else None
        self.hold["w"](wvalid, self.ready["w"], w)
        if wvalid and self.ready["w"]:
            data, strb, last = w
            self.w_cur.append((data, strb))
            self.write_beats += 1
            if len(self.aw_lens) > self.w_bursts:          # the AW of this burst is known: check wlast now
                n = self.aw_lens[self.w_bursts]
                if bool(last) != (len(self.w_cur) == n) or len(self.w_cur) > n:
                    raise ProtocolError(f"axi.w: wlast = {last} on beat {len(self.w_cur) - 1} of a {n}-beat burst")
            if last:
                self.w_done.append(self.w_cur)
                self.w_cur = []
                self.w_bursts += 1
        self._match()
        if self.r_offer is not None and get(f"{p}rready"):
            self.r_offer = None
            self.r_count += 1
            self.read_beats += 1
            self.rd_out -= 1
            rd = self.reads[0]
            rd[3] += 1
            if rd[3] == rd[2]:
                self.reads.popleft()
        if self.b_offer is not None and get(f"{p}bready"):
            self.b_offer = None
            self.b_count += 1
            self.b_queue.popleft()
            self.wr_out -= 1


# -- cocotb harness ------------------------------------------------------------------------------

async def run_cocotb(dut, models: list, *, max_cycles: int = 2_000_000, reset_cycles: int = 3) -> int:
    """Reset `dut` (ports `clk`, `rst`; the clock must be running), then step `models` once per
    clock until all are done; returns the cycles. Raises ProtocolError after `max_cycles`."""
    from cocotb.triggers import FallingEdge, ReadOnly

    handles: dict = {}

    def handle(name: str):
        h = handles.get(name)
        if h is None:
            h = handles[name] = getattr(dut, name)
        return h

    def get(name: str) -> int:
        return int(handle(name).value)

    last: dict[str, int] = {}
    dut.rst.value = 1
    for m in models:
        for name, v in m.quiet().items():
            handle(name).value = last[name] = v
    for _ in range(reset_cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    cycles = 0
    while not all(m.done for m in models):
        await FallingEdge(dut.clk)
        for m in models:
            for name, v in m.drive().items():
                if last.get(name) != v:
                    handle(name).value = v
                    last[name] = v
        await ReadOnly()
        for m in models:
            m.sample(get)
        cycles += 1
        if cycles > max_cycles:
            busy = [type(m).__name__ for m in models if not m.done]
            raise ProtocolError(f"not done after {max_cycles} cycles: {busy}")
    return cycles

