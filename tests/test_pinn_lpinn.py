"""Lagrangian PINN (Mojgani, Balajewicz & Hassanzadeh 2023) against the Eulerian PINN at β = 50."""
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from sciml.solvers.lpinn import (EulerianPINNSolver, LagrangianPINNSolver, convection_diffusion_exact,
                                 space_time_grid)
from sciml.train import Trainer


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest


def _train(solver, adam_steps=100, lbfgs_epochs=25, seed=0):
    """Full-batch Adam (lr 3e-3) then L-BFGS (20 iterations per epoch) on a 32 × 16 grid."""
    train = TensorDataset(space_time_grid(32, 16))
    common = dict(batch_size=len(train), progress=False, device="cpu", seed=seed)
    Trainer(solver, optimizer="adam", lr=3e-3, epochs=adam_steps, **common).fit(train)
    Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=lbfgs_epochs, optimizer_options={"max_iter": 20},
            **common).fit(train)
    return solver


def test_exact_solution_is_the_damped_travelling_wave():
    p = space_time_grid(16, 5, dtype=torch.float64)
    x, t = p[:, 0], p[:, 1]
    for beta, nu in ((50.0, 0.0), (10.0, 0.3)):
        ref = torch.exp(-nu * t) * torch.sin(x - beta * t)
        assert torch.allclose(convection_diffusion_exact(x, t, beta, nu), ref, rtol=0, atol=1e-12)
    # a two-mode u0: each mode decays at its own rate e^{-ν k² t}
    u = convection_diffusion_exact(x, t, 2.0, 0.1, lambda z: torch.sin(z) + torch.cos(3 * z))
    ref = torch.exp(-0.1 * t) * torch.sin(x - 2 * t) + torch.exp(-0.9 * t) * torch.cos(3 * (x - 2 * t))
    assert torch.allclose(u, ref, rtol=0, atol=1e-12)


def test_lagrangian_pinn_solves_beta_50_where_the_eulerian_pinn_fails():
    """β = 50, ν = 0, same training (100 Adam steps, 500 L-BFGS iterations, 512 points).

    Measured on 2 shared CPU cores, seeds 0–3: LPINN relative L2 1.6e-3 … 3.1e-3; the Eulerian
    PINN (more parameters than both branches together) stays at about 1 or above.
    """
    test = space_time_grid(128, 64)
    torch.manual_seed(0)
    lagrangian = _train(LagrangianPINNSolver(50.0, hidden=32, depth=4))
    torch.manual_seed(0)
    eulerian = _train(EulerianPINNSolver(50.0, hidden=48, depth=4))
    n_l = sum(p.numel() for p in lagrangian.parameters())
    n_e = sum(p.numel() for p in eulerian.parameters())
    assert n_e >= n_l  # the baseline is not smaller
    assert float(lagrangian.evaluate(test)["rel_l2"]) < 1e-2
    assert float(eulerian.evaluate(test)["rel_l2"]) > 0.5


def test_characteristics_and_diffusion_are_learned():
    """β = 5, ν = 0.1: the x-branch learns dx/dt = β, the u-branch the damped amplitude."""
    torch.manual_seed(0)
    solver = _train(LagrangianPINNSolver(5.0, nu=0.1, hidden=24, depth=3), adam_steps=100, lbfgs_epochs=10)
    p = space_time_grid(32, 16)
    xi, t = p[:, 0], p[:, 1]
    with torch.no_grad():
        assert (solver.characteristic(xi, t) - (xi + 5.0 * t)).abs().max() < 2e-2
    assert float(solver.evaluate(space_time_grid(64, 32))["rel_l2"]) < 2e-2


def test_sample_inverts_the_characteristic_map_periodically():
    """A curved, monotone map x(ξ, t) (drift β t plus a small learned wiggle) is inverted mod 2π."""
    torch.manual_seed(0)
    solver = LagrangianPINNSolver(30.0, hidden=8, depth=2)
    with torch.no_grad():
        solver.x_branch[-1].weight.mul_(0.02)  # wiggle of amplitude ~0.5 at t = 0.7, x_ξ > 0
        solver.x_branch[-1].bias.fill_(1.0)
    xi = torch.linspace(0, 2 * math.pi, 50)[:-1]
    t = torch.full_like(xi, 0.7)
    with torch.no_grad():
        x = torch.remainder(solver.characteristic(xi, t), 2 * math.pi)
        wiggle = solver.characteristic(xi, t) - xi - 30.0 * t
        assert wiggle.abs().max() > 0.05  # the map is not a plain shift
        assert torch.allclose(solver.sample(x, t), solver.state(xi, t), atol=1e-5)


def test_sample_refuses_a_folded_characteristic_map():
    """Where x_ξ ≤ 0 the map ξ ↦ x(ξ, t) folds: x has several labels ξ and Newton's step divides by
    a slope of the wrong sign, so sample raises instead of returning one of them (or garbage)."""
    torch.manual_seed(0)
    solver = LagrangianPINNSolver(30.0, hidden=8, depth=2)
    with torch.no_grad():
        solver.x_branch[-1].weight.mul_(0.5)  # a wiggle in ξ that 30·t amplifies beyond slope 1
    xi = torch.linspace(0, 2 * math.pi, 50)[:-1].requires_grad_()
    t = torch.full_like(xi, 0.7)
    slope = torch.autograd.grad(solver.characteristic(xi, t).sum(), xi)[0]
    assert slope.min() < 0 < slope.max()  # folded in places
    with torch.no_grad():
        x = torch.remainder(solver.characteristic(xi, t), 2 * math.pi)
    with pytest.raises(RuntimeError, match="not increasing in ξ"):
        solver.sample(x, t)


@pytest.mark.parametrize("cls", [LagrangianPINNSolver, EulerianPINNSolver])
def test_networks_see_time_scaled_by_t_max(cls):
    """t_max = T sets the domain [0, 2π] × [0, T]; the networks see t / T, so a solver on [0, 2]
    with the weights of one on [0, 1] gives at (ξ, 2t) what that one gives at (ξ, t)."""
    torch.manual_seed(0)
    short, long = cls(5.0, hidden=8, depth=2), cls(5.0, t_max=2.0, hidden=8, depth=2)
    long.load_state_dict(short.state_dict())
    p = space_time_grid(16, 5)
    x, t = p[:, 0], p[:, 1]
    with torch.no_grad():
        if cls is LagrangianPINNSolver:
            assert torch.allclose(long.state(x, 2 * t), short.state(x, t), rtol=0, atol=1e-6)
            # the displacement t·β·N doubles with the time it has had
            assert torch.allclose(long.characteristic(x, 2 * t) - x, 2 * (short.characteristic(x, t) - x),
                                  rtol=0, atol=1e-5)
            assert not torch.allclose(short.state(x, 2 * t), short.state(x, t), atol=1e-3)  # time does matter
        else:
            assert torch.allclose(long.sample(x, 2 * t), short.sample(x, t), rtol=0, atol=1e-6)
            assert not torch.allclose(short.sample(x, 2 * t), short.sample(x, t), atol=1e-3)


@pytest.mark.parametrize("cls", [LagrangianPINNSolver, EulerianPINNSolver])
def test_bad_arguments_raise_naming_them(cls):
    with pytest.raises(ValueError, match="nu must be non-negative, got -0.1"):
        cls(1.0, nu=-0.1)
    with pytest.raises(ValueError, match="t_max must be positive, got 0"):
        cls(1.0, t_max=0.0)
    with pytest.raises(ValueError, match="beta must be finite, got inf"):
        cls(math.inf)
    with pytest.raises(TypeError, match="beta must be a real number, got str"):
        cls("50")
    with pytest.raises(TypeError, match="u0 must be a callable"):
        cls(1.0, u0=3.0)
    solver = cls(1.0, hidden=4, depth=2)
    with pytest.raises(ValueError, match=r"batch must have shape \(B, 2\) holding \(x, t\), got \(5, 3\)"):
        solver.loss(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="x and t must be 1-D of the same length"):
        solver.sample(torch.zeros(4), torch.zeros(5))
    with pytest.raises(ValueError, match="n_x must be a positive integer, got 0"):
        space_time_grid(0, 4)
