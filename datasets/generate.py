"""The dataset generator: sample parameters, assemble, solve, write a resumable HDF5 file.

Recipe: the FNO paper's data pipeline (Li et al., "Fourier Neural Operator for Parametric
Partial Differential Equations", ICLR 2021): draw coefficients from a GRF, solve on a fine
grid, subsample to the training resolution, split train/test.

Randomness. The samples are cut into chunks of ``chunk_size``; chunk ``k`` draws its
parameters from a ``torch.Generator`` seeded with
``numpy.random.SeedSequence([seed, k]).generate_state(1, uint64)``, so a chunk does not
depend on which chunks ran before it, in this process or another.

Crash safety. HDF5 has no journal, so a kill during a write can corrupt the file being
written. Each finished chunk is therefore written as a small HDF5 file
``<out>.parts/chunk_<k>.h5`` under a temporary name, flushed with ``fsync`` and moved into
place with :func:`os.replace` (atomic on POSIX); ``<out>.parts/config.json`` records the
configuration. When every chunk exists they are merged into ``<out>.tmp``, which is moved
onto ``out``, and the parts folder is removed. A rerun, after any crash including SIGKILL,
skips the chunks already written and gives the same file as an uninterrupted run.

Unconverged solves. A sample whose solve misses the tolerance is kept, flagged
``solver/converged = False`` with its true residual; the file's ``n_unconverged`` attribute
counts them and :func:`generate` emits a :class:`RuntimeWarning` naming them. Raising
instead would make the run impossible to finish (the same seed fails the same way every
time); readers filter on ``solver/converged``.
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

from .hdf5 import FORMAT_VERSION, _fsync, merge_parts, read_config, write_part
from .linsolve import get_linear_solver
from .pdes import get_pde

__all__ = ["generate"]

_DTYPES = {"float32": np.float32, "float64": np.float64}


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


def _solve_chunk(pde, solver, config, k, count, device, progress_bar):
    """Sample, assemble and solve one chunk; the arrays of its part file."""
    fine, coarse = config["solve_resolution"], config["resolution"]
    stride = (fine - 1) // (coarse - 1)
    generator = torch.Generator().manual_seed(_chunk_seed(config["seed"], k))
    fields = pde.sample_fields(count, fine, generator=generator, device=device)
    a = pde.coefficient(fields)
    u = torch.empty_like(a)
    diagnostics = {"iterations": np.empty(count, np.int64), "matvecs": np.empty(count, np.int64),
                   "residual": np.empty(count, np.float64),
                   "converged": np.empty(count, np.bool_), "seconds": np.empty(count, np.float64)}
    for i in range(count):
        A, b = pde.assemble(a[i])
        result = solver(A, b, rtol=config["rtol"])
        u[i] = pde.solution_field(result.x, fine)
        for name, column in diagnostics.items():
            column[i] = getattr(result, name)
        progress_bar.update(1)
    dtype = _DTYPES[config["dtype"]]
    # Subsampling the fine grid keeps the coarse grid's nodes exactly.
    arrays = {"inputs": a[:, None, ::stride, ::stride].cpu().numpy().astype(dtype),
              "outputs": u[:, None, ::stride, ::stride].cpu().numpy().astype(dtype),
              "params/grf": fields[:, ::stride, ::stride].cpu().numpy()}
    arrays.update({f"solver/{name}": column for name, column in diagnostics.items()})
    return arrays


def generate(pde="darcy", n=1100, resolution=85, out=None, *, seed=0, n_test=None,
             solve_resolution=None, chunk_size=32, dtype="float32", device="cpu",
             solver="direct", rtol=1e-8, overwrite=False, progress=True, callback=None,
             **pde_options):
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
        Samples per chunk, the unit of resumption (≥ 1).
    dtype : {"float32", "float64"}
        Dtype of ``inputs`` and ``outputs`` (parameters are stored in float64).
    device : str or torch.device
        Where parameters are sampled and systems assembled.
    solver : str
        A key of :data:`sciml.datasets.LINEAR_SOLVERS`.
    rtol : float
        Relative tolerance of the true residual (> 0).
    overwrite : bool
        Replace an existing ``out`` or parts folder of a different configuration, and
        regenerate an existing complete ``out``. The old ``out`` stays until the new file is
        complete.
    progress : bool
        Show a tqdm progress bar over samples.
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
    solve = get_linear_solver(solver)
    if isinstance(rtol, bool) or not isinstance(rtol, (int, float)) or not 0 < rtol < 1:
        raise ValueError(f"rtol must be a number in (0, 1), got {rtol!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    family = get_pde(pde, **pde_options)

    config = {"pde": pde, "pde_options": family.to_dict(), "n": n, "n_test": n_test,
              "resolution": resolution, "solve_resolution": solve_resolution,
              "chunk_size": chunk_size, "dtype": dtype, "solver": solver, "rtol": float(rtol),
              "seed": seed, "format_version": FORMAT_VERSION}
    out = Path(out)
    parts = out.with_name(out.name + ".parts")
    merged = out.with_name(out.name + ".tmp")

    if out.exists():
        try:
            stored = read_config(out)
        except ValueError as error:
            if not overwrite:
                raise ValueError(f"out={str(out)!r} exists and is not a sciml dataset file "
                                 f"({error}); pass overwrite=True to replace it") from None
        else:
            if stored == config and not overwrite:
                return out
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

    n_chunks = -(-n // chunk_size)
    paths = [parts / f"chunk_{k:06d}.h5" for k in range(n_chunks)]
    counts = [min(chunk_size, n - k * chunk_size) for k in range(n_chunks)]
    done = sum(count for path, count in zip(paths, counts) if path.exists())
    with tqdm(total=n, initial=done, disable=not progress, unit="sample",
              desc=f"{pde} {resolution}²") as bar:
        for k, (path, count) in enumerate(zip(paths, counts)):
            if path.exists():
                continue
            write_part(path, _solve_chunk(family, solve, config, k, count, device, bar))
            done += count
            if callback is not None:
                callback(k, done)

    x = np.linspace(0.0, 1.0, resolution)
    attrs = {"pde": pde, "config": config, "seed": seed, "sciml_version": sciml.__version__,
             "format_version": FORMAT_VERSION, "n_train": n - n_test, "n_test": n_test}
    unconverged = merge_parts(paths, merged, attrs=attrs, grid={"x": x, "y": x})
    os.replace(merged, out)
    shutil.rmtree(parts)
    if unconverged:
        warnings.warn(f"{unconverged} of {n} samples in {str(out)!r} did not reach rtol={rtol} "
                      f"with solver {solver!r}; they are flagged solver/converged = False",
                      RuntimeWarning, stacklevel=2)
    return out


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
