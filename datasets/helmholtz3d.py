"""The Helmholtz equation on the unit cube with a random wavenumber: indefinite 3-D systems.

    −Δu − k(x)² u = f  on (0, 1)³,   u = 0 on the boundary,                             (1)

    k(x) = k₀ (1 + ε ψ(x)),   ψ a Gaussian random field (:func:`sciml.datasets.grf3d.grf3d`),

the 3-D counterpart of :mod:`.helmholtz`, discretized by the seven-point Laplacian with ``k²``
at the nodes (second order; :mod:`.fdm3d`). The matrix is symmetric and indefinite once ``k²``
exceeds the smallest Dirichlet eigenvalue ``3π² ≈ 29.6`` (``k₀ ≳ 5.4``); the default
``k₀ = 10`` puts ``k² ≈ 100`` past seven of them (``π²(a² + b² + c²) < 100``). Direct
factorization fills in as in every 3-D problem, so Krylov methods remain, with or without the
shifted-Laplacian multigrid (:mod:`.krylov.shifted_laplacian`); the few eigenvalues near zero
are what GCRO-DR's recycled space carries from sample to sample.
"""
import torch

from .fdm import check_real, check_resolution
from .fdm3d import GridFamily3D, embed3d, flux_form_couplings3d, forcing_vector3d, \
    seven_point_matrices
from .grf3d import grf3d

__all__ = ["Helmholtz3D"]


class Helmholtz3D(GridFamily3D):
    """The Helmholtz equation (1) on the unit cube.

    Parameters
    ----------
    k0 : float
        Mean wavenumber k₀ > 0.
    epsilon : float
        Relative amplitude ε ≥ 0 of the wavenumber's variation.
    alpha, tau : float
        Covariance of the GRF ψ.
    forcing : float
        Constant right-hand side ``f``.

    Notes
    -----
    Parameters: ``{"grf": ψ}``, ``(n, R, R, R)``. Inputs: ``k`` (one channel), sorted on.
    Outputs: ``u``. Symmetric indefinite, a new matrix per sample.
    """

    name = "helmholtz3d"
    #: The preconditioner of its Krylov solves: the shifted-Laplacian multigrid.
    krylov_preconditioner = "slmg"
    in_channels = 1
    out_channels = 1
    spd = False
    matrix_varies = True
    _param_keys = ("grf",)

    def __init__(self, k0=10.0, epsilon=0.2, alpha=2.0, tau=3.0, forcing=1.0):
        self.k0 = check_real("k0", k0, positive=True)
        self.epsilon = check_real("epsilon", epsilon)
        if self.epsilon < 0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
        self.alpha = check_real("alpha", alpha, positive=True)
        self.tau = check_real("tau", tau, positive=True)
        self.forcing = check_real("forcing", forcing)
        self._options = {"k0": self.k0, "epsilon": self.epsilon, "alpha": self.alpha,
                         "tau": self.tau, "forcing": self.forcing}

    def sample_params(self, n, resolution, generator=None, device=None):
        """``{"grf": ψ}``, ψ of shape ``(n, R, R, R)`` float64 on ``device``."""
        check_resolution(resolution)
        return {"grf": grf3d(n, resolution, alpha=self.alpha, tau=self.tau,
                             generator=generator, device=device)}

    def wavenumber(self, params):
        """``k`` of (1), ``(n, R, R, R)`` float64."""
        self._check_params(params)
        return self.k0 * (1 + self.epsilon * params["grf"].to(torch.float64))

    def inputs(self, params):
        """The wavenumber ``k``, ``(n, 1, R, R, R)``."""
        return self.wavenumber(params)[:, None]

    def sort_features(self, params):
        """``k`` flattened, ``(n, R³)``."""
        return self.wavenumber(params).flatten(1)

    @staticmethod
    def _matrices(k):
        c, *neighbours = flux_form_couplings3d(torch.ones_like(k))       # −Δ_h
        return seven_point_matrices(c - k[:, 1:-1, 1:-1, 1:-1] ** 2, *neighbours)

    def assemble(self, k, f=None):
        """The system (1) of one sample.

        Parameters
        ----------
        k : Tensor, shape (R, R, R)
            Wavenumber at the nodes (finite).
        f : float or Tensor of shape (R, R, R), optional
            Right-hand side at the nodes; default the constant ``forcing``.

        Returns
        -------
        A : Tensor, shape ((R − 2)³, (R − 2)³), CSR float64, symmetric
        b : Tensor, shape ((R − 2)³,), float64
        """
        if not isinstance(k, torch.Tensor) or not k.is_floating_point():
            raise TypeError(f"k must be a floating-point torch.Tensor, got {type(k).__name__}")
        if k.ndim != 3 or len(set(k.shape)) != 1:
            raise ValueError(f"k must have shape (R, R, R), got {tuple(k.shape)}")
        check_resolution(k.shape[0])
        if not bool(torch.isfinite(k).all()):
            raise ValueError("k must be finite, got NaN or inf values")
        k = k.to(torch.float64)
        b = forcing_vector3d(self.forcing if f is None else f, k.shape[0], k.device, like="k")
        return self._matrices(k[None])[0], b

    def solve(self, params, linear_solve):
        """Assemble (1) for the block and solve with ``linear_solve``.

        Returns
        -------
        Tensor, shape (n, 1, R, R, R), float64, zero on the boundary
        """
        k = self.wavenumber(params)
        resolution = k.shape[-1]
        B = forcing_vector3d(self.forcing, resolution, k.device, like="k", samples=k.shape[0])
        return embed3d(linear_solve(self._matrices(k), B), resolution)[:, None]
