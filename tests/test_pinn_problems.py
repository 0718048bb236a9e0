"""PINN problems: their references satisfy their PDEs, and a short run of each lowers the error."""
import numpy as np
import pytest
import torch
from scipy.integrate import quad

from sciml import Trainer
from sciml.solvers import PINNSolver
from sciml.solvers.pinn import Derivatives
from sciml.solvers.pinn_problems import (allen_cahn, allen_cahn_reference, burgers, burgers_reference, convection,
                                         poisson, reaction, wave)


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest


def _burgers_fd(x, t, nu, h):
    """Central differences of the reference with step h: (max |u_t + u u_x − ν u_xx|, max |u_t|, max |ν u_xx|)."""
    def u(dx, dt):
        return burgers_reference(x + dx, t + dt, nu)
    ut = (u(0, h) - u(0, -h)) / (2 * h)
    ux = (u(h, 0) - u(-h, 0)) / (2 * h)
    uxx = (u(h, 0) - 2 * u(0, 0) + u(-h, 0)) / h**2
    return np.abs(ut + u(0, 0) * ux - nu * uxx).max(), np.abs(ut).max(), np.abs(nu * uxx).max()


def test_burgers_reference_satisfies_the_pde():
    nu = 0.01 / np.pi
    x, t = np.meshgrid(np.linspace(-0.95, 0.95, 39), np.linspace(0.05, 1.0, 20), indexing="ij")
    r_coarse = _burgers_fd(x, t, nu, 3e-4)[0]
    r_fine, scale, _ = _burgers_fd(x, t, nu, 1e-4)
    assert r_fine < 2e-5 and scale > 1  # u_t reaches about 8.7 on this grid
    assert r_coarse / r_fine > 7  # the residual left is the O(h²) error of the differences
    assert np.allclose(burgers_reference(np.array([-0.5, 0.5]), np.zeros(2)), [1.0, -1.0])
    assert abs(burgers_reference(1.0, 0.7)) < 1e-12  # u(±1, t) = 0


def _cole_hopf_by_quad(x, t, nu):
    """The Cole–Hopf ratio at one point by adaptive quadrature in y = x − η over the whole range
    where its exponent is within 40 of its peak (both peaks y ≈ ±1 near the shock), a method
    independent of burgers_reference's trapezoidal rule in z."""
    def exponent(y):
        return -(x - y) ** 2 / (4 * nu * t) - np.cos(np.pi * y) / (2 * np.pi * nu)

    ys = np.linspace(x - 4, x + 4, 80001)
    e = exponent(ys)
    lo, hi = ys[e > e.max() - 40][[0, -1]]
    kw = dict(limit=1000, epsabs=0, epsrel=1e-12, points=np.linspace(lo, hi, 40)[1:-1])
    num = quad(lambda y: np.sin(np.pi * y) * np.exp(exponent(y) - e.max()), lo, hi, **kw)[0]
    den = quad(lambda y: np.exp(exponent(y) - e.max()), lo, hi, **kw)[0]
    return -num / den


@pytest.mark.parametrize("nu", [0.01 / np.pi, 0.001 / np.pi])
def test_burgers_reference_matches_adaptive_quadrature(nu):
    """Points in the smooth part and inside the shock layer (|x| ≤ 0.01). At ν = 0.001/π the former
    150 Gauss–Hermite nodes were off by 0.22 and ≥ 400 nodes gave NaN."""
    pts = [(-0.5, 0.3), (0.3, 1.0), (0.95, 0.9), (0.0005, 0.8), (0.002, 0.4), (0.004, 0.7), (-0.01, 0.5)]
    got = burgers_reference(np.array([p[0] for p in pts]), np.array([p[1] for p in pts]), nu)
    want = np.array([_cole_hopf_by_quad(x, t, nu) for x, t in pts])
    assert np.abs(got - want).max() < 1e-10, np.abs(got - want)
    x, t = np.meshgrid(np.linspace(-1, 1, 256), np.linspace(0, 1, 100), indexing="ij")
    assert np.isfinite(burgers_reference(x, t, nu)).all()


def test_burgers_reference_reproduces_basdevant_maximal_slope():
    """Basdevant et al. 1986 (Table 1): at ν = 0.01/π the slope at x = 0 is largest at t = 1.6037/π,
    where u_x(0, t) = −152.00516 (quoted to 8 digits). Central differences with h = 1e-6 err by
    about 1e-6 (they give −152.0051604 and −152.0051615 at h = 1e-6, 3e-7)."""
    t, h = 1.6037 / np.pi, 1e-6
    slope = (burgers_reference(h, t) - burgers_reference(-h, t)) / (2 * h)
    assert abs(slope - (-152.00516)) < 1e-5, slope


@pytest.mark.parametrize("nu, h, tol", [(0.01 / np.pi, 1e-5, 1e-4), (0.001 / np.pi, 1e-6, 1e-3)])
def test_burgers_reference_satisfies_the_pde_in_the_shock_layer(nu, h, tol):
    """Inside the layer |x| ≤ 0.01, t ∈ [0.3, 1] (width about 0.006 at ν = 0.01/π), where ν u_xx
    reaches about 57 (229 at ν = 0.001/π): the residual of central differences is below ``tol``
    (about 1e-6 of those terms) and falls like h² with the step."""
    x, t = np.meshgrid(np.linspace(-0.01, 0.01, 21), np.linspace(0.3, 1.0, 15), indexing="ij")
    r, _, scale = _burgers_fd(x, t, nu, h)
    r_coarse = _burgers_fd(x, t, nu, 3 * h)[0]
    assert r < tol and scale > 50, (r, scale)
    assert r_coarse / r > 7  # 9 for the O(h²) error of the differences: the reference itself is exact


def test_burgers_reference_refuses_too_few_nodes():
    x, t = np.linspace(-1, 1, 64), np.ones(64)
    with pytest.raises(ValueError, match="nodes=200 are too few for nu=0.000318"):
        burgers_reference(x, t, 0.001 / np.pi, nodes=200)
    assert np.abs(burgers_reference(x, t, 0.001 / np.pi, nodes=400) - burgers_reference(x, t, 0.001 / np.pi)).max() \
        < 1e-12  # an explicit count that passes the check gives the same values
    with pytest.raises(ValueError, match="nu must be a positive finite number"):
        burgers_reference(x, t, 0.0)
    with pytest.raises(ValueError, match="x and t must be finite with t >= 0"):
        burgers_reference(x, -t)


def test_problem_arguments_are_checked_at_the_door():
    for beta in (2.5, 0, -1, True, "5"):
        with pytest.raises(ValueError, match="beta must be an integer >= 1"):
            wave(beta)
    assert torch.equal(wave(2.0).reference[1], wave(2).reference[1])
    # an integer β keeps u(1, t) = 0 in the solution (a non-integer one broke it)
    b = torch.tensor([[1.0, 0.3], [1.0, 0.7]], dtype=torch.float64)
    assert wave(3).solution(b).abs().max() < 1e-12
    for grid in ((0, 100), (256,), (256, 1.5), 256):
        with pytest.raises(ValueError, match="grid must be 2 integer point counts >= 2"):
            burgers(grid=grid)
    for grid in (0, 1, 2.0):
        with pytest.raises(ValueError, match="grid must be an integer point count >= 2"):
            poisson(grid=grid)
    for snapshots in (1, 0):
        with pytest.raises(ValueError, match="snapshots must be an integer >= 2"):
            allen_cahn_reference(snapshots=snapshots)
    with pytest.raises(ValueError, match="t_end/dt = 0 steps"):
        allen_cahn_reference(dt=1e-2, t_end=1e-3, snapshots=2)


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
    "wave": (lambda: wave(2), 150, 3.0),
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
