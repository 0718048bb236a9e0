"""Faults a training run meets: crafted or old checkpoints, killed writers, full disks, non-finite
steps and metrics, bad options, and runs resumed with another model, optimizer or scheduler."""
import errno
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import sciml.checkpoint
from sciml import Trainer
from sciml.checkpoint import load_checkpoint, rng_state, save_atomic, set_rng_state
from sciml.cli import main
from sciml.optim import OPTIMIZERS

sys.path.insert(0, str(Path(__file__).parent))
from _toy import Regression, regression_data  # noqa: E402


def _trainer(solver, ckpt=None, epochs=1, **options):
    return Trainer(solver, **{"lr": 1e-2, "epochs": epochs, "batch_size": 16, "device": "cpu", "progress": False,
                              "checkpoint_dir": ckpt, **options})


class _Payload:
    """Unpickling it creates ``marker``: a stand-in for ``os.system`` in a crafted checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


# ---------------------------------------------------------------------------- 1. safe loading
def test_a_checkpoint_that_would_run_code_is_refused_and_runs_nothing(tmp_path, capsys):
    marker, path = tmp_path / "pwned", tmp_path / "run" / "best.pt"
    path.parent.mkdir()
    torch.save({"solver": {}, "payload": _Payload(marker)}, path)
    torch.load(path, weights_only=False)  # the payload is live: the old loader ran it
    assert marker.exists()
    marker.unlink()

    with pytest.raises(ValueError, match=r"best\.pt' was not loaded: .*\(io\.open\)"):
        load_checkpoint(path)
    assert not marker.exists()

    # through `sciml evaluate`: one line, exit status 2, nothing run
    (path.parent / "config.json").write_text('{"model": "fno", "model_options": {"n_modes": [4, 4], '
                                             '"hidden_channels": 4, "in_channels": 1, "out_channels": 1}}')
    assert main(["evaluate", "--run", str(path.parent), "--data", str(tmp_path / "missing.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best.pt" in err and "was not loaded" in err
    assert not marker.exists()


def test_a_checkpoint_of_the_older_format_is_refused_with_its_name_and_not_resumed(tmp_path):
    data = regression_data(n=32)
    _trainer(Regression(), tmp_path).fit(data)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    ckpt["rng"][0]["numpy"] = np.random.get_state()  # how checkpoints held the numpy state before
    torch.save(ckpt, tmp_path / "last.pt")
    with pytest.raises(ValueError) as info:
        _trainer(Regression(), tmp_path, epochs=2).fit(data)
    message = str(info.value)
    assert "last.pt" in message and "older sciml checkpoint format" in message and "was not loaded" in message
    assert "numpy" in message  # names what it would have had to import


def test_rng_states_are_tensors_and_numbers_and_restore_every_stream_exactly(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    np.random.randn(), random.gauss(0, 1)  # leave a cached Gaussian in numpy and in python
    torch.save(rng_state(), tmp_path / "rng.pt")
    after_save = (torch.rand(5), np.random.randn(5), [random.gauss(0, 1) for _ in range(5)], random.random())
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    after_restore = (torch.rand(5), np.random.randn(5), [random.gauss(0, 1) for _ in range(5)], random.random())
    assert torch.equal(after_save[0], after_restore[0])
    assert np.array_equal(after_save[1], after_restore[1])
    assert after_save[2:] == after_restore[2:]


class _AdamKeepingAGenerator(torch.optim.Adam):
    """Keeps a ``torch.Generator`` object, not its state, in its state: unreadable with weights_only=True."""

    def step(self, closure=None):
        self.state["probes"] = torch.Generator()
        return super().step(closure)


def test_state_that_would_not_load_safely_is_refused_when_written_with_its_place(tmp_path):
    with pytest.raises(TypeError, match=r"checkpoint\['optimizer'\]\['state'\]\['probes'\] is a torch\._C\."
                                        r"Generator; a checkpoint holds only tensors"):
        _trainer(Regression(), tmp_path, optimizer=_AdamKeepingAGenerator).fit(regression_data(n=32))
    assert not (tmp_path / "last.pt").exists() and not list(tmp_path.glob(".*.tmp"))


class _SampledRegression(Regression):
    """Regression with Sophia-G's sampled loss: labels drawn around the prediction (MSE: N(f, N/2))."""

    def sampled_loss(self, batch, generator):
        pred = self.net(batch[0])
        xi = torch.randn(pred.shape, generator=generator)
        return (pred * xi * math.sqrt(2.0 / pred.numel())).sum()


@pytest.mark.parametrize("name, options", [(name, {}) for name in OPTIMIZERS]
                         + [("sophia", {"estimator": "gnb", "update_every": 1}), ("sophia", {"update_every": 1}),
                            ("mkor", {"hybrid": True, "switch_window": 1}), ("mfac", {"ngrads": 2})])
def test_every_optimizers_checkpoint_loads_safely_bit_for_bit_and_resumes(tmp_path, name, options, one_thread):
    data = regression_data(n=48, dim=3)
    torch.manual_seed(0)
    trainer = _trainer(_SampledRegression(dim=3, width=8), tmp_path, lr=0.5 if name in ("lbfgs", "nncg") else 1e-2,
                       optimizer=name, optimizer_options=options)
    trainer.fit(data)
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    live = trainer.optimizer.state_dict()
    leaves = torch.utils._pytree.tree_leaves

    def same(a, b):
        return torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b or (a != a and b != b)

    assert torch.utils._pytree.tree_structure(saved["optimizer"]) == torch.utils._pytree.tree_structure(live)
    assert all(same(a, b) for a, b in zip(leaves(saved["optimizer"]), leaves(live)))
    history = _trainer(_SampledRegression(dim=3, width=8), tmp_path, epochs=2, optimizer=name,
                       optimizer_options=options, lr=0.5 if name in ("lbfgs", "nncg") else 1e-2).fit(data)
    assert history["epoch"] == [1, 2]


# ---------------------------------------------------------------------------- 2. orphans, full disks
WRITER = textwrap.dedent("""
    import sys, time, torch
    from sciml.checkpoint import save_atomic
    def stuck(obj, f):  # writes part of the file, then hangs until killed
        f.write(b"x" * 4096)
        f.flush()
        time.sleep(120)
    torch.save = stuck
    save_atomic({{"solver": {{}}}}, {path!r})
""")


def test_temporary_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER.format(path=str(tmp_path / "last.pt"))])
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".last.pt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    [orphan] = tmp_path.glob(".last.pt.*.tmp")
    assert f".{writer.pid}-" in orphan.name and orphan.stat().st_size == 4096
    host = sciml.checkpoint._HOST
    live = tmp_path / f".best.pt.{os.getpid()}-{host}.abc.tmp"  # this process, still writing
    elsewhere = tmp_path / f".best.pt.{writer.pid}-not-{host}.abc.tmp"  # another host: cannot be judged here
    dead_best = tmp_path / f".best.pt.{writer.pid}-{host}.xyz.tmp"
    for f in (live, elsewhere, dead_best):
        f.write_bytes(b"x")

    class Broken(torch.utils.data.Dataset):  # fails at the first batch, before any checkpoint is written
        def __len__(self):
            return 8

        def __getitem__(self, i):
            raise RuntimeError("unreadable sample")

    with pytest.raises(RuntimeError, match="unreadable"):
        _trainer(Regression(), tmp_path, preload=False).fit(Broken())
    assert sorted(tmp_path.iterdir()) == sorted([live, elsewhere])  # removed when the Trainer started

    dead_best.write_bytes(b"x")
    save_atomic({"solver": {}}, tmp_path / "best.pt")  # and by the next save into the folder
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["best.pt", live.name, elsewhere.name])


def test_a_full_disk_leaves_the_previous_checkpoint_and_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    data = regression_data(n=32)
    _trainer(Regression(), tmp_path).fit(data)
    before = (tmp_path / "last.pt").read_bytes()

    def full(obj, f):
        f.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError) as info:
        _trainer(Regression(), tmp_path, epochs=2).fit(data)
    message = str(info.value)
    assert info.value.errno == errno.ENOSPC and "\n" not in message
    assert str(tmp_path / "last.pt") in message and "intact" in message and "free space" in message
    assert (tmp_path / "last.pt").read_bytes() == before and load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


# ---------------------------------------------------------------------------- 3. the NaN guard
class _PoisonedAdam(torch.optim.Adam):
    """Adam whose ``at``-th step ends with a NaN weight (``poison=True``) or is not taken at all."""

    def __init__(self, params, at, poison):
        super().__init__(params, lr=1e-2)
        self.calls, self.at, self.poison = 0, at, poison

    def step(self, closure=None):
        self.calls += 1
        if self.calls != self.at:
            return super().step(closure)
        if self.poison:
            super().step(closure)  # moves every weight and the moments, then poisons one weight
            with torch.no_grad():
                self.param_groups[0]["params"][0][0, 0] = math.nan


def test_a_step_leaving_a_non_finite_weight_is_undone_like_a_step_never_taken(capsys):
    data = regression_data(n=64)
    runs = {}
    for poison in (True, False):
        torch.manual_seed(0)
        solver = Regression()
        trainer = _trainer(solver, epochs=2, optimizer=lambda p, poison=poison: _PoisonedAdam(p, 3, poison))
        runs[poison] = (solver, trainer.fit(data), trainer.optimizer.state_dict())
    (poisoned, history, state), (clean, _, clean_state) = runs[True], runs[False]
    assert history["skipped_steps"] == [1, 0]
    assert "skipped a step with non-finite parameters after the update (undone)" in capsys.readouterr().err
    for k, v in clean.state_dict().items():  # weights and Adam's moments and step counts as if never taken
        assert torch.equal(v, poisoned.state_dict()[k]), k
    for i, s in clean_state["state"].items():
        for k, v in s.items():
            assert torch.equal(v, state["state"][i][k]), (i, k)


@pytest.mark.parametrize("option, value", [
    ("lr", math.nan), ("lr", 0.0), ("lr", math.inf), ("weight_decay", math.nan), ("weight_decay", -1e-4),
    ("grad_clip", math.nan), ("grad_clip", 0.0), ("epochs", 0), ("batch_size", 0), ("num_workers", -1),
    ("log_every", -1), ("max_skipped_steps", 0),
])
def test_every_numeric_option_is_checked_at_the_door(option, value):
    with pytest.raises(ValueError) as info:
        Trainer(Regression(), **{option: value})
    assert option in str(info.value) and str(value) in str(info.value)


@pytest.mark.parametrize("scheduler, options, named", [
    ("step", {"gamma": math.nan}, "gamma"), ("step", {"step_size": 0}, "step_size"),
    ("cosine", {"eta_min": -1.0}, "eta_min"), ("cosine", {"gama": 0.5}, "gama"),
])
def test_scheduler_options_are_checked_at_the_door(scheduler, options, named):
    with pytest.raises(ValueError, match=named):
        Trainer(Regression(), scheduler=scheduler, scheduler_options=options)


def test_a_nan_optimizer_option_is_refused_also_where_torch_would_take_it():
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=math.nan)  # torch accepts it
    with pytest.raises(ValueError, match=r"optimizer_options\['momentum'\] must be a number, not NaN, got nan"):
        Trainer(Regression(), optimizer="sgd", optimizer_options={"momentum": math.nan})
    with pytest.raises(ValueError, match=r"optimizer_options\['betas'\]"):
        Trainer(Regression(), optimizer="adam", optimizer_options={"betas": (0.9, math.nan)})


def test_cli_refuses_a_nan_weight_decay_before_writing_anything(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "d.h5"), "--out", str(tmp_path / "run"), "--trainer.weight_decay",
                 "nan"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "trainer.weight_decay" in err and "nan" in err
    assert list(tmp_path.iterdir()) == []


class _ScriptedValidation(Regression):
    """Validation loss taken in turn from ``losses``, one value per evaluation (one batch each)."""

    def __init__(self, losses):
        super().__init__()
        self.losses = list(losses)

    def evaluate(self, batch):
        return {"loss": torch.tensor(self.losses.pop(0))}


def test_a_non_finite_validation_loss_is_reported_and_never_blocks_best(tmp_path, capsys):
    data = regression_data(n=32)
    solver = _ScriptedValidation([math.nan, 3.0, -math.inf, 2.0, math.nan])
    history = _trainer(solver, tmp_path, epochs=5, batch_size=32).fit(data, data)
    assert history["val_loss"][1:4] == [3.0, -math.inf, 2.0] and math.isnan(history["val_loss"][0])
    err = capsys.readouterr().err
    assert "epoch 1: val_loss is nan, not finite" in err and "epoch 3: val_loss is -inf" in err
    best = load_checkpoint(tmp_path / "best.pt")
    assert (best["epoch"], best["best"]) == (4, 2.0)  # the first finite one wrote it, a lower finite one replaced it


# ---------------------------------------------------------------------------- 4. resumes that cannot fit
def test_a_resume_with_another_model_optimizer_or_scheduler_is_refused_by_name(tmp_path):
    data = regression_data(n=32)
    first = {"optimizer": "adamw", "scheduler": "cosine"}
    _trainer(Regression(), tmp_path, **first).fit(data)
    before = (tmp_path / "last.pt").read_bytes()
    for options, message in [({"optimizer": "sgd"}, "optimizer 'adamw', not 'sgd'"),
                             ({"scheduler": "constant"}, "scheduler 'cosine', not 'constant'")]:
        with pytest.raises(ValueError, match=message):
            _trainer(Regression(), tmp_path, epochs=2, **{**first, **options}).fit(data)
    with pytest.raises(ValueError, match=r"last\.pt.*another model.*size mismatch for net\.0\.weight"):
        _trainer(Regression(width=8), tmp_path, epochs=2, **first).fit(data)
    assert (tmp_path / "last.pt").read_bytes() == before


def test_float64_data_for_a_float32_operator_is_named_with_the_remedy():
    from sciml.solvers import OperatorSolver

    x = torch.randn(8, 1, 6, 6, dtype=torch.float64)
    solver = OperatorSolver(nn.Conv2d(1, 1, 1), in_channels=1, out_channels=1)
    with pytest.raises(ValueError, match=r"data are torch\.float64 but the operator's parameters are torch\.float32"):
        _trainer(solver).fit(torch.utils.data.TensorDataset(x, x.clone()))


# ---------------------------------------------------------------------------- 4. one-line errors of the command line
@pytest.fixture(scope="module")
def darcy64(tmp_path_factory):
    """A small Darcy set stored in float64 (the CLI reads it as float32)."""
    path = tmp_path_factory.mktemp("data") / "d64.h5"
    assert main(["generate", "darcy", "--out", str(path), "--n", "20", "--n-test", "4", "--resolution", "9",
                 "--dtype", "float64", "--quiet"]) == 0
    return path


def _train(data, out, *extra):
    return main(["train", "--data", str(data), "--out", str(out), "--model_options.n_modes", "[4, 4]",
                 "--model_options.hidden_channels", "4", "--model_options.n_layers", "1", "--trainer.epochs", "1",
                 "--trainer.batch_size", "8", "--quiet", *extra])


def _one_line_error(capsys, command, *fragments):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sciml {command}: error:"), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_cli_trains_on_float64_data_and_names_a_checkpoint_of_another_model(tmp_path, capsys, darcy64):
    import h5py

    with h5py.File(darcy64) as f:
        assert f["inputs"].dtype == np.float64
    assert _train(darcy64, tmp_path / "a") == 0 and _train(darcy64, tmp_path / "b", "--model_options.hidden_channels", "6") == 0
    capsys.readouterr()
    before = (tmp_path / "a" / "last.pt").read_bytes()
    shutil.copy(tmp_path / "b" / "last.pt", tmp_path / "a" / "last.pt")
    shutil.copy(tmp_path / "b" / "best.pt", tmp_path / "a" / "best.pt")
    assert _train(darcy64, tmp_path / "a") == 2  # same settings: the resume reads last.pt
    _one_line_error(capsys, "train", "last.pt", "another model", "--overwrite")
    assert main(["evaluate", "--run", str(tmp_path / "a"), "--data", str(darcy64)]) == 2
    _one_line_error(capsys, "evaluate", "best.pt", "another model")
    assert before != (tmp_path / "a" / "last.pt").read_bytes()  # the copy is left for the user to judge


def test_cli_refuses_a_resume_with_another_optimizer_or_scheduler(tmp_path, capsys, darcy64):
    run = tmp_path / "run"
    assert _train(darcy64, run) == 0
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    # the run folder's record refuses them first (the Trainer's own check is tested above)
    assert _train(darcy64, run, "--trainer.optimizer", "sgd") == 2
    _one_line_error(capsys, "train", "optimizer: 'adamw' -> 'sgd'", "--overwrite")
    assert _train(darcy64, run, "--trainer.scheduler", "cosine") == 2  # was a KeyError
    _one_line_error(capsys, "train", "scheduler: 'constant' -> 'cosine'")
    assert (run / "last.pt").read_bytes() == before


def test_cli_names_an_unknown_model_option_and_writes_nothing(tmp_path, capsys, darcy64):
    assert _train(darcy64, tmp_path / "run", "--model_options.foo", "1") == 2
    _one_line_error(capsys, "train", "unexpected keyword argument 'foo'", "hidden_channels")
    assert not (tmp_path / "run").exists()


def test_cli_reports_a_full_disk_in_one_line(tmp_path, monkeypatch, capsys, darcy64):
    def full(obj, f):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    assert _train(darcy64, tmp_path / "run") == 2
    _one_line_error(capsys, "train", str(tmp_path / "run" / "last.pt"), "free space")
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob(".*.tmp"))
