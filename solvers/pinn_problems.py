"""PDE problems for :class:`~sciml.solvers.pinn.PINNSolver`, each with a reference solution.

- :func:`burgers`: viscous Burgers, the benchmark of Raissi et al. 2019 (§3.1.1), reference from
  the Cole–Hopf solution by trapezoidal quadrature (:func:`burgers_reference`);
- :func:`convection`, :func:`reaction`, :func:`wave`: the set-ups of Rathore, Lei, Frangella, Lu
  & Udell 2024, "Challenges in training PINNs: a loss landscape perspective" (ICML), §2.1 and
  App. A, with their analytic solutions on their 257 × 101 evaluation grid (which follows
  Krishnapriyan et al. 2021, "Characterizing possible failure modes in PINNs");
- :func:`poisson`: −Δu = f on the unit box with u = Π sin(kπx_i);
- :func:`allen_cahn`: the Allen–Cahn benchmark of Raissi et al. 2019 (§3.2.2) and DeepXDE,
  reference by ETDRK4 (:func:`allen_cahn_reference`);
- problems posed as a user would, with shapes, conditions per boundary part, systems and unknown
  coefficients: :func:`poisson_lshape` (Neumann and Dirichlet parts), :func:`heat_disk` (Robin),
  :func:`burgers_identification` (an inverse problem from scattered data), :func:`kovasznay` and
  :func:`cavity` (steady Navier–Stokes).

Every factory returns a fresh :class:`~sciml.solvers.pinn.PDEProblem`; expensive references
are cached per parameter set.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sciml.validation import positive_int

from .pinn import Derivatives, Domain, PDEProblem
from .pinn_conditions import Dirichlet, Initial, Neumann, Observations, Robin
from .pinn_geometry import Ball, Box

__all__ = ["burgers", "convection", "reaction", "wave", "poisson", "allen_cahn", "burgers_reference",
           "allen_cahn_reference", "poisson_lshape", "heat_disk", "burgers_identification", "kovasznay", "cavity",
           "GHIA_RE100_U", "GHIA_RE100_V", "PROBLEMS"]

PI = math.pi


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _grid_counts(value: Any, dim: int) -> tuple[int, ...]:
    """``grid`` as ``dim`` point counts ≥ 2 per axis (a grid has both end points)."""
    counts = tuple(value) if isinstance(value, (tuple, list)) else None
    if counts is None or len(counts) != dim or any(isinstance(c, bool) or not isinstance(c, int) or c < 2
                                                   for c in counts):
        raise ValueError(f"grid must be {dim} integer point counts >= 2, got {value!r}")
    return counts


def _on_grid(domain: Domain, counts: tuple[int, ...], solution) -> tuple[Tensor, Tensor]:
    points = domain.grid(*counts)
    return points, solution(points)


# ---------------------------------------------------------------------- Burgers
_COLE_HOPF_TOL = 1e-9  # largest gap allowed between the two interleaved half rules


def burgers_reference(x: np.ndarray, t: np.ndarray, nu: float = 0.01 / PI, nodes: int | None = None) -> np.ndarray:
    """The viscous Burgers solution with u(x, 0) = −sin(πx), u(±1, t) = 0, at points (x, t).

    Cole–Hopf (Basdevant et al. 1986, "Spectral and finite difference solutions of the Burgers
    equation", Comput. Fluids 14, eq. 2):
    u(x, t) = −∫ sin(π(x − η)) f(x − η) e^{−η²/4νt} dη / ∫ f(x − η) e^{−η²/4νt} dη with
    f(y) = exp(−cos(πy) / 2πν). With η = 2√(νt) z both integrands are e^{E(z)},
    E(z) = −z² − cos(π(x − 2√(νt) z)) / 2πν (times sin for the numerator), summed by the
    trapezoidal rule on a uniform grid in z (exponentially convergent for such smooth, rapidly
    decaying integrands: Trefethen & Weideman 2014, "The exponentially convergent trapezoidal
    rule", SIAM Rev. 56, §5), in log space since e^{E} spans e^{±1/2πν}.

    Parameters
    ----------
    x, t : arrays of positions in [−1, 1] and times t ≥ 0, broadcast together.
    nu : viscosity ν > 0.
    nodes : quadrature nodes; None chooses them from ν and max t (below). An explicit count
        that is too small raises ValueError.

    Returns
    -------
    u : float64 array of the broadcast shape of ``x`` and ``t``.

    Node count: E(z) ≤ −z² + 1/2πν and E(0) ≥ −1/2πν, so every z with z² > 1/πν + 40 lies at
    least e^{−40} below max E and the grid spans |z| ≤ Z = √(1/πν + 40) (Z ≈ 32 at ν = 0.001/π,
    where the mass sits near z ≈ ±1/√(νt)). The peaks of e^{E} have width σ ≥ 1/√(2(1 + πt)) in
    z, since E'' = −2 + 2πt cos(πy) ≥ −2 − 2πt, and the trapezoidal error on a Gaussian of width
    σ at step h is about 2e^{−2π²σ²/h²}: two interleaved rules of step 0.8σ each err by about
    1e-13 and their union, of step 0.4σ, by far less. The union is returned after the two halves
    are checked to agree within 1e-9.
    """
    nu = _positive("nu", nu)
    x, t = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(t, dtype=np.float64))
    if not (np.isfinite(x).all() and np.isfinite(t).all() and (t >= 0).all()):
        raise ValueError(f"x and t must be finite with t >= 0, got t from {t.min(initial=0.0)!r} and "
                         f"{int((~np.isfinite(x)).sum() + (~np.isfinite(t)).sum())} non-finite values")
    span = math.sqrt(1.0 / (PI * nu) + 40.0)  # Z
    if nodes is None:
        sigma = 1.0 / math.sqrt(2.0 * (1.0 + PI * float(t.max(initial=0.0))))
        nodes = 2 * math.ceil(2.0 * span / (0.8 * sigma)) + 1
    n = positive_int("nodes", nodes)
    z = np.linspace(-span, span, n)
    flat_x, flat_t = x.ravel(), t.ravel()
    flat_u = -np.sin(PI * flat_x)  # the values at t = 0
    rows = np.flatnonzero(flat_t > 0)
    gap = 0.0
    for chunk in np.array_split(rows, max(1, rows.size * n // 2**22)):  # bounded memory: ≤ 4M nodes at once
        y = flat_x[chunk, None] - 2.0 * np.sqrt(nu * flat_t[chunk, None]) * z  # x − η at the nodes
        logs = -z**2 - np.cos(PI * y) / (2 * PI * nu)  # E(z)
        weights = np.exp(logs - logs.max(axis=-1, keepdims=True))  # ≤ 1: cannot overflow
        num = np.sin(PI * y) * weights
        halves = [-num[:, k::2].sum(-1) / weights[:, k::2].sum(-1) for k in (0, 1)]  # even and odd nodes
        gap = max(gap, float(np.abs(halves[0] - halves[1]).max(initial=0.0)))
        flat_u[chunk] = -num.sum(-1) / weights.sum(-1)
    if not gap <= _COLE_HOPF_TOL:
        raise ValueError(f"nodes={n} are too few for nu={nu!r} at t up to {float(t.max()):g}: the two interleaved "
                         f"half rules differ by {gap:.2e} > {_COLE_HOPF_TOL:g}; pass more nodes or nodes=None")
    return flat_u.reshape(x.shape)


@lru_cache(maxsize=4)
def _burgers_grid(nu: float, nx: int, nt: int) -> tuple[Tensor, Tensor]:
    points = Domain([(-1.0, 1.0)], (0.0, 1.0)).grid(nx, nt)
    values = burgers_reference(points[:, 0].numpy(), points[:, 1].numpy(), nu)
    return points, torch.from_numpy(values)


def burgers(nu: float = 0.01 / PI, grid: tuple[int, int] = (256, 100)) -> PDEProblem:
    """u_t + u u_x − ν u_xx = 0 on x ∈ [−1, 1], t ∈ [0, 1], u(x, 0) = −sin(πx), u(±1, t) = 0
    (Raissi et al. 2019, eq. 8, ν = 0.01/π); reference on a ``grid`` (x, t) of Cole–Hopf values.
    Hard constraint: u = −sin(πx) + t(1 − x²)·N."""
    nu, grid = _positive("nu", nu), _grid_counts(grid, 2)

    def residual(p: Tensor, d: Derivatives) -> Tensor:
        return d["t"] + d.u * d["x"] - nu * d["xx"]  # Raissi et al. 2019, eq. 8

    return PDEProblem(
        name="burgers", domain=Domain([(-1.0, 1.0)], (0.0, 1.0)), residual=residual,
        boundary=lambda p: torch.zeros_like(p[:, 0]), initial=lambda p: -torch.sin(PI * p[:, 0]),
        lift=lambda p: -torch.sin(PI * p[:, 0]), distance=lambda p: p[:, 1] * (1 - p[:, 0] ** 2),
        hard_terms=("boundary", "initial"), reference=_burgers_grid(nu, *grid))


# ---------------------------------------------------------------------- Rathore et al. 2024
_RATHORE_GRID = (257, 101)


def convection(beta: float = 40.0) -> PDEProblem:
    """u_t + β u_x = 0 on x ∈ [0, 2π], t ∈ [0, 1], u(x, 0) = sin x, periodic in x; solution
    sin(x − βt) (Rathore et al. 2024, §2.1; β = 40 in their tables). Hard constraints: u = sin x + t·N
    with x entering N as (cos πz, sin πz), z = x/π − 1 the scaled x, so u is exactly periodic."""
    beta = _positive("beta", beta)
    domain = Domain([(0.0, 2 * PI)], (0.0, 1.0))

    def solution(p: Tensor) -> Tensor:
        return torch.sin(p[:, 0] - beta * p[:, 1])

    return PDEProblem(
        name="convection", domain=domain, residual=lambda p, d: d["t"] + beta * d["x"],
        boundary="periodic", initial=lambda p: torch.sin(p[:, 0]),
        lift=lambda p: torch.sin(p[:, 0]), distance=lambda p: p[:, 1], hard_terms=("boundary", "initial"),
        solution=solution, reference=_on_grid(domain, _RATHORE_GRID, solution))


def reaction(rho: float = 5.0) -> PDEProblem:
    """u_t − ρu(1 − u) = 0 on x ∈ [0, 2π], t ∈ [0, 1], u(x, 0) = h(x) = exp(−(x − π)² / (2(π/4)²)),
    periodic in x; solution h e^{ρt} / (h e^{ρt} + 1 − h) (Rathore et al. 2024, §2.1; ρ = 5).
    Hard constraints: u = h + t·N with x entering N as (cos πz, sin πz), z = x/π − 1 the scaled x, so u
    is exactly periodic (u_x is not: h'(0) = −h'(2π) = 1.7e-3, as in the solution; the PDE has no x
    derivative)."""
    rho = _positive("rho", rho)
    domain = Domain([(0.0, 2 * PI)], (0.0, 1.0))

    def h(p: Tensor) -> Tensor:
        return torch.exp(-0.5 * ((p[:, 0] - PI) / (PI / 4)) ** 2)

    def solution(p: Tensor) -> Tensor:
        g = h(p) * torch.exp(rho * p[:, 1])
        return g / (g + 1 - h(p))

    return PDEProblem(
        name="reaction", domain=domain, residual=lambda p, d: d["t"] - rho * d.u * (1 - d.u),
        boundary="periodic", initial=h, lift=h, distance=lambda p: p[:, 1], hard_terms=("boundary", "initial"),
        solution=solution, reference=_on_grid(domain, _RATHORE_GRID, solution))


def wave(beta: int = 5) -> PDEProblem:
    """u_tt − 4u_xx = 0 on x ∈ [0, 1], t ∈ [0, 1], u(0, t) = u(1, t) = 0,
    u(x, 0) = sin(πx) + ½ sin(βπx), u_t(x, 0) = 0; solution
    sin(πx) cos(2πt) + ½ sin(βπx) cos(2βπt) (Rathore et al. 2024, §2.1; β = 5).
    Hard constraint: u = u(x, 0) + tanh²(t/τ)·4x(1 − x)·N with τ = 0.1 (tanh² keeps u_t(x, 0) = 0).
    The plain t² makes N = (u − u₀)/(t² x(1 − x)) ≈ −β²π² sin(βπx)/(x(1 − x)) near t = 0 (about 10³
    at x = ½ for β = 5) against O(1) later: with Fourier features, a 3×50 network, 2048 points, 1000
    Adam and 500 L-BFGS steps it trains to 0.51 where tanh² gives 8e-3 (2-core CPU). β must be an
    integer ≥ 1: otherwise sin(βπx) ≠ 0 at x = 1, and neither the solution nor the lift meet
    u(1, t) = 0."""
    if isinstance(beta, bool) or not (isinstance(beta, int) or (isinstance(beta, float) and beta.is_integer())) \
            or beta < 1:
        raise ValueError(f"beta must be an integer >= 1 (sin(beta*pi*x) must vanish at x = 1), got {beta!r}")
    beta = int(beta)
    domain = Domain([(0.0, 1.0)], (0.0, 1.0))

    def u0(p: Tensor) -> Tensor:
        return torch.sin(PI * p[:, 0]) + 0.5 * torch.sin(beta * PI * p[:, 0])

    def solution(p: Tensor) -> Tensor:
        x, t = p[:, 0], p[:, 1]
        return torch.sin(PI * x) * torch.cos(2 * PI * t) + 0.5 * torch.sin(beta * PI * x) * torch.cos(2 * beta * PI * t)

    return PDEProblem(
        name="wave", domain=domain, residual=lambda p, d: d["tt"] - 4 * d["xx"],
        boundary=lambda p: torch.zeros_like(p[:, 0]), initial=u0, initial_rate=lambda p: torch.zeros_like(p[:, 0]),
        lift=u0, distance=lambda p: torch.tanh(p[:, 1] / 0.1) ** 2 * 4 * p[:, 0] * (1 - p[:, 0]),
        hard_terms=("boundary", "initial"),
        solution=solution, reference=_on_grid(domain, _RATHORE_GRID, solution))


# ---------------------------------------------------------------------- Poisson
def poisson(dim: int = 2, k: int = 1, grid: int | None = None) -> PDEProblem:
    """−Δu = d(kπ)² Π sin(kπx_i) on [0, 1]^d with u = 0 on the boundary; solution
    u = Π sin(kπx_i). Hard constraint: u = Π x_i(1 − x_i)·N. Reference on a uniform grid
    (default 101 points per axis in 1-D and 2-D, 21 in 3-D)."""
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= 3:
        raise ValueError(f"dim must be 1, 2 or 3, got {dim!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    domain = Domain([(0.0, 1.0)] * dim)
    names = domain.names

    def solution(p: Tensor) -> Tensor:
        return torch.sin(k * PI * p).prod(dim=1)

    def residual(p: Tensor, d: Derivatives) -> Tensor:
        laplacian = sum(d[c + c] for c in names)
        return -laplacian - dim * (k * PI) ** 2 * solution(p)  # −Δu − f

    n = grid if grid is not None else (101 if dim <= 2 else 21)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"grid must be an integer point count >= 2 per axis, or None, got {grid!r}")
    return PDEProblem(
        name="poisson", domain=domain, residual=residual, boundary=lambda p: torch.zeros_like(p[:, 0]),
        lift=lambda p: torch.zeros_like(p[:, 0]), distance=lambda p: (p * (1 - p)).prod(dim=1),
        hard_terms=("boundary",), solution=solution, reference=_on_grid(domain, (n,) * dim, solution))


# ---------------------------------------------------------------------- Allen–Cahn
def allen_cahn_reference(eps: float = 1e-4, gamma: float = 5.0, n: int = 1024, dt: float = 2e-4,
                         t_end: float = 1.0, snapshots: int = 201) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u_t = ε u_xx + γ(u − u³) on the periodic interval [−1, 1), u(x, 0) = x² cos(πx), by the
    Fourier pseudo-spectral ETDRK4 scheme of Kassam & Trefethen 2005, "Fourth-order
    time-stepping for stiff PDEs" (SIAM J. Sci. Comput. 26), eq. 26, with the φ-functions by
    the contour-integral mean of their §3.

    Returns ``(x (n,), t (snapshots,), u (n, snapshots))``.
    """
    eps, gamma, dt, t_end = (_positive(k, v) for k, v in (("eps", eps), ("gamma", gamma), ("dt", dt), ("t_end", t_end)))
    positive_int("n", n)
    if isinstance(snapshots, bool) or not isinstance(snapshots, int) or snapshots < 2:
        raise ValueError(f"snapshots must be an integer >= 2 (t = 0 and t_end at least), got {snapshots!r}")
    steps = round(t_end / dt)
    every = steps // (snapshots - 1)
    if every == 0 or every * (snapshots - 1) != steps:
        raise ValueError(f"t_end/dt = {steps} steps must be a multiple of snapshots - 1 = {snapshots - 1}")
    x = -1.0 + 2.0 * np.arange(n) / n
    k = PI * np.arange(n // 2 + 1)  # wavenumbers on a period of 2
    lin = gamma - eps * k**2  # the stiff linear part, including +γu
    E, E2 = np.exp(dt * lin), np.exp(dt * lin / 2)
    r = np.exp(1j * PI * (np.arange(1, 33) - 0.5) / 32)  # 32 points on a unit circle (Kassam–Trefethen §3)
    LR = dt * lin[:, None] + r[None, :]
    Q = dt * np.real(np.mean((np.exp(LR / 2) - 1) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR**2)) / LR**3, axis=1))
    f2 = dt * np.real(np.mean((2 + LR + np.exp(LR) * (-2 + LR)) / LR**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * LR - LR**2 + np.exp(LR) * (4 - LR)) / LR**3, axis=1))

    def nonlinear(v):
        return np.fft.rfft(-gamma * np.fft.irfft(v, n) ** 3)

    v = np.fft.rfft(x**2 * np.cos(PI * x))
    out = [np.fft.irfft(v, n)]
    for step in range(1, steps + 1):  # Kassam & Trefethen 2005, eq. 26
        Nv = nonlinear(v)
        a = E2 * v + Q * Nv
        Na = nonlinear(a)
        b = E2 * v + Q * Na
        Nb = nonlinear(b)
        c = E2 * a + Q * (2 * Nb - Nv)
        Nc = nonlinear(c)
        v = E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3
        if step % every == 0:
            out.append(np.fft.irfft(v, n))
    return x, np.linspace(0.0, t_end, snapshots), np.stack(out, axis=1)


@lru_cache(maxsize=2)
def _allen_cahn_grid(eps: float, gamma: float, t_end: float) -> tuple[Tensor, Tensor]:
    x, t, u = allen_cahn_reference(eps, gamma, t_end=t_end, snapshots=round(200 * t_end) + 1)
    x, u = x[::2], u[::2]  # solved on 1024 points (the kink of u(x, 0) at x = ±1 needs them), kept on 512
    xx, tt = np.meshgrid(x, t, indexing="ij")
    return torch.from_numpy(np.stack([xx.ravel(), tt.ravel()], 1)), torch.from_numpy(u.ravel())


def allen_cahn(eps: float = 1e-4, gamma: float = 5.0, t_end: float = 1.0) -> PDEProblem:
    """u_t − ε u_xx + γu³ − γu = 0 on x ∈ [−1, 1], t ∈ [0, t_end], u(x, 0) = x² cos(πx),
    periodic in u and u_x (Raissi et al. 2019, eq. 13: ε = 1e-4, γ = 5, t_end = 1); reference
    by ETDRK4 on 512 points × every 0.005 in t (its relative L2 error is about 3e-6; t_end a
    multiple of 0.005). Hard constraint on the initial slice: u = x² cos(πx) + t·N; the periodic
    boundary stays a loss term (u₀_x(±1) = ∓2, so no periodic N makes u_x periodic)."""
    eps, gamma, t_end = _positive("eps", eps), _positive("gamma", gamma), _positive("t_end", t_end)

    def u0(p: Tensor) -> Tensor:
        return p[:, 0] ** 2 * torch.cos(PI * p[:, 0])

    def residual(p: Tensor, d: Derivatives) -> Tensor:
        return d["t"] - eps * d["xx"] + gamma * d.u**3 - gamma * d.u  # Raissi et al. 2019, eq. 13

    return PDEProblem(
        name="allen_cahn", domain=Domain([(-1.0, 1.0)], (0.0, t_end)), residual=residual,
        boundary="periodic", periodic_derivatives=True, initial=u0, lift=u0, distance=lambda p: p[:, 1],
        hard_terms=("initial",), reference=_allen_cahn_grid(eps, gamma, t_end))




# ---------------------------------------------------------------------- user-style problems: shapes, parts, systems
def poisson_lshape() -> PDEProblem:
    """−Δu = f on the L-shape [−1, 1]² − [0, 1]² with u = sin(πx)cos(πy) (f = 2π²u): Neumann data
    ∂u/∂n on the two re-entrant edges (x = 0, 0 ≤ y ≤ 1 and y = 0, 0 ≤ x ≤ 1), Dirichlet data on the
    six others. Exact solution given (``solution``), no grid."""
    shape = Box([-1.0, -1.0], [1.0, 1.0]) - Box([0.0, 0.0], [1.0, 1.0])

    def solution(p: Tensor) -> Tensor:
        return torch.sin(PI * p[:, 0]) * torch.cos(PI * p[:, 1])

    def flux(p: Tensor) -> Tensor:  # ∇u·n, n = +e_x on x = 0 and +e_y on y = 0 (the removed quadrant's side)
        gx = PI * torch.cos(PI * p[:, 0]) * torch.cos(PI * p[:, 1])
        gy = -PI * torch.sin(PI * p[:, 0]) * torch.sin(PI * p[:, 1])
        return torch.where(p[:, 0].abs() < 1e-9, gx, gy)

    def reentrant(p: Tensor) -> Tensor:
        return ((p[:, 0].abs() < 1e-9) & (p[:, 1] >= 0)) | ((p[:, 1].abs() < 1e-9) & (p[:, 0] >= 0))

    domain = Domain(shape, parts={"reentrant": reentrant, "outer": lambda p: ~reentrant(p)})
    return PDEProblem(
        name="poisson_lshape", domain=domain, residual=lambda p, d: -d.laplacian() - 2 * PI**2 * solution(p),
        solution=solution, conditions=(Dirichlet(solution, on="outer"), Neumann(flux, on="reentrant")))


def heat_disk(kappa: float = 1.0) -> PDEProblem:
    """u_t = κΔu + f on the unit disk, t ∈ [0, 1], u = e^{−t} sin(x) cos(y) (f = (2κ − 1)u), with
    the Robin condition ∂u/∂n + u = g on the circle and u(x, 0) = sin(x) cos(y)."""
    kappa = _positive("kappa", kappa)

    def solution(p: Tensor) -> Tensor:
        return torch.exp(-p[:, 2]) * torch.sin(p[:, 0]) * torch.cos(p[:, 1])

    def robin(p: Tensor) -> Tensor:  # ∇u·x + u on |x| = 1
        e = torch.exp(-p[:, 2])
        x, y = p[:, 0], p[:, 1]
        dudn = e * (x * torch.cos(x) * torch.cos(y) - y * torch.sin(x) * torch.sin(y))
        return dudn + solution(p)

    return PDEProblem(
        name="heat_disk", domain=Domain(Ball([0.0, 0.0], 1.0), time=(0.0, 1.0)),
        residual=lambda p, d: d["t"] - kappa * d.laplacian() - (2 * kappa - 1) * solution(p), solution=solution,
        conditions=(Robin(1.0, 1.0, robin), Initial(solution)))


def burgers_identification(n_data: int = 2000, noise: float = 0.0, seed: int = 0, nu: float = 0.01 / PI) -> PDEProblem:
    """Find λ1, λ2 in u_t + λ1 u u_x − λ2 u_xx = 0 from ``n_data`` scattered values of the Cole–Hopf
    solution of Burgers (λ1 = 1, λ2 = ν) with Gaussian noise of ``noise`` times their standard
    deviation (Raissi et al. 2019, §4.1.1, eq. 17: 2000 points, noise 0 and 1%). The coefficients
    start at λ1 = 0, log λ2 = −6 as in their code (λ2 = e^{log λ2} keeps it positive). Reference: the
    Cole–Hopf grid of :func:`burgers`."""
    positive_int("n_data", n_data)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < math.inf:
        raise ValueError(f"noise must be a non-negative number, got {noise!r}")
    domain = Domain([(-1.0, 1.0)], (0.0, 1.0))
    points, values = _burgers_grid(_positive("nu", nu), 256, 100)
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(points.shape[0], generator=gen)[:n_data]
    data = values[pick] + noise * values.std() * torch.randn(n_data, generator=gen, dtype=torch.float64)

    def residual(p: Tensor, d: Derivatives) -> Tensor:
        lam1, lam2 = d.params["lambda1"], torch.exp(d.params["log_lambda2"])
        return d["t"] + lam1 * d.u * d["x"] - lam2 * d["xx"]  # Raissi et al. 2019, eq. 17

    return PDEProblem(name="burgers_identification", domain=domain, residual=residual,
                      conditions=(Observations(points[pick], data, name="data"),),
                      parameters={"lambda1": 0.0, "log_lambda2": -6.0}, reference=(points, values))


def kovasznay(re: float = 20.0) -> PDEProblem:
    """Steady incompressible Navier–Stokes with Kovasznay's exact solution (Kovasznay 1948, "Laminar
    flow behind a two-dimensional grid", Proc. Camb. Phil. Soc. 44): on [−0.5, 1] × [−0.5, 1.5],
    u = 1 − e^{λx}cos 2πy, v = λ/(2π) e^{λx} sin 2πy, p = ½(1 − e^{2λx}), λ = Re/2 − √(Re²/4 + 4π²);
    u, v and p prescribed on the boundary (the DeepXDE example's set-up). Outputs u, v, p."""
    re = _positive("re", re)
    lam = re / 2 - math.sqrt(re**2 / 4 + 4 * PI**2)

    def solution(p: Tensor) -> Tensor:
        x, y = p[:, 0], p[:, 1]
        e = torch.exp(lam * x)
        return torch.stack([1 - e * torch.cos(2 * PI * y), lam / (2 * PI) * e * torch.sin(2 * PI * y),
                            0.5 * (1 - e**2)], 1)

    def residual(p: Tensor, d: Derivatives):
        u, v = d["u"], d["v"]
        return (u * d["u", "x"] + v * d["u", "y"] + d["p", "x"] - (d["u", "xx"] + d["u", "yy"]) / re,
                u * d["v", "x"] + v * d["v", "y"] + d["p", "y"] - (d["v", "xx"] + d["v", "yy"]) / re,
                d["u", "x"] + d["v", "y"])

    return PDEProblem(name="kovasznay", domain=Domain([(-0.5, 1.0), (-0.5, 1.5)]), residual=residual,
                      outputs=("u", "v", "p"), solution=solution, conditions=(Dirichlet(solution, name="wall"),))


# Ghia, Ghia & Shin 1982, "High-Re solutions for incompressible flow using the Navier-Stokes equations
# and a multigrid method" (J. Comput. Phys. 48), Table I (u on x = 0.5) and Table II (v on y = 0.5), Re = 100
GHIA_RE100_U = ((1.0000, 1.00000), (0.9766, 0.84123), (0.9688, 0.78871), (0.9609, 0.73722), (0.9531, 0.68717),
                (0.8516, 0.23151), (0.7344, 0.00332), (0.6172, -0.13641), (0.5000, -0.20581), (0.4531, -0.21090),
                (0.2813, -0.15662), (0.1719, -0.10150), (0.1016, -0.06434), (0.0703, -0.04775), (0.0625, -0.04192),
                (0.0547, -0.03717), (0.0000, 0.00000))
GHIA_RE100_V = ((1.0000, 0.00000), (0.9688, -0.05906), (0.9609, -0.07391), (0.9531, -0.08864), (0.9453, -0.10313),
                (0.9063, -0.16914), (0.8594, -0.22445), (0.8047, -0.24533), (0.5000, 0.05454), (0.2344, 0.17527),
                (0.2266, 0.17507), (0.1563, 0.16077), (0.0938, 0.12317), (0.0781, 0.10890), (0.0703, 0.10091),
                (0.0625, 0.09233), (0.0000, 0.00000))


def cavity(re: float = 100.0, wall_weight: float = 1.0) -> PDEProblem:
    """Lid-driven cavity: steady Navier–Stokes on [0, 1]², u = 1, v = 0 on the lid y = 1, no slip on
    the other walls (both terms weighted ``wall_weight``), p(0, 0) = 0 pinned by one observation.
    Outputs u, v, p. Reference: the centreline tables of Ghia, Ghia & Shin 1982 (``GHIA_RE100_U``,
    ``GHIA_RE100_V``; Re = 100 only)."""
    re, wall_weight = _positive("re", re), _positive("wall_weight", wall_weight)

    def residual(p: Tensor, d: Derivatives):
        u, v = d["u"], d["v"]
        return (u * d["u", "x"] + v * d["u", "y"] + d["p", "x"] - (d["u", "xx"] + d["u", "yy"]) / re,
                u * d["v", "x"] + v * d["v", "y"] + d["p", "y"] - (d["v", "xx"] + d["v", "yy"]) / re,
                d["u", "x"] + d["v", "y"])

    def lid(p: Tensor) -> Tensor:
        return torch.stack([torch.ones_like(p[:, 0]), torch.zeros_like(p[:, 0])], 1)

    domain = Domain([(0.0, 1.0), (0.0, 1.0)], parts={"walls": lambda p: p[:, 1] < 1 - 1e-9})
    return PDEProblem(name="cavity", domain=domain, residual=residual, outputs=("u", "v", "p"),
                      conditions=(Dirichlet(lid, on="y_max", component=("u", "v"), name="lid", weight=wall_weight),
                                  Dirichlet(0.0, on="walls", component=("u", "v"), name="walls", weight=wall_weight),
                                  Observations(torch.zeros(1, 2), torch.zeros(1), component="p", name="pressure")))


PROBLEMS = {"burgers": burgers, "convection": convection, "reaction": reaction, "wave": wave,
            "poisson": poisson, "allen_cahn": allen_cahn, "poisson_lshape": poisson_lshape, "heat_disk": heat_disk,
            "burgers_identification": burgers_identification, "kovasznay": kovasznay, "cavity": cavity}
