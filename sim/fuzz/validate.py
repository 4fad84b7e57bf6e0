"""Checked golden runs of candidate programs.

    m = _checked_machine(words, img, state_bytes)    # a GoldenMachine that checks the hardware's limits
    _run_checked(m, ListHost(tokens))                # a clean HALT with every token read, or _Reject(reason)

The checks, after every instruction: vector elements fit FX, F exponents fit SF_EXP_BITS, TMATMUL
scale exponents are >= TMM_MIN_SF_EXP. A fault, a stop other than HALT and unread tokens are rejected too.
The machine runs on golden.ops and the numpy matvec (_reference_kernels) with decodes shared
between cases (_load_rom).
"""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Sequence

import numpy as np

from golden.machine import GoldenMachine, ListHost, MachineError
from sim.fuzz.config import MAX_STEPS, SF_EXP_MAX, SF_EXP_MIN, TMM_MIN_SF_EXP
from spec import isa
from spec import numerics as N
from spec import weight_image as wi


@contextlib.contextmanager
def _reference_kernels():
    """Run the golden machine on golden.ops (the definition) and the numpy matvec rather
    than the numba twins: bit-identical by contract, and for these short vectors faster (numba's
    parallel matvec costs ~16 ms a call on a 2-core host with the omp layer; ops.py's numpy paths
    take microseconds)."""
    old = os.environ.get("MMFREE_GOLDEN_KERNEL")
    os.environ["MMFREE_GOLDEN_KERNEL"] = "numpy"
    try:
        yield
    finally:
        if old is None:
            del os.environ["MMFREE_GOLDEN_KERNEL"]
        else:
            os.environ["MMFREE_GOLDEN_KERNEL"] = old


class _Reject(Exception):
    pass


@functools.lru_cache(maxsize=1 << 16)
def _decode(word: int) -> isa.Instr:
    return isa.decode(word)


def _machine(words: Sequence[int], img: wi.Image, state_bytes: int) -> GoldenMachine:
    with _reference_kernels():
        m = GoldenMachine(words, img, state_bytes=state_bytes, max_steps=MAX_STEPS)
    _load_rom(m, words)
    return m


def _load_rom(m: GoldenMachine, words: Sequence[int]) -> None:
    """(Re)load the ROM with the decodes filled in from a shared cache (the machine would decode
    each word again, at ~60 us a word; fuzz cases share most words)."""
    m.rom = [int(w) for w in words]
    m._decoded = []
    for w in m.rom:
        try:
            m._decoded.append(_decode(w))
        except isa.DecodeError:        # left to the machine, which faults when it gets there
            m._decoded.append(None)


def _checked_machine(words: Sequence[int], img: wi.Image, state_bytes: int) -> GoldenMachine:
    """A golden machine that checks the hardware's limits after every instruction."""
    m = _machine(words, img, state_bytes)

    def check(pc: int, ins: isa.Instr, eff: dict) -> None:
        for k, v in eff.items():
            if isinstance(v, np.ndarray):
                if v.size and (int(v.min()) < N.FX_MIN or int(v.max()) > N.FX_MAX):
                    raise _Reject(f"pc {pc} {ins}: {k} element outside FX")
            elif k[0] == "F":
                if v[0] and not SF_EXP_MIN <= v[1] <= SF_EXP_MAX:
                    raise _Reject(f"pc {pc} {ins}: {k} exponent {v[1]} outside the SF_EXP_BITS range")
        if ins.op.mnemonic == "TMATMUL":
            sf = m.F[ins.args[3]]
            if sf[0] and sf[1] < TMM_MIN_SF_EXP:
                raise _Reject(f"pc {pc} {ins}: scale exponent {sf[1]} < {TMM_MIN_SF_EXP}")

    m.observers.append(check)
    return m


def _run_checked(m: GoldenMachine, host: ListHost) -> None:
    try:
        with _reference_kernels():
            m.run(host)
    except _Reject:
        raise
    except MachineError as e:
        raise _Reject(f"MachineError: {e}") from None
    except Exception as e:
        raise _Reject(f"{type(e).__name__}: {e}") from None
    if m.halt_reason != "HALT":
        raise _Reject(f"MachineError: halted with {m.halt_reason!r}")
    if host.fed != len(host.inputs):
        raise _Reject(f"MachineError: {len(host.inputs) - host.fed} token(s) left unread")
