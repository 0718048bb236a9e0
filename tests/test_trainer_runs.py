"""What a training run leaves to watch and to resume: callbacks, logs, epoch lines, background checkpoints."""
import csv
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from sciml import Trainer
from sciml.callbacks import Callback, CSVLogger, EarlyStopping, tensorboard_available
from sciml.checkpoint import BackgroundSaver, load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _toy import Regression, regression_data  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _trainer(solver, ckpt=None, epochs=6, **options):
    options = {"optimizer": "adam", "lr": 1e-2, "epochs": epochs, "batch_size": 32, "device": "cpu", "seed": 3,
               "checkpoint_dir": ckpt, "progress": False, **options}
    return Trainer(solver, **options)


class _Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, trainer, start_epoch):
        self.calls.append(("start", start_epoch))

    def on_step_end(self, trainer, step, loss):
        self.calls.append(("step", step, loss))

    def on_epoch_end(self, trainer, row):
        self.calls.append(("epoch", row["epoch"], row["train_loss"]))

    def on_fit_end(self, trainer, history):
        self.calls.append(("end", len(history)))


def test_callbacks_see_every_step_and_epoch_in_order_and_continue_after_a_resume(tmp_path):
    data = regression_data(n=64)
    rec = _Recorder()
    torch.manual_seed(0)
    history = _trainer(Regression(), tmp_path, epochs=3, callbacks=[rec]).fit(data, data)
    steps = [c for c in rec.calls if c[0] == "step"]
    epochs = [c for c in rec.calls if c[0] == "epoch"]
    assert rec.calls[0] == ("start", 0) and rec.calls[-1] == ("end", 3)
    assert [s[1] for s in steps] == list(range(1, 7))  # 2 steps per epoch, counted over the run
    # the epoch's mean loss is the mean of its steps' losses
    assert [e[2] for e in epochs] == pytest.approx([(steps[2 * i][2] + steps[2 * i + 1][2]) / 2 for i in range(3)])
    assert [e[2] for e in epochs] == history["train_loss"]
    rec2 = _Recorder()
    torch.manual_seed(0)
    _trainer(Regression(), tmp_path, epochs=5, callbacks=[rec2]).fit(data, data)
    assert rec2.calls[0] == ("start", 3) and [c[1] for c in rec2.calls if c[0] == "step"] == [7, 8, 9, 10]
    with pytest.raises(TypeError, match="callbacks must be a list of sciml.callbacks.Callback"):
        Trainer(Regression(), callbacks=[print])


def test_every_run_with_a_folder_writes_metrics_csv_that_follows_a_resume(tmp_path):
    data = regression_data(n=64)
    torch.manual_seed(0)
    _trainer(Regression(), tmp_path, epochs=4).fit(data, data)
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    history = load_checkpoint(tmp_path / "last.pt")["history"]
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert [float(r["val_loss"]) for r in rows] == pytest.approx([h["val_loss"] for h in history])
    for key in ("train_loss", "lr", "seconds", "step_seconds", "val_seconds", "checkpoint_seconds"):
        assert all(math.isfinite(float(r[key])) for r in rows), key
    # a later epoch count (constant schedule) continues the file; the rows stay one per epoch
    torch.manual_seed(0)
    _trainer(Regression(), tmp_path, epochs=6).fit(data, data)
    with open(tmp_path / "metrics.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.skipif(not tensorboard_available(), reason="tensorboard is an optional extra")
def test_tensorboard_gets_every_number_of_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    history = _trainer(Regression(), tmp_path, epochs=3).fit(regression_data(n=64), regression_data(n=32, seed=1))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    val = events.Scalars("val_loss")
    assert [e.step for e in val] == [1, 2, 3] and [e.value for e in val] == pytest.approx(history["val_loss"])


def test_early_stopping_stops_where_the_monitored_value_stalls_and_a_resume_agrees(tmp_path):
    class Scripted(Regression):  # a validation loss that improves until epoch 3, then stalls
        def __init__(self):
            super().__init__()
            self.values = iter([5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0, 1.0])

        def evaluate(self, batch):
            return {"loss": torch.tensor(next(self.values))}

    data = regression_data(n=32)
    stop = EarlyStopping(monitor="val_loss", patience=3)
    history = _trainer(Scripted(), tmp_path, epochs=8, batch_size=32, callbacks=[stop]).fit(data, data)
    assert len(history) == 6 and stop.stopped_epoch == 6  # epochs 4, 5, 6 did not beat 3.0
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 6  # the stopped run is saved where it ended
    assert load_checkpoint(tmp_path / "best.pt")["epoch"] == 3
    with pytest.raises(KeyError, match="'val_rel_l2', which the run does not record"):
        _trainer(Regression(), None, epochs=1, callbacks=[EarlyStopping("val_rel_l2")]).fit(data, data)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_epoch_lines_by_default_for_short_runs_and_none_with_log_every_0(capsys):
    data = regression_data(n=64)
    _trainer(Regression(), epochs=3).fit(data, data)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all("train_loss=" in line and "val_loss=" in line and "(steps " in line for line in lines)
    _trainer(Regression(), epochs=120, log_every=None).fit(data)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 40 and lines[-1].startswith("epoch 120/120")  # about 50 lines a run at most
    _trainer(Regression(), epochs=3, log_every=0).fit(data)
    assert "epoch " not in capsys.readouterr().out


def test_checkpoint_every_epochs_or_wall_time(tmp_path, monkeypatch):
    data = regression_data(n=64)
    written = []
    real = BackgroundSaver.submit
    monkeypatch.setattr(BackgroundSaver, "submit",
                        lambda self, files: (written.append(files[0][0]["epoch"]), real(self, files))[1])
    _trainer(Regression(), tmp_path / "a", epochs=7, checkpoint_every=3).fit(data)
    assert written == [3, 6, 7]  # and always the last epoch
    written.clear()
    _trainer(Regression(), tmp_path / "b", epochs=4, checkpoint_every="1h").fit(data)
    assert written == [4]
    written.clear()
    _trainer(Regression(), tmp_path / "c", epochs=3, checkpoint_every="0.000001s").fit(data)
    assert written == [1, 2, 3]
    for bad in (0, "5 minutes", "-1s", 2.5):
        with pytest.raises((ValueError, TypeError), match="checkpoint_every"):
            Trainer(Regression(), checkpoint_every=bad)


def test_after_lbfgs_the_reported_loss_is_the_loss_after_the_step():
    torch.manual_seed(0)
    data = regression_data(n=128)
    solver = Regression(width=16)
    before = Trainer(solver, device="cpu").evaluate(data)["loss"]
    history = Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=128, device="cpu",
                      optimizer_options={"max_iter": 40}, progress=False).fit(data)
    after = Trainer(solver, device="cpu").evaluate(data)["loss"]
    # torch's LBFGS.step returns its first evaluation (= before); the run reports the last one
    assert history["train_loss"][0] < before / 5
    assert history["train_loss"][0] == pytest.approx(after, rel=0.3)


_KILLED_DURING_SAVE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    sys.path.insert(0, sys.argv[3])
    from _toy import Regression, regression_data
    from sciml import Trainer

    torch.set_num_threads(1)
    folder, stall = Path(sys.argv[1]), int(sys.argv[2])
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # the bytes are in the temporary file, not yet renamed
        if obj.get("epoch") == stall and "optimizer" in obj:
            (folder / "saving").touch()
            time.sleep(600)  # SIGKILL arrives here, on the saver thread

    torch.save = save
    torch.manual_seed(0)
    Trainer(Regression(dropout=0.2), optimizer="adamw", lr=3e-3, epochs=6, batch_size=16, scheduler="cosine",
            device="cpu", checkpoint_dir=folder, seed=7, progress=False).fit(regression_data(n=64))
""")


def test_a_run_killed_during_a_background_save_resumes_exactly_from_the_previous_checkpoint(tmp_path):
    def trainer(folder):
        return Trainer(Regression(dropout=0.2), optimizer="adamw", lr=3e-3, epochs=6, batch_size=16,
                       scheduler="cosine", device="cpu", checkpoint_dir=folder, seed=7, progress=False)

    torch.manual_seed(0)
    straight = trainer(None)
    straight.fit(regression_data(n=64))

    folder = tmp_path / "run"
    folder.mkdir()
    script = tmp_path / "train.py"
    script.write_text(_KILLED_DURING_SAVE)
    proc = subprocess.Popen([sys.executable, str(script), str(folder), "4", str(Path(__file__).parent)])
    deadline = time.monotonic() + 120
    while not (folder / "saving").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the training process ended early"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert load_checkpoint(folder / "last.pt")["epoch"] == 3  # the epoch-4 save never completed
    assert list(folder.glob(".last.pt.*.tmp"))  # its temporary file, orphaned

    torch.manual_seed(123)  # everything must come from the checkpoint
    resumed = trainer(folder)
    history = resumed.fit(regression_data(n=64))
    assert history["epoch"] == [1, 2, 3, 4, 5, 6] and not list(folder.glob(".last.pt.*.tmp"))
    for key, value in straight.solver.state_dict().items():
        assert torch.equal(value, resumed.solver.state_dict()[key]), key


def test_a_failed_background_save_is_raised_in_the_training_thread(tmp_path, monkeypatch):
    def broken(obj, f, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="no space left to write"):
        _trainer(Regression(), tmp_path, epochs=2).fit(regression_data(n=64))


def test_csv_logger_writes_columns_that_appear_late(tmp_path):
    CSVLogger(tmp_path / "m.csv").write([{"epoch": 1, "train_loss": 1.0}, {"epoch": 2, "train_loss": 0.5,
                                                                           "val_loss": 0.7}])
    assert (tmp_path / "m.csv").read_text().splitlines() == ["epoch,train_loss,val_loss", "1,1.0,", "2,0.5,0.7"]
    assert not list(tmp_path.glob(".*.tmp"))


class _CountSyncs(torch.overrides.TorchFunctionMode):
    """Counts the tensor calls that wait for the device: .item(), .tolist(), bool() and float() of a tensor."""

    SYNCS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__, torch.Tensor.__float__}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.count += func in self.SYNCS
        return func(*args, **(kwargs or {}))


def test_a_training_step_waits_for_the_device_twice():
    """One wait for the loss and the NaN guard's gradient norm together, one for the finiteness of
    the updated parameters (the guard's promise): nothing else in the step reads a device value."""
    data = regression_data(n=64)
    trainer = _trainer(Regression(), epochs=1, optimizer="sgd", lr=1e-2)
    trainer.fit(data)
    params = [p for p in trainer.solver.parameters() if p.requires_grad]
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=32)))
    from sciml.train import _Rollback

    trainer._rollback = _Rollback(params)
    with _CountSyncs() as counter:
        loss, why = trainer._step(trainer.solver, batch, params)
    assert why is None and math.isfinite(loss)
    assert counter.count == 2


def test_early_stopping_checks_its_column_first_and_a_stopped_run_stays_stopped(tmp_path):
    data = regression_data(n=32)
    with pytest.raises(KeyError, match="no validation data"):
        _trainer(Regression(), tmp_path / "a", epochs=2, callbacks=[EarlyStopping()]).fit(data)
    assert not (tmp_path / "a" / "last.pt").exists()  # refused before the first epoch
    with pytest.raises(TypeError, match="callbacks must be a list"):
        Trainer(Regression(), callbacks=EarlyStopping)
    with pytest.raises(TypeError, match="monitor"):
        EarlyStopping(monitor=3)

    class Scripted(Regression):
        def __init__(self):
            super().__init__()
            self.values = iter([3.0, 4.0, 5.0, 1.0, 1.0, 1.0])

        def evaluate(self, batch):
            return {"loss": torch.tensor(next(self.values))}

    history = _trainer(Scripted(), tmp_path / "b", epochs=6, callbacks=[EarlyStopping(patience=2)]).fit(data, data)
    assert len(history) == 3
    again = _trainer(Scripted(), tmp_path / "b", epochs=6, callbacks=[EarlyStopping(patience=2)]).fit(data, data)
    assert len(again) == 3 and load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 3
