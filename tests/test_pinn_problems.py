"""PINN problems: their references satisfy their PDEs, and a short run of each lowers the error."""
import numpy as np
import pytest
import torch

from sciml import Trainer
from sciml.solvers import PINNSolver
from sciml.solvers.pinn import Derivatives
from sciml.solvers.pinn_problems import (allen_cahn, allen_cahn_reference, burgers, burgers_reference, convection,
                                         poisson, reaction, wave)


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest


def test_burgers_reference_satisfies_the_pde():
    nu = 0.01 / np.pi
    x, t = np.meshgrid(np.linspace(-0.95, 0.95, 39), np.linspace(0.05, 1.0, 20), indexing="ij")

    def fd_residual(h):
        def u(dx, dt):
            return burgers_reference(x + dx, t + dt, nu)
        ut = (u(0, h) - u(0, -h)) / (2 * h)
        ux = (u(h, 0) - u(-h, 0)) / (2 * h)
        uxx = (u(h, 0) - 2 * u(0, 0) + u(-h, 0)) / h**2
        return np.abs(ut + u(0, 0) * ux - nu * uxx).max(), np.abs(ut).max()

    r_coarse, _ = fd_residual(3e-4)
    r_fine, scale = fd_residual(1e-4)
    assert r_fine < 2e-5 and scale > 1  # u_t reaches about 8.7 on this grid
    assert r_coarse / r_fine > 7  # the residual left is the O(h²) error of the differences
    assert np.allclose(burgers_reference(np.array([-0.5, 0.5]), np.zeros(2)), [1.0, -1.0])
    assert abs(burgers_reference(1.0, 0.7)) < 1e-12  # u(±1, t) = 0


@pytest.mark.parametrize("make", [lambda: convection(40.0), reaction, wave, lambda: poisson(dim=2, k=2)],
                         ids=["convection", "reaction", "wave", "poisson"])
def test_analytic_solutions_satisfy_the_pde_and_data(make):
    problem = make()
    pts = problem.domain.interior(256, "sobol", seed=0).requires_grad_(True)
    d = Derivatives(problem.solution(pts), pts, problem.domain.names)
    assert problem.residual(pts, d).abs().max() < 1e-9 * max(1.0, float(d.grad.detach().abs().max()) ** 2)
    if problem.domain.time is not None:
        p0 = problem.domain.initial(64, seed=1)
        assert torch.allclose(problem.solution(p0), problem.initial(p0), atol=1e-12)
    if problem.boundary == "periodic":
        pairs = problem.domain.periodic_pairs(64, seed=2)
        assert torch.allclose(problem.solution(pairs[:, 0]), problem.solution(pairs[:, 1]), atol=1e-12)
    elif problem.boundary is not None:
        b = problem.domain.boundary(64, seed=3)
        assert torch.allclose(problem.solution(b), problem.boundary(b), atol=1e-12)
    pts, vals = problem.reference
    assert torch.allclose(problem.solution(pts), vals)


def test_allen_cahn_etdrk4_is_fourth_order():
    def run(dt):
        return allen_cahn_reference(eps=1e-2, n=64, dt=dt, t_end=0.5, snapshots=2)[2][:, -1]

    exact = run(1e-3)
    e1, e2 = np.abs(run(5e-2) - exact).max(), np.abs(run(2.5e-2) - exact).max()
    assert 12 < e1 / e2 < 20  # 2⁴ = 16 for a fourth-order scheme
    x, t, u = allen_cahn_reference(eps=1e-2, n=64, dt=1e-2, t_end=0.5, snapshots=11)
    assert u.shape == (64, 11) and np.allclose(u[:, 0], x**2 * np.cos(np.pi * x))


# (problem, L-BFGS iterations, factor by which the relative L2 error must fall); each runs in seconds.
# Convection and wave at gentler parameters than the benchmark's (β = 40, β = 5), and Allen–Cahn on
# t ∈ [0, 0.25]: a few hundred iterations do not get through the harder set-ups.
SHORT_RUNS = {
    "burgers": (burgers, 100, 1.8),
    "convection": (lambda: convection(5.0), 150, 10.0),
    "reaction": (reaction, 150, 3.0),
    "wave": (lambda: wave(2.0), 150, 3.0),
    "poisson": (lambda: poisson(dim=2), 150, 100.0),
    "allen_cahn": (lambda: allen_cahn(t_end=0.25), 150, 2.5),
}


@pytest.mark.parametrize("name", list(SHORT_RUNS))
def test_short_run_lowers_the_error(name):
    make, iterations, factor = SHORT_RUNS[name]
    solver = PINNSolver(make(), hidden=(20, 20), hard=True, dtype=torch.float64, seed=0)
    data = solver.collocation(256, 32, 32)
    before = solver.relative_error()
    Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, device="cpu", progress=False,
            optimizer_options={"max_iter": iterations}).fit(data)
    after = solver.relative_error()
    assert after < before / factor, (before, after)
