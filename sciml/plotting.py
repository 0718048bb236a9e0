"""Figures people look at instead of reading numbers: a prediction against the truth, and the loss."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["plot_prediction"]


def plot_prediction(x: Tensor, truth: Tensor, pred: Tensor, path: str | os.PathLike,
                    history=None, titles: Sequence[str] = ("input", "truth", "prediction", "|error|")) -> Path:
    """Input, true output, predicted output and pointwise error of one 2-D sample side by side,
    with the loss curves of ``history`` (a :class:`sciml.History`) beside them if given.

    ``x``, ``truth`` and ``pred`` are ``(H, W)`` or ``(1, H, W)`` tensors (first channel shown).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fields = [t.detach().float().cpu() for t in (x, truth, pred)]
    fields = [f[0] if f.dim() == 3 else f for f in fields]
    for name, f in zip(("x", "truth", "pred"), fields):
        if f.dim() != 2:
            raise ValueError(f"{name} must be a 2-D field (H, W) or (C, H, W), got shape {tuple(f.shape)}")
    fields.append((fields[2] - fields[1]).abs())
    rel = float(torch.linalg.vector_norm(fields[3]) / torch.linalg.vector_norm(fields[1]).clamp_min(1e-12))

    panels = 5 if history is not None and len(history) else 4
    fig, axes = plt.subplots(1, panels, figsize=(3.3 * panels, 3.2))
    vmin, vmax = float(fields[1].min()), float(fields[1].max())  # truth and prediction share a scale
    for ax, f, title, i in zip(axes, fields, titles, range(4)):
        kw = {"vmin": vmin, "vmax": vmax} if i in (1, 2) else {}
        # fields are indexed (x, y): transpose so that x runs left to right
        im = ax.imshow(f.T.numpy(), origin="lower", extent=(0, 1, 0, 1), cmap="magma" if i == 3 else "viridis", **kw)
        ax.set_title(title if i != 3 else f"{title} (rel. L2 {rel:.2%})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if panels == 5:
        ax = axes[4]
        epochs = history["epoch"]
        ax.semilogy(epochs, history["train_loss"], label="train loss")
        if any("val_rel_l2" in r for r in history.rows):
            ax.semilogy(epochs, history["val_rel_l2"], label="test rel. L2")
        ax.set_xlabel("epoch")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("training", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
