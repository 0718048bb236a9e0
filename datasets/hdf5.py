"""The HDF5 dataset format of sciml and its PyTorch reader.

One file per dataset (DESIGN.md, "Data on disk"), format version 1:

=====================  ==========================  =========================================
name                   shape                       meaning
=====================  ==========================  =========================================
``inputs``             (N, C_in, *grid)            model inputs (float32 or float64)
``outputs``            (N, C_out, [T,] *grid)      PDE solutions (same dtype); a time-dependent
                                                   family adds the time axis T
``grid/x``, ``grid/y``  (grid[0],), (grid[1],)      node coordinates, float64
``params/<name>``      (N, ...)                    per-sample parameters (e.g. ``grf``)
``solver/iterations``  (N,) int64                  Krylov iterations
``solver/matvecs``     (N,) int64                  products with A
``solver/residual``    (N,) float64                true relative residual ‖b − Ax‖ / ‖b‖ of
                                                   the float64 solution, before the cast to
                                                   the stored dtype (float32 rounding alone
                                                   leaves ~1e-5 at 64²)
``solver/converged``   (N,) bool                   residual met the tolerance
``solver/seconds``     (N,) float64                solve time (the only run-dependent field)
``solver/fallback``    (N,) bool                   solved again by the fallback solver
``solver/position``    (N,) int64                  place in the solve order (sorting)
``solver/stage_seconds`` (n_chunks, 9) float64     seconds per chunk and pipeline stage, the
                                                   names in its ``stages`` attribute
=====================  ==========================  =========================================

Root attributes: ``pde``, ``config`` (JSON of the full generator configuration),
``seed``, ``sciml_version``, ``format_version``, ``n_train``, ``n_test``, ``n_unconverged``,
``method`` (which solver ran and why), ``rng_device`` (``"cpu"`` or ``"cuda"``: where the
random parameters were drawn; files of one seed agree only on the same kind of device) and
``compression`` (JSON: the requested choice and, per field, its filters, how many samples
are compressed and the ratio).
Samples ``[0, n_train)`` are the training split, ``[n_train, N)`` the test split. Fields
are chunked by sample (reading one sample decompresses one sample) and compressed as
``compression`` says (:mod:`sciml.datasets.compression`); any HDF5 reader decodes them.

HDF5 has no journal: a process killed while writing can leave a file unreadable. Files of
this format are therefore only ever written under a temporary name and moved into place
with :func:`os.replace` (see :mod:`sciml.datasets.writer`).
"""
import json
import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import torch

__all__ = ["H5Dataset", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def _open_hdf5(path):
    """Open ``path`` read-only, turning h5py's OSError into a ValueError that says why."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {str(path)!r}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"{str(path)!r} is not an HDF5 file (no HDF5 signature)")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{str(path)!r} is an unreadable HDF5 file, probably truncated or "
                         f"corrupted by an interrupted write: {error}") from None


def read_config(path):
    """The generator configuration stored in a dataset file, as a dict.

    Raises
    ------
    ValueError
        If ``path`` is not a readable sciml dataset file.
    """
    with _open_hdf5(path) as f:
        return _decode_attrs(f, path)["config"]


def _decode_attrs(f, path):
    if "format_version" not in f.attrs or "config" not in f.attrs:
        raise ValueError(f"{str(path)!r} is not a sciml dataset file (no 'format_version' or "
                         f"'config' attribute)")
    version = int(f.attrs["format_version"])
    if version != FORMAT_VERSION:
        raise ValueError(f"{str(path)!r} has format_version {version}, this reader supports "
                         f"{FORMAT_VERSION}")
    attrs = {}
    for key, value in f.attrs.items():
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, np.generic):
            value = value.item()
        attrs[key] = value
    try:
        attrs["config"] = json.loads(attrs["config"])
    except (TypeError, json.JSONDecodeError) as error:
        raise ValueError(f"{str(path)!r} has a 'config' attribute that is not JSON: "
                         f"{error}") from None
    return attrs


def _check_stored_inside(ds, path):
    """Refuse a dataset whose data live in other files (external storage, virtual)."""
    if ds.is_virtual or ds.id.get_create_plist().get_external_count():
        raise ValueError(f"{str(path)!r}: dataset {ds.name!r} is stored outside the file "
                         f"(external or virtual); sciml reads only self-contained files")


class H5Dataset(torch.utils.data.Dataset):
    """A split of a sciml HDF5 dataset file as a map-style :class:`torch.utils.data.Dataset`.

    The file is checked and its metadata read at construction; the data are read lazily,
    one sample at a time, through a handle opened on first access and re-opened in every
    new process (the handle is tied to the process id), so ``DataLoader`` workers work with
    any start method. Pickling drops the handle.

    Parameters
    ----------
    path : path-like
        A file written by :func:`sciml.datasets.generate`.
    split : {"train", "test", "all"}
        Samples ``[0, n_train)``, ``[n_train, N)`` or all of them.
    dtype : torch.dtype
        Floating dtype of the returned tensors; a complex dtype for complex data (complex
        data is refused with a real dtype rather than losing its imaginary part).
    include_unconverged : bool
        Keep samples whose solve missed the tolerance (``solver/converged`` false). By
        default they are left out, with a warning that counts them.

    Items are dicts ``{"x": Tensor (C_in, *grid), "y": Tensor (C_out, *grid)}``. The outputs
    of a time-dependent family, ``(C, T, *grid)`` in the file, come with the time axis folded
    into the channels, ``C_out = C · T`` (channel-major), as an operator predicts them.

    A sample holding NaN or infinity raises a :class:`ValueError` naming the file, split,
    sample and field when it is read, so statistics fitted over a split never mix one in.
    Datasets stored outside the file (external storage, virtual datasets) are refused: a
    file alone is what was checked.
    """

    def __init__(self, path, split="train", dtype=torch.float32, include_unconverged=False):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or path-like, got {type(path).__name__}")
        if split not in ("train", "test", "all"):
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        if not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
            raise TypeError(f"dtype must be a floating or complex torch.dtype, got {dtype!r}")
        self.path = Path(path)
        self.split = split
        self.dtype = dtype
        with _open_hdf5(self.path) as f:
            self._attrs = _decode_attrs(f, self.path)
            for name in ("inputs", "outputs"):
                if not isinstance(f.get(name, getlink=True), h5py.HardLink):
                    raise ValueError(f"{str(self.path)!r}: {name!r} is missing or a link to "
                                     f"another place; sciml reads only self-contained files")
                if not isinstance(f[name], h5py.Dataset):
                    raise ValueError(f"{str(self.path)!r} has no {name!r} dataset")
                _check_stored_inside(f[name], self.path)
                if f[name].dtype.kind == "c" and not dtype.is_complex:
                    raise ValueError(f"{str(self.path)!r} holds complex {name!r} "
                                     f"({f[name].dtype}); a real dtype={dtype} would drop the "
                                     f"imaginary part: pass dtype=torch.complex64 for a model "
                                     f"that takes complex data")
            in_shape, out_shape = f["inputs"].shape, f["outputs"].shape
            converged = f["solver/converged"][()] if "solver/converged" in f else None
        total = in_shape[0]
        grid = in_shape[2:]
        if len(in_shape) < 3 or out_shape[0] != total or out_shape[-len(grid):] != grid \
                or len(out_shape) - len(in_shape) not in (0, 1):
            raise ValueError(f"{str(self.path)!r} has inconsistent shapes: inputs {in_shape}, "
                             f"outputs {out_shape}; expected (N, C_in, *grid) and "
                             f"(N, C_out, *grid) or (N, C_out, T, *grid)")
        n_train, n_test = int(self._attrs["n_train"]), int(self._attrs["n_test"])
        if n_train < 0 or n_test < 0 or n_train + n_test != total:
            raise ValueError(f"{str(self.path)!r} has n_train={n_train}, n_test={n_test} but "
                             f"{total} samples")
        self.in_channels = in_shape[1]
        self.out_channels = int(np.prod(out_shape[1:len(out_shape) - len(grid)]))
        self.grid_shape = tuple(in_shape[2:])
        if converged is not None and converged.shape != (total,):
            raise ValueError(f"{str(self.path)!r} has solver/converged of shape "
                             f"{converged.shape} for {total} samples")
        start, stop = {"train": (0, n_train), "test": (n_train, total), "all": (0, total)}[split]
        self._rows = np.arange(start, stop)
        if converged is not None and not include_unconverged:
            self._rows = self._rows[converged[start:stop].astype(bool)]
            left_out = stop - start - len(self._rows)
            if left_out:
                warnings.warn(f"{str(self.path)!r}: {left_out} of {stop - start} samples of "
                              f"split {split!r} did not converge and are left out; pass "
                              f"include_unconverged=True (--include-unconverged) to keep them",
                              RuntimeWarning,
                              stacklevel=2)
        self._file = None
        self._pid = None

    @property
    def attrs(self):
        """Root attributes of the file as a dict, ``config`` decoded from JSON."""
        return dict(self._attrs)

    def __len__(self):
        return len(self._rows)

    def _handle(self):
        if self._file is None or self._pid != os.getpid():
            # A handle inherited through fork shares HDF5 state with the parent: open anew.
            self._file = _open_hdf5(self.path)
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        length = len(self)
        if not -length <= index < length:
            raise IndexError(f"index {index} out of range for a split of {length} samples")
        row = int(self._rows[int(index) % length])
        f = self._handle()
        item = {"x": torch.from_numpy(f["inputs"][row]).to(self.dtype),
                "y": torch.from_numpy(f["outputs"][row]).to(self.dtype).reshape(
                    self.out_channels, *self.grid_shape)}
        for key, name in (("x", "inputs"), ("y", "outputs")):
            if not bool(torch.isfinite(item[key]).all()):
                raise ValueError(f"{str(self.path)!r}, split {self.split!r}: sample {index} "
                                 f"(row {row} of the file) has NaN or infinite values in "
                                 f"{name!r}; regenerate it or leave it out")
        return item

    def close(self):
        """Close the file handle (it re-opens on the next item)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None
        self._pid = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def __repr__(self):
        return (f"H5Dataset({str(self.path)!r}, split={self.split!r}, n={len(self)}, "
                f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"grid_shape={self.grid_shape})")
