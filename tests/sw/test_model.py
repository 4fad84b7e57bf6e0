"""sw.model: the pure-PyTorch HGRNBit reference (tiny preset, CPU)."""
from __future__ import annotations

import numpy as np
import pytest

from spec.models import PRESETS
from spec.numerics import ternary_quantize

torch = pytest.importorskip("torch")

from sw import model as M  # noqa: E402

pytestmark = pytest.mark.torch


TINY = PRESETS["tiny"]


def _ids(b, t, seed=0, vocab=TINY.vocab_size):
    return torch.randint(0, vocab, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def tiny():
    return M.build_model(TINY, seed=3)


def test_state_dict_names_and_shapes(tiny):
    got = {k: tuple(v.shape) for k, v in tiny.state_dict().items()}
    assert got == TINY.state_dict_shapes()
    sd = M.random_state_dict(TINY, seed=3)
    assert {k: tuple(v.shape) for k, v in sd.items()} == TINY.state_dict_shapes()
    assert all(v.dtype == torch.float32 for v in sd.values())


def test_random_state_dict_seeded_and_follows_init():
    a, b, c = (M.random_state_dict(TINY, s) for s in (7, 7, 8))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lm_head.weight"], c["lm_head.weight"])
    assert torch.equal(a["model.norm.weight"], torch.ones(TINY.d))
    assert not a["model.lower_bounds"].any()                # official: zeros -> lb_k = k / L
    # attention projections: xavier-uniform, gain 2**-2.5 (std = bound / sqrt(3)), not rescaled
    bound = 2 ** -2.5 * np.sqrt(6 / (2 * TINY.d))
    for p in ("i_proj", "o_proj"):
        w = a[f"model.layers.0.attn.{p}.weight"]
        assert w.abs().max().item() <= bound
        assert w.std().item() == pytest.approx(bound / np.sqrt(3), rel=0.1)
    std_up = a["model.layers.0.mlp.gate_proj.weight"].std().item()
    std_down = a["model.layers.0.mlp.down_proj.weight"].std().item()
    assert std_up == pytest.approx(0.02, rel=0.1)
    assert std_down == pytest.approx(0.02 / np.sqrt(2 * TINY.n_layers), rel=0.1)


def test_prefill_equals_step_by_step(tiny):
    ids = _ids(3, 24, seed=1)
    with torch.no_grad():
        logits, state = tiny(ids)
        s, outs = None, []
        for t in range(ids.shape[1]):
            lg, s = tiny.step(ids[:, t], s)
            outs.append(lg)
    assert logits.dtype == torch.float32 and logits.shape == (3, 24, TINY.vocab_size)
    assert (torch.stack(outs, 1) - logits).abs().max().item() <= 1e-5
    for h1, h2 in zip(state, s, strict=True):
        assert h1.shape == (3, TINY.d)
        assert (h1 - h2).abs().max().item() <= 1e-5


def test_prefill_in_two_chunks_with_state(tiny):
    ids = _ids(2, 20, seed=2)
    with torch.no_grad():
        full, _ = tiny(ids)
        a, st = tiny(ids[:, :7])
        b, _ = tiny(ids[:, 7:], st)
    assert (torch.cat([a, b], 1) - full).abs().max().item() <= 1e-5


def test_grad_enabled_path_equals_inference_path(tiny):
    ids = _ids(2, 8, seed=4)
    with torch.no_grad():
        a, _ = tiny(ids)
    b, _ = tiny(ids)         # autograd path (custom Functions)
    assert torch.equal(a, b.detach())


@pytest.mark.parametrize("seed", range(5))
def test_weight_quant_matches_spec_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 97)), int(rng.integers(1, 300)))
    w = (rng.standard_normal(shape) * rng.choice([1e-7, 1e-3, 0.02, 1.0])).astype(np.float32)
    if seed == 4:
        w[0, :] = 0.5 * np.float32(np.abs(w).mean())     # values near the rounding tie
    trits, sw = M.weight_quant(torch.from_numpy(w))
    t_ref, beta_ref = ternary_quantize(w)
    assert np.array_equal(trits.numpy().astype(np.int8), t_ref)
    assert np.float32(1.0) / beta_ref == np.float32(sw.item())


def test_round_half_away():
    v = torch.tensor([0.5, -0.5, 1.5, -2.5, 2.4999998, 0.49999997, -0.49999997, 126.5, 3.0, -0.0])
    assert M.round_half_away(v).tolist() == [1, -1, 2, -3, 2, 0, -0, 127, 3, 0]


def test_activation_quant_codes():
    y = torch.tensor([[0.1, -2.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    codes, sx = M.activation_quant(y)
    assert codes.tolist()[0] == [6, -127, 64, 0]        # 6.35 -> 6, 63.5 -> 64 (half away)
    assert codes[1].abs().sum() == 0 and sx[1, 0] == pytest.approx(127 / 1e-5)


def test_bitlinear_forward_matches_dequantized_formula():
    torch.manual_seed(0)
    lin = M.BitLinear(48, 16)
    with torch.no_grad():
        lin.weight.normal_(0, 0.02)
        lin.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(5, 48)
    with torch.no_grad():
        out = lin(x)
        y = M.rms_norm(x, lin.norm.weight, 1e-6)
        codes, sx = M.activation_quant(y)
        trits, sw = M.weight_quant(lin.weight)
        ref = torch.nn.functional.linear(codes / sx, trits / sw)
    assert (out - ref).abs().max().item() <= 1e-5 * ref.abs().max().item()


def test_ste_gradients_equal_official_formulation():
    """Gradients of our custom Functions == autograd of the official BitLinear STE
    (x + (q(x) - x).detach(), w + (q(w) - w).detach())."""
    torch.manual_seed(1)
    lin = M.BitLinear(32, 24)
    with torch.no_grad():
        lin.weight.normal_(0, 0.02)
        lin.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(2, 6, 32, requires_grad=True)
    gout = torch.randn(2, 6, 24)
    (lin(x) * gout).sum().backward()
    gx, gw, gn = x.grad.clone(), lin.weight.grad.clone(), lin.norm.weight.grad.clone()

    x.grad = None
    w = lin.weight.detach().clone().requires_grad_()
    nw = lin.norm.weight.detach().clone().requires_grad_()
    y = M.rms_norm(x, nw, 1e-6)
    codes, sx = M.activation_quant(y.detach())
    trits, sw = M.weight_quant(w.detach())
    yq = y + (codes / sx - y).detach()
    wq = w + (trits / sw - w).detach()
    (torch.nn.functional.linear(yq, wq) * gout).sum().backward()
    for a, b in ((gx, x.grad), (gw, w.grad), (gn, nw.grad)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_scan_gradient_matches_autograd_loop():
    torch.manual_seed(2)
    i = torch.randn(2, 9, 5, requires_grad=True)
    f = torch.rand(2, 9, 5, requires_grad=True)
    h0 = torch.randn(2, 5)
    g = torch.randn(2, 9, 5)
    (M.hgrn_scan(i, f, h0) * g).sum().backward()
    gi, gf = i.grad.clone(), f.grad.clone()
    i.grad = f.grad = None
    h, outs = h0, []
    for t in range(9):
        h = f[:, t] * h + i[:, t]
        outs.append(h)
    (torch.stack(outs, 1) * g).sum().backward()
    assert torch.allclose(gi, i.grad, atol=1e-6) and torch.allclose(gf, f.grad, atol=1e-6)


def test_lower_bound_table():
    m = M.build_model(TINY, seed=5)
    lb = m.model.lower_bound_table()
    p = m.model.lower_bounds.detach().double()
    sm = p.softmax(0)
    ref = sm.cumsum(0) - sm[0]
    assert torch.allclose(lb.double(), ref, atol=1e-7)
    assert lb[0].abs().max() == 0


def test_training_step_reduces_loss():
    torch.manual_seed(0)
    m = M.HGRNBitForCausalLM(TINY).init_weights(seed=11)
    m.train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    ids = _ids(4, 32, seed=9)
    losses = []
    for _ in range(15):
        loss = m.loss(ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0] - 0.3, losses
    # every parameter received a gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
    # the eval cache sees the updated weights
    m.eval()
    with torch.no_grad():
        a, _ = m(ids)
    b, _ = M.build_model(TINY, {k: v.detach() for k, v in m.state_dict().items()})(ids)
    assert torch.equal(a, b.detach())


def test_config_without_lower_bounds():
    import dataclasses
    cfg = dataclasses.replace(TINY, use_lower_bound=False, name="tiny-nolb")
    m = M.build_model(cfg, seed=1)
    assert "model.lower_bounds" not in m.state_dict()
    assert m.model.lower_bound_table() is None
    ids = _ids(1, 6, seed=3)
    with torch.no_grad():
        logits, state = m(ids)
        lg, _ = m.step(ids[0, :1], None)
    assert torch.equal(lg, logits[:, 0]) and len(state) == cfg.n_layers


@pytest.mark.torch
def test_mode_switch_drops_the_ternary_cache_even_without_a_version_bump():
    """A fused optimizer can change weights without bumping the version counter; eval() after
    training must still see the new weights."""
    import torch

    from spec.models import get_preset
    from sw.model import HGRNBitForCausalLM

    net = HGRNBitForCausalLM(get_preset("tiny")).init_weights(0).eval()
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        before = net(ids)[0]
        w = net.lm_head.weight
        w.data.mul_(-1.0)                  # through .data: the version counter may not move
        net.train()
        net.eval()
        after = net(ids)[0]
    assert not torch.allclose(before, after)
