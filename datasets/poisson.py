"""Poisson's equation with a random forcing and random Dirichlet data.

    −Δu = f  on (0, 1)²,   u = g on the boundary,                                      (1)

discretized by the second-order five-point Laplacian on the nodes ``x_i = i h``,
``h = 1/(R − 1)``, for the interior nodes ``1 ≤ i, j ≤ R − 2``:

    (4 u_{i,j} − u_{i−1,j} − u_{i+1,j} − u_{i,j−1} − u_{i,j+1}) / h² = f_{i,j},        (2)

boundary neighbours moved to the right-hand side with their values ``g`` (eq. (2) of
:mod:`.fdm`). The matrix is symmetric positive definite and the same for every sample.

Random parameters: the forcing ``f`` is a Gaussian random field (:func:`sciml.datasets.grf`,
covariance ``τ^(2α−2)(−Δ + τ²)^(−α)``); the boundary data is the trace of a smooth random
cosine sum,

    g(x, y) = Σ_{k₁,k₂<K} c_{k₁k₂} cos(π k₁ x) cos(π k₂ y),
    c_{k₁k₂} ~ N(0, σ_g² / (1 + k₁² + k₂²)²),                                           (3)

continuous around the corners because it is the restriction of one smooth function.

SKR (Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
Recycling", ICLR 2024) solves ``∇²u = f`` on the unit square by finite elements (MATLAB PDE
toolbox) with forcing and the four edges' Dirichlet data from degree-5 Chebyshev sums; its
matrix sizes are 7153, 11237, 20245, 45337 and 71313 (main table: 71313, about 267², i.e.
``resolution`` 269 here), at tolerances 1e-5 … 1e-11.
"""
import torch

from sciml.validation import positive_int

from .fdm import GridFamily, boundary_lift, check_real, check_resolution, embed, \
    five_point_matrices, flux_form_couplings, nodes
from .grf import grf

__all__ = ["Poisson"]


class Poisson(GridFamily):
    """Poisson's equation (1) with random ``f`` and ``g``, discretized by (2).

    Parameters
    ----------
    alpha, tau : float
        Covariance of the forcing GRF.
    boundary_modes : int
        Number K of cosine modes per axis in the boundary data (3).
    boundary_scale : float
        Amplitude σ_g of the boundary data (3), ≥ 0.

    Notes
    -----
    Parameters: ``{"forcing": f (n, R, R), "boundary": c (n, K, K)}``. Inputs: two channels,
    ``f`` and ``g`` on the boundary nodes with zeros inside (the data the solution depends
    on, nothing more); SKR sorts on both, flattened. Outputs: ``u``. One SPD matrix for all.
    """

    name = "poisson"
    in_channels = 2
    out_channels = 1
    spd = True
    matrix_varies = False
    _param_keys = ("forcing", "boundary")
    _small_params = ("boundary",)

    def __init__(self, alpha=2.0, tau=3.0, boundary_modes=4, boundary_scale=1.0):
        self.alpha = check_real("alpha", alpha, positive=True)
        self.tau = check_real("tau", tau, positive=True)
        self.boundary_modes = positive_int("boundary_modes", boundary_modes)
        self.boundary_scale = check_real("boundary_scale", boundary_scale)
        if self.boundary_scale < 0:
            raise ValueError(f"boundary_scale must be >= 0, got {boundary_scale!r}")
        self._options = {"alpha": self.alpha, "tau": self.tau,
                         "boundary_modes": self.boundary_modes,
                         "boundary_scale": self.boundary_scale}
        self._matrices = {}

    def sample_params(self, n, resolution, generator=None, device=None):
        """``{"forcing": f (n, R, R), "boundary": c (n, K, K)}``, float64 on ``device``."""
        check_resolution(resolution)
        f = grf(n, resolution, alpha=self.alpha, tau=self.tau, generator=generator,
                device=device)
        noise = None if generator is None else generator.device  # drawn where the generator is
        k = torch.arange(self.boundary_modes, dtype=torch.float64, device=noise)
        std = self.boundary_scale / (1 + k[:, None] ** 2 + k[None, :] ** 2)
        c = std * torch.randn(n, self.boundary_modes, self.boundary_modes,
                              generator=generator, dtype=torch.float64, device=noise)
        return {"forcing": f, "boundary": c.to(f.device)}

    def boundary_values(self, coefficients, resolution):
        """The smooth function (3) on the nodes, ``(n, R, R)``; its boundary values are g."""
        check_resolution(resolution)
        x = nodes(resolution, coefficients.device)[0][:, 0]
        k = torch.arange(coefficients.shape[-1], dtype=torch.float64, device=x.device)
        basis = torch.cos(torch.pi * x[:, None] * k[None, :])        # (R, K)
        return basis @ coefficients.to(torch.float64) @ basis.T

    def _fields(self, params):
        n, resolution = self._check_params(params)
        if params["boundary"].shape[1:] != (self.boundary_modes, self.boundary_modes):
            raise ValueError(f"params['boundary'] must have shape (n, {self.boundary_modes}, "
                             f"{self.boundary_modes}), got {tuple(params['boundary'].shape)}")
        g = self.boundary_values(params["boundary"], resolution)
        return params["forcing"].to(torch.float64), g

    def inputs(self, params):
        """``f`` and the boundary data (zero inside), ``(n, 2, R, R)`` float64."""
        f, g = self._fields(params)
        ring = g.clone()
        ring[:, 1:-1, 1:-1] = 0
        return torch.stack([f, ring], 1)

    def sort_features(self, params):
        """:meth:`inputs` flattened, ``(n, 2 R²)``."""
        return self.inputs(params).flatten(1)

    def matrix(self, resolution, device=None):
        """The Laplacian (2), ``((R − 2)², (R − 2)²)`` CSR float64; one object per grid and
        device, so every block of samples passes the same matrix."""
        check_resolution(resolution)
        key = (resolution, str(torch.device("cpu") if device is None else torch.device(device)))
        if key not in self._matrices:
            ones = torch.ones(1, resolution, resolution, dtype=torch.float64, device=device)
            self._matrices[key] = five_point_matrices(*flux_form_couplings(ones))[0]
        return self._matrices[key]

    def _rhs(self, f, g):
        ones = torch.ones_like(g)
        _, w, e, s, n = flux_form_couplings(ones)
        return f[:, 1:-1, 1:-1].reshape(f.shape[0], -1) - boundary_lift(w, e, s, n, g)

    def assemble(self, f, g):
        """The system (2) of one sample.

        Parameters
        ----------
        f : Tensor, shape (R, R)
            Forcing at the nodes (boundary values unused).
        g : Tensor, shape (R, R)
            Dirichlet values on the boundary nodes (interior values unused).

        Returns
        -------
        A : Tensor, shape ((R − 2)², (R − 2)²), CSR float64 (see :meth:`matrix`)
        b : Tensor, shape ((R − 2)²,), float64
        """
        for name, value in (("f", f), ("g", g)):
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating-point torch.Tensor, got "
                                f"{type(value).__name__}")
            if value.ndim != 2 or value.shape[0] != value.shape[1] or value.shape != f.shape:
                raise ValueError(f"{name} must have shape (R, R) like f, got "
                                 f"{tuple(value.shape)}")
            if not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} must be finite, got NaN or inf values")
        check_resolution(f.shape[0])
        b = self._rhs(f[None].to(torch.float64), g[None].to(torch.float64))[0]
        return self.matrix(f.shape[0], f.device), b

    def solve(self, params, linear_solve):
        """Solve the block's systems with ``linear_solve``, one matrix object for all samples.

        Returns
        -------
        Tensor, shape (n, 1, R, R), float64
            ``u``, with ``g`` on the boundary nodes.
        """
        f, g = self._fields(params)
        A = self.matrix(f.shape[-1], f.device)
        X = linear_solve([A] * f.shape[0], self._rhs(f, g))
        return embed(X, f.shape[-1], boundary=g)[:, None]
