"""OperatorSolver: any neural operator as a trainable :class:`~sciml.Solver`.

The operator maps normalised inputs to normalised outputs; the loss is taken on the outputs in
physical units, as in the FNO paper (Li et al. 2021, relative L2 on the decoded prediction).
Normalisation is per channel (mean and standard deviation over samples and grid points), so a
model trained at one resolution can be evaluated at another, and the statistics are buffers:
they are saved and restored with the model.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch import Tensor, nn

from sciml.losses import get_loss, h1, mse, relative_l2
from sciml.solver import Solver

__all__ = ["OperatorSolver"]


def _pair(batch: Any) -> tuple[Tensor, Tensor]:
    if isinstance(batch, dict):
        try:
            return batch["x"], batch["y"]
        except KeyError as exc:
            raise ValueError(f"an operator batch needs keys 'x' and 'y', got {sorted(batch)}") from exc
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"an operator batch is a dict with 'x' and 'y' or a pair (x, y), got {type(batch).__name__}")


class OperatorSolver(Solver):
    """Train a neural operator on pairs (input field, output field).

    Parameters
    ----------
    operator : an ``nn.Module`` mapping ``(B, in_channels, *grid) → (B, out_channels, *grid)``.
    loss : ``"l2"`` (relative L2, the default), ``"h1"`` (relative H¹ on a non-periodic grid),
        ``"mse"``, or a callable ``(pred, target) -> scalar``.
    normalize : standardise inputs and outputs per channel with statistics of the training
        set (fitted by :meth:`prepare`, which the Trainer calls).
    in_channels, out_channels : needed only if the operator has no such attributes.

    Batches are ``{"x": (B, C_in, *grid), "y": (B, C_out, *grid)}`` (what
    :class:`sciml.datasets.H5Dataset` yields) or pairs ``(x, y)``.
    """

    def __init__(self, operator: nn.Module, loss: str | Callable[[Tensor, Tensor], Tensor] = "l2",
                 normalize: bool = True, in_channels: int | None = None, out_channels: int | None = None):
        super().__init__()
        if not isinstance(operator, nn.Module):
            raise TypeError(f"operator must be an nn.Module, got {type(operator).__name__}")
        self.operator = operator
        self.loss_fn = get_loss(loss)
        self.normalize = normalize
        cin = in_channels if in_channels is not None else getattr(operator, "in_channels", None)
        cout = out_channels if out_channels is not None else getattr(operator, "out_channels", None)
        if not (isinstance(cin, int) and isinstance(cout, int)):
            raise ValueError("in_channels and out_channels must be given for an operator without such attributes")
        self.in_channels, self.out_channels = cin, cout
        self.supports_bf16 = getattr(operator, "supports_bf16", True)
        self.register_buffer("x_mean", torch.zeros(cin))
        self.register_buffer("x_std", torch.ones(cin))
        self.register_buffer("y_mean", torch.zeros(cout))
        self.register_buffer("y_std", torch.ones(cout))
        self.register_buffer("fitted", torch.tensor(not normalize))

    # ------------------------------------------------------------------ normalisation
    @torch.no_grad()
    def prepare(self, dataset: Iterable) -> None:
        """Fit the per-channel mean and standard deviation of inputs and outputs (float64 sums)."""
        if not self.normalize:
            return
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=False)
        sums = None
        for batch in loader:
            x, y = _pair(batch)
            self._check_channels(x, y)
            parts = []
            for t in (x, y):
                t = t.double().transpose(0, 1).flatten(1)  # (C, everything else)
                parts += [t.sum(1), t.pow(2).sum(1), torch.full((t.shape[0],), t.shape[1], dtype=torch.float64)]
            sums = parts if sums is None else [a + b for a, b in zip(sums, parts)]
        if sums is None:
            raise ValueError("cannot fit normalisation on an empty dataset")
        for prefix, (s, s2, n) in (("x", sums[0:3]), ("y", sums[3:6])):
            mean = s / n
            std = (s2 / n - mean.pow(2)).clamp_min(0).sqrt()
            std = torch.where(std > 1e-12 * mean.abs().clamp_min(1.0), std, torch.ones_like(std))  # constant channel
            getattr(self, f"{prefix}_mean").copy_(mean)
            getattr(self, f"{prefix}_std").copy_(std)
        self.fitted.fill_(True)

    def _shape(self, stat: Tensor, like: Tensor) -> Tensor:
        return stat.to(like.dtype).view(1, -1, *([1] * (like.dim() - 2)))

    def _check_channels(self, x: Tensor, y: Tensor | None = None) -> None:
        if x.dim() < 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape (batch, {self.in_channels}, *grid), got {tuple(x.shape)}")
        if y is not None and (y.dim() != x.dim() or y.shape[1] != self.out_channels or y.shape[2:] != x.shape[2:]):
            raise ValueError(f"y must have shape (batch, {self.out_channels}, {', '.join(map(str, x.shape[2:]))}) "
                             f"to match x {tuple(x.shape)}, got {tuple(y.shape)}")

    def _predict(self, x: Tensor) -> Tensor:
        if not bool(self.fitted):
            raise RuntimeError("normalisation statistics are not fitted: call solver.prepare(train_dataset) "
                               "(the Trainer does) or build the solver with normalize=False")
        weight = next(self.operator.parameters(), None)
        dtype = weight.dtype.to_real() if weight is not None else x.dtype
        if x.dtype != dtype:  # torch's own message ("mat1 and mat2 ...") names neither the data nor the remedy
            raise ValueError(f"the data are {x.dtype} but the operator's parameters are {dtype}; cast the data "
                             f"(e.g. H5Dataset(..., dtype={dtype})) or the solver (solver.to({x.dtype}))")
        z = (x - self._shape(self.x_mean, x)) / self._shape(self.x_std, x)
        out = self.operator(z)
        return out * self._shape(self.y_std, out) + self._shape(self.y_mean, out)

    # ------------------------------------------------------------------ the contract
    def loss(self, batch: Any) -> Tensor:
        x, y = _pair(batch)
        self._check_channels(x, y)
        return self.loss_fn(self._predict(x).float(), y.float())

    def sampled_loss(self, batch: Any, generator: torch.Generator) -> Tensor:
        """Sophia-G's sampled loss (see :meth:`sciml.Solver.sampled_loss`): ⟨f, s⟩ with s ~ N(0, ∇²_f ℓ).

        For ``"mse"``, ∇²_f ℓ = 2/N·I over the N numbers of the batch: labels ŷ ~ N(f, N/2·I)
        around the prediction. For ``"l2"`` (the mean over the batch of ‖e_b‖/‖y_b‖, e = f − y),
        ∇²_f ℓ is (I − ê_b ê_bᵀ)/(B ‖e_b‖ ‖y_b‖) per sample: s is a standard normal draw with its
        component along the error removed and scaled accordingly. Other losses raise.
        """
        if self.loss_fn not in (mse, relative_l2):
            raise NotImplementedError("sampled_loss (Sophia-G) is implemented for the 'l2' and 'mse' losses, "
                                      f"not for {self.loss_fn!r}")
        x, y = _pair(batch)
        self._check_channels(x, y)
        pred, y = self._predict(x).float(), y.float()
        xi = torch.randn(pred.shape, generator=generator, dtype=pred.dtype).to(pred.device)
        if self.loss_fn is mse:
            s = xi * math.sqrt(2.0 / pred.numel())
        else:
            e, z = (pred.detach() - y).flatten(1), xi.flatten(1)
            e_norm = e.norm(dim=1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)
            u = e / e_norm
            z = z - u * (u * z).sum(1, keepdim=True)  # (I − ê êᵀ) ξ
            s = z / (pred.shape[0] * e_norm * y.flatten(1).norm(dim=1, keepdim=True)).sqrt()
        return (pred * s.view_as(pred)).sum()

    @torch.no_grad()
    def evaluate(self, batch: Any) -> dict[str, Tensor]:
        """Loss, relative L2, relative H¹ and MSE on one batch (means over the batch)."""
        x, y = _pair(batch)
        self._check_channels(x, y)
        pred, y = self._predict(x).float(), y.float()
        metrics = {"loss": self.loss_fn(pred, y), "rel_l2": relative_l2(pred, y), "mse": mse(pred, y)}
        if min(y.shape[2:]) >= 3:
            metrics["rel_h1"] = h1(pred, y)
        return metrics

    @torch.no_grad()
    def sample(self, x: Tensor, batch_size: int | None = None) -> Tensor:
        """Predict the output field(s) for input field(s) ``x``.

        Parameters
        ----------
        x : ``(B, in_channels, *grid)``, or one unbatched sample ``(in_channels, *grid)``, on the
            solver's device. Any grid size works for resolution-invariant operators (FNO...).
        batch_size : predict in chunks of this many samples to bound memory.

        Returns
        -------
        Tensor ``(B, out_channels, *grid)`` (or unbatched, like ``x``).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a tensor, got {type(x).__name__}")
        if x.device != self.device:
            raise ValueError(f"x is on {x.device} but the solver is on {self.device}; move one of them")
        # Spatial dimensions: declared (n_dims) or read from an FNO's modes; unknown: x must be batched.
        grid_dims = getattr(self.operator, "n_dims", None) or len(getattr(self.operator, "n_modes", ())) or None
        unbatched = grid_dims is not None and x.dim() == grid_dims + 1
        if unbatched:
            x = x.unsqueeze(0)
        self._check_channels(x)
        if not torch.isfinite(x).all():
            raise ValueError("x contains NaN or inf values")
        was_training = self.training
        self.eval()
        dtype = next(self.operator.parameters()).dtype
        chunks = x.split(batch_size) if batch_size else (x,)
        out = torch.cat([self._predict(c.to(dtype)) for c in chunks])
        self.train(was_training)
        return out[0] if unbatched else out
