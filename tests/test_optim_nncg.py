"""NNCG: the Nyström approximation against dense eigendecompositions, Nyström-preconditioned CG,
Newton convergence, the line search, state_dict round trips and training a PINN through the Trainer."""
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sciml import Trainer
from sciml.optim import NNCG, OPTIMIZERS, SECOND_ORDER, build_optimizer, may_require, step_requires
from sciml.operators import FNO
from sciml.optim.nncg import nystrom_approximation, nystrom_pcg
from sciml.solver import Solver
from sciml.solvers.operator import OperatorSolver
from sciml.solvers.pinn import PINNSolver
from sciml.solvers.pinn_problems import poisson

sys.path.insert(0, str(Path(__file__).parent))
from _toy import Regression, fno_data, regression_data, train_resume_and_compare  # noqa: E402

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")]

EPS = torch.finfo(torch.float64).eps


def _spd(eigenvalues, seed=0):
    """V diag(eigenvalues) Vᵀ with a random orthogonal V, float64."""
    n = eigenvalues.numel()
    V, _ = torch.linalg.qr(torch.randn(n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return V * eigenvalues @ V.T


def _step(opt, loss_fn):
    """What the Trainer does for NNCG: the gradient with its graph, then step(closure)."""
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.zero_grad()
    loss_fn().backward(create_graph=True)
    loss = opt.step(closure)
    opt.zero_grad()
    return float(loss.detach())


# ---------------------------------------------------------------- Nyström approximation
def test_nystrom_recovers_a_psd_matrix_of_rank_at_most_r_to_1e_8():
    g = torch.Generator().manual_seed(0)
    G = torch.randn(50, 8, generator=g, dtype=torch.float64) * torch.logspace(0, 3, 8, dtype=torch.float64)
    A = G @ G.T  # PSD, rank 8, condition of its range 1e6
    approx = nystrom_approximation(lambda X: A @ X, 50, 10, torch.Generator().manual_seed(1), eps=EPS)
    assert approx.U.shape == (50, 10) and approx.eigenvalues.shape == (10,)
    assert torch.allclose(approx.U.T @ approx.U, torch.eye(10, dtype=torch.float64), atol=1e-12)
    assert (approx.U * approx.eigenvalues @ approx.U.T - A).norm() / A.norm() < 1e-8
    exact = torch.linalg.eigvalsh(A).flip(0)[:10].clamp_min(0)
    assert torch.allclose(approx.eigenvalues, exact, rtol=1e-8, atol=1e-8 * float(exact[0]))


def test_nystrom_of_a_fast_decaying_spectrum_is_within_the_expected_error_bound():
    """λ_i = 2⁻ⁱ, p = 300, r = 20. A Nyström approximation lies below A (0 ≼ Â ≼ A), cannot beat the
    best rank-r error λ_{r+1} (Eckart–Young), and on average meets the bound for Gaussian sketches
    (Tropp, Yurtsever, Udell & Cevher 2017, as used by Frangella et al. 2023, §5):
    E‖A − Â‖ ≤ min_q (1 + 2(r − q)/(q − 1)) λ_{r−q+1} + 2e²r/(q² − 1) Σ_{j>r−q} λ_j."""
    p, r = 300, 20
    lam = 0.5 ** torch.arange(p, dtype=torch.float64)
    A = _spd(lam)
    errors = []
    for seed in range(4):
        approx = nystrom_approximation(lambda X: A @ X, p, r, torch.Generator().manual_seed(seed), eps=EPS)
        residual = A - approx.U * approx.eigenvalues @ approx.U.T
        assert float(torch.linalg.eigvalsh(residual)[0]) > -1e-13  # Â ≼ A
        errors.append(float(torch.linalg.matrix_norm(residual, ord=2)))
    bound = min((1 + 2 * (r - q) / (q - 1)) * lam[r - q] + 2 * math.e ** 2 * r / (q * q - 1) * lam[r - q:].sum()
                for q in range(2, r - 1))
    assert min(errors) >= float(lam[r]) * (1 - 1e-9)
    assert sum(errors) / len(errors) <= float(bound)


def test_nystrom_of_an_indefinite_matrix_raises_the_shift_and_stays_finite():
    A = _spd(torch.cat([torch.logspace(2, 0, 5, dtype=torch.float64), -torch.ones(3, dtype=torch.float64)]))
    approx = nystrom_approximation(lambda X: A @ X, 8, 6, torch.Generator().manual_seed(0), eps=EPS)
    assert torch.isfinite(approx.U).all() and (approx.eigenvalues >= 0).all()
    # the positive part of the spectrum is found: the largest eigenvalue to 1%
    assert abs(float(approx.eigenvalues[0]) - 100.0) < 1.0


# ---------------------------------------------------------------- preconditioned CG
def test_pcg_solves_the_damped_system_to_its_tolerance():
    A = _spd(torch.logspace(0, 3, 60, dtype=torch.float64))
    b = torch.randn(60, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mu = 1e-2
    dense = A + mu * torch.eye(60, dtype=torch.float64)
    for approx in (None, nystrom_approximation(lambda X: A @ X, 60, 10, torch.Generator().manual_seed(2), eps=EPS)):
        result = nystrom_pcg(lambda v: A @ v, b, mu, approx, rtol=1e-10, maxiter=1000)
        assert result.converged and result.residual <= 1e-10
        assert (b - dense @ result.x).norm() / b.norm() < 1e-9  # the true residual
        exact = torch.linalg.solve(dense, b)
        assert (result.x - exact).norm() / exact.norm() < 1e-9 * 1e3  # ≤ cond · tolerance


def test_nystrom_preconditioner_cuts_cg_iterations_4x_on_a_few_large_eigenvalues():
    """Ten eigenvalues from 1e6 down to 1e2 over a bulk in [1e-2, 1], p = 300, μ = 1e-2: rank-20 Nyström
    deflates the outliers, leaving the bulk's condition ≈ (1 + μ)/(1e-2 + μ) ≈ 50 (≈ 65 iterations
    to 1e-8); plain CG, disturbed by the outliers in floating point, needs about 400."""
    eigenvalues = torch.cat([torch.logspace(6, 2, 10, dtype=torch.float64), torch.linspace(1, 1e-2, 290,
                                                                                          dtype=torch.float64)])
    A = _spd(eigenvalues)
    b = torch.randn(300, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plain = nystrom_pcg(lambda v: A @ v, b, 1e-2, None, rtol=1e-8, maxiter=2000)
    approx = nystrom_approximation(lambda X: A @ X, 300, 20, torch.Generator().manual_seed(2), eps=EPS)
    pre = nystrom_pcg(lambda v: A @ v, b, 1e-2, approx, rtol=1e-8, maxiter=2000)
    assert plain.converged and pre.converged
    assert pre.iterations * 4 <= plain.iterations, (pre.iterations, plain.iterations)


def test_pcg_stops_at_negative_curvature_with_a_descent_direction():
    A = torch.diag(torch.tensor([4.0, 1.0, -2.0], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    result = nystrom_pcg(lambda v: A @ v, b, 1e-3, None, rtol=1e-12, maxiter=50)
    assert not result.converged
    assert float(b @ result.x) > 0


# ---------------------------------------------------------------- the optimizer
def test_on_an_ill_conditioned_quadratic_nncg_needs_500x_fewer_steps_than_sgd():
    """½ (x − x*)ᵀA(x − x*), A with eigenvalues log-spaced over [1, 1e4], p = 48. The damped step leaves
    μ/(λ + μ) ≤ 1e-2 of each error component (μ = 1e-2): 1e-6 in at most four steps. SGD at lr = 1/L
    is still above 0.1 after 2000 steps (measured 0.1996)."""
    A = _spd(torch.logspace(0, 4, 48, dtype=torch.float64))
    target = torch.randn(48, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(make, steps, tol):
        x = torch.zeros(48, dtype=torch.float64, requires_grad=True)
        opt = make([x])
        loss_fn = lambda: 0.5 * (x - target) @ A @ (x - target)  # noqa: E731
        for k in range(1, steps + 1):
            if isinstance(opt, NNCG):
                _step(opt, loss_fn)
            else:
                opt.zero_grad()
                loss_fn().backward()
                opt.step()
            err = float((x.detach() - target).norm() / target.norm())
            if err < tol:
                return k, err
        return None, err

    hit, err = run(lambda p: torch.optim.SGD(p, lr=1e-4), 2000, 1e-6)
    assert hit is None and err > 0.1
    hit, _ = run(lambda p: NNCG(p, rank=8), 10, 1e-6)  # a rank-8 sketch: CG does the rest of the work
    assert hit is not None and hit <= 4, hit


@pytest.mark.parametrize("rank", [3, 12])
def test_one_step_is_the_damped_newton_step_of_the_dense_hessian(rank):
    """Logistic regression, 12 weights (convex): w₁ = w₀ − η (H + μI)⁻¹ g with H from torch.func.hessian.
    With rank = p the preconditioned matrix is (λ̂_p + μ)I, so CG takes a single iteration."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(64, 12, generator=g, dtype=torch.float64) * torch.logspace(0, 1, 12, dtype=torch.float64)
    labels = torch.randint(0, 2, (64,), generator=g, dtype=torch.float64) * 2 - 1
    loss_of = lambda w: torch.nn.functional.softplus(-labels * (X @ w)).mean()  # noqa: E731
    w = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    w0, mu = w.detach().clone(), 1e-3
    grad = torch.func.grad(loss_of)(w0)
    newton = torch.linalg.solve(torch.func.hessian(loss_of)(w0) + mu * torch.eye(12, dtype=torch.float64), grad)
    opt = NNCG([w], rank=rank, mu=mu, cg_tol=1e-12)
    _step(opt, lambda: loss_of(w))
    eta = opt.state["nncg_step_size"]
    assert eta > 0
    assert (w.detach() - (w0 - eta * newton)).norm() / (eta * newton).norm() < 1e-9
    if rank == 12:
        assert opt.state["nncg_cg_iterations"] <= 2


def test_nncg_solves_rosenbrock_like_newtons_method():
    """From (−1.2, 1) (Nocedal & Wright, Numerical Optimization, Exercise 3.1): NNCG with a full-rank
    sketch and μ = 1e-10 is Newton's method with Armijo backtracking, which reaches (1, 1) to 1e-10
    within 30 steps (measured: about 20); gradient descent needs thousands."""
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = NNCG([x], rank=2, mu=1e-10, precond_update_freq=1)
    rosenbrock = lambda: (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2  # noqa: E731
    losses = [_step(opt, rosenbrock) for _ in range(30)]
    assert (x.detach() - 1).abs().max() < 1e-10
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert opt.state["nncg_rejected_steps"] == 0


def test_line_search_never_increases_the_loss_and_rejects_a_step_without_decrease():
    """f(x) = √(1 + x²) from x = 2: the Newton step lands at −x³ = −8, where f is higher."""
    x = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    f = lambda: torch.sqrt(1 + x ** 2).sum()  # noqa: E731
    opt = NNCG([x], rank=1, mu=1e-12, max_line_search=1)
    _step(opt, f)
    assert float(x.detach()) == 2.0 and opt.state["nncg_rejected_steps"] == 1 and opt.state["nncg_step_size"] == 0.0
    opt = NNCG([x], rank=1, mu=1e-12)
    losses = [_step(opt, f)]
    assert opt.state["nncg_step_size"] == 0.25  # backtracked twice: −8 and −3.5 are rejected, −0.5 taken
    losses += [_step(opt, f) for _ in range(7)] + [float(f().detach())]
    assert all(b <= a for a, b in zip(losses, losses[1:])) and losses[3] < losses[0]
    assert abs(float(x.detach())) < 1e-6 and opt.state["nncg_rejected_steps"] == 0


def test_armijo_asks_for_sufficient_decrease_not_just_decrease():
    """f = x² from x = 1 with lr = 2: the first trial lands near −1, where f is barely below f(1) but
    not by α·η·gᵀd; it must be rejected and η = 1 (the Newton step, to x ≈ 0) taken."""
    x = torch.tensor([1.0], dtype=torch.float64, requires_grad=True)
    opt = NNCG([x], lr=2.0, rank=1, mu=1e-8)
    _step(opt, lambda: (x ** 2).sum())
    assert opt.state["nncg_step_size"] == 1.0 and abs(float(x.detach())) < 1e-7


def test_a_non_finite_first_step_is_skipped_and_the_next_one_sketches():
    """A NaN gradient on the first step: no step, no sketch; the next, finite step builds one."""
    x = torch.tensor([-1.0, 2.0], dtype=torch.float64, requires_grad=True)
    opt = NNCG([x], rank=2)
    _step(opt, lambda: (x ** 2).sum() + x[0].sqrt())  # √−1: a NaN loss and gradient
    assert torch.equal(x.detach(), torch.tensor([-1.0, 2.0], dtype=torch.float64))
    assert opt.state["nncg_rejected_steps"] == 1 and "nncg_U" not in opt.state
    losses = [_step(opt, lambda: ((x - 3) ** 2).sum() + (x ** 4).sum() * 1e-2) for _ in range(3)]
    assert opt.state["nncg_U"].shape == (2, 2) and losses[-1] < losses[0]


def test_non_finite_hessian_vector_products_leave_the_step_finite():
    """f = |x|^1.5 + (y − 1)² at (0, 0): the gradient is finite, the curvature in x infinite. The
    sketch fails, the preconditioner falls back to the identity and y still moves toward 1."""
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = NNCG([w], rank=2)
    _step(opt, lambda: w[0].abs().pow(1.5) + (w[1] - 1) ** 2)
    assert torch.isfinite(w).all() and float(w.detach()[1]) > 0.5 and opt.state["nncg_rejected_steps"] == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_line_search_keeps_the_loss_of_an_mlp_non_increasing(dtype):
    """A 4-16-1 tanh MLP (97 parameters) on 128 samples: 15 steps cut the loss 100× (measured ≈ 450×)
    in either precision; the sketch and the CG algebra stay in float64."""
    torch.manual_seed(0)
    model = Regression(dim=4, width=16).to(dtype)
    x, y = (t.to(dtype) for t in regression_data(128, 4).tensors)
    opt = NNCG(model.parameters(), rank=10, mu=1e-3, precond_update_freq=5, cg_max_iters=50)
    losses = [_step(opt, lambda: model.loss((x, y))) for _ in range(15)] + [float(model.loss((x, y)).detach())]
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.01 * losses[0]
    assert opt.state["nncg_U"].dtype == torch.float64 and opt.state["nncg_U"].shape == (97, 10)


def test_state_dict_round_trip_continues_bit_identically():
    x, y = (t.double() for t in regression_data(64, 4).tensors)

    def make_model():
        torch.manual_seed(0)
        return Regression(dim=4, width=8).double()

    def train(model, opt, steps):
        for _ in steps:
            _step(opt, lambda: model.loss((x, y)))

    saved, final = train_resume_and_compare(
        make_model, lambda m: build_optimizer("nncg", m, lr=1.0, rank=5, precond_update_freq=2, seed=3), train,
        range(3), range(3, 7))  # the sketches of steps 4 and 6 come from the restored generator
    assert any(not torch.equal(a, b) for a, b in zip(saved.values(), final.values()))


def test_step_without_the_gradient_graph_or_closure_raises():
    x = torch.ones(3, requires_grad=True)
    opt = NNCG([x])
    (x ** 2).sum().backward()
    with pytest.raises(RuntimeError, match=r"backward\(create_graph=True\)"):
        opt.step(lambda: (x ** 2).sum())
    with pytest.raises(RuntimeError, match="needs step\\(closure\\)"):
        opt.step()


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": -1.0}, "lr must be in (0, inf), got -1.0"),
    ({"rank": 0}, "rank must be an integer >= 1, got 0"),
    ({"mu": -1e-3}, "mu must be in (0, inf), got -0.001"),
    ({"precond_update_freq": 0}, "precond_update_freq must be an integer >= 1, got 0"),
    ({"cg_tol": 1.0}, "cg_tol must be in [0, 1), got 1.0"),
    ({"cg_max_iters": 2.5}, "cg_max_iters must be an integer >= 1, got 2.5"),
    ({"armijo_alpha": 0.0}, "armijo_alpha must be in (0, 1), got 0.0"),
    ({"armijo_beta": 1.0}, "armijo_beta must be in (0, 1), got 1.0"),
    ({"max_line_search": 0}, "max_line_search must be an integer >= 1, got 0"),
])
def test_bad_hyperparameters_raise_a_value_error_naming_argument_and_value(kwargs, message):
    with pytest.raises(ValueError) as info:
        NNCG([nn.Parameter(torch.ones(3))], **kwargs)
    assert str(info.value) == message


def test_nncg_is_registered_and_refuses_what_it_cannot_take():
    assert OPTIMIZERS["nncg"] is NNCG and "nncg" in SECOND_ORDER
    opt = build_optimizer("nncg", nn.Linear(3, 2))  # weight and bias in one group
    assert len(opt.param_groups) == 1 and step_requires(opt) == {"closure", "create_graph", "loss"}
    with pytest.raises(ValueError, match="nncg takes no weight_decay, got 0.1"):
        build_optimizer("nncg", nn.Linear(3, 2), weight_decay=0.1)
    with pytest.raises(ValueError, match="one parameter group"):
        NNCG([{"params": [nn.Parameter(torch.ones(2))]}, {"params": [nn.Parameter(torch.ones(2))]}])


def test_a_complex_parameter_steps_as_the_pair_of_reals_of_its_real_view():
    """The same loss of z = x + iy, once with a complex parameter z and once with a real (n, 2)
    parameter [x, y]: the iterates agree to rounding (the HVPs of both views are the same)."""
    g = torch.Generator().manual_seed(0)
    A = torch.randn(6, 4, generator=g, dtype=torch.complex128)
    b = torch.randn(6, generator=g, dtype=torch.complex128)
    z0 = torch.randn(4, generator=g, dtype=torch.complex128)

    def loss_of(z):  # non-quadratic, so the Hessian changes between steps
        return (A @ z - b).abs().pow(2).sum() + 0.1 * z.abs().pow(4).sum()

    complex_param = nn.Parameter(z0.clone())
    real_param = nn.Parameter(torch.view_as_real(z0).clone())
    runs = []
    for param, as_complex in ((complex_param, lambda: complex_param), (real_param,
                                                                       lambda: torch.view_as_complex(real_param))):
        opt = NNCG([param], rank=4, precond_update_freq=2, mu=1e-3)
        runs.append([_step(opt, lambda: loss_of(as_complex())) for _ in range(4)])
    assert runs[0] == pytest.approx(runs[1], rel=1e-10)
    assert runs[0][-1] < 0.5 * runs[0][0]
    assert torch.allclose(torch.view_as_real(complex_param.detach()), real_param.detach(), atol=1e-10)


def test_nncg_trains_an_fno_through_the_trainer():
    """Complex spectral weights and FFTs in the Hessian-vector products: ten full-batch steps from
    initialisation cut the training loss of a small FNO at least twofold (measured 3.4x), never
    raising it. The damping is large (μ = 0.1) because the Hessian at initialisation is indefinite:
    with μ = 1e-3 CG meets negative curvature at once and the steps are preconditioned gradient steps."""
    torch.manual_seed(0)
    solver = OperatorSolver(FNO((4, 4), 1, 1, 8, n_layers=2))
    data = fno_data()
    history = Trainer(solver, optimizer="nncg", lr=1.0, optimizer_options={"rank": 10, "mu": 0.1, "cg_max_iters": 50},
                      epochs=10, batch_size=len(data), device="cpu", progress=False).fit(data)
    losses = history["train_loss"]
    assert history["skipped_steps"] == [0] * 10
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.5 * losses[0], losses


# ---------------------------------------------------------------- the Trainer
@pytest.mark.parametrize("seed", [0, 1])
def test_nncg_after_adam_cuts_a_pinns_relative_error_20x_through_the_trainer(seed):
    """1-D Poisson (−u'' = π² sin πx), 2 × 16 tanh MLP in float64, 200 points: after 100 Adam steps
    (relative L2 ≈ 3e-2 to 5e-2), 20 NNCG steps bring it below 1/20 of that (measured ≈ 1e-3 of it),
    with a training loss that never rises."""
    solver = PINNSolver(poisson(dim=1), hidden=(16, 16), dtype=torch.float64, seed=seed)
    data = solver.collocation(200, 20, 20)
    Trainer(solver, optimizer="adam", lr=1e-2, epochs=100, batch_size=1, device="cpu", progress=False).fit(data)
    before = solver.relative_error()
    trainer = Trainer(solver, optimizer="nncg", lr=1.0, optimizer_options={"rank": 20, "mu": 1e-4}, epochs=20,
                      batch_size=1, device="cpu", progress=False)
    history = trainer.fit(data)
    assert history["skipped_steps"] == [0] * 20
    losses = history["train_loss"]
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert solver.relative_error() < before / 20, (before, solver.relative_error())
    assert all(p.grad is None for p in solver.parameters())  # the graph was freed


class _NaNGradient(Solver):
    """A finite loss whose gradient is NaN."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def loss(self, batch):
        return (self.w ** 2).sqrt().sum()  # d/dw |w| at 0: 0/0

    def evaluate(self, batch):
        return {"loss": self.loss(batch)}

    def sample(self, x):
        return self.w


def test_the_trainer_skips_a_step_whose_gradient_is_not_finite():
    data = torch.utils.data.TensorDataset(torch.zeros(1, 1))
    history = Trainer(_NaNGradient(), optimizer="nncg", lr=1.0, epochs=1, batch_size=1, device="cpu",
                      progress=False).fit(data)
    assert history["skipped_steps"] == [1]


def test_the_trainer_refuses_grad_clip_compile_and_ddp_for_nncg(monkeypatch):
    from sciml import distributed, train

    solver = PINNSolver(poisson(dim=1), hidden=(4,), dtype=torch.float64)
    data = solver.collocation(16, 2, 2)
    assert may_require(NNCG(solver.parameters())) == {"closure", "create_graph", "loss"}
    with pytest.raises(ValueError, match="grad_clip=1.0 cannot apply to NNCG"):
        Trainer(solver, optimizer="nncg", grad_clip=1.0, epochs=1, device="cpu", progress=False).fit(data)
    with pytest.raises(ValueError, match="compile=True cannot serve NNCG"):
        Trainer(solver, optimizer="nncg", compile=True, epochs=1, device="cpu", progress=False).fit(data)
    monkeypatch.setattr(train.distributed, "setup", lambda use_cuda: distributed.DistInfo(0, 2, 0))
    with pytest.raises(ValueError, match="NNCG cannot train under DistributedDataParallel"):
        Trainer(solver, optimizer="nncg", epochs=1, device="cpu", progress=False).fit(data)


@pytest.mark.cuda
def test_nncg_steps_on_cuda_match_cpu():
    out = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = Regression(dim=4, width=8).double().to(device)
        x, y = (t.double().to(device) for t in regression_data(64, 4).tensors)
        opt = NNCG(model.parameters(), rank=5, precond_update_freq=2)
        for _ in range(3):
            _step(opt, lambda: model.loss((x, y)))
        out.append(torch.cat([p.detach().reshape(-1).cpu() for p in model.parameters()]))
    assert (out[0] - out[1]).norm() / out[0].norm() < 1e-8
