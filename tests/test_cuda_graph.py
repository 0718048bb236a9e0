"""Trainer(cuda_graph=True): the guarded step as device arithmetic (checked here on the CPU, where
nothing is captured) and, on a GPU, captured and replayed."""
import copy
import math
import warnings

import pytest
import torch

from sciml import Trainer
from sciml.callbacks import Callback
from sciml.operators import FNO
from sciml.solvers import OperatorSolver

from tests._toy import Regression, fno_data, regression_data

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def _fit(solver, data, graph, **options):
    options = {"lr": 1e-2, "epochs": 3, "batch_size": 24, "scheduler": "cosine", "progress": False,
               "device": "cpu", **options}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = Trainer(solver, cuda_graph=graph, **options).fit(data)
    return history, [str(w.message) for w in caught if "cuda_graph" in str(w.message)]


def test_the_guarded_step_takes_the_eager_steps_on_the_cpu():
    data = regression_data(n=100)  # 24 does not divide 100: a short last batch every epoch
    torch.manual_seed(0)
    eager = Regression()
    graph = copy.deepcopy(eager)
    h_eager, _ = _fit(eager, data, False, optimizer="adamw", weight_decay=1e-2, grad_clip=0.5)
    h_graph, said = _fit(graph, data, True, optimizer="adamw", weight_decay=1e-2, grad_clip=0.5)
    assert said == ["cuda_graph=True: CUDA graphs need a CUDA device; on cpu the step runs as usual"]
    assert h_graph["train_loss"] == h_eager["train_loss"] and h_graph["lr"] == h_eager["lr"]
    for k, v in eager.state_dict().items():
        assert torch.equal(v, graph.state_dict()[k]), k


def test_a_poisoned_batch_is_undone_with_the_optimizer_state():
    x, y = regression_data(n=64).tensors
    x = x.clone()
    x[40, 0] = math.nan  # in the third batch of 16: after the two eager warm-up steps
    data = torch.utils.data.TensorDataset(x, y)
    torch.manual_seed(0)
    eager = Regression()
    graph = copy.deepcopy(eager)
    h_eager, _ = _fit(eager, data, False, epochs=2, batch_size=16, optimizer="adam", scheduler="constant")
    # no shuffling differences: the same sampler seeds, so the same batches are poisoned
    h_graph, _ = _fit(graph, data, True, epochs=2, batch_size=16, optimizer="adam", scheduler="constant")
    assert h_graph["skipped_steps"] == h_eager["skipped_steps"] == [1, 1]
    for k, v in eager.state_dict().items():
        assert torch.equal(v, graph.state_dict()[k]), k


class _Exploding(torch.optim.Adam):
    """Adam whose updates overflow float32 once ``explode`` is set."""

    explode = False

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        if self.explode:
            for group in self.param_groups:
                torch._foreach_mul_(group["params"], 1e30)
                torch._foreach_mul_(group["params"], 1e30)


class _Overflow(Callback):
    """After step 3 (past the eager warm-up), every update overflows."""

    def on_step_end(self, trainer, step, loss):
        if step == 3:
            self.weights = copy.deepcopy(trainer.solver.state_dict())
            self.state = copy.deepcopy(trainer.optimizer.state_dict()["state"])
            trainer.optimizer.explode = True


def test_an_update_that_overflows_is_undone_with_the_optimizer_state():
    solver, overflow = Regression(), _Overflow()
    trainer = Trainer(solver, optimizer=lambda params: _Exploding(params, lr=1e-2), epochs=1, batch_size=8, max_skipped_steps=3, device="cpu",
                      progress=False, callbacks=[overflow], cuda_graph=True)
    with pytest.warns(UserWarning, match="CUDA graphs need a CUDA device"), \
            pytest.raises(FloatingPointError, match="3 consecutive steps were skipped, the last with non-finite "
                                                    "parameters after the update"):
        trainer.fit(regression_data(n=64))
    for k, v in overflow.weights.items():
        assert torch.equal(v, solver.state_dict()[k]), k
    state = trainer.optimizer.state_dict()["state"]
    for i, saved in overflow.state.items():
        for k, v in saved.items():
            assert torch.equal(v, state[i][k]), (i, k)


@pytest.mark.parametrize("optimizer, reason", [
    ("lbfgs", "LBFGS needs the host within its step (closure)"),
    ("muon", "Muon has no capturable mode"),
])
def test_a_step_that_cannot_be_captured_says_why_and_runs_eagerly(optimizer, reason):
    data = regression_data(n=32)
    solver = Regression(width=8)
    history, said = _fit(solver, data, True, optimizer=optimizer, lr=0.02 if optimizer == "muon" else 1.0, epochs=2,
                         batch_size=32, scheduler="constant")
    assert len(said) == 1 and said[0].startswith(f"cuda_graph=True: the step is not captured: {reason}")
    assert history["skipped_steps"] == [0, 0] and math.isfinite(history["train_loss"][-1])


class _LossEveryFourthStep(torch.optim.Adam):
    """Adam that may ask for the loss on some steps (a graph captured once could not give it)."""

    step_may_require = frozenset({"loss"})


def test_an_optimizer_that_may_need_the_host_on_some_step_is_not_captured():
    history, said = _fit(Regression(width=8), regression_data(n=32), True, epochs=2, batch_size=8,
                         optimizer=lambda params: _LossEveryFourthStep(params, lr=1e-2))
    assert said == ["cuda_graph=True: the step is not captured: _LossEveryFourthStep needs the host within its step "
                    "(loss)"]
    assert history["skipped_steps"] == [0, 0]


def test_cuda_graph_must_be_a_bool():
    with pytest.raises(TypeError, match="cuda_graph must be True or False, got 'yes'"):
        Trainer(Regression(), cuda_graph="yes", device="cpu")


@cuda
@pytest.mark.cuda
@pytest.mark.parametrize("model", ["mlp", "fno"])
def test_the_captured_step_replays_the_eager_one_on_cuda(model, monkeypatch):
    """The replayed graph follows the eager run (same batches, cosine lr through the lr tensor, a
    short last batch run uncaptured) to float32 round-off; an FNO's complex FFT layers either
    capture or are reported, never silently wrong."""
    if model == "mlp":
        data, make = regression_data(n=100), lambda: Regression(width=64)
    else:
        data = fno_data(n=20, size=16)
        make = lambda: OperatorSolver(FNO(n_modes=(4, 4), in_channels=1, out_channels=1, hidden_channels=8))
    torch.manual_seed(0)
    eager = make()
    graph = copy.deepcopy(eager)
    # 4 batches an epoch, the fourth short: the graph is captured on a full batch, never on that one
    options = {"device": "cuda", "epochs": 4, "batch_size": 6 if model == "fno" else 32, "optimizer": "adamw"}
    torch.backends.cudnn.deterministic = True
    h_eager, _ = _fit(eager, data, False, **options)
    replays, replay = [], torch.cuda.CUDAGraph.replay
    monkeypatch.setattr(torch.cuda.CUDAGraph, "replay", lambda g: (replays.append(1), replay(g))[1])
    h_graph, said = _fit(graph, data, True, **options)
    if model == "mlp":
        assert said == [] and len(replays) == 4 * 3 - 3  # every full batch after the 3 warm-up steps
    assert all(s.startswith("cuda_graph=True: capture failed") for s in said), said
    assert h_graph["lr"] == h_eager["lr"]
    for a, b in zip(h_graph["train_loss"], h_eager["train_loss"]):
        assert a == pytest.approx(b, rel=1e-4)
    for k, v in eager.state_dict().items():
        torch.testing.assert_close(graph.state_dict()[k], v, rtol=1e-4, atol=1e-5)
