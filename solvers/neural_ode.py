"""NeuralODESolver: a neural ODE dy/dt = f_θ(t, y) trained on trajectories, on torchdiffeq.

Chen, Rubanova, Bettencourt & Duvenaud 2018, "Neural Ordinary Differential Equations"
(NeurIPS): the trajectory is ``odeint(f, y0, t)``; gradients come from backpropagation through
the solver or from the adjoint ODE (eq. 4–5, ``adjoint=True``: memory constant in the number
of steps).

Optional regularization of the solver's internal heuristics, which makes the learned dynamics
cheaper to integrate (fewer function evaluations, NFE) at nearly the same accuracy:

- Pal, Ma, Shah & Rackauckas 2021, "Opening the Blackbox: Accelerating Neural Differential
  Equations by Regularizing Internal Solver Heuristics" (ICML): penalize the adaptive solver's
  local error estimates, R_E = Σ_j E_j |h_j|, or its stiffness estimates, R_S = Σ_j S_j |h_j|,
  summed over the steps j of the solve.
- Pal, Edelman & Rackauckas 2023, "Locally Regularized Neural Differential Equations: Some
  Black Boxes Were Meant to Remain Closed!" (ICML, arXiv:2303.02262): evaluate the same
  quantity at a uniformly drawn time only (Algorithm 1, unbiased sampling: one solver step from
  y(t_r) gives E·|h|), which needs no access to the solver's internals and works with any adjoint.

torchdiffeq 0.2.5 does not expose its per-step estimates, so both are computed here as in the
local paper: at ``reg_samples`` uniformly drawn times t_r the state y(t_r) comes from the same
solve, the step h is the one an adaptive solver would settle on there (Hairer's starting step,
"Solving ODEs I", §II.4, rescaled once by the step controller), and one step of the embedded
Dormand–Prince 5(4) pair gives the scaled local error estimate E (the dopri5 error norm) and
Hairer's stiffness estimate S = ‖k₇ − k₆‖ / ‖g₇ − g₆‖ (op. cit. II, §IV.2). With one sample
this is the local regularizer; with many, a Monte-Carlo stand-in for the global one. The penalty lowers E at the controller's step, so the
controller can take longer steps: it removes dynamics the data do not ask for, and also damps
real high-frequency content, so it suits prediction more than system identification.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from sciml.solver import Solver

__all__ = ["NeuralODESolver", "VectorField", "dopri5_heuristics"]

REGULARIZATIONS = ("error", "stiffness")

# Dormand & Prince 1980, "A family of embedded Runge-Kutta formulae", the RK5(4)7M tableau
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_B5 = _A[6] + (0.0,)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


class VectorField(nn.Module):
    """f(t, y) as a multilayer perceptron of y ``(B, dim)`` (and of t with ``time=True``): tanh layers."""

    def __init__(self, dim: int, hidden: int = 64, depth: int = 2, time: bool = False):
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.time = bool(time)
        layers, width = [], dim + self.time
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        if self.time:
            y = torch.cat([y, t.to(y.dtype).expand(y.shape[0], 1)], dim=1)
        return self.net(y)


class _Counted(nn.Module):
    """f(t, y) that counts its evaluations (forward solve, adjoint solve and regularizer alike)."""

    def __init__(self, func: nn.Module):
        super().__init__()
        self.func = func
        self.nfe = 0

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        return self.func(t, y)


def _rms(x: Tensor) -> Tensor:
    return x.pow(2).mean().sqrt()


def _dopri5_step(func, t: Tensor, y: Tensor, h: Tensor, rtol: float, atol: float) -> tuple[Tensor, Tensor]:
    """One Dormand–Prince step of size h: (weighted RMS error estimate E, stiffness estimate S)."""
    ks, stages = [], []
    for i in range(7):
        g = y + h * sum(a * k for a, k in zip(_A[i], ks)) if i else y
        stages.append(g)
        ks.append(func(t + _C[i] * h, g))
    y5 = stages[6]  # first same as last: the seventh stage point is the fifth-order solution
    err = h * sum((b5 - b4) * k for b5, b4, k in zip(_B5, _B4, ks))
    error = _rms(err / (atol + rtol * torch.maximum(y.detach().abs(), y5.detach().abs())))
    stiffness = (ks[6] - ks[5]).norm() / (stages[6] - stages[5]).norm().clamp_min(1e-30)
    return error, stiffness


def dopri5_heuristics(func, t: Tensor, y: Tensor, rtol: float, atol: float) -> tuple[Tensor, Tensor, Tensor]:
    """The adaptive solver's view of ``func`` at (t, y): (step h, error estimate E, stiffness S).

    h is the step an adaptive dopri5 settles on from (t, y): Hairer's starting step
    (d₀ = ‖y‖, d₁ = ‖f‖, h₀ = 0.01 d₀/d₁, d₂ = ‖f(y + h₀f) − f‖/h₀,
    h = min(100 h₀, (0.01/max(d₁, d₂))^{1/5}) in the norm weighted by atol + rtol|y|), then
    rescaled once by the step controller's factor 0.9·E^{−1/5}; it is detached. E is the weighted
    RMS norm of the embedded error of the Dormand–Prince step of size h and
    S = ‖k₇ − k₆‖/‖g₇ − g₆‖ estimates the spectral radius of ∂f/∂y; both keep their graph.
    """
    with torch.no_grad():
        scale = atol + rtol * y.abs()
        f0 = func(t, y)
        d0, d1 = _rms(y / scale), _rms(f0 / scale)
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1)
        d2 = _rms((func(t + h0, y + h0 * f0) - f0) / scale) / h0
        h1 = torch.where(torch.maximum(d1, d2) <= 1e-15, torch.maximum(h0 * 1e-3, torch.full_like(h0, 1e-6)),
                         (0.01 / torch.maximum(d1, d2)) ** (1 / 5))
        h = torch.minimum(100 * h0, h1)
        e0, _ = _dopri5_step(func, t, y, h, rtol, atol)
        h = h * (0.9 * e0.clamp_min(1e-20) ** (-1 / 5)).clamp(0.1, 1e4)  # the controller's next step
    error, stiffness = _dopri5_step(func, t, y, h, rtol, atol)
    return h, error, stiffness


def _trajectory_batch(batch: Any) -> tuple[Tensor, Tensor]:
    """A batch is (t, y): times ``(T,)`` (or ``(B, T)`` with equal rows) and states ``(B, T, *state)``."""
    if isinstance(batch, dict) and "t" in batch and "y" in batch:
        t, y = batch["t"], batch["y"]
    elif isinstance(batch, (tuple, list)) and len(batch) == 2:
        t, y = batch
    else:
        raise TypeError(f"a neural-ODE batch is (t, y) or a dict with 't' and 'y', got {type(batch).__name__}")
    if t.dim() == 2:
        if not bool((t == t[:1]).all()):
            raise ValueError("all trajectories in a batch must share one time grid")
        t = t[0]
    if t.dim() != 1 or t.numel() < 2:
        raise ValueError(f"t must be a grid of at least 2 times, got shape {tuple(t.shape)}")
    if y.dim() < 3 or y.shape[1] != t.numel():
        raise ValueError(f"y must have shape (batch, {t.numel()}, *state) to match t, got {tuple(y.shape)}")
    if not bool((t[1:] > t[:-1]).all()):
        raise ValueError("t must be strictly increasing")
    return t, y


class NeuralODESolver(Solver):
    """Learn dy/dt = func(t, y) from trajectories.

    Parameters
    ----------
    func : ``nn.Module`` ``func(t, y)`` with t a scalar tensor and y ``(B, *state)``.
    method, rtol, atol, options : passed to ``torchdiffeq.odeint`` (``"dopri5"``, ``"rk4"``, ...).
    adjoint : gradients by the adjoint method (``odeint_adjoint``) instead of backpropagation.
    regularization : None, ``"error"`` (R_E) or ``"stiffness"`` (R_S), see the module docstring.
    reg_weight : weight of the regularizer in the loss.
    reg_samples : number of random times per batch at which the regularizer is evaluated.

    ``last_nfe`` holds the function evaluations of the most recent forward solve.
    """

    def __init__(self, func: nn.Module, *, method: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-6,
                 adjoint: bool = False, options: dict | None = None, regularization: str | None = None,
                 reg_weight: float = 1e-2, reg_samples: int = 1):
        super().__init__()
        if not isinstance(func, nn.Module):
            raise TypeError(f"func must be an nn.Module (odeint_adjoint needs its parameters), "
                            f"got {type(func).__name__}")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol and atol must be positive, got rtol={rtol}, atol={atol}")
        if regularization not in (None,) + REGULARIZATIONS:
            raise ValueError(f"regularization must be None or one of {REGULARIZATIONS}, got {regularization!r}")
        if not reg_weight >= 0:
            raise ValueError(f"reg_weight must be non-negative, got {reg_weight}")
        if not (isinstance(reg_samples, int) and reg_samples >= 1):
            raise ValueError(f"reg_samples must be a positive integer, got {reg_samples!r}")
        self.func = _Counted(func)
        self.method, self.rtol, self.atol, self.options = method, float(rtol), float(atol), dict(options or {})
        self.adjoint = bool(adjoint)
        self.regularization, self.reg_weight, self.reg_samples = regularization, float(reg_weight), reg_samples
        self.last_nfe = 0
        self.supports_bf16 = False  # adaptive step control needs full-precision error norms

    def _solve(self, y0: Tensor, t: Tensor) -> Tensor:
        solve = odeint_adjoint if self.adjoint else odeint
        before = self.func.nfe
        path = solve(self.func, y0, t, rtol=self.rtol, atol=self.atol, method=self.method,
                     options=self.options or None)
        self.last_nfe = self.func.nfe - before
        return path.movedim(0, 1)  # (T, B, ...) → (B, T, ...)

    def regularizer(self, t: Tensor, y: Tensor) -> Tensor:
        """R at the sampled states y ``(B, R, *state)`` at times t ``(R,)`` (mean over the samples)."""
        terms = []
        for i in range(t.numel()):
            h, error, stiffness = dopri5_heuristics(self.func, t[i], y[:, i], self.rtol, self.atol)
            terms.append((error if self.regularization == "error" else stiffness) * h)  # E_j|h_j| or S_j|h_j|
        return torch.stack(terms).mean()

    def loss(self, batch: Any) -> Tensor:
        t, y = _trajectory_batch(batch)
        if self.regularization is None or self.reg_weight == 0:
            return (self._solve(y[:, 0], t) - y).pow(2).mean()
        t_r = t[0] + (t[-1] - t[0]) * torch.rand(self.reg_samples, dtype=t.dtype, device=t.device)
        grid, order = torch.sort(torch.cat([t, t_r]))
        path = self._solve(y[:, 0], grid)
        where = torch.empty_like(order)
        where[order] = torch.arange(order.numel(), device=order.device)  # position of each time in grid
        fit = (path[:, where[: t.numel()]] - y).pow(2).mean()
        return fit + self.reg_weight * self.regularizer(t_r, path[:, where[t.numel():]])

    def sampled_loss(self, batch: Any, generator: torch.Generator) -> Tensor:
        """Sophia-G's sampled loss (see :meth:`sciml.Solver.sampled_loss`): ⟨ŷ, s⟩, s ~ N(0, 2/N·I).

        The loss mean((ŷ − y)²) over the N numbers of the predicted trajectories ŷ has
        ∇²_ŷ ℓ = 2/N·I (labels y ~ N(ŷ, N/2·I) around the prediction), so E[ĝĝᵀ] = 2/N·JᵀJ, its
        Gauss–Newton matrix, with J the Jacobian of ŷ in the parameters (through the solver, or
        its adjoint). The regularizers R_E and R_S are not sums of squares and have no
        Gauss–Newton matrix: with one active this raises.
        """
        if self.regularization is not None and self.reg_weight != 0:
            raise NotImplementedError(f"sampled_loss (Sophia-G) covers the trajectory misfit only; regularization="
                                      f"{self.regularization!r} with reg_weight={self.reg_weight} has no "
                                      "Gauss-Newton matrix (set reg_weight=0 or use another optimizer)")
        t, y = _trajectory_batch(batch)
        pred = self._solve(y[:, 0], t)
        xi = torch.randn(pred.shape, generator=generator, dtype=pred.dtype).to(pred.device)
        return (pred * xi).sum() * math.sqrt(2.0 / pred.numel())

    @torch.no_grad()
    def evaluate(self, batch: Any) -> dict[str, Tensor]:
        """MSE of the trajectory, its relative L2 error, and the NFE of the solve."""
        t, y = _trajectory_batch(batch)
        pred = self._solve(y[:, 0], t)
        rel = ((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()
        return {"loss": (pred - y).pow(2).mean(), "rel_l2": rel,
                "nfe": torch.tensor(float(self.last_nfe))}

    @torch.no_grad()
    def sample(self, y0: Tensor, t: Tensor) -> Tensor:
        """Integrate from ``y0`` ``(B, *state)`` over the increasing times ``t`` ``(T,)``; returns ``(B, T, *state)``."""
        if not isinstance(y0, Tensor) or not isinstance(t, Tensor):
            raise TypeError(f"y0 and t must be tensors, got {type(y0).__name__} and {type(t).__name__}")
        if t.dim() != 1 or t.numel() < 2 or not bool((t[1:] > t[:-1]).all()):
            raise ValueError(f"t must be a strictly increasing 1-D grid of at least 2 times, got {t}")
        was_training = self.training
        self.eval()
        out = self._solve(y0, t.to(y0.dtype))
        self.train(was_training)
        return out
