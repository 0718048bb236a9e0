"""Chebyshev polynomial preconditioning for symmetric positive definite matrices.

``M⁻¹ = p(D⁻¹A) D⁻¹`` where ``1 − λ p(λ)`` is the Chebyshev polynomial of degree ``d`` that
is smallest on the interval ``[a, b]`` holding the spectrum of ``D⁻¹A`` (``D = diag(A)``).
It is applied by ``d`` steps of the Chebyshev iteration from zero (Saad, "Iterative Methods
for Sparse Linear Systems", 2nd ed., Algorithm 12.1; Golub & Van Loan, Sec. 11.2.8), so a
product costs ``d`` sparse matrix–vector products and no inner products: no host
synchronization, well suited to GPUs. ``p(D⁻¹A) D⁻¹`` is symmetric, and positive definite
whenever ``b`` bounds the largest eigenvalue; the bounds come from a few Lanczos steps on
``D^{−½} A D^{−½}`` (Ritz values lie inside the spectrum, so ``b`` is widened by a margin).
"""
from __future__ import annotations

import torch

from sciml.validation import finite_float, positive_int

from ._operator import as_matvec
from .jacobi import check_matrix, matrix_diagonal

__all__ = ["chebyshev", "lanczos_bounds"]


def lanczos_bounds(matvec, n: int, steps: int, dtype, device, seed: int = 0):
    """Extreme Ritz values of a symmetric operator after ``steps`` Lanczos steps.

    Full reorthogonalization (the basis is at most a few dozen vectors). The start vector
    is drawn from a CPU generator seeded with ``seed``, so the bounds are reproducible.

    Returns
    -------
    (float, float)
        Smallest and largest Ritz value.
    """
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(n, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)
    steps = min(steps, n)
    basis = torch.zeros(steps, n, dtype=dtype, device=device)
    basis[0] = v / torch.linalg.vector_norm(v)
    alpha = torch.zeros(steps, dtype=torch.float64)
    beta = torch.zeros(steps, dtype=torch.float64)
    used = steps
    for j in range(steps):
        w = matvec(basis[j])
        alpha[j] = float(torch.dot(w, basis[j]))
        w = w - (basis[:j + 1] @ w) @ basis[:j + 1]
        w = w - (basis[:j + 1] @ w) @ basis[:j + 1]
        norm = float(torch.linalg.vector_norm(w))
        if j + 1 == steps or norm <= 1e-12 * abs(float(alpha[j])):
            used = j + 1
            break
        beta[j] = norm
        basis[j + 1] = w / norm
    T = torch.diag(alpha[:used]) + torch.diag(beta[:used - 1], 1) + torch.diag(beta[:used - 1], -1)
    ritz = torch.linalg.eigvalsh(T)
    return float(ritz[0]), float(ritz[-1])


def chebyshev(A, *, grid_shape=None, degree=8, lanczos_steps=20, margin=1.1, seed=0):
    """Build the Chebyshev polynomial preconditioner of ``A`` (SPD).

    Parameters
    ----------
    A : Tensor (sparse CSR or dense), shape (n, n)
        Symmetric positive definite.
    grid_shape : tuple, optional
        Unused (common builder signature).
    degree : int
        Polynomial degree ``d``: products with ``A`` per application.
    lanczos_steps : int
        Lanczos steps to estimate the spectral interval of ``D⁻¹A``.
    margin : float
        Factor (≥ 1) on the largest Ritz value, so that ``b`` bounds the spectrum.
    seed : int
        Seed of the Lanczos start vector.

    Returns
    -------
    callable
        ``v -> p(D⁻¹A) D⁻¹ v`` for ``v`` of shape (n,) or (s, n), computed in ``A``'s dtype.
        The ``d`` products with ``A`` it makes are not counted in a solver's ``matvecs``.
    """
    A = check_matrix(A)
    degree = positive_int("degree", degree)
    lanczos_steps = positive_int("lanczos_steps", lanczos_steps)
    margin = finite_float("margin", margin)
    if margin < 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    n = A.shape[0]
    matvec = as_matvec(A, n, A.dtype, A.device)
    diagonal = matrix_diagonal(A)
    if not bool((diagonal > 0).all()):
        raise ValueError("A must have a positive diagonal (SPD) for Chebyshev preconditioning")
    inverse = 1.0 / diagonal
    root = inverse.sqrt()
    low, high = lanczos_bounds(lambda v: root * matvec(root * v), n, lanczos_steps, A.dtype,
                               A.device, seed)
    high *= margin
    if not 0 < low < high:                               # a failed estimate of the lower end
        low = high / 100
    theta, delta = (high + low) / 2, (high - low) / 2   # centre and half-width of [a, b]
    sigma = theta / delta

    def apply(v):
        r = v.to(A.dtype)
        step = (r * inverse) / theta
        z = step
        rho = 1.0 / sigma
        for _ in range(degree):                         # Algorithm 12.1 from z₀ = 0
            r = r - matvec(step)
            rho_next = 1.0 / (2.0 * sigma - rho)
            step = (rho_next * rho) * step + (2.0 * rho_next / delta) * (r * inverse)
            rho = rho_next
            z = z + step
        return z.to(v.dtype)

    return apply
