"""PINNSolver: derivatives, hard constraints, samplers, refinement, the Trainer path, validation."""
import math

import pytest
import torch

from sciml import Trainer
from sciml.solvers import PINNSolver
from sciml.solvers.pinn import Collocation, Domain, PDEProblem, unit_samples
from sciml.solvers.pinn_problems import burgers, poisson, wave


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest


def test_autograd_derivatives_match_finite_differences():
    solver = PINNSolver(burgers(), dtype=torch.float64, seed=3)
    p = solver.problem.domain.interior(64, "uniform", seed=1)
    d = solver.derivatives(p)
    h1, h2 = 1e-5, 1e-4

    def u(q):
        with torch.no_grad():
            return solver.u(q)

    e = torch.eye(2, dtype=torch.float64)
    for i, c in enumerate("xt"):
        fd = (u(p + h1 * e[i]) - u(p - h1 * e[i])) / (2 * h1)  # O(h²) ≈ 1e-10
        assert torch.allclose(d[c], fd, rtol=0, atol=1e-8)
        for j, c2 in enumerate("xt"):
            fd2 = (u(p + h2 * (e[i] + e[j])) - u(p + h2 * (e[i] - e[j]))
                   - u(p - h2 * (e[i] - e[j])) + u(p - h2 * (e[i] + e[j]))) / (4 * h2 * h2)
            assert torch.allclose(d[c + c2], fd2, rtol=0, atol=1e-6), c + c2
    assert torch.allclose(d["xt"], d["tx"], rtol=0, atol=1e-12)  # symmetric Hessian


def test_hard_constraints_hold_exactly():
    solver = PINNSolver(burgers(), hard=True, dtype=torch.float64, seed=1)
    dom = solver.problem.domain
    b, i0 = dom.boundary(200, seed=2), dom.initial(200, seed=3)
    assert solver.sample(b).abs().max() <= 1e-12
    assert (solver.sample(i0) + torch.sin(math.pi * i0[:, 0])).abs().max() <= 1e-12
    assert solver.terms == ("residual",)

    w = PINNSolver(wave(), hard=True, dtype=torch.float64, seed=1)
    pts = w.problem.domain.initial(200, seed=4)
    d = w.derivatives(pts)
    assert (d.u - w.problem.initial(pts)).abs().max() <= 1e-12
    assert d["t"].abs().max() <= 1e-12  # u_t(x, 0) = 0 through the t² factor
    assert w.sample(w.problem.domain.boundary(200, seed=5)).abs().max() <= 1e-12

    p = PINNSolver(poisson(dim=2), hard=True, dtype=torch.float64, seed=1)
    assert p.sample(p.problem.domain.boundary(400, seed=6)).abs().max() <= 1e-12


@pytest.mark.parametrize("sampler", ["uniform", "lhs", "sobol"])
def test_samplers_cover_the_domain(sampler):
    dom = Domain([(-1.0, 1.0), (0.0, 4.0)], (0.0, 0.5))
    pts = dom.interior(1024, sampler, seed=0)
    assert pts.shape == (1024, 3) and bool(((pts >= dom.lower) & (pts <= dom.upper)).all())
    assert torch.allclose(pts.mean(0), (dom.lower + dom.upper) / 2, atol=0.2)
    if sampler == "lhs":  # one point in each of the n strata of every axis
        u = unit_samples(50, 3, "lhs", seed=1)
        assert all(torch.equal(torch.sort((u[:, k] * 50).floor()).values, torch.arange(50.0, dtype=torch.float64))
                   for k in range(3))
    b = dom.boundary(4000, sampler, seed=1)
    on_x = (b[:, 0] == -1) | (b[:, 0] == 1)
    on_y = (b[:, 1] == 0) | (b[:, 1] == 4)
    assert bool((on_x | on_y).all())
    assert abs(on_x.double().mean() - 2 / 3) < 0.05  # the faces x = ±1 are twice as long as y = 0, 4
    pairs = dom.periodic_pairs(100, sampler, seed=2)
    moved = (pairs[:, 1] != pairs[:, 0]).sum(1)
    assert bool((moved == 1).all())


def test_adam_then_lbfgs_through_the_trainer_float64():
    solver = PINNSolver(poisson(dim=1, k=2), hidden=(16, 16), dtype=torch.float64, seed=0)
    data = solver.collocation(n_interior=64, n_boundary=2, sampler="sobol")
    Trainer(solver, optimizer="adam", lr=1e-2, epochs=300, batch_size=1, device="cpu", progress=False).fit(data)
    after_adam = solver.relative_error()
    history = Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=2, batch_size=1, device="cpu", progress=False,
                      optimizer_options={"max_iter": 300, "history_size": 50,
                                         "tolerance_grad": 1e-12, "tolerance_change": 1e-14}).fit(data, data)
    after_lbfgs = solver.relative_error()
    assert solver.dtype == torch.float64
    assert after_lbfgs < 1e-3 and after_lbfgs < after_adam / 10, (after_adam, after_lbfgs)
    assert history.last["val_rel_l2"] == pytest.approx(after_lbfgs)


def test_rar_adds_points_where_the_residual_is_large():
    solver = PINNSolver(burgers(), hard=True, dtype=torch.float64, seed=0)
    data = solver.collocation(128, sets=2)
    greedy = solver.refine(data, 20, method="rar", candidates=400, seed=1)
    drawn = solver.refine(data, 20, method="rar-d", k=2.0, c=0.0, candidates=400, seed=1)
    assert len(greedy) == 2 and greedy[0]["interior"].shape == (148, 2)
    pool_r = solver.residual(solver.problem.domain.interior(400, "sobol", 1)).abs()
    top = solver.residual(greedy[0]["interior"][128:]).abs()
    assert torch.allclose(top.sort().values, pool_r.topk(20).values.sort().values)
    assert solver.residual(drawn[1]["interior"][128:]).abs().mean() > 1.2 * pool_r.mean()  # E_p|r| = E|r|³ / E|r|² under k = 2


def test_random_resampling_sets_are_reproducible():
    solver = PINNSolver(burgers())
    a, b = solver.collocation(64, 8, 8, sets=3, seed=5), solver.collocation(64, 8, 8, sets=3, seed=5)
    assert all(torch.equal(a[i][k], b[i][k]) for i in range(3) for k in a[i])
    assert not torch.equal(a[0]["interior"], a[1]["interior"])


def test_bad_input_raises_value_error_naming_the_argument():
    solver = PINNSolver(burgers())
    with pytest.raises(ValueError, match="sampler"):
        solver.collocation(64, sampler="halton")
    for kwargs, name in [({"n_interior": 0}, "n_interior"), ({"n_interior": 8, "n_boundary": -1}, "n_boundary"),
                         ({"n_interior": 8, "n_initial": 0}, "n_initial"), ({"n_interior": 8, "sets": 0}, "sets")]:
        with pytest.raises(ValueError, match=name):
            solver.collocation(**kwargs)
    with pytest.raises(ValueError, match="points"):
        solver.sample(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="batch\\['boundary'\\]"):
        solver.loss({"interior": torch.zeros(4, 2), "boundary": torch.zeros(4, 1), "initial": torch.zeros(4, 2)})
    with pytest.raises(ValueError, match="weights"):
        PINNSolver(burgers(), weights={"pde": 1.0})
    with pytest.raises(ValueError, match="method"):
        solver.refine(solver.collocation(8), 4, method="greedy")
    with pytest.raises(ValueError, match="n_add"):
        solver.refine(solver.collocation(8), 0)
    with pytest.raises(ValueError, match="space"):
        Domain([(1.0, 0.0)])
    with pytest.raises(ValueError, match="n"):
        unit_samples(0, 2)
    with pytest.raises(ValueError, match="dim"):
        poisson(dim=4)
    with pytest.raises(ValueError, match="lift and distance"):
        PDEProblem(name="p", domain=Domain([(0.0, 1.0)]), residual=lambda p, d: d["xx"], lift=lambda p: p[:, 0])
    with pytest.raises(ValueError, match="hard"):
        PINNSolver(PDEProblem(name="p", domain=Domain([(0.0, 1.0)]), residual=lambda p, d: d["xx"]), hard=True)
    with pytest.raises(KeyError, match="coordinate"):
        solver.derivatives(torch.zeros(3, 2))["y"]
    assert isinstance(solver.collocation(8), Collocation)
