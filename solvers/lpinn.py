"""LagrangianPINNSolver: convection–diffusion solved along its characteristics.

Mojgani, Balajewicz & Hassanzadeh 2023, "Lagrangian PINNs: A causality-conforming solution to
failure modes of physics-informed neural networks" (CMAME 2023; arXiv:2205.02902).

The Eulerian problem, periodic on [0, 2π] with u(x, 0) = u0(x),

    u_t + β u_x = ν u_xx,                                                           (E)

is written in the Lagrangian frame of the characteristic curves x(ξ, t) labelled by their
starting point ξ:

    dx/dt = β,          x(ξ, 0) = ξ,                                                (L1)
    du/dt = ν u_xx,     u(ξ, 0) = u0(ξ),                                            (L2)

with u_x = u_ξ / x_ξ and u_xx = (u_x)_ξ / x_ξ by the chain rule. A network with two parallel
branches solves it: one branch for the curves x(ξ, t), one for the state
u(ξ, t) on them; the loss is the mean square of the residuals of (L1) and (L2) plus the initial
condition of u. Along the characteristics the solution no longer travels, so the training
difficulty of the Eulerian PINN at large β (its failure mode) does not arise.

As in the paper's released code, the u-branch sees the label through (cos ξ, sin ξ), which makes
it 2π-periodic in ξ and enforces the periodic boundary condition exactly. The x-branch predicts
the displacement x − ξ, periodic in ξ, scaled by t·max(|β|, 1) so that x(ξ, 0) = ξ holds exactly
and the branch output stays of order one for any β (the paper penalises x(ξ, 0) − ξ instead).

Both branches (and the Eulerian baseline) see time as t / T on the domain [0, 2π] × [0, T], so
their inputs lie in [−1, 1] whatever T is.

Predictions on the Eulerian grid (:meth:`LagrangianPINNSolver.sample`) invert the learned
characteristic map, x(ξ, t) = x modulo 2π, by Newton's method started from the learned
displacement; the paper interpolates the scattered Lagrangian predictions instead. The inverse
exists only where the map increases in ξ (x_ξ > 0, true of the exact map x = ξ + βt); a learned
map with x_ξ ≤ 0 at a Newton iterate is refused with a RuntimeError rather than inverted.

:class:`EulerianPINNSolver` is the baseline of the paper's comparison: one network u(x, t)
trained on the residual of (E), the initial condition and the periodic boundary condition
(the setup of Krishnapriyan et al. 2021, which fails for β ≳ 30).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor, nn

from sciml.losses import relative_l2
from sciml.solver import Solver
from sciml.validation import finite_float, positive_int

__all__ = ["LagrangianPINNSolver", "EulerianPINNSolver", "convection_diffusion_exact", "space_time_grid"]

TWO_PI = 2 * math.pi


def convection_diffusion_exact(x: Tensor, t: Tensor, beta: float, nu: float = 0.0,
                               u0: Callable[[Tensor], Tensor] = torch.sin, modes: int = 64) -> Tensor:
    """The exact solution of (E) for a 2π-periodic u0, by its Fourier series.

    Each mode e^{ikx} of u0 travels at speed β and decays as e^{−νk²t}:
    u(x, t) = Σ_k û_k e^{ik(x − βt) − νk²t}, with û_k from ``2·modes`` samples of u0 (exact for
    u0 = sin, which gives e^{−νt} sin(x − βt); for ν = 0 it is u0(x − βt)).
    """
    beta, nu = finite_float("beta", beta), finite_float("nu", nu)
    if nu < 0:
        raise ValueError(f"nu must be non-negative, got {nu}")
    if not isinstance(x, Tensor) or not isinstance(t, Tensor):
        raise TypeError(f"x and t must be tensors, got {type(x).__name__} and {type(t).__name__}")
    if x.shape != t.shape:
        raise ValueError(f"x and t must have the same shape, got {tuple(x.shape)} and {tuple(t.shape)}")
    positive_int("modes", modes)
    n = 2 * modes
    nodes = torch.arange(n, dtype=torch.float64, device=x.device) * (TWO_PI / n)
    coef = torch.fft.rfft(u0(nodes).to(torch.float64)) / n  # û_k, k = 0..modes
    k = torch.arange(coef.numel(), dtype=torch.float64, device=x.device)
    weight = torch.full_like(k, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0  # the Nyquist mode appears once
    xd, td = x.to(torch.float64)[..., None], t.to(torch.float64)[..., None]
    phase = torch.exp(1j * k * (xd - beta * td))
    out = (weight * coef * phase * torch.exp(-nu * k.pow(2) * td)).real.sum(-1)
    return out.to(x.dtype)


def space_time_grid(n_x: int, n_t: int, t_max: float = 1.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """The uniform grid [0, 2π) × [0, t_max] as points (n_x · n_t, 2) of (x, t), x fastest.

    Serves as Eulerian evaluation points and as Lagrangian collocation points (ξ, t) alike.
    """
    positive_int("n_x", n_x)
    positive_int("n_t", n_t)
    t_max = finite_float("t_max", t_max)
    if t_max <= 0:
        raise ValueError(f"t_max must be positive, got {t_max}")
    x = torch.arange(n_x, dtype=dtype) * (TWO_PI / n_x)
    t = torch.linspace(0, t_max, n_t, dtype=dtype)
    tt, xx = torch.meshgrid(t, x, indexing="ij")
    return torch.stack([xx.flatten(), tt.flatten()], 1)


def _mlp(n_in: int, hidden: int, depth: int) -> nn.Sequential:
    sizes = [n_in] + [hidden] * (depth - 1)
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(sizes[-1], 1))


def _d(y: Tensor, x: Tensor) -> Tensor:
    """dy/dx for pointwise y(x): the gradient of the sum, kept differentiable."""
    return torch.autograd.grad(y.sum(), x, create_graph=True)[0]


class _ConvectionDiffusion(Solver):
    """Validation, the exact solution and the evaluation shared by both formulations."""

    supports_bf16 = False  # residuals of derivatives lose their accuracy in bf16

    def __init__(self, beta: float, nu: float, t_max: float, u0: Callable[[Tensor], Tensor] | None,
                 hidden: int, depth: int, ic_weight: float):
        super().__init__()
        self.beta, self.nu = finite_float("beta", beta), finite_float("nu", nu)
        if self.nu < 0:
            raise ValueError(f"nu must be non-negative, got {nu}")
        self.t_max = finite_float("t_max", t_max)
        if self.t_max <= 0:
            raise ValueError(f"t_max must be positive, got {t_max}")
        if u0 is not None and not callable(u0):
            raise TypeError(f"u0 must be a callable x -> u0(x) or None (sin), got {type(u0).__name__}")
        self.u0 = torch.sin if u0 is None else u0
        self.hidden, self.depth = positive_int("hidden", hidden), positive_int("depth", depth)
        self.ic_weight = finite_float("ic_weight", ic_weight)
        if self.ic_weight <= 0:
            raise ValueError(f"ic_weight must be positive, got {ic_weight}")

    def _points(self, batch: Any, name: str = "batch") -> tuple[Tensor, Tensor]:
        if isinstance(batch, (tuple, list)) and len(batch) == 1:  # a TensorDataset item
            batch = batch[0]
        if not isinstance(batch, Tensor):
            raise TypeError(f"{name} must be a tensor of points (B, 2), got {type(batch).__name__}")
        if batch.dim() != 2 or batch.shape[1] != 2:
            raise ValueError(f"{name} must have shape (B, 2) holding (x, t), got {tuple(batch.shape)}")
        return batch[:, 0], batch[:, 1]

    def exact(self, x: Tensor, t: Tensor) -> Tensor:
        """The exact solution at Eulerian points (see :func:`convection_diffusion_exact`)."""
        return convection_diffusion_exact(x, t, self.beta, self.nu, self.u0)

    @torch.no_grad()
    def evaluate(self, batch: Any) -> dict[str, Tensor]:
        """Relative L2 error and MSE on Eulerian points ``(B, 2)`` of (x, t)."""
        x, t = self._points(batch)
        pred, exact = self.sample(x, t), self.exact(x, t)
        return {"rel_l2": relative_l2(pred[None], exact[None]), "mse": (pred - exact).pow(2).mean()}

    def _check_xt(self, x: Tensor, t: Tensor) -> None:
        if not isinstance(x, Tensor) or not isinstance(t, Tensor):
            raise TypeError(f"x and t must be tensors, got {type(x).__name__} and {type(t).__name__}")
        if x.shape != t.shape or x.dim() != 1:
            raise ValueError(f"x and t must be 1-D of the same length, got {tuple(x.shape)} and {tuple(t.shape)}")


class LagrangianPINNSolver(_ConvectionDiffusion):
    """The two-branch Lagrangian PINN for u_t + β u_x = ν u_xx, periodic on [0, 2π].

    Parameters
    ----------
    beta : convection speed β.
    nu : diffusivity ν ≥ 0.
    t_max : final time T of the domain [0, 2π] × [0, T]; the branches see t / T.
    u0 : the 2π-periodic initial condition, a callable on tensors; None is sin(x).
    hidden, depth : width and number of linear layers of each branch (tanh MLPs).
    ic_weight : weight of the initial-condition term of u.
    newton_steps : Newton iterations of :meth:`sample` for inverting x(ξ, t) = x.

    Training batches are Lagrangian collocation points ``(B, 2)`` of (ξ, t), e.g. from
    :func:`space_time_grid`; :meth:`evaluate` takes Eulerian points ``(B, 2)`` of (x, t).
    """

    def __init__(self, beta: float, nu: float = 0.0, t_max: float = 1.0, u0: Callable[[Tensor], Tensor] | None = None,
                 hidden: int = 32, depth: int = 4, ic_weight: float = 1.0, newton_steps: int = 8):
        super().__init__(beta, nu, t_max, u0, hidden, depth, ic_weight)
        self.newton_steps = positive_int("newton_steps", newton_steps)
        self.x_branch = _mlp(3, hidden, depth)
        self.u_branch = _mlp(3, hidden, depth)
        self.scale = max(abs(self.beta), 1.0)

    def _features(self, xi: Tensor, t: Tensor) -> Tensor:
        return torch.stack([torch.cos(xi), torch.sin(xi), t / self.t_max], -1)  # 2π-periodic in the label ξ

    def characteristic(self, xi: Tensor, t: Tensor) -> Tensor:
        """x(ξ, t): the position at time t of the characteristic that starts at ξ."""
        return xi + t * self.scale * self.x_branch(self._features(xi, t)).squeeze(-1)  # x(ξ, 0) = ξ

    def state(self, xi: Tensor, t: Tensor) -> Tensor:
        """u(ξ, t): the solution carried along the characteristic that starts at ξ."""
        return self.u_branch(self._features(xi, t)).squeeze(-1)

    def loss(self, batch: Any) -> Tensor:
        xi, t = self._points(batch)
        xi, t = xi.detach().requires_grad_(), t.detach().requires_grad_()
        x = self.characteristic(xi, t)
        u = self.state(xi, t)
        r_x = _d(x, t) - self.beta  # (L1)
        u_t = _d(u, t)
        if self.nu:
            x_xi = _d(x, xi)
            u_x = _d(u, xi) / x_xi  # chain rule: ∂u/∂x = u_ξ / x_ξ
            r_u = u_t - self.nu * _d(u_x, xi) / x_xi  # (L2)
        else:
            r_u = u_t  # (L2) with ν = 0: u is constant along characteristics
        ic = self.state(xi, torch.zeros_like(t)) - self.u0(xi)  # u(ξ, 0) = u0(ξ)
        return r_x.pow(2).mean() + r_u.pow(2).mean() + self.ic_weight * ic.pow(2).mean()

    @torch.no_grad()
    def sample(self, x: Tensor, t: Tensor) -> Tensor:
        """u at Eulerian points (x, t), both of shape (n,): invert x(ξ, t) = x (mod 2π), read u(ξ, t)."""
        self._check_xt(x, t)
        xi = x - (self.characteristic(x, t) - x)  # exact for a displacement independent of ξ
        with torch.enable_grad():
            for _ in range(self.newton_steps):
                xi = xi.detach().requires_grad_()
                pos = self.characteristic(xi, t)
                slope = torch.autograd.grad(pos.sum(), xi)[0]  # x_ξ
                bad = ~(slope > 0)
                if bad.any():  # a fold of the map: no unique ξ, and Newton's step would be garbage
                    raise RuntimeError(
                        f"the learned characteristic map x(ξ, t) is not increasing in ξ (x_ξ <= 0 at "
                        f"{int(bad.sum())} of {bad.numel()} points, e.g. t = {float(t[bad][0]):.4g}, "
                        f"x_ξ = {float(slope[bad][0]):.3g}), so it cannot be inverted; train the solver further")
                miss = torch.remainder(pos - x + math.pi, TWO_PI) - math.pi  # nearest periodic image
                xi = xi - miss / slope
        return self.state(xi.detach(), t)


class EulerianPINNSolver(_ConvectionDiffusion):
    """The Eulerian PINN baseline: u(x, t) by one tanh MLP on the residual of (E).

    Loss: mean square of u_t + β u_x − ν u_xx at the batch's points, plus ``ic_weight`` times
    that of u(x, 0) − u0(x) at the batch's x, plus ``bc_weight`` times that of
    u(0, t) − u(2π, t) at the batch's t. Parameters as :class:`LagrangianPINNSolver`; the network
    sees (x, t / T).
    """

    def __init__(self, beta: float, nu: float = 0.0, t_max: float = 1.0, u0: Callable[[Tensor], Tensor] | None = None,
                 hidden: int = 32, depth: int = 4, ic_weight: float = 1.0, bc_weight: float = 1.0):
        super().__init__(beta, nu, t_max, u0, hidden, depth, ic_weight)
        self.bc_weight = finite_float("bc_weight", bc_weight)
        if self.bc_weight <= 0:
            raise ValueError(f"bc_weight must be positive, got {bc_weight}")
        self.net = _mlp(2, hidden, depth)

    def _u(self, x: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.stack([x, t / self.t_max], -1)).squeeze(-1)

    def loss(self, batch: Any) -> Tensor:
        x, t = self._points(batch)
        x, t = x.detach().requires_grad_(), t.detach().requires_grad_()
        u = self._u(x, t)
        u_x = _d(u, x)
        r = _d(u, t) + self.beta * u_x  # (E)
        if self.nu:
            r = r - self.nu * _d(u_x, x)
        ic = self._u(x, torch.zeros_like(t)) - self.u0(x)
        bc = self._u(torch.zeros_like(t), t) - self._u(torch.full_like(t, TWO_PI), t)
        return r.pow(2).mean() + self.ic_weight * ic.pow(2).mean() + self.bc_weight * bc.pow(2).mean()

    @torch.no_grad()
    def sample(self, x: Tensor, t: Tensor) -> Tensor:
        """u at Eulerian points (x, t), both of shape (n,)."""
        self._check_xt(x, t)
        return self._u(x, t)
