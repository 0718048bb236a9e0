"""The Helmholtz equation with a random variable wavenumber: indefinite systems.

    −Δu − k(x)² u = f  on (0, 1)²,   u = 0 on the boundary,                             (1)

    k(x) = k₀ (1 + ε ψ(x)),   ψ a Gaussian random field (:func:`sciml.datasets.grf`),    (2)

discretized by the second-order five-point Laplacian with ``k²`` taken at the nodes:

    (4 u_{i,j} − u_{i−1,j} − u_{i+1,j} − u_{i,j−1} − u_{i,j+1}) / h² − k_{i,j}² u_{i,j}
        = f_{i,j},   1 ≤ i, j ≤ R − 2,   h = 1/(R − 1).                                 (3)

The matrix is symmetric, and indefinite as soon as ``k²`` exceeds the smallest eigenvalue of
the discrete Laplacian, about ``2π² ≈ 19.7`` (``k₀ ≳ 4.4``): the default ``k₀ = 20`` puts
``k²`` past about 25 of them, so CG does not apply and unpreconditioned GMRES struggles.
Resolve the waves: ``(R − 1)·2π/max k`` points per wavelength (about 30 at ``R = 102``,
``k = 20``); the pollution error of (3) grows like ``k³h²``.

SKR (Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
Recycling", ICLR 2024) lists Helmholtz as its headline case (speed-ups up to 13.9×, nominal
matrix sizes 50², 80², 100², 150², main table 100², i.e. ``resolution`` 102, tolerances
1e-1 … 1e-7, 100 systems per run). Its released generator, however, assembles its Darcy-like
matrix ``L₅·diag(w)/h²`` with ``w = exp(GRF)`` (periodic, α = 2.5, τ = 7) and subtracts
``k²`` from the diagonal with one scalar ``k ~ U(0, 1)`` per sample (in the scripts for the
listed sizes): a shift far below the smallest eigenvalue (about 19 on a re-derived 48²
instance), so those systems are positive definite (real positive spectrum), not indefinite;
an unsized script draws ``k ~ U(0, 100)``, which is strongly indefinite. This family
implements (1) with a genuinely indefinite ``k₀``.
"""
import torch

from .fdm import GridFamily, check_real, check_resolution, embed, five_point_matrices, \
    flux_form_couplings, forcing_vector
from .grf import grf

__all__ = ["Helmholtz"]


class Helmholtz(GridFamily):
    """The Helmholtz equation (1) with wavenumber (2), discretized by (3).

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
    Parameters: ``{"grf": ψ}``, ``(n, R, R)``. Inputs: ``k`` (one channel), which SKR sorts
    on, flattened. Outputs: ``u``. Symmetric indefinite (``spd`` False), a new matrix per
    sample.
    """

    name = "helmholtz"
    #: The preconditioner of its Krylov solves: the shifted-Laplacian multigrid.
    krylov_preconditioner = "slmg"
    in_channels = 1
    out_channels = 1
    spd = False
    matrix_varies = True
    _param_keys = ("grf",)

    def __init__(self, k0=20.0, epsilon=0.2, alpha=2.0, tau=3.0, forcing=1.0):
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
        """``{"grf": ψ}``, ψ of shape ``(n, R, R)`` float64 on ``device``."""
        check_resolution(resolution)
        return {"grf": grf(n, resolution, alpha=self.alpha, tau=self.tau, generator=generator,
                           device=device)}

    def wavenumber(self, params):
        """``k`` of (2), ``(n, R, R)`` float64."""
        self._check_params(params)
        return self.k0 * (1 + self.epsilon * params["grf"].to(torch.float64))

    def inputs(self, params):
        """The wavenumber ``k``, ``(n, 1, R, R)``."""
        return self.wavenumber(params)[:, None]

    def sort_features(self, params):
        """``k`` flattened, ``(n, R²)``."""
        return self.wavenumber(params).flatten(1)

    @staticmethod
    def _matrices(k):
        c, w, e, s, n = flux_form_couplings(torch.ones_like(k))
        return five_point_matrices(c - k[:, 1:-1, 1:-1] ** 2, w, e, s, n)

    def assemble(self, k, f=None):
        """The system (3) of one sample.

        Parameters
        ----------
        k : Tensor, shape (R, R)
            Wavenumber at the nodes (finite).
        f : float or Tensor of shape (R, R), optional
            Right-hand side at the nodes (boundary values unused), finite; default the
            constant ``forcing``.

        Returns
        -------
        A : Tensor, shape ((R − 2)², (R − 2)²), CSR float64, symmetric
        b : Tensor, shape ((R − 2)²,), float64
        """
        if not isinstance(k, torch.Tensor) or not k.is_floating_point():
            raise TypeError(f"k must be a floating-point torch.Tensor, got {type(k).__name__}")
        if k.ndim != 2 or k.shape[0] != k.shape[1]:
            raise ValueError(f"k must have shape (R, R), got {tuple(k.shape)}")
        check_resolution(k.shape[0])
        if not bool(torch.isfinite(k).all()):
            raise ValueError("k must be finite, got NaN or inf values")
        k = k.to(torch.float64)
        b = forcing_vector(self.forcing if f is None else f, k.shape[0], k.device, like="k")
        return self._matrices(k[None])[0], b

    def solve(self, params, linear_solve):
        """Assemble (3) for the block and solve with ``linear_solve``.

        Returns
        -------
        Tensor, shape (n, 1, R, R), float64, zero on the boundary
        """
        k = self.wavenumber(params)
        resolution = k.shape[-1]
        B = forcing_vector(self.forcing, resolution, k.device, like="k", samples=k.shape[0])
        return embed(linear_solve(self._matrices(k), B), resolution)[:, None]
