"""PDE families: parameter samplers, sparse assembly on the device, and a registry by name.

A family is a class with the methods the generator (:func:`sciml.datasets.generate`) uses:

- ``sample_fields(n, resolution, generator, device)``: the random parameters of ``n``
  samples, ``(n, resolution, resolution)``, stored in the file under ``params/``;
- ``coefficient(fields)``: the input channel built from them;
- ``assemble(a, f=None)``: the linear system of one sample as a torch sparse CSR matrix;
- ``solution_field(x, resolution)``: the unknowns put back on the full grid;
- ``to_dict()``: its options, written into the file's configuration.

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
"""
import inspect
import math
import warnings

import torch

from .grf import grf

__all__ = ["Darcy", "PDES", "get_pde"]


def _check_real(name, value, *, positive):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        expected = "a finite number > 0" if positive else "a finite number"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return float(value)


def _check_resolution(resolution):
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise TypeError(f"resolution must be an int, got {type(resolution).__name__} "
                        f"{resolution!r}")
    if resolution < 3:
        raise ValueError(f"resolution must be >= 3 (at least one interior node), got "
                         f"{resolution}")


class Darcy:
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
    """

    name = "darcy"
    in_channels = 1
    out_channels = 1

    def __init__(self, coefficient="binary", alpha=2.0, tau=3.0, a_high=12.0, a_low=3.0,
                 forcing=1.0):
        if coefficient not in ("binary", "lognormal"):
            raise ValueError(f"coefficient must be 'binary' or 'lognormal', got "
                             f"{coefficient!r}")
        self.coefficient_kind = coefficient
        self.alpha = _check_real("alpha", alpha, positive=True)
        self.tau = _check_real("tau", tau, positive=True)
        self.a_high = _check_real("a_high", a_high, positive=True)
        self.a_low = _check_real("a_low", a_low, positive=True)
        self.forcing = _check_real("forcing", forcing, positive=False)

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"Darcy({options})"

    def to_dict(self):
        """The constructor options, JSON-ready: ``Darcy(**d.to_dict())`` rebuilds ``d``."""
        return {"coefficient": self.coefficient_kind, "alpha": self.alpha, "tau": self.tau,
                "a_high": self.a_high, "a_low": self.a_low, "forcing": self.forcing}

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
        _check_resolution(resolution)
        return grf(n, resolution, alpha=self.alpha, tau=self.tau, generator=generator,
                   device=device)

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
        _check_resolution(a.shape[0])
        if not bool(torch.isfinite(a).all()):
            raise ValueError("a must be finite, got NaN or inf values")
        if not bool((a > 0).all()):
            raise ValueError(f"a must be > 0 everywhere, got minimum {float(a.min())!r}")
        n = a.shape[0]
        m = n - 2
        inv_h2 = float((n - 1) ** 2)
        a = a.to(torch.float64)
        b = self._rhs(f, n, a.device)

        # Face coefficients by the arithmetic mean of the two nodes, eq. (3).
        ax = 0.5 * (a[1:, :] + a[:-1, :])          # ax[i, j] = a_{i+½, j}
        ay = 0.5 * (a[:, 1:] + a[:, :-1])          # ay[i, j] = a_{i, j+½}
        west = ax[:m, 1:m + 1]                     # a_{i−½, j} on the interior nodes
        east = ax[1:m + 1, 1:m + 1]                # a_{i+½, j}
        south = ay[1:m + 1, :m]                    # a_{i, j−½}
        north = ay[1:m + 1, 1:m + 1]               # a_{i, j+½}

        idx = torch.arange(m * m, device=a.device).view(m, m)
        # Eq. (2): the diagonal sums all four faces; neighbours on the boundary (u = 0) are
        # dropped, the others couple with −face / h².
        rows = [idx.reshape(-1), idx[1:, :].reshape(-1), idx[:-1, :].reshape(-1),
                idx[:, 1:].reshape(-1), idx[:, :-1].reshape(-1)]
        cols = [idx.reshape(-1), idx[:-1, :].reshape(-1), idx[1:, :].reshape(-1),
                idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)]
        vals = [(west + east + south + north).reshape(-1), -west[1:, :].reshape(-1),
                -east[:-1, :].reshape(-1), -south[:, 1:].reshape(-1),
                -north[:, :-1].reshape(-1)]
        indices = torch.stack([torch.cat(rows), torch.cat(cols)])
        with warnings.catch_warnings():
            # torch warns on every sparse construction (CSR "beta", invariant checks off);
            # the indices are in range by construction and the operations used are stable.
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            warnings.filterwarnings("ignore", message="Sparse invariant checks")
            A = torch.sparse_coo_tensor(indices, torch.cat(vals) * inv_h2, (m * m, m * m),
                                        check_invariants=False)
            A = A.coalesce().to_sparse_csr()
        return A, b

    def _rhs(self, f, n, device):
        m = n - 2
        if f is None:
            f = self.forcing
        if isinstance(f, torch.Tensor):
            if f.shape != (n, n):
                raise ValueError(f"f must have the shape of a, ({n}, {n}), got "
                                 f"{tuple(f.shape)}")
            if not bool(torch.isfinite(f).all()):
                raise ValueError("f must be finite, got NaN or inf values")
            return f[1:-1, 1:-1].reshape(-1).to(device=device, dtype=torch.float64)
        value = _check_real("f", f, positive=False)
        return torch.full((m * m,), value, dtype=torch.float64, device=device)

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
        _check_resolution(resolution)
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        m = resolution - 2
        if x.ndim < 1 or x.shape[-1] != m * m:
            raise ValueError(f"x must have shape (..., {m * m}) for resolution {resolution}, "
                             f"got {tuple(x.shape)}")
        u = x.new_zeros(*x.shape[:-1], resolution, resolution)
        u[..., 1:-1, 1:-1] = x.reshape(*x.shape[:-1], m, m)
        return u


PDES = {"darcy": Darcy}


def get_pde(name, **options):
    """Build the PDE family registered as ``name`` with its constructor ``options``.

    Parameters
    ----------
    name : str
        A key of :data:`PDES`.
    **options
        Keyword arguments of that family's constructor, validated there.

    Returns
    -------
    object
        An instance of ``PDES[name]``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    if name not in PDES:
        raise ValueError(f"unknown PDE {name!r}; expected one of: {', '.join(sorted(PDES))}")
    cls = PDES[name]
    accepted = set(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for PDE {name!r}; expected "
                         f"some of: {', '.join(sorted(accepted))}")
    return cls(**options)
