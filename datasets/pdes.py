"""PDE families by name: the registry :data:`PDES` and :func:`get_pde`.

A family (one per file: :mod:`.darcy`, :mod:`.poisson`, :mod:`.helmholtz`, :mod:`.heat`,
:mod:`.convection_diffusion`, and on the unit cube :mod:`.darcy3d`,
:mod:`.convection_diffusion3d`, :mod:`.helmholtz3d`) is a class with

- ``name``, ``in_channels``, ``out_channels``; ``time_steps`` (None when stationary, else the
  number T of stored steps: outputs are ``(n, C_out, T, R, R)``); ``spd`` (every system is
  symmetric positive definite, so CG applies); ``matrix_varies`` (False: all samples share one
  matrix, so one factorization or preconditioner serves them all);
- ``to_dict()``: its constructor options, JSON-ready;
- ``sample_params(n, resolution, generator=None, device=None)``: the random parameters of
  ``n`` samples, a dict of float64 tensors with leading axis ``n``; the same generator state
  gives the same parameters;
- ``inputs(params)``: the network's input channels ``(n, C_in, R, R)``;
- ``sort_features(params)``: the raw parameter field SKR sorts on, ``(n, d)``;
- ``grid_shape(resolution)``: the grid of unknowns, row-major;
- ``solve(params, linear_solve)``: assembles the block's systems on the parameters' device,
  calls ``linear_solve(As, B, X0=None) -> X`` (``As`` a list of n torch sparse CSR float64
  matrices, the same tensor object repeated where the matrix does not change; ``B, X0, X`` of
  shape ``(n, N)``) and returns the solutions on the full grid.

All discretize on the nodes ``x_i = i/(R − 1)`` of the unit square, boundary included, with
the second-order five-point stencils of :mod:`.fdm`; the 3-D families (``dim = 3``) on the
unit cube with the seven-point stencils of :mod:`.fdm3d`, their fields ``(n, C, R, R, R)``
and their unknowns ``(R − 2)³``.
"""
import inspect

from .convection_diffusion import ConvectionDiffusion
from .convection_diffusion3d import ConvectionDiffusion3D
from .darcy import Darcy
from .darcy3d import Darcy3D
from .heat import Heat
from .helmholtz import Helmholtz
from .helmholtz3d import Helmholtz3D
from .poisson import Poisson

__all__ = ["Darcy", "Poisson", "Helmholtz", "Heat", "ConvectionDiffusion", "Darcy3D",
           "ConvectionDiffusion3D", "Helmholtz3D", "PDES", "get_pde"]

PDES = {family.name: family for family in (Darcy, Poisson, Helmholtz, Heat,
                                            ConvectionDiffusion, Darcy3D,
                                            ConvectionDiffusion3D, Helmholtz3D)}


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
