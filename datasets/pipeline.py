"""The stages of :func:`sciml.datasets.generate`, one function each, timed one by one.

::

    sample_chunk   parameters of chunk k from its own seed, on the device; the solve order
    solve_chunk    assemble the systems block by block and solve them (BlockSolver)
    to_host        subsample and cast on the device, then copy into pinned host memory
                   without blocking (the writer thread waits for the copy, not the caller)
    ── BackgroundWriter / DatasetWriter (writer.py): compress, write the part, assemble

Each stage charges its seconds to a :class:`StageTimer`; on CUDA a stage ends with a
synchronize, so asynchronous GPU work is charged to the stage that launched it.
"""
import time
from contextlib import contextmanager

import numpy as np
import torch

from .sorting import get_ordering

__all__ = ["StageTimer", "chunk_seed", "sample_chunk", "solve_chunk", "to_host", "HostChunk",
           "DIAGNOSTICS", "STORED_DTYPES"]

#: Per-sample solver diagnostics stored under ``solver/``, with their dtypes.
DIAGNOSTICS = {"iterations": np.int64, "matvecs": np.int64, "residual": np.float64,
               "converged": np.bool_, "seconds": np.float64, "fallback": np.bool_}
#: The dtypes ``inputs`` and ``outputs`` may be stored in.
STORED_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class StageTimer:
    """Seconds per named stage; a stage nested in another is not charged to the outer one.

    Parameters
    ----------
    device : torch.device
        On CUDA a stage ends with ``torch.cuda.synchronize`` unless entered with
        ``sync=False``.
    """

    def __init__(self, device):
        self.device = device
        self.seconds = {}
        self._nested = []

    @contextmanager
    def __call__(self, name, sync=True):
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            if sync and self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            elapsed = time.perf_counter() - start
            inner = self._nested.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - inner
            if self._nested:
                self._nested[-1] += elapsed


def chunk_seed(seed, k):
    """The seed of chunk ``k``: a pure function of ``(seed, k)``, whatever ran before."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1, dtype=np.uint64)[0])


def sample_chunk(family, config, k, count, device, timer):
    """Draw chunk ``k``'s parameters on ``device`` and the order its systems are solved in.

    The generator lives on ``device``: on a GPU the random fields never touch the CPU. The
    same seed gives the same parameters on the same kind of device; CPU and CUDA generators
    differ, so a CPU file and a CUDA file of one seed differ.

    Returns
    -------
    params : dict of str to Tensor
    perm : Tensor of int64 on the CPU
        Solve order (:mod:`sciml.datasets.sorting`).
    """
    with timer("sample"):
        generator = torch.Generator(device=device).manual_seed(chunk_seed(config["seed"], k))
        params = family.sample_params(count, config["solve_resolution"], generator=generator,
                                      device=device)
        if config["order"] == "identity":  # no features to compute (0.5 ms a sample at 130²)
            perm = torch.arange(count)
        else:
            perm = get_ordering(config["order"])(family.sort_features(params)).cpu()
    return params, perm


def solve_chunk(family, params, perm, block_solver, config, timer, bar=None, first=0):
    """Assemble and solve a chunk's systems, ``config["batch"]`` at a time, in order ``perm``.

    The block solver charges its preconditioner setup and solves to ``timer`` (stages
    ``precond`` and ``solve``); the rest of the family's ``solve`` is ``assemble``.

    Returns
    -------
    outputs : Tensor, shape (count, C_out, ...), on the device
    diagnostics : dict of str to numpy.ndarray
        :data:`DIAGNOSTICS` per sample, in sample order, and ``position``: where each sample
        stands in the run's solve order (``first`` is the chunk's first sample), so that the
        order can be derived again.
    """
    count = len(perm)
    block_solver.reset()
    block_solver.timer = timer
    outputs = None
    diagnostics = {name: np.zeros(count, dtype) for name, dtype in DIAGNOSTICS.items()}
    iterations = 0
    for start in range(0, count, config["batch"]):
        idx = perm[start:start + config["batch"]]
        block_solver.start_block(len(idx))
        with timer("assemble"):
            u = family.solve({key: value[idx.to(value.device)] for key, value in params.items()},
                             block_solver)
            if outputs is None:
                outputs = u.new_empty((count, *u.shape[1:]))
            outputs[idx.to(u.device)] = u
        for name, column in block_solver.diagnostics.items():
            diagnostics[name][idx.numpy()] = column
        iterations += int(block_solver.diagnostics["iterations"].sum())
        if bar is not None:
            bar.update(len(idx))
            bar.set_postfix(iterations=f"{iterations / (start + len(idx)):.1f}", refresh=False)
    diagnostics["position"] = np.empty(count, np.int64)
    diagnostics["position"][perm.numpy()] = np.arange(count) + first
    return outputs, diagnostics


def _subsample(value, fine, stride, dim=2):
    """Keep every ``stride``-th node of a field on the fine grid (its last ``dim`` axes)."""
    if value.ndim >= dim + 1 and value.shape[-dim:] == (fine,) * dim:
        return value[(..., *(slice(None, None, stride),) * dim)]
    return value


class HostChunk:
    """A chunk's arrays in host memory, possibly still arriving from the device.

    Parameters
    ----------
    tensors : dict of str to Tensor
        CPU tensors (pinned where a copy from CUDA fills them).
    event : torch.cuda.Event or None
        Recorded after the copies were queued.
    """

    def __init__(self, tensors, event=None):
        self.tensors = tensors
        self.event = event

    def arrays(self, times):
        """Wait for the copies (charged to ``times["copy"]``), then the numpy arrays."""
        if self.event is not None:
            start = time.perf_counter()
            self.event.synchronize()
            times["copy"] = times.get("copy", 0.0) + time.perf_counter() - start
        return {name: value.numpy() for name, value in self.tensors.items()}


def to_host(family, params, outputs, config, timer):
    """The arrays of a chunk's part file, on their way to host memory.

    Fields are subsampled to the stored grid and cast to the stored dtype on the device, so
    only what is written crosses to the host. From CUDA they are copied into pinned buffers
    with ``non_blocking=True``; the returned :class:`HostChunk` carries the event to wait on.

    Returns
    -------
    HostChunk
        ``inputs``, ``outputs`` and ``params/<name>``.
    """
    fine, coarse = config["solve_resolution"], config["resolution"]
    stride = (fine - 1) // (coarse - 1)
    dtype = STORED_DTYPES[config["dtype"]]
    dim = getattr(family, "dim", 2)  # the 3-D families set dim = 3
    with timer("copy", sync=False):  # the copies run on while the caller goes on
        fields = {"inputs": _subsample(family.inputs(params), fine, stride, dim).to(dtype),
                  "outputs": _subsample(outputs, fine, stride, dim).to(dtype)}
        fields.update({f"params/{key}": _subsample(value, fine, stride, dim)
                       for key, value in params.items()})
        if outputs.device.type != "cuda":
            return HostChunk({name: value.contiguous() for name, value in fields.items()})
        host = {}
        for name, value in fields.items():
            host[name] = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
            host[name].copy_(value, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
    return HostChunk(host, event)
