"""NNCG: damped Newton–CG with a randomized Nyström preconditioner and an Armijo line search.

Rathore, Lei, Frangella, Lu & Udell, "Challenges in Training PINNs: A Loss Landscape
Perspective", ICML 2024, arXiv:2402.01868, Algorithm 3 (NNCG), with the randomized Nyström
approximation and preconditioner of Frangella, Tropp & Udell, "Randomized Nyström
Preconditioning", SIAM J. Matrix Anal. Appl. 44(2), 2023, Algorithm 2.1 and eq. (5.3) (the
preconditioner first appears in their §1.1; equation numbers are those of the journal version).

With the parameters flattened to w ∈ ℝᵖ, the loss f, its gradient g and Hessian H, one step is

    every F steps, a rank-r Nyström approximation Ĥ = U Λ̂ Uᵀ ≈ H (Alg. 2.1):
        Ω ~ N(0, I) (p × r), Q = qr(Ω), Y = HQ (r Hessian-vector products),
        ν = √p · eps · ‖Y‖₂, Y_ν = Y + νQ, C = chol(Qᵀ Y_ν), B = Y_ν C⁻ᵀ,
        B = U Σ Vᵀ (thin SVD), Λ̂ = max(0, Σ² − ν)                                       (1)
    P⁻¹ = (λ̂_r + μ) U (Λ̂ + μI)⁻¹ Uᵀ + (I − UUᵀ)                                 (2) [(5.3)]
    d ≈ (H + μI)⁻¹ g by conjugate gradients preconditioned with P                     (3)
    η = lr · βᵏ for the least k with f(w − ηd) ≤ f(w) − α η gᵀd (Armijo)               (4)
    w ← w − η d                                                                        (5)

Where this file departs from the paper and its reference code (the authors' ``NysNewtonCG``):

- The CG tolerance is relative, ‖r‖ ≤ ``cg_tol``·‖g‖; the reference's absolute 1e-16 in
  practice runs all ``cg_max_iters`` iterations.
- A PINN's Hessian is indefinite. CG starts from d = 0 and stops at the first direction of
  non-positive curvature of H + μI (truncated Newton–CG, Nocedal & Wright, "Numerical
  Optimization", 2nd ed., Algorithm 7.1); its iterates stay descent directions, gᵀd > 0. If
  that happens on the first iteration, d = P⁻¹g. Likewise, where Qᵀ Y_ν in (1) is not positive
  definite, ν is raised to 2ν + 2|λ_min(Qᵀ Y_ν)| (the reference adds 2|λ_min|) and Y_ν is formed
  with the raised ν, so (1) is the Nyström approximation of H + νI, less νI.
- The line search tries at most ``max_line_search`` step sizes; if none satisfies (4), w is
  left unchanged and the step is counted in ``state["nncg_rejected_steps"]``: a step never
  increases the loss.
- The test matrix Ω comes from a generator kept in the optimizer state (seeded by ``seed``), so
  a run resumed from ``state_dict()`` draws the same sketches. The dense algebra of (1)–(3) is
  done in float64 (p × r matrices); Hessian-vector products run in the parameters' dtype.

The step needs the gradient's graph (Hessian-vector products through ``torch.autograd.grad``
with ``retain_graph=True``) and a closure (the line search): ``step_requires`` is
``{"closure", "create_graph", "loss"}``, and the Trainer serves them (the loss it computed
spares the step one closure call). Called by hand::

    opt.zero_grad()
    loss_fn().backward(create_graph=True)   # the graph the Hessian-vector products use
    opt.step(closure)                        # closure: zero_grad, loss, backward, return loss

The step reads the graph-carrying ``p.grad`` before it calls the closure, which replaces them;
it calls the closure once at w, for f(w) in (4), and once per trial step size.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._adam import real_view
from ._checks import check_range
from .hutchinson import stored_generator

__all__ = ["NNCG", "NystromApproximation", "PCGResult", "nystrom_approximation", "nystrom_pcg"]

_RNG = "nncg_rng"


class NystromApproximation(NamedTuple):
    """Ĥ = U diag(eigenvalues) Uᵀ: ``U`` (p, r) with orthonormal columns, ``eigenvalues`` (r,),
    non-negative and in descending order."""

    U: Tensor
    eigenvalues: Tensor


class PCGResult(NamedTuple):
    """The solution ``x``, the number of products with the matrix, the final relative (recursive)
    residual ‖r‖/‖b‖, and whether it met the tolerance."""

    x: Tensor
    iterations: int
    residual: float
    converged: bool


def nystrom_approximation(matmat: Callable[[Tensor], Tensor], size: int, rank: int, generator: torch.Generator, *,
                          eps: float, device: torch.device | str | None = None) -> NystromApproximation:
    """The randomized Nyström approximation (1) of a symmetric matrix A seen through ``matmat``.

    Parameters
    ----------
    matmat : ``X (p, k) -> A X (p, k)``, in float64.
    size : p, the order of A.
    rank : r, the number of columns of the sketch (at most p is used).
    generator : CPU generator of the Gaussian test matrix Ω.
    eps : unit roundoff of the arithmetic that ``matmat`` uses (it scales the shift ν).
    device : where Ω and the factors live.

    Returns
    -------
    U (p, r) and Λ̂ (r,) in float64, with U diag(Λ̂) Uᵀ = A when A is PSD of rank ≤ r.
    """
    r = min(rank, size)
    omega = torch.randn(size, r, generator=generator, dtype=torch.float64).to(device)
    Q, _ = torch.linalg.qr(omega)  # orthonormal test matrix
    Y = matmat(Q)
    if not bool(torch.isfinite(Y).all()):
        raise ValueError("the Hessian-vector products of the sketch are not finite")
    nu = size ** 0.5 * eps * float(torch.linalg.matrix_norm(Y, ord=2))  # ν = √p eps(‖Y‖₂)
    if nu == 0.0:  # A Q = 0: nothing of A is seen
        return NystromApproximation(Q, torch.zeros(r, dtype=torch.float64, device=Q.device))
    core = Q.T @ Y
    core = (core + core.T) / 2  # Qᵀ A Q, symmetric up to rounding
    shift = torch.eye(r, dtype=torch.float64, device=Q.device)
    C, info = torch.linalg.cholesky_ex(core + nu * shift)
    if info:  # an indefinite A: raise ν until the core is positive definite (its least eigenvalue ≥ ν)
        nu = 2 * nu + 2 * abs(float(torch.linalg.eigvalsh(core + nu * shift)[0]))
        C = torch.linalg.cholesky(core + nu * shift)
    B = torch.linalg.solve_triangular(C, (Y + nu * Q).T, upper=False).T  # B = Y_ν C⁻ᵀ
    U, sigma, _ = torch.linalg.svd(B, full_matrices=False)
    return NystromApproximation(U, (sigma.square() - nu).clamp_min(0.0))  # Λ̂ = max(0, Σ² − ν)


def _flatten(tensors: list[Tensor | None], params: list[Tensor]) -> Tensor:
    """One float64 vector of ``tensors`` (zeros for None), complex ones as pairs of reals."""
    return torch.cat([real_view(t if t is not None else torch.zeros_like(p)).reshape(-1).double()
                      for t, p in zip(tensors, params)])


def _unflatten(v: Tensor, params: list[Tensor]) -> list[Tensor]:
    """The inverse of :func:`_flatten`: pieces of ``v`` shaped and typed like ``params``."""
    views = [real_view(p) for p in params]
    pieces = [chunk.view(w.shape).to(w.dtype) for chunk, w in zip(v.split([w.numel() for w in views]), views)]
    return [torch.view_as_complex(x) if p.is_complex() else x for x, p in zip(pieces, params)]


def _nystrom_inverse(v: Tensor, approx: NystromApproximation, mu: float) -> Tensor:
    """P⁻¹ v of (2)."""
    U, lam = approx
    z = U.T @ v
    return (lam[-1] + mu) * (U @ (z / (lam + mu))) + (v - U @ z)  # (2)


def nystrom_pcg(matvec: Callable[[Tensor], Tensor], b: Tensor, mu: float, approx: NystromApproximation | None = None,
                *, rtol: float = 1e-10, maxiter: int = 1000) -> PCGResult:
    """Solve (A + μI) x = b by conjugate gradients, preconditioned by (2) when ``approx`` is given.

    Parameters
    ----------
    matvec : ``v (p,) -> A v (p,)`` for a symmetric A.
    b : right-hand side, shape (p,).
    mu : the damping μ ≥ 0.
    approx : the Nyström approximation of A (None: plain CG).
    rtol : stop when ‖b − (A + μI)x‖ ≤ rtol·‖b‖ (the recursively updated residual).
    maxiter : at most this many products with A.

    Starting from x = 0, the iteration stops at a direction p of non-positive curvature,
    pᵀ(A + μI)p ≤ 0, and returns the iterate so far (P⁻¹b if it is the first), which is a
    descent direction for a loss with gradient b.
    """
    precondition = (lambda v: v) if approx is None else (lambda v: _nystrom_inverse(v, approx, mu))
    x = torch.zeros_like(b)
    r = b.clone()
    b_norm = float(torch.linalg.vector_norm(b))
    if b_norm == 0.0:
        return PCGResult(x, 0, 0.0, True)
    z = precondition(r)
    p = z.clone()
    rz = torch.dot(r, z)
    k = 0
    while k < maxiter:
        residual = float(torch.linalg.vector_norm(r)) / b_norm
        if residual <= rtol:
            return PCGResult(x, k, residual, True)
        v = matvec(p) + mu * p
        k += 1
        curvature = torch.dot(p, v)
        if not curvature > 0:  # truncated Newton–CG: a negative-curvature direction ends the solve
            return PCGResult(z if k == 1 else x, k, residual, False)
        alpha = rz / curvature
        x.add_(p, alpha=float(alpha))
        r.sub_(v, alpha=float(alpha))
        z = precondition(r)
        rz_next = torch.dot(r, z)
        p = z + (rz_next / rz) * p
        rz = rz_next
    residual = float(torch.linalg.vector_norm(r)) / b_norm
    return PCGResult(x, k, residual, residual <= rtol)


class NNCG(Optimizer):
    """Nyström-preconditioned Newton–CG with an Armijo line search (see the module docstring).

    Parameters
    ----------
    params : parameters in one group (the step is taken in all of them jointly); a complex one
        (an FNO's spectral weights) counts as the pairs of reals of its real view.
    lr : η₀, the first step size the line search (4) tries (default 1, a Newton step).
    rank : r, the rank of the Nyström approximation (1) (default 60, the paper's).
    mu : the damping μ > 0 of (2)–(3) (default 1e-2; the paper sweeps 1e-5 … 1e-1).
    precond_update_freq : F, steps between refreshes of (1) (default 20, the paper's).
    cg_tol : relative tolerance of the CG solve (3) (default 1e-10).
    cg_max_iters : most Hessian-vector products per CG solve (default 1000, the paper's).
    armijo_alpha : α of (4) (default 0.1), in (0, 1).
    armijo_beta : β of (4), the backtracking factor (default 0.5), in (0, 1).
    max_line_search : most step sizes tried by (4) (default 20: down to lr·β¹⁹ ≈ 2e-6·lr).
    seed : seed of the generator of the test matrices Ω (kept in the optimizer state).

    State (``optimizer.state``): ``"nncg_steps"``, the Nyström factors ``"nncg_U"`` (p, r) and
    ``"nncg_eigenvalues"`` (r,), the generator state, and of the last step ``"nncg_cg_iterations"``
    and ``"nncg_step_size"`` (0 for a rejected step); ``"nncg_rejected_steps"`` counts the steps
    whose line search found no decrease, ``"nncg_cg_truncated"`` the CG solves that stopped short of
    ``cg_tol`` (negative curvature or ``cg_max_iters``).
    """

    step_requires = frozenset({"closure", "create_graph", "loss"})

    def __init__(self, params, lr: float = 1.0, *, rank: int = 60, mu: float = 1e-2, precond_update_freq: int = 20,
                 cg_tol: float = 1e-10, cg_max_iters: int = 1000, armijo_alpha: float = 0.1, armijo_beta: float = 0.5,
                 max_line_search: int = 20, seed: int = 0):
        for name, value in (("rank", rank), ("precond_update_freq", precond_update_freq),
                            ("cg_max_iters", cg_max_iters), ("max_line_search", max_line_search)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        self.seed = seed
        super().__init__(params, dict(lr=lr, rank=rank, mu=mu, precond_update_freq=precond_update_freq,
                                      cg_tol=cg_tol, cg_max_iters=cg_max_iters, armijo_alpha=armijo_alpha,
                                      armijo_beta=armijo_beta, max_line_search=max_line_search))

    def add_param_group(self, param_group: dict) -> None:
        if self.param_groups:
            raise ValueError("NNCG takes one parameter group: its Newton step couples all parameters")
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_range("lr", group["lr"], 0.0, low_open=True)
        check_range("mu", group["mu"], 0.0, low_open=True)
        check_range("cg_tol", group["cg_tol"], 0.0, 1.0)
        check_range("armijo_alpha", group["armijo_alpha"], 0.0, 1.0, low_open=True)
        check_range("armijo_beta", group["armijo_beta"], 0.0, 1.0, low_open=True)

    def _hvp(self, params: list[Tensor], grads: list[Tensor | None], v: Tensor) -> Tensor:
        """H v in float64, by differentiating ⟨g, v⟩ through the gradient's graph (for a complex
        parameter, torch's gradient of the real inner product of the real views is H v on them)."""
        live = [i for i, g in enumerate(grads) if g is not None and g.grad_fn is not None]
        pieces = _unflatten(v, params)
        hv = torch.autograd.grad([grads[i] for i in live], params, grad_outputs=[pieces[i] for i in live],
                                 retain_graph=True, allow_unused=True)
        return _flatten(list(hv), params)

    def _line_search(self, params: list[Tensor], d: Tensor, slope: float, f0: float,
                     closure: Callable[[], Tensor], group: dict) -> float:
        """(4)–(5): the accepted step size, or 0.0 with the parameters restored."""
        origin = [p.detach().clone() for p in params]
        steps = _unflatten(d, params)
        eta = group["lr"]
        for _ in range(group["max_line_search"]):
            for p, w, s in zip(params, origin, steps):
                p.copy_(w).add_(s, alpha=-eta)  # (5) on trial
            with torch.enable_grad():
                f = float(closure().detach())
            if f <= f0 - group["armijo_alpha"] * eta * slope:  # (4); False for a NaN loss
                return eta
            eta *= group["armijo_beta"]
        for p, w in zip(params, origin):
            p.copy_(w)
        return 0.0

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None, loss: Tensor | None = None) -> Tensor:
        """One NNCG step; returns the loss before it. Needs ``p.grad`` with its graph and a closure;
        ``loss``, the loss at the current weights, saves the closure call that would compute it."""
        if closure is None:
            raise RuntimeError("NNCG needs step(closure): its line search re-evaluates the loss")
        group = self.param_groups[0]
        params = [p for p in group["params"] if p.requires_grad]
        grads = [p.grad for p in params]  # read before the closure replaces them
        if not any(g is not None and g.grad_fn is not None for g in grads):
            raise RuntimeError("NNCG takes Hessian-vector products through the gradient's graph: call "
                               "loss.backward(create_graph=True) before step(closure)")
        g = _flatten([gr.detach() if gr is not None else None for gr in grads], params)
        if loss is None:
            with torch.enable_grad():
                loss = closure()
        f0 = float(loss.detach())
        if not (math.isfinite(f0) and bool(torch.isfinite(g).all())):
            self._record(rejected=True, iterations=0)
            return loss
        steps = self.state.get("nncg_steps", 0)
        self.state["nncg_steps"] = steps + 1

        def hvp(v: Tensor) -> Tensor:
            return self._hvp(params, grads, v)

        if steps % group["precond_update_freq"] == 0 or "nncg_U" not in self.state:
            self._refresh(hvp, g, group, real_view(params[0]).dtype)
        approx = NystromApproximation(self.state["nncg_U"], self.state["nncg_eigenvalues"])
        solve = nystrom_pcg(hvp, g, group["mu"], approx, rtol=group["cg_tol"], maxiter=group["cg_max_iters"])  # (3)
        d = solve.x
        slope = float(torch.dot(g, d))
        if not slope > 0:  # rounding can spoil the descent property of the CG iterates; P⁻¹g keeps it
            d = _nystrom_inverse(g, approx, group["mu"])
            slope = float(torch.dot(g, d))
        grads.clear()  # the line search needs no Hessian: let the graph go
        eta = self._line_search(params, d, slope, f0, closure, group)
        self._record(rejected=eta == 0.0, iterations=solve.iterations, step_size=eta, truncated=not solve.converged)
        return loss

    def _refresh(self, hvp: Callable[[Tensor], Tensor], g: Tensor, group: dict, dtype: torch.dtype) -> None:
        """(1), kept in the state. Where the sketch fails (non-finite Hessian-vector products, a
        core that stays indefinite), the previous approximation is kept, or, on the first step,
        none is used (Λ̂ = 0 makes P the identity), as the authors' code keeps its old one."""
        try:
            with stored_generator(self, _RNG, self.seed) as generator:
                approx = nystrom_approximation(lambda X: torch.stack([hvp(x) for x in X.T], dim=1), g.numel(),
                                               group["rank"], generator, eps=torch.finfo(dtype).eps,
                                               device=g.device)  # (1)
        except (ValueError, torch.linalg.LinAlgError):
            if "nncg_U" in self.state:
                return
            Q = torch.linalg.qr(torch.ones(g.numel(), 1, dtype=torch.float64, device=g.device))[0]
            approx = NystromApproximation(Q, torch.zeros(1, dtype=torch.float64, device=g.device))
        self.state["nncg_U"], self.state["nncg_eigenvalues"] = approx

    def _record(self, *, rejected: bool, iterations: int, step_size: float = 0.0, truncated: bool = False) -> None:
        self.state["nncg_rejected_steps"] = self.state.get("nncg_rejected_steps", 0) + int(rejected)
        self.state["nncg_cg_truncated"] = self.state.get("nncg_cg_truncated", 0) + int(truncated)
        self.state["nncg_cg_iterations"] = iterations
        self.state["nncg_step_size"] = step_size
