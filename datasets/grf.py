"""Gaussian random fields on the unit square with the Matérn-like covariance of the FNO paper.

The field has covariance ``sigma² (−Δ + τ² I)^(−α)`` with homogeneous Neumann boundary
conditions on [0, 1]², the coefficient prior of the Darcy benchmark in

    Z. Li, N. Kovachki, K. Azizzadenesheli, B. Liu, K. Bhattacharya, A. Stuart,
    A. Anandkumar, "Fourier Neural Operator for Parametric Partial Differential Equations",
    ICLR 2021 (α = 2, τ = 3, σ² = τ^(2α−2) = 9 in its data-generation code).

It is sampled by the Karhunen–Loève expansion in the eigenbasis of the Neumann Laplacian,

    φ_k(x, y) = c_{k₁} c_{k₂} cos(π k₁ x) cos(π k₂ y),   c_0 = 1, c_j = √2 (j ≥ 1),
    −Δ φ_k = π² |k|² φ_k,                                 (L²-orthonormal on [0, 1]²)

    u = Σ_k sqrt(λ_k) ξ_k φ_k,   λ_k = σ² (π² |k|² + τ²)^(−α),   ξ_k ~ N(0, 1) i.i.d.

truncated at the grid's Nyquist mode k_j ≤ resolution − 1. The normals ξ_k are assigned
to the modes in order of the shell max(k₁, k₂), so one seed gives the same modes k_j < r at
every resolution ≥ r: fields drawn on a finer grid refine, rather than replace, coarser ones
(what ``solve_resolution`` in the generator relies on). The k = 0 (constant) mode is
dropped, as in the FNO code, so every field has zero mean: the thresholded coefficient then
splits the domain into comparable high and low regions instead of being dominated by one
random offset.
"""
import math

import torch

__all__ = ["grf"]


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _cosine_basis(resolution, device=None):
    """Matrix of the L²-normalized Neumann cosines on the nodes ``x_i = i / (resolution − 1)``.

    Parameters
    ----------
    resolution : int
        Number of nodes per side, boundary nodes included (≥ 2).
    device : torch.device or str, optional
        Where to put the matrix (default: CPU).

    Returns
    -------
    Tensor, shape (resolution, resolution), float64
        ``C[i, k] = c_k cos(π k x_i)`` for the modes ``k = 0 … resolution − 1`` (Nyquist).
    """
    x = torch.arange(resolution, dtype=torch.float64) / (resolution - 1)
    k = torch.arange(resolution, dtype=torch.float64)
    scale = torch.full((resolution,), math.sqrt(2.0), dtype=torch.float64)
    scale[0] = 1.0
    return (scale * torch.cos(math.pi * x[:, None] * k[None, :])).to(device)


def grf(n_samples, resolution, *, alpha=2.0, tau=3.0, sigma=None, generator=None, device=None,
        dtype=torch.float64):
    """Draw mean-zero Gaussian random fields with covariance ``σ² (−Δ + τ² I)^(−α)`` (Neumann).

    The standard normals are drawn from ``generator`` on the generator's device (the CPU
    without one) and the field is computed on ``device``. A CPU generator gives the same
    fields on CPU and CUDA (to floating-point rounding); a CUDA generator keeps the sampling
    on the GPU, and its stream differs from the CPU generator's for the same seed.

    Parameters
    ----------
    n_samples : int
        Number of fields (≥ 1).
    resolution : int
        Nodes per side on ``x_i = i / (resolution − 1)``, boundary included (≥ 2).
    alpha : float
        Smoothness exponent α > 0.
    tau : float
        Inverse length scale τ > 0.
    sigma : float, optional
        Amplitude σ > 0; default ``τ^(α − 1)`` (σ² = τ^(2α−2), the FNO recipe).
    generator : torch.Generator, optional
        Generator of the normals, on the CPU or on ``device``; ``None`` uses torch's global
        CPU generator.
    device : torch.device or str, optional
        Device of the result (default: CPU).
    dtype : torch.dtype
        ``torch.float64`` (default) or ``torch.float32``; the field is computed in float64.

    Returns
    -------
    Tensor, shape (n_samples, resolution, resolution)
        ``u[s, i, j]`` is sample ``s`` at ``(x_i, y_j)``: the first grid axis is x.
    """
    for name, value, low in (("n_samples", n_samples, 1), ("resolution", resolution, 2)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    alpha = _check_positive("alpha", alpha)
    tau = _check_positive("tau", tau)
    sigma = tau ** (alpha - 1.0) if sigma is None else _check_positive("sigma", sigma)
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got "
                            f"{type(generator).__name__}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    device = torch.device("cpu") if device is None else torch.device(device)
    noise = torch.device("cpu") if generator is None else generator.device
    if noise.type != "cpu" and noise.type != device.type:
        raise ValueError(f"generator must live on the CPU or on device={str(device)!r}, got "
                         f"a generator on {noise}")

    k = torch.arange(resolution, dtype=torch.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    # KL weights sqrt(λ_k), λ_k = σ² (π²|k|² + τ²)^(−α); k = 0 dropped for a mean-zero field.
    sqrt_lam = sigma * (math.pi ** 2 * k2 + tau ** 2) ** (-alpha / 2.0)
    sqrt_lam[0, 0] = 0.0
    # Normals are drawn shell by shell (the 2s + 1 modes with max(k₁, k₂) = s), one call
    # per shell: the generator then yields the same low modes at every resolution, so a
    # finer grid refines the same field. (One call for all modes would not: torch's
    # vectorized randn changes the tail of the stream with the tensor size.)
    shell = torch.maximum(k[:, None], k[None, :])
    order = torch.argsort(((shell * resolution + k[:, None]) * resolution + k[None, :]).flatten())
    normals = torch.cat([torch.randn(2 * s + 1, n_samples, generator=generator, device=noise,
                                     dtype=torch.float64) for s in range(resolution)])
    xi = torch.empty(n_samples, resolution * resolution, dtype=torch.float64, device=noise)
    xi[:, order.to(noise)] = normals.T
    xi = xi.view(n_samples, resolution, resolution)
    basis = _cosine_basis(resolution, device)
    # u = C (√λ ⊙ Ξ) Cᵀ: the KL sum over (k₁, k₂) as two dense matmuls.
    u = basis @ (sqrt_lam.to(device) * xi.to(device)) @ basis.T
    return u.to(dtype)
