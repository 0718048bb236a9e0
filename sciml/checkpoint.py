"""Checkpoints that survive a crash and cannot run code: tensors and plain values, renamed into place.

``os.replace`` is atomic on POSIX within one file system, so a reader (or a resumed run) sees
either the previous complete checkpoint or the new complete one, never half of one. A
checkpoint holds only tensors, dicts, lists, tuples, str, int, float, bool and None (random
number generator states included), and is loaded with ``torch.load(weights_only=True)``:
unpickling arbitrary objects would run whatever code a crafted file names.
"""
from __future__ import annotations

import errno
import os
import pickle
import random
import re
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["save_atomic", "BackgroundSaver", "snapshot", "load_checkpoint", "load_weights", "remove_orphans",
           "pid_alive", "rng_state", "set_rng_state"]

# the writer's process id and host in each temporary file's name, so that an orphan left by a
# killed writer can be told from a file another process is still writing
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())


def save_atomic(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` through a temporary file in the same folder.

    ``obj`` may hold only tensors, dicts, lists, tuples, str, int, float, bool and None (a
    ``TypeError`` names the first other object and where it sits), so that
    :func:`load_checkpoint` reads it back without unpickling code. Orphan temporary files of
    ``path`` left by killed writers are removed first. A full disk (or quota) raises an
    ``OSError`` that names the file and the remedy; the previous file at ``path`` is left as
    it was.
    """
    _check_plain(obj, "checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-{_HOST}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes the file private; a checkpoint is shared like any file
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(exc.errno, f"no space left to write {str(path)!r} (the previous file there is intact); "
                                     f"free space in {str(path.parent)!r} or write elsewhere") from exc
        raise
    return path


def _umask() -> int:
    """The process's umask, read without changing it (``os.umask`` sets it, racing other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def snapshot(obj: Any) -> Any:
    """``obj`` with every tensor copied to host memory: the state as it is now, while training changes it."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        return t.to("cpu", copy=True) if t.device.type != "cpu" else t.clone()
    if isinstance(obj, dict):
        return type(obj)((k, snapshot(v)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(snapshot(v) for v in obj)
    return obj


class BackgroundSaver:
    """Write checkpoints on a thread, one save in flight, so that training does not wait for the disk.

    :meth:`submit` first waits for the previous save (raising its error, if it had one), then
    copies the state to host memory (:func:`snapshot`) and hands the writing and fsync to a
    thread. Each file is written by :func:`save_atomic`, so a process killed during a save
    leaves the previous complete file in place. :meth:`wait` blocks until the save in flight
    is on disk; call it before the process ends.
    """

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.last_seconds = 0.0  # how long the latest completed save took on its thread

    def submit(self, files: list[tuple[Any, str | os.PathLike]]) -> None:
        """Save each ``(obj, path)`` of ``files``, in order, in the background."""
        self.wait()
        for obj, _ in files:
            _check_plain(obj, "checkpoint")  # at once, where the caller can see it
        copies = [(snapshot(obj), path) for obj, path in files]
        self._thread = threading.Thread(target=self._write, args=(copies,), name="sciml-checkpoint", daemon=True)
        self._thread.start()

    def _write(self, files: list[tuple[Any, str | os.PathLike]]) -> None:
        t0 = time.perf_counter()
        try:
            for obj, path in files:
                save_atomic(obj, path)
        except BaseException as exc:  # raised in the training thread by the next wait
            self._error = exc
        self.last_seconds = time.perf_counter() - t0

    def wait(self) -> None:
        """Block until no save is in flight; raise the error of a failed one."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def _check_plain(obj: Any, where: str) -> None:
    """Refuse at writing what ``weights_only=True`` would refuse at reading, possibly much later."""
    if type(obj) in (dict, OrderedDict):  # a module's state_dict is an OrderedDict
        for key, value in obj.items():
            _check_plain(key, f"{where} key {key!r}")
            _check_plain(value, f"{where}[{key!r}]")
    elif type(obj) in (list, tuple):
        for i, value in enumerate(obj):
            _check_plain(value, f"{where}[{i}]")
    # exact types: numpy's float64 is a float, a defaultdict a dict, and neither loads with weights_only
    elif not (isinstance(obj, torch.Tensor) or type(obj) in (str, int, float, bool, type(None))):
        raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint holds only "
                        "tensors, dicts, lists, tuples, str, int, float, bool and None (store a generator's or "
                        "object's state as tensors and numbers)")


def remove_orphans(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of :func:`save_atomic` for ``path`` whose writer process is gone.

    Only files written on this host are judged (a process id means nothing on another one);
    returns the removed paths.
    """
    path = Path(path)
    if os.name != "posix" or not path.parent.is_dir():  # os.kill(pid, 0) probes liveness on POSIX only
        return []
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-{re.escape(_HOST)}\.[^.]+\.tmp")
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        match = pattern.fullmatch(tmp.name)
        if match and not pid_alive(int(match.group(1))):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host (POSIX; a non-positive pid counts as alive)."""
    if pid <= 0:  # not a writer's id (0 and negatives would signal process groups)
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or no process could have this id
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    try:  # a killed process nobody has reaped yet (a container without init) writes nothing
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_atomic` with ``weights_only=True``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is truncated or not a checkpoint, or it holds objects other than tensors and
        plain values (an older sciml format, or a crafted file): such a file is not loaded.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):  # not a pickle at all
            raise ValueError(f"checkpoint {str(path)!r} is not a readable sciml checkpoint: {exc}") from exc
        # the restricted unpickler met an object it would have to import (and might run)
        found = re.search(r"GLOBAL (\S+)", str(exc))
        raise ValueError(f"checkpoint {str(path)!r} was not loaded: it holds Python objects other than tensors "
                         f"and plain values{f' ({found.group(1)})' if found else ''}, as an older sciml checkpoint "
                         "format or an unsafe file does, and unpickling them could run code; train afresh "
                         "(resume=False / sciml train --overwrite) or into another folder") from exc
    except Exception as exc:  # truncated or foreign file
        raise ValueError(f"checkpoint {str(path)!r} is not a readable sciml checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or "solver" not in ckpt:
        raise ValueError(f"checkpoint {str(path)!r} is not a sciml checkpoint (no 'solver' entry)")
    return ckpt


def load_weights(module: nn.Module, state: dict, path: str | os.PathLike, remedy: str) -> None:
    """``module.load_state_dict(state)``; a state of another model raises a one-line ``ValueError``.

    The message names the checkpoint ``path``, the first mismatch, and ends with ``remedy``.
    """
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:  # torch lists every missing key and size mismatch, one per line
        lines = [line.strip().rstrip(".") for line in str(exc).splitlines() if line.strip()]
        raise ValueError(f"checkpoint {str(path)!r} holds the weights of another model than this "
                         f"{type(module).__name__} ({lines[1] if len(lines) > 1 else exc}); {remedy}") from exc


def rng_state() -> dict:
    """The state of every random number generator a training step may draw from, as tensors and numbers."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, words, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "words": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators from :func:`rng_state`'s ``state``, exactly."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["words"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
