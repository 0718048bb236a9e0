import math
import re
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from sciml import Trainer
from sciml.checkpoint import load_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from _torchrun import failure, run_two_ranks  # noqa: E402
from _toy import Regression, regression_data  # noqa: E402


def weights(solver):
    return {k: v.clone() for k, v in solver.state_dict().items()}


def test_trainer_lowers_the_loss_of_a_small_problem_by_a_factor_of_20():
    torch.manual_seed(0)
    data = regression_data()
    solver = Regression()
    before = Trainer(solver, device="cpu").evaluate(data)["loss"]
    history = Trainer(solver, optimizer="adam", lr=1e-2, epochs=40, batch_size=32, scheduler="cosine",
                      device="cpu", progress=False).fit(data, data)
    after = history.last["val_loss"]
    assert after < before / 20, (before, after)
    assert history["train_loss"][-1] < history["train_loss"][0] / 10
    assert len(history) == 40 and history["lr"][0] == pytest.approx(1e-2)
    assert history["lr"][-1] < 1e-4  # cosine schedule reached its end


class _Interrupt(torch.utils.data.Dataset):
    """Raises KeyboardInterrupt at the given item count, like a Ctrl-C in the middle of an epoch."""

    def __init__(self, data, after):
        self.data, self.after, self.count = data, after, 0

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        self.count += 1
        if self.count == self.after:
            raise KeyboardInterrupt
        return self.data[i]


def _trainer(solver, ckpt=None, epochs=4, preload="auto"):
    return Trainer(solver, optimizer="adamw", lr=3e-3, weight_decay=1e-2, epochs=epochs, batch_size=16,
                   scheduler="cosine", grad_clip=1.0, device="cpu", checkpoint_dir=ckpt, seed=7, progress=False,
                   preload=preload)


def test_a_run_interrupted_midway_and_resumed_ends_with_the_same_weights(tmp_path):
    data = regression_data(n=100)
    torch.manual_seed(1)
    straight = Regression(dropout=0.2)
    _trainer(straight).fit(data, data)  # small: preloaded

    torch.manual_seed(1)
    first = Regression(dropout=0.2)
    with pytest.raises(KeyboardInterrupt):  # dies in the middle of epoch 3 (streamed, so it can)
        _trainer(first, tmp_path, preload=False).fit(_Interrupt(data, after=2 * 100 + 40), data)
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 2

    torch.manual_seed(123)  # a different process state: everything must come from the checkpoint
    resumed = Regression(dropout=0.2)
    history = _trainer(resumed, tmp_path).fit(data, data)
    assert len(history) == 4 and history["epoch"] == [1, 2, 3, 4]
    for k, v in weights(straight).items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 4
    assert (tmp_path / "best.pt").exists() and (tmp_path / "history.json").exists()


def test_non_finite_steps_are_skipped_and_reported(capsys):
    x, y = regression_data(n=64).tensors
    x = x.clone()
    x[5, 0] = math.nan  # one poisoned sample: its batch must not move the weights
    data = torch.utils.data.TensorDataset(x, y)
    solver = Regression()
    history = Trainer(solver, lr=1e-3, epochs=2, batch_size=16, device="cpu", progress=False).fit(data)
    assert history["skipped_steps"] == [1, 1]
    assert all(torch.isfinite(p).all() for p in solver.parameters())
    assert "skipped a step with non-finite loss" in capsys.readouterr().err

    y_bad = torch.full_like(y, math.nan)
    with pytest.raises(FloatingPointError, match="3 consecutive steps"):
        Trainer(Regression(), epochs=1, batch_size=8, device="cpu", progress=False,
                max_skipped_steps=3).fit(torch.utils.data.TensorDataset(x, y_bad))


def test_closure_optimizer_is_driven_through_its_declaration():
    torch.manual_seed(0)
    data = regression_data(n=128)
    solver = Regression(width=16)
    history = Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=5, batch_size=128, device="cpu",
                      optimizer_options={"max_iter": 50}, progress=False).fit(data)
    assert history["train_loss"][-1] < 1e-3
    with pytest.raises(ValueError, match="grad_clip=1.0 cannot apply to LBFGS"):
        Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=1, grad_clip=1.0, device="cpu", progress=False).fit(data)


class _HessianDiagonal(torch.optim.Optimizer):
    """Scaled Newton step on the Hessian diagonal, estimated by one Hutchinson probe: needs the graph."""

    step_requires = frozenset({"create_graph"})

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        grads = [p.grad for p in params]
        probes = [torch.randint_like(p, 2) * 2 - 1 for p in params]
        hvp = torch.autograd.grad(grads, params, grad_outputs=probes)  # fails without create_graph
        with torch.no_grad():
            for p, g, z, hz in zip(params, grads, probes, hvp):
                p -= self.param_groups[0]["lr"] * g / ((z * hz).abs() + 1e-3)
            for p in params:
                p.grad = None


def test_an_optimizer_declaring_create_graph_gets_hessian_vector_products():
    torch.manual_seed(0)
    data = regression_data(n=64, dim=2)
    solver = Regression(dim=2, width=8)
    before = Trainer(solver, device="cpu").evaluate(data)["loss"]
    history = Trainer(solver, optimizer=lambda p: _HessianDiagonal(p, lr=0.05), epochs=10, batch_size=64,
                      device="cpu", progress=False).fit(data)
    assert history["skipped_steps"] == [0] * 10
    assert history["train_loss"][-1] < 0.5 * before


def test_bad_arguments_name_themselves():
    s = Regression()
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        Trainer(s, optimizer="adamx")
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        Trainer(s, epochs=0)
    with pytest.raises(ValueError, match=r"batch_size must be at most 2\*\*63 - 1, got 10000000000000000000000"):
        Trainer(s, batch_size=10**22)
    with pytest.raises(ValueError, match="precision"):
        Trainer(s, precision="fp16")
    with pytest.raises(ValueError, match="scheduler"):
        Trainer(s, scheduler="linear")
    with pytest.raises(TypeError, match="sciml.Solver"):
        Trainer(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="train data is empty"):
        Trainer(s, device="cpu", progress=False).fit(torch.utils.data.TensorDataset(torch.zeros(0, 4), torch.zeros(0, 1)))


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {tests!r})
    from _toy import Regression, regression_data
    from sciml import Trainer
    torch.manual_seed(0)
    solver = Regression()
    history = Trainer(solver, optimizer="adam", lr=1e-2, epochs=3, batch_size=8, device="cpu", seed=3,
                      checkpoint_dir={ckpt!r}, progress=False).fit(regression_data(n=64), regression_data(n=20, seed=1))
    torch.save({{"state": solver.state_dict(), "history": history.rows}}, {out!r} + f"/rank{{torch.distributed.get_rank()}}.pt")
""")


def test_ddp_under_torchrun_matches_single_process_training(tmp_path):
    """Two gloo ranks with batch 8 each = one process with batch 16 (same shuffles, mean gradients)."""
    def write_script(attempt):
        script = tmp_path / f"ddp{attempt}.py"
        (tmp_path / f"out{attempt}").mkdir()
        script.write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), ckpt=str(tmp_path / f"ckpt{attempt}"),
                                            out=str(tmp_path / f"out{attempt}")))
        return script

    proc = run_two_ranks(write_script)
    assert proc.returncode == 0, failure(proc)
    out = sorted(tmp_path.glob("out*"))[-1]
    r0, r1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for k in r0["state"]:
        assert torch.equal(r0["state"][k], r1["state"][k]), k  # replicas stay identical

    torch.manual_seed(0)
    single = Regression()
    history = Trainer(single, optimizer="adam", lr=1e-2, epochs=3, batch_size=16, device="cpu", seed=3,
                      progress=False).fit(regression_data(n=64), regression_data(n=20, seed=1))
    for k, v in single.state_dict().items():
        torch.testing.assert_close(r0["state"][k], v, rtol=1e-5, atol=1e-6)
    # validation metrics are reduced over all 20 samples across both ranks
    assert r0["history"][-1]["val_loss"] == pytest.approx(history.last["val_loss"], rel=1e-4)
    assert load_checkpoint(tmp_path / out.name.replace("out", "ckpt") / "last.pt")["world_size"] == 2


def test_preloaded_and_streamed_data_train_to_identical_weights():
    data = regression_data(n=50)
    states = []
    for preload in (True, False):
        torch.manual_seed(0)
        solver = Regression(dropout=0.1)
        Trainer(solver, epochs=2, batch_size=8, device="cpu", progress=False, preload=preload).fit(data, data)
        states.append(solver.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    with pytest.raises(ValueError, match="preload must be"):
        Trainer(Regression(), preload="yes")


def test_compiled_objective_trains_like_the_eager_one():
    data = regression_data(n=64)
    histories = []
    for compile in (False, True):
        torch.manual_seed(0)
        histories.append(Trainer(Regression(), epochs=2, batch_size=32, device="cpu", progress=False,
                                 compile=compile).fit(data)["train_loss"])
    assert histories[1] == pytest.approx(histories[0], rel=1e-5)


def test_step_schedule_halves_the_learning_rate_on_time():
    history = Trainer(Regression(), lr=1e-2, epochs=5, batch_size=64, device="cpu", progress=False,
                      scheduler="step", scheduler_options={"step_size": 2, "gamma": 0.5}).fit(regression_data(n=64))
    assert history["lr"] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3])


def test_a_long_closure_step_shows_its_evaluations(capsys):
    """One L-BFGS step of many evaluations keeps the bar moving: evaluations so far and the loss."""
    class Slow(Regression):
        def loss(self, batch):
            time.sleep(0.02)
            return super().loss(batch)

    Trainer(Slow(), optimizer="lbfgs", lr=1.0, epochs=1, batch_size=256, device="cpu",
            optimizer_options={"max_iter": 60}).fit(regression_data())
    shown = re.findall(r"evaluations=(\d+), loss=([0-9.e+-]+)", capsys.readouterr().err)
    assert len(shown) >= 2 and int(shown[-1][0]) > int(shown[0][0]) > 0, shown
