"""Muon against torch.optim.Muon, AdamP's projection, the grouping rule, and the Trainer."""
import pytest
import torch

from sciml import Trainer
from sciml.operators import FNO
from sciml.optim import AdamP, Muon, build_optimizer, is_hidden_matrix
from sciml.optim.adamp import project_radial
from sciml.solvers.operator import OperatorSolver


def _quadratic_steps(opts_and_params, steps=8):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 48, generator=g)
    for _ in range(steps):
        for opt, params in opts_and_params:
            opt.zero_grad()
            sum((X[:, : p.shape[0]] @ p).sin().square().sum() for p in params).backward()
            opt.step()


@pytest.mark.parametrize("adjust_lr_fn", ["original", "match_rms_adamw"])
def test_muon_matches_torch_muon_on_matrices_to_1_percent(adjust_lr_fn):
    g = torch.Generator().manual_seed(1)
    start = [torch.randn(*s, generator=g) / 4 for s in [(32, 16), (16, 48), (24, 24)]]
    ours = [w.clone().requires_grad_() for w in start]
    torchs = [w.clone().requires_grad_() for w in start]
    kw = dict(lr=0.02, weight_decay=0.1, momentum=0.95, adjust_lr_fn=adjust_lr_fn)
    _quadratic_steps([(Muon(ours, **kw), ours), (torch.optim.Muon(torchs, **kw), torchs)])
    for w0, a, b in zip(start, ours, torchs):
        # torch runs Newton–Schulz in bf16, we in fp32: compare the displacements
        assert ((a - b).norm() / (b - w0).norm()) < 1e-2


def test_adamw_groups_match_torch_adamw_and_no_grad_is_overwritten():
    g = torch.Generator().manual_seed(2)
    start = [torch.randn(8, 6, generator=g), torch.randn(6, generator=g), torch.randn(4, 3, dtype=torch.complex64)]
    ours = [w.clone().requires_grad_() for w in start]
    ref = [w.clone().requires_grad_() for w in start]
    opt = Muon([{"params": ours[:1]}, {"params": ours[1:], "adamw": True, "lr": 1e-2, "weight_decay": 0.1}], lr=0.02)
    ref_opt = torch.optim.AdamW(ref[1:], lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        for params, o in ((ours, opt), (ref, ref_opt)):
            o.zero_grad()
            (params[0].sum() + (params[1] ** 3).sum() + (params[2].abs() ** 2).sum()).backward()
            grads = [p.grad.clone() for p in params]
            o.step()
            assert all(torch.equal(p.grad, gr) for p, gr in zip(params, grads))  # p.grad untouched
    for a, b in zip(ours[1:], ref[1:]):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-6)


def test_muon_orthogonalizes_conv_kernels_and_each_spectral_mode():
    g = torch.Generator().manual_seed(3)
    conv = torch.nn.Parameter(torch.randn(8, 4, 3, 3, generator=g))
    spectral = torch.nn.Parameter(torch.randn(6, 10, 4, 3, dtype=torch.complex64, generator=g))
    opt = Muon([conv, spectral], lr=1.0, momentum=0.0, nesterov=False)
    before = [conv.detach().clone(), spectral.detach().clone()]
    conv.grad = torch.randn(8, 4, 3, 3, generator=g)
    spectral.grad = torch.randn(6, 10, 4, 3, dtype=torch.complex64, generator=g)
    opt.step()
    # conv: one 8 × 36 matrix; spectral: 4·3 complex 10 × 6 matrices (out × in), all orthogonalized
    s_conv = torch.linalg.svdvals((before[0] - conv.detach()).reshape(8, 36))
    # ("original" scale √max(1, m/n): √(10/6) for the 10 × 6 mode matrices)
    s_modes = torch.linalg.svdvals((before[1] - spectral.detach()).permute(2, 3, 1, 0)) / (10 / 6) ** 0.5
    assert s_conv.shape == (8,) and s_modes.shape == (4, 3, 6)
    assert s_conv.min() > 0.68 and s_conv.max() < 1.21 and s_modes.min() > 0.68 and s_modes.max() < 1.21


def test_adamp_removes_the_radial_component_of_scale_invariant_weights_exactly():
    torch.manual_seed(0)
    layer = torch.nn.Linear(16, 8, bias=False)
    net = torch.nn.Sequential(layer, torch.nn.BatchNorm1d(8, affine=False), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = AdamP(net.parameters(), lr=1e-2, weight_decay=0.0)
    x, y = torch.randn(32, 16), torch.randn(32, 1)
    for _ in range(5):
        w = layer.weight.detach().clone()
        opt.zero_grad()
        (net(x) - y).square().mean().backward()
        # BatchNorm makes every row of the weight scale invariant: the gradient is orthogonal to it
        assert ((layer.weight.grad * w).sum(1).abs() / (layer.weight.grad.norm(dim=1) * w.norm(dim=1))).max() < 1e-4
        opt.step()
        step = layer.weight.detach() - w
        radial = (step * w).sum(1) / w.norm(dim=1)
        assert (radial.abs() / step.norm(dim=1)).max() < 1e-6  # no radial component, row by row
    # an update with a radial part loses exactly that part
    w_hat = w / w.norm(dim=1, keepdim=True)
    update = 0.1 * torch.randn(8, 16) + 2 * w_hat
    q, projected = project_radial(w, layer.weight.grad, update, delta=0.1, eps=1e-8)
    assert projected and torch.allclose(q, update - w_hat * (w_hat * update).sum(1, keepdim=True), atol=1e-6)
    assert ((update * w_hat).sum(1) > 0.5).all() and (q * w_hat).sum(1).abs().max() < 1e-5


def test_adamp_equals_adamw_on_weights_that_are_not_scale_invariant():
    g = torch.Generator().manual_seed(4)
    A, b = torch.randn(20, 6, generator=g), torch.randn(20, 3, generator=g)
    w0 = torch.randn(6, 3, generator=g)
    ws = [w0.clone().requires_grad_(), w0.clone().requires_grad_()]
    opts = [AdamP([ws[0]], lr=1e-2, weight_decay=0.1), torch.optim.AdamW([ws[1]], lr=1e-2, weight_decay=0.1)]
    for _ in range(10):
        for w, o in zip(ws, opts):
            o.zero_grad()
            (A @ w - b).square().sum().backward()
            o.step()
    assert torch.allclose(ws[0], ws[1], atol=1e-6)


def test_the_grouping_rule_puts_fno_hidden_weights_under_muon_and_the_rest_under_adamw():
    model = FNO((8, 8), 1, 1, 16, n_layers=2)
    opt = build_optimizer("muon", model, lr=1e-3, weight_decay=1e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    hidden = [names[id(p)] for g in opt.param_groups if not g["adamw"] for p in g["params"]]
    rest = [names[id(p)] for g in opt.param_groups if g["adamw"] for p in g["params"]]
    assert sorted(hidden) == sorted(n for n in names.values() if n.startswith("fno_blocks") and n.endswith("weight")
                                    and "channel_mlp_skips" not in n or n.endswith("weight.tensor"))
    assert any(n.startswith("lifting") for n in rest) and any(n.startswith("projection") for n in rest)
    assert all(n.endswith("bias") for g in opt.param_groups if g["adamw"] and g["weight_decay"] == 0
               for n in (names[id(p)] for p in g["params"]))
    assert is_hidden_matrix("blocks.0.weight", torch.zeros(4, 4, 3, dtype=torch.complex64))
    assert not is_hidden_matrix("blocks.0.bias", torch.zeros(16, 1, 1))
    # the rule is overridable: a predicate replaces it
    only_spectral = build_optimizer("normuon", model, hidden=lambda n, p: p.is_complex())
    assert all(p.is_complex() for g in only_spectral.param_groups if not g["adamw"] for p in g["params"])


def _operator_data(n, seed):
    """u = smoothed, shifted a: a linear operator an FNO represents exactly in its kept modes."""
    g = torch.Generator().manual_seed(seed)
    k = torch.fft.fftfreq(16, 1 / 16)
    decay = 1 / (1 + k[:, None] ** 2 + k[None, :] ** 2)
    a = torch.fft.ifft2(torch.fft.fft2(torch.randn(n, 1, 16, 16, generator=g)) * decay * 8).real
    u = torch.fft.ifft2(torch.fft.fft2(a) * decay * torch.exp(2j * torch.pi * k[None, :] / 16 * 3)).real
    return torch.utils.data.TensorDataset(a, u)


@pytest.mark.parametrize("name, lr", [("muon", 2e-2), ("normuon", 2e-2)])
def test_muon_family_trains_an_fno_through_the_trainer(name, lr):
    torch.manual_seed(0)
    train, val = _operator_data(64, 0), _operator_data(32, 1)
    solver = OperatorSolver(FNO((8, 8), 1, 1, 16, n_layers=2))
    trainer = Trainer(solver, optimizer=name, lr=lr, epochs=12, batch_size=16, scheduler="cosine", device="cpu",
                      progress=False)
    history = trainer.fit(train, val)
    first, last = history["val_rel_l2"][0], history["val_rel_l2"][-1]
    assert last < first / 4, (first, last)
    assert last < 0.2
