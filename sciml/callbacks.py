"""Hooks into :meth:`sciml.Trainer.fit`, and the loggers and early stopping built on them.

A callback subclasses :class:`Callback` and overrides what it needs::

    class PrintLR(Callback):
        def on_epoch_end(self, trainer, row):
            print(row["epoch"], row["lr"])

    Trainer(solver, callbacks=[PrintLR(), EarlyStopping(patience=20)]).fit(train, val)

The Trainer calls the hooks on the main process only (rank 0 under ``torchrun``), in list
order. ``row`` is the epoch's record as it goes into :class:`~sciml.History` (epoch, losses,
validation metrics, learning rate, seconds per phase). A callback stops the run by setting
``trainer.should_stop = True``; the Trainer then writes its checkpoint and returns.

A run with a ``checkpoint_dir`` logs to ``metrics.csv`` there (:class:`CSVLogger`) and, when
the ``tensorboard`` package is installed (``pip install sciml[tensorboard]``), to TensorBoard
event files under ``tensorboard/`` (:class:`TensorBoardLogger`).
"""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .validation import check_range, nonnegative_int

if TYPE_CHECKING:  # the Trainer imports this module
    from .train import History, Trainer

__all__ = ["Callback", "CSVLogger", "TensorBoardLogger", "EarlyStopping", "tensorboard_available"]


class Callback:
    """Base class: every hook does nothing."""

    def on_fit_start(self, trainer: Trainer, start_epoch: int) -> None:
        """Before the first epoch of this ``fit`` (``start_epoch`` > 0 after a resume)."""

    def on_step_end(self, trainer: Trainer, step: int, loss: float) -> None:
        """After each optimisation step (``step`` counts from 1 over the whole run; skipped steps too)."""

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        """After each epoch's validation and checkpoint, with the epoch's row of the history."""

    def on_fit_end(self, trainer: Trainer, history: History) -> None:
        """After the last epoch, an early stop, or an interruption (the history holds the complete epochs)."""


class CSVLogger(Callback):
    """The history as ``path`` (CSV, one row per epoch), rewritten whole after each epoch.

    Rewriting keeps the file consistent with the checkpoint after a resume (the rows of epochs
    that were lost with an interrupted run disappear) and lets columns appear late (validation
    metrics). It is renamed into place, so a reader never sees half a file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        self.write(trainer.history.rows)

    def on_fit_start(self, trainer: Trainer, start_epoch: int) -> None:
        if trainer.history.rows:
            self.write(trainer.history.rows)

    def write(self, rows: list[dict]) -> None:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text.getvalue())
        os.replace(tmp, self.path)


def tensorboard_available() -> bool:
    """Is the ``tensorboard`` package installed (``torch.utils.tensorboard`` needs it)?"""
    import importlib.util

    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardLogger(Callback):
    """Every number of each epoch's row as a TensorBoard scalar under ``log_dir``, at step = epoch.

    After a resume, events of epochs past the checkpoint (lost with the interrupted run) are
    purged, so the curves show each epoch once.
    """

    def __init__(self, log_dir: str | os.PathLike):
        if not tensorboard_available():
            raise ImportError("TensorBoardLogger needs the tensorboard package: pip install tensorboard "
                              "(or sciml[tensorboard])")
        self.log_dir = Path(log_dir)
        self.writer: Any = None
        self.start_epoch = 0

    def on_fit_start(self, trainer: Trainer, start_epoch: int) -> None:
        self.start_epoch = start_epoch

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if self.writer is None:  # opened at the first epoch's end: a run that fails earlier leaves no folder
            from torch.utils.tensorboard import SummaryWriter

            start = self.start_epoch
            self.writer = SummaryWriter(str(self.log_dir), purge_step=start + 1 if start else None)
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer, history: History) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    The decision is read from the run's history alone, so a resumed run stops where the
    uninterrupted one would. A non-finite value never counts as an improvement.

    Parameters
    ----------
    monitor : a column of the history, e.g. ``"val_loss"`` (default) or ``"val_rel_l2"``.
    patience : epochs without improvement before stopping.
    min_delta : the least decrease (``mode="min"``) or increase (``"max"``) that counts.
    mode : ``"min"`` or ``"max"``.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 10, min_delta: float = 0.0, mode: str = "min"):
        if not isinstance(monitor, str):
            raise TypeError(f"monitor must be the name of a history column such as 'val_loss', got {monitor!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        nonnegative_int("patience", patience)
        check_range("min_delta", min_delta, 0.0)
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, float(min_delta), mode
        self.stopped_epoch: int | None = None

    def on_fit_start(self, trainer: Trainer, start_epoch: int) -> None:
        if self.monitor.startswith("val_") and not trainer.validates:
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, but fit was given no validation data; pass "
                           "val data or monitor 'train_loss'")
        if trainer.history.rows and self._stalled(trainer):  # a resumed run that had stopped stays stopped
            trainer.should_stop = True

    def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
        if self.monitor not in row:
            known = sorted(k for k in row if isinstance(row[k], float))
            raise KeyError(f"EarlyStopping monitors {self.monitor!r}, which the run does not record; "
                           f"columns: {known}")
        if self._stalled(trainer):
            self.stopped_epoch = row["epoch"]
            trainer.should_stop = True
            trainer._say(f"early stopping at epoch {row['epoch']}: {self.monitor} has not improved by more than "
                         f"{self.min_delta:g} for {self.patience} epochs")

    def _stalled(self, trainer: Trainer) -> bool:
        """Has the history gone ``patience`` epochs without an improvement?"""
        sign = 1.0 if self.mode == "min" else -1.0
        best, since = math.inf, 0
        for value in trainer.history[self.monitor]:
            value = sign * float(value)
            if math.isfinite(value) and value < best - self.min_delta:
                best, since = value, 0
            else:
                since += 1
        return since > 0 and since >= self.patience
