"""Steady Darcy flow on the unit cube: the variable-coefficient Poisson equation in 3-D.

    −∇·(a(x) ∇u(x)) = f(x)  on (0, 1)³,   u = 0 on the boundary,                       (1)

the FNO Darcy benchmark (Li et al., ICLR 2021, Sec. 5.2) lifted to 3-D, with ``a`` from a
Gaussian random field ψ (:func:`sciml.datasets.grf3d.grf3d`): ``a = exp(ψ)`` (log-normal, the
coefficient of SKR, Wang et al., ICLR 2024) or ``a = a_high`` where ψ ≥ 0 and ``a_low``
elsewhere (binary, the FNO recipe). Discretized by the seven-point flux form (eq. (1) of
:mod:`.fdm3d`) with arithmetic face means,

    Σ_{axes} [a_{p+½}(u_p − u_{p+1}) + a_{p−½}(u_p − u_{p−1})] / h² = f_p,               (2)

second order; the matrix is symmetric positive definite. Direct factorization fills in as
``N^{4/3}`` on such a grid (nested dissection; George, SIAM J. Numer. Anal. 10, 1973), which
is the regime where iterative solvers and recycling across samples can pay.
"""
import torch

from .fdm import check_real, check_resolution
from .fdm3d import GridFamily3D, embed3d, flux_form_couplings3d, forcing_vector3d, \
    seven_point_matrices
from .grf3d import grf3d

__all__ = ["Darcy3D"]


class Darcy3D(GridFamily3D):
    """Darcy flow (1) on the unit cube with a random coefficient, discretized by (2).

    Parameters
    ----------
    coefficient : {"lognormal", "binary"}
    alpha, tau : float
        Covariance ``τ^(2α−2) (−Δ + τ²)^(−α)`` of the GRF ψ.
    a_high, a_low : float
        Values of the binary coefficient (> 0).
    forcing : float
        Constant right-hand side ``f``.

    Notes
    -----
    Parameters: ``{"grf": ψ}``, ``(n, R, R, R)``. Inputs: ``a`` (one channel), which SKR sorts
    on. Outputs: ``u``. SPD, a new matrix per sample.
    """

    name = "darcy3d"
    #: The preconditioner of its Krylov solves (the 2-D "mg" does not take a 3-D grid).
    krylov_preconditioner = "gsmg"
    in_channels = 1
    out_channels = 1
    spd = True
    matrix_varies = True
    _param_keys = ("grf",)

    def __init__(self, coefficient="lognormal", alpha=2.0, tau=3.0, a_high=12.0, a_low=3.0,
                 forcing=1.0):
        if coefficient not in ("binary", "lognormal"):
            raise ValueError(f"coefficient must be 'binary' or 'lognormal', got "
                             f"{coefficient!r}")
        self.coefficient_kind = coefficient
        self.alpha = check_real("alpha", alpha, positive=True)
        self.tau = check_real("tau", tau, positive=True)
        self.a_high = check_real("a_high", a_high, positive=True)
        self.a_low = check_real("a_low", a_low, positive=True)
        self.forcing = check_real("forcing", forcing)
        self._options = {"coefficient": coefficient, "alpha": self.alpha, "tau": self.tau,
                         "a_high": self.a_high, "a_low": self.a_low, "forcing": self.forcing}

    def sample_params(self, n, resolution, generator=None, device=None):
        """``{"grf": ψ}``, ψ of shape ``(n, R, R, R)`` float64 on ``device``."""
        check_resolution(resolution)
        return {"grf": grf3d(n, resolution, alpha=self.alpha, tau=self.tau,
                             generator=generator, device=device)}

    def coefficient(self, fields):
        """``a`` from ψ (same shape): ``exp(ψ)`` or the binary threshold at 0."""
        if self.coefficient_kind == "lognormal":
            return torch.exp(fields)
        return torch.where(fields >= 0, fields.new_tensor(self.a_high),
                           fields.new_tensor(self.a_low))

    def inputs(self, params):
        """The coefficient ``a``, ``(n, 1, R, R, R)`` float64."""
        self._check_params(params)
        return self.coefficient(params["grf"].to(torch.float64))[:, None]

    def sort_features(self, params):
        """``a`` flattened, ``(n, R³)``."""
        return self.inputs(params).flatten(1)

    def assemble(self, a, f=None):
        """The system (2) of one sample.

        Parameters
        ----------
        a : Tensor, shape (R, R, R)
            Nodal coefficient, finite and > 0.
        f : float or Tensor of shape (R, R, R), optional
            Right-hand side at the nodes (boundary values unused); default ``forcing``.

        Returns
        -------
        A : Tensor, shape ((R − 2)³, (R − 2)³), CSR float64, symmetric positive definite
        b : Tensor, shape ((R − 2)³,), float64
        """
        if not isinstance(a, torch.Tensor) or not a.is_floating_point():
            raise TypeError(f"a must be a floating-point torch.Tensor, got {type(a).__name__}")
        if a.ndim != 3 or len(set(a.shape)) != 1:
            raise ValueError(f"a must have shape (R, R, R), got {tuple(a.shape)}")
        check_resolution(a.shape[0])
        if not bool(torch.isfinite(a).all()) or not bool((a > 0).all()):
            raise ValueError("a must be finite and > 0 everywhere")
        b = forcing_vector3d(self.forcing if f is None else f, a.shape[0], a.device, like="a")
        return seven_point_matrices(*flux_form_couplings3d(a[None].to(torch.float64)))[0], b

    def solve(self, params, linear_solve):
        """Assemble (2) for the block and solve with ``linear_solve``.

        Returns
        -------
        Tensor, shape (n, 1, R, R, R), float64, zero on the boundary
        """
        n, resolution = self._check_params(params)
        a = self.coefficient(params["grf"].to(torch.float64))
        As = seven_point_matrices(*flux_form_couplings3d(a))
        B = forcing_vector3d(self.forcing, resolution, a.device, like="a", samples=n)
        return embed3d(linear_solve(As, B), resolution)[:, None]
