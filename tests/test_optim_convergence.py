"""Every optimizer of sciml.optim on two classic problems, its state_dict, and its checks.

Matrix methods get matrix-shaped parameters: four independent Rosenbrock valleys as the rows of
a 4 × 2 matrix (minimum at all ones; the classic start (−1.2, 1) is the first row) and a matrix
least-squares problem min ½‖AX − B‖²_F with cond(A) = 100 (Hessian condition number 10⁴).
Orthogonalized updates have a fixed spectral size, so they converge only as the learning rate
decays: every run uses a cosine schedule to zero. The tolerance is 1e-3 for every method.
"""
import math
import sys
from pathlib import Path

import pytest
import torch

from sciml.optim import AdamP, AuON, HybridAuON, Muon, NorMuon, ROOT, SGDP, build_optimizer

sys.path.insert(0, str(Path(__file__).parent))
from _toy import train_resume_and_compare  # noqa: E402


def _sgdp(params, lr):
    return SGDP(params, lr=lr, momentum=0.9)


# name: (factory, (lr, steps) on Rosenbrock, (lr, steps) on least squares)
METHODS = {
    "muon": (Muon, (0.03, 2000), (0.01, 2000)),
    "normuon": (NorMuon, (0.1, 2000), (0.03, 2000)),
    "root": (ROOT, (0.1, 2000), (0.03, 2000)),
    "auon": (AuON, (0.1, 2000), (0.1, 3000)),
    "hybrid_auon": (HybridAuON, (0.1, 2000), (0.03, 2000)),
    "adamp": (AdamP, (0.3, 2000), (0.3, 6000)),
    "sgdp": (_sgdp, (1e-3, 6000), (2e-4, 6000)),
}
TOL = 1e-3


def rosenbrock_rows(X):
    x, y = X[:, 0], X[:, 1]
    return ((1 - x) ** 2 + 100 * (y - x ** 2) ** 2).sum()


def least_squares(m=8, n=6, cond=100.0):
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    A = U @ torch.diag(torch.logspace(0, math.log10(cond), m, dtype=torch.float64)) @ V.T
    X_star = torch.randn(m, n, generator=g, dtype=torch.float64)
    return A, A @ X_star, X_star


def minimise(factory, f, X0, lr, steps):
    X = X0.clone().requires_grad_()
    opt = factory([X], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = f(X)
            loss.backward()
            return loss

        opt.step(closure)
        schedule.step()
    return X.detach()


@pytest.mark.parametrize("name", METHODS)
def test_rosenbrock_rows_reach_the_minimum(name):
    factory, (lr, steps), _ = METHODS[name]
    X0 = torch.tensor([[-1.2, 1.0], [-0.5, 0.5], [0.0, -0.5], [1.5, 1.5]], dtype=torch.float64)
    X = minimise(factory, rosenbrock_rows, X0, lr, steps)
    assert (X - 1).abs().max() < TOL


@pytest.mark.parametrize("name", METHODS)
def test_ill_conditioned_matrix_least_squares_is_solved(name):
    factory, _, (lr, steps) = METHODS[name]
    A, B, X_star = least_squares()
    X = minimise(factory, lambda X: 0.5 * (A @ X - B).square().sum(), torch.zeros_like(X_star), lr, steps)
    assert (X - X_star).norm() / X_star.norm() < TOL


class _Net(torch.nn.Module):
    """Conv kernel, complex spectral-like weight, Linear with bias: every kind of parameter."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = torch.nn.Parameter(torch.randn(6, 3, 3, 3, generator=g) / 5)
        self.spectral = torch.nn.Parameter(torch.randn(6, 5, 4, 3, dtype=torch.complex64, generator=g) / 5)
        self.fc = torch.nn.Linear(5, 2)

    def forward(self, x):
        h = torch.nn.functional.conv2d(x, self.conv, padding=1)  # (B, 6, 8, 8)
        z = torch.fft.rfft2(h)[..., :4, :3]
        h = torch.fft.irfft2(torch.einsum("bixy,ioxy->boxy", z, self.spectral), s=(8, 8))
        return self.fc(h.mean((-2, -1)).tanh())


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 2, generator=g)


def _train(model, opt, seeds):
    for s in seeds:
        x, y = _batch(s)
        opt.zero_grad()
        (model(x) - y).square().mean().backward()
        opt.step()


@pytest.mark.parametrize("name, complex_mode", [(n, m) for n in ("muon", "normuon", "root", "auon", "hybrid_auon")
                                                 for m in ("per_mode", "flatten")] + [("adamp", None), ("sgdp", None)])
def test_state_dict_round_trip_continues_bit_identically(name, complex_mode):
    options = {"complex_mode": complex_mode} if complex_mode else {}
    if name == "sgdp":
        options["momentum"] = 0.9
    train_resume_and_compare(_Net, lambda model: build_optimizer(name, model, lr=1e-2, weight_decay=1e-2, **options),
                             _train, range(3), range(3, 6))


@pytest.mark.parametrize("factory, kwargs, message", [
    (Muon, {"lr": -1.0}, "lr must be in [0, inf), got -1.0"),
    (Muon, {"momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
    (Muon, {"weight_decay": -0.1}, "weight_decay must be in [0, inf), got -0.1"),
    (Muon, {"ns_steps": 0}, "ns_steps must be an integer >= 1, got 0"),
    (Muon, {"adjust_lr_fn": "spectral"}, "adjust_lr_fn must be one of ('original', 'match_rms_adamw'), got 'spectral'"),
    (Muon, {"complex_mode": "real"}, "complex_mode must be one of ('per_mode', 'flatten'), got 'real'"),
    (Muon, {"ns_coefficients": (1.0, 2.0)}, "ns_coefficients must be a triple (a, b, c), got (1.0, 2.0)"),
    (NorMuon, {"beta2": 1.5}, "beta2 must be in [0, 1), got 1.5"),
    (NorMuon, {"momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
    (ROOT, {"quantile": 0.0}, "quantile must be in (0, 1], got 0.0"),
    (ROOT, {"lr": -1e-3}, "lr must be in [0, inf), got -0.001"),
    (AuON, {"gamma": 0.0}, "gamma must be in (0, inf), got 0.0"),
    (AuON, {"ns_steps": -1}, "ns_steps must be an integer >= 0, got -1"),
    (HybridAuON, {"momentum": -0.5}, "momentum must be in [0, 1), got -0.5"),
    (AdamP, {"lr": -1.0}, "lr must be in [0, inf), got -1.0"),
    (AdamP, {"betas": (0.9, 1.0)}, "betas[1] must be in [0, 1), got 1.0"),
    (AdamP, {"wd_ratio": 2.0}, "wd_ratio must be in [0, 1], got 2.0"),
    (AdamP, {"delta": float("nan")}, "delta must be a finite number in [0, inf), got nan"),
    (SGDP, {"lr": 0.1, "momentum": 1.0}, "momentum must be in [0, 1), got 1.0"),
    (SGDP, {"lr": -0.1}, "lr must be in [0, inf), got -0.1"),
])
def test_bad_hyperparameters_raise_a_value_error_naming_argument_and_value(factory, kwargs, message):
    with pytest.raises(ValueError) as info:
        factory([torch.nn.Parameter(torch.ones(3, 3))], **kwargs)
    assert str(info.value) == message


def test_bad_names_and_shapes_raise_value_errors():
    model = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match="unknown optimizer 'moun'; expected one of: .*muon, normuon, root"):
        build_optimizer("moun", model)
    with pytest.raises(ValueError, match=r"Muon orthogonalizes matrices, got a parameter of shape \(4,\)"):
        Muon([model.bias])
    with pytest.raises(ValueError, match="lr must be positive, got -1"):
        build_optimizer("muon", model, lr=-1)
    with pytest.raises(ValueError, match="no parameter of the model is a hidden weight matrix"):
        build_optimizer("muon", torch.nn.Linear(4, 1))
