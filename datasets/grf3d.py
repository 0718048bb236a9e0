"""Gaussian random fields on the unit cube: :func:`sciml.datasets.grf` in three dimensions.

Covariance ``σ² (−Δ + τ² I)^(−α)`` with homogeneous Neumann boundary conditions on [0, 1]³
(the FNO paper's prior, Li et al., ICLR 2021, lifted to 3-D), sampled by its Karhunen–Loève
expansion in the Neumann cosines,

    u = Σ_k sqrt(λ_k) ξ_k c_{k₁} c_{k₂} c_{k₃} cos(π k₁ x) cos(π k₂ y) cos(π k₃ z),
    λ_k = σ² (π² |k|² + τ²)^(−α),                                                      (1)

truncated at the grid's Nyquist mode, the constant mode dropped (zero mean). The field is
defined in the continuum for α > 3/2. As in 2-D, the normals are drawn shell by shell
(``max(k₁, k₂, k₃) = s``), so one seed gives the same low modes on every grid and a finer
grid refines the same field.
"""
import math

import torch

from .grf import _check_positive, _cosine_basis

__all__ = ["grf3d"]


def grf3d(n_samples, resolution, *, alpha=2.0, tau=3.0, sigma=None, generator=None,
          device=None):
    """Draw mean-zero Gaussian random fields (1) on the nodes of the unit cube.

    Parameters
    ----------
    n_samples : int
        Number of fields (≥ 1).
    resolution : int
        Nodes per side, boundary included (≥ 2).
    alpha, tau : float
        Smoothness α > 0 and inverse length scale τ > 0.
    sigma : float, optional
        Amplitude; default ``τ^(α − 1)`` as in :func:`sciml.datasets.grf`.
    generator : torch.Generator, optional
        Generator of the normals, on the CPU or on ``device``.
    device : torch.device or str, optional

    Returns
    -------
    Tensor, shape (n_samples, R, R, R), float64
        ``u[s, i, j, l]`` at ``(x_i, y_j, z_l)``.
    """
    for name, value, low in (("n_samples", n_samples, 1), ("resolution", resolution, 2)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    alpha = _check_positive("alpha", alpha)
    tau = _check_positive("tau", tau)
    sigma = tau ** (alpha - 1.0) if sigma is None else _check_positive("sigma", sigma)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got "
                        f"{type(generator).__name__}")
    device = torch.device("cpu") if device is None else torch.device(device)
    noise = torch.device("cpu") if generator is None else generator.device
    if noise.type != "cpu" and noise.type != device.type:
        raise ValueError(f"generator must live on the CPU or on device={str(device)!r}, got "
                         f"a generator on {noise}")
    R = resolution
    k = torch.arange(R, dtype=torch.float64)
    k2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    sqrt_lam = sigma * (math.pi ** 2 * k2 + tau ** 2) ** (-alpha / 2.0)    # √λ_k of (1)
    sqrt_lam[0, 0, 0] = 0.0
    shell = torch.maximum(torch.maximum(k[:, None, None], k[None, :, None]), k[None, None, :])
    flat = torch.arange(R ** 3, dtype=torch.float64).view(R, R, R)
    order = torch.argsort((shell * R ** 3 + flat).flatten())
    # Shell s holds (s + 1)³ − s³ modes; one randn call per shell keeps low modes fixed.
    normals = torch.cat([torch.randn((s + 1) ** 3 - s ** 3, n_samples, generator=generator,
                                     device=noise, dtype=torch.float64) for s in range(R)])
    xi = torch.empty(n_samples, R ** 3, dtype=torch.float64, device=noise)
    xi[:, order.to(noise)] = normals.T
    coefficients = sqrt_lam.to(device) * xi.to(device).view(n_samples, R, R, R)
    basis = _cosine_basis(R, device)
    # The sum (1) as three products with the cosine matrix, one axis at a time.
    return torch.einsum("ia,jb,lc,nabc->nijl", basis, basis, basis, coefficients)
