"""The Trainer's step captured once as a CUDA graph and replayed (``Trainer(cuda_graph=True)``).

A training step launches hundreds of small kernels, and at small batches the GPU waits for the
CPU to launch them. ``torch.cuda.graph`` records the whole step once (forward, backward, the NaN
guard and the optimizer's update) and replays it as one launch ("whole-network capture" in
PyTorch's CUDA semantics notes; NVIDIA, CUDA C++ Programming Guide, "CUDA Graphs"). A replay
repeats the recorded kernels on the same memory, which shapes this step:

- The batch is copied into buffers recorded once. A batch of another shape or dtype (the last,
  smaller batch of an epoch) runs the same step without the graph.
- Nothing is decided on the host inside the step. The guard of ``Trainer._step`` (a step whose
  loss or gradient is not finite is not taken; one that leaves a parameter not finite is undone)
  becomes arithmetic: the update always runs, and parameters and optimizer state are put back
  with ``torch.where`` where the verdict is to undo. The loss and the verdict reach the host in
  one read per step, as in the eager step.
- The optimizer keeps its step count and learning rate in device tensors (torch's
  ``capturable=True``; the schedulers fill the lr tensor in place). Only optimizers with that
  mode qualify; for the others, and for steps that need the host (closures, second-order steps
  that keep the graph, several processes, ``torch.compile``), the Trainer says why and runs its
  eager step.
- Only the learning rate stays live. Whatever else the step reads from Python at capture time is
  fixed from then on: betas, eps and weight decay (a scheduler cycling momentum is ignored),
  loss weights a callback changes, random draws made on the host.

On a CPU nothing is captured, but the same guarded step runs uncaptured, so its arithmetic is
tested without a GPU.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import nn


WARMUP_STEPS = 3  # eager steps before the capture: optimizer state, cuBLAS/cuFFT plans, autograd streams


def why_not(trainer) -> str | None:
    """Why this run's step cannot be captured, or None."""
    from sciml.optim import may_require

    opt = trainer.optimizer
    requires = may_require(opt)  # on any step: a graph captured once must serve them all
    if requires & {"closure", "create_graph", "sampled_loss", "loss"}:
        return f"{type(opt).__name__} needs the host within its step ({', '.join(sorted(requires))})"
    if "capturable" not in opt.defaults:
        return f"{type(opt).__name__} has no capturable mode (optimizer='adam' and 'adamw' have one)"
    if trainer.dist.enabled:
        return "several processes (DistributedDataParallel) are not captured"
    if trainer.compile:
        return "compile=True and cuda_graph=True do not go together: choose one"
    return None


def release_groups(optimizer: torch.optim.Optimizer) -> None:
    """Learning rates back to floats and ``capturable`` back to the optimizer's default: what a
    checkpoint of a captured run is resumed with, by a captured run or not. An uncaptured torch
    optimizer reads its step count on the host, so a count that a checkpoint put on a GPU goes
    back to the CPU (else every step waits for the device once per parameter)."""
    for group in optimizer.param_groups:
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])
        if "capturable" in group:
            group["capturable"] = optimizer.defaults.get("capturable", False)
            if not group["capturable"] and not group.get("fused"):
                for p in group["params"]:
                    step = optimizer.state.get(p, {}).get("step")
                    if isinstance(step, torch.Tensor) and step.device.type != "cpu":
                        optimizer.state[p]["step"] = step.cpu()


class GraphStep:
    """``step(batch) -> (loss, why)`` like ``Trainer._step``, replayed from a CUDA graph when it can be."""

    def __init__(self, trainer, objective: nn.Module, params: list[torch.Tensor]):
        self.trainer, self.objective, self.params = trainer, objective, params
        self.opt: torch.optim.Optimizer = trainer.optimizer
        self.device = trainer.device
        self.reason = why_not(trainer)
        if self.reason is None and self.device.type != "cuda":
            warnings.warn(f"cuda_graph=True: CUDA graphs need a CUDA device; on {self.device} the step runs "
                          "as usual", stacklevel=3)
        elif self.reason is not None:
            warnings.warn(f"cuda_graph=True: the step is not captured: {self.reason}", stacklevel=3)
        self.steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: list[torch.Tensor] = []  # the batch's tensors the graph reads
        self.layout: list[tuple] | None = None  # of the first batch, a full one: the only one captured
        self.stats: torch.Tensor | None = None  # the graph's output: loss, gradient finite, step kept
        self.tensors: list[torch.Tensor] = []  # what an undone step restores: parameters, then optimizer state
        self.side: torch.cuda.Stream | None = None
        if self.reason is None and self.device.type == "cuda":
            # one side stream for every uncaptured step: the caching allocator reuses blocks per stream
            self.side = torch.cuda.Stream(self.device)
            for group in self.opt.param_groups:
                group["capturable"] = True
                group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
            for state in self.opt.state.values():  # a resumed state keeps Adam's step count on the CPU
                for k, v in state.items():
                    if isinstance(v, torch.Tensor) and v.device != self.device:
                        state[k] = v.to(self.device)

    def __call__(self, batch: Any) -> tuple[float, str | None]:
        if self.reason is not None:
            return self.trainer._step(self.objective, batch, self.params)
        self.steps += 1
        tensors = _batch_tensors(batch)
        layout = [(t.shape, t.dtype, t.device) for t in tensors]
        if self.layout is None:
            self.layout = layout
        if self.steps < WARMUP_STEPS or not self.opt.state:  # the optimizer's state is created here
            return self.trainer._step(self.objective, batch, self.params)
        if not self.tensors:
            self._buffers()
        full = layout == self.layout
        if self.side is not None and self.graph is None and self.steps > WARMUP_STEPS and full:
            self._capture(batch)
            if self.reason is not None:  # failed: the eager step from now on
                return self.trainer._step(self.objective, batch, self.params)
        if self.graph is not None and full:
            torch._foreach_copy_(self.static, tensors)
            self.graph.replay()
            stats = self.stats
        elif self.side is not None:  # warm-up of the guarded step, or a batch of another shape
            current = torch.cuda.current_stream(self.device)
            self.side.wait_stream(current)
            with torch.cuda.stream(self.side):
                self.opt.zero_grad(set_to_none=True)
                stats = self._guarded_step(batch)
            current.wait_stream(self.side)
        else:
            self.opt.zero_grad(set_to_none=True)
            stats = self._guarded_step(batch)
        value, grad_finite, kept = stats.tolist()
        if kept:
            return value, None
        from .train import NON_FINITE_GRADIENT, NON_FINITE_UPDATE

        return value, NON_FINITE_UPDATE if grad_finite else NON_FINITE_GRADIENT

    def _buffers(self) -> None:
        state = [v for p in self.params for v in self.opt.state.get(p, {}).values() if isinstance(v, torch.Tensor)]
        self.tensors = [p.detach() for p in self.params] + state
        self.saved = [torch.empty_like(t) for t in self.tensors]
        self.real = [torch.view_as_real(p) if p.is_complex() else p for p in self.tensors[: len(self.params)]]

    def _guarded_step(self, batch: Any) -> torch.Tensor:
        """The step of ``Trainer._step`` with its host decisions as device arithmetic."""
        from .train import _grad_norm

        trainer = self.trainer
        with trainer._autocast(cache_enabled=False):  # autocast's weight cache is not replayable
            loss = self.objective(batch)
        loss.backward()
        norm = _grad_norm(self.params)
        if trainer.grad_clip:
            torch.nn.utils.clip_grads_with_norm_(self.params, trainer.grad_clip, norm)
        grad_finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
        with torch.no_grad():
            torch._foreach_copy_(self.saved, self.tensors)
            self.opt.step()
            # the largest magnitude of each parameter is finite exactly when all its entries are
            finite = torch.isfinite(torch.stack(torch._foreach_norm(self.real, ord=math.inf))).all()
            kept = grad_finite & finite
            for t, s in zip(self.tensors, self.saved):
                t.copy_(torch.where(kept, t, s))
        return torch.stack([loss.detach().double(), grad_finite.double(), kept.double()])

    def _capture(self, batch: Any) -> None:
        """Record the guarded step on the side stream; on failure, say why and keep the eager step.

        ``capture_begin``/``capture_end`` rather than ``torch.cuda.graph``: that context manager
        leaves its stream current when ending a failed capture raises. ``thread_local``: CUDA
        calls of other threads (the DataLoader's pin-memory thread) do not break the capture.
        """
        from .train import _fill, _strip  # train imports this module

        tensors: list[torch.Tensor] = []
        skeleton = _strip(batch, tensors)
        self.static = [t.clone() for t in tensors]
        static_batch = _fill(skeleton, iter(self.static))
        self.opt.zero_grad(set_to_none=True)  # the gradients are allocated in the graph's memory pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.device):
            torch.cuda.synchronize()
            self.side.wait_stream(torch.cuda.current_stream())
            try:
                with torch.cuda.stream(self.side):
                    graph.capture_begin(capture_error_mode="thread_local")
                    try:
                        self.stats = self._guarded_step(static_batch)
                    finally:
                        graph.capture_end()
            except Exception as exc:  # e.g. an operation that waits for the host, such as .item()
                cause = exc
                while cause.__context__ is not None:  # ending a broken capture raises too: name the first error
                    cause = cause.__context__
                first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
                self.reason = f"capture failed ({type(cause).__name__}: {first})"
                warnings.warn(f"cuda_graph=True: {self.reason}; the step runs as usual", stacklevel=4)
                self.opt.zero_grad(set_to_none=True)
                return
            torch.cuda.current_stream().wait_stream(self.side)
        self.graph = graph


def _batch_tensors(batch: Any) -> list[torch.Tensor]:
    from .train import _strip

    tensors: list[torch.Tensor] = []
    _strip(batch, tensors)
    return tensors


__all__ = ["GraphStep", "why_not", "release_groups"]
