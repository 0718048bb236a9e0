"""The dataset generator: sample parameters, order, assemble, solve, write a resumable HDF5 file.

Recipe: the FNO paper's data pipeline (Li et al., "Fourier Neural Operator for Parametric
Partial Differential Equations", ICLR 2021): draw parameters from a GRF, solve on a fine
grid, subsample to the training resolution, split train/test. The pieces are composed at the
call: a PDE family (:mod:`sciml.datasets.pdes`) assembles the systems of a block of samples,
an ordering (:mod:`sciml.datasets.sorting`) decides in which order they are solved, and a
linear solver (:data:`sciml.datasets.LINEAR_SOLVERS`) with an optional preconditioner solves
them, one at a time (carrying GCRO-DR's recycled space from system to system, the SKR method
of Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
Recycling", ICLR 2024) or a block at once on a GPU.

Randomness. The samples are cut into chunks of ``chunk_size``; chunk ``k`` draws its
parameters from a ``torch.Generator`` seeded with
``numpy.random.SeedSequence([seed, k]).generate_state(1, uint64)``, so a chunk does not
depend on which chunks ran before it, in this process or another. Sorting and recycling act
within a chunk, and the recycled space is dropped at each chunk's start, so a chunk's
solutions are a pure function of ``(seed, k)`` and the configuration too.

Crash safety. HDF5 has no journal, so a kill during a write can corrupt the file being
written. Each finished chunk is therefore written as a small HDF5 file
``<out>.parts/chunk_<k>.h5`` under a temporary name, flushed with ``fsync`` and moved into
place with :func:`os.replace` (atomic on POSIX); ``<out>.parts/config.json`` records the
configuration. When every chunk exists they are merged into ``<out>.tmp``, which is moved
onto ``out``, and the parts folder is removed. A rerun, after any crash including SIGKILL,
skips the chunks already written and gives the same file as an uninterrupted run.

Several processes. Under ``torchrun`` rank ``r`` of ``w`` solves the chunks ``k ≡ r (mod w)``
into the shared parts folder, and rank 0 merges them once all ranks are done: the file is the
one a single process writes.

Unconverged solves. A solve that misses the tolerance is retried with the ``fallback`` solver
(the direct solver by default) and marked ``solver/fallback``; a sample that still misses it
is kept, flagged ``solver/converged = False`` with its true residual; the file's
``n_unconverged`` attribute counts them and :func:`generate` emits a :class:`RuntimeWarning`.
Raising instead would make the run impossible to finish (the same seed fails the same way
every time); readers filter on ``solver/converged``.
"""
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import sciml
from sciml import distributed

from .hdf5 import FORMAT_VERSION, _fsync, merge_parts, read_config, write_part
from . import krylov
from .krylov import PRECONDITIONERS
from .linsolve import DirectFactorization, get_linear_solver
from .pdes import get_pde
from .sorting import ORDERINGS, get_ordering

__all__ = ["generate", "choose_method", "BlockSolver"]

_DTYPES = {"float32": np.float32, "float64": np.float64}
_DIAGNOSTICS = {"iterations": np.int64, "matvecs": np.int64, "residual": np.float64,
                "converged": np.bool_, "seconds": np.float64, "fallback": np.bool_}
#: solvers with a batched form in :mod:`sciml.datasets.krylov`, used when ``batch > 1``
BATCHED = {"cg": "cg_batched", "gmres": "gmres_batched"}
_CPU_ONLY = {"amg", "ilu", "lu"}
_SYMMETRIC = {"none", "jacobi", "chebyshev", "mg", "amg", "lu"}


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_device(device):
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be a device string such as 'cpu' or 'cuda:0', got "
                         f"{device!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {str(device)!r} but CUDA is not available")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be a CPU or CUDA device, got {str(device)!r}")
    return device


def choose_method(family, device, solver="auto", precond="auto", order="auto", batch=None,
                  chunk_size=32):
    """Resolve ``"auto"`` choices into the method :func:`generate` runs, and say why.

    The rules follow ``benchmarks/datagen.py`` (results in ``benchmarks/results/datagen_*``):

    - symmetric positive definite families: CG preconditioned by the geometric multigrid
      V-cycle (8–9 iterations at every grid size, against hundreds with Jacobi), on blocks of
      a chunk's systems at once (batched CG on a stacked multigrid) — on a GPU always (one
      system alone leaves it idle), on the CPU where each matrix serves one solve (Darcy: 1.27×
      faster than SuperLU at 128², 1.14× at 80², on one core);
    - otherwise the sparse direct solver (SuperLU): on the CPU where one factorization serves
      many solves (Poisson's shared matrix, the heat equation's time steps), and for families
      that are not SPD (non-symmetric, indefinite), where on the Helmholtz systems it was over
      100 times faster than any Krylov method including SKR (whose GMRES(40) baseline stalls
      at its iteration cap);
    - ``solver="skr"`` is GCRO-DR in the greedy order (the SKR method).

    Returns
    -------
    dict
        ``{"solver", "precond", "order", "batch", "reason"}`` with every choice resolved.

    Raises
    ------
    ValueError
        For a combination that cannot work (named in the message): CG on a family that is not
        SPD, a CPU-only solver or preconditioner on CUDA, a non-symmetric preconditioner
        with CG, a batch larger than a chunk or without a batched solver.
    """
    reasons = []
    if solver == "skr":
        solver, order = "gcrodr", ("greedy" if order == "auto" else order)
        reasons.append("SKR: GCRO-DR with the recycled space carried along the greedy order")
    if solver == "auto":
        one_solve_per_matrix = family.matrix_varies and family.time_steps is None
        if family.spd and (device.type == "cuda" or one_solve_per_matrix):
            solver, precond = "cg", ("mg" if precond == "auto" else precond)
            batch = chunk_size if batch is None else batch
            reasons.append("SPD: batched CG with the geometric multigrid preconditioner")
        else:
            solver = "direct"
            reasons.append("not SPD: sparse LU" if not family.spd
                           else "CPU, a matrix serves several solves: sparse LU")
    if solver == "direct" and not family.matrix_varies:
        reasons.append("one factorization for all samples")
    if precond == "auto":
        precond = "none" if solver in ("direct", "amg") else ("jacobi" if device.type == "cuda" else "none")
    if order == "auto":
        order = "identity"
    batch = 1 if batch is None else _check_int("batch", batch, 1)
    if batch > chunk_size:
        raise ValueError(f"batch must be <= chunk_size={chunk_size} (blocks are cut within a "
                         f"chunk), got batch={batch}; raise chunk_size")
    if batch > 1 and solver not in BATCHED and solver != "direct":
        raise ValueError(f"batch > 1 needs a batched solver ({', '.join(BATCHED)}) or 'direct', "
                         f"got solver={solver!r} with batch={batch}")
    if solver == "cg" and not family.spd:
        raise ValueError(f"solver 'cg' needs symmetric positive definite systems; PDE "
                         f"{family.name!r} is not (use gmres, gmresdr, gcrodr or direct)")
    get_linear_solver(solver)
    if precond not in PRECONDITIONERS:
        raise ValueError(f"unknown preconditioner {precond!r}; expected one of: "
                         f"{', '.join(sorted(PRECONDITIONERS))}")
    if precond != "none" and solver in ("direct", "amg"):
        raise ValueError(f"precond={precond!r} does not apply to solver {solver!r}")
    if device.type == "cuda" and (solver == "amg" or precond in _CPU_ONLY):
        raise ValueError(f"solver={solver!r} with precond={precond!r} runs on the CPU only "
                         f"(scipy/pyamg); on CUDA use jacobi, chebyshev or mg")
    if solver == "cg" and precond not in _SYMMETRIC:
        raise ValueError(f"precond={precond!r} is not symmetric, which CG needs; use one of "
                         f"{', '.join(sorted(_SYMMETRIC))}")
    get_ordering(order)
    return {"solver": solver, "precond": precond, "order": order, "batch": batch,
            "reason": "; ".join(reasons) or "as requested"}


class BlockSolver:
    """The ``linear_solve`` a PDE family calls: solves blocks of systems, records diagnostics.

    ``block_solver(As, B, X0=None) -> X`` with ``As`` a list of ``s`` matrices and ``B``,
    ``X0``, ``X`` of shape ``(s, N)``. Diagnostics accumulate per sample over every call until
    the next :meth:`start_block` (a time-dependent family calls it once per time step):
    iterations, matrix products and seconds are summed, the residual is the largest, converged
    holds if every solve converged.

    Parameters
    ----------
    solver, precond : str
        Names in :data:`LINEAR_SOLVERS` and :data:`sciml.datasets.krylov.PRECONDITIONERS`.
    batch : int
        Systems per block; above 1 the block is solved at once by the batched solver.
    rtol : float
    maxiter : int or None
    fallback : str or None
        Solver retried on a system that missed ``rtol``.
    grid_shape : tuple of int
        The unknowns' grid, for the geometric multigrid preconditioner.
    """

    def __init__(self, solver, precond, batch, rtol, maxiter, fallback, grid_shape):
        self.name, self.precond, self.batch = solver, precond, batch
        self.solve = get_linear_solver(solver)
        self.fallback = None if fallback is None else get_linear_solver(fallback)
        self.options = {"rtol": rtol, "maxiter": maxiter}
        self.grid_shape = grid_shape
        self.recycle = None
        self._cache = {}  # (ids of the matrices, builder) -> (matrices, what it built); one entry
        self.diagnostics = {}

    def reset(self):
        """Forget the recycled space (at a chunk's start, so chunks do not depend on each other).

        Cached factorizations and preconditioners stay: they are functions of the matrix.
        """
        self.recycle = None

    def start_block(self, size):
        """Zero the per-sample diagnostics of a new block of ``size`` samples."""
        self.diagnostics = {name: np.zeros(size, dtype) for name, dtype in _DIAGNOSTICS.items()}
        self.diagnostics["converged"][:] = True

    def _cached(self, As, build):
        """``build(As)``, done once per list of matrix objects: samples and time steps that
        share matrices reuse it.

        The cache holds the matrices too, so their ``id`` cannot be reused meanwhile.
        """
        key = (tuple(map(id, As)), build)
        if key not in self._cache:
            self._cache = {key: (As, build(As))}
        return self._cache[key][1]

    def _preconditioner(self, A):
        if self.precond == "none":
            return None
        return self._cached([A], self._build_preconditioner)

    def _build_preconditioner(self, As):
        return PRECONDITIONERS[self.precond](As[0], grid_shape=self.grid_shape)

    def _block_preconditioner(self, As):
        """``M`` on ``(s, N)`` blocks: the preconditioner of the block-diagonal matrix.

        The geometric multigrid gets the stacked grid shape ``(s, ny, nx)``.
        """
        apply = PRECONDITIONERS[self.precond](krylov.block_diagonal(As),
                                              grid_shape=(len(As), *self.grid_shape))
        return None if apply is None else (lambda V: apply(V.reshape(-1)).reshape(V.shape))

    def _factorization(self, As):
        return DirectFactorization(As[0])

    def __call__(self, As, B, X0=None):
        if len(As) != B.shape[0] or B.shape[0] != len(self.diagnostics["converged"]):
            raise ValueError(f"linear_solve got {len(As)} matrices and B of shape "
                             f"{tuple(B.shape)} for a block of "
                             f"{len(self.diagnostics['converged'])} samples")
        if self.batch > 1 and self.name in BATCHED:
            batched = getattr(krylov, BATCHED[self.name])
            # On a GPU, read the convergence flags every 10 iterations instead of every one:
            # the counts stay exact (converged systems are masked on the device).
            results = batched(As, B, X0=X0, M=self._cached(As, self._block_preconditioner),
                              check_every=10 if B.is_cuda else 1, **self.options)
        elif self.name == "direct" and _shared(As):
            results = self._cached(As[:1], self._factorization).solve(B, **self.options)
        else:
            results = []
            for i, A in enumerate(As):
                options = dict(self.options, x0=None if X0 is None else X0[i])
                if self.name == "gcrodr":
                    options["recycle"] = self.recycle
                if self.precond != "none":
                    options["M"] = self._preconditioner(A)
                result = self.solve(A, B[i], **options)
                if self.name == "gcrodr":
                    self.recycle = result.recycle
                results.append(result)
        X = torch.empty_like(B)
        d = self.diagnostics
        for i, result in enumerate(results):
            if not result.converged and self.fallback is not None:
                # The failed attempt's work stays in the counts: it was spent.
                d["iterations"][i] += result.iterations
                d["matvecs"][i] += result.matvecs
                d["seconds"][i] += result.seconds
                result = self.fallback(As[i], B[i], **self.options)
                d["fallback"][i] = True
            X[i] = result.x
            d["iterations"][i] += result.iterations
            d["matvecs"][i] += result.matvecs
            d["seconds"][i] += result.seconds
            d["residual"][i] = np.maximum(d["residual"][i], result.residual)  # keeps a NaN
            d["converged"][i] &= result.converged
        return X


def _shared(As):
    return all(A is As[0] for A in As)


def _chunk_seed(seed, k):
    # Independent of chunk order and of resumption: a pure function of (seed, k).
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint64)[0])


def _differences(stored, config, prefix=""):
    keys = []
    for key in sorted(set(stored) | set(config)):
        a, b = stored.get(key), config.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key} ({a!r} != {b!r})")
    return keys


def _write_json(path, value):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True))
    _fsync(tmp)
    os.replace(tmp, path)


def _subsample(value, fine, stride):
    """Keep every ``stride``-th node of a field on the fine grid (its last two axes)."""
    if value.ndim >= 3 and value.shape[-2:] == (fine, fine):
        return value[..., ::stride, ::stride]
    return value


def _solve_chunk(family, block_solver, config, k, count, device, bar):
    """Sample, order, assemble and solve one chunk; the arrays of its part file."""
    fine, coarse = config["solve_resolution"], config["resolution"]
    stride = (fine - 1) // (coarse - 1)
    generator = torch.Generator().manual_seed(_chunk_seed(config["seed"], k))
    params = family.sample_params(count, fine, generator=generator, device=device)
    perm = get_ordering(config["order"])(family.sort_features(params)).cpu()
    block_solver.reset()
    outputs = None
    diagnostics = {name: np.zeros(count, dtype) for name, dtype in _DIAGNOSTICS.items()}
    iterations = 0
    for start in range(0, count, config["batch"]):
        idx = perm[start:start + config["batch"]]
        block_solver.start_block(len(idx))
        u = family.solve({key: value[idx.to(value.device)] for key, value in params.items()},
                         block_solver)
        if outputs is None:
            outputs = u.new_empty((count, *u.shape[1:]))
        outputs[idx.to(u.device)] = u
        for name, column in block_solver.diagnostics.items():
            diagnostics[name][idx.numpy()] = column
        iterations += int(block_solver.diagnostics["iterations"].sum())
        bar.update(len(idx))
        bar.set_postfix(iterations=f"{iterations / (start + len(idx)):.1f}", refresh=False)
    # Where each sample stands in the solve order: stored, so the order is re-derivable.
    diagnostics["position"] = np.empty(count, np.int64)
    diagnostics["position"][perm.numpy()] = np.arange(count) + k * config["chunk_size"]
    dtype = _DTYPES[config["dtype"]]
    arrays = {"inputs": _subsample(family.inputs(params).cpu().numpy(), fine, stride).astype(dtype),
              "outputs": _subsample(outputs.cpu().numpy(), fine, stride).astype(dtype)}
    arrays.update({f"params/{key}": _subsample(value.cpu().numpy(), fine, stride)
                   for key, value in params.items()})
    arrays.update({f"solver/{name}": column for name, column in diagnostics.items()})
    return arrays


def generate(pde="darcy", n=1100, resolution=85, out=None, *, seed=0, n_test=None,
             solve_resolution=None, chunk_size=32, dtype="float32", device="cpu",
             solver="auto", precond="auto", order="auto", batch=None, rtol=1e-8, maxiter=None,
             fallback="direct", overwrite=False, progress=True, callback=None, **pde_options):
    """Generate a PDE dataset into the HDF5 file ``out``, resuming an interrupted run.

    Parameters
    ----------
    pde : str
        A key of :data:`sciml.datasets.PDES`.
    n : int
        Number of samples (≥ 2); default 1100, the FNO paper's 1000 train + 100 test.
    resolution : int
        Nodes per side of the stored grid, boundary included (≥ 3).
    out : path-like
        The file to write (required).
    seed : int
        Non-negative seed; the same seed and configuration give the same arrays.
    n_test : int, optional
        Size of the test split, the last ``n_test`` samples (1 ≤ n_test < n);
        default ``max(1, n // 10)``.
    solve_resolution : int, optional
        Solve on this finer grid and keep every ``(solve_resolution − 1) / (resolution − 1)``
        -th node; must make that ratio an integer. Default: ``resolution``.
    chunk_size : int
        Samples per chunk, the unit of resumption and of sorting (≥ 1).
    dtype : {"float32", "float64"}
        Dtype of ``inputs`` and ``outputs`` (parameters are stored in float64).
    device : str or torch.device
        Where parameters are sampled, systems assembled and (iteratively) solved.
    solver : str
        ``"auto"`` (:func:`choose_method`), ``"skr"`` (GCRO-DR in the greedy order), or a key
        of :data:`sciml.datasets.LINEAR_SOLVERS` (``"gcrodr"``, ``"gmresdr"``, ``"gmres"``,
        ``"cg"``, ``"amg"``, ``"direct"``).
    precond : str
        ``"auto"`` or a key of :data:`sciml.datasets.krylov.PRECONDITIONERS`.
    order : {"auto", "greedy", "identity"}
        Order in which a chunk's systems are solved (:mod:`sciml.datasets.sorting`).
    batch : int, optional
        Systems solved at once by the batched solvers (≤ ``chunk_size``; default: the chunk
        for the GPU default, else 1).
    rtol : float
        Relative tolerance of the true residual, in (0, 1).
    maxiter : int, optional
        Iteration cap of the iterative solvers (their default when None).
    fallback : str or None
        Solver retried on a system that missed ``rtol`` (default ``"direct"``; None: none).
    overwrite : bool
        Replace an existing ``out`` or parts folder of a different configuration, and
        regenerate an existing complete ``out``. The old ``out`` stays until the new file is
        complete.
    progress : bool
        Show a progress bar over samples (samples/s, mean iterations).
    callback : callable, optional
        ``callback(chunk_index, n_done)`` after each chunk written by this call, with
        ``n_done`` the number of samples finished so far (resumed ones included).
    **pde_options
        Options of the PDE family, e.g. ``coefficient="lognormal"`` for Darcy.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ValueError
        On invalid arguments (before the disk is touched), or if ``out`` or
        ``<out>.parts`` holds another configuration and ``overwrite`` is false (nothing is
        touched then).
    """
    # Validation at the door: nothing below touches the disk before all of it passes.
    if out is None:
        raise TypeError("generate() needs out, the path of the HDF5 file to write")
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or path-like, got {type(out).__name__}")
    n = _check_int("n", n, 2)
    resolution = _check_int("resolution", resolution, 3)
    n_test = max(1, n // 10) if n_test is None else _check_int("n_test", n_test, 1)
    if n_test >= n:
        raise ValueError(f"n_test must be < n={n} (at least one training sample), got {n_test}")
    if solve_resolution is None:
        solve_resolution = resolution
    solve_resolution = _check_int("solve_resolution", solve_resolution, resolution)
    if (solve_resolution - 1) % (resolution - 1):
        raise ValueError(f"solve_resolution - 1 must be a multiple of resolution - 1 = "
                         f"{resolution - 1}, got solve_resolution={solve_resolution}")
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    seed = _check_int("seed", seed, 0)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    device = _check_device(device)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    if maxiter is not None:
        maxiter = _check_int("maxiter", maxiter, 1)
    if fallback is not None:
        get_linear_solver(fallback)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if solver not in ("auto", "skr"):
        get_linear_solver(solver)
    if order != "auto" and order not in ORDERINGS:
        raise ValueError(f"unknown order {order!r}; expected 'auto' or one of: "
                         f"{', '.join(sorted(ORDERINGS))}")
    family = get_pde(pde, **pde_options)
    method = choose_method(family, device, solver, precond, order, batch, chunk_size)

    config = {"pde": pde, "pde_options": family.to_dict(), "n": n, "n_test": n_test,
              "resolution": resolution, "solve_resolution": solve_resolution,
              "chunk_size": chunk_size, "dtype": dtype, "rtol": float(rtol), "maxiter": maxiter,
              "fallback": fallback, "seed": seed, "format_version": FORMAT_VERSION,
              **{key: method[key] for key in ("solver", "precond", "order", "batch")}}
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    merged = out.with_name(out.name + ".tmp")
    info = distributed.setup(use_cuda=device.type == "cuda")
    if device.type == "cuda" and device.index is None and info.enabled:
        device = torch.device("cuda", info.local_rank)

    # Rank 0 alone checks and prepares the parts folder; the others learn the outcome.
    error, finished = None, False
    if info.is_main:
        try:
            finished = _prepare(out, parts, config, overwrite)
        except ValueError as caught:
            error = caught
    error, finished = _broadcast((error, finished), info)
    if error is not None:
        raise error
    if finished:
        return out

    n_chunks = -(-n // chunk_size)
    paths = [parts / f"chunk_{k:06d}.h5" for k in range(n_chunks)]
    counts = [min(chunk_size, n - k * chunk_size) for k in range(n_chunks)]
    mine = [k for k in range(n_chunks) if k % info.world_size == info.rank]
    done = sum(counts[k] for k in range(n_chunks) if paths[k].exists())
    grid_shape = family.grid_shape(solve_resolution)
    block_solver = BlockSolver(method["solver"], method["precond"], method["batch"], rtol,
                               maxiter, fallback, grid_shape)
    with tqdm(total=sum(counts[k] for k in mine), disable=not progress or not info.is_main,
              unit="sample", desc=f"{pde} {resolution}² {method['solver']}") as bar:
        bar.update(sum(counts[k] for k in mine if paths[k].exists()))
        for k in mine:
            if paths[k].exists():
                continue
            write_part(paths[k], _solve_chunk(family, block_solver, config, k, counts[k],
                                              device, bar))
            done += counts[k]
            if callback is not None:
                callback(k, done)
    _barrier(info)
    unconverged = 0
    if info.is_main:
        x = np.linspace(0.0, 1.0, resolution)
        attrs = {"pde": pde, "config": config, "seed": seed, "sciml_version": sciml.__version__,
                 "format_version": FORMAT_VERSION, "n_train": n - n_test, "n_test": n_test,
                 "method": method["reason"]}
        unconverged = merge_parts(paths, merged, attrs=attrs, grid={"x": x, "y": x})
        os.replace(merged, out)
        shutil.rmtree(parts)
    _barrier(info)
    if unconverged:
        warnings.warn(f"{unconverged} of {n} samples in {str(out)!r} did not reach rtol={rtol} "
                      f"with solver {method['solver']!r}; they are flagged "
                      f"solver/converged = False", RuntimeWarning, stacklevel=2)
    return out


def _broadcast(value, info):
    if not info.enabled:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _barrier(info):
    if info.enabled:
        torch.distributed.barrier()


def _prepare(out, parts, config, overwrite):
    """Check ``out`` and ``parts`` against ``config``; True if ``out`` is already complete."""
    if out.exists():
        try:
            stored = read_config(out)
        except ValueError as error:
            if not overwrite:
                raise ValueError(f"out={str(out)!r} exists and is not a sciml dataset file "
                                 f"({error}); pass overwrite=True to replace it") from None
        else:
            if stored == config and not overwrite:
                return True
            if stored != config and not overwrite:
                raise ValueError(f"out={str(out)!r} exists with a different configuration; "
                                 f"differing keys: {'; '.join(_differences(stored, config))}. "
                                 f"Pass overwrite=True to replace it")
    if parts.exists():
        _check_parts(parts, out, config, overwrite)
    parts.mkdir(parents=True, exist_ok=True)
    _write_json(parts / "config.json", config)
    for stale in parts.glob("*.tmp"):
        stale.unlink()
    return False


def _check_parts(parts, out, config, overwrite):
    """Accept ``parts`` for resumption, clear it (``overwrite``), or raise."""
    config_path = parts / "config.json"
    if config_path.exists():
        try:
            stored = json.loads(config_path.read_text())
        except json.JSONDecodeError:
            stored = {}
        if stored == config:
            return
        reason = f"differing keys: {'; '.join(_differences(stored, config))}"
    elif not any(p.suffix != ".tmp" for p in parts.iterdir()):
        return  # Killed before config.json was written: nothing to keep.
    else:
        reason = "it has no config.json"
    if not overwrite:
        raise ValueError(f"out={str(out)!r} has an unfinished run in {str(parts)!r} with a "
                         f"different configuration ({reason}). Pass overwrite=True to discard "
                         f"it, or delete the folder")
    shutil.rmtree(parts)
