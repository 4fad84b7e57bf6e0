"""The ``amaranth`` backend of the Device API (sw/device.py): hw.top.Accelerator in the Amaranth
simulator, a RAM model behind its memory port and one greedy token host per core.

    from sw.device import open_device
    cfg = sim.fuzz.fuzz_config("b8")                 # a small core: the simulator is slow
    img = sw.artifacts.random_image(cfg, spec.models.MICRO)
    dev = open_device("amaranth", img, cfg.with_cores(2), stall={"seed": 1, "rd": 0.3})
    run = dev.generate([[1, 17], [5]], n_new=3)      # tokens, states, cycles, as every backend

Meant for small configs (few lanes, a reduced vlen) and small models. Measured (CPU time of the
simulation on this machine; `Run.stats` has each run's figure):

    config                       model                     cycles / token step   cycles / s
    sim.fuzz "b8" (1 lane)       MICRO                     ~3,500                ~1,700 (2 cores ~1,000)
    ecp5, vlen 256 (4 lanes)     tiny preset               ~7,700                ~500
    ecp5, vlen 512               demo (4 layers, d 192)    ~38,600               ~350
    ddr4, vlen 256 (16 lanes)    tiny preset               ~5,900                ~200

Nearly all of it is the simulator evaluating the design (every synchronous signal is updated in
every cycle); a token step costs ~3,000 cycles even for a one-layer model. sw.artifacts.random_image
writes a model with seeded random parameters (numpy only, through sw.export) for any config's
packing and beat; spec.models.MICRO is the smallest model the compiler takes on beats up to 16.

The bench
---------
* The design is the Accelerator (`cores` cores; the ROM written through `rom_wr` while the reset
  is held, or built in with the option ``rom_wr=False``) inside a module with an explicit
  ``sync`` domain. One Simulator per device, `Simulator.reset()` between runs (elaboration and
  the simulator's compilation take seconds).
* Memory map (the same as sim/rtl/tb_accel.py and golden.machine): the image file's bytes at address
  0, core k's state region at ``state_base + k * state_bytes``; ``state_base`` is the image
  file's size (a multiple of the beat). The accelerator's `state_base` and `state_stride` inputs
  get these addresses in lines (beats).
* The RAM (`RamPort`) serves hw/mem/port.py's protocol as sim/rtl/tb_accel.py does: at most 4
  accepted commands outstanding, served in command order (a read sees every earlier write); a
  read command's first beat is offered the cycle after it was accepted, then one per cycle;
  write beats are taken one per cycle, byte masks honoured. A write into the image, an access
  past the end of memory or a command of zero beats raises DeviceError.
* Tokens: per core a golden.machine.GreedyHost with one token in flight: the next token (of the
  prompt, or the last TOKOUT) is offered only after the previous one's TOKOUT and snapshot. The
  snapshot is taken when the core waits at TOKIN (`waiting`, no unit `busy`) or has halted and
  no accepted write command to its state region is outstanding: the region is copied (sw/device.py:
  the state after token k is the region while the core waits for token k + 1) and `on_token` gets
  the event. Other cores keep running meanwhile.
* Stalls (option ``stall``, a dict as sim/rtl/tb_accel.py's: ``seed`` and the probabilities
  ``cmd``, ``rd``, ``wr``, ``tok``): seeded random cycles with `cmd.ready` low, no read beat
  offered, `wr.ready` low, no token offered, `tok_out.ready` low, one draw each per cycle.
* The run ends when every core has halted or waits at TOKIN with its host exhausted and the
  memory is idle. A core's `fault` bit, or more than `max_cycles` cycles (generate's argument,
  else the option ``max_cycles``, default 20 million), raises sw.device.DeviceError.

Speed: the bench is one Python process (the simulator's processes may not read signals outside a
trigger, so everything it needs comes from samples). The handshake and state bits it watches are
joined into one `status` signal, and `status` with the payloads it reads on a handshake into one
`probe` signal, by two lines of logic in the wrapper module: a cycle costs one sample. When
nothing can happen at the next edge without a change of `status` (the memory idle, no token
offered to a ready core, no stalls), the process sleeps until `status` changes instead of waking
at every edge, and reads the accelerator's `cycles` counter when it wakes. With the sampling
reduced to one signal the bench was ~10 % of the time; the sleep (~80 % fewer wake-ups on a model
step) saves most of that (measured ~15 % CPU on "b8"). `AmaranthDevice.sleep = False` wakes at
every edge, for a check that the timing is the same.

Run.cycles counts clock edges from the release of reset to the end; Run.token_cycles[k][s] the
cycles from step s's TOKIN handshake to its TOKOUT handshake (TokenEvent.cycle is the edge of the
TOKOUT). Run.stats, with the verilator backend's names: ``cycles``, ``wall_s`` and
``cycles_per_s`` of the simulation, ``cmds``, ``rd_beats``, ``wr_beats`` (handshakes at the
accelerator's memory port), and ``build_s`` (building the simulator; 0 when it was reused).
"""
from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from sw.device import Device, DeviceError, Run, TokenEvent

__all__ = ["AmaranthDevice", "OPTIONS", "RamPort", "STALL_KEYS", "check_stall"]

#: the keys of the ``stall`` option: a seed and four probabilities in [0, 1)
STALL_KEYS = ("seed", "cmd", "rd", "wr", "tok")
#: the options of AmaranthDevice
OPTIONS = ("stall", "max_cycles", "rom_wr")
#: accepted commands the RAM holds before it lowers cmd.ready (as sim/rtl/tb_accel.py)
MAX_OUTSTANDING = 4
DEFAULT_MAX_CYCLES = 20_000_000
#: clock period of the simulation (only the ratio to the timeout delay matters)
PERIOD = 1e-8

def check_stall(stall: dict | None) -> dict[str, float]:
    """The ``stall`` option, validated, with every key present (0 when absent)."""
    if stall is None:
        stall = {}
    if not isinstance(stall, dict):
        raise ValueError(f"stall must be a dict with keys {', '.join(STALL_KEYS)}, got {stall!r}")
    bad = sorted(set(stall) - set(STALL_KEYS))
    if bad:
        raise ValueError(f"unknown stall key(s) {', '.join(bad)}; valid: {', '.join(STALL_KEYS)}")
    out: dict[str, float] = {"seed": int(stall.get("seed", 0))}
    for k in STALL_KEYS[1:]:
        p = float(stall.get(k, 0.0))
        if not 0.0 <= p < 1.0:
            raise ValueError(f"stall probability {k} must be in [0, 1), got {p!r}")
        out[k] = p
    return out


class AmaranthDevice(Device):
    """hw.top.Accelerator in the Amaranth simulator (see the module docstring).

    Options: ``stall`` (a dict of STALL_KEYS), ``max_cycles`` (generate's default, 20 M),
    ``rom_wr`` (True, the default: the ROM is written through rom_wr under reset in every run;
    False: built into the design)."""

    backend = "amaranth"
    #: sleep through quiet cycles (see the module docstring); False: wake at every edge (a check)
    sleep = True

    def __init__(self, image, config="ddr4", *, program=None, **options):
        bad = sorted(set(options) - set(OPTIONS))
        if bad:
            raise ValueError(f"unknown option(s) {', '.join(bad)} for the amaranth backend; valid: "
                             f"{', '.join(OPTIONS)}")
        super().__init__(image, config, program=program, **options)
        self.stall = check_stall(options.get("stall"))
        mc = options.get("max_cycles")
        self.max_cycles = DEFAULT_MAX_CYCLES if mc is None else int(mc)
        self.rom_wr = bool(options.get("rom_wr", True))
        self.image_bytes = np.asarray(self.image.file_bytes(), np.uint8).tobytes()
        beat = self.config.beat_bytes
        self.state_base = len(self.image_bytes)
        if self.state_base % beat or self.state_bytes % beat:
            raise ValueError(f"the image ({self.state_base} B) and the state region ({self.state_bytes} B) must "
                             f"be whole beats of {beat} B")
        self._sim = None
        self._fresh = False             # the simulator has not run since it was built or reset
        self._job: _Job | None = None
        self.build_s = 0.0

    # -- the simulator --------------------------------------------------------------------------
    def _build(self) -> None:
        from amaranth.hdl import Cat, ClockDomain, Module, Signal
        from amaranth.sim import Simulator

        from hw.top import Accelerator

        t0 = time.perf_counter()
        acc = Accelerator(self.config, () if self.rom_wr else self.program)
        m = Module()
        m.domains.sync = self.cd = ClockDomain("sync")
        m.submodules.acc = acc
        n = self.cores
        status = [acc.mem.cmd.valid, acc.mem.rd.ready, acc.mem.wr.valid, acc.waiting, acc.busy, acc.halted,
                  acc.fault, Cat(t.ready for t in acc.tok_in), Cat(t.valid for t in acc.tok_out)]
        # `status`: the handshake and state bits the bench watches; `probe`: status and the payloads
        # it reads on a handshake, so that one sample per edge gets everything
        self.status = Signal(len(Cat(*status)))
        payloads = [acc.mem.cmd.payload.as_value(), acc.mem.wr.payload.as_value()] + [t.payload for t in acc.tok_out]
        self.probe = Signal(len(self.status) + len(Cat(*payloads)))
        m.d.comb += [self.status.eq(Cat(*status)), self.probe.eq(Cat(self.status, *payloads))]
        # field offsets in `status`
        self.st_waiting, self.st_busy, self.st_halted, self.st_fault = 3, 3 + n, 3 + 2 * n, 3 + 3 * n
        self.st_tok_in, self.st_tok_out = 3 + 4 * n, 3 + 5 * n
        # field offsets in `probe`
        self.pr_cmd = len(self.status)
        self.pr_wr = self.pr_cmd + len(payloads[0])
        self.pr_tok = self.pr_wr + len(payloads[1])
        self.tok_bits = len(acc.tok_out[0].payload)
        self.acc = acc
        sim = Simulator(m)
        sim.add_clock(PERIOD)
        sim.add_process(self._process)
        self._sim = sim
        self._fresh = True
        self.build_s = time.perf_counter() - t0

    def _generate(self, prompts, n_new, on_token, capture_state, max_cycles):
        from golden.machine import GreedyHost

        build_s = 0.0
        if self._sim is None:
            self._build()
            build_s = self.build_s
        elif not self._fresh:
            self._sim.reset()
        job = _Job(self, [GreedyHost(p, n_new) for p in prompts], on_token, capture_state,
                   self.max_cycles if max_cycles is None else int(max_cycles))
        self._job = job
        self._fresh = False
        t0 = time.perf_counter()
        try:
            self._sim.run()
        finally:
            self._job = None
        wall = time.perf_counter() - t0
        if job.error is not None:
            raise job.error
        if not job.finished:
            raise DeviceError("the simulation stopped before the run ended (internal error)")
        stats = {"cycles": job.cycle, "wall_s": wall, "cycles_per_s": job.cycle / wall if wall else 0.0,
                 "cmds": job.ram.commands, "rd_beats": job.ram.read_beats, "wr_beats": job.ram.write_beats,
                 "build_s": build_s}
        return Run(self.backend, prompts, n_new, [h.outputs for h in job.hosts], job.states, job.latency,
                   job.cycle, stats)

    def close(self) -> None:
        """Drop the simulator (the next run builds it again)."""
        self._sim = None
        self._job = None

    async def _process(self, ctx) -> None:
        job = self._job
        if job is None:                 # the process of a freshly reset simulator, before a run
            return
        with ctx.critical():
            try:
                await job.run(ctx)
                job.finished = True
            except DeviceError as e:
                job.error = e


class RamPort:
    """The RAM behind a hw/mem/port.py port: accepted commands in a queue over a bytearray. The
    bench drives the port from it and reports each handshake (`accept`, `read_done`, `write`)."""

    def __init__(self, mem: bytearray, beat: int, writable_from: int):
        self.mem = mem
        self.beat = beat
        self.lines = len(mem) // beat
        self.ro_lines = writable_from // beat          # lines below this are read-only (the image)
        self.full = (1 << beat) - 1
        self.q: deque[list[int]] = deque()             # [next line, beats left, write]
        self.commands = self.read_beats = self.write_beats = 0

    def accept(self, line: int, n: int, write: int) -> None:
        if n < 1:
            raise DeviceError(f"a memory command of zero beats at line {line}")
        if line + n > self.lines:
            raise DeviceError(f"a memory {'write' if write else 'read'} of lines [{line}, {line + n}) past the end "
                              f"of memory ({self.lines} lines of {self.beat} B)")
        if write and line < self.ro_lines:
            raise DeviceError(f"a memory write at line {line}, inside the weight image (lines < {self.ro_lines})")
        self.q.append([line, n, write])
        self.commands += 1

    def head_beat(self) -> int:
        """The data of the head read command's next beat."""
        a = self.q[0][0] * self.beat
        return int.from_bytes(self.mem[a:a + self.beat], "little")

    def read_done(self) -> None:
        self.read_beats += 1
        self._advance()

    def write(self, data: int, mask: int) -> None:
        a = self.q[0][0] * self.beat
        if mask == self.full:
            self.mem[a:a + self.beat] = data.to_bytes(self.beat, "little")
        elif mask:
            raw = data.to_bytes(self.beat, "little")
            for i in range(self.beat):
                if (mask >> i) & 1:
                    self.mem[a + i] = raw[i]
        self.write_beats += 1
        self._advance()

    def _advance(self) -> None:
        head = self.q[0]
        head[0] += 1
        head[1] -= 1
        if head[1] == 0:
            self.q.popleft()

    def writes_to(self, lo: int, hi: int) -> bool:
        """Whether an accepted write command still has beats for lines [lo, hi)."""
        return any(w and line < hi and line + n > lo for line, n, w in self.q)


class _Job:
    """One generate() call: the hosts, the RAM, the results, and the bench coroutine."""

    def __init__(self, dev: AmaranthDevice, hosts: list, on_token: Callable[[TokenEvent], None] | None,
                 capture_state: bool, max_cycles: int):
        self.dev = dev
        self.hosts = hosts
        self.on_token = on_token
        self.capture_state = capture_state
        self.max_cycles = max_cycles
        n = dev.cores
        mem = bytearray(dev.image_bytes) + bytearray(dev.state_bytes * n)
        self.ram = RamPort(mem, dev.config.beat_bytes, dev.state_base)
        self.states: list[list[bytes]] = [[] for _ in range(n)]
        self.latency: list[list[int | None]] = [[] for _ in range(n)]
        self.cycle = 0
        self.finished = False
        self.error: DeviceError | None = None

    async def run(self, ctx) -> None:
        dev, acc, ram, hosts = self.dev, self.dev.acc, self.ram, self.hosts
        n = dev.cores
        beat = dev.config.beat_bytes
        st = dev.stall
        rng = random.Random(st["seed"])
        p_cmd, p_rd, p_wr, p_tok = st["cmd"], st["rd"], st["wr"], st["tok"]
        stalled = bool(p_cmd or p_rd or p_wr or p_tok)
        sbytes = dev.state_bytes
        sb_line, stride = dev.state_base // beat, sbytes // beat

        # -- reset and ROM ----------------------------------------------------------------------
        ctx.set(dev.cd.rst, 1)
        ctx.set(acc.state_base, sb_line)
        ctx.set(acc.state_stride, stride)
        if dev.rom_wr:
            wr = acc.rom_wr
            ctx.set(wr.en, 1)
            for a in range(dev.config.rom_words):
                ctx.set(wr.addr, a)
                ctx.set(wr.data, dev.program[a] if a < len(dev.program) else 0)
                await ctx.tick()
            ctx.set(wr.en, 0)
        await ctx.tick()
        ctx.set(dev.cd.rst, 0)
        # after this, edge c (1, 2, ...) is the c-th edge out of reset and acc.cycles == c after it

        # -- signals and their fields ---------------------------------------------------------------
        mem, status = acc.mem, dev.status
        rd_data = mem.rd.payload.data
        line_bits, len_bits = len(mem.cmd.payload.addr), len(mem.cmd.payload.len)
        line_mask, len_mask = (1 << line_bits) - 1, (1 << len_bits) - 1
        data_bits = 8 * beat
        data_mask = (1 << data_bits) - 1
        o_cmd, o_wr, o_tok = dev.pr_cmd, dev.pr_wr, dev.pr_tok
        wr_mask = (1 << (9 * beat)) - 1
        tok_bits = dev.tok_bits
        tok_mask = (1 << tok_bits) - 1
        o_wait, o_busy, o_halt, o_fault = dev.st_waiting, dev.st_busy, dev.st_halted, dev.st_fault
        o_tin, o_tout = dev.st_tok_in, dev.st_tok_out
        core_mask = (1 << n) - 1
        tok_in, tok_out = acc.tok_in, acc.tok_out
        q = ram.q
        regions = [(sb_line + k * stride, sb_line + (k + 1) * stride) for k in range(n)]
        tick = ctx.tick().sample(dev.probe)
        wake = ctx.changed(status)
        max_cycles = self.max_cycles

        # -- what the bench drives in this cycle ------------------------------------------------------
        cmd_ready = rd_valid = rd_hw = wr_ready = 0
        offering = [False] * n      # a token offered on tok_in[k]
        in_hw = [False] * n         # tok_in[k].valid as driven
        out_ready = [0] * n         # tok_out[k].ready as driven
        exhausted = [False] * n     # the host had no token to give (until the next TOKOUT)
        snap = [False] * n          # a TOKOUT whose snapshot is still to be taken
        tokin_cycle = [0] * n
        tokout = [(0, 0)] * n       # (edge, token) of the last TOKOUT

        def drive() -> bool:
            """Set the inputs for the next edge; True when a host was asked for a token."""
            nonlocal cmd_ready, rd_valid, rd_hw, wr_ready
            asked = False
            want = 1 if len(q) < MAX_OUTSTANDING and not (p_cmd and rng.random() < p_cmd) else 0
            if want != cmd_ready:
                ctx.set(mem.cmd.ready, want)
                cmd_ready = want
            if not rd_valid and q and not q[0][2] and not (p_rd and rng.random() < p_rd):
                ctx.set(rd_data, ram.head_beat())
                rd_valid = 1
            if rd_valid != rd_hw:
                ctx.set(mem.rd.valid, rd_valid)
                rd_hw = rd_valid
            want = 1 if q and q[0][2] and not (p_wr and rng.random() < p_wr) else 0
            if want != wr_ready:
                ctx.set(mem.wr.ready, want)
                wr_ready = want
            for k in range(n):
                if not offering[k] and not snap[k] and not exhausted[k] and hosts[k].fed == len(hosts[k].outputs) \
                        and not (p_tok and rng.random() < p_tok):
                    asked = True
                    tok = hosts[k].next_token()
                    if tok is None:
                        exhausted[k] = True
                    else:
                        ctx.set(tok_in[k].payload, tok)
                        offering[k] = True
                if offering[k] != in_hw[k]:
                    ctx.set(tok_in[k].valid, offering[k])
                    in_hw[k] = offering[k]
                want = 0 if p_tok and rng.random() < p_tok else 1
                if want != out_ready[k]:
                    ctx.set(tok_out[k].ready, want)
                    out_ready[k] = want
            return asked

        drive()
        cycle = 0
        while True:
            _, _, s = await tick                      # s: `probe` just before edge `cycle`
            cycle += 1
            active = False                            # a handshake or a host call at this edge
            # -- memory (ctx.get reads the values from before the edge, as `sample` does) --
            if rd_valid and (s >> 1) & 1:
                ram.read_done()
                rd_valid = 0
                active = True
            if wr_ready and (s >> 2) & 1:
                w = (s >> o_wr) & wr_mask
                ram.write(w & data_mask, w >> data_bits)
                active = True
            if cmd_ready and s & 1:
                c = s >> o_cmd
                ram.accept(c & line_mask, (c >> line_bits) & len_mask, (c >> (line_bits + len_bits)) & 1)
                active = True
            waiting, busy, halted = (s >> o_wait) & core_mask, (s >> o_busy) & core_mask, (s >> o_halt) & core_mask
            # -- tokens and snapshots --
            for k in range(n):
                if offering[k] and (s >> (o_tin + k)) & 1:
                    offering[k] = False
                    tokin_cycle[k] = cycle
                    active = True
                if out_ready[k] and (s >> (o_tout + k)) & 1:
                    tok = (s >> (o_tok + tok_bits * k)) & tok_mask
                    tok -= (tok >> (tok_bits - 1)) << tok_bits       # signed
                    hosts[k].put_token(tok)
                    self.latency[k].append(cycle - tokin_cycle[k])
                    tokout[k] = (cycle, tok)
                    snap[k] = True
                    exhausted[k] = False
                    active = True
                if snap[k] and ((halted >> k) & 1 or ((waiting >> k) & 1 and not (busy >> k) & 1)) \
                        and not ram.writes_to(*regions[k]):
                    snap[k] = False
                    active = True
                    state = None
                    if self.capture_state:
                        a = dev.state_base + k * sbytes
                        state = bytes(ram.mem[a:a + sbytes])
                        self.states[k].append(state)
                    if self.on_token is not None:
                        c, tok = tokout[k]
                        self.on_token(TokenEvent(k, len(hosts[k].outputs) - 1, tok, c, self.latency[k][-1], state))
            if (s >> o_fault) & core_mask:
                self.cycle = cycle
                bad = [k for k in range(n) if (s >> (o_fault + k)) & 1]
                raise DeviceError(f"core(s) {bad} stopped on an invalid instruction (fault) at cycle {cycle}")
            # -- done? --
            if not q:
                for k in range(n):
                    if (halted >> k) & 1:
                        continue
                    if exhausted[k] and not offering[k] and not snap[k] and (waiting >> k) & 1 \
                            and not (busy >> k) & 1 and not (s >> (o_tout + k)) & 1:
                        continue
                    break
                else:
                    self.cycle = cycle
                    return
            if cycle >= max_cycles:
                self.cycle = cycle
                raise DeviceError(f"the run did not end within max_cycles = {max_cycles} cycles (TOKOUTs so "
                                  f"far per core: {[len(h.outputs) for h in hosts]})")
            if drive():
                active = True
            # -- sleep until `status` changes when nothing can happen at the next edge without one:
            # the memory idle, no stalls, nothing sampled high that an unchanged input would take
            if not dev.sleep or stalled or active or q or s & 1 or (s >> o_tout) & core_mask:
                continue
            if any(offering[k] and (s >> (o_tin + k)) & 1 for k in range(n)):
                continue
            if any(snap[k] and ((halted >> k) & 1 or ((waiting >> k) & 1 and not (busy >> k) & 1)) for k in range(n)):
                continue
            *_, cycle = await wake.delay((max_cycles - cycle + 1) * PERIOD).sample(acc.cycles)
            # cycle: the edges so far (the next tick is edge cycle + 1)
