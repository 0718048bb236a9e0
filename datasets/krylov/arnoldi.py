"""Pieces shared by the GMRES family: one Arnoldi step, the least-squares problem by Givens
rotations, and harmonic Ritz vectors.

Orthogonalization is classical Gram–Schmidt applied twice (CGS2): each pass is two
matrix–vector products with the basis, so a step costs four kernel launches whatever its
index (modified Gram–Schmidt needs 2j sequential dot products, launch-bound on a GPU), and a
second pass makes it as orthogonal as MGS with reorthogonalization ("twice is enough":
Giraud, Langou, Rozložník, Comput. Math. Appl. 50, 2005).

The small least-squares problem ``min ‖g − H̄ y‖`` (Saad & Schultz, SIAM J. Sci. Stat. Comput.
7, 1986, Sec. 3) is reduced to triangular form one column at a time by Givens rotations,
accumulated in an explicit orthogonal matrix ``Qᵀ`` so that a column costs one small product
and one rotation, batched over systems, and ``|g_{j+1}|`` is the residual norm at no cost.
A head block that is not Hessenberg (GMRES-DR's full ``(k+1) × k`` block after a restart) is
triangularized once by a dense QR whose ``Qᵀ`` starts the accumulation.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg
import torch

__all__ = ["cgs2", "GivensLeastSquares", "arnoldi_cycle", "harmonic_ritz"]


def cgs2(basis: torch.Tensor, w: torch.Tensor):
    """Orthogonalize ``w`` against the orthonormal rows of ``basis`` by CGS2.

    Parameters
    ----------
    basis : Tensor, shape (..., j, n)
        Orthonormal rows (one basis per system in the leading dimensions).
    w : Tensor, shape (..., n)

    Returns
    -------
    h : Tensor, shape (..., j)
        Coefficients ``basisᵀ w`` of both passes summed (a column of the Hessenberg matrix).
    w : Tensor, shape (..., n)
        ``w − basisᵀ h``, orthogonal to the basis.
    """
    h = (basis @ w.unsqueeze(-1)).squeeze(-1)
    w = w - (h.unsqueeze(-2) @ basis).squeeze(-2)
    correction = (basis @ w.unsqueeze(-1)).squeeze(-1)
    w = w - (correction.unsqueeze(-2) @ basis).squeeze(-2)
    return h + correction, w


class GivensLeastSquares:
    """``min_y ‖g − H̄ y‖₂`` for an upper-Hessenberg ``H̄`` built one column at a time.

    All tensors carry a leading batch dimension ``s`` (one problem per system).

    Parameters
    ----------
    batch : int
        Number of independent problems ``s``.
    size : int
        Maximum number of columns ``m`` (rows ``m + 1``).
    dtype, device
        Of the small matrices (float64 on the host for single systems).
    """

    def __init__(self, batch: int, size: int, dtype, device):
        self.size = size
        self.qt = torch.zeros(batch, size + 1, size + 1, dtype=dtype, device=device)
        self.r = torch.zeros(batch, size + 1, size, dtype=dtype, device=device)
        self.g = torch.zeros(batch, size + 1, dtype=dtype, device=device)
        self.cols = 0
        self._identity_pair = torch.tensor([1.0, 0.0], dtype=dtype, device=device)
        self._sign = torch.tensor([-1.0, 1.0], dtype=dtype, device=device)

    def reset(self, g: torch.Tensor, head: torch.Tensor | None = None) -> torch.Tensor:
        """Start a new problem with right-hand side ``g`` (s, m+1).

        ``head`` (s, q+1, q), if given, is the first ``q`` columns of ``H̄`` (entries in rows
        ``0..q`` only), triangularized here by a complete QR. Returns ``|g_q|``, the residual
        norm of the least-squares problem on the head alone.
        """
        self.qt.zero_()
        self.qt.diagonal(dim1=-2, dim2=-1).fill_(1.0)
        self.r.zero_()
        q = 0 if head is None else head.shape[-1]
        if q:
            qh, rh = torch.linalg.qr(head, mode="complete")
            self.qt[:, :q + 1, :q + 1] = qh.transpose(-2, -1)
            self.r[:, :q + 1, :q] = rh
        self.g = (self.qt @ g.unsqueeze(-1)).squeeze(-1)
        self.cols = q
        return self.g[:, q].abs()

    def add_column(self, h: torch.Tensor) -> torch.Tensor:
        """Append column ``j = self.cols`` of ``H̄`` (entries ``0..j+1``, shape (s, j+2)).

        Returns the residual norm ``|g_{j+1}|`` of the problem on columns ``0..j``, shape (s,).
        """
        j = self.cols
        if j >= self.size:
            raise ValueError(f"the least-squares problem holds at most {self.size} columns")
        col = (self.qt[:, :j + 2, :j + 2] @ h.unsqueeze(-1)).squeeze(-1)
        pair = col[:, j:j + 2]
        rho = torch.linalg.vector_norm(pair, dim=1, keepdim=True)
        # (c, s) = (a, b) / ρ; a zero column (only after a breakdown) keeps the identity.
        cs = torch.where(rho > 0, pair / torch.where(rho > 0, rho, 1), self._identity_pair)
        self.r[:, :j, j] = col[:, :j]
        self.r[:, j, j] = rho.squeeze(1)
        # The rotation [[c, s], [−s, c]] on rows j, j+1 zeroes H̄'s sub-diagonal entry.
        rotation = torch.stack([cs, cs.flip(1) * self._sign], dim=1)
        self.qt[:, j:j + 2] = rotation @ self.qt[:, j:j + 2]
        self.g[:, j:j + 2] = (rotation @ self.g[:, j:j + 2].unsqueeze(-1)).squeeze(-1)
        self.cols = j + 1
        return self.g[:, j + 1].abs()

    def solve(self) -> torch.Tensor:
        """The minimizer ``y`` on the columns added so far, shape (s, cols)."""
        j = self.cols
        return torch.linalg.solve_triangular(self.r[:, :j, :j], self.g[:, :j].unsqueeze(-1),
                                             upper=True).squeeze(-1)


def harmonic_ritz(G: np.ndarray, WtV: np.ndarray, k: int) -> np.ndarray:
    """A real basis of the ``k`` harmonic Ritz vectors of smallest harmonic Ritz value.

    Solves ``Gᵀ G z = θ Gᵀ WᵀV̂ z``, the harmonic Ritz problem of GCRO-DR (Parks et al.
    2006); with ``WᵀV̂ = [I; 0]`` it is GMRES-DR's
    ``(H_m + h²_{m+1,m} H_m^{−ᵀ} e_m e_mᵀ) z = θ z`` (Morgan 2002). A complex pair
    enters as its real and imaginary parts, both or neither, so the basis may hold ``k + 1``
    columns.

    Parameters
    ----------
    G : array, shape (J+1, J)
    WtV : array, shape (J+1, J)
    k : int

    Returns
    -------
    array, shape (J, k') with ``k' ∈ {k, k + 1}`` (``k' ≤ J``), float64
    """
    if k == 0:
        return np.zeros((G.shape[1], 0))
    theta, z = scipy.linalg.eig(G.T @ G, G.T @ WtV)
    magnitude = np.where(np.isfinite(theta), np.abs(theta), np.inf)
    order = np.argsort(magnitude, kind="stable")
    columns = []
    taken = set()
    for i in order:
        if len(columns) >= k:
            break
        if i in taken:
            continue
        taken.add(i)
        if abs(theta[i].imag) > 0 and np.abs(z[:, i].imag).max() > 0:
            columns += [z[:, i].real, z[:, i].imag]
            # The conjugate partner spans the same real plane.
            partner = np.argmin(np.abs(theta - np.conj(theta[i])) + (np.arange(len(theta)) == i))
            taken.add(int(partner))
        else:
            columns.append(z[:, i].real)
    return np.stack(columns[:G.shape[1]], axis=1)


def arnoldi_cycle(problem, basis: torch.Tensor, lsq: GivensLeastSquares, hess: torch.Tensor,
                  first: int, last: int, iterations: int):
    """Arnoldi steps ``j = first … last − 1`` on ``A M`` (right preconditioning).

    Row ``j`` of ``basis`` (shape (m+1, n)) is the vector expanded at step ``j``; it is
    orthogonalized against rows ``0..j`` (GCRO-DR keeps ``C_k`` in the leading rows, so its
    coefficients there form ``B_k = C_kᵀ A M V`` of Parks et al. 2006) and stored in
    row ``j + 1``. Column ``j`` of ``H̄`` goes into ``hess`` (host, float64) and ``lsq``.

    Stops when the residual estimate reaches ``problem.tol``, at a breakdown, at ``last`` or
    when ``problem.maxiter`` iterations are done.

    Returns
    -------
    cols : int
        Columns of ``H̄`` filled (the cycle's last step + 1).
    iterations : int
        Updated total.
    estimate : float
        Residual norm of the least-squares problem.
    """
    estimate = float("inf")
    for j in range(first, last):
        w = problem.matvec(problem.apply_m(basis[j]))
        h, w = cgs2(basis[:j + 1], w)
        norm = torch.linalg.vector_norm(w)
        column = torch.cat([h, norm.reshape(1)]).to(device="cpu", dtype=torch.float64)
        hess[:j + 2, j] = column
        estimate = float(lsq.add_column(column.unsqueeze(0))[0])
        iterations += 1
        if problem.callback is not None:
            problem.callback(estimate / problem.b_norm if problem.b_norm > 0 else estimate)
        # A (happy) breakdown: w lies in the span, the solution is in the current space.
        breakdown = float(column[-1]) <= torch.finfo(basis.dtype).eps * float(column.norm())
        if not breakdown:
            basis[j + 1] = w / norm
        if estimate <= problem.tol or breakdown or iterations >= problem.maxiter:
            return j + 1, iterations, estimate
    return last, iterations, estimate
