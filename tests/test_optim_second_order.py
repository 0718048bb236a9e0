"""Second-order optimizers: Hutchinson's estimate, M-FAC's IHVP, MKOR's factors, convergence,
state_dict round trips, and training an FNO and a PINN through the Trainer."""
import copy
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sciml import Solver, Trainer
from sciml.operators import FNO
from sciml.optim import MFAC, MKOR, AdaHessian, DCTLowRank, Sophia, build_optimizer, hessian_diagonal, step_requires
from sciml.optim.dct_lowrank import dct_matrix
from sciml.optim.mfac import SlidingWindowIHVP
from sciml.solvers.neural_ode import NeuralODESolver
from sciml.solvers.operator import OperatorSolver
from sciml.solvers.pinn import PINNSolver
from sciml.solvers.pinn_problems import reaction

sys.path.insert(0, str(Path(__file__).parent))
from _toy import fno_data, train_resume_and_compare  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- Hutchinson
class _Spectral(nn.Module):
    """Linear → FFT with a complex weight on 3 modes → tanh → Linear: real and complex parameters."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.lin = nn.Parameter(torch.randn(8, 3, generator=g, dtype=torch.float64) / 2)
        self.spec = nn.Parameter(torch.randn(3, dtype=torch.complex128, generator=g))
        self.out = nn.Parameter(torch.randn(8, generator=g, dtype=torch.float64) / 3)

    def forward(self, x):  # x (n, 3) -> (n,)
        h = x @ self.lin.T  # (n, 8)
        z = torch.fft.rfft(h)[:, :3] * self.spec
        return torch.tanh(torch.fft.irfft(z, n=8)) @ self.out


def _flat_loss(model, x, y):
    """The loss as a function of all parameters flattened to one real vector (complex as pairs)."""
    shapes = [(n, p.shape, p.is_complex()) for n, p in model.named_parameters()]

    def f(theta):
        params, i = {}, 0
        for name, shape, cplx in shapes:
            n = math.prod(shape) * (2 if cplx else 1)
            chunk = theta[i: i + n]
            params[name] = torch.view_as_complex(chunk.reshape(*shape, 2)) if cplx else chunk.reshape(shape)
            i += n
        return (torch.func.functional_call(model, params, (x,)) - y).pow(2).mean()

    theta = torch.cat([torch.view_as_real(p).reshape(-1) if p.is_complex() else p.reshape(-1)
                       for p in model.parameters()]).detach()
    return f, theta


def test_hutchinson_converges_to_the_exact_diagonal_through_complex_spectral_weights():
    model = _Spectral()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 3, generator=g, dtype=torch.float64), torch.randn(32, generator=g, dtype=torch.float64)
    f, theta = _flat_loss(model, x, y)
    hessian = torch.func.hessian(f)(theta)
    exact = hessian.diagonal()
    # with Rademacher probes, E‖estimate − diag H‖² = Σ_{i≠j} H_ij² / probes
    spread = float((hessian.square().sum() - exact.square().sum()).sqrt() / exact.norm())
    params, errors = list(model.parameters()), []
    for probes in (8, 64, 512):
        grads = torch.autograd.grad((model(x) - y).pow(2).mean(), params, create_graph=True)
        est = hessian_diagonal(params, grads, torch.Generator().manual_seed(2), probes)
        error = float((torch.cat([e.reshape(-1) for e in est]) - exact).norm() / exact.norm())
        assert 0.5 < error / (spread / math.sqrt(probes)) < 2.0, (probes, error)
        errors.append(error)
    assert errors[2] < errors[0] / 4  # 8× expected from 64× more probes


@pytest.mark.cuda
def test_hutchinson_probes_and_estimate_are_the_same_on_cuda():
    out = []
    for device in ("cpu", "cuda"):
        model = _Spectral().to(device)
        g = torch.Generator().manual_seed(1)
        x, y = (torch.randn(32, 3, generator=g, dtype=torch.float64).to(device),
                torch.randn(32, generator=g, dtype=torch.float64).to(device))
        params = list(model.parameters())
        grads = torch.autograd.grad((model(x) - y).pow(2).mean(), params, create_graph=True)
        est = hessian_diagonal(params, grads, torch.Generator().manual_seed(2), 8)
        out.append(torch.cat([e.reshape(-1) for e in est]).cpu())
    assert torch.allclose(out[0], out[1], rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- M-FAC
@pytest.mark.parametrize("d, m, damp", [(40, 6, 1e-2), (16, 32, 1.0)])
def test_mfac_ihvp_equals_the_dense_inverse_to_1e_10_in_float64(d, m, damp):
    # second case: a window longer than the gradient (m > d), where G Gᵀ is singular
    g = torch.Generator().manual_seed(0)
    window = SlidingWindowIHVP(d, m, damp, dtype=torch.float64)
    history = []
    for step in range(1, 2 * m + 4):  # wraps around the ring twice: exact refreshes at m and 2m, Woodbury (3) between
        grad = torch.randn(d, generator=g, dtype=torch.float64) * (1 + step % 3)
        window.add(grad)
        history.append(grad)
        G = torch.stack(history[-m:])
        dense = damp * torch.eye(d, dtype=torch.float64) + G.T @ G / m
        x = torch.randn(d, generator=g, dtype=torch.float64)
        expected = torch.linalg.solve(dense, x)
        assert (window.ihvp(x) - expected).norm() / expected.norm() < 1e-10, step


def test_mfac_ihvp_of_a_float32_window_keeps_float32_accuracy_with_large_gradients():
    # λ = 1e-4 against ‖g‖ ≈ 70: x − Gᵀc cancels to ~1e-6 of its terms, so it is formed in float64
    d, m, damp = 2000, 32, 1e-4
    g = torch.Generator().manual_seed(0)
    windows = [SlidingWindowIHVP(d, m, damp, dtype=dtype) for dtype in (torch.float32, torch.float64)]
    for _ in range(m + 5):
        grad = (torch.randn(d, generator=g, dtype=torch.float64) * 1.5).float()
        for window in windows:
            window.add(grad.to(window.grads.dtype))
    x = grad  # a gradient, as in a step: nearly all of it lies in the span of G, where (2) cancels
    single, double = windows[0].ihvp(x), windows[1].ihvp(x.double())
    assert single.dtype == torch.float32
    assert (single.double() - double).norm() / double.norm() < 1e-5


@pytest.mark.cuda
def test_mfac_ihvp_on_cuda_matches_cpu():
    d, m = 1000, 16
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(d, generator=g, dtype=torch.float64) for _ in range(20)]
    x = torch.randn(d, generator=g, dtype=torch.float64)
    out = []
    for device in ("cpu", "cuda"):
        window = SlidingWindowIHVP(d, m, 1e-3, dtype=torch.float64, device=device)
        for grad in grads:
            window.add(grad.to(device))
        out.append(window.ihvp(x.to(device)).cpu())
    assert (out[0] - out[1]).norm() / out[0].norm() < 1e-10


# ---------------------------------------------------------------- MKOR
def test_mkor_sherman_morrison_factors_equal_the_explicit_inverses():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3)).double()
    gamma = 0.8
    opt = MKOR(model, lr=1e-3, stat_decay=gamma, inv_freq=1)
    first = model[0]
    a_terms, g_terms = [], []
    g = torch.Generator().manual_seed(1)
    for _ in range(4):
        x = torch.randn(16, 5, generator=g, dtype=torch.float64)
        y = torch.randn(16, 3, generator=g, dtype=torch.float64)
        opt.zero_grad()
        h = first(x)
        h.retain_grad()
        ((model[2](torch.tanh(h)) - y) ** 2).mean().backward()
        a_terms.append(torch.cat([x, torch.ones(16, 1, dtype=torch.float64)], 1).mean(0))  # ā with the bias' 1
        g_terms.append(h.grad.sum(0))  # ḡ: output gradients summed over the rows
        opt.step()
    state = opt.state[first.weight]
    for key, terms in (("right_inverse", a_terms), ("left_inverse", g_terms)):
        n = terms[0].numel()
        J = torch.eye(n, dtype=torch.float64)
        for v in terms:
            J = gamma * J + (1 - gamma) * torch.outer(v, v)  # (1)
        assert (state[key] - torch.linalg.inv(J)).abs().max() < 1e-10 * torch.linalg.inv(J).abs().max(), key


# ---------------------------------------------------------------- Sophia-G's sampled losses
def _monte_carlo_outer(sampled, params, draws):
    """E[ĝĝᵀ] over ``draws`` gradients of ``sampled(generator)``."""
    gen, total = torch.Generator().manual_seed(0), 0.0
    for _ in range(draws):
        g = torch.cat([x.reshape(-1) for x in torch.autograd.grad(sampled(gen), params)])
        total = total + torch.outer(g, g)
    return total / draws


@pytest.mark.parametrize("loss", ["mse", "l2"])
def test_operator_sampled_loss_gives_the_gauss_newton_matrix_in_expectation(loss):
    torch.manual_seed(0)
    solver = OperatorSolver(nn.Conv2d(2, 1, 1).double(), loss=loss, normalize=False, in_channels=2, out_channels=1)
    g = torch.Generator().manual_seed(1)
    # a 2 × 2 grid: for "l2" the error direction removed from each sample's 4 outputs changes the
    # Gauss–Newton matrix by about 30%, well above the Monte-Carlo error
    x, y = torch.randn(3, 2, 2, 2, generator=g, dtype=torch.float64), torch.randn(3, 1, 2, 2, generator=g,
                                                                                 dtype=torch.float64)
    params = list(solver.parameters())
    pred = solver.operator(x)
    jac = torch.cat([j.reshape(pred.numel(), -1) for j in torch.autograd.functional.jacobian(
        lambda w, b: torch.nn.functional.conv2d(x, w, b), tuple(params))], dim=1)  # (outputs, parameters)
    out_hessian = torch.func.hessian(lambda f: solver.loss_fn(f.reshape(pred.shape), y))(pred.detach().reshape(-1))
    exact = jac.T @ out_hessian @ jac  # Gauss–Newton: Jᵀ ∇²_f ℓ J
    estimate = _monte_carlo_outer(lambda gen: solver.sampled_loss((x, y), gen), params, 4000)
    assert (estimate - exact).norm() / exact.norm() < 0.08  # Monte-Carlo error ≈ 0.02 with 4000 draws


def test_pinn_sampled_loss_gives_the_gauss_newton_matrix_in_expectation():
    solver = PINNSolver(reaction(), hidden=(3,), dtype=torch.float64, weights={"residual": 2.0})
    batch = solver.collocation(6, 3)[0]
    params = list(solver.parameters())
    exact = 0.0
    for term, rs in solver.residuals(batch).items():
        for r in rs:  # loss w·mean(r²): Gauss–Newton (2w/n) Σ ∇r_i ∇r_iᵀ
            for i in range(r.numel()):
                grad = torch.cat([x.reshape(-1) for x in torch.autograd.grad(r[i], params, retain_graph=True)])
                exact = exact + 2 * solver.weights[term] / r.numel() * torch.outer(grad, grad)
    estimate = _monte_carlo_outer(lambda gen: solver.sampled_loss(batch, gen), params, 2000)
    assert (estimate - exact).norm() / exact.norm() < 0.1, float((estimate - exact).norm() / exact.norm())


class _Tanh(nn.Module):
    """dy/dt = tanh(W y + b), 2-D state: 6 parameters."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2).double()

    def forward(self, t, y):
        return torch.tanh(self.lin(y))


def test_neural_ode_sampled_loss_gives_the_gauss_newton_matrix_in_expectation():
    from torchdiffeq import odeint

    torch.manual_seed(0)
    solver = NeuralODESolver(_Tanh(), method="rk4", options={"step_size": 0.5})
    g = torch.Generator().manual_seed(1)
    t, y = torch.linspace(0, 1, 3, dtype=torch.float64), torch.randn(3, 3, 2, generator=g, dtype=torch.float64)
    params = list(solver.parameters())

    def trajectory(w, b):  # the same solve as the solver's, written out, as a function of the parameters
        return odeint(lambda _, x: torch.tanh(x @ w.T + b), y[:, 0], t, method="rk4", options={"step_size": 0.5})

    jac = torch.cat([j.reshape(y.numel(), -1) for j in torch.autograd.functional.jacobian(trajectory, tuple(params))],
                    dim=1)  # (outputs, parameters)
    exact = 2 / y.numel() * jac.T @ jac  # loss mean((ŷ − y)²): Gauss–Newton (2/N) JᵀJ
    draws = 500
    estimate = _monte_carlo_outer(lambda gen: solver.sampled_loss((t, y), gen), params, draws)
    # for ĝ ~ N(0, GN): E‖mean of ĝĝᵀ − GN‖²_F = (tr(GN)² + ‖GN‖²_F) / draws
    expected = float(((exact.trace() ** 2 + exact.square().sum()) / draws).sqrt() / exact.norm())
    error = float((estimate - exact).norm() / exact.norm())
    assert error < 2.5 * expected, (error, expected)
    with pytest.raises(NotImplementedError, match="regularization='error'"):
        NeuralODESolver(_Tanh(), regularization="error").sampled_loss((t, y), g)


# ---------------------------------------------------------------- convergence
def _diagonal_quadratic():
    """½ Σ d_ij (X_ij − X*_ij)², d log-spaced over [1, 1e4] (condition number 1e4), 8 × 6."""
    g = torch.Generator().manual_seed(0)
    d = torch.logspace(0, 4, 48, dtype=torch.float64)[torch.randperm(48, generator=g)].reshape(8, 6)
    return d, torch.randn(8, 6, generator=g, dtype=torch.float64)


def _minimise(make, steps):
    """Steps until ‖X − X*‖/‖X*‖ < 1e-3 (None if never), and the final error."""
    d, target = _diagonal_quadratic()
    X = torch.zeros(8, 6, dtype=torch.float64, requires_grad=True)
    opt = make([X])
    for k in range(1, steps + 1):
        requires = step_requires(opt)
        opt.zero_grad()
        (0.5 * d * (X - target) ** 2).sum().backward(create_graph="create_graph" in requires)
        extra = {}
        if "sampled_loss" in requires:  # Gauss–Newton of a quadratic: s ~ N(0, d)
            extra["sampled_grad"] = lambda gen, ps: torch.autograd.grad(
                (d.sqrt() * torch.randn(8, 6, generator=gen, dtype=torch.float64) * X).sum(), ps)
        opt.step(**extra)
        X.grad = None
        err = float((X.detach() - target).norm() / target.norm())
        if err < 1e-3:
            return k, err
    return None, err


SGD_STEPS = 2000


@pytest.mark.parametrize("name, make, steps", [
    ("sophia_h", lambda p: Sophia(p, lr=0.05, rho=1.0, betas=(0.9, 0.99), update_every=1), 200),
    ("sophia_g", lambda p: Sophia(p, lr=0.05, rho=1.0, betas=(0.9, 0.99), estimator="gnb", update_every=1), 200),
    ("adahessian", lambda p: AdaHessian(p, lr=0.3), 100),
])
def test_on_an_ill_conditioned_quadratic_diagonal_methods_need_10x_fewer_steps_than_sgd(name, make, steps):
    # SGD at lr = 1/L (the largest safe step) is still far off after SGD_STEPS steps
    sgd_hit, sgd_err = _minimise(lambda p: torch.optim.SGD(p, lr=1e-4), SGD_STEPS)
    assert sgd_hit is None and sgd_err > 0.2
    hit, _ = _minimise(make, steps)
    assert hit is not None and hit <= SGD_STEPS // 10, (name, hit)


def test_mkor_on_ill_conditioned_least_squares_needs_10x_fewer_steps_than_sgd():
    """min E (xᵀw − y)², x ~ N(0, Σ), cond(Σ) = 1e3, one sample per step: R⁻¹ tracks Σ⁻¹."""
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    root = U * torch.logspace(0, 1.5, 16, dtype=torch.float64) @ U.T  # Σ^½, eigenvalues of Σ from 1 to 1e3
    X = torch.randn(2048, 16, generator=g, dtype=torch.float64) @ root
    w_star = torch.randn(1, 16, generator=g, dtype=torch.float64)

    def steps_to_1e_3(make, steps):
        model = nn.Linear(16, 1, bias=False).double()
        nn.init.zeros_(model.weight)
        opt, order = make(model), torch.Generator().manual_seed(1)
        for k in range(1, steps + 1):
            i = torch.randint(0, 2048, (1,), generator=order)
            opt.zero_grad()
            ((model(X[i]) - X[i] @ w_star.T) ** 2).mean().backward()
            opt.step()
            err = float((model.weight.detach() - w_star).norm() / w_star.norm())
            if err < 1e-3:
                return k, err
        return None, err

    # SGD at 1e-4, the largest of 1e-4, 3e-4, 1e-3 that does not diverge, is still far off
    hit, err = steps_to_1e_3(lambda m: torch.optim.SGD(m.parameters(), lr=1e-4), 4000)
    assert hit is None and err > 0.1
    hit, _ = steps_to_1e_3(lambda m: MKOR(m, lr=1e-3, backend="sgd", momentum=0.0, inv_freq=1, stat_decay=0.9), 400)
    assert hit is not None  # ≥ 10× fewer steps


def test_mfac_on_noisy_ill_conditioned_least_squares_needs_4x_fewer_steps_than_sgd():
    """min E (xᵀw − y)², y = xᵀw* + σε, x ~ N(0, Σ), cond(Σ) = 1e3, one fresh sample per step.

    M-FAC's window holds per-sample gradients g = 2x(xᵀδ − σε), δ = w − w*, whose second moment
    is E[ggᵀ] = 4(δᵀΣδ + σ²)Σ + 8ΣδδᵀΣ: Σ's eigenvectors, stiff where the Hessian 2Σ is stiff. With
    damping λ between the soft and the stiff eigenvalues, F⁻¹ = (λI + GᵀG/m)⁻¹ damps the stiff
    directions by their curvature and leaves the soft ones at 1/λ: the step can be large along
    the soft directions, where SGD, bounded by the stiffest, crawls. The error starts in the four
    softest directions. (Without noise the second moment vanishes with δ and F⁻¹g grows like
    1/loss, the empirical-Fisher pathology: the noise is what makes the window carry the curvature.)
    """
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    root = U * torch.logspace(0, 1.5, 16, dtype=torch.float64) @ U.T  # Σ^½, eigenvalues of Σ from 1 to 1e3
    w_star = torch.randn(16, generator=g, dtype=torch.float64)
    delta = U[:, :4] @ torch.randn(4, generator=g, dtype=torch.float64)
    delta /= delta.norm()

    def steps_to_half(make, steps):
        model = nn.Linear(16, 1, bias=False).double()
        with torch.no_grad():
            model.weight.copy_(w_star + delta)
        opt, data = make(model), torch.Generator().manual_seed(1)
        for k in range(1, steps + 1):
            x = torch.randn(1, 16, generator=data, dtype=torch.float64) @ root
            y = x @ w_star + 2.0 * torch.randn(1, generator=data, dtype=torch.float64)  # σ = 2
            opt.zero_grad()
            ((model(x)[:, 0] - y) ** 2).mean().backward()
            opt.step()
            err = float((model.weight.detach()[0] - w_star).norm())
            if not err < 100:
                return None, err
            if err < 0.5:
                return k, err
        return None, err

    # SGD at 2e-4, the largest of 1e-4, 2e-4, 3e-4 that does not diverge, needs more than 1200 steps
    assert steps_to_half(lambda m: torch.optim.SGD(m.parameters(), lr=3e-4), 1200)[1] > 100
    hit, err = steps_to_half(lambda m: torch.optim.SGD(m.parameters(), lr=2e-4), 1200)
    assert hit is None and err > 0.5
    hit, _ = steps_to_half(lambda m: MFAC(m.parameters(), lr=0.3, ngrads=64, damp=30.0), 300)
    assert hit is not None  # ≥ 4× fewer steps


def test_dct_lowrank_on_an_ill_conditioned_quadratic_in_the_dct_basis_needs_10x_fewer_steps_than_sgd():
    """½ Σ_k d_k ‖(W − W*) q_k‖² over W (24 × 12), q_k the DCT-II columns, d_k log-spaced over
    [1, 1e4], and W* − W₀ in four of the columns (a gradient of rank 4 in the DCT basis): rank-4
    Adam in the selected columns is blind to the scales d_k; SGD is bounded by d_max."""
    g = torch.Generator().manual_seed(0)
    q = dct_matrix(12, torch.float64)
    d = torch.logspace(0, 4, 12, dtype=torch.float64)[torch.randperm(12, generator=g)]
    columns = d.argsort()[[0, 4, 8, 11]].sort().values  # curvatures 1 … 1e4
    target = torch.randn(24, 4, generator=g, dtype=torch.float64) @ q[:, columns].T
    hessian = q * d @ q.T

    def steps_to_1e_3(make, steps):
        W = torch.zeros(24, 12, dtype=torch.float64, requires_grad=True)
        opt = make([W])
        for k in range(1, steps + 1):
            opt.zero_grad()
            (0.5 * ((W - target) @ hessian * (W - target)).sum()).backward()
            opt.step()
            err = float((W.detach() - target).norm() / target.norm())
            if err < 1e-3:
                return k, err, opt
        return None, err, opt

    hit, err, _ = steps_to_1e_3(lambda p: torch.optim.SGD(p, lr=1e-4), 2000)  # lr = 1/L
    assert hit is None and err > 0.2
    hit, _, opt = steps_to_1e_3(lambda p: DCTLowRank(p, lr=0.1, rank=4), 200)
    assert hit is not None  # ≥ 10× fewer steps
    assert torch.equal(opt.state[opt.param_groups[0]["params"][0]]["indices"], columns)  # (2) found the columns


# ---------------------------------------------------------------- DCT basis
def test_dct_matrix_is_orthonormal_and_is_scipys_dct():
    from scipy.fft import dct

    q = dct_matrix(7, torch.float64)
    assert torch.allclose(q.T @ q, torch.eye(7, dtype=torch.float64), atol=1e-12)
    x = torch.randn(7, dtype=torch.float64)
    assert torch.allclose(q.T @ x, torch.from_numpy(dct(x.numpy(), norm="ortho")), atol=1e-12)


def test_dct_lowrank_handles_layers_of_different_shapes_and_keeps_only_indices():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 20), nn.Tanh(), nn.Linear(20, 5), nn.Tanh(), nn.Conv1d(5, 3, 1))
    opt = DCTLowRank(model.parameters(), lr=1e-2, rank=4, update_every=1)
    x, y = torch.randn(32, 12), torch.randn(32, 3, 1)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = (model[4](model[:4](x)[..., None]) - y).pow(2).mean()
        loss.backward()
        opt.step()
        first = first or float(loss.detach())
    assert float(loss.detach()) < 0.7 * first
    for p in (model[0].weight, model[2].weight, model[4].weight):  # 20 × 12, 5 × 20, 3 × 5
        state = opt.state[p]
        rows, cols = p.shape[0], p[0].numel()
        r = min(4, rows, cols)
        assert state["indices"].shape == (r,) and state["indices"].dtype == torch.long
        assert state["exp_avg"].shape == ((r, cols) if rows < cols else (rows, r))
    assert sorted(k[0] for k in opt._dct) == [3, 5, 12]  # one DCT per size, of the smaller side


def test_dct_selection_picks_the_columns_aligned_with_the_gradient():
    q = dct_matrix(10, torch.float64)
    p = nn.Parameter(torch.zeros(16, 10, dtype=torch.float64))
    p.grad = torch.randn(16, 1, dtype=torch.float64) * q[:, 3] + 0.5 * torch.randn(16, 1, dtype=torch.float64) * q[:, 7]
    opt = DCTLowRank([p], rank=2)
    opt.step()
    assert opt.state[p]["indices"].tolist() == [3, 7]


# ---------------------------------------------------------------- state_dict round trips
class _Net(nn.Module):
    """1×1 conv, complex spectral weight, Linear: every kind of parameter, MKOR layers included."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 1)
        self.spectral = nn.Parameter(torch.randn(6, 5, 4, 3, dtype=torch.complex64, generator=g) / 5)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        h = self.conv(x)
        z = torch.fft.rfft2(h)[..., :4, :3]
        h = torch.fft.irfft2(torch.einsum("bixy,ioxy->boxy", z, self.spectral), s=(8, 8))
        return self.fc(h.mean((-2, -1)).tanh())


def _train(model, opt, seeds):
    for s in seeds:
        g = torch.Generator().manual_seed(s)
        x, y = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 2, generator=g)
        requires = step_requires(opt)
        opt.zero_grad()
        loss = (model(x) - y).square().mean()
        loss.backward(create_graph="create_graph" in requires)
        extra = {}
        if "sampled_loss" in requires:
            def sampled_grad(gen, params, x=x):
                pred = model(x)
                return torch.autograd.grad((pred * torch.randn(pred.shape, generator=gen)).sum(), params,
                                           allow_unused=True)
            extra["sampled_grad"] = sampled_grad
        if "loss" in requires:
            extra["loss"] = loss.detach()
        opt.step(**extra)
        opt.zero_grad()


ROUND_TRIP = {
    "sophia_h": ("sophia", {"estimator": "hutchinson", "update_every": 2}),
    "sophia_g": ("sophia", {"estimator": "gnb", "update_every": 2}),
    "adahessian": ("adahessian", {"update_every": 2}),
    "mfac": ("mfac", {"ngrads": 4, "momentum": 0.9}),
    "mkor": ("mkor", {"inv_freq": 2}),
    "mkor_h": ("mkor", {"inv_freq": 2, "hybrid": True, "switch_window": 2}),
    "dct_lowrank": ("dct_lowrank", {"rank": 2, "update_every": 2}),
}


@pytest.mark.parametrize("key", ROUND_TRIP)
def test_state_dict_round_trip_continues_bit_identically(key):
    name, options = ROUND_TRIP[key]
    saved, final = train_resume_and_compare(
        _Net, lambda model: build_optimizer(name, model, lr=1e-2, weight_decay=1e-2, **options), _train,
        range(3), range(3, 7))
    assert any(not torch.equal(a, b) for a, b in zip(saved.values(), final.values()))


# ---------------------------------------------------------------- the Trainer
TRAINER = {  # name: (optimizer, lr, options)
    "sophia_h": ("sophia", 3e-3, {"estimator": "hutchinson", "update_every": 2}),
    "sophia_g": ("sophia", 3e-3, {"estimator": "gnb", "update_every": 2}),
    "adahessian": ("adahessian", 0.05, {}),
    "mfac": ("mfac", 3e-3, {"ngrads": 8, "damp": 1e-2, "momentum": 0.5}),
    "mkor": ("mkor", 3e-3, {"inv_freq": 2}),
    "mkor_h": ("mkor", 3e-3, {"inv_freq": 2, "hybrid": True, "switch_window": 5}),
    "dct_lowrank": ("dct_lowrank", 3e-3, {"rank": 4, "update_every": 5}),
}


@pytest.mark.parametrize("key", TRAINER)
def test_each_optimizer_trains_an_fno_through_the_trainer(key):
    name, lr, options = TRAINER[key]
    torch.manual_seed(0)
    solver = OperatorSolver(FNO((4, 4), 1, 1, 8, n_layers=2))
    trainer = Trainer(solver, optimizer=name, lr=lr, optimizer_options=options, epochs=10, batch_size=8,
                      device="cpu", progress=False)
    history = trainer.fit(fno_data())
    assert history["skipped_steps"] == [0] * 10
    assert history["train_loss"][-1] < 0.95 * history["train_loss"][0]
    assert all(torch.isfinite(p).all() for p in solver.parameters())


@pytest.mark.parametrize("key", TRAINER)
def test_each_optimizer_trains_a_pinn_through_the_trainer(key):
    name, lr, options = TRAINER[key]
    torch.manual_seed(0)
    solver = PINNSolver(reaction(), hidden=(16, 16))
    data = solver.collocation(128, 32, 32)
    history = Trainer(solver, optimizer=name, lr=lr, optimizer_options=options, epochs=30, batch_size=1,
                      device="cpu", progress=False).fit(data)
    assert history["skipped_steps"] == [0] * 30
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]


class _Field(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2)).double()

    def forward(self, t, y):
        return self.net(y)


@pytest.mark.parametrize("key", TRAINER)
def test_each_optimizer_trains_a_neural_ode_through_the_trainer(key):
    name, lr, options = TRAINER[key]
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=torch.float64)
    t = torch.linspace(0, 2.0, 9, dtype=torch.float64)
    y0 = 2 * torch.rand(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 1
    y = torch.einsum("tij,bj->bti", torch.linalg.matrix_exp(t[:, None, None] * A), y0)  # dy/dt = A y
    torch.manual_seed(0)
    solver = NeuralODESolver(_Field(), method="rk4", options={"step_size": 0.25})
    history = Trainer(solver, optimizer=name, lr=lr, optimizer_options=options, epochs=25, batch_size=16,
                      device="cpu", progress=False).fit(torch.utils.data.TensorDataset(t.expand(32, -1), y))
    assert history["skipped_steps"] == [0] * 25
    assert history["train_loss"][-1] < 0.8 * history["train_loss"][0]


class _Quadratic(Solver):
    """½ Σ d_i x_i², from x = 1: Hutchinson's estimate is exact (z ⊙ Hz = d), Gauss–Newton = diag(d)."""

    def __init__(self):
        super().__init__()
        self.d = torch.logspace(0, 2, 5, dtype=torch.float64)
        self.x = nn.Parameter(torch.ones(5, dtype=torch.float64))

    def loss(self, batch):
        return 0.5 * (self.d * self.x ** 2).sum()

    def sampled_loss(self, batch, generator):
        return (self.d.sqrt() * torch.randn(5, generator=generator, dtype=torch.float64) * self.x).sum()


@pytest.mark.parametrize("name, options", [
    ("sophia", {"estimator": "hutchinson", "update_every": 1}),
    ("sophia", {"estimator": "gnb", "update_every": 1}),
    ("adahessian", {}),
])
def test_grad_clip_scales_gradient_and_curvature_alike(name, options):
    """Clipping by c makes the step's objective c·L: the momentum and the Hessian (or Gauss–Newton)
    estimate of one step both scale by c, so the curvature is the clipped objective's."""
    states = {}
    for clip in (None, 1.0):
        solver = _Quadratic()
        trainer = Trainer(solver, optimizer=name, lr=1e-3, optimizer_options=options, grad_clip=clip, epochs=1,
                          batch_size=1, device="cpu", progress=False)
        trainer.fit(torch.utils.data.TensorDataset(torch.zeros(1, 1)))
        states[clip] = trainer.optimizer.state[solver.x]
    c = 1.0 / (float((solver.d * 1.0).norm()) + 1e-6)  # the gradient at x = 1 is d
    assert c < 0.02
    assert torch.allclose(states[1.0]["exp_avg"], c * states[None]["exp_avg"], rtol=1e-12, atol=0)
    assert torch.allclose(states[1.0]["hessian"], c * states[None]["hessian"], rtol=1e-12, atol=0)
    if options.get("estimator") != "gnb":  # Hutchinson is exact on a diagonal Hessian
        scale = 1 - 0.99 if name == "sophia" else 1.0  # Sophia's h is an EMA with β₂ = 0.99
        assert torch.allclose(states[None]["hessian"], scale * solver.d, rtol=1e-12, atol=0)


def test_sophia_asks_for_the_graph_only_on_refresh_steps():
    opt = Sophia([nn.Parameter(torch.ones(2))], update_every=3)
    seen = []
    for _ in range(6):
        seen.append(step_requires(opt))
        opt.param_groups[0]["params"][0].grad = torch.ones(2)
        if seen[-1]:
            with pytest.raises(RuntimeError, match="need the gradient's graph"):
                opt.step()
            p = opt.param_groups[0]["params"][0]
            loss = (p ** 3).sum()
            p.grad = None
            loss.backward(create_graph=True)
        opt.step()
    assert seen == [frozenset({"create_graph"}), frozenset(), frozenset()] * 2


def test_mkor_h_switches_to_first_order_when_the_loss_stalls():
    model = nn.Linear(3, 1)
    opt = MKOR(model, hybrid=True, switch_window=3, switch_threshold=0.01)
    x = torch.randn(8, 3)
    for loss in [1.0, 0.5, 0.25, 0.125, 0.06, 0.03]:  # falls fast: stays second order
        opt.zero_grad()
        model(x).sum().backward()
        opt.step(loss=loss)
    assert not opt.first_order and step_requires(opt) == {"loss"}
    for loss in [0.03] * 6:  # flat: switches
        opt.zero_grad()
        model(x).sum().backward()
        opt.step(loss=loss)
    assert opt.first_order and step_requires(opt) == frozenset() and opt._handles == []


@pytest.mark.parametrize("factory, kwargs, message", [
    (Sophia, {"lr": -1.0}, "lr must be in [0, inf), got -1.0"),
    (Sophia, {"rho": 0.0}, "rho must be in (0, inf), got 0.0"),
    (Sophia, {"estimator": "fisher"}, "estimator must be one of ('hutchinson', 'gnb'), got 'fisher'"),
    (Sophia, {"update_every": 0}, "update_every must be an integer >= 1, got 0"),
    (AdaHessian, {"hessian_power": 1.5}, "hessian_power must be in [0, 1], got 1.5"),
    (AdaHessian, {"betas": (0.9, 1.0)}, "betas[1] must be in [0, 1), got 1.0"),
    (MFAC, {"damp": 0.0}, "damp must be in (0, inf), got 0.0"),
    (MFAC, {"ngrads": 0}, "ngrads must be an integer >= 1, got 0"),
    (DCTLowRank, {"rank": 0}, "rank must be an integer >= 1, got 0"),
    (DCTLowRank, {"scale": -1.0}, "scale must be in (0, inf), got -1.0"),
])
def test_bad_hyperparameters_raise_a_value_error_naming_argument_and_value(factory, kwargs, message):
    with pytest.raises(ValueError) as info:
        factory([nn.Parameter(torch.ones(3, 3))], **kwargs)
    assert str(info.value) == message


def test_mkor_checks_its_arguments():
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        MKOR([nn.Parameter(torch.ones(2))])
    with pytest.raises(ValueError, match=r"stat_decay must be in \(0, 1\), got 1.0"):
        MKOR(nn.Linear(2, 2), stat_decay=1.0)
    with pytest.raises(ValueError, match="backend must be one of"):
        MKOR(nn.Linear(2, 2), backend="lamb")
    with pytest.raises(NotImplementedError, match="sampled_loss"):
        OperatorSolver(FNO((4, 4), 1, 1, 8, n_layers=1), loss="h1").sampled_loss(
            (torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)), torch.Generator())


class _Mse(Solver):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))

    def loss(self, batch):
        x, y = batch
        return (self.net(x) - y).pow(2).mean()


def test_the_trainer_refuses_what_its_step_cannot_serve_before_any_work(monkeypatch):
    from sciml import distributed, train
    from sciml.optim import may_require

    data = torch.utils.data.TensorDataset(torch.randn(16, 3), torch.randn(16, 1))
    assert may_require(AdaHessian([torch.zeros(2, requires_grad=True)])) == {"create_graph"}
    with pytest.raises(ValueError, match="compile=True cannot serve AdaHessian"):
        Trainer(_Mse(), optimizer="adahessian", compile=True, epochs=1, device="cpu", progress=False).fit(data)
    # Under DDP (two ranks, faked: the refusal comes before the process group is needed).
    monkeypatch.setattr(train.distributed, "setup", lambda use_cuda: distributed.DistInfo(0, 2, 0))
    for name in ("sophia", "adahessian", "mkor"):
        trainer = Trainer(_Mse(), optimizer=name, epochs=1, device="cpu", progress=False)
        with pytest.raises(ValueError, match="cannot train under DistributedDataParallel"):
            trainer.fit(data)


def test_mkor_treats_a_frozen_bias_as_a_constant_and_skips_strided_convolutions():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    net[0].bias.requires_grad_(False)
    conv = nn.Conv2d(2, 2, 1, stride=2)
    opt = MKOR(nn.ModuleList([net, conv]), lr=1e-2)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    before = net[0].bias.clone()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (net(x) - y).pow(2).mean() + conv(torch.randn(1, 2, 4, 4)).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert torch.equal(net[0].bias, before) and losses[-1] < losses[0]
    assert all(layer.module is not conv for layer in opt.layers)


def test_curvature_estimates_that_are_missing_or_not_finite_never_drive_a_step():
    # AdaHessian: a parameter whose first gradient arrives on a non-refresh step waits for an estimate
    a, b = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    opt = AdaHessian([a, b], lr=0.1, update_every=2)
    (a ** 4).sum().backward(create_graph=True)          # step 0 refreshes: only a has a gradient
    opt.step()
    opt.zero_grad(set_to_none=True)
    (b ** 4).sum().backward()                           # step 1: b's first gradient, no estimate yet
    opt.step()
    assert torch.equal(b.detach(), torch.ones(3))       # D = 0 would have moved it by m/ε ≈ 1e4·lr
    # Sophia-G: a NaN sampled gradient leaves the Hessian EMA as it was
    w = torch.ones(2, requires_grad=True)
    sophia = Sophia([w], lr=0.1, estimator="gnb", update_every=1)
    (w ** 2).sum().backward()
    sophia.step(sampled_grad=lambda generator, params: [torch.full_like(w, float("nan"))])
    assert torch.isfinite(w).all() and torch.isfinite(sophia.state[w]["hessian"]).all()


def test_dct_lowrank_keeps_exact_column_indices_of_a_bf16_layer_through_a_state_dict():
    w = torch.zeros(4, 600, dtype=torch.bfloat16, requires_grad=True)
    opt = DCTLowRank([w], lr=1e-3, rank=4)
    w.grad = torch.randn(4, 600).to(torch.bfloat16)
    opt.step()
    opt.state[w]["indices"] = torch.tensor([257, 301, 433, 599])  # above bf16's exact integers
    again = DCTLowRank([w], lr=1e-3, rank=4)
    again.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert again.state[w]["indices"].tolist() == [257, 301, 433, 599]
    assert again.state[w]["indices"].dtype == torch.long
