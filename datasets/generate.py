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

The pipeline (:mod:`.pipeline` names each stage and times it):

    sample (on the device) → order → assemble + solve (block by block) → subsample, cast,
    copy to pinned host memory → [writer thread] compress once → part file → final file

While the writer thread compresses and writes chunk ``k`` (:mod:`.writer`), the caller samples,
assembles and solves chunk ``k + 1``; the queue between them holds at most one chunk, so the
host memory for writing is at most two chunks of stored arrays (at 130², float32 fields and
the float64 GRF: about 270 kB per sample, 0.55 GB for two chunks of 1024).

Randomness. The samples are cut into chunks of ``chunk_size``; chunk ``k`` draws its
parameters from a ``torch.Generator`` on the device seeded with
``numpy.random.SeedSequence([seed, k]).generate_state(1, uint64)``, so a chunk does not
depend on which chunks ran before it, in this process or another. Sorting and recycling act
within a chunk, and the recycled space is dropped at each chunk's start, so a chunk's
solutions are a pure function of ``(seed, k)`` and the configuration too. The same seed gives
the same file on the same kind of device; a CPU file and a CUDA file differ (torch's CPU and
CUDA generators draw different streams), and the file's ``rng_device`` attribute says which.

Crash safety and one compression per sample: see :mod:`.writer`. Each finished chunk is made
durable as ``<out>.parts/chunk_<k>.h5`` (written under a temporary name, synced, renamed);
``<out>.parts/config.json`` records the configuration; the samples' chunks are compressed
once and copied as stored into the final file, which is moved onto ``out`` when complete. A
rerun, after any crash including SIGKILL, skips the chunks already written and gives the same
file as an uninterrupted run (the timings in ``solver/seconds`` and ``solver/stage_seconds``
aside). ``<out>.lock`` keeps a second run off the same output while one runs.

Several processes. Under ``torchrun`` rank ``r`` of ``w`` solves the chunks ``k ≡ r (mod w)``
into the shared parts folder, and rank 0 assembles the file once all ranks are done: the file
is the one a single process writes.

Unconverged solves. A solve that misses the tolerance is retried with the ``fallback`` solver
(the direct solver by default) and marked ``solver/fallback``; a sample that still misses it
is kept, flagged ``solver/converged = False`` with its true residual; the file's
``n_unconverged`` attribute counts them and :func:`generate` emits a :class:`RuntimeWarning`.
Raising instead would make the run impossible to finish (the same seed fails the same way
every time); readers filter on ``solver/converged``.
"""
import errno
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

from .block_solver import BATCHED, PER_SYSTEM_PRECONDITIONER, BlockSolver
from .compression import check_compression
from .hdf5 import FORMAT_VERSION, read_config
from .krylov import PRECONDITIONERS, gpu_direct_available
from .linsolve import get_linear_solver
from .pdes import get_pde
from .pipeline import STORED_DTYPES, StageTimer, sample_chunk, solve_chunk, to_host
from .sorting import ORDERINGS, get_ordering
from .writer import BackgroundWriter, DatasetWriter, OutputLock, fsync_path, remove_orphans, \
    temporary_name

__all__ = ["generate", "choose_method", "BlockSolver"]

#: Largest default block of the batched solvers on the CPU.
CPU_BATCH = 32
_CPU_ONLY = {"amg", "ilu", "lu"}
_SYMMETRIC = {"none", "jacobi", "chebyshev", "mg", "gsmg", "amg", "lu"}
# Preconditioners built for one grid of any dimension, not for a block-diagonal stack.
_SINGLE_GRID = {"gsmg", "gsmg32", "slmg", "slmg32"}
_SHIFTED_LAPLACIAN = {"slmg", "slmg32"}
# Solvers that take no preconditioner: direct factorizations, and pyamg's own AMG.
_NO_PRECONDITIONER = {"direct", "gpu_direct", "amg"}


def _check_gpu_direct(name, value, device):
    """Refuse ``value="gpu_direct"`` (argument ``name``) where torch cannot run it on ``device``."""
    if value != "gpu_direct":
        return
    available, why = gpu_direct_available(device)
    if not available:
        raise ValueError(f"{name}='gpu_direct' needs torch.sparse.spsolve (a CUDA build with "
                         f"cuDSS), unavailable here: {why}; use 'direct' (SuperLU on the CPU) "
                         f"or a Krylov solver")


def _check_int(name, value, low, high=2 ** 63 - 1):
    # The upper bound is what an HDF5 attribute (int64) can hold.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
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


#: Largest solve resolution (nodes per side) at which GCRO-DR(40, 20) without a
#: preconditioner, recycling along the greedy order, was the fastest correct CPU method:
#: 3-D Helmholtz at 24³ (0.153 s per sample against 0.210 for GMRES-DR + shifted-Laplacian
#: multigrid and 0.768 for SuperLU) and 32³ (within 8% of the multigrid's 0.487 s);
#: benchmarks/results/datagen_scaling_cpu_helmholtz3d_confirm.md.
_RECYCLE_UNPRECONDITIONED = {"helmholtz3d": 34}


def choose_method(family, device, solver="auto", precond="auto", order="auto", batch=None,
                  chunk_size=32, resolution=None):
    """Resolve ``"auto"`` choices into the method :func:`generate` runs, and say why.

    The rules follow ``benchmarks/datagen.py`` (results in ``benchmarks/results/datagen_*``):

    - symmetric positive definite families: CG preconditioned by the geometric multigrid
      V-cycle (8–9 iterations at every grid size, against hundreds with Jacobi), on blocks of
      a chunk's systems at once (batched CG on a stacked multigrid) — on a GPU always (one
      system alone leaves it idle), on the CPU where each matrix serves one solve (Darcy: 1.27×
      faster than SuperLU at 128², 1.14× at 80², on one core), in blocks of at most
      :data:`CPU_BATCH` there;
    - otherwise the sparse direct solver (SuperLU): on the CPU where one factorization serves
      many solves (Poisson's shared matrix, the heat equation's time steps), and for families
      that are not SPD (non-symmetric, indefinite), where on the Helmholtz systems it was over
      100 times faster than any Krylov method including SKR (whose GMRES(40) baseline stalls
      at its iteration cap);
    - 3-D families (``dim = 3``; benchmarks/results/datagen_scaling_cpu*.md): CG (SPD) or
      GMRES-DR (not SPD) with the family's multigrid (``"gsmg"``, Helmholtz ``"slmg"``), one
      system at a time, on either device: SuperLU's 3-D fill-in makes it slower from 16³ on;
      on the CPU, 3-D Helmholtz up to ``resolution`` 34 is solved by GCRO-DR recycling along
      the greedy order without preconditioner, the fastest method measured there;
    - on CUDA, families that are not SPD but name a ``krylov_preconditioner`` (Helmholtz:
      shifted-Laplacian multigrid; convection–diffusion: Gauss–Seidel multigrid) are solved
      on the device by GCRO-DR recycling along the greedy order, not sent to the CPU;
    - ``solver="skr"`` is GCRO-DR in the greedy order (the SKR method); with ``batch > 1``
      its blocks are solved at once (:func:`~sciml.datasets.krylov.gcro_dr_batched`), never
      chosen by ``"auto"``: through :func:`generate` on one CPU thread (3-D Helmholtz, 24³
      and 32³, 16 samples, greedy order) blocks of 4–16 took the same iterations as one
      system at a time but ran 1.2–1.5× slower with the shifted-Laplacian multigrid and
      2.0–4.9× slower without it; it is unmeasured on a GPU.

    ``resolution`` (nodes per side of the solve grid, optional) selects the size-dependent
    rules; without it the size-independent choice is made.

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
    dim = getattr(family, "dim", 2)
    if solver == "skr":
        solver, order = "gcrodr", ("greedy" if order == "auto" else order)
        reasons.append("SKR: GCRO-DR with the recycled space carried along the greedy order")
    if solver == "auto" and dim == 3:
        # 3-D (benchmarks/results/datagen_scaling_cpu.md): SuperLU's fill-in makes it 6.4x
        # slower than CG + Gauss–Seidel multigrid at 16³ and 34x at 32³ (darcy3d rows 18, 34),
        # and 47x slower than GMRES-DR + the same multigrid at 32³ (convection_diffusion3d row
        # 34); pyamg is 0.7x (16³) to 1.8x (64³) the multigrid's time there, 2.5x on Darcy at
        # 64³ (datagen_scaling_cpu_darcy3d_check66.md), and runs on the CPU only. Indefinite
        # 3-D Helmholtz (datagen_scaling_cpu_helmholtz3d_confirm.md): recycling GCRO-DR without
        # preconditioner up to 32³ (see _RECYCLE_UNPRECONDITIONED), GMRES-DR + the
        # shifted-Laplacian multigrid from 40³ (0.90 s against 1.02 for GCRO-DR + the same
        # multigrid, 1.22 recycled without it, 22 for SuperLU).
        recycle_up_to = _RECYCLE_UNPRECONDITIONED.get(family.name, 0)
        if device.type == "cpu" and precond == "auto" and resolution is not None \
                and resolution <= recycle_up_to:
            solver, precond, order = "gcrodr", "none", ("greedy" if order == "auto" else order)
            reasons.append(f"3-D indefinite, at most {recycle_up_to} nodes per side on the "
                           f"CPU: GCRO-DR recycling along the greedy order, no preconditioner "
                           f"(fastest measured there)")
        else:
            precond = family.krylov_preconditioner if precond == "auto" else precond
            solver = "cg" if family.spd else "gmresdr"
            reasons.append("3-D SPD: CG with the Gauss–Seidel multigrid (SuperLU's fill-in "
                           "grows as N^(4/3))" if family.spd else
                           f"3-D, not SPD: GMRES-DR with the {precond} multigrid, on the "
                           f"device")
    elif solver == "auto" and device.type == "cuda" and not family.spd and \
            getattr(family, "krylov_preconditioner", None) is not None:
        # On a GPU the non-symmetric and indefinite systems stay on the device: SuperLU would
        # run them on the CPU. Helmholtz: GCRO-DR(40, 20) with the shifted-Laplacian
        # multigrid in SKR's order, the fastest Krylov method on every CPU row (0.84-0.90x
        # fresh GMRES-DR(40, 20) + the same multigrid at 64²-256², 0.72x at 512²:
        # benchmarks/results/datagen_scaling_cpu*.md, helmholtz); on the CPU SuperLU stays
        # 9-35x faster than it up to 512², so the CPU rule below keeps SuperLU.
        precond = family.krylov_preconditioner if precond == "auto" else precond
        solver, order = "gcrodr", ("greedy" if order == "auto" else order)
        reasons.append(f"CUDA, not SPD: GCRO-DR recycling along the greedy order with "
                       f"{precond} on the device")
    if solver == "auto":
        one_solve_per_matrix = family.matrix_varies and family.time_steps is None
        if family.spd and (device.type == "cuda" or one_solve_per_matrix):
            solver, precond = "cg", ("mg" if precond == "auto" else precond)
            if batch is None and precond in _SINGLE_GRID:
                batch = 1  # one grid's multigrid cannot precondition a stacked block
            elif batch is None:
                # A GPU wants the whole chunk at once; on the CPU blocks larger than 32 run
                # slower per sample (128² Darcy, 2 cores: 75 samples/s solving blocks of 32,
                # 26 with blocks of 256; benchmarks/results/datagen_pipeline_cpu.md).
                batch = chunk_size if device.type == "cuda" else min(chunk_size, CPU_BATCH)
            reasons.append("SPD: batched CG with the geometric multigrid preconditioner"
                           if batch > 1 else f"SPD: CG with the {precond} preconditioner")
        else:
            solver = "direct"
            reasons.append("not SPD: sparse LU" if not family.spd
                           else "CPU, a matrix serves several solves: sparse LU")
    if solver == "direct" and not family.matrix_varies:
        reasons.append("one factorization for all samples")
    if precond == "auto":
        precond = "jacobi" if solver not in _NO_PRECONDITIONER and device.type == "cuda" \
            else "none"
    if order == "auto":
        order = "identity"
    batch = 1 if batch is None else _check_int("batch", batch, 1)
    if solver == "gcrodr" and batch > 1:
        reasons.append(f"blocks of {batch} solved at once by batched GCRO-DR, the recycled "
                       f"space carried from block to block")
    if dim == 3 and precond == "mg":
        raise ValueError(f"PDE {family.name!r} is 3-D and precond='mg' is the 2-D multigrid; "
                         f"use precond='gsmg' (geometric multigrid in 2-D and 3-D)")
    if batch > 1 and precond in _SINGLE_GRID and solver not in PER_SYSTEM_PRECONDITIONER:
        raise ValueError(f"precond={precond!r} preconditions one grid, not a stacked block; "
                         f"use batch=1, or solver='gcrodr' (one preconditioner per system), "
                         f"got solver={solver!r} with batch={batch}")
    if batch > chunk_size:
        raise ValueError(f"batch must be <= chunk_size={chunk_size} (blocks are cut within a "
                         f"chunk), got batch={batch}; raise chunk_size")
    if batch > 1 and solver not in BATCHED and solver != "direct":
        raise ValueError(f"batch > 1 needs a batched solver ({', '.join(BATCHED)}) or 'direct', "
                         f"got solver={solver!r} with batch={batch}")
    if solver in ("cg", "amg") and not family.spd:
        hint = "; or solver='gmresdr' with precond='amg'" if solver == "amg" else ""
        raise ValueError(f"solver {solver!r} ({'CG with pyamg' if solver == 'amg' else 'CG'}) "
                         f"needs symmetric positive definite systems; PDE {family.name!r} is "
                         f"not (use gmres, gmresdr, gcrodr or direct{hint})")
    if precond in _SHIFTED_LAPLACIAN and \
            getattr(family, "krylov_preconditioner", None) not in _SHIFTED_LAPLACIAN:
        # It reads k² off A = −Δ_h − diag(k²); on another matrix it preconditions an
        # unrelated operator (GMRES-DR, rtol 1e-8, 24³: convection–diffusion 358–500
        # iterations against 15 with gsmg, Darcy 34–36 against 9).
        raise ValueError(f"precond={precond!r} is the shifted-Laplacian multigrid for "
                         f"Helmholtz matrices (−Δ − k²); PDE {family.name!r} is not one: use "
                         f"precond='gsmg' (Gauss–Seidel multigrid) or 'auto'")
    get_linear_solver(solver)
    _check_gpu_direct("solver", solver, device)
    if precond not in PRECONDITIONERS:
        raise ValueError(f"unknown preconditioner {precond!r}; expected one of: "
                         f"{', '.join(sorted(PRECONDITIONERS))}")
    if precond != "none" and solver in _NO_PRECONDITIONER:
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


# Peak memory per node of the solve grid: bytes per sample held by the chunk, for the solve's
# fixed working set, and per system of a solved block. 2-D, measured on 2-core CPU runs of binary
# Darcy (ru_maxrss; 130² and 258², chunks of 8 to 64): about 300 B per sample (fields,
# matrices, SuperLU's factors) and 400 B per sample of a batched block (the stacked multigrid
# hierarchy and CG's vectors). 3-D, measured the same way over the imports (26³–66³, chunks of
# 4 and 8, each 3-D family's default method, GCRO-DR(40, 20) with and without the
# shifted-Laplacian multigrid, blocks of 1 and 4): 57–83 B per sample, and 1.6–3.1 kB fixed
# (Krylov basis of 40–80 vectors, multigrid hierarchy, the field sampler's temporaries) of
# which about 1.5 kB grows with each system of a batched GCRO-DR block.
_BYTES_PER_NODE = {2: (300, 0, 400), 3: (100, 1300, 1500)}
_SUPERSCRIPT = {2: "²", 3: "³"}


def _available_memory(device):
    """Bytes free for a chunk on ``device``, or None where the system does not say."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as info:
            fields = dict(line.split(":", 1) for line in info)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def _check_memory(solve_resolution, chunk_size, batch, device, dim=2):
    """Refuse, before any allocation, a chunk whose estimated peak memory does not fit."""
    per_sample, fixed, per_system = _BYTES_PER_NODE[dim]
    nodes = solve_resolution ** dim  # per sample, on the solve grid
    need = nodes * (per_sample * chunk_size + fixed + per_system * batch)
    free = _available_memory(device)
    if free is None or need <= free:
        return
    def largest_chunk(block):
        return int((free / nodes - fixed - per_system * block) // per_sample)

    if largest_chunk(batch) >= batch:
        hint = f"use chunk_size <= {largest_chunk(batch)}"
    elif largest_chunk(1) >= 1:
        hint = f"use a smaller batch (batch=1 fits chunk_size <= {largest_chunk(1)})"
    else:
        hint = (f"use a coarser grid (resolution or solve_resolution at most about "
                f"{int((free / (per_sample + fixed + per_system)) ** (1 / dim))})")
    raise ValueError(f"a chunk of {chunk_size} samples at {solve_resolution}{_SUPERSCRIPT[dim]} "
                     f"needs about {need / 2 ** 30:.1f} GiB on {device.type}, "
                     f"{free / 2 ** 30:.1f} GiB is free: {hint}")


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
    tmp = temporary_name(path)
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True))
    fsync_path(tmp)
    os.replace(tmp, path)


def generate(pde="darcy", n=1100, resolution=85, out=None, *, seed=0, n_test=None,
             solve_resolution=None, chunk_size=32, dtype="float32", device="cpu",
             solver="auto", precond="auto", order="auto", batch=None, rtol=1e-8, maxiter=None,
             fallback="direct", compression="auto", overwrite=False, progress=True,
             callback=None, **pde_options):
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
        ``"cg"``, ``"amg"``, ``"direct"``, ``"gpu_direct"``: ``torch.sparse.spsolve`` with
        cuDSS, refused with the reason where torch cannot run it on ``device``).
    precond : str
        ``"auto"`` or a key of :data:`sciml.datasets.krylov.PRECONDITIONERS`.
    order : {"auto", "greedy", "identity"}
        Order in which a chunk's systems are solved (:mod:`sciml.datasets.sorting`).
    batch : int, optional
        Systems solved at once by the batched solvers (≤ ``chunk_size``; default for batched
        multigrid CG: the chunk on a GPU, at most 32 on the CPU; else 1). With ``"gcrodr"``
        (or ``"skr"``) a block is solved by :func:`~sciml.datasets.krylov.gcro_dr_batched`,
        one preconditioner per system, the recycled space carried from block to block in the
        solve order.
    rtol : float
        Relative tolerance of the true residual, in (0, 1).
    maxiter : int, optional
        Iteration cap of the iterative solvers (their default when None).
    fallback : str or None
        Solver retried on a system that missed ``rtol`` (default ``"direct"``; None: none).
    compression : str
        How the fields are stored (:mod:`sciml.datasets.compression`): ``"auto"`` (deflate
        level 1 with shuffle where a chunk shrinks at least 2×, raw otherwise: the binary
        coefficient is compressed, smooth solutions are not), ``"none"``, ``"lzf"``,
        ``"gzip"`` or ``"gzip-0"`` … ``"gzip-9"``. Each sample is compressed once. The file's
        ``compression`` attribute records the filters and ratio of every field.
    overwrite : bool
        Replace an existing ``out`` or parts folder of a different configuration, and
        regenerate an existing complete ``out``. The old ``out`` stays until the new file is
        complete.
    progress : bool
        Show a progress bar over samples (samples/s, mean iterations).
    callback : callable, optional
        ``callback(chunk_index, n_done)``, called once a chunk this call computed is durable
        on disk, with ``n_done`` the number of samples finished so far (resumed ones
        included). It runs in the writer thread; an exception it raises stops the run.
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
    sciml.datasets.writer.OutputLockedError
        An :class:`OSError`: another run is writing ``out`` (its PID is named; nothing is
        touched).

    Notes
    -----
    Per-chunk seconds of every stage (sample, assemble, precond, solve, copy, compress,
    write, sync, merge) are stored in ``solver/stage_seconds``, shape ``(n_chunks, 9)``, its
    ``stages`` attribute naming the columns.
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
    if dtype not in STORED_DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(STORED_DTYPES)}, got {dtype!r}")
    compression = check_compression(compression)
    device = _check_device(device)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    if maxiter is not None:
        maxiter = _check_int("maxiter", maxiter, 1)
    if fallback is not None:
        get_linear_solver(fallback)
        _check_gpu_direct("fallback", fallback, device)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    if solver not in ("auto", "skr"):
        get_linear_solver(solver)
    if order != "auto" and order not in ORDERINGS:
        raise ValueError(f"unknown order {order!r}; expected 'auto' or one of: "
                         f"{', '.join(sorted(ORDERINGS))}")
    family = get_pde(pde, **pde_options)
    method = choose_method(family, device, solver, precond, order, batch, chunk_size,
                           solve_resolution)

    config = {"pde": pde, "pde_options": family.to_dict(), "n": n, "n_test": n_test,
              "resolution": resolution, "solve_resolution": solve_resolution,
              "chunk_size": chunk_size, "dtype": dtype, "rtol": float(rtol), "maxiter": maxiter,
              "fallback": fallback, "seed": seed, "format_version": FORMAT_VERSION,
              "compression": compression, "rng_device": device.type,
              **{key: method[key] for key in ("solver", "precond", "order", "batch")}}
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    info = distributed.setup(use_cuda=device.type == "cuda")
    if device.type == "cuda" and device.index is None and info.enabled:
        device = torch.device("cuda", info.local_rank)
    _check_memory(solve_resolution, min(chunk_size, n), method["batch"], device,
                  getattr(family, "dim", 2))

    # Rank 0 alone takes the lock and checks and prepares the parts folder; the others learn
    # the outcome.
    lock = OutputLock(out)
    try:
        error, finished = None, False
        if info.is_main:
            try:
                # A finished file is returned without the lock, so read-only data folders work.
                finished = not overwrite and not parts.exists() and _complete(out, config)
                if not finished:
                    _check_folder(out)
                    lock.acquire()
                    finished = _prepare(out, parts, config, overwrite)
            except (ValueError, OSError) as caught:  # the other ranks must learn of it too
                error = caught
        error, finished = _broadcast((error, finished), info)
        if error is not None:
            raise error
        if finished:
            return out
        unconverged = _run(family, config, method, out, parts, device, info, progress, callback)
    except OSError as caught:
        if caught.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OSError(caught.errno, f"no space left on the device of out={str(out)!r}; free "
                                    f"space (the run needs about twice the file's size until "
                                    f"it completes) or choose another folder, and run again: "
                                    f"the finished chunks in {str(parts)!r} are kept and "
                                    f"resumed") from None
    finally:
        lock.release()
    if unconverged:
        warnings.warn(f"{unconverged} of {n} samples in {str(out)!r} did not reach rtol={rtol} "
                      f"with solver {method['solver']!r}; they are flagged "
                      f"solver/converged = False", RuntimeWarning, stacklevel=2)
    return out


def _run(family, config, method, out, parts, device, info, progress, callback):
    """Compute this rank's missing chunks while a thread writes them; rank 0 assembles the
    file. Returns the number of unconverged samples (0 on other ranks)."""
    n, chunk_size = config["n"], config["chunk_size"]
    n_chunks = -(-n // chunk_size)
    paths = [parts / f"chunk_{k:06d}.h5" for k in range(n_chunks)]
    counts = [min(chunk_size, n - k * chunk_size) for k in range(n_chunks)]
    mine = [k for k in range(n_chunks) if k % info.world_size == info.rank]
    todo = [k for k in mine if not paths[k].exists()]
    done = [sum(counts[k] for k in range(n_chunks) if paths[k].exists())]

    def write(k, host, diagnostics, times):  # runs in the writer thread
        arrays = host.arrays(times)
        arrays.update({f"solver/{name}": column for name, column in diagnostics.items()})
        writer.write_chunk(k, arrays, times)
        done[0] += counts[k]
        if callback is not None:
            callback(k, done[0])

    block_solver = BlockSolver(method["solver"], method["precond"], method["batch"],
                               config["rtol"], config["maxiter"], config["fallback"],
                               family.grid_shape(config["solve_resolution"]))
    writer = DatasetWriter(out, paths, counts, config["compression"], assemble=info.is_main)
    background = BackgroundWriter()
    unconverged = 0
    try:
        if info.is_main:  # chunks of an earlier run go into the final file meanwhile
            for k in range(n_chunks):
                if paths[k].exists():
                    background.submit(writer.merge_part, k)
        with tqdm(total=sum(counts[k] for k in mine), initial=sum(counts[k] for k in mine) -
                  sum(counts[k] for k in todo), disable=not progress or not info.is_main,
                  unit="sample", desc=f"{config['pde']} {config['resolution']}"
                                      f"{_SUPERSCRIPT[getattr(family, 'dim', 2)]} "
                                      f"{method['solver']}") as bar:
            for k in todo:
                timer = StageTimer(device)
                params, perm = sample_chunk(family, config, k, counts[k], device, timer)
                outputs, diagnostics = solve_chunk(family, params, perm, block_solver, config,
                                                   timer, bar, first=k * chunk_size)
                host = to_host(family, params, outputs, config, timer)
                background.submit(write, k, host, diagnostics, timer.seconds)
            background.join()
        _barrier(info)
        if info.is_main:
            x = np.linspace(0.0, 1.0, config["resolution"])
            attrs = {"pde": config["pde"], "config": config, "seed": config["seed"],
                     "sciml_version": sciml.__version__, "format_version": FORMAT_VERSION,
                     "n_train": n - config["n_test"], "n_test": config["n_test"],
                     "method": method["reason"], "rng_device": device.type}
            axes = ("x", "y", "z")[:getattr(family, "dim", 2)]
            unconverged = writer.finish(attrs, grid={axis: x for axis in axes})
            shutil.rmtree(parts)
        _barrier(info)
    finally:
        try:
            background.join(raise_error=False)  # what is queued becomes durable first
        finally:
            writer.close()
    return unconverged


def _broadcast(value, info):
    if not info.enabled:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _barrier(info):
    if info.enabled:
        torch.distributed.barrier()


def _check_folder(out):
    """Create ``out``'s folder if needed; refuse one that cannot hold it."""
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"out={str(out)!r} lies under {str(blocking)!r}, which is a file, not a "
                         f"folder; choose another path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"out={str(out)!r}: its folder cannot be created ({error.strerror}: "
                         f"{error.filename!r}); choose a path under a writable folder") from None
    if out.is_dir():
        raise ValueError(f"out={str(out)!r} is a folder; give the path of the HDF5 file to write")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ValueError(f"out={str(out)!r}: its folder is not writable; choose another place")


# Keys older files lack, with the value their absence means: files before compression was a
# choice were deflated and drew their random numbers on the CPU.
_IMPLIED = {"compression": "auto", "rng_device": "cpu"}


def _same_run(stored, config):
    return {**_IMPLIED, **stored} == config


def _complete(out, config):
    """Whether ``out`` is a finished dataset file of ``config``."""
    try:
        return out.is_file() and _same_run(read_config(out), config)
    except ValueError:
        return False


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
            if not overwrite:
                if not _same_run(stored, config):
                    raise ValueError(f"out={str(out)!r} exists with a different configuration; "
                                     f"differing keys: "
                                     f"{'; '.join(_differences(stored, config))}. Pass "
                                     f"overwrite=True to replace it")
                if parts.exists():  # a run killed between the final rename and the cleanup
                    shutil.rmtree(parts)
                return True
    if parts.exists():
        _check_parts(parts, out, config, overwrite)
    parts.mkdir(parents=True, exist_ok=True)
    # Under the lock no live run writes here: temporary files are orphans of killed runs.
    remove_orphans(parts)
    remove_orphans(out.parent, out.name)
    _write_json(parts / "config.json", config)
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
