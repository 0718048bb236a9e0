"""NeuralODESolver on a linear spiral with a known flow, and its solver-heuristic regularizers."""
import pytest
import torch
from torch import nn

from sciml.solvers.neural_ode import NeuralODESolver, dopri5_heuristics

A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)


def _spiral(n, seed, steps=16):
    """Trajectories of dy/dt = A y: the exact flow is y(t) = exp(tA) y0."""
    g = torch.Generator().manual_seed(seed)
    y0 = 2 * torch.rand(n, 2, generator=g, dtype=torch.float64) - 1
    t = torch.linspace(0, 3, steps, dtype=torch.float64)
    return t, torch.einsum("tij,bj->bti", torch.linalg.matrix_exp(t[:, None, None] * A), y0)


class _Field(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 2)).double()

    def forward(self, t, y):
        return self.net(y)


def _train(solver, steps=300):
    t, y = _spiral(64, 0)
    opt = torch.optim.Adam(solver.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = solver.loss((t, y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return solver


def test_learns_the_spiral_flow():
    torch.manual_seed(0)
    solver = _train(NeuralODESolver(_Field(), method="rk4", options={"step_size": 0.1}))
    solver.method, solver.options, solver.rtol, solver.atol = "dopri5", {}, 1e-6, 1e-8
    t, y = _spiral(128, 1)
    metrics = solver.evaluate((t, y))
    assert metrics["rel_l2"] < 0.1  # stated error: relative L2 of held-out trajectories below 10%
    assert solver.last_nfe == int(metrics["nfe"]) > 0
    assert solver.sample(y[:, 0], t).shape == y.shape


def test_adjoint_gradients_match_backpropagation():
    t, y = _spiral(8, 2, steps=5)
    grads = []
    for adjoint in (False, True):
        torch.manual_seed(0)
        solver = NeuralODESolver(_Field(), adjoint=adjoint, rtol=1e-10, atol=1e-10)
        solver.loss((t, y)).backward()
        grads.append(torch.cat([p.grad.flatten() for p in solver.parameters()]))
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-8)


def test_heuristics_on_a_linear_ode():
    """For f(y) = −k y the stiffness estimate is k, and the error estimate vanishes like h⁵·k⁶."""
    for k in (1.0, 10.0, 100.0):
        func = lambda t, y, k=k: -k * y  # noqa: E731
        y = torch.ones(4, 3, dtype=torch.float64)
        h, error, stiffness = dopri5_heuristics(func, torch.tensor(0.0, dtype=torch.float64), y, 1e-6, 1e-8)
        assert abs(float(stiffness) - k) < 0.05 * k
        assert 0.1 < float(error) < 1.5  # the controller's step sits near the tolerance
        assert float(h) * k < 3.3 + 0.5  # dopri5's stability bound for real negative eigenvalues


def test_regularizer_has_a_gradient_and_validation():
    torch.manual_seed(0)
    solver = NeuralODESolver(_Field(), regularization="error", reg_weight=1.0, reg_samples=2)
    t, y = _spiral(16, 3, steps=4)
    solver.loss((t, y)).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in solver.parameters())
    with pytest.raises(ValueError, match="regularization"):
        NeuralODESolver(_Field(), regularization="jacobian")
    with pytest.raises(TypeError, match="func"):
        NeuralODESolver(lambda t, y: y)
    with pytest.raises(ValueError, match="shape"):
        solver.loss((t, y[:, :2]))


@pytest.mark.slow
def test_regularized_needs_fewer_evaluations_at_equal_error():
    """Pal et al. 2022: local error regularization lowers dopri5's NFE at nearly the same error."""
    results = {}
    for weight in (0.0, 0.03):
        torch.manual_seed(0)
        solver = _train(NeuralODESolver(_Field(), method="rk4", options={"step_size": 0.1}, rtol=1e-4, atol=1e-6,
                                        regularization="error" if weight else None, reg_weight=weight or 1e-2,
                                        reg_samples=2))
        solver.method, solver.options, solver.rtol, solver.atol = "dopri5", {}, 1e-5, 1e-5
        t, y = _spiral(128, 1)
        m = solver.evaluate((t, y))
        results[weight] = (float(m["rel_l2"]), int(m["nfe"]))
    (err0, nfe0), (err1, nfe1) = results[0.0], results[0.03]
    assert nfe1 < nfe0 and err1 < 1.2 * err0, results
