"""SDGDSolver: PINNs for high-dimensional Poisson problems by Stochastic Dimension Gradient Descent.

Hu, Shukla, Karniadakis & Kawaguchi 2024, "Tackling the Curse of Dimensionality with
Physics-Informed Neural Networks" (Neural Networks, 106369; arXiv:2307.12306), §3.

For Δu(x) = f(x) on a domain in ℝ^d the PINN residual is a sum of d dimension pieces,

    r(x) = Σ_{i=1}^{d} ∂²u_θ/∂x_i² − f(x),                                         (R)

and the gradient of the residual loss ℓ(θ) = mean_x r(x)² is

    ∇ℓ = 2 mean_x r(x) · Σ_{i=1}^{d} ∇_θ ∂²u_θ/∂x_i².                              (G)

SDGD samples the second level of a two-level batch (collocation points × dimensions): an index
set I of |I| dimensions, drawn uniformly without replacement, for the backward pass, and an
independent set J for the forward pass (the residual value), each rescaled by d/|·|,

    r_I(x) = (d/|I|) Σ_{i∈I} ∂²u_θ/∂x_i² − f(x),   r_J(x) likewise,                (R_I)
    g_{I,J} = 2 mean_x r_J(x) · ∇_θ r_I(x).                                          (G_IJ)

Since E_I[r_I] = r and I, J are independent, E[g_{I,J}] = ∇ℓ: the estimator is unbiased (the
paper's unbiasedness result for sampling both passes). Only the |I ∪ J| sampled second
derivatives are computed, and only those in I keep a graph for backpropagation, so the cost
and memory of a step scale with |I|, not d. With |J| = d the forward pass is exact (the paper's
first variant, backward sampling only); with |I| = |J| = d this is the ordinary PINN loss. The
paper's released code also offers a variant with J = I, which is biased; it is not used here.

Second derivatives are forward-over-reverse Hessian-vector products ``jvp(grad(u), e_i)`` with
``torch.func``, vectorised over the sampled directions and over the points (no Python loop).

The test problem is the paper's two-body Poisson problem on the unit ball (§5.1, the Poisson
case of its released code):

    u*(x) = (1 − ‖x‖²) Σ_{i=1}^{d−1} c_i sin(x_i + cos(x_{i+1}) + x_{i+1} cos(x_i)),  c_i ~ N(0, 1),

with zero boundary values, imposed exactly as in the paper: u_θ(x) = (1 − ‖x‖²) N_θ(x).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import grad, jvp, vmap
from torch.utils.data import TensorDataset

from sciml.losses import relative_l2
from sciml.solver import Solver
from sciml.validation import positive_int

__all__ = ["SDGDSolver", "TwoBodyPoisson"]


class TwoBodyPoisson:
    """Δu = f on the unit ball of ℝ^d, u = 0 on its sphere, with the paper's two-body solution.

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
        """f = Δu* in closed form, for points ``x`` of shape (n, d); returns (n,)."""
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
        return w * lap_v - 4 * x_grad_v - 2 * self.dim * v

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


class _MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, depth: int):
        super().__init__()
        sizes = [dim] + [hidden] * (depth - 1)
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out), nn.Tanh()]
        self.net = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SDGDSolver(Solver):
    """A PINN for Δu = f on the unit ball, trained with SDGD's unbiased dimension sampling.

    Parameters
    ----------
    problem : the PDE, a :class:`TwoBodyPoisson` (or any object with ``dim``, ``forcing(x)``
        and ``exact(x)`` on the unit ball with zero boundary values).
    dims : |I|, the dimensions sampled per step for the backward pass (R_I); ``problem.dim``
        means no sampling.
    residual_dims : |J|, the dimensions sampled independently for the residual value (R_J);
        None: the same number as ``dims``; ``problem.dim``: the exact residual.
    hidden, depth : width and number of linear layers of the tanh MLP N_θ (the paper: 128, 4).
    generator : draws the index sets; None uses the global RNG (seeded and checkpointed by the
        Trainer).

    Batches are pairs ``(x (B, d), f (B,))`` as :meth:`TwoBodyPoisson.dataset` yields, or points
    ``x (B, d)`` alone (the forcing is then computed from ``problem``).
    """

    supports_bf16 = False  # second derivatives of a tanh MLP lose all accuracy in bf16

    def __init__(self, problem: TwoBodyPoisson, dims: int = 10, residual_dims: int | None = None,
                 hidden: int = 128, depth: int = 4, generator: torch.Generator | None = None):
        super().__init__()
        for attr in ("dim", "forcing", "exact"):
            if not hasattr(problem, attr):
                raise TypeError(f"problem must have dim, forcing(x) and exact(x); "
                                f"{type(problem).__name__} has no {attr!r}")
        d = problem.dim
        positive_int("dims", dims)
        if dims > d:
            raise ValueError(f"dims must be at most the dimension {d}, got {dims}")
        residual_dims = dims if residual_dims is None else positive_int("residual_dims", residual_dims)
        if residual_dims > d:
            raise ValueError(f"residual_dims must be at most the dimension {d}, got {residual_dims}")
        positive_int("hidden", hidden)
        positive_int("depth", depth)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.problem, self.dim = problem, d
        self.dims, self.residual_dims = dims, residual_dims
        self.generator = generator
        self.net = _MLP(d, hidden, depth).to(getattr(problem, "dtype", torch.float32))

    # ------------------------------------------------------------------ the model
    def _u(self, x: Tensor) -> Tensor:
        """u_θ at one point x (d,): the hard boundary constraint (1 − ‖x‖²) N_θ(x)."""
        return ((1 - x.pow(2).sum()) * self.net(x)).squeeze(-1)

    def second_derivatives(self, x: Tensor, dims: Tensor) -> Tensor:
        """∂²u_θ/∂x_i² for i in ``dims`` at points ``x`` (n, d); returns (n, len(dims)).

        Forward-over-reverse: the directional derivative of ∇u_θ along e_i, read at entry i.
        """
        basis = torch.eye(self.dim, dtype=x.dtype, device=x.device)[dims]
        grad_u = grad(self._u)

        def at_point(point: Tensor) -> Tensor:
            return vmap(lambda e: jvp(grad_u, (point,), (e,))[1] @ e)(basis)

        return vmap(at_point)(x)

    def _laplacian_estimate(self, x: Tensor, dims: Tensor) -> Tensor:
        return self.second_derivatives(x, dims).sum(1) * (self.dim / dims.numel())  # (R_I): d/|I| Σ_{i∈I}

    def draw_dims(self, k: int) -> Tensor:
        """k distinct dimensions, uniformly at random (each index set of size k equally likely)."""
        return torch.randperm(self.dim, generator=self.generator)[:k]

    # ------------------------------------------------------------------ the contract
    def _batch(self, batch: Any) -> tuple[Tensor, Tensor]:
        if isinstance(batch, Tensor):
            x, f = batch, None
        elif isinstance(batch, dict) and "x" in batch:
            x, f = batch["x"], batch.get("f")
        elif isinstance(batch, (tuple, list)) and len(batch) == 2:
            x, f = batch
        else:
            raise TypeError(f"batch must be points x, a pair (x, f) or a dict with 'x' (and 'f'), "
                            f"got {type(batch).__name__}")
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"batch points x must have shape (B, {self.dim}), "
                             f"got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
        if f is None:
            f = self.problem.forcing(x)
        if not isinstance(f, Tensor) or f.shape != x.shape[:1]:
            raise ValueError(f"batch forcing f must have shape ({x.shape[0]},), "
                             f"got {tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__}")
        return x, f

    def residual_loss(self, x: Tensor, f: Tensor, dims: Tensor, residual_dims: Tensor) -> Tensor:
        """The SDGD objective for given index sets I = ``dims`` and J = ``residual_dims``.

        Its value is mean_x r_J r_I, an unbiased estimate of ℓ = mean_x r² when I and J are
        independent; its gradient is g_{I,J} of (G_IJ), an unbiased estimate of ∇ℓ (G).
        """
        r_i = self._laplacian_estimate(x, dims) - f  # (R_I), with a graph
        if residual_dims.numel() == dims.numel() == self.dim:
            return r_i.pow(2).mean()  # no sampling: the ordinary PINN loss (R), (G)
        with torch.no_grad():  # the forward pass needs no graph
            r_j = self._laplacian_estimate(x, residual_dims) - f  # (R_J)
        # value mean(r_J r_I), gradient 2 mean(r_J ∇r_I): (G_IJ)
        return (r_j * (2 * r_i - r_i.detach())).mean()

    def loss(self, batch: Any) -> Tensor:
        x, f = self._batch(batch)
        return self.residual_loss(x, f, self.draw_dims(self.dims).to(x.device),
                                  self.draw_dims(self.residual_dims).to(x.device))

    @torch.no_grad()
    def evaluate(self, batch: Any) -> dict[str, Tensor]:
        """Relative L2 error of u_θ against the exact solution on the batch's points, and the MSE."""
        x, _ = self._batch(batch)
        pred, exact = self.sample(x), self.problem.exact(x)
        return {"rel_l2": relative_l2(pred[None], exact[None]), "mse": (pred - exact).pow(2).mean()}

    @torch.no_grad()
    def sample(self, points: Tensor) -> Tensor:
        """u_θ at ``points`` (n, d) in the unit ball; returns (n,)."""
        if not isinstance(points, Tensor):
            raise TypeError(f"points must be a tensor, got {type(points).__name__}")
        if points.dim() != 2 or points.shape[1] != self.dim:
            raise ValueError(f"points must have shape (n, {self.dim}), got {tuple(points.shape)}")
        return ((1 - points.pow(2).sum(1, keepdim=True)) * self.net(points)).squeeze(1)
