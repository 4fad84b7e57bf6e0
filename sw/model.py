"""Pure-PyTorch HGRNBit (MMfreeLM) language model: the float reference of this project.

Contract
--------
``HGRNBitForCausalLM(config)`` is an ``nn.Module`` whose ``state_dict()`` keys and shapes are
exactly those of the official model (``config.state_dict_shapes()``), so a released checkpoint
loads with ``load_state_dict(..., strict=True)``.

* ``forward(input_ids [B, T], state=None) -> (logits [B, T, V] float32, new_state)``: the
  parallel prefill (one Python loop over T for the recurrence, batched over B and d).
* ``step(token_ids [B], state) -> (logits [B, V], new_state)``: one recurrent token step. It runs
  the same arithmetic as ``forward`` and agrees with it (bit for bit on CPU in practice).
* ``state`` is a list with one ``[B, d]`` float32 tensor per layer (the HGRN hidden state h);
  ``None`` means all zeros. The returned state is detached from autograd.
* ``loss(input_ids)``: mean next-token cross-entropy (targets are ``input_ids[:, 1:]``).
* ``random_state_dict(config, seed)``: a seeded float32 init (see its docstring).

Training works (``model.train()``, autograd, any device): BitLinear uses straight-through
estimators with the gradients of the official ``x + (q(x) - x).detach()`` formulation.

Source of the equations (github ridgerchu/matmulfreellm, read, not copied):
  mmfreelm/models/hgrn_bit/modeling_hgrn_bit.py  HGRNBitModel / Block / MLP, lower bounds, init
  mmfreelm/layers/hgrn_bit.py                    HGRNBitAttention (i/f/g/o, lower bound, swiglu)
  mmfreelm/ops/fusedbitnet.py                    FusedBitLinear: RMSNorm -> int8 act quant -> ternary
  mmfreelm/modules/fused_norm_gate.py            FusedRMSNormSwishGate (g_norm)
  mmfreelm/modules/layernorm.py                  RMSNorm (with the prenorm residual add)
  mmfreelm/ops/hgrn/naive.py, recurrent_fuse.py  h_t = f_t * h_{t-1} + i_t (f itself, not log f)

Per block (residual stream x, all float32)::

    u = attn_norm(x)
    f = sigmoid(f_proj(u));  if layer > 0: f = lb + (1 - lb) * f
    i = i_proj(u) * (1 - f) / (1 + exp(-i_proj(u)))          # official swiglu(i, 1 - f)
    h_t = f_t * h_{t-1} + i_t
    o = o_proj( g_norm(g_proj(u)) * h * sigmoid(h) )           # FusedRMSNormSwishGate
    x = o + x;  v = mlp_norm(x)
    gate, up = gate_proj(v).chunk(2, -1);  x = x + down_proj(gate * up / (1 + exp(-gate)))

and ``logits = lm_head(norm(x))`` with lb = cumsum(softmax(lower_bounds, 0), 0) - softmax(...)[0].
Every RMSNorm: ``rstd = 1 / sqrt(mean(x^2) + eps); y = x * rstd * w`` with eps =
``config.rms_norm_eps``; BitLinear's internal RMSNorm uses eps 1e-6 (the default of the fused
kernel ``layer_norm_linear_quant_fn``; the unused ``norm.eps`` attribute of 1e-8 never reaches it).

BitLinear (one per projection, all ternary, lm_head included), on y = RMSNorm_1e-6(x) * gamma::

    sx    = 127 / max(max|y|, 1e-5)                         (per token)
    codes = clamp(round_half_away(y * sx), -128, 127)      (Triton's round: half away from zero)
    beta  = max(float32(mean_float64(|W|)), 1e-5); sw = 1 / beta     (spec.numerics.ternary_quantize)
    trits = clamp(round_half_even(W * sw), -1, 1)
    out   = (codes @ trits^T) / (sx * sw)

Deliberate deviation: the official kernel computes ``F.linear(codes / sx, trits / sw)``; here the
integer dot product ``codes @ trits^T`` is formed first (exact in float32 since |acc| <= 128 * K
< 2**24, in any summation order, also with TF32 or bf16 inputs) and scaled once. The two agree to
float32 rounding (the official sum carries ~sqrt(K) ulps of summation error), and this form makes
the logits independent of BLAS blocking and batch shape, so prefill and step agree bit for bit.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from spec.models import ModelConfig
from spec.numerics import BETA_MIN

#: eps of BitLinear's fused RMSNorm (layer_norm_linear_quant_fn's default).
BITLINEAR_EPS = 1e-6
#: activation quantization: 127 / max(max|y|, ACT_MAX_MIN)
ACT_MAX_MIN = 1e-5


# ---------------------------------------------------------------------------------------------
# elementary ops (float32, official op order)
# ---------------------------------------------------------------------------------------------
def round_half_away(v: torch.Tensor) -> torch.Tensor:
    """Round to nearest, ties away from zero (Triton's ``tl.math.round`` / C ``roundf``).

    Exact for every float32: ``floor(|v|)`` and ``|v| - floor(|v|)`` are exact, unlike
    ``floor(|v| + 0.5)``, which rounds 0.49999997 up.
    """
    a = v.abs()
    fl = a.floor()
    r = fl + (a - fl >= 0.5).to(v.dtype)
    return torch.copysign(r, v)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``x * (1 / sqrt(mean(x^2) + eps)) * weight`` in float32, in that order."""
    x = x.float()
    rstd = 1.0 / torch.sqrt(x.square().mean(dim=-1, keepdim=True) + eps)
    return x * rstd * weight.float()


def activation_quant(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token int8 quantization: (codes as float32 in [-128, 127], scale sx [..., 1]).

    The dequantized activation is ``codes / sx``.
    """
    sx = 127.0 / y.abs().amax(dim=-1, keepdim=True).clamp(min=ACT_MAX_MIN)
    codes = round_half_away(y * sx).clamp(-128, 127)
    return codes, sx


def weight_quant(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary quantization, bit-identical to ``spec.numerics.ternary_quantize``.

    Returns (trits as float32 in {-1, 0, 1}, scale sw = 1 / beta as a 0-d float32 tensor); the
    dequantized weight is ``trits / sw``. beta = max(float32(mean(|W|) in float64), 1e-5).
    """
    w = w.detach().float()
    beta = w.abs().double().mean().float().clamp(min=BETA_MIN)
    sw = 1.0 / beta
    trits = torch.round(w * sw).clamp(-1, 1)      # torch.round: half to even, like np.rint
    return trits, sw


def swiglu(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The official swiglu kernel: ``x * y / (1 + exp(-x))``."""
    return x * y / (1.0 + torch.exp(-x))


def _int_linear(codes: torch.Tensor, trits: torch.Tensor) -> torch.Tensor:
    """codes [..., K] @ trits[N, K]^T, exact in float32 (no autocast)."""
    with torch.autocast(device_type=codes.device.type, enabled=False):
        return F.linear(codes, trits)


class _BitLinearFn(torch.autograd.Function):
    """Forward: the quantized BitLinear product. Backward: the straight-through estimator of the
    official code, i.e. the gradients of ``F.linear(y + (q(y) - y).detach(), W + (q(W) - W).detach())``:
    dy = dout @ (trits / sw), dW = dout^T @ (codes / sx)."""

    @staticmethod
    def forward(ctx, y, weight):
        codes, sx = activation_quant(y)
        trits, sw = weight_quant(weight)
        out = _int_linear(codes, trits) / (sx * sw)
        ctx.save_for_backward(codes.to(torch.int8), sx, trits.to(torch.int8), sw)
        return out

    @staticmethod
    def backward(ctx, dout):
        codes, sx, trits, sw = ctx.saved_tensors
        dout = dout.float()
        dy = dw = None
        if ctx.needs_input_grad[0]:
            dy = F.linear(dout, (trits.float() / sw).t())
        if ctx.needs_input_grad[1]:
            y_deq = codes.float() / sx
            dw = dout.reshape(-1, dout.shape[-1]).t() @ y_deq.reshape(-1, y_deq.shape[-1])
        return dy, dw


class _HGRNScanFn(torch.autograd.Function):
    """h_t = f_t * h_{t-1} + i_t over dim 1 of [B, T, d]; returns all h_t. h0 gets no gradient
    (the official kernel detaches the initial state)."""

    @staticmethod
    def forward(ctx, i, f, h0):
        out = _scan(i, f, h0)
        ctx.save_for_backward(f, out, h0)
        return out

    @staticmethod
    def backward(ctx, dout):
        f, out, h0 = ctx.saved_tensors
        di = torch.empty_like(out)
        df = torch.empty_like(out)
        dh = torch.zeros_like(h0)
        for t in range(out.shape[1] - 1, -1, -1):
            dh = dh + dout[:, t]
            di[:, t] = dh
            df[:, t] = dh * (out[:, t - 1] if t > 0 else h0)
            dh = dh * f[:, t]
        return di, df, None


def _scan(i: torch.Tensor, f: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(i)
    h = h0
    for t in range(i.shape[1]):
        h = f[:, t] * h + i[:, t]
        out[:, t] = h
    return out


def hgrn_scan(i: torch.Tensor, f: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """All hidden states of h_t = f_t * h_{t-1} + i_t; i, f [B, T, d], h0 [B, d]."""
    h0 = h0.detach()
    if torch.is_grad_enabled() and (i.requires_grad or f.requires_grad):
        return _HGRNScanFn.apply(i, f, h0)
    return _scan(i, f, h0)


# ---------------------------------------------------------------------------------------------
# modules (names follow the official ones so state_dict keys match)
# ---------------------------------------------------------------------------------------------
class RMSNorm(nn.Module):
    """RMSNorm with a learned scale ``weight`` (official mmfreelm.modules.RMSNorm)."""

    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class BitLinear(nn.Module):
    """FusedBitLinear: ``weight`` [out, in] and ``norm.weight`` [in]; no bias.

    In inference (no autograd) the ternary weight is cached and recomputed only when
    ``weight`` changes (its version counter, storage or device). Some in-place updates leave the
    version counter alone (fused optimizers, CUDA-graph replays), so every ``train()`` /
    ``eval()`` switch also drops the cache."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.zeros(out_features, in_features))
        self.norm = RMSNorm(in_features, eps=BITLINEAR_EPS)
        self._cache: tuple | None = None

    def train(self, mode: bool = True) -> BitLinear:
        self._cache = None
        return super().train(mode)

    def quantized_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight
        key = (w._version, w.data_ptr(), w.device, w.dtype)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, *weight_quant(w))
        return self._cache[1], self._cache[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(x)
        if torch.is_grad_enabled() and (y.requires_grad or self.weight.requires_grad):
            self._cache = None
            return _BitLinearFn.apply(y, self.weight)
        trits, sw = self.quantized_weight()
        codes, sx = activation_quant(y)
        return _int_linear(codes, trits) / (sx * sw)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


class HGRNBitAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        d = config.hidden_size
        self.layer_idx = layer_idx
        self.i_proj = BitLinear(d, d)
        self.f_proj = BitLinear(d, d)
        self.g_proj = BitLinear(d, d)
        self.g_norm = RMSNorm(d, eps=config.rms_norm_eps)
        self.o_proj = BitLinear(d, d)

    def forward(self, u, lower_bound, h0):
        i = self.i_proj(u)
        f = torch.sigmoid(self.f_proj(u))
        if lower_bound is not None and self.layer_idx > 0:
            f = lower_bound + (1 - lower_bound) * f
        i = swiglu(i, 1 - f)
        hs = hgrn_scan(i, f, h0)
        g = self.g_norm(self.g_proj(u))
        o = self.o_proj(g * hs * torch.sigmoid(hs))
        return o, hs[:, -1].detach()


class HGRNBitMLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.gate_proj = BitLinear(config.hidden_size, 2 * config.intermediate_size)
        self.down_proj = BitLinear(config.intermediate_size, config.hidden_size)

    def forward(self, v):
        gate, up = self.gate_proj(v).chunk(2, -1)
        return self.down_proj(swiglu(gate, up))


class HGRNBitBlock(nn.Module):
    def __init__(self, config: ModelConfig, layer_idx: int):
        super().__init__()
        self.attn_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.attn = HGRNBitAttention(config, layer_idx)
        self.mlp_norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = HGRNBitMLP(config)

    def forward(self, x, lower_bound, h0):
        o, h = self.attn(self.attn_norm(x), lower_bound, h0)
        x = o + x                       # the fused prenorm RMSNorm adds the residual first
        x = x + self.mlp(self.mlp_norm(x))
        return x, h


class HGRNBitModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        if config.use_lower_bound:
            self.lower_bounds = nn.Parameter(torch.zeros(config.num_hidden_layers, config.hidden_size))
        self.layers = nn.ModuleList(HGRNBitBlock(config, k) for k in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def lower_bound_table(self) -> torch.Tensor | None:
        """[L, d]: cumsum(softmax(lower_bounds, 0), 0) - softmax(...)[0]; None without bounds."""
        if not self.config.use_lower_bound:
            return None
        lb = self.lower_bounds.float().softmax(0)
        return lb.cumsum(0) - lb[0]

    def forward(self, input_ids, state):
        x = self.embeddings(input_ids).float()
        lbs = self.lower_bound_table()
        new_state = []
        for k, layer in enumerate(self.layers):
            x, h = layer(x, None if lbs is None else lbs[k], state[k])
            new_state.append(h)
        return self.norm(x), new_state


class HGRNBitForCausalLM(nn.Module):
    """The whole model; parameter names as the official HGRNBitForCausalLM (see module doc)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.model = HGRNBitModel(config)
        self.lm_head = BitLinear(config.hidden_size, config.vocab_size)

    def init_weights(self, seed: int = 0) -> HGRNBitForCausalLM:
        """Load ``random_state_dict(self.config, seed)`` (the constructor leaves the ternary
        matrices at zero); returns self."""
        dev = self.lm_head.weight.device
        self.load_state_dict({k: v.to(dev) for k, v in random_state_dict(self.config, seed).items()},
                             strict=True)
        return self

    # -- state -----------------------------------------------------------------------------------
    def init_state(self, batch_size: int) -> list[torch.Tensor]:
        """All-zero recurrent state: one [B, d] float32 tensor per layer."""
        dev = self.lm_head.weight.device
        return [torch.zeros(batch_size, self.config.hidden_size, device=dev)
                for _ in range(self.config.num_hidden_layers)]

    # -- inference -------------------------------------------------------------------------------
    def forward(self, input_ids: torch.Tensor, state: list[torch.Tensor] | None = None):
        """input_ids [B, T] (long) -> (logits [B, T, V] float32, new_state)."""
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be [B, T], got shape {tuple(input_ids.shape)}")
        if state is None:
            state = self.init_state(input_ids.shape[0])
        elif len(state) != self.config.num_hidden_layers:
            raise ValueError(f"state has {len(state)} layers, model has {self.config.num_hidden_layers}")
        hidden, new_state = self.model(input_ids, state)
        return self.lm_head(hidden), new_state

    def step(self, token_ids: torch.Tensor, state: list[torch.Tensor] | None = None):
        """token_ids [B] -> (logits [B, V], new_state): one recurrent step."""
        if token_ids.dim() != 1:
            raise ValueError(f"token_ids must be [B], got shape {tuple(token_ids.shape)}")
        logits, state = self.forward(token_ids[:, None], state)
        return logits[:, 0], state

    # -- training --------------------------------------------------------------------------------
    def loss(self, input_ids: torch.Tensor, state: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Mean next-token cross-entropy of input_ids [B, T] (T >= 2): predicts ids[:, 1:]."""
        if input_ids.shape[1] < 2:
            raise ValueError("loss needs at least 2 tokens per sequence")
        logits, _ = self.forward(input_ids, state)
        v = self.config.vocab_size
        return F.cross_entropy(logits[:, :-1].reshape(-1, v), input_ids[:, 1:].reshape(-1))


# ---------------------------------------------------------------------------------------------
# initialisation
# ---------------------------------------------------------------------------------------------
def random_state_dict(config: ModelConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded float32 state dict for ``config`` (CPU tensors, keys = state_dict_shapes()).

    Follows the official initialisation as it actually happens:
      * ``HGRNBitAttention.__init__`` draws i/f/g/o_proj xavier-uniform with gain 2**-2.5 and
        marks them initialised, so HF's ``_init_weights`` leaves them (``o_proj`` is therefore
        not rescaled);
      * embedding, ``gate_proj``, ``down_proj`` and ``lm_head`` ~ N(0, initializer_range),
        ``down_proj`` then divided by sqrt(2 * n_layers);
      * every norm weight 1, ``model.lower_bounds`` 0 (so the lower bound of layer k is k / L),
        the padding row (if any) of the embedding 0.
    Tensors are drawn in ``state_dict_shapes()`` order from one ``torch.Generator(seed)``.
    """
    g = torch.Generator().manual_seed(int(seed))
    std = config.initializer_range
    resid_div = math.sqrt(2 * config.num_hidden_layers)
    attn = ("attn.i_proj.weight", "attn.f_proj.weight", "attn.g_proj.weight", "attn.o_proj.weight")
    out: dict[str, torch.Tensor] = {}
    for name, shape in config.state_dict_shapes().items():
        if name == "model.lower_bounds":
            t = torch.zeros(shape, dtype=torch.float32)
        elif len(shape) == 1:
            t = torch.ones(shape, dtype=torch.float32)
        elif name.endswith(attn):
            bound = 2 ** -2.5 * math.sqrt(6.0 / (shape[0] + shape[1]))
            t = torch.rand(shape, generator=g, dtype=torch.float32).mul_(2 * bound).sub_(bound)
        else:
            t = torch.randn(shape, generator=g, dtype=torch.float32).mul_(std)
            if name.endswith("mlp.down_proj.weight"):
                t.div_(resid_div)
            if name == "model.embeddings.weight" and config.pad_token_id is not None:
                t[config.pad_token_id] = 0
        out[name] = t
    return out


def build_model(config: ModelConfig, state_dict: dict[str, torch.Tensor] | None = None,
                seed: int = 0) -> HGRNBitForCausalLM:
    """A model on CPU with ``state_dict`` (strict) or ``random_state_dict(config, seed)``, eval mode."""
    model = HGRNBitForCausalLM(config)
    model.load_state_dict(state_dict if state_dict is not None else random_state_dict(config, seed),
                          strict=True)
    return model.eval()
