"""SDGD (Hu, Shukla, Karniadakis & Kawaguchi 2024): the unbiased dimension-sampled gradient."""
import itertools

import pytest
import torch

from sciml.solvers.pinn import PDEProblem, PINNSolver
from sciml.solvers.pinn_problems import burgers, poisson
from sciml.solvers.sdgd import SDGDSolver, TwoBodyPoisson
from sciml.train import Trainer


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest


def _flat_grad(loss, solver):
    return torch.cat([g.flatten() for g in torch.autograd.grad(loss, list(solver.parameters()))])


def test_forcing_is_minus_the_laplacian_of_the_exact_solution():
    """One sign convention with the built-in poisson: −Δu = f."""
    problem = TwoBodyPoisson(7, seed=3, dtype=torch.float64)
    x = problem.sample(16, torch.Generator().manual_seed(0)).requires_grad_()
    du = torch.autograd.grad(problem.exact(x).sum(), x, create_graph=True)[0]
    lap = sum(torch.autograd.grad(du[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(7))
    assert torch.allclose(problem.forcing(x), -lap, rtol=0, atol=1e-12)
    sphere = x.detach() / x.detach().norm(dim=1, keepdim=True)
    assert problem.exact(sphere).abs().max() < 1e-12  # u* = 0 on the boundary


def test_sampled_residual_is_the_scaled_partial_laplacian():
    """(R_I): −(d/|I|) Σ_{i∈I} ∂²u/∂x_i² − f, with u = (1 − ‖x‖²) N(x) from autograd."""
    problem = TwoBodyPoisson(12, dtype=torch.float64)
    solver = SDGDSolver(problem, dims=3, hidden=16, depth=3, seed=0)
    x = problem.sample(10, torch.Generator().manual_seed(1)).requires_grad_()
    u = solver.u(x)
    du = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
    dims = torch.tensor([0, 5, 11])
    second = torch.stack([torch.autograd.grad(du[:, i].sum(), x, retain_graph=True)[0][:, i] for i in dims], 1)
    expect = -12 / 3 * second.sum(1) - problem.forcing(x.detach())
    assert torch.allclose(solver.sampled_residual(x.detach(), dims), expect, rtol=0, atol=1e-12)
    assert solver.sample(x.detach() / x.detach().norm(dim=1, keepdim=True)).abs().max() < 1e-12  # hard u = 0


def test_seed_fixes_network_and_index_sets():
    problem = TwoBodyPoisson(20, dtype=torch.float64)
    a = SDGDSolver(problem, dims=4, hidden=8, depth=2, seed=5)
    b = SDGDSolver(problem, dims=4, hidden=8, depth=2, seed=5)
    torch.manual_seed(0)  # the global stream plays no part
    x = problem.sample(8, torch.Generator().manual_seed(0))
    assert torch.equal(a.sample(x), b.sample(x)) and torch.equal(a.draw_dims(4), b.draw_dims(4))
    assert float(a.loss(x).detach()) == float(b.loss(x).detach())
    assert not torch.equal(SDGDSolver(problem, dims=4, hidden=8, depth=2, seed=6).sample(x), a.sample(x))


def test_any_pde_problem_with_a_dimension_sum():
    """The same problem description as PINNSolver: −Δu = 2π² sin(πx)sin(πy) on the unit square."""
    solver = SDGDSolver(poisson(dim=2), dims=1, residual_dims=2, hidden=8, depth=2, dtype=torch.float64)
    pinn = PINNSolver(poisson(dim=2), hidden=(8,), hard=True, dtype=torch.float64)
    x = poisson(dim=2).domain.interior(32)
    assert torch.allclose(solver.residual(x), pinn.residual(x), atol=1e-12)  # same weights, same residual
    rows = torch.stack([solver.sampled_residual(x, torch.tensor([i])) for i in range(2)])
    assert torch.allclose(rows.mean(0), pinn.residual(x), atol=1e-12)  # E_I[r_I] = r


def test_gradient_is_exactly_unbiased_over_all_index_sets():
    """E over all equally likely (I, J) with |I| = |J| = 2 of d = 5 equals the full gradient (G)."""
    problem = TwoBodyPoisson(5, seed=1, dtype=torch.float64)
    solver = SDGDSolver(problem, dims=2, hidden=16, depth=3)
    x = problem.sample(20, torch.Generator().manual_seed(0))
    every = torch.arange(5)
    full_loss = solver.residual_loss(x, every, every)
    full = _flat_grad(full_loss, solver)
    subsets = [torch.tensor(s) for s in itertools.combinations(range(5), 2)]
    mean, value = torch.zeros_like(full), 0.0
    for i, j in itertools.product(subsets, subsets):
        loss = solver.residual_loss(x, i, j)
        mean += _flat_grad(loss, solver) / len(subsets) ** 2
        value += float(loss.detach()) / len(subsets) ** 2
    assert (mean - full).norm() / full.norm() < 1e-12
    assert value == pytest.approx(float(full_loss.detach()), rel=1e-12)  # the loss value is unbiased too


def test_monte_carlo_mean_of_sampled_gradients_matches_full_gradient_in_100d():
    """150 draws of (I, J), |I| = |J| = 10 of d = 100: the mean is within 2% of the full gradient.

    The forcing is set to zero so that the residual is the network's own Laplacian, where the
    dimension sampling noise is largest relative to the gradient (measured: 0.3% at 150 draws).
    """
    base = TwoBodyPoisson(100, dtype=torch.float64).problem()
    problem = PDEProblem(name="laplace", domain=base.domain, residual=lambda p, d: -d.laplacian(), lift=base.lift,
                         distance=base.distance, boundary=base.boundary, hard_terms=("boundary",))
    solver = SDGDSolver(problem, dims=10, hidden=16, depth=3, dtype=torch.float64,
                        generator=torch.Generator().manual_seed(5))
    x = TwoBodyPoisson(100).sample(32, torch.Generator().manual_seed(0)).double()
    every = torch.arange(100)
    full = _flat_grad(solver.residual_loss(x, every, every), solver)
    draws = 150
    mean = sum(_flat_grad(solver.loss(x), solver) for _ in range(draws)) / draws
    one = _flat_grad(solver.loss(x), solver)
    assert (mean - full).norm() / full.norm() < 0.02
    assert (one - full).norm() / full.norm() > (mean - full).norm() / full.norm()  # averaging helps


def test_short_sdgd_run_in_100_dimensions_lowers_the_error_tenfold():
    """150 Adam steps, 50 points and 10 of 100 dimensions per step: relative L2 1.0 → below 0.1."""
    problem = TwoBodyPoisson(100, seed=0)
    test = problem.sample(2000, torch.Generator().manual_seed(123))
    torch.manual_seed(0)
    solver = SDGDSolver(problem, dims=10, hidden=32, depth=4)
    before = float(solver.evaluate(test)["rel_l2"])
    train = problem.dataset(150 * 50, torch.Generator().manual_seed(1))  # a fresh batch every step
    Trainer(solver, optimizer="adam", lr=3e-3, epochs=1, batch_size=50, progress=False, device="cpu").fit(train)
    after = float(solver.evaluate(test)["rel_l2"])
    assert before > 0.9
    assert after < before / 10


def test_full_dimensions_give_the_plain_pinn_loss():
    problem = TwoBodyPoisson(8, dtype=torch.float64)
    solver = SDGDSolver(problem, dims=8, residual_dims=8, hidden=8, depth=2)
    x = problem.sample(5, torch.Generator().manual_seed(0))
    assert float(solver.loss(x)) == pytest.approx(float(solver.residual(x).pow(2).mean()), rel=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"dims": 0}, "dims must be a positive integer"),
    ({"dims": 11}, "dims must be at most the dimension 10, got 11"),
    ({"residual_dims": 20}, "residual_dims must be at most"),
    ({"hidden": -1}, "hidden must be a positive integer, got -1"),
])
def test_bad_arguments_raise_value_error_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SDGDSolver(TwoBodyPoisson(10), **kwargs)


def test_bad_types_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="dim must be at least 2"):
        TwoBodyPoisson(1)
    with pytest.raises(TypeError, match="dims must be an int, got float"):
        SDGDSolver(TwoBodyPoisson(10), dims=2.0)
    with pytest.raises(TypeError, match="problem must be a PDEProblem or a TwoBodyPoisson"):
        SDGDSolver(object())
    solver = SDGDSolver(TwoBodyPoisson(10), dims=2, hidden=8, depth=2)
    with pytest.raises(ValueError, match=r"points must have shape \(\.\.\., dim\) with dim=10, got \(4, 3\)"):
        solver.sample(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="SDGDSolver poses boundary and initial data as conditions"):
        SDGDSolver(_soft(burgers()), dims=1)


def _soft(problem):
    """The problem without its hard-constraint recipe: its boundary stays a loss term."""
    return PDEProblem(name=problem.name, domain=problem.domain, residual=problem.residual, boundary=problem.boundary)


def test_evaluate_reports_each_condition_and_the_error_only_with_a_solution():
    from sciml.solvers.pinn import Domain
    from sciml.solvers.pinn_conditions import Dirichlet
    from sciml.solvers.pinn_geometry import Ball

    problem = PDEProblem("no_solution", Domain(Ball([0.0] * 4, 1.0)), lambda p, d: -d.laplacian() - 8.0,
                         conditions=(Dirichlet(0.0),))
    solver = SDGDSolver(problem, dims=2, hidden=8, depth=2, seed=0)
    batch = solver.collocation(16, 8)[0]
    metrics = solver.evaluate(batch)
    # the Dirichlet term is the mean square of u on the boundary points (g = 0)
    assert set(metrics) == {"dirichlet"}
    assert metrics["dirichlet"].item() == pytest.approx(solver.sample(batch["dirichlet"]).pow(2).mean().item(),
                                                        rel=1e-12)
    with_solution = SDGDSolver(poisson(dim=3), dims=2, hidden=8, depth=2, seed=0)
    assert {"rel_l2", "mse"} <= set(with_solution.evaluate(with_solution.collocation(16, 8)[0]))
