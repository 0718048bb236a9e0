"""Writing a dataset file that survives SIGKILL, compresses each sample once, and keeps up.

HDF5 has no journal: a process killed while writing can leave a file unreadable. So every
finished chunk of samples is first made durable on its own: written as a small HDF5 *part
file* under a temporary name unique to the writing process, flushed with ``fsync`` and moved
into place with :func:`os.replace` (atomic on POSIX). The parts are the durable record; a
rerun after any crash keeps them and computes only the missing chunks.

The final file is assembled beside them, under ``<out>.<pid>.tmp``, from the *same encoded
bytes*: each sample's chunk is compressed once (:mod:`.compression`, in a thread pool), written
raw into its part with ``write_direct_chunk`` and copied raw into the final file, during the
run for the chunks this process computes and with ``read_direct_chunk`` for the chunks of an
earlier or another process. Once every chunk is in, the final file gets its attributes, is
synced and moved onto ``out``, and the parts are removed. A crash during assembly leaves an
orphan ``.tmp``, which the next run removes and rebuilds from the parts.

:class:`BackgroundWriter` runs all of it in a thread with a bounded queue, so the caller
samples, assembles and solves chunk ``k + 1`` while chunk ``k`` is written.
"""
import errno
import fcntl
import glob
import json
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np

from sciml.checkpoint import pid_alive

from .compression import filter_names, get_codec

__all__ = ["OutputLock", "OutputLockedError", "DatasetWriter", "BackgroundWriter", "fsync_path",
           "temporary_name", "remove_orphans", "STAGES"]

#: Per-chunk stages timed into ``solver/stage_seconds`` (seconds; NaN where not measured by
#: the run that assembled the file).
STAGES = ("sample", "assemble", "precond", "solve", "copy", "compress", "write", "sync", "merge")
_PART_STAGES = STAGES[:7]  # known when the part is written; sync and merge come after


def fsync_path(path):
    """Flush the OS buffers of a finished file to disk before it is renamed into place."""
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def temporary_name(path):
    """``<path>.<pid>.tmp``: a name no other live process writes to."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def remove_orphans(folder, stem=None):
    """Remove the temporary files of writers that are gone.

    Parameters
    ----------
    folder : path-like
    stem : str, optional
        Remove ``<stem>.<pid>.tmp`` only; None: every ``*.tmp`` (a folder that only sciml
        writes). A name with the PID of a live process other than this one is kept. Call it
        holding the :class:`OutputLock`, when no run of this output writes.
    """
    pattern = "*.tmp" if stem is None else glob.escape(stem) + ".*tmp"
    for tmp in Path(folder).glob(pattern):
        base, _, pid = tmp.name[:-len(".tmp")].rpartition(".")
        if stem is not None and not (base == stem and pid.isdigit()):
            continue  # not a name sciml writes (e.g. the user's own <stem>.tmp)
        if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)


class OutputLockedError(OSError):
    """Another live process holds the lock on this output."""


class OutputLock:
    """An exclusive lock on an output path, held through a lock file beside it.

    ``<out>.lock`` is locked with :func:`fcntl.flock` and holds the owner's PID. A second
    process fails at once with a message naming that PID. The lock dies with its process, so a
    SIGKILLed run never blocks the next one.

    Parameters
    ----------
    path : path-like
        The output file; the lock file is ``<path>.lock``.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._fd = None

    def acquire(self):
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                owner = self.lock_path.read_text().strip() or "unknown"
                raise OutputLockedError(
                    f"out={str(self.path)!r} is being written by another run (PID {owner}, "
                    f"lock {str(self.lock_path)!r}); wait for it to finish or stop it") from None
            # The previous owner may have removed the lock file between our open and flock:
            # then we hold a lock on a file nobody else will open. Try again.
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            self.release()
            raise
        return self

    def release(self):
        if self._fd is not None:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class _Layout:
    """Per dataset: dtype, shape of one sample, and codec (fields only).

    Fields (arrays with a shape per sample) are stored one chunk per sample; per-sample
    scalars (the solver diagnostics) as plain arrays, never compressed.
    """

    def __init__(self, specs, compression):
        self.specs = specs  # name -> (dtype, sample shape)
        self.codecs = {name: get_codec(compression, dtype, shape)
                       for name, (dtype, shape) in specs.items() if shape}

    @staticmethod
    def specs_of(arrays):
        return {name: (np.dtype(value.dtype), tuple(value.shape[1:]))
                for name, value in arrays.items()}

    def check(self, specs, where):
        if specs != self.specs:
            raise ValueError(f"{where} holds {sorted(specs.items())}, expected "
                             f"{sorted(self.specs.items())}")

    def create(self, f, name, total):
        dtype, shape = self.specs[name]
        if name in self.codecs:
            return f.create_dataset(name, shape=(total, *shape), dtype=dtype, chunks=(1, *shape),
                                    **self.codecs[name].dataset_options())
        return f.create_dataset(name, shape=(total, *shape), dtype=dtype)


def _put(ds, offset, plain=None, encoded=None):
    """Write samples at ``offset``: a plain array, or ``[(mask, chunk), ...]`` stored as given."""
    if encoded is None:
        ds[offset:offset + len(plain)] = plain
        return
    zero = (0,) * (ds.ndim - 1)
    write = ds.id.write_direct_chunk
    for i, (mask, chunk) in enumerate(encoded):
        write((offset + i, *zero), chunk, mask)


class DatasetWriter:
    """Part files and the final file of one ``generate`` run (see the module docstring).

    Parameters
    ----------
    out : pathlib.Path
        The final file.
    part_paths : list of pathlib.Path
        Part file of each chunk, in sample order.
    counts : list of int
        Samples per chunk.
    compression : str
        A choice of :func:`sciml.datasets.compression.check_compression`.
    assemble : bool
        Build the final file (rank 0); other ranks only write parts.
    threads : int, optional
        Compression threads (default: the CPU count, at most 16).
    """

    def __init__(self, out, part_paths, counts, compression, assemble=True, threads=None):
        self.out = Path(out)
        self.part_paths = list(part_paths)
        self.counts = list(counts)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)]).astype(int).tolist()
        self.compression = compression
        self.assemble = assemble
        self.threads = threads or min(16, os.cpu_count() or 1)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="sciml-compress")
        self.layout = None
        self.final = None  # the final file, open under its temporary name
        self.final_tmp = temporary_name(self.out)
        self.merged = set()
        self.stages = np.full((len(counts), len(STAGES)), np.nan)
        self.stored = {}  # field -> [stored bytes, raw bytes, compressed samples]

    def _check(self, specs, where):
        if self.layout is None:
            self.layout = _Layout(specs, self.compression)
        self.layout.check(specs, where)

    # ---------------------------------------------------------------- one chunk
    def write_chunk(self, k, arrays, times):
        """Make chunk ``k`` durable as its part file, then copy it into the final file.

        Parameters
        ----------
        k : int
        arrays : dict of str to numpy.ndarray
            Dataset name to array with the chunk's samples on axis 0.
        times : dict of str to float
            Seconds of the stages that produced the chunk (names in :data:`STAGES`).
        """
        self._check(_Layout.specs_of(arrays), f"chunk {k}")
        start = time.perf_counter()
        encoded = {name: self._encode(codec, arrays[name])
                   for name, codec in self.layout.codecs.items()}
        plain = {name: value for name, value in arrays.items() if name not in encoded}
        times = dict(times, compress=time.perf_counter() - start)
        start = time.perf_counter()
        tmp = temporary_name(self.part_paths[k])
        try:
            with h5py.File(tmp, "x") as f:
                for name in arrays:
                    _put(self.layout.create(f, name, len(arrays[name])), 0, plain.get(name),
                         encoded.get(name))
                times["write"] = time.perf_counter() - start
                f.create_dataset("stages", data=[times.get(s, np.nan) for s in _PART_STAGES])
            start = time.perf_counter()
            fsync_path(tmp)
            os.replace(tmp, self.part_paths[k])
        except BaseException:
            tmp.unlink(missing_ok=True)  # half a part is worth nothing; free its space now
            raise
        times["sync"] = time.perf_counter() - start
        if self.assemble:
            self._merge(k, plain, encoded, times)

    def _encode(self, codec, value):
        """``[(mask, bytes) per sample]`` of one field of a chunk, over the thread pool."""
        value = np.ascontiguousarray(value)
        mask = codec.mask(value)  # once per chunk: the split below cannot change the file
        if not codec.filtered or mask or len(value) < 2:
            return codec.encode(value, mask)
        bounds = np.linspace(0, len(value), min(len(value), 4 * self.threads) + 1).astype(int)
        blocks = self.pool.map(lambda ab: codec.encode(value[ab[0]:ab[1]], mask),
                               zip(bounds[:-1], bounds[1:]))
        return [chunk for block in blocks for chunk in block]

    # ---------------------------------------------------------------- final file
    def _merge(self, k, plain, encoded, times):
        """Write chunk ``k`` (plain arrays and encoded fields) into the final file."""
        start = time.perf_counter()
        if self.final is None:
            self.final = h5py.File(self.final_tmp, "x")
            for name in self.layout.specs:
                self.layout.create(self.final, name, self.offsets[-1])
        for name in self.layout.specs:
            _put(self.final[name], self.offsets[k], plain.get(name), encoded.get(name))
        for name, chunks in encoded.items():
            dtype, shape = self.layout.specs[name]
            total = self.stored.setdefault(name, [0, 0, 0])
            total[0] += sum(len(chunk) for _, chunk in chunks)
            total[1] += len(chunks) * int(np.prod(shape)) * dtype.itemsize
            if self.layout.codecs[name].filtered:
                total[2] += sum(mask == 0 for mask, _ in chunks)
        self.stages[k] = [times.get(s, np.nan) for s in STAGES]
        self.stages[k, STAGES.index("merge")] = time.perf_counter() - start
        self.merged.add(k)

    def merge_part(self, k):
        """Copy chunk ``k`` from its part file into the final file, its chunks as stored."""
        path = self.part_paths[k]
        plain, encoded, specs, filters = {}, {}, {}, {}

        def visit(name, ds):
            if not isinstance(ds, h5py.Dataset) or name == "stages":
                return
            specs[name] = (ds.dtype, ds.shape[1:])
            if ds.chunks is None:
                plain[name] = ds[()]
                return
            filters[name] = filter_names(ds)
            # Raw chunks as stored: nothing is decompressed or compressed again.
            zero = (0,) * (ds.ndim - 1)
            encoded[name] = [ds.id.read_direct_chunk((i, *zero)) for i in range(ds.shape[0])]

        with h5py.File(path, "r") as part:
            part.visititems(visit)
            times = dict(zip(_PART_STAGES, part["stages"][()].tolist()))
        self._check(specs, f"part file {str(path)!r}")
        expected = {name: codec.filter_names() for name, codec in self.layout.codecs.items()}
        if filters != expected:  # copied as stored, the chunks must meet the same filters
            raise ValueError(f"part file {str(path)!r} has filters {filters}, expected {expected}")
        self._merge(k, plain, encoded, times)

    def finish(self, attrs, grid):
        """Complete the final file (missing chunks, grid, attributes), sync it, move it to ``out``.

        Parameters
        ----------
        attrs : dict
            Root attributes; dicts are stored as JSON.
        grid : dict of str to numpy.ndarray
            Node coordinates, stored under ``grid/``.

        Returns
        -------
        int
            Number of samples flagged unconverged.
        """
        for k in range(len(self.counts)):
            if k not in self.merged:
                self.merge_part(k)
        f = self.final
        for name, value in grid.items():
            f.create_dataset(f"grid/{name}", data=value)
        f.create_dataset("solver/stage_seconds", data=self.stages).attrs["stages"] = STAGES
        unconverged = int(np.count_nonzero(~f["solver/converged"][()]))
        compression = {"requested": self.compression, "datasets": {
            name: {"filters": "+".join(filter_names(f[name])) or "none",
                   "compressed_samples": samples, "ratio": round(raw / stored, 3)}
            for name, (stored, raw, samples) in sorted(self.stored.items())}}
        for key, value in {**attrs, "compression": compression,
                           "n_unconverged": unconverged}.items():
            f.attrs[key] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        f.close()
        self.final = None
        fsync_path(self.final_tmp)
        os.replace(self.final_tmp, self.out)
        return unconverged

    def close(self):
        """Stop the threads and remove an unfinished final file (the parts rebuild it)."""
        self.pool.shutdown()
        if self.final is not None:
            try:
                self.final.close()
            except (OSError, RuntimeError):
                pass  # e.g. a full disk refusing the last flush: the file goes anyway
            self.final = None
            self.final_tmp.unlink(missing_ok=True)


class BackgroundWriter:
    """Runs writing tasks in one thread, in order, fed through a bounded queue.

    At most ``depth`` tasks wait while one runs, so the host memory held for writing is at
    most ``depth + 1`` chunks of arrays. An error in the thread is raised in the caller at its
    next :meth:`submit` or :meth:`join`; the tasks after it are skipped, and what earlier
    tasks made durable stays.

    Parameters
    ----------
    depth : int
        Tasks that may wait in the queue.
    """

    def __init__(self, depth=1):
        self._queue = queue.Queue(maxsize=depth)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="sciml-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            task, args = item
            if self._error is not None:
                continue  # skipped: the caller learns of the error and stops submitting
            try:
                task(*args)
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller
                self._error = error

    def _raise(self):
        if self._error is not None:
            error, self._error = self._error, _Reported(self._error)
            if not isinstance(error, _Reported):
                raise error

    def submit(self, task, *args):
        """Queue ``task(*args)``; blocks while the queue is full."""
        self._raise()
        while True:
            try:
                self._queue.put((task, args), timeout=0.1)
                return
            except queue.Full:
                self._raise()

    def join(self, raise_error=True):
        """Run every queued task, stop the thread, and raise its error (if ``raise_error``)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if raise_error:
            self._raise()


class _Reported:
    """An error of the writer thread that was already raised in the caller."""

    def __init__(self, error):
        self.error = error
