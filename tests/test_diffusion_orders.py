"""Every sampler at its order on any monotone grid and from a start below T; custom grids; the
option vocabulary (nfe, lower_order_final, denoise_to_zero, correcting callback); analytic models.

Orders are fitted over 80, 160 and 320 steps: on the logSNR grid the σ̄-space methods (PLMS,
GHVB) are still pre-asymptotic below about 80 steps (local orders 2.3, 3.0, 3.5, 3.8 for PLMS
from 10 to 160 steps), because σ̄ = e^{−λ} spans five decades. The full table, time-uniform grid
included, is ``python -m benchmarks.sampling``.
"""
import pytest
import torch
from torch import nn

from sciml.solvers.diffusion import (Denoiser, DiffusionSolver, GaussianMixture, LinearVP, get_sampler,
                                     karras_sigmas, steps_for_nfe, time_grid)
from sciml.solvers.diffusion.gaussian_mixture import observed_order

pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest

STEPS = (80, 160, 320)
GMM = GaussianMixture(torch.tensor([[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]], dtype=torch.float64),
                      torch.tensor([0.4, 0.5, 0.3], dtype=torch.float64))
SCH = LinearVP()


@pytest.fixture(scope="module")
def refs():
    """Starting points and dopri5 references from T and from t = 0.4 (float64)."""
    threads = torch.get_num_threads()  # a module fixture runs before the per-test one_thread
    torch.set_num_threads(1)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = Denoiser(GMM.noise_predictor(SCH), SCH)
    flow = get_sampler("probability_flow")
    refs = {t0: flow(model, x, time_grid(SCH, 1, t_start=t0), rtol=1e-10, atol=1e-10) for t0 in (None, 0.4)}
    torch.set_num_threads(threads)
    return x, refs


def _order(refs, name, grid, t_start, **options):
    x, ref = refs[0], refs[1][t_start]
    errs = []
    for steps in STEPS:
        out = get_sampler(name)(Denoiser(GMM.noise_predictor(SCH), SCH), x, time_grid(SCH, steps, grid, t_start),
                                **options)
        errs.append(float((out - ref).norm(dim=1).median()))  # median: robust to near-boundary paths
    return observed_order(STEPS, errs), errs


# (sampler, options, nominal order): those whose order depended on the grid or the start before
CASES = [
    ("pndm", {}, 4), ("plms", {}, 4), ("ghvb", {"order": 3, "beta": 0.8}, 3), ("ghvb", {"order": 4, "beta": 0.8}, 4),
    ("dpm_solver++", {"method": "3M"}, 3), ("dpm_solver++", {"method": "3S"}, 3),
    ("dpm_solver", {"order": 3, "method": "multistep"}, 3), ("unipc", {"order": 3}, 4),
]


@pytest.mark.parametrize("grid, t_start", [("logSNR", None), ("karras", None), ("logSNR", 0.4)])
@pytest.mark.parametrize("name, options, nominal", CASES)
def test_nominal_order_on_every_grid_and_start(refs, name, options, nominal, grid, t_start):
    order, errs = _order(refs, name, grid, t_start, **options)
    assert abs(order - nominal) <= 0.3, (order, errs)


def test_full_warmup_restores_the_order_below_T(refs):
    """From t = 0.4 a first-order start holds 3M to about second order; the full-order start keeps 3."""
    low, _ = _order(refs, "dpm_solver++", "logSNR", 0.4, method="3M", warmup="lower_order")
    full, _ = _order(refs, "dpm_solver++", "logSNR", 0.4, method="3M", warmup="full")
    assert low < 2.5 and abs(full - 3) <= 0.3, (low, full)


def test_variable_step_weights_are_the_papers_on_uniform_steps():
    from sciml.solvers.diffusion.momentum import ghvb_weights
    from sciml.solvers.diffusion.pndm import adams_bashforth_weights
    w = adams_bashforth_weights([3.0, 2.0, 1.0, 0.0], 0.0, -1.0)  # nodes oldest first, unit steps
    f64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    assert torch.allclose(f64(w), -f64([-9, 37, -59, 55]) / 24, atol=1e-13)
    b = 0.6  # after the moving average has forgotten its start: the authors' c₂(β), c₃(β)
    nodes = [float(-i) for i in range(200)]
    assert torch.allclose(f64(ghvb_weights(nodes, b, 2)), f64([(2 + b) / 2, -(2 - b) / 2]), atol=1e-12)
    assert torch.allclose(f64(ghvb_weights(nodes, b, 3)), f64([(18 + 5 * b) / 12, -(24 - 8 * b) / 12, (6 - b) / 12]),
                          atol=1e-12)


class Analytic(nn.Module):
    """The mixture's exact ε as a module without parameters."""

    def forward(self, x, t):
        return GMM.noise_predictor(SCH)(x, t)


def test_sample_with_an_analytic_model_custom_grids_and_nfe():
    solver = DiffusionSolver(Analytic(), SCH, data_shape=(2,))
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = time_grid(SCH, 12, "karras")
    out = solver.sample(16, "dpm_solver++", timesteps=ts, x_T=x_T)
    assert torch.equal(out, get_sampler("dpm_solver++")(Denoiser(Analytic(), SCH), x_T, ts)) and solver.last_nfe == 12
    sbar = SCH.sigma(ts) / SCH.alpha(ts)  # the Karras grid is eq. 5 in σ̄ = σ/α
    assert torch.allclose(sbar, karras_sigmas(12, float(sbar[-1]), float(sbar[0])), rtol=1e-9)
    for sampler, options, nfe, steps in [("dpm_solver", {"order": 3}, 30, 10), ("pndm", {}, 30, 21),
                                         ("dpm_solver++", {"method": "3M", "t_start": 0.5}, 30, 26)]:
        t0 = options.pop("t_start", None)
        assert steps_for_nfe(sampler, nfe, SCH, t_start=t0, **options) == steps
        solver.sample(4, sampler, nfe=nfe, t_start=t0, **options)
        assert solver.last_nfe == nfe
    with pytest.raises(ValueError, match="steps or nfe"):
        solver.sample(4, steps=10, nfe=10)
    with pytest.raises(ValueError, match="timesteps"):
        solver.sample(4, timesteps=torch.tensor([0.5, 0.7]))
    with pytest.raises(ValueError, match="nfe"):
        solver.sample(4, "dpm_solver", order=3, nfe=2)


def test_lower_order_final_denoise_to_zero_and_correcting_callback(refs):
    x = refs[0]
    ts = time_grid(SCH, 4)
    run = lambda name, **o: get_sampler(name)(Denoiser(GMM.noise_predictor(SCH), SCH), x, ts, **o)  # noqa: E731
    # the final step of 2M at order 1 is DDIM's step from the same state
    seen = {}
    run("dpm_solver++", method="2M", callback=lambda info: seen.setdefault(info["i"], info["x"]))
    last = get_sampler("ddim")(Denoiser(GMM.noise_predictor(SCH), SCH), seen[2], ts[3:])
    assert torch.allclose(run("dpm_solver++", method="2M", lower_order_final=True), last, atol=1e-12)
    # denoise_to_zero: one more evaluation, the data prediction at the last time
    model = Denoiser(GMM.noise_predictor(SCH), SCH)
    out = get_sampler("ddim")(model, x, ts, denoise_to_zero=True)
    assert model.nfe == 5 and torch.allclose(out, Denoiser(GMM.noise_predictor(SCH), SCH).x0(run("ddim"), ts[-1]))
    # a callback that returns x changes the path: clamping every state to a box keeps every sample in it
    for name in ("ddim", "dpm_solver", "dpm_solver++", "plms", "pndm", "ghvb", "heavy_ball"):
        out = run(name, callback=lambda info: info["x"].clamp(-0.3, 0.3))
        assert float(out.abs().max()) <= 0.3, name
        nfes = []
        run(name, callback=lambda info: nfes.append(info["nfe"]))
        assert nfes == sorted(nfes) and nfes[-1] >= 4, name


def test_nfe_budget_leaves_the_random_stream_alone():
    solver = DiffusionSolver(Analytic(), SCH, data_shape=(2,))
    torch.manual_seed(0)
    a = solver.sample(8, "heun_edm", nfe=20, s_churn=5.0)
    torch.manual_seed(0)
    b = solver.sample(8, "heun_edm", steps=10, s_churn=5.0)
    assert torch.equal(a, b) and solver.last_nfe == 20
