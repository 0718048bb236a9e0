"""The five-point finite-difference stencil on the unit square, shared by the PDE families.

Every family discretizes on the nodes ``x_i = i h``, ``h = 1/(R − 1)``, ``0 ≤ i ≤ R − 1``, with
Dirichlet data on the boundary nodes; the unknowns are the ``m² = (R − 2)²`` interior nodes in
row-major order, node ``(i, j)`` (first axis x) being unknown ``(i − 1) m + (j − 1)``. A
five-point operator is given by its couplings at the interior nodes,

    (A u)_{i,j} = c_{i,j} u_{i,j} + w_{i,j} u_{i−1,j} + e_{i,j} u_{i+1,j}
                  + s_{i,j} u_{i,j−1} + n_{i,j} u_{i,j+1},                               (1)

couplings to boundary nodes included. Those move to the right-hand side with the boundary
values g (the lifting):

    b_{i,j} = f_{i,j} − Σ_{neighbours q on the boundary} coupling_q g_q.                   (2)

The matrices are built from couplings of a whole block of samples at once (no loop over grid
points); all share one CSR index pattern.
"""
import warnings

import torch

from sciml.validation import finite_float

__all__ = ["GridFamily", "check_real", "check_resolution", "forcing_vector", "nodes",
           "flux_form_couplings", "five_point_matrices", "apply_five_point", "boundary_lift",
           "embed"]


def check_real(name, value, *, positive=False):
    """``value`` as a float; a TypeError/ValueError naming ``name`` if not finite (and > 0)."""
    value = finite_float(name, value)
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def check_resolution(resolution):
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise TypeError(f"resolution must be an int, got {type(resolution).__name__} "
                        f"{resolution!r}")
    if resolution < 3:
        raise ValueError(f"resolution must be >= 3 (at least one interior node), got "
                         f"{resolution}")


def forcing_vector(f, resolution, device, *, like, samples=None):
    """The right-hand side ``f`` of (2) at the unknowns, float64 on ``device``.

    Parameters
    ----------
    f : float or Tensor, shape (R, R)
        A constant, or values at the nodes (boundary values unused); finite, floating point.
    resolution : int
        ``R``.
    device : torch.device
    like : str
        Name of the argument whose grid ``f`` must match (for the error message).
    samples : int, optional
        Repeat ``f`` for a block of that many samples.

    Returns
    -------
    Tensor, shape (m²,), or (samples, m²) when ``samples`` is given
    """
    if isinstance(f, torch.Tensor):
        if not f.is_floating_point():
            raise TypeError(f"f must be a floating-point tensor or a real number, got {f.dtype}")
        if tuple(f.shape) != (resolution, resolution):
            raise ValueError(f"f must have shape ({resolution}, {resolution}) like {like}, got "
                             f"{tuple(f.shape)}")
        if not bool(torch.isfinite(f).all()):
            raise ValueError("f must be finite, got NaN or inf values")
        b = f[1:-1, 1:-1].reshape(-1).to(device=device, dtype=torch.float64)
    else:
        b = torch.full(((resolution - 2) ** 2,), check_real("f", f), dtype=torch.float64,
                       device=device)
    return b if samples is None else b.expand(samples, -1).clone()


def nodes(resolution, device=None):
    """The node coordinates ``X, Y`` of shape ``(R, R)``, float64, ``X[i, j] = i/(R − 1)``."""
    x = torch.linspace(0.0, 1.0, resolution, dtype=torch.float64, device=device)
    return torch.meshgrid(x, x, indexing="ij")


def flux_form_couplings(a):
    """Couplings (1) of ``−∇·(a∇u)`` by the flux form with arithmetic face means.

    ``(A u)_{i,j} = [Σ_faces a_face (u_{i,j} − u_neighbour)] / h²`` with
    ``a_{i±½,j} = (a_{i,j} + a_{i±1,j}) / 2`` (and likewise in y): second order, symmetric.

    Parameters
    ----------
    a : Tensor, shape (n, R, R), float64
        Nodal coefficient, boundary included.

    Returns
    -------
    tuple of five Tensors, shape (n, R − 2, R − 2)
        ``(c, w, e, s, n)`` of (1).
    """
    m = a.shape[-1] - 2
    inv_h2 = float((m + 1) ** 2)
    ax = 0.5 * (a[:, 1:, :] + a[:, :-1, :])       # ax[:, i, j] = a_{i+½, j}
    ay = 0.5 * (a[:, :, 1:] + a[:, :, :-1])       # ay[:, i, j] = a_{i, j+½}
    west = ax[:, :m, 1:m + 1]
    east = ax[:, 1:m + 1, 1:m + 1]
    south = ay[:, 1:m + 1, :m]
    north = ay[:, 1:m + 1, 1:m + 1]
    return ((west + east + south + north) * inv_h2, -west * inv_h2, -east * inv_h2,
            -south * inv_h2, -north * inv_h2)


_PATTERNS = {}


def _pattern(m, device):
    """CSR row pointers, column indices and the (m, m, 5) mask of existing couplings."""
    key = (m, str(device))
    if key not in _PATTERNS:
        i = torch.arange(m, device=device)
        inside = torch.ones(m, m, dtype=torch.bool, device=device)
        # Slots in increasing column order: (i−1, j), (i, j−1), (i, j), (i, j+1), (i+1, j).
        mask = torch.stack([(i > 0)[:, None] & inside, (i > 0)[None, :] & inside, inside,
                            (i < m - 1)[None, :] & inside, (i < m - 1)[:, None] & inside], -1)
        offsets = torch.tensor([-m, -1, 0, 1, m], device=device)
        p = torch.arange(m * m, device=device).view(m, m, 1)
        columns = (p + offsets)[mask]
        crow = torch.zeros(m * m + 1, dtype=torch.int64, device=device)
        crow[1:] = torch.cumsum(mask.sum(-1).reshape(-1), 0)
        _PATTERNS[key] = (crow, columns, mask)
    return _PATTERNS[key]


def five_point_matrices(c, w, e, s, n):
    """The matrices (1) of a block of samples, boundary couplings dropped.

    Parameters
    ----------
    c, w, e, s, n : Tensor, shape (n_samples, m, m)
        Couplings at the interior nodes; cast to float64.

    Returns
    -------
    list of Tensor, each shape (m², m²)
        torch sparse CSR, float64, on the couplings' device; one per sample, all sharing
        one index pattern.
    """
    m = c.shape[-1]
    crow, columns, mask = _pattern(m, c.device)
    values = torch.stack([w, s, c, n, e], -1).to(torch.float64)[:, mask]   # (n, nnz)
    with warnings.catch_warnings():
        # torch warns on every sparse CSR construction ("beta"); the pattern is valid by
        # construction.
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        return [torch.sparse_csr_tensor(crow, columns, v, (m * m, m * m), check_invariants=False)
                for v in values]


def boundary_lift(w, e, s, n, g):
    """``Σ coupling · g`` over boundary neighbours, the term subtracted in (2).

    Parameters
    ----------
    w, e, s, n : Tensor, shape (n_samples, m, m)
    g : Tensor, shape (n_samples, m + 2, m + 2)
        Dirichlet values; only its boundary nodes are read.

    Returns
    -------
    Tensor, shape (n_samples, m²), float64
    """
    ring = g.to(torch.float64).clone()
    ring[:, 1:-1, 1:-1] = 0
    lift = (w * ring[:, :-2, 1:-1] + e * ring[:, 2:, 1:-1] + s * ring[:, 1:-1, :-2]
            + n * ring[:, 1:-1, 2:])
    return lift.reshape(lift.shape[0], -1)


def apply_five_point(c, w, e, s, n, x):
    """The products ``A x`` of a block of operators (1) with zero boundary values, on the grid.

    Parameters
    ----------
    c, w, e, s, n : Tensor, shape (n_samples, m, m)
    x : Tensor, shape (n_samples, m²)

    Returns
    -------
    Tensor, shape (n_samples, m²)
    """
    m = c.shape[-1]
    u = torch.nn.functional.pad(x.reshape(-1, m, m), (1, 1, 1, 1))
    y = (c * u[:, 1:-1, 1:-1] + w * u[:, :-2, 1:-1] + e * u[:, 2:, 1:-1] + s * u[:, 1:-1, :-2]
         + n * u[:, 1:-1, 2:])
    return y.reshape(x.shape)


def embed(x, resolution, boundary=None):
    """Interior unknowns ``x (..., m²)`` put on the full ``(..., R, R)`` grid with boundary
    values ``boundary`` (same leading shape, ``(..., R, R)``; default 0)."""
    m = resolution - 2
    if boundary is None:
        u = x.new_zeros(*x.shape[:-1], resolution, resolution)
    else:
        u = boundary.to(dtype=x.dtype, device=x.device).clone()
    u[..., 1:-1, 1:-1] = x.reshape(*x.shape[:-1], m, m)
    return u


class GridFamily:
    """What every family on the node grid shares: options, repr, grid shape, parameter checks.

    A subclass sets ``name``, ``in_channels``, ``out_channels``, ``time_steps``, ``spd``,
    ``matrix_varies`` and ``_param_keys`` (the keys of :meth:`sample_params`, each a field of
    shape ``(n, R, R)`` unless listed in ``_small_params``), and keeps its constructor options
    in ``self._options``.
    """

    time_steps = None
    _small_params = ()

    def to_dict(self):
        """The constructor options, JSON-ready: ``type(f)(**f.to_dict())`` rebuilds ``f``."""
        return dict(self._options)

    def __repr__(self):
        options = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items())
        return f"{type(self).__name__}({options})"

    def grid_shape(self, resolution):
        """Shape ``(R − 2, R − 2)`` of the grid of unknowns (row-major, first axis x)."""
        check_resolution(resolution)
        return (resolution - 2, resolution - 2)

    def _check_params(self, params):
        """Validate a block of parameters; return ``(n, resolution)``."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of tensors, got {type(params).__name__}")
        missing = [key for key in self._param_keys if key not in params]
        if missing:
            raise ValueError(f"params must have the keys {list(self._param_keys)} of "
                             f"{self.name!r}, missing {missing}")
        n = resolution = None
        for key in self._param_keys:
            value = params[key]
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise TypeError(f"params[{key!r}] must be a floating-point tensor, got "
                                f"{type(value).__name__}")
            if n is None and value.ndim >= 1:
                n = value.shape[0]
            if value.ndim < 1 or value.shape[0] != n or n < 1:
                raise ValueError(f"params[{key!r}] must have a leading sample axis of size "
                                 f"{n}, got shape {tuple(value.shape)}")
            if key in self._small_params:
                continue
            if value.ndim != 3 or value.shape[1] != value.shape[2] or (
                    resolution is not None and value.shape[1] != resolution):
                raise ValueError(f"params[{key!r}] must have shape (n, R, R) like the other "
                                 f"fields, got {tuple(value.shape)}")
            resolution = value.shape[1]
        check_resolution(resolution)
        return n, resolution
