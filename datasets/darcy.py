"""Steady Darcy flow with a random coefficient, in flux form.

Darcy flow is the benchmark of the FNO paper (Li et al., "Fourier Neural Operator for
Parametric Partial Differential Equations", ICLR 2021, Sec. 5.2):

    −∇·(a(x) ∇u(x)) = f(x)  on (0, 1)²,   u = 0 on the boundary,                   (1)

with ``a = a_high`` where a Gaussian random field ψ ~ N(0, 9 (−Δ + 9 I)^(−2)) is ≥ 0 and
``a = a_low`` elsewhere, and ``f = 1``. It is discretized by the standard second-order
five-point flux-form finite-difference scheme on the nodes ``x_i = i h``, ``h = 1/(N − 1)``:

    [a_{i+½,j}(u_{i,j} − u_{i+1,j}) + a_{i−½,j}(u_{i,j} − u_{i−1,j})
     + a_{i,j+½}(u_{i,j} − u_{i,j+1}) + a_{i,j−½}(u_{i,j} − u_{i,j−1})] / h² = f_{i,j}  (2)

    a_{i±½,j} = (a_{i,j} + a_{i±1,j}) / 2,   a_{i,j±½} = (a_{i,j} + a_{i,j±1}) / 2      (3)

for the interior nodes ``1 ≤ i, j ≤ N − 2``; boundary values are zero and drop out. The
matrix is symmetric positive definite.

SKR (Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
Recycling", ICLR 2024) uses a log-normal coefficient ``a = exp(ψ)`` (its released code draws ψ
from a periodic GRF with α = 2.5, τ = 7) and ``f = 1``, with 100 systems per run at the
nominal matrix sizes 50², 80², 100², 150², 200² (``resolution`` 52, 82, 102, 152, 202);
its main table uses 80². Its released matrix is not (2) but a five-point Laplacian scaled
row-wise by a (with one coupling diagonal shifted); this class discretizes (1) itself.
"""
import torch

from .fdm import GridFamily, check_real, check_resolution, embed, five_point_matrices, \
    flux_form_couplings, forcing_vector
from .grf import grf

__all__ = ["Darcy"]


class Darcy(GridFamily):
    """Steady Darcy flow (1) with a random coefficient, discretized by (2)–(3).

    Parameters
    ----------
    coefficient : {"binary", "lognormal"}
        ``"binary"``: ``a = a_high`` where the GRF is ≥ 0, ``a_low`` elsewhere (FNO paper);
        ``"lognormal"``: ``a = exp(GRF)``.
    alpha, tau : float
        GRF covariance ``τ^(2α−2) (−Δ + τ² I)^(−α)`` (see :func:`sciml.datasets.grf`).
    a_high, a_low : float
        The two values of the binary coefficient (> 0).
    forcing : float
        Constant right-hand side ``f`` used when :meth:`assemble` gets no ``f``.

    Notes
    -----
    Parameters: ``{"grf": ψ}``, ``(n, R, R)``. Inputs: the coefficient ``a`` (one channel);
    SKR sorts on ``a`` flattened. Outputs: ``u`` (one channel). SPD, a new matrix per sample.
    """

    name = "darcy"
    in_channels = 1
    out_channels = 1
    spd = True
    matrix_varies = True
    _param_keys = ("grf",)

    def __init__(self, coefficient="binary", alpha=2.0, tau=3.0, a_high=12.0, a_low=3.0,
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
        self._options = {"coefficient": self.coefficient_kind, "alpha": self.alpha,
                         "tau": self.tau, "a_high": self.a_high, "a_low": self.a_low,
                         "forcing": self.forcing}

    def sample_fields(self, n, resolution, generator=None, device=None):
        """The GRF ψ behind ``n`` coefficients, the per-sample parameters of the file.

        Parameters
        ----------
        n : int
            Number of samples (≥ 1).
        resolution : int
            Nodes per side, boundary included (≥ 3).
        generator : torch.Generator, optional
            CPU generator of the normals.
        device : torch.device or str, optional
            Device of the result.

        Returns
        -------
        Tensor, shape (n, resolution, resolution), float64
        """
        check_resolution(resolution)
        return grf(n, resolution, alpha=self.alpha, tau=self.tau, generator=generator,
                   device=device)

    def sample_params(self, n, resolution, generator=None, device=None):
        """``{"grf": ψ}``, ψ of shape ``(n, R, R)`` float64 from :meth:`sample_fields`."""
        return {"grf": self.sample_fields(n, resolution, generator, device)}

    def coefficient(self, fields):
        """Map GRF samples ψ to the Darcy coefficient ``a`` (same shape, device and dtype).

        Parameters
        ----------
        fields : Tensor, shape (..., resolution, resolution)

        Returns
        -------
        Tensor, shape (..., resolution, resolution)
        """
        if not isinstance(fields, torch.Tensor) or not fields.is_floating_point():
            raise TypeError(f"fields must be a floating-point torch.Tensor, got "
                            f"{type(fields).__name__}")
        if self.coefficient_kind == "lognormal":
            return torch.exp(fields)
        high = torch.tensor(self.a_high, dtype=fields.dtype, device=fields.device)
        low = torch.tensor(self.a_low, dtype=fields.dtype, device=fields.device)
        return torch.where(fields >= 0, high, low)

    def sample_coefficients(self, n, resolution, generator=None, device=None):
        """Draw ``n`` coefficients ``a``: :meth:`coefficient` of :meth:`sample_fields`.

        Returns
        -------
        Tensor, shape (n, resolution, resolution), float64
        """
        return self.coefficient(self.sample_fields(n, resolution, generator, device))

    def inputs(self, params):
        """The coefficient ``a``, ``(n, 1, R, R)`` float64."""
        self._check_params(params)
        return self.coefficient(params["grf"])[:, None]

    def sort_features(self, params):
        """``a`` flattened, ``(n, R²)``: SKR sorts Darcy systems on the coefficient field."""
        return self.inputs(params).flatten(1)

    def assemble(self, a, f=None):
        """Assemble the five-point system (2)–(3) of one sample on ``a``'s device.

        Unknowns are the interior nodes in row-major order: node ``(i, j)``,
        ``1 ≤ i, j ≤ N − 2``, is unknown ``(i − 1)(N − 2) + (j − 1)``.

        Parameters
        ----------
        a : Tensor, shape (N, N)
            Nodal coefficient on ``x_i = i / (N − 1)``, boundary included, finite and > 0;
            first axis is x.
        f : float or Tensor of shape (N, N), optional
            Right-hand side at the nodes (boundary values unused); default ``self.forcing``.

        Returns
        -------
        A : Tensor, shape ((N − 2)², (N − 2)²)
            torch sparse CSR, float64, on ``a.device``; symmetric positive definite.
        b : Tensor, shape ((N − 2)²,)
            float64, on ``a.device``.
        """
        if not isinstance(a, torch.Tensor) or not a.is_floating_point():
            raise TypeError(f"a must be a floating-point torch.Tensor, got "
                            f"{type(a).__name__}")
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"a must have shape (N, N), got {tuple(a.shape)}")
        check_resolution(a.shape[0])
        if not bool(torch.isfinite(a).all()):
            raise ValueError("a must be finite, got NaN or inf values")
        if not bool((a > 0).all()):
            raise ValueError(f"a must be > 0 everywhere, got minimum {float(a.min())!r}")
        b = forcing_vector(self.forcing if f is None else f, a.shape[0], a.device, like="a")
        return five_point_matrices(*flux_form_couplings(a[None].to(torch.float64)))[0], b

    def solve(self, params, linear_solve):
        """Assemble the block's systems (2)–(3) and solve them with ``linear_solve``.

        Parameters
        ----------
        params : dict
            ``{"grf": ψ}`` with ψ of shape ``(n, R, R)``.
        linear_solve : callable
            ``linear_solve(As, B, X0=None) -> X`` with ``As`` a list of ``n`` CSR matrices
            and ``B, X`` of shape ``(n, (R − 2)²)``.

        Returns
        -------
        Tensor, shape (n, 1, R, R), float64
            ``u`` with zero boundary values.
        """
        n, resolution = self._check_params(params)
        a = self.coefficient(params["grf"].to(torch.float64))
        As = five_point_matrices(*flux_form_couplings(a))
        B = forcing_vector(self.forcing, resolution, a.device, like="a", samples=n)
        return embed(linear_solve(As, B), resolution)[:, None]

    def solution_field(self, x, resolution):
        """Put interior unknowns back on the full grid with zero boundary values.

        Parameters
        ----------
        x : Tensor, shape (..., (resolution − 2)²)
        resolution : int
            Nodes per side, boundary included (≥ 3).

        Returns
        -------
        Tensor, shape (..., resolution, resolution)
            Same dtype and device as ``x``.
        """
        check_resolution(resolution)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        m = resolution - 2
        if x.ndim < 1 or x.shape[-1] != m * m:
            raise ValueError(f"x must have shape (..., {m * m}) for resolution {resolution}, "
                             f"got {tuple(x.shape)}")
        return embed(x, resolution)
