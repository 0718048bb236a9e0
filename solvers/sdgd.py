"""SDGDSolver: PINNs for high-dimensional Poisson problems by Stochastic Dimension Gradient Descent.

Hu, Shukla, Karniadakis & Kawaguchi 2024, "Tackling the Curse of Dimensionality with
Physics-Informed Neural Networks" (Neural Networks, 106369; arXiv:2307.12306), §3.

For a PDE whose residual is a sum of d dimension pieces, such as −Δu = f on a domain in ℝ^d (the
sign of the built-in :func:`~sciml.solvers.pinn_problems.poisson`),

    r(x) = −Σ_{i=1}^{d} ∂²u_θ/∂x_i² − f(x),                                        (R)

the gradient of the residual loss ℓ(θ) = mean_x r(x)² is

    ∇ℓ = 2 mean_x r(x) · ∇_θ r(x).                                                  (G)

SDGD samples the second level of a two-level batch (collocation points × dimensions): an index
set I of |I| dimensions, drawn uniformly without replacement, for the backward pass, and an
independent set J for the forward pass (the residual value), each sum rescaled by d/|·|,

    r_I(x) = −(d/|I|) Σ_{i∈I} ∂²u_θ/∂x_i² − f(x),   r_J(x) likewise,               (R_I)
    g_{I,J} = 2 mean_x r_J(x) · ∇_θ r_I(x).                                          (G_IJ)

Since E_I[r_I] = r and I, J are independent, E[g_{I,J}] = ∇ℓ for any residual affine in its
dimension sum: the estimator is unbiased (the paper's unbiasedness result for sampling both
passes). Only the sampled second derivatives are computed: a step takes 1 + |I| + |J| backward
passes (reverse over reverse, each giving a whole row of the Hessian, of which one entry is read),
not 1 + d; each pass still touches the d inputs, so the cost grows mildly with d (one thread,
128×4 tanh, 100 points, |I| = |J| = 10, loss + backward + Adam on a shared 2-core CPU: 0.03 s per
step at d = 100, 0.07–0.11 s at d = 1000, 1.0–1.4× the earlier forward-over-reverse implementation
measured in the same runs; forward-over-reverse inside Derivatives was no faster here). With
|J| = d the forward pass is exact (the paper's first variant, backward sampling only); with
|I| = |J| = d this is the ordinary PINN loss. The paper's released code also
offers a variant with J = I, which is biased; it is not used here.

The problem is an ordinary :class:`~sciml.solvers.pinn.PDEProblem`: its residual writes the sum over
dimensions as ``d.dimension_sum(...)`` (``d.laplacian()`` is one), which SDGD restricts to the drawn
set. The test problem is the paper's two-body Poisson problem on the unit ball (§5.1, the Poisson
case of its released code):

    u*(x) = (1 − ‖x‖²) Σ_{i=1}^{d−1} c_i sin(x_i + cos(x_{i+1}) + x_{i+1} cos(x_i)),  c_i ~ N(0, 1),

with zero boundary values, imposed exactly as in the paper: u_θ(x) = (1 − ‖x‖²) N_θ(x).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from sciml.solvers.pinn import Domain, PDEProblem, PINNSolver
from sciml.solvers.pinn_geometry import Ball
from sciml.validation import positive_int

__all__ = ["SDGDSolver", "TwoBodyPoisson"]


class TwoBodyPoisson:
    """−Δu = f on the unit ball of ℝ^d, u = 0 on its sphere, with the paper's two-body solution.

    Parameters
    ----------
    dim : the dimension d ≥ 2.
    seed : seeds the coefficients c_i ~ N(0, 1).
    dtype : floating dtype of the points, the solution and the forcing.
    """

    def __init__(self, dim: int, seed: int = 0, dtype: torch.dtype = torch.float32):
        positive_int("dim", dim)
        if dim < 2:
            raise ValueError(f"dim must be at least 2 (the solution couples x_i and x_(i+1)), got {dim}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.dim, self.dtype = dim, dtype
        self.coefficients = torch.randn(dim - 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)

    def _check(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")

    def _parts(self, x: Tensor):
        c = self.coefficients.to(x)
        a, b = x[:, :-1], x[:, 1:]
        phase = a + torch.cos(b) + b * torch.cos(a)
        return c, a, b, phase

    def exact(self, x: Tensor) -> Tensor:
        """u*(x) for points ``x`` of shape (n, d); returns (n,)."""
        self._check(x)
        c, _, _, phase = self._parts(x)
        return (1 - x.pow(2).sum(1)) * (c * torch.sin(phase)).sum(1)

    def forcing(self, x: Tensor) -> Tensor:
        """f = −Δu* in closed form, for points ``x`` of shape (n, d); returns (n,)."""
        self._check(x)
        c, a, b, phase = self._parts(x)
        s, co = torch.sin(phase), torch.cos(phase)
        p = 1 - b * torch.sin(a)  # ∂phase_i/∂x_i
        q = torch.cos(a) - torch.sin(b)  # ∂phase_i/∂x_(i+1)
        v = (c * s).sum(1)
        lap_v = (c * (-s * (p.pow(2) + q.pow(2)) - co * (b * torch.cos(a) + torch.cos(b)))).sum(1)
        x_grad_v = (c * co * (a * p + b * q)).sum(1)  # x · ∇v
        w = 1 - x.pow(2).sum(1)
        # Δ(w v) = w Δv + 2 ∇w·∇v + v Δw with ∇w = −2x, Δw = −2d
        return -(w * lap_v - 4 * x_grad_v - 2 * self.dim * v)

    def problem(self) -> PDEProblem:
        """The same problem as a :class:`~sciml.solvers.pinn.PDEProblem`: −Δu − f = 0 on the unit ball,
        the boundary value imposed by u = (1 − ‖x‖²) N (lift 0, distance 1 − ‖x‖²)."""
        names = tuple(f"x{i}" for i in range(self.dim)) if self.dim > 3 else None
        domain = Domain(Ball([0.0] * self.dim, 1.0), names=names)
        return PDEProblem(name=f"two_body_poisson_{self.dim}d", domain=domain,
                          residual=lambda p, d: -d.laplacian() - self.forcing(p),  # (R)
                          boundary=lambda p: torch.zeros_like(p[:, 0]), lift=lambda p: torch.zeros_like(p[:, 0]),
                          distance=lambda p: 1 - p.pow(2).sum(1), hard_terms=("boundary",), solution=self.exact)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n points in the unit ball: uniform direction, radius uniform on [0, 1] (as the paper).

        A volume-uniform radius would put almost every point at ‖x‖ ≈ 1 in high dimension,
        where u* ≈ 0; the uniform radius samples the interior at every scale.
        """
        positive_int("n", n)
        direction = torch.randn(n, self.dim, generator=generator, dtype=self.dtype)
        radius = torch.rand(n, 1, generator=generator, dtype=self.dtype)
        return direction / direction.norm(dim=1, keepdim=True) * radius

    def dataset(self, n: int, generator: torch.Generator | None = None) -> TensorDataset:
        """A map-style dataset of n points and their forcing, items ``(x (d,), f ())``."""
        x = self.sample(n, generator)
        return TensorDataset(x, self.forcing(x))


class SDGDSolver(PINNSolver):
    """A PINN trained with SDGD's unbiased dimension sampling, for any :class:`~sciml.solvers.pinn.PDEProblem`
    whose residual sums over dimensions through ``d.dimension_sum`` / ``d.laplacian()``.

    Parameters
    ----------
    problem : the PDE problem, or a :class:`TwoBodyPoisson` (its :meth:`TwoBodyPoisson.problem` is used).
        Its other loss terms (conditions) are added as in :class:`PINNSolver`; boundary values set by a
        hard constraint (``hard_terms``) are imposed exactly.
    dims : |I|, the dimensions sampled per step for the backward pass (R_I); the space dimension
        means no sampling.
    residual_dims : |J|, the dimensions sampled independently for the residual value (R_J);
        None: the same number as ``dims``; the space dimension: the exact residual.
    hidden, depth : width and number of linear layers of the tanh MLP N_θ (the paper: 128, 4).
    seed : seeds everything random: the network's initial weights and the index sets.
    generator : draws the index sets instead of the seed's own generator.
    dtype : the network's dtype (default: a TwoBodyPoisson's, else float32).

    Batches: a :class:`~sciml.solvers.pinn.Collocation` item, points ``x (B, d)``, ``(x,)``, or the
    items ``(x, f)`` of :meth:`TwoBodyPoisson.dataset` (the forcing is the problem's own; f is not read).
    """

    def __init__(self, problem: PDEProblem | TwoBodyPoisson, dims: int = 10, residual_dims: int | None = None,
                 hidden: int = 128, depth: int = 4, seed: int = 0, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None, **options: Any):
        dtype = dtype or getattr(problem, "dtype", torch.float32)
        if isinstance(problem, TwoBodyPoisson):
            problem = problem.problem()
        if not isinstance(problem, PDEProblem):
            raise TypeError(f"problem must be a PDEProblem or a TwoBodyPoisson, got {type(problem).__name__}")
        positive_int("hidden", hidden)
        positive_int("depth", depth)
        super().__init__(problem, hidden=(hidden,) * (depth - 1), seed=seed, hard=bool(problem.hard_terms),
                         dtype=dtype, **options)
        if self._own_terms != ("residual",):
            raise ValueError(f"SDGDSolver poses boundary and initial data as conditions or hard constraints; "
                             f"problem {problem.name!r} has the terms {self._own_terms}")
        d = problem.domain.space_dim
        positive_int("dims", dims)
        if dims > d:
            raise ValueError(f"dims must be at most the dimension {d}, got {dims}")
        residual_dims = dims if residual_dims is None else positive_int("residual_dims", residual_dims)
        if residual_dims > d:
            raise ValueError(f"residual_dims must be at most the dimension {d}, got {residual_dims}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.dim, self.dims, self.residual_dims = d, dims, residual_dims
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed + 1)

    def draw_dims(self, k: int) -> Tensor:
        """k distinct spatial dimensions, uniformly at random (each index set of size k equally likely)."""
        return torch.randperm(self.dim, generator=self.generator)[:k]

    def sampled_residual(self, points: Tensor, dims: Tensor) -> Tensor:
        """The residual with its dimension sum over ``dims`` only, scaled by d/|dims|: (R_I)."""
        d = self.derivatives(points)
        space = [i for i, c in enumerate(d.names) if c != "t"]
        d.sample_dimensions([space[int(i)] for i in dims])
        r = self.problem.residual(d.points, d)
        if r.dim() != 1:
            raise ValueError(f"SDGDSolver needs a residual of one equation, (n,); problem {self.problem.name!r} "
                             f"returns {tuple(r.shape)}")
        return r

    def residual_loss(self, points: Tensor, dims: Tensor, residual_dims: Tensor) -> Tensor:
        """The SDGD objective for given index sets I = ``dims`` and J = ``residual_dims``.

        Its value is mean_x r_J r_I, an unbiased estimate of ℓ = mean_x r² when I and J are
        independent; its gradient is g_{I,J} of (G_IJ), an unbiased estimate of ∇ℓ (G).
        """
        r_i = self.sampled_residual(points, dims)  # (R_I), with a graph
        if residual_dims.numel() == dims.numel() == self.dim:
            return r_i.pow(2).mean()  # no sampling: the ordinary PINN loss (R), (G)
        r_j = self.sampled_residual(points, residual_dims).detach()  # (R_J): its value only
        # value mean(r_J r_I), gradient 2 mean(r_J ∇r_I): (G_IJ)
        return (r_j * (2 * r_i - r_i.detach())).mean()

    def _points(self, batch: Any) -> Tensor:
        if isinstance(batch, dict):
            x = batch.get("interior", batch.get("x"))
        elif isinstance(batch, (tuple, list)) and len(batch) in (1, 2):  # (x,) or (x, f) from a TensorDataset
            x = batch[0]
        else:
            x = batch
        return self._check_points(x, "batch points")

    def loss(self, batch: Any) -> Tensor:
        x = self._points(batch)
        total = self.weights["residual"] * self.residual_loss(x, self.draw_dims(self.dims).to(x.device),
                                                              self.draw_dims(self.residual_dims).to(x.device))
        if isinstance(batch, dict) and self.problem.conditions:
            total = total + sum(self.weights[k] * sum(r.pow(2).mean() for r in rs)
                                for k, rs in self.condition_residuals(batch).items())
        return total

    def evaluate(self, batch: Any) -> dict[str, Tensor]:
        """Each condition's term, the trained coefficients and, where the problem has a solution,
        the relative L2 error and MSE on the batch's points.

        No residual term: the full sum over dimensions is what SDGD avoids, and a sampled one
        would draw from the training's random stream."""
        metrics: dict[str, Tensor] = {}
        if isinstance(batch, dict) and self.problem.conditions:
            with torch.enable_grad():  # the Trainer evaluates under no_grad; Neumann terms need autograd
                for k, rs in self.condition_residuals(batch).items():
                    metrics[k] = sum(r.detach().pow(2).mean() for r in rs)
        for name, value in self.coefficients.items():
            metrics[f"param.{name}"] = value.detach()
        if self.problem.solution is not None:
            x = self._points(batch).to(torch.float64)
            pred, exact = self.sample(x.to(self.dtype)).double(), self.problem.solution(x).double()
            metrics.update(rel_l2=torch.linalg.vector_norm(pred - exact) / torch.linalg.vector_norm(exact),
                           mse=(pred - exact).pow(2).mean())
        if not metrics:
            raise ValueError(f"problem {self.problem.name!r} has neither a solution nor conditions: "
                             "SDGDSolver.evaluate has nothing to report")
        return metrics
