"""ROOT: Robust Orthogonalized Optimizer — shape-fitted Newton–Schulz and outlier clipping.

He, Han, Zhou, Chen, Liu, Chen, Wang, "ROOT: Robust Orthogonalized Optimizer for Neural Network
Training" (2025), arXiv:2511.20626, Sec. 3 (dimension-robust orthogonalization, proximal outlier
suppression). The update:

    M_t = μ M_{t−1} + (1 − μ) g_t                                  (1)
    ε_t = quantile_q(|M̃_t|)                 (q = 0.9)              (2)
    O_t = T_ε(M̃_t) = sign(M̃_t) max(|M̃_t| − ε_t, 0)   outliers      (3)
    B_t = M̃_t − O_t = clip(M̃_t, −ε_t, ε_t)            robust part   (4)
    X_K = NS_K^{(a,b,c)(m,n)}(B_t)   coefficients fitted to m × n    (5)
    θ_t = (1 − ηλ) θ_{t−1} − η s(m, n) X_K                           (6)

(3)–(4) is the proximal step: soft-thresholding is the proximal map of ε‖·‖₁, so the outlier
part O_t is the sparse residual and is dropped; what is orthogonalized is M̃_t clipped at its
q-quantile (of |·| over the whole parameter; complex entries are clipped in modulus).

Dimension-robust coefficients. Newton–Schulz acts on the singular values of ``M/‖M‖_F``, whose
spread depends on the shape: a square matrix has singular values near 0, a very wide one has
them bunched together. One fixed quintic therefore orthogonalizes some shapes badly. The paper
lists coefficients for four LLM shapes (:data:`PUBLISHED_COEFFICIENTS`); for every other shape,
:func:`fit_coefficients` fits them: it takes the singular values that a Gaussian ``m × n`` matrix
has after Frobenius normalization (the quantiles of the Marchenko–Pastur law of ratio
``min/max``, scaled by ``1/√min``), and minimises over (a, b, c), by L-BFGS in float64 from Muon's
coefficients (kept if the fit does not improve on them),

    mean_i (p^K(σ_i) − 1)²  +  10 · mean_{x ∈ [10⁻³, 1]} max(|p^K(x) − 1| − 0.3, 0)²,

the first term being orthogonalization error on that spectrum and the second penalizing any
singular value from 10⁻³ up that leaves [0.7, 1.3] (real momenta are not Gaussian: their
spectra spread wider); the fitted maps keep [10⁻³, 1] inside about [0.47, 1.34].
Fits are cached per size class: min(m, n) and max/min rounded to quarter octaves. For
2048 × 2048 the fit gives (3.53, −4.82, 2.06), next to the paper's (3.4916, −4.8224, 2.1095).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from ._checks import check_range
from .newton_schulz import MUON_COEFFICIENTS, newton_schulz_many
from .orthogonalized import OrthogonalizedOptimizer

__all__ = ["ROOT", "PUBLISHED_COEFFICIENTS", "fit_coefficients", "root_coefficients"]

#: ROOT's published 5-step coefficients, by (min(m, n), max(m, n))
PUBLISHED_COEFFICIENTS: dict[tuple[int, int], tuple[float, float, float]] = {
    (2048, 2048): (3.4916, -4.8224, 2.1095),
    (2048, 3072): (3.4509, -4.5790, 1.9325),
    (2048, 8192): (2.9794, -3.6674, 1.6207),
    (2048, 16384): (3.1943, -3.8221, 1.5322),
}


def _normalized_singular_values(k: float, n: float, points: int = 256) -> np.ndarray:
    """Quantiles of σ/‖G‖_F for a Gaussian k × n matrix (k ≤ n): Marchenko–Pastur of ratio k/n."""
    lam = k / n
    lo, hi = (1 - math.sqrt(lam)) ** 2, (1 + math.sqrt(lam)) ** 2
    # x = lo + (hi − lo) sin²t removes the square-root singularities of the density at both edges
    t = np.linspace(0.0, math.pi / 2, 20001)
    x = lo + (hi - lo) * np.sin(t) ** 2
    density = np.sqrt(np.clip((hi - x) * (x - lo), 0, None)) / (2 * math.pi * lam * np.maximum(x, 1e-300))
    w = density * (hi - lo) * np.sin(2 * t)
    cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2 * np.diff(t))])
    count = max(2, min(int(round(k)), points))
    x_q = np.interp((np.arange(count) + 0.5) / count, cdf / cdf[-1], x)
    return np.sqrt(x_q / k)  # eigenvalues of GGᵀ/n have mean 1, and ‖G‖²_F ≈ k n


def _bounded_map(x: Tensor, steps: int, abc: Tensor) -> Tensor:
    """p^K(x) with the iterate clamped to [−2, 2]: a degree-5^K polynomial otherwise overflows
    for coefficients far from the start, and the line search must see finite losses."""
    for _ in range(steps):
        x2 = x * x
        x = (x * (abc[0] + x2 * (abc[1] + abc[2] * x2))).clamp(-2.0, 2.0)
    return x


@lru_cache(maxsize=None)
def _fit_class(log_k4: int, log_r4: int, steps: int) -> tuple[float, float, float]:
    k = 2.0 ** (log_k4 / 4)
    sigma = torch.tensor(_normalized_singular_values(k, k * 2.0 ** (log_r4 / 4)), dtype=torch.float64)
    grid = torch.logspace(-3, 0, 400, dtype=torch.float64)
    start = torch.tensor(MUON_COEFFICIENTS, dtype=torch.float64)
    abc = start.clone().requires_grad_()
    opt = torch.optim.LBFGS([abc], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def objective(c: Tensor) -> Tensor:
        error = (_bounded_map(sigma, steps, c) - 1).square().mean()
        return error + 10 * torch.relu((_bounded_map(grid, steps, c) - 1).abs() - 0.3).square().mean()

    def closure():
        opt.zero_grad()
        loss = objective(abc)
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    fitted = abc.detach()
    if not (torch.isfinite(fitted).all() and objective(fitted) < objective(start)):
        fitted = start
    return tuple(round(v, 4) for v in fitted.tolist())


def fit_coefficients(m: int, n: int, steps: int = 5) -> tuple[float, float, float]:
    """Quintic Newton–Schulz coefficients fitted to the size class of an ``m × n`` matrix (cached).

    See the module docstring for the objective. Deterministic: no random numbers are drawn.
    """
    k, big = min(m, n), max(m, n)
    if k < 1:
        raise ValueError(f"m and n must be positive, got {m} × {n}")
    return _fit_class(round(4 * math.log2(k)), round(4 * math.log2(big / k)), steps)


def root_coefficients(m: int, n: int, steps: int = 5) -> tuple[float, float, float]:
    """The published coefficients for a listed shape at 5 steps, else :func:`fit_coefficients`."""
    key = (min(m, n), max(m, n))
    if steps == 5 and key in PUBLISHED_COEFFICIENTS:
        return PUBLISHED_COEFFICIENTS[key]
    return fit_coefficients(m, n, steps)


def _abs_quantile(x: Tensor, q: float) -> Tensor:
    """q-quantile of |x| over all entries, interpolated linearly as torch.quantile (no size limit)."""
    flat = x.abs().flatten()
    pos = q * (flat.numel() - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    v_lo = flat.kthvalue(lo + 1).values
    return v_lo if hi == lo else torch.lerp(v_lo, flat.kthvalue(hi + 1).values, pos - lo)


class ROOT(OrthogonalizedOptimizer):
    """ROOT (see the module docstring).

    Parameters
    ----------
    params : parameters or groups; 2-D and higher, except in groups with ``adamw=True``.
    lr : learning rate η (default 1e-3 with the RMS-matching scale, as the authors' code).
    weight_decay : decoupled weight decay λ.
    momentum : μ (default 0.95).
    quantile : q of the clipping threshold (2) (default 0.9); 1.0 disables the clipping.
    ns_coefficients : None (default) for shape-dependent coefficients (:func:`root_coefficients`),
        or one fixed triple.
    nesterov, ns_steps, eps, ns_dtype, complex_mode, adamw_betas, adamw_eps : as for
        :class:`~sciml.optim.Muon`.
    adjust_lr_fn : ``"match_rms_adamw"`` (default, as the authors' code) or ``"original"``.
    """

    _shape_coefficients = True

    def __init__(self, params, lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.95,
                 quantile: float = 0.9, nesterov: bool = True, ns_steps: int = 5, ns_coefficients=None,
                 eps: float = 1e-7, ns_dtype: torch.dtype | None = None, adjust_lr_fn: str = "match_rms_adamw",
                 complex_mode: str = "per_mode", adamw_betas=(0.9, 0.999), adamw_eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum, quantile=quantile,
                                      nesterov=nesterov, ns_steps=ns_steps,
                                      ns_coefficients=None if ns_coefficients is None else tuple(ns_coefficients),
                                      eps=eps, ns_dtype=ns_dtype, adjust_lr_fn=adjust_lr_fn,
                                      complex_mode=complex_mode, adamw_betas=tuple(adamw_betas),
                                      adamw_eps=adamw_eps))

    def _check_method(self, group: dict) -> None:
        check_range("quantile", group["quantile"], 0.0, 1.0, low_open=True, high_open=False)

    def _directions(self, group: dict, params: list[Tensor], mats: list[Tensor]) -> list[Tensor]:
        robust = []
        for M in mats:
            eps_t = _abs_quantile(M, group["quantile"])  # (2)
            # (3)-(4): M − T_ε(M) = M·min(1, ε/|M|), which is clip(M, −ε, ε) for real M
            robust.append(M * (eps_t / M.abs().clamp_min(torch.finfo(eps_t.dtype).tiny)).clamp_max(1))
        steps, fixed = group["ns_steps"], group["ns_coefficients"]
        coefficients = fixed if fixed is not None else (lambda m, n: root_coefficients(m, n, steps))
        return newton_schulz_many(robust, steps, coefficients, group["eps"], group["ns_dtype"])  # (5)
