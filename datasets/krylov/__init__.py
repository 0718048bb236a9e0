"""Krylov solvers and preconditioners in torch, on the device and dtype of their inputs.

Solvers share scipy's signature ``solver(A, b, *, x0=None, rtol=1e-5, atol=0.0,
maxiter=None, M=None, callback=None, **options) -> SolveResult``; ``A`` is a torch sparse
CSR or dense tensor or a callable ``v -> A v``, ``M`` a callable ``v -> M⁻¹ v`` applied on
the right for the GMRES family. They are registered by name in
:data:`sciml.datasets.LINEAR_SOLVERS`.

Preconditioners are built once and applied many times: :data:`PRECONDITIONERS` maps a name
to ``build(A, *, grid_shape=None, **options) -> callable v -> M⁻¹ v`` (``"none"`` builds
``None``, which every solver reads as the identity). Jacobi, Chebyshev and multigrid run on
the device of ``A``; pyamg's AMG, ILU and a reusable sparse LU (``"lu"``, for families whose
matrix never changes: :class:`~sciml.datasets.linsolve.DirectFactorization`'s) run on the
CPU and refuse CUDA tensors.

``"gsmg"`` (:func:`gs_multigrid`: geometric multigrid with multicolour Gauss–Seidel, 2-D and
3-D, for non-symmetric systems too) and ``"slmg"`` (:func:`shifted_laplacian`: its V-cycle on
the shifted Laplacian, for Helmholtz) precondition GMRES-DR and GCRO-DR on any device;
``"gsmg32"`` and ``"slmg32"`` hold their hierarchy in float32 (mixed precision; the solver's
residuals stay float64). :func:`gpu_direct` is the sparse direct solve on the GPU (cuDSS
through ``torch.sparse.spsolve``), a baseline that says when it is unavailable.

:func:`gcro_dr_batched` solves a block of systems at once by GCRO-DR, carrying the recycled
space from block to block along SKR's order (per-system preconditioners).

Blocks of systems are solved at once by :func:`cg_batched` and :func:`gmres_batched` (the
matrices stacked by :func:`block_diagonal`; ``multigrid(stack, grid_shape=(s, ny, nx))``
preconditions such a stack).

The single-system CG and the batched solvers take ``check_every`` (default 1): the host reads
the convergence test, a device synchronization on CUDA, only every that many iterations;
converged systems are masked on the device, so solutions and iteration counts do not depend
on it. On a GPU, ``check_every=10`` to ``20`` removes most synchronizations.

Each solver and preconditioner lives in a module of its own name, and the package exports
the function under that name, so ``sciml.datasets.krylov.gmres_dr`` is the function, not the
module. ``from sciml.datasets.krylov.gmres_dr import check_m_k`` still reaches the module
(``from`` imports look in ``sys.modules``), as does ``importlib.import_module``.

>>> from sciml.datasets.krylov import gcro_dr, PRECONDITIONERS
>>> M = PRECONDITIONERS["mg"](A, grid_shape=(48, 48))                 # doctest: +SKIP
>>> first = gcro_dr(A1, b1, rtol=1e-8, M=M)                           # doctest: +SKIP
>>> second = gcro_dr(A2, b2, rtol=1e-8, recycle=first.recycle)       # doctest: +SKIP
"""
import torch

from .amg import amg, amg_cg
from .batched import block_diagonal, cg_batched, gmres_batched
from .cg import cg
from .chebyshev import chebyshev
from .cudss import gpu_direct, gpu_direct_available
from .gcro_dr import RecycleSpace, gcro_dr
from .gcro_dr_batched import gcro_dr_batched
from .gmres import gmres
from .gmres_dr import gmres_dr
from .gs_multigrid import gs_multigrid
from .ilu import ilu
from .jacobi import jacobi
from .lu import lu
from .multigrid import multigrid
from .shifted_laplacian import shifted_laplacian


def _no_preconditioner(A, *, grid_shape=None):
    """The identity: ``None``, which the solvers skip."""
    return None


def _float32(build):
    """``build`` with its hierarchy in float32: mixed precision inside a float64 solve."""
    def build32(A, *, grid_shape=None):
        return build(A, grid_shape=grid_shape, dtype=torch.float32)
    build32.__doc__ = f"{build.__name__} in float32 (mixed precision)."
    return build32


PRECONDITIONERS = {"none": _no_preconditioner, "jacobi": jacobi, "chebyshev": chebyshev,
                   "mg": multigrid, "amg": amg, "ilu": ilu, "lu": lu, "gsmg": gs_multigrid,
                   "gsmg32": _float32(gs_multigrid), "slmg": shifted_laplacian,
                   "slmg32": _float32(shifted_laplacian)}

__all__ = ["gmres", "gmres_dr", "gcro_dr", "gcro_dr_batched", "RecycleSpace", "cg", "amg_cg", "cg_batched",
           "gmres_batched", "block_diagonal", "jacobi", "chebyshev", "multigrid", "amg", "ilu",
           "lu", "gs_multigrid", "shifted_laplacian", "gpu_direct", "gpu_direct_available",
           "PRECONDITIONERS"]
