"""PINNSolver: derivatives, hard constraints, samplers, refinement, the Trainer path, validation."""
import math

import pytest
import torch
from torch import nn

from sciml import Trainer
from sciml.solvers import PINNSolver
from sciml.solvers.pinn import Collocation, Domain, PDEProblem, unit_samples
from sciml.solvers.pinn_problems import allen_cahn, burgers, convection, poisson, reaction, wave


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


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_hard_constraints_hold_to_rounding(dtype, tol):
    """Exact up to rounding: in float32 the Burgers lift −sin(πx) is 8.7e-8 at x = ±1."""
    solver = PINNSolver(burgers(), hard=True, dtype=dtype, seed=1)
    dom = solver.problem.domain
    b, i0 = dom.boundary(200, seed=2), dom.initial(200, seed=3)
    assert solver.sample(b).abs().max() <= tol
    assert (solver.sample(i0) + torch.sin(math.pi * i0[:, 0])).abs().max() <= tol
    assert solver.terms == ("residual",)

    w = PINNSolver(wave(), hard=True, dtype=dtype, seed=1)
    pts = w.problem.domain.initial(200, seed=4)
    d = w.derivatives(pts)
    assert (d.u - w.problem.initial(pts)).abs().max() <= tol
    assert d["t"].abs().max() <= tol  # u_t(x, 0) = 0 through the tanh² factor
    assert w.sample(w.problem.domain.boundary(200, seed=5)).abs().max() <= tol

    p = PINNSolver(poisson(dim=2), hard=True, dtype=dtype, seed=1)
    assert p.sample(p.problem.domain.boundary(400, seed=6)).abs().max() <= tol

    # u(x, 0) = u0 through the distance t; convection and reaction are also exactly periodic through
    # the (cos, sin) features (convection in u_x and u_xx too: its lift sin x is smooth and periodic),
    # Allen–Cahn keeps its periodic loss term (its u0 is not periodic in u_x)
    for problem, fourier in ((convection(), 10.0), (reaction(), None), (allen_cahn(t_end=0.25), None)):
        s = PINNSolver(problem, hard=True, dtype=dtype, seed=1, fourier_scale=fourier)
        pts = problem.domain.initial(200, seed=7)
        u0 = problem.initial(pts).to(dtype)
        assert (s.sample(pts) - u0).abs().max() <= tol * max(1.0, float(u0.abs().max())), problem.name
        inner = pts + torch.tensor([0.0, 0.1], dtype=torch.float64)  # off the slice the network does act
        assert (s.sample(inner) - problem.initial(inner).to(dtype)).abs().max() > 1e-3, problem.name
        if problem.name == "allen_cahn":
            assert s.terms == ("residual", "boundary")
            continue
        assert s.terms == ("residual",)
        pairs = problem.domain.periodic_pairs(200, seed=8)
        lo, hi = s.derivatives(pairs[:, 0]), s.derivatives(pairs[:, 1])
        keys = ("x", "xx") if problem.name == "convection" else ()
        for key in keys:
            gap = (lo[key] - hi[key]).abs().max()
            assert gap <= 100 * tol * lo[key].abs().max().clamp_min(1.0), (problem.name, key)
        assert (lo.u - hi.u).abs().max() <= 10 * tol, problem.name


def _batchnorm_network():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 16), nn.BatchNorm1d(16), nn.Tanh(), nn.Linear(16, 1))


def test_a_network_that_mixes_points_is_refused():
    """Derivatives takes the gradient of Σ_i u(p_i) as the per-point gradient, which holds only
    for a pointwise network; BatchNorm (in training mode, the mode of the loss) mixes the batch."""
    net = _batchnorm_network()
    p = burgers().domain.interior(16, seed=0).float()
    z = (2 * (p - torch.tensor([-1.0, 0.0])) / torch.tensor([2.0, 1.0]) - 1).requires_grad_(True)
    cross = torch.autograd.grad(net(z)[0, 0], z)[0][1:].abs().max()
    assert cross > 1e-3  # what the check detects: u at p_0 moves with the other points
    with pytest.raises(ValueError, match="network must act on each point alone"):
        PINNSolver(burgers(), network=net)
    net.eval()  # refused too: the Trainer trains in training mode, and the check restores the mode
    with pytest.raises(ValueError, match="network must act on each point alone"):
        PINNSolver(burgers(), network=net)
    assert not any(m.training for m in net.modules())
    # pointwise networks pass: the default MLP, and one with dropout (a mask per entry)
    assert PINNSolver(burgers(), dtype=torch.float64).network.training
    dropout = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Dropout(0.2), nn.Linear(8, 1))
    state = torch.random.get_rng_state()
    PINNSolver(burgers(), network=dropout, dtype=torch.float64)
    assert torch.equal(torch.random.get_rng_state(), state)  # the check draws nothing from the global stream


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
    with pytest.raises(ValueError, match=r"weights must be finite non-negative numbers \(not bools\)"):
        PINNSolver(burgers(), weights={"residual": True})
    with pytest.raises(ValueError, match=r"weights has terms \['initial'\] that this solver does not have"):
        PINNSolver(burgers(), hard=True, weights={"initial": 10.0})  # hard=True satisfies u(x, 0): no such term
    assert PINNSolver(burgers(), weights={"initial": 10.0}).weights == {"residual": 1.0, "boundary": 1.0,
                                                                        "initial": 10.0}
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
