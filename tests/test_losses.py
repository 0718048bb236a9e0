import math

import pytest
import torch

from sciml.losses import get_loss, h1, mse, relative_l2, relative_lp


def grid_fn(n, f):
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="ij")
    return f(X, Y)[None, None]


def test_relative_l2_matches_hand_computation_and_is_a_batch_mean():
    torch.manual_seed(0)
    y = torch.randn(3, 2, 8, 8, dtype=torch.float64)
    p = y + 0.1 * torch.randn_like(y)
    per = [float((p[i] - y[i]).norm() / y[i].norm()) for i in range(3)]
    assert relative_l2(p, y).item() == pytest.approx(sum(per) / 3, rel=1e-12)
    assert relative_l2(p, y, reduction="none").tolist() == pytest.approx(per, rel=1e-12)
    # a mean, not a sum: duplicating the batch leaves it unchanged
    assert relative_l2(torch.cat([p, p]), torch.cat([y, y])).item() == pytest.approx(sum(per) / 3, rel=1e-12)
    assert relative_lp(p, y, p=1).item() == pytest.approx(
        sum(float((p[i] - y[i]).abs().sum() / y[i].abs().sum()) for i in range(3)) / 3, rel=1e-12)


def test_h1_norm_matches_the_analytic_value_on_a_non_periodic_grid():
    # u = sin(pi x) sin(pi y) + x: ||u||^2_H1 over the unit square, computed by hand
    f = lambda X, Y: torch.sin(math.pi * X) * torch.sin(math.pi * Y) + X  # noqa: E731
    exact = (0.25 + 2 * 2 / math.pi**2 + 1 / 3) + (math.pi**2 / 2 + 1 + 0 + 2 * 0)
    # cross term of grad: 2 * int pi cos(pi x) sin(pi y) dx dy = 0; int (u_x)^2 adds 1 from d/dx x
    for n, tol in ((65, 2e-3), (257, 2e-4)):
        u = grid_fn(n, f)
        value = h1(u, torch.zeros_like(u), relative=False).item() ** 2
        assert value == pytest.approx(exact, rel=tol)


def test_h1_error_vanishes_at_second_order_for_a_resolved_perturbation():
    f = lambda X, Y: torch.exp(X) * torch.cos(2 * Y)  # noqa: E731
    u = grid_fn(33, f)
    assert h1(u, u).item() == 0
    assert h1(1.01 * u, u).item() == pytest.approx(0.01, rel=1e-9)  # relative: scale invariant


def test_mse_and_errors():
    a, b = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    assert mse(a, b).item() == 1.0
    with pytest.raises(ValueError, match="same shape"):
        relative_l2(a, b[:, :, :3])
    with pytest.raises(ValueError, match="reduction"):
        mse(a, b, reduction="max")
    with pytest.raises(ValueError, match="unknown loss 'l3'"):
        get_loss("l3")
    with pytest.raises(ValueError, match="at least 3 grid points"):
        h1(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
