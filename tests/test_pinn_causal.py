"""Causal training (Wang, Sankaran & Perdikaris 2024): the weighted residual loss and its weights."""
import math

import pytest
import torch

from sciml import Trainer
from sciml.solvers.pinn import Collocation, PINNSolver
from sciml.solvers.pinn_causal import causal_residual
from sciml.solvers.pinn_problems import allen_cahn, poisson


def test_the_rescaled_residual_gives_the_causal_loss_with_constant_weights():
    gen = torch.Generator().manual_seed(0)
    r = torch.randn(500, generator=gen, dtype=torch.float64).requires_grad_(True)
    t = 2.0 + 3.0 * torch.rand(500, generator=gen, dtype=torch.float64)  # t ∈ [2, 5]
    eps, chunks = 0.3, 7
    scaled, w = causal_residual(r, t, 2.0, 5.0, eps, chunks)

    # the loss written out chunk by chunk
    chunk = [(t >= 2.0 + 3.0 * i / chunks) & (t < 2.0 + 3.0 * (i + 1) / chunks) for i in range(chunks)]
    losses = [float((r.detach()[c] ** 2).mean()) for c in chunk]
    expected_w = [math.exp(-eps * sum(losses[:i])) for i in range(chunks)]
    assert w.tolist() == pytest.approx(expected_w, rel=1e-12)
    assert w[0] == 1.0 and all(a > b for a, b in zip(w, w[1:]))
    loss = scaled.pow(2).mean()
    assert float(loss.detach()) == pytest.approx(sum(wi * li for wi, li in zip(expected_w, losses)) / chunks, rel=1e-12)

    # the weights do not take part in the gradient: d loss / d r_p = 2 w_b r_p / (M n_b)
    loss.backward()
    for i, c in enumerate(chunk):
        torch.testing.assert_close(r.grad[c], 2 * expected_w[i] * r.detach()[c] / (chunks * int(c.sum())))


def test_a_large_epsilon_trains_the_first_chunk_only():
    """ε → ∞: the gradient of the residual term is that of the first time chunk alone."""
    solver = PINNSolver(allen_cahn(), hidden=(16, 16), hard=True, dtype=torch.float64, causal=1e6, causal_chunks=4)
    points = solver.collocation(400, seed=1)[0]["interior"]
    residual = solver.residuals(solver.collocation(400, seed=1)[0])["residual"][0]
    grads = torch.autograd.grad(residual.pow(2).mean(), list(solver.parameters()))

    first = points[points[:, 1] < 0.25]
    plain = PINNSolver(allen_cahn(), hidden=(16, 16), hard=True, dtype=torch.float64)
    plain.load_state_dict(solver.state_dict())
    expected = torch.autograd.grad(plain.residual(first).pow(2).mean() / 4, list(plain.parameters()))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-14)


def test_evaluate_reports_plain_losses_the_causal_objective_and_the_smallest_weight():
    causal = PINNSolver(allen_cahn(), hidden=(16, 16), hard=True, dtype=torch.float64, causal=1.0)
    plain = PINNSolver(allen_cahn(), hidden=(16, 16), hard=True, dtype=torch.float64)
    batch = causal.collocation(256, 32, seed=0)[0]
    metrics = Trainer(causal, device="cpu").evaluate(Collocation([batch]))  # under no_grad, as in training
    assert 0.0 < metrics["causal_weight"] < 1.0
    # loss and residual are the unweighted ones (comparable across runs); causal_loss is what is minimised
    assert metrics["loss"] == pytest.approx(float(plain.loss(batch).detach()), rel=1e-12)
    assert metrics["causal_loss"] == pytest.approx(float(causal.loss(batch).detach()), rel=1e-12)
    assert metrics["causal_loss"] < metrics["loss"]
    assert "causal_weight" not in plain.evaluate(batch)
    weights = causal.causal_weights(batch["interior"])
    assert weights.shape == (32,) and float(weights.min()) == pytest.approx(metrics["causal_weight"], rel=1e-12)
    with pytest.raises(ValueError, match="causal_weights needs a solver built with causal"):
        plain.causal_weights(batch["interior"])
    # a small ε weighs every chunk ~1: the loss tends to the plain one (chunks hold equal counts of Sobol points)
    tiny = PINNSolver(allen_cahn(), hidden=(16, 16), hard=True, dtype=torch.float64, causal=1e-9)
    assert float(tiny.loss(batch).detach()) == pytest.approx(float(plain.loss(batch).detach()), rel=1e-6)


def test_float32_network_on_float64_points():
    solver = PINNSolver(allen_cahn(), hidden=(16, 16), hard=True, causal=1.0)
    batch = solver.collocation(256, 32, seed=0)[0]
    assert batch["interior"].dtype == torch.float64
    loss = solver.loss(batch)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(q.grad).all() for q in solver.parameters())


@pytest.mark.parametrize("kwargs, words", [
    ({"causal": 0.0}, "causal must be None or a positive number"),
    ({"causal": True}, "causal must be None or a positive number"),
    ({"causal": math.inf}, "causal must be None or a positive number"),
    ({"causal": 1.0, "causal_chunks": 1}, "causal_chunks must be at least 2"),
])
def test_bad_causal_arguments_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        PINNSolver(allen_cahn(), hidden=(8,), **kwargs)


def test_a_fractional_chunk_count_is_refused():
    with pytest.raises(TypeError, match="causal_chunks must be an int"):
        PINNSolver(allen_cahn(), hidden=(8,), causal=1.0, causal_chunks=2.5)


def test_a_steady_problem_has_no_causal_training():
    with pytest.raises(ValueError, match="needs a time-dependent problem"):
        PINNSolver(poisson(), hidden=(8,), causal=1.0)
