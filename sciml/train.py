"""The Trainer: the one training step every sciml Solver goes through.

``Trainer(solver, optimizer="adamw", lr=1e-3, epochs=20).fit(train, val)`` owns device and
precision, optional ``torch.compile``, gradient clipping, the learning-rate schedule, the
NaN/inf guard, the progress bar and epoch lines, validation, callbacks and logs
(:mod:`sciml.callbacks`), checkpoints written in the background that resume a run exactly,
and DistributedDataParallel when launched by ``torchrun``. The solver knows none of this; it only
gives ``loss(batch)`` and ``evaluate(batch)``.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import warnings
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler
from tqdm.auto import tqdm

from . import distributed, host_memory
from .cuda_graph import GraphStep, release_groups
from .callbacks import Callback, CSVLogger, TensorBoardLogger, tensorboard_available
from .checkpoint import (BackgroundSaver, load_checkpoint, load_weights, remove_orphans, rng_state, set_rng_state,
                         snapshot)
from .solver import Solver, move_to
from .validation import check_device, check_range, nonnegative_int, positive_int

__all__ = ["Trainer", "History"]

PRECISIONS = ("fp32", "bf16")
PRELOAD_AUTO_BYTES = 1 << 30
# why a step was skipped, as the report says it
NON_FINITE_GRADIENT = "non-finite loss or gradient"
NON_FINITE_UPDATE = "non-finite parameters after the update (undone)"
SCHEDULERS = ("constant", "cosine", "step")
# checkpoint_every as wall time: "90s", "5min", "1h"
_PERIOD = re.compile(r"\s*(\d+(?:\.\d*)?)\s*(s|min|h)\s*")
_SECONDS = {"s": 1.0, "min": 60.0, "h": 3600.0}
# the options of each named scheduler, and their checks
SCHEDULER_OPTIONS = {
    "constant": {},
    "cosine": {"T_max": positive_int, "eta_min": lambda name, v: check_range(name, v, 0.0)},
    "step": {"step_size": positive_int, "gamma": lambda name, v: check_range(name, v, 0.0, 1.0, low_open=True,
                                                                            high_open=False)},
}


class History:
    """Per-epoch records of a run: ``history["train_loss"]`` is the list over epochs."""

    def __init__(self, rows: Sequence[dict] | None = None):
        self.rows: list[dict] = [dict(r) for r in rows or []]

    def append(self, row: dict) -> None:
        self.rows.append(dict(row))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: str) -> list:
        if not any(key in r for r in self.rows):
            known = sorted({k for r in self.rows for k in r})
            raise KeyError(f"no column {key!r} in history; columns: {known}")
        return [r.get(key, math.nan) for r in self.rows]

    @property
    def last(self) -> dict:
        return self.rows[-1] if self.rows else {}

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.rows, indent=1))

    def plot(self, path: str | os.PathLike, keys: Sequence[str] = ("train_loss", "val_loss")) -> Path:
        """Loss curves against the epoch, on a log scale, saved as an image."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        epochs = self["epoch"]
        for key in keys:
            if any(key in r for r in self.rows):
                ax.semilogy(epochs, self[key], label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return Path(path)

    def __repr__(self) -> str:
        return f"History({len(self)} epochs, last={self.last})"


class _Shard(Sampler[int]):
    """Indices rank, rank + world, ...: every sample evaluated exactly once across ranks."""

    def __init__(self, n: int, rank: int, world: int):
        self.indices = list(range(rank, n, world))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class _Preloaded:
    """The whole dataset as one batch on the device, cut into the batches a DataLoader would give.

    Same sampler, same order, same batches as the streaming path, without per-sample indexing,
    collation and host-to-device copies in every step (on a GPU these cost a third of a small
    FNO's step).
    """

    def __init__(self, data: Dataset, sampler: Sampler, batch_size: int, device: torch.device):
        chunks = [move_to(b, device) for b in DataLoader(data, batch_size=256, shuffle=False)]
        self.batch = _concat(chunks)
        self.sampler, self.batch_size, self.device = sampler, batch_size, device

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        order = torch.tensor(list(self.sampler), device=self.device)
        for idx in order.split(self.batch_size):
            yield _index(self.batch, idx)


_IN_BUFFER = object()  # where a tensor of the saved optimizer state sits in the rollback's buffers


def _strip(obj: Any, tensors: list[torch.Tensor]) -> Any:
    """``obj``'s dicts, lists and tuples copied, each tensor appended to ``tensors`` and marked ``_IN_BUFFER``."""
    if isinstance(obj, torch.Tensor):
        tensors.append(obj)
        return _IN_BUFFER
    if type(obj) is dict:
        return {k: _strip(v, tensors) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_strip(v, tensors) for v in obj)
    return obj  # a number, a string or None (what weights_only checkpoints allow)


def _fill(obj: Any, buffers: Iterator[torch.Tensor]) -> Any:
    """The inverse of :func:`_strip`: the marks replaced by ``buffers`` in order."""
    if obj is _IN_BUFFER:
        return next(buffers)
    if type(obj) is dict:
        return {k: _fill(v, buffers) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_fill(v, buffers) for v in obj)
    return obj


class _Rollback:
    """Parameters and optimizer state from before a step, to undo a step that leaves a non-finite parameter.

    :meth:`take` copies the parameters and every tensor of ``optimizer.state_dict()`` into
    buffers allocated once and reused while those tensors keep their layout (two fused copies
    per step); :meth:`restore` copies the parameters back and loads the saved state through
    ``optimizer.load_state_dict``, so that an optimizer caching values derived from its state
    rebuilds them. :meth:`finite` is one fused reduction over the parameters.
    """

    def __init__(self, params: list[torch.Tensor]):
        self.params = [p.detach() for p in params]
        self.saved = [torch.empty_like(p) for p in self.params]
        # norms of complex tensors are several times slower than of their real views (same storage)
        self.real = [torch.view_as_real(p) if p.is_complex() else p for p in self.params]
        self.state: Any = None  # the optimizer's state_dict, its tensors marked _IN_BUFFER
        self.buffers: list[torch.Tensor] = []
        self.layout: list[tuple] = []

    @torch.no_grad()
    def take(self, optimizer: torch.optim.Optimizer) -> None:
        torch._foreach_copy_(self.saved, self.params)
        tensors: list[torch.Tensor] = []
        self.state = _strip(optimizer.state_dict(), tensors)
        layout = [(t.shape, t.dtype, t.device) for t in tensors]
        if layout != self.layout:  # the first steps create the state; some optimizers grow it
            self.buffers, self.layout = [t.clone() for t in tensors], layout
        elif tensors:
            torch._foreach_copy_(self.buffers, tensors)

    def finite(self) -> bool:
        """Are all parameters finite?

        A finite 2-norm proves it and is the fastest fused reduction; an infinite one may be an
        overflow of huge finite entries, so it is settled by the largest magnitudes.
        """
        if bool(torch.isfinite(torch.stack(torch._foreach_norm(self.real))).all()):
            return True
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(self.real, ord=math.inf))).all())

    @torch.no_grad()
    def restore(self, optimizer: torch.optim.Optimizer) -> None:
        torch._foreach_copy_(self.params, self.saved)
        optimizer.load_state_dict(_fill(self.state, iter(self.buffers)))
        # the optimizer may now hold the buffers themselves: allocate afresh at the next take
        self.buffers, self.layout = [], []


class Trainer:
    """Train any :class:`~sciml.Solver`.

    Parameters
    ----------
    solver : the Solver to train (its ``loss(batch)`` is minimised).
    optimizer : a name from :data:`sciml.optim.OPTIMIZERS` (e.g. ``"adamw"``), or a callable
        ``params -> torch.optim.Optimizer``. An optimizer's ``step_requires`` declaration
        (see :mod:`sciml.optim`), read before every step, decides whether the step passes a
        closure, keeps the graph, passes the gradient of ``solver.sampled_loss`` or the loss.
    lr, weight_decay : learning rate and decoupled weight decay for a named optimizer.
    optimizer_options : extra keyword arguments for a named optimizer.
    epochs : total number of epochs; a resumed run continues up to this number.
    batch_size : samples per step on each process.
    scheduler : ``"constant"``, ``"cosine"`` (to zero over ``epochs``), ``"step"``
        (``step_size`` epochs, factor ``gamma``; the FNO recipe halves every 100), or a callable
        ``optimizer -> LRScheduler``. Stepped once per epoch.
    scheduler_options : keyword arguments for the named scheduler: ``T_max`` and ``eta_min`` for
        ``"cosine"``, ``step_size`` and ``gamma`` for ``"step"``.
    grad_clip : clip the global gradient norm to this value (None: no clipping). Clipping by the
        factor c makes the step's objective c·L for the optimizer: second-order optimizers get
        Hessian-vector products (``"create_graph"``) and Gauss–Newton samples (``"sampled_loss"``)
        of c·L too, as AdamW's second moment sees the clipped gradient. Optimizers that take a
        closure (L-BFGS) evaluate the loss themselves and are not clipped.
    precision : ``"fp32"`` or ``"bf16"`` (autocast; solvers with ``supports_bf16 = False``
        fall back to fp32 with a warning).
    compile : wrap the training objective in ``torch.compile``.
    cuda_graph : capture the training step as a CUDA graph and replay it (see :mod:`sciml.cuda_graph`):
        one launch per step instead of hundreds, with the same guard against non-finite steps.
        Needs an optimizer with a capturable mode (AdamW, Adam, ...) and no closure; a batch of
        another shape (the last one of an epoch) runs uncaptured. Where the step cannot be
        captured, a warning says why and the eager step runs.
    device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when present. Under
        ``torchrun`` each process takes ``cuda:LOCAL_RANK``.
    num_workers : DataLoader worker processes.
    preload : hold the whole dataset on ``device`` and index batches there (True), stream it
        through a DataLoader (False), or preload when it takes at most 1 GiB and no workers
        were asked for (``"auto"``). Batches are the same either way.
    checkpoint_dir : where ``last.pt`` (the whole state, to resume), ``best.pt`` (the solver's weights
        at the best finite validation loss, or training loss without validation data),
        ``history.json`` and ``metrics.csv`` go, and TensorBoard logs under ``tensorboard/`` when the
        package is installed; None keeps nothing on disk. Checkpoints hold tensors and plain values
        only (see :mod:`sciml.checkpoint`) and are written on a background thread, one at a time:
        the step loop waits only for a copy of the state to host memory.
    checkpoint_every : write the checkpoints every this many epochs (an int), or once this much
        wall time has passed since the last one (a string: ``"90s"``, ``"5min"``, ``"1h"``). The
        last epoch is always written. A resumed run restarts from the last checkpoint written.
    resume : continue from ``checkpoint_dir/last.pt`` if it exists.
    seed : seeds the shuffling (per epoch) and the global RNGs of a fresh run.
    progress : show a progress bar; within a step that evaluates the loss many times (L-BFGS,
        line searches) it shows the evaluations so far and the latest loss.
    log_every : print an epoch line (losses, metrics, rate, and the seconds of the step loop,
        validation and checkpointing) every this many epochs; 0 never; None (default) every epoch
        for runs of up to 50 epochs, else about 50 lines a run.
    callbacks : :class:`~sciml.callbacks.Callback` objects, called on the main process at fit start,
        after each step, after each epoch and at fit end; one may stop the run early
        (:class:`~sciml.callbacks.EarlyStopping`).
    max_skipped_steps : abort after this many consecutive skipped steps (each one is reported).
        A step is skipped when its loss or gradient is not finite, and undone when the update
        leaves a parameter that is not finite (parameters and optimizer state are restored from
        a copy taken before the step, in buffers kept from step to step).

    Notes
    -----
    On glibc, :meth:`fit` sets malloc's thresholds so that freed host memory is kept for the next
    step instead of being faulted in again page by page (see :mod:`sciml.host_memory`; 10–15% of a
    CPU step in ``benchmarks/trainer.py``), and gives the free memory back when it returns.
    ``SCIML_MALLOC=system``, any ``MALLOC_*`` variable, ``GLIBC_TUNABLES`` or an ``LD_PRELOAD``
    allocator leaves malloc alone.
    """

    def __init__(
        self,
        solver: Solver,
        *,
        optimizer: str | Callable[..., torch.optim.Optimizer] = "adamw",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer_options: dict | None = None,
        epochs: int = 10,
        batch_size: int = 32,
        scheduler: str | Callable | None = "constant",
        scheduler_options: dict | None = None,
        grad_clip: float | None = None,
        precision: str = "fp32",
        compile: bool = False,
        cuda_graph: bool = False,
        device: str | torch.device | None = None,
        num_workers: int = 0,
        preload: bool | str = "auto",
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | str = 1,
        resume: bool = True,
        seed: int = 0,
        progress: bool = True,
        log_every: int | None = None,
        max_skipped_steps: int = 10,
        callbacks: Sequence[Callback] = (),
    ):
        if not isinstance(solver, Solver):
            raise TypeError(f"solver must be a sciml.Solver, got {type(solver).__name__}")
        # every number at the door: a NaN weight decay would otherwise poison the weights at the first step
        check_range("lr", lr, 0.0, low_open=True)
        check_range("weight_decay", weight_decay, 0.0)
        for name, value in (("epochs", epochs), ("batch_size", batch_size), ("max_skipped_steps", max_skipped_steps)):
            positive_int(name, value)
        nonnegative_int("num_workers", num_workers)
        if log_every is not None:
            nonnegative_int("log_every", log_every)
        self.checkpoint_epochs, self.checkpoint_seconds = _checkpoint_period(checkpoint_every)
        if not isinstance(callbacks, (list, tuple)) or not all(isinstance(cb, Callback) for cb in callbacks):
            raise TypeError(f"callbacks must be a list of sciml.callbacks.Callback objects (instances), got "
                            f"{callbacks!r}")
        callbacks = list(callbacks)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
        if grad_clip is not None:
            check_range("grad_clip", grad_clip, 0.0, low_open=True)
        for name, value in (("compile", compile), ("cuda_graph", cuda_graph)):
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be True or False, got {value!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if scheduler is None:
            scheduler = "constant"
        if isinstance(scheduler, str):
            if scheduler not in SCHEDULERS:
                raise ValueError(f"unknown scheduler {scheduler!r}; expected one of {SCHEDULERS} or a callable")
            known = SCHEDULER_OPTIONS[scheduler]
            for name, value in (scheduler_options or {}).items():
                if name not in known:
                    raise ValueError(f"scheduler {scheduler!r} takes the options {sorted(known)}, got {name!r}")
                known[name](f"scheduler_options[{name!r}]", value)
        if preload not in (True, False, "auto"):
            raise ValueError(f"preload must be True, False or 'auto', got {preload!r}")
        if isinstance(optimizer, str):
            from sciml.optim import OPTIMIZERS  # the core depends on optim only through names

            if optimizer.lower() not in OPTIMIZERS:
                raise ValueError(f"unknown optimizer {optimizer!r}; expected one of: {', '.join(OPTIMIZERS)}")
        elif not callable(optimizer):
            raise TypeError(f"optimizer must be a name or a callable params -> Optimizer, got {type(optimizer).__name__}")
        # the optimizers check their own ranges, but torch's let a NaN momentum or dampening through
        for name, value in (optimizer_options or {}).items():
            numbers = value if isinstance(value, (tuple, list)) else (value,)
            if any(isinstance(v, float) and math.isnan(v) for v in numbers):
                raise ValueError(f"optimizer_options[{name!r}] must be a number, not NaN, got {value!r}")

        self.solver = solver
        self.optimizer_spec = optimizer
        self.lr, self.weight_decay = lr, weight_decay
        self.optimizer_options = dict(optimizer_options or {})
        self.epochs, self.batch_size = epochs, batch_size
        self.scheduler_spec, self.scheduler_options = scheduler, dict(scheduler_options or {})
        self.grad_clip = grad_clip
        self.precision = precision
        self.compile, self.cuda_graph = compile, cuda_graph
        self.num_workers = num_workers
        self.preload = preload
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.seed = seed
        self.progress = progress
        self._bar, self._bar_shown = None, 0.0  # the bar of the running fit, when it last showed an evaluation
        self.log_every = log_every
        self.max_skipped_steps = max_skipped_steps
        self.callbacks = callbacks
        self.should_stop = False  # a callback sets it to end the run after the current epoch
        self.validates = False  # whether the running fit has validation data
        self._saver = BackgroundSaver()

        cuda = torch.cuda.is_available() if device is None else check_device("device", device).type == "cuda"
        self.dist = distributed.setup(use_cuda=cuda)
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if cuda else "cpu"
        elif cuda and self.dist.enabled:
            device = f"cuda:{self.dist.local_rank}"
        self.device = torch.device(device)
        if self.precision == "bf16" and not solver.supports_bf16:
            warnings.warn(f"{type(solver).__name__} does not support bf16 autocast; training in fp32", stacklevel=2)
            self.precision = "fp32"

        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self._rollback: _Rollback | None = None  # set by fit
        self.history = History()

    # ---------------------------------------------------------------- building blocks
    def _make_optimizer(self) -> torch.optim.Optimizer:
        if isinstance(self.optimizer_spec, str):
            from sciml.optim import build_optimizer

            return build_optimizer(self.optimizer_spec, self.solver, lr=self.lr,
                                   weight_decay=self.weight_decay, **self.optimizer_options)
        opt = self.optimizer_spec([p for p in self.solver.parameters() if p.requires_grad])
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer callable must return a torch.optim.Optimizer, got {type(opt).__name__}")
        return opt

    def _make_scheduler(self, opt: torch.optim.Optimizer):
        spec, o = self.scheduler_spec, self.scheduler_options
        if callable(spec):
            return spec(opt)
        if spec == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=o.get("T_max", self.epochs),
                                                              eta_min=o.get("eta_min", 0.0))
        if spec == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=o.get("step_size", 100), gamma=o.get("gamma", 0.5))
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)

    def _loader(self, data: Dataset, train: bool) -> DataLoader | _Preloaded:
        if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
            raise TypeError(f"{'train' if train else 'val'} data must be a map-style Dataset, got {type(data).__name__}")
        if len(data) == 0:
            raise ValueError(f"{'train' if train else 'val'} data is empty")
        if train:
            sampler = DistributedSampler(data, num_replicas=self.dist.world_size, rank=self.dist.rank,
                                         shuffle=True, seed=self.seed)
        else:
            sampler = _Shard(len(data), self.dist.rank, self.dist.world_size)
        if self._should_preload(data):
            return _Preloaded(data, sampler, self.batch_size, self.device)
        # its own generator: a DataLoader otherwise draws its workers' base seed from the global
        # RNG each epoch, and the global stream (dropout, noise) would depend on the data path
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          pin_memory=self.device.type == "cuda", persistent_workers=self.num_workers > 0,
                          generator=torch.Generator().manual_seed(self.seed))

    def _should_preload(self, data: Dataset) -> bool:
        if self.preload != "auto":
            return bool(self.preload)
        if self.num_workers > 0:  # the user asked for a streaming loader
            return False
        return _nbytes(data[0]) * len(data) <= PRELOAD_AUTO_BYTES

    def _autocast(self, cache_enabled: bool = True):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=cache_enabled)
        return nullcontext()

    # ---------------------------------------------------------------- the step
    def _step(self, objective: nn.Module, batch: Any, params: list[torch.Tensor]) -> tuple[float, str | None]:
        """One optimisation step; returns (loss, None), or (loss, why) for a skipped step.

        A step with a non-finite loss or gradient is not taken; one whose update leaves a
        non-finite parameter (or, for a closure step, a non-finite loss) is undone.
        The optimizer's ``step_requires`` is read before every step (it may change between
        steps, e.g. a Hessian estimate refreshed every k steps needs the graph only then).
        """
        from sciml.optim import step_requires

        opt, rollback = self.optimizer, self._rollback
        requires = step_requires(opt)
        opt.zero_grad(set_to_none=True)

        def backward_keeping_graph(loss: torch.Tensor) -> None:
            with warnings.catch_warnings():  # the grad/parameter cycle it warns of is cut after the step
                warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
                loss.backward(create_graph=True)

        if "closure" in requires:
            evaluations, latest = 0, None

            def closure():
                nonlocal evaluations, latest
                opt.zero_grad(set_to_none=True)
                with self._autocast():
                    loss = objective(batch)
                loss.backward()
                evaluations += 1
                latest = loss.detach()
                self._show_evaluation(evaluations, loss)
                return loss

            if "create_graph" in requires:
                # Newton–CG with a line search (NNCG): the step reads this graph-carrying gradient
                # for its Hessian-vector products before its closure replaces it
                with self._autocast():
                    graph_loss = objective(batch)
                backward_keeping_graph(graph_loss)
                loss = graph_loss.detach()  # the gradients alone hold the graph now
                del graph_loss
                if not (torch.isfinite(loss) and torch.isfinite(_grad_norm(params))):
                    opt.zero_grad(set_to_none=True)
                    return float(loss), NON_FINITE_GRADIENT
                rollback.take(opt)
                returned = opt.step(closure, **({"loss": loss} if "loss" in requires else {}))
                opt.zero_grad(set_to_none=True)  # frees the graph
            else:
                rollback.take(opt)
                returned = opt.step(closure)
            # the latest evaluation, not the step's return value: L-BFGS returns its first one
            latest = latest if latest is not None else returned
            value = float(latest.detach()) if isinstance(latest, torch.Tensor) else math.nan
            why = NON_FINITE_GRADIENT if not math.isfinite(value) else None if rollback.finite() else NON_FINITE_UPDATE
            if why:  # the closure's steps moved the weights already
                rollback.restore(opt)
            return value, why

        with self._autocast():
            loss = objective(batch)
        if "create_graph" in requires:
            backward_keeping_graph(loss)
        else:
            loss.backward()
        norm = _grad_norm(params)
        scale = None
        if self.grad_clip:
            # clipping turns this step's objective into c·L, c = min(1, grad_clip / ‖∇L‖), and the
            # optimizer gets the gradient and the curvature of c·L alike (as AdamW's second moment
            # sees the clipped gradient): under "create_graph" the scaling joins the graph, so
            # Hessian-vector products are c·Hz; Gauss–Newton samples are scaled by √c
            scale = (self.grad_clip / (norm + 1e-6)).clamp(max=1.0)
            if "create_graph" in requires:
                for p in params:
                    if p.grad is not None:
                        p.grad = p.grad * scale
            else:
                torch.nn.utils.clip_grads_with_norm_(params, self.grad_clip, norm)
        # one host sync for the loss and the guard: the gradients are already all-reduced, so every
        # rank sees the same norm; the loss is local, so its finiteness is agreed on explicitly
        checked = torch.stack([loss.detach().double(), norm.double()])
        if self.dist.enabled:
            flag = torch.isfinite(checked).all().double().reshape(1)
            checked = torch.cat([checked, distributed.all_reduce_sum(flag, self.dist)])
            value, _, agreed = checked.tolist()
            ok = agreed == self.dist.world_size
        else:
            value, norm_value = checked.tolist()
            ok = math.isfinite(value) and math.isfinite(norm_value)
        why = None if ok else NON_FINITE_GRADIENT
        if ok:
            extra = {}
            if "sampled_loss" in requires:
                extra["sampled_grad"] = lambda generator, wanted: self._sampled_grad(batch, generator, wanted, scale)
            if "loss" in requires:
                extra["loss"] = loss.detach()
            rollback.take(opt)
            opt.step(**extra)
            if not rollback.finite():  # the same parameters on every rank: the same verdict
                rollback.restore(opt)
                why = NON_FINITE_UPDATE
        if why or "create_graph" in requires:
            opt.zero_grad(set_to_none=True)
        return value, why

    def _check_optimizer_fits_the_step(self) -> None:
        """Refuse, before any work, the combinations the step cannot serve correctly."""
        from sciml.optim import may_require

        name, may = type(self.optimizer).__name__, may_require(self.optimizer)
        if self.grad_clip and "closure" in may:
            raise ValueError(f"grad_clip={self.grad_clip} cannot apply to {name}: its step re-evaluates the loss "
                             "through a closure, and a line search needs the true gradient; pass grad_clip=None")
        if self.compile and "create_graph" in may:
            raise ValueError(f"compile=True cannot serve {name}: it takes Hessian-vector products, and torch.compile "
                             "has no double backward; pass compile=False")
        # Curvature from each rank's own graph or samples, or layer statistics of its own batch, would
        # differ between ranks (Hessian-vector products through DDP also fail outright).
        if self.dist.enabled and (may & {"create_graph", "sampled_loss"}
                                  or not getattr(self.optimizer, "supports_ddp", True)):
            raise ValueError(f"{name} cannot train under DistributedDataParallel yet (its curvature estimate is "
                             f"per rank); run it in one process")

    def _sampled_grad(self, batch: Any, generator: torch.Generator, params: Sequence[torch.Tensor],
                      scale: torch.Tensor | None = None) -> list[torch.Tensor | None]:
        """Gradients of ``solver.sampled_loss(batch, generator)`` for ``params`` (one process: see ``fit``).

        ``scale`` is the step's gradient-clipping factor c: the samples are scaled by √c, so their
        outer products estimate the Gauss–Newton matrix of c·L.
        """
        with self._autocast():
            sampled = self.solver.sampled_loss(batch, generator)
        if scale is not None:
            sampled = sampled * scale.sqrt()
        return list(torch.autograd.grad(sampled, list(params), allow_unused=True))

    @torch.no_grad()
    def evaluate(self, data: Dataset | DataLoader) -> dict[str, float]:
        """Metrics of ``solver.evaluate`` averaged over every sample of ``data`` (all ranks)."""
        loader = data if isinstance(data, (DataLoader, _Preloaded)) else self._loader(data, train=False)
        was_training = self.solver.training
        self.solver.eval()
        sums: dict[str, torch.Tensor] = {}
        count = torch.zeros(1, dtype=torch.float64, device=self.device)
        for batch in loader:
            batch = move_to(batch, self.device, non_blocking=True)
            with self._autocast():
                metrics = self.solver.evaluate(batch)
            n = _batch_len(batch)
            for k, v in metrics.items():  # summed on the device: no host sync per batch
                value = torch.as_tensor(v, device=self.device).detach().double().reshape(1)
                sums[k] = sums.get(k, torch.zeros(1, dtype=torch.float64, device=self.device)) + value * n
            count += n
        self.solver.train(was_training)
        keys = sorted(sums)
        if self.dist.enabled:  # every rank must reduce the same keys in the same order
            packed = torch.cat([sums[k] for k in keys] + [count])
            distributed.all_reduce_sum(packed, self.dist)
            sums, count = {k: packed[i : i + 1] for i, k in enumerate(keys)}, packed[-1:]
        return {k: float(sums[k] / count) for k in keys}

    # ---------------------------------------------------------------- checkpoints
    def _checkpoint(self, epoch: int, best: float, best_weights: dict | None) -> None:
        """Hand ``last.pt`` (and ``best.pt`` when ``best_weights`` are new) to the background saver."""
        states = [rng_state()]
        if self.dist.enabled:
            states = [None] * self.dist.world_size
            torch.distributed.all_gather_object(states, rng_state())
        if not self.dist.is_main:
            return
        identity = self._identity()
        files = [({
            "solver": self.solver.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "best": best,
            "history": self.history.rows,
            "rng": states,
            "world_size": self.dist.world_size,
            **identity,
        }, self.checkpoint_dir / "last.pt")]
        if best_weights is not None:
            files.append(({**best_weights, **identity}, self.checkpoint_dir / "best.pt"))
        self._saver.submit(files)

    def _due(self, epoch: int, since: float) -> bool:
        """Is a checkpoint due after ``epoch`` (counted from 1), ``since`` seconds after the last one?"""
        if self.checkpoint_dir is None:
            return False
        if epoch == self.epochs:
            return True
        if self.checkpoint_epochs is not None:
            return epoch % self.checkpoint_epochs == 0
        due = float(since >= self.checkpoint_seconds)
        if self.dist.enabled:  # clocks differ between ranks; every rank must join the RNG gather
            due = float(distributed.all_reduce_sum(torch.tensor([due], device=self.device), self.dist).item())
        return due > 0

    def _identity(self) -> dict[str, str]:
        """What a resumed run must share with the one that wrote the checkpoint: names as the user gave them."""
        return {"solver_class": type(self.solver).__name__,
                **{f"{part}_name": spec if isinstance(spec, str) else type(built).__name__
                   for part, spec, built in (("optimizer", self.optimizer_spec, self.optimizer),
                                             ("scheduler", self.scheduler_spec, self.scheduler))}}

    def _restore(self) -> tuple[int, float]:
        path = self.checkpoint_dir / "last.pt"
        ckpt = load_checkpoint(path, map_location=self.device)
        remedy = "pass resume=False (sciml train --overwrite) or another checkpoint_dir"
        for key, here in self._identity().items():
            if ckpt.get(key) != here:
                part = key.split("_")[0]
                raise ValueError(f"checkpoint {str(path)!r} is of a run with the {part} {ckpt.get(key)!r}, "
                                 f"not {here!r}; resume with the same {part}, or {remedy}")
        load_weights(self.solver, ckpt["solver"], path, remedy)
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            release_groups(self.optimizer)  # as a run with cuda_graph=True saved it
            self.scheduler.load_state_dict(ckpt["scheduler"])
        except (ValueError, KeyError, RuntimeError) as exc:  # e.g. other parameter groups or options
            raise ValueError(f"the optimizer or scheduler state in checkpoint {str(path)!r} does not fit this run "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                             f"resume with the same options, or {remedy}") from exc
        self.history = History(ckpt["history"])
        if ckpt["world_size"] == self.dist.world_size:
            set_rng_state(ckpt["rng"][self.dist.rank])
        else:
            warnings.warn("resuming on a different number of processes: random streams restart", stacklevel=3)
        return ckpt["epoch"], ckpt["best"]

    # ---------------------------------------------------------------- the loop
    def fit(self, train: Dataset, val: Dataset | None = None) -> History:
        """Train for ``epochs`` epochs (or what is left of them after a resume), or until a callback stops it.

        Returns the :class:`History`; the solver is left trained, in eval mode, on ``device``.
        """
        host_memory.keep()  # a step reuses the last step's pages instead of faulting them in again
        solver = self.solver.to(self.device)
        train_loader = self._loader(train, train=True)
        val_loader = self._loader(val, train=False) if val is not None else None
        self.optimizer = self._make_optimizer()
        self._check_optimizer_fits_the_step()
        self.scheduler = self._make_scheduler(self.optimizer)

        if self.checkpoint_dir is not None and self.dist.is_main:  # what writers killed mid-write left
            for name in ("last.pt", "best.pt"):
                remove_orphans(self.checkpoint_dir / name)
        start, best = 0, math.inf
        if self.resume and self.checkpoint_dir is not None and (self.checkpoint_dir / "last.pt").exists():
            start, best = self._restore()
            self._say(f"resumed from {self.checkpoint_dir / 'last.pt'} at epoch {start}")
        else:
            torch.manual_seed(self.seed + self.dist.rank)
            solver.prepare(train)

        objective: nn.Module = solver
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            objective = nn.parallel.DistributedDataParallel(solver, device_ids=ids)
        if self.compile:
            objective = torch.compile(objective)
        params = [p for p in solver.parameters() if p.requires_grad]
        self._rollback = _Rollback(params)
        if self.cuda_graph:
            take_step = GraphStep(self, objective, params)
        else:
            take_step = partial(self._step, objective, params=params)
        callbacks = self._callbacks() if self.dist.is_main else []
        log_every = self.log_every if self.log_every is not None else max(1, -(-self.epochs // 50))

        steps = len(train_loader)
        bar = tqdm(total=self.epochs * steps, initial=start * steps, disable=not (self.progress and self.dist.is_main),
                   dynamic_ncols=True, desc=type(solver).__name__)
        skipped_in_row, step = 0, start * steps
        self._bar, self.should_stop = bar, False
        best_weights, last_saved = None, time.monotonic()
        self.validates = val_loader is not None
        try:
            for cb in callbacks:
                cb.on_fit_start(self, start)
            for epoch in range(start, self.epochs):
                if self._stop_agreed():  # e.g. a resumed run that had stopped early
                    break
                solver.train()
                train_loader.sampler.set_epoch(epoch)
                t0, total, n_ok, skipped = time.perf_counter(), 0.0, 0, 0
                for batch in train_loader:
                    batch = move_to(batch, self.device, non_blocking=True)
                    loss, why = take_step(batch)
                    step += 1
                    if why is None:
                        total, n_ok, skipped_in_row = total + loss, n_ok + 1, 0
                    else:
                        skipped, skipped_in_row = skipped + 1, skipped_in_row + 1
                        self._say(f"epoch {epoch + 1}: skipped a step with {why} (loss={loss})", warn=True)
                        if skipped_in_row >= self.max_skipped_steps:
                            raise FloatingPointError(
                                f"{skipped_in_row} consecutive steps were skipped, the last with {why}; "
                                "lower the learning rate, set grad_clip, or check the data")
                    for cb in callbacks:
                        cb.on_step_end(self, step, loss)
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4g}", refresh=False)
                row = {"epoch": epoch + 1, "train_loss": _all_mean(total, n_ok, self.dist, self.device),
                       "lr": float(self.optimizer.param_groups[0]["lr"]), "skipped_steps": skipped}
                self.scheduler.step()
                t1 = time.perf_counter()
                if val_loader is not None:
                    row.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
                t2 = time.perf_counter()
                score = row.get("val_loss", row["train_loss"])
                # a non-finite score is reported and never counts as best: the first finite one writes best.pt
                if not math.isfinite(score):
                    self._say(f"epoch {epoch + 1}: {'val_loss' if 'val_loss' in row else 'train_loss'} is {score}, "
                              "not finite: it does not count as the best", warn=True)
                elif score < best:
                    best = score
                    if self.checkpoint_dir is not None and self.dist.is_main:  # kept until the next checkpoint
                        best_weights = {"solver": snapshot(solver.state_dict()), "epoch": epoch + 1, "best": best}
                row.update(seconds=t2 - t0, step_seconds=t1 - t0, val_seconds=t2 - t1)
                self.history.append(row)
                saved = self._due(epoch + 1, time.monotonic() - last_saved)
                if saved:
                    self._checkpoint(epoch + 1, best, best_weights)
                    best_weights, last_saved = None, time.monotonic()
                row["checkpoint_seconds"] = time.perf_counter() - t2  # what the step loop waited for
                self.history.rows[-1] = dict(row)
                if self.checkpoint_dir is not None and self.dist.is_main:
                    self.history.save(self.checkpoint_dir / "history.json")
                bar.set_postfix(epoch=epoch + 1, loss=f"{row['train_loss']:.4g}", refresh=False,
                                **({"val": f"{row['val_loss']:.4g}"} if "val_loss" in row else {}))
                if log_every and ((epoch + 1) % log_every == 0 or epoch + 1 == self.epochs or self.should_stop):
                    self._say(_epoch_line(row, self.epochs))
                for cb in callbacks:
                    cb.on_epoch_end(self, row)
                if self._stop_agreed():
                    if not saved and self.checkpoint_dir is not None:  # the run ends here: keep this epoch
                        self._checkpoint(epoch + 1, best, best_weights)
                    break
        except KeyboardInterrupt:
            where = f"; resume from {self.checkpoint_dir}" if self.checkpoint_dir is not None else ""
            self._say(f"interrupted after {len(self.history)} complete epochs{where}")
            raise
        finally:
            bar.close()
            self._bar, self._rollback = None, None  # the rollback buffers: a copy of the weights and state
            self._saver.wait()  # the checkpoint in flight reaches the disk, or its error is raised
            host_memory.release()
            release_groups(self.optimizer)  # a captured run's lr tensors back to floats
            for cb in callbacks:
                cb.on_fit_end(self, self.history)
        solver.eval()
        return self.history

    def _callbacks(self) -> list[Callback]:
        """The loggers every run with a checkpoint_dir has, then the user's callbacks."""
        loggers: list[Callback] = []
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            loggers.append(CSVLogger(self.checkpoint_dir / "metrics.csv"))
            if tensorboard_available():
                loggers.append(TensorBoardLogger(self.checkpoint_dir / "tensorboard"))
        return loggers + list(self.callbacks)  # the loggers first: a failing callback leaves the epoch logged

    def _stop_agreed(self) -> bool:
        """``should_stop`` as every rank sees it (callbacks run on the main process only)."""
        if self.dist.enabled:
            flag = torch.tensor([float(self.should_stop)], device=self.device)
            self.should_stop = bool(distributed.all_reduce_sum(flag, self.dist).item() > 0)
        return self.should_stop
    def _show_evaluation(self, count: int, loss: torch.Tensor) -> None:
        """Keep the bar alive through a long closure step (one L-BFGS step may take minutes):
        at most twice a second, the evaluations of this step so far and the latest loss."""
        bar = self._bar
        if bar is None or bar.disable or time.monotonic() - self._bar_shown < 0.5:
            return
        self._bar_shown = time.monotonic()
        bar.set_postfix(evaluations=count, loss=f"{float(loss.detach()):.4g}")

    def _say(self, msg: str, warn: bool = False) -> None:
        if self.dist.is_main:
            tqdm.write(msg, file=sys.stderr if warn else sys.stdout)


def _grad_norm(params: list[torch.Tensor]) -> torch.Tensor:
    """The global 2-norm of the gradients; complex ones through their real view (same value, ~20x faster)."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    return torch.nn.utils.get_total_norm([torch.view_as_real(g) if g.is_complex() else g for g in grads])


def _checkpoint_period(every: int | str) -> tuple[int | None, float | None]:
    """``checkpoint_every`` as (epochs, None) or (None, seconds)."""
    if isinstance(every, str):
        match = _PERIOD.fullmatch(every)
        if not match or float(match.group(1)) <= 0:
            raise ValueError(f"checkpoint_every must be a positive number of epochs or a wall time such as '90s', "
                             f"'5min' or '1h', got {every!r}")
        return None, float(match.group(1)) * _SECONDS[match.group(2)]
    return positive_int("checkpoint_every", every), None


def _nbytes(item: Any) -> int:
    if isinstance(item, torch.Tensor):
        return item.numel() * item.element_size()
    if isinstance(item, dict):
        return sum(_nbytes(v) for v in item.values())
    if isinstance(item, (list, tuple)):
        return sum(_nbytes(v) for v in item)
    return 0


def _concat(chunks: list) -> Any:
    first = chunks[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(chunks)
    if isinstance(first, dict):
        return {k: _concat([c[k] for c in chunks]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_concat([c[i] for c in chunks]) for i in range(len(first)))
    raise TypeError(f"cannot preload batches of type {type(first).__name__}; pass preload=False")


def _index(batch: Any, idx: torch.Tensor) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[idx]
    if isinstance(batch, dict):
        return {k: _index(v, idx) for k, v in batch.items()}
    return type(batch)(_index(v, idx) for v in batch)


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    if isinstance(batch, dict):
        return _batch_len(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        return _batch_len(batch[0])
    raise TypeError(f"cannot tell the batch size of a {type(batch).__name__}")


def _all_mean(total: float, n: int, info: distributed.DistInfo, device: torch.device) -> float:
    t = torch.tensor([total, float(n)], dtype=torch.float64, device=device)
    distributed.all_reduce_sum(t, info)
    return float(t[0] / t[1]) if t[1] > 0 else math.nan


def _epoch_line(row: dict, epochs: int) -> str:
    """``epoch 3/20  train_loss=0.123  val_loss=...  lr=0.001  (steps 1.2 s, validation 0.1 s, checkpoint 0.01 s)``."""
    timing = {"seconds", "step_seconds", "val_seconds", "checkpoint_seconds", "epoch"}
    values = "  ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k not in timing and not (k == "skipped_steps" and not v))
    validation = f"validation {row['val_seconds']:.3g} s, " if any(k.startswith("val_") for k in row if k not in timing) \
        else ""
    return (f"epoch {row['epoch']}/{epochs}  {values}  (steps {row['step_seconds']:.3g} s, {validation}"
            f"checkpoint {row['checkpoint_seconds']:.3g} s)")


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
