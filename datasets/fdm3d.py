"""The seven-point finite-difference stencil on the unit cube, shared by the 3-D families.

The 3-D counterpart of :mod:`.fdm`. Nodes ``x_i = i h``, ``h = 1/(R − 1)``, ``0 ≤ i ≤ R − 1``
on each axis, Dirichlet data on the boundary nodes; the unknowns are the ``m³ = (R − 2)³``
interior nodes in row-major order, node ``(i, j, l)`` (first axis x) being unknown
``((i − 1) m + (j − 1)) m + (l − 1)``. A seven-point operator is given by its couplings at
the interior nodes,

    (A u)_{i,j,l} = c u_{i,j,l} + w u_{i−1,j,l} + e u_{i+1,j,l} + s u_{i,j−1,l}
                    + n u_{i,j+1,l} + d u_{i,j,l−1} + t u_{i,j,l+1},                  (1)

(coefficients at node ``(i, j, l)``), couplings to boundary nodes dropped: the 3-D families
here have zero Dirichlet data. Matrices of a whole block of samples are built at once and
share one CSR index pattern.
"""
import warnings

import torch

from .fdm import GridFamily, check_real, check_resolution

__all__ = ["GridFamily3D", "nodes3d", "flux_form_couplings3d", "seven_point_matrices",
           "apply_seven_point", "embed3d", "forcing_vector3d"]


def nodes3d(resolution, device=None):
    """The node coordinates ``X, Y, Z`` of shape ``(R, R, R)``, float64, ``X[i] = i/(R − 1)``."""
    x = torch.linspace(0.0, 1.0, resolution, dtype=torch.float64, device=device)
    return torch.meshgrid(x, x, x, indexing="ij")


def flux_form_couplings3d(a):
    """Couplings (1) of ``−∇·(a∇u)`` by the flux form with arithmetic face means.

    ``(A u)_p = [Σ_faces a_face (u_p − u_neighbour)] / h²``, ``a_{i+½,j,l} = (a_{i,j,l} +
    a_{i+1,j,l}) / 2`` and likewise in y and z: second order, symmetric positive definite.

    Parameters
    ----------
    a : Tensor, shape (n, R, R, R), float64
        Nodal coefficient, boundary included.

    Returns
    -------
    tuple of seven Tensors, shape (n, R − 2, R − 2, R − 2)
        ``(c, w, e, s, n, d, t)`` of (1).
    """
    m = a.shape[-1] - 2
    inv_h2 = float((m + 1) ** 2)
    inner = slice(1, m + 1)
    faces = []
    for axis in (1, 2, 3):
        # mean[..., i, ...] = a_{i+½} along this axis; the face below node i is i − 1.
        mean = 0.5 * (a.narrow(axis, 1, m + 1) + a.narrow(axis, 0, m + 1))
        index = [slice(None), inner, inner, inner]
        index[axis] = slice(0, m)
        lower = mean[tuple(index)]
        index[axis] = slice(1, m + 1)
        upper = mean[tuple(index)]
        faces += [lower, upper]
    centre = sum(faces) * inv_h2
    return (centre, *(-face * inv_h2 for face in faces))


_PATTERNS = {}


def _pattern(m, device):
    """CSR row pointers, column indices and the (m, m, m, 7) mask of existing couplings."""
    key = (m, str(device))
    if key not in _PATTERNS:
        i = torch.arange(m, device=device)
        low, high = i > 0, i < m - 1
        full = torch.ones(m, m, m, dtype=torch.bool, device=device)
        # Slots in increasing column order: −x, −y, −z, centre, +z, +y, +x.
        mask = torch.stack([low[:, None, None] & full, low[None, :, None] & full,
                            low[None, None, :] & full, full, high[None, None, :] & full,
                            high[None, :, None] & full, high[:, None, None] & full], -1)
        offsets = torch.tensor([-m * m, -m, -1, 0, 1, m, m * m], device=device)
        p = torch.arange(m ** 3, device=device).view(m, m, m, 1)
        columns = (p + offsets)[mask]
        crow = torch.zeros(m ** 3 + 1, dtype=torch.int64, device=device)
        crow[1:] = torch.cumsum(mask.sum(-1).reshape(-1), 0)
        _PATTERNS[key] = (crow, columns, mask)
    return _PATTERNS[key]


def seven_point_matrices(c, w, e, s, n, d, t):
    """The matrices (1) of a block of samples, boundary couplings dropped.

    Parameters
    ----------
    c, w, e, s, n, d, t : Tensor, shape (n_samples, m, m, m)

    Returns
    -------
    list of Tensor, each shape (m³, m³)
        torch sparse CSR, float64, on the couplings' device, sharing one index pattern.
    """
    m = c.shape[-1]
    crow, columns, mask = _pattern(m, c.device)
    values = torch.stack([w, s, d, c, t, n, e], -1).to(torch.float64)[:, mask]   # (n, nnz)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        warnings.filterwarnings("ignore", message="Sparse invariant checks")
        return [torch.sparse_csr_tensor(crow, columns, v, (m ** 3, m ** 3),
                                        check_invariants=False) for v in values]


def apply_seven_point(c, w, e, s, n, d, t, x):
    """The products ``A x`` of a block of operators (1) on the grid, zero boundary values.

    Parameters
    ----------
    c, w, e, s, n, d, t : Tensor, shape (n_samples, m, m, m)
    x : Tensor, shape (n_samples, m³)

    Returns
    -------
    Tensor, shape (n_samples, m³)
    """
    m = c.shape[-1]
    u = torch.nn.functional.pad(x.reshape(-1, m, m, m), (1, 1, 1, 1, 1, 1))
    mid = slice(1, -1)
    y = (c * u[:, mid, mid, mid] + w * u[:, :-2, mid, mid] + e * u[:, 2:, mid, mid]
         + s * u[:, mid, :-2, mid] + n * u[:, mid, 2:, mid] + d * u[:, mid, mid, :-2]
         + t * u[:, mid, mid, 2:])
    return y.reshape(x.shape)


def embed3d(x, resolution):
    """Interior unknowns ``x (..., m³)`` on the full ``(..., R, R, R)`` grid, zero boundary."""
    m = resolution - 2
    u = x.new_zeros(*x.shape[:-1], resolution, resolution, resolution)
    u[..., 1:-1, 1:-1, 1:-1] = x.reshape(*x.shape[:-1], m, m, m)
    return u


def forcing_vector3d(f, resolution, device, *, like, samples=None):
    """The right-hand side ``f`` at the unknowns, float64 on ``device``.

    Parameters
    ----------
    f : float or Tensor, shape (R, R, R)
        A constant, or values at the nodes (boundary values unused); finite.
    resolution : int
    device : torch.device
    like : str
        Name of the argument whose grid ``f`` must match (for the error message).
    samples : int, optional
        Repeat ``f`` for a block of that many samples.

    Returns
    -------
    Tensor, shape (m³,), or (samples, m³)
    """
    if isinstance(f, torch.Tensor):
        if not f.is_floating_point():
            raise TypeError(f"f must be a floating-point tensor or a real number, got {f.dtype}")
        if tuple(f.shape) != (resolution,) * 3:
            raise ValueError(f"f must have shape {(resolution,) * 3} like {like}, got "
                             f"{tuple(f.shape)}")
        if not bool(torch.isfinite(f).all()):
            raise ValueError("f must be finite, got NaN or inf values")
        b = f[1:-1, 1:-1, 1:-1].reshape(-1).to(device=device, dtype=torch.float64)
    else:
        b = torch.full(((resolution - 2) ** 3,), check_real("f", f), dtype=torch.float64,
                       device=device)
    return b if samples is None else b.expand(samples, -1).clone()


class GridFamily3D(GridFamily):
    """:class:`.fdm.GridFamily` on the unit cube: fields ``(n, R, R, R)``, ``dim = 3``."""

    dim = 3

    def grid_shape(self, resolution):
        """Shape ``(R − 2, R − 2, R − 2)`` of the grid of unknowns (row-major, first axis x)."""
        check_resolution(resolution)
        return (resolution - 2,) * 3

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
            if value.ndim != 4 or len(set(value.shape[1:])) != 1 or value.shape[0] < 1 or (
                    n is not None and value.shape[0] != n) or (
                    resolution is not None and value.shape[1] != resolution):
                raise ValueError(f"params[{key!r}] must have shape (n, R, R, R) like the other "
                                 f"fields, got {tuple(value.shape)}")
            n, resolution = value.shape[0], value.shape[1]
        check_resolution(resolution)
        return n, resolution
