"""Static facts about a fuzz image for one config: where each load may read, which TMATMULs are
valid reads, the addresses the epilogue uses.

    info = _info(img, cfg)           # _ImageInfo, cached per image and (beat_bytes, packing, vlen)
    info.tmm_candidates(vl)          # [(Aw, rows_lo, rows_hi)]: every rows in the range is a valid [rows, vl] read
    info.ldv_windows(vl)             # word indices of 48-bit-clean windows: (with non-zero content, all)
    info.lde_windows(vl)             # halfword indices of finite-bf16 windows
    info.ldf_all                     # [(address, SF)] of finite float32 >= 0 (and subsets: window, betas, special)
"""
from __future__ import annotations

import dataclasses
import weakref

import numpy as np

from golden import ops as O
from sim.fuzz.config import OBS_EXP_WINDOW, POW2_SHIFTS, PROBE_CODES, PROBE_MATRIX
from sim.fuzz.image import probe_vl
from spec import accel
from spec import numerics as N
from spec import weight_image as wi


@dataclasses.dataclass(frozen=True)
class _Matrix:
    name: str
    start: int
    rows: int
    cols: int
    beats: np.ndarray        # packed bytes [beat, row-in-tile]
    zero_from: np.ndarray    # per beat: rows at and past this index are zero


def _runs(ok: np.ndarray) -> np.ndarray:
    """run[i] = number of consecutive True from i."""
    run = np.zeros(ok.size + 1, np.int64)
    for i in range(ok.size - 1, -1, -1):
        run[i] = run[i + 1] + 1 if ok[i] else 0
    return run[:-1]


class _ImageInfo:
    """Where each load may read, which TMATMULs are valid, for one (image, config)."""

    def __init__(self, img: wi.Image, config: accel.AccelConfig):
        if (img.packing, img.beat_bytes) != (config.packing, config.beat_bytes):
            raise ValueError(f"image packing/beat {img.packing}/{img.beat_bytes} do not match config "
                             f"{config.name} ({config.packing}/{config.beat_bytes})")
        self.img, self.cfg = img, config
        self.mem = np.asarray(img.file_bytes(), np.uint8).reshape(-1)
        self.state_base = int(self.mem.size)
        self.B, self.T = config.beat_bytes, wi.PACKINGS[config.packing]
        self.radix = {"2bit": 4, "1.6bit": 3}[config.packing]
        self.vlen = config.vlen
        self.model = img.model
        self.vl_obs = probe_vl(config.packing)
        self.matrices = []
        for t in img.tensors():
            if t.kind == "trits":
                raw = np.asarray(img.raw(t.name)).reshape(-1, self.B)
                nz = raw != 0
                zf = np.where(nz.any(1), self.B - np.argmax(nz[:, ::-1], 1), 0)
                self.matrices.append(_Matrix(t.name, img.offset(t.name), *t.shape, raw, zf))
        self.emb = (img.offset("embeddings"), *img.shape("embeddings"))
        self.gammas = [(img.offset(t.name), t.shape[0], t.name) for t in img.tensors() if t.kind == "gamma"]
        self.gates = [(img.offset(t.name), t.shape[0]) for t in img.tensors() if t.kind == "gate"]
        # gamma exponents: (address of the scalars word, value)
        self.exp_slots = []
        for (field, name), (rec, i) in img.layout.scalar_slots.items():
            if field == "gamma_exp":
                self.exp_slots.append((img.offset(rec) + 4 * i, img.gamma_exp(name)))
        l0 = img.offset("layers.0.scalars")
        self.pow2 = {s: l0 + 4 * i for i, s in enumerate(POW2_SHIFTS)}
        self.probe_aw = img.offset(PROBE_MATRIX)
        self.codes_addr = img.offset(PROBE_CODES)
        # LDV: 8-byte words that fit 48-bit signed
        w64 = self.mem.view("<i8")
        fits = (w64 >= N.FX_MIN) & (w64 <= N.FX_MAX)
        self.ldv_run = _runs(fits)
        self.nz64 = np.concatenate([[0], np.cumsum(w64 != 0)])
        # LDE: finite bf16
        u16 = self.mem.view("<u2")
        self.lde_run = _runs(((u16 >> 7) & 0xFF) != 0xFF)
        # LDF: finite float32 >= 0, with their SF values
        f32 = self.mem.view("<f4")
        with np.errstate(invalid="ignore"):
            okf = np.isfinite(f32) & ~(f32 < 0)
        idx = np.flatnonzero(okf)
        self.ldf_all = [(4 * int(i), O.sf_from_float(float(f32[i]))) for i in idx]
        u32 = self.mem.view("<u4")
        self.ldf_special = [(a, sf) for a, sf in self.ldf_all                     # -0.0, 0, denormals
                            if u32[a // 4] == 0x80000000 or (u32[a // 4] & 0x7F800000) == 0]
        neg0 = [x for x in self.ldf_special if u32[x[0] // 4] == 0x80000000]
        den = [x for x in self.ldf_special if u32[x[0] // 4] not in (0, 0x80000000)]
        zero = [x for x in self.ldf_special if u32[x[0] // 4] == 0][:4]
        self.ldf_special = neg0 * 4 + den[::max(1, len(den) // 32)] + zero
        lo, hi = OBS_EXP_WINDOW
        self.ldf_window = [(a, sf) for a, sf in self.ldf_all if sf[0] and lo <= sf[1] <= hi]
        scal = [img.offset(t.name) for t in img.tensors() if t.kind == "scalars"]
        self.ldf_betas = [(a, sf) for a, sf in self.ldf_all if any(s <= a < s + 4 * wi.SCALARS_WORDS for s in scal)
                          and sf[0]]
        self.i32 = self.mem.view("<i4")
        self._tmm: dict[int, list[tuple[int, int, int]]] = {}

    # -- TMATMUL -------------------------------------------------------------------------------------
    def tmm_candidates(self, vl: int) -> list[tuple[int, int, int]]:
        """(Aw, rows_lo, rows_hi): every rows in [rows_lo, rows_hi] is a valid [rows, vl] read."""
        c = self._tmm.get(vl)
        if c is None:
            c = self._tmm[vl] = self._compute_tmm(vl)
        return c

    def _compute_tmm(self, vl: int) -> list[tuple[int, int, int]]:
        B, g, p = self.B, -(-vl // self.T), vl % self.T
        out = []
        max_tiles = -(-self.vlen // B)
        for mat in self.matrices:
            nb = mat.beats.shape[0]
            colok = (mat.beats < self.radix ** p).all(1) if p else np.ones(nb, bool)
            for k in range(0, nb - g + 1):
                for n in range(1, max_tiles + 1):
                    end = k + n * g
                    if end > nb or not colok[end - 1]:
                        break
                    lo = (n - 1) * B + max(1, int(mat.zero_from[end - g:end].max()))
                    hi = min(n * B, self.vlen)
                    if lo <= hi:
                        out.append((mat.start + k * B, lo, hi))
        return out

    def tmm_vls(self) -> list[int]:
        """VLs that have TMATMUL candidates, preferred ones first (cached)."""
        if not hasattr(self, "_vls"):
            pref = [self.model.hidden_size, self.model.intermediate_size, self.vl_obs]
            pref += [v for v in range(self.T, self.vlen + 1, self.T)]
            pref += list(range(1, self.vlen + 1))
            seen, vls = set(), []
            for v in pref:
                if v <= self.vlen and v not in seen:
                    seen.add(v)
                    if self.tmm_candidates(v):
                        vls.append(v)
            self._vls = vls
        return self._vls

    # -- loads ---------------------------------------------------------------------------------------
    def ldv_windows(self, vl: int) -> tuple[np.ndarray, np.ndarray]:
        """Word indices of 48-bit-clean image windows of vl words: (with non-zero content, all)."""
        ok = np.flatnonzero(self.ldv_run >= vl)
        nzc = self.nz64[ok + vl] - self.nz64[ok]
        return ok[nzc > 0], ok

    def lde_windows(self, vl: int) -> np.ndarray:
        return np.flatnonzero(self.lde_run >= vl)


_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _info(img: wi.Image, config: accel.AccelConfig) -> _ImageInfo:
    per = _INFO.setdefault(img, {})
    key = (config.beat_bytes, config.packing, config.vlen)
    if key not in per:
        per[key] = _ImageInfo(img, config)
    return per[key]
