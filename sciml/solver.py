"""The Solver contract: one interface for everything sciml trains and samples.

A neural operator, a PINN, a neural ODE and a diffusion model differ in what a batch is and
what inference means, but each is trained by minimising ``loss(batch)`` and used through
``sample(...)``. That is all :class:`sciml.Trainer` needs to know.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor, nn

__all__ = ["Solver", "move_to"]


class Solver(nn.Module):
    """Base class of every trainable solver.

    Subclasses implement

    - ``loss(batch) -> Tensor``: the scalar training objective on one batch;
    - ``sample(*args, **options)``: inference (predict a field, integrate, generate);
    - ``evaluate(batch) -> dict[str, Tensor]``: per-batch metrics, each a mean over the batch.

    and may override

    - ``prepare(dataset)``: called once by the Trainer before the first epoch of a fresh run,
      with the training dataset (e.g. to fit normalisation statistics, which must then live in
      buffers so that checkpoints carry them);
    - ``supports_bf16``: ``False`` where bf16 autocast would be wrong for the model;
    - ``sampled_loss(batch, generator) -> Tensor``: the loss with labels drawn from the model's
      predictive distribution, for Gauss–Newton curvature estimates (Sophia-G).

    ``forward(batch)`` is the loss, so that DistributedDataParallel and ``torch.compile`` wrap
    the whole training objective.
    """

    supports_bf16: bool = True

    def loss(self, batch: Any) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement loss(batch)")

    def sample(self, *args: Any, **options: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must implement sample(...)")

    def evaluate(self, batch: Any) -> dict[str, Tensor]:
        """Metrics on one batch; by default only the loss."""
        return {"loss": self.loss(batch).detach()}

    def sampled_loss(self, batch: Any, generator: torch.Generator) -> Tensor:
        """A scalar whose gradient ĝ has E[ĝ ĝᵀ] = the Gauss–Newton matrix of ``loss(batch)``.

        The Gauss–Newton–Bartlett construction (Liu et al. 2023, "Sophia", Algorithm 2): with
        the loss a function ℓ of the model's outputs f, draw labels from the predictive
        distribution whose negative log-likelihood has ∇²_f ℓ as its Fisher matrix (for a
        squared error, a Gaussian around the prediction) and differentiate the loss on them;
        equivalently ĝ = Jᵀs with s ~ N(0, ∇²_f ℓ). Random draws come from ``generator``.
        Needed only by optimizers that declare ``"sampled_loss"``.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement sampled_loss(batch, generator), which "
                                  "Gauss-Newton curvature estimates (Sophia-G) need")

    def prepare(self, dataset: Iterable) -> None:
        """Hook run once before training on a fresh run; nothing by default."""

    def forward(self, batch: Any) -> Tensor:
        return self.loss(batch)

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")


def move_to(batch: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Move every tensor in a (nested) dict / list / tuple to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, dict):
        return {k: move_to(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [move_to(v, device, non_blocking) for v in batch]
        return type(batch)(moved) if isinstance(batch, list) else tuple(moved)
    return batch
