"""The golden model: one MMfreeLM token step in the integer numerics of spec/numerics.py.

This is the definition of "correct" for the RTL. It reads the weights from a weight image
(spec/weight_image.py) or from the same decoded arrays, keeps the per-token state (residual
stream is rebuilt from the embedding every token; the recurrent state h persists per layer) and
computes, for each token (docs/numerics.md has the same listing with formats):

    x  = embed(token)                                        bf16 -> FX
    per layer l:
      u   = rmsnorm(x, attn_norm)
      i   = BL(u; i_proj)   fz = BL(u; f_proj)   g = BL(u; g_proj)     BL = quantize, tmatmul, rescale
      f, 1-f = forget_gate(fz, lb_l)                        GATE
      h_l = h_l * f + silu(i) * (1-f)
      z   = rmsnorm(g, g_norm) * silu(h_l)
      x   = x + BL(z; o_proj)
      v   = rmsnorm(x, mlp_norm)
      gate | up = BL(v; gate_proj)
      x   = x + BL(silu(gate) * up; down_proj)
    logits = BL(rmsnorm(x, norm); lm_head)                  FX, argmax = first maximum

An optional `trace(layer, op, array)` callback sees every intermediate (layer -1 = embedding and
head), which is what the RTL comparisons diff against.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from spec import numerics as N
from spec import weight_image as wi
from spec.models import ModelConfig

from . import fast, kernels
from . import ops as O

Trace = Callable[[int, str, np.ndarray], None]


@dataclasses.dataclass
class Gamma:
    mant: np.ndarray   # int16
    exp: int


@dataclasses.dataclass
class Matrix:
    trits: np.ndarray  # int8 [rows, cols]
    beta: O.SF


@dataclasses.dataclass
class Layer:
    """One block's tensors, by role: the fields are the roles of spec.weight_image (LAYER_GAMMAS,
    LAYER_MATRIX_ROLES, LAYER_GATE), and `GoldenWeights.from_image` builds a Layer from them by name."""
    attn_norm: Gamma
    i_norm: Gamma
    f_norm: Gamma
    g_norm_in: Gamma
    lower_bound: np.ndarray  # GATE, int64 [d]
    g_norm: Gamma
    o_norm: Gamma
    mlp_norm: Gamma
    gate_norm: Gamma
    down_norm: Gamma
    i_proj: Matrix
    f_proj: Matrix
    g_proj: Matrix
    o_proj: Matrix
    gate_proj: Matrix
    down_proj: Matrix


@dataclasses.dataclass
class GoldenWeights:
    config: ModelConfig
    embed_bf16: np.ndarray      # uint16 [V, d]
    layers: list[Layer]
    norm: Gamma
    head_norm: Gamma
    lm_head: Matrix

    @classmethod
    def from_image(cls, img) -> GoldenWeights:
        """Decode every tensor of a weight image (spec.weight_image.Image API)."""
        cfg = img.model

        def gamma(name: str) -> Gamma:
            return Gamma(img.array(name).astype(np.int16), int(img.gamma_exp(name)))

        def matrix(name: str) -> Matrix:
            return Matrix(np.ascontiguousarray(img.array(name), dtype=np.int8), O.sf_from_float(img.beta(name)))

        layers = []
        for l in range(cfg.num_hidden_layers):
            p = f"layers.{l}."
            kw = {k: gamma(p + v) for k, v in wi.LAYER_GAMMAS.items()}
            kw |= {k: matrix(p + v) for k, v in wi.LAYER_MATRIX_ROLES.items()}
            kw[wi.LAYER_GATE[0]] = img.array(p + wi.LAYER_GATE[1]).astype(np.int64)
            layers.append(Layer(**kw))
        return cls(cfg, img.array("embeddings"), layers, gamma("norm"), gamma("lm_head.norm"), matrix("lm_head"))

    @classmethod
    def from_path(cls, path) -> GoldenWeights:
        from spec.weight_image import read_image
        return cls.from_image(read_image(path))


class GoldenModel:
    """Stateful golden decoder: `step(token) -> logits (FX, int64 [V])`."""

    def __init__(self, weights: GoldenWeights, trace: Trace | None = None, backend: str | None = None):
        """backend: "numpy" (ops.py, the definition) or "fast" (numba twins, bit-identical);
        default fast when numba imports, unless MMFREE_GOLDEN_KERNEL=numpy."""
        self.w = weights
        self.cfg = weights.config
        self.trace = trace
        if backend is None:
            backend = "fast" if fast.AVAILABLE and kernels.kernel_name() == "numba" else "numpy"
        if backend not in ("fast", "numpy"):
            raise ValueError(f"backend must be 'fast' or 'numpy', got {backend!r}")
        if backend == "fast" and not fast.AVAILABLE:
            raise RuntimeError("the fast backend needs numba")
        self.backend = backend
        self.O = fast.FastOps if backend == "fast" else O
        self.reset()

    def reset(self) -> None:
        self.h = [np.zeros(self.cfg.hidden_size, np.int64) for _ in range(self.cfg.num_hidden_layers)]

    # -- building blocks ----------------------------------------------------------------------
    def _t(self, layer: int, op: str, v: np.ndarray) -> None:
        if self.trace is not None:
            self.trace(layer, op, v)

    def bitlinear(self, layer: int, name: str, t: np.ndarray, norm: Gamma, mat: Matrix,
                  rinv: O.SF | None = None) -> np.ndarray:
        codes, s = self.O.quantize(t, norm.mant, norm.exp, rinv)
        acc = kernels.matvec(mat.trits, codes)
        y = self.O.rescale(acc, s, mat.beta)
        self._t(layer, name + ".codes", codes)
        self._t(layer, name + ".acc", acc)
        self._t(layer, name, y)
        return y

    def embed(self, token: int) -> np.ndarray:
        if not 0 <= token < self.cfg.vocab_size:
            raise ValueError(f"token {token} outside the vocabulary [0, {self.cfg.vocab_size})")
        return N.bf16_to_fx(self.w.embed_bf16[token])

    def block(self, l: int, x: np.ndarray) -> np.ndarray:
        L = self.w.layers[l]
        u = self.O.rmsnorm(x, L.attn_norm.mant, L.attn_norm.exp)
        self._t(l, "attn_norm", u)
        r = self.O.rms_inv(u)            # shared by the three BitLinears that read u
        i = self.bitlinear(l, "i_proj", u, L.i_norm, L.i_proj, r)
        fz = self.bitlinear(l, "f_proj", u, L.f_norm, L.f_proj, r)
        g = self.bitlinear(l, "g_proj", u, L.g_norm_in, L.g_proj, r)
        f, omf = self.O.forget_gate(fz, L.lower_bound)
        self._t(l, "forget", f)
        i_in = self.O.gate_mul(self.O.silu(i), omf)
        self._t(l, "input", i_in)
        h = self.O.recurrence(self.h[l], f, i_in)
        self.h[l] = h
        self._t(l, "h", h)
        gn = self.O.rmsnorm(g, L.g_norm.mant, L.g_norm.exp)
        z = self.O.fx_mul(gn, self.O.silu(h))
        self._t(l, "gated", z)
        o = self.bitlinear(l, "o_proj", z, L.o_norm, L.o_proj)
        x = self.O.fx_add(x, o)
        self._t(l, "resid_attn", x)
        v = self.O.rmsnorm(x, L.mlp_norm.mant, L.mlp_norm.exp)
        self._t(l, "mlp_norm", v)
        gu = self.bitlinear(l, "gate_proj", v, L.gate_norm, L.gate_proj)
        inter = self.cfg.intermediate_size
        m = self.O.fx_mul(self.O.silu(gu[:inter]), gu[inter:])
        self._t(l, "swiglu", m)
        dn = self.bitlinear(l, "down_proj", m, L.down_norm, L.down_proj)
        x = self.O.fx_add(x, dn)
        self._t(l, "resid_mlp", x)
        return x

    def head(self, x: np.ndarray) -> np.ndarray:
        xf = self.O.rmsnorm(x, self.w.norm.mant, self.w.norm.exp)
        self._t(-1, "final_norm", xf)
        return self.bitlinear(-1, "lm_head", xf, self.w.head_norm, self.w.lm_head)

    def step(self, token: int) -> np.ndarray:
        """One token through the whole model; updates the recurrent state; returns FX logits."""
        x = self.embed(int(token))
        self._t(-1, "embed", x)
        for l in range(self.cfg.num_hidden_layers):
            x = self.block(l, x)
        return self.head(x)

    def run(self, tokens) -> np.ndarray:
        """Teacher-forced: FX logits [T, V] for every position."""
        return np.stack([self.step(int(t)) for t in tokens])

    def generate(self, prompt, n_new: int) -> list[int]:
        """Greedy continuation (argmax = first maximum), the accelerator's decode rule."""
        logits = None
        for t in prompt:
            logits = self.step(int(t))
        out = []
        for _ in range(n_new):
            nxt = self.O.argmax(logits)
            out.append(nxt)
            logits = self.step(nxt)
        return out


def logits_to_float(logits_fx: np.ndarray) -> np.ndarray:
    return np.asarray(logits_fx, dtype=np.float64) / (1 << N.FX_FRAC)
