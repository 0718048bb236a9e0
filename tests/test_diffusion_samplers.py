"""Samplers on the analytic Gaussian mixture: convergence orders, identities, closed forms."""
import math

import pytest
import torch

from sciml.solvers.diffusion import (SAMPLERS, CosineVP, Denoiser, DiscreteVP, GaussianMixture, LinearVP,
                                     get_sampler, time_grid)
from sciml.solvers.diffusion.gaussian_mixture import observed_order

STEPS = (20, 40, 80)


pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest


@pytest.fixture(scope="module")
def problem():
    """A 3-component 2-D mixture, 200 starting points and the dopri5 reference (float64)."""
    gmm = GaussianMixture(torch.tensor([[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]], dtype=torch.float64),
                          torch.tensor([0.4, 0.5, 0.3], dtype=torch.float64))
    sch = LinearVP()
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = Denoiser(gmm.noise_predictor(sch), sch)
    threads = torch.get_num_threads()  # a module fixture runs before the per-test one_thread
    torch.set_num_threads(1)
    ref = get_sampler("probability_flow")(model, x, time_grid(sch, 1), rtol=1e-12, atol=1e-12)
    torch.set_num_threads(threads)
    return gmm, sch, x, ref


def _order(problem, name, **options):
    gmm, sch, x, ref = problem
    errs = []
    for steps in STEPS:
        out = get_sampler(name)(Denoiser(gmm.noise_predictor(sch), sch), x, time_grid(sch, steps, "logSNR"), **options)
        errs.append(float((out - ref).norm(dim=1).median()))  # median: robust to near-boundary paths
    return observed_order(STEPS, errs), errs


@pytest.mark.parametrize("name, options, expected", [
    ("ddim", {}, 1.0),
    ("dpm_solver", {"order": 2}, 2.0),
    ("dpm_solver", {"order": 3}, 3.0),
    ("dpm_solver++", {"method": "2M"}, 2.0),
    ("dpm_solver++", {"method": "2S"}, 2.0),
    ("dpm_solver", {"order": 2, "method": "multistep"}, 2.0),
])
def test_convergence_order(problem, name, options, expected):
    order, errs = _order(problem, name, **options)
    assert abs(order - expected) <= 0.25, (order, errs)
    assert errs[-1] < 0.05


def test_third_order_multistep_beats_second(problem):
    o3, e3 = _order(problem, "dpm_solver++", method="3M")
    o2, e2 = _order(problem, "dpm_solver++", method="2M")
    assert o3 > 2.5 and e3[-1] < 0.2 * e2[-1]


def test_probability_flow_matches_closed_form_for_a_gaussian():
    mu, s = torch.tensor([[0.7, -0.3]], dtype=torch.float64), 0.6
    gauss = GaussianMixture(mu, torch.tensor([s], dtype=torch.float64))
    for sch in (LinearVP(), CosineVP()):  # smooth schedules: dopri5 needs a smooth right-hand side
        x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        ts = time_grid(sch, 4)
        out = get_sampler("probability_flow")(Denoiser(gauss.noise_predictor(sch), sch), x, ts,
                                              rtol=1e-11, atol=1e-11)
        a, sg = sch.alpha(ts[[0, -1]]), sch.sigma(ts[[0, -1]])
        std = torch.sqrt(a**2 * s**2 + sg**2)
        exact = a[1] * mu + std[1] * (x - a[0] * mu) / std[0]  # (x − αμ)/std is invariant along the flow
        assert (out - exact).abs().max() < 1e-8


def test_identities_between_samplers(problem):
    gmm, sch, x, _ = problem
    ts = time_grid(sch, 12, "time_quadratic")
    run = lambda name, **o: get_sampler(name)(Denoiser(gmm.noise_predictor(sch), sch), x, ts, **o)  # noqa: E731
    ddim = run("ddim")
    assert torch.allclose(run("dpm_solver", order=1), ddim, atol=1e-12)
    assert torch.allclose(run("heavy_ball", order=1, beta=1.0), ddim, atol=1e-12)
    assert torch.allclose(run("ghvb", order=1, beta=1.0), ddim, atol=1e-12)
    plms = run("plms")
    assert torch.allclose(run("heavy_ball", order=4, beta=1.0), plms, atol=1e-12)
    assert torch.allclose(run("ghvb", order=4, beta=1.0), plms, atol=1e-12)
    # damping lowers heavy ball to first order but keeps it convergent: 4× the steps, < half the error
    ref = run("probability_flow")
    coarse = (run("heavy_ball", order=2, beta=0.5) - ref).norm(dim=1).median()
    ts = time_grid(sch, 48, "time_quadratic")
    fine = (run("heavy_ball", order=2, beta=0.5) - ref).norm(dim=1).median()
    assert fine < 0.5 * coarse


def test_pndm_counts_four_evaluations_per_warmup_step(problem):
    gmm, sch, x, _ = problem
    model = Denoiser(gmm.noise_predictor(sch), sch)
    get_sampler("pndm")(model, x, time_grid(sch, 10))
    assert model.nfe == 3 * 4 + 7
    model = Denoiser(gmm.noise_predictor(sch), sch)
    get_sampler("dpm_solver")(model, x, time_grid(sch, 10), order=3)
    assert model.nfe == 30


@pytest.mark.parametrize("sch", [LinearVP(), CosineVP(), DiscreteVP.linear(), DiscreteVP.cosine()])
def test_schedule_inverse_and_identities(sch):
    t = torch.linspace(sch.t_min, sch.T, 50, dtype=torch.float64)
    assert torch.allclose(sch.alpha(t) ** 2 + sch.sigma(t) ** 2, torch.ones_like(t), atol=1e-12)
    assert torch.allclose(sch.t_of_lam(sch.lam(t)), t, atol=1e-9, rtol=1e-7)
    assert bool((sch.lam(t)[1:] < sch.lam(t)[:-1]).all())


def test_time_grids():
    sch = LinearVP()
    lam = sch.lam(time_grid(sch, 10, "logSNR"))
    assert torch.allclose(lam.diff(), lam.diff()[0].expand(10), atol=1e-10)
    ts = time_grid(sch, 10, "time_quadratic")
    assert torch.allclose(ts.sqrt().diff(), ts.sqrt().diff()[0].expand(10), atol=1e-12)
    with pytest.raises(ValueError, match="kind"):
        time_grid(sch, 10, "bogus")
    with pytest.raises(ValueError, match="steps"):
        time_grid(sch, 0)


def test_predictions_agree_and_guidance_and_thresholding():
    sch = CosineVP()
    gmm = GaussianMixture(torch.tensor([[2.0, 0.0], [-2.0, 0.0]], dtype=torch.float64),
                          torch.tensor([0.5, 0.5], dtype=torch.float64))
    eps_fn = gmm.noise_predictor(sch)
    x = torch.randn(8, 2, dtype=torch.float64)
    t = torch.full((8,), 0.4, dtype=torch.float64)
    a, s = sch.alpha(t)[:, None], sch.sigma(t)[:, None]
    eps = eps_fn(x, t)
    x0 = (x - s * eps) / a
    for pred, out in (("eps", eps), ("x0", x0), ("v", a * eps - s * x0)):
        d = Denoiser(lambda x_, t_, out=out: out, sch, pred)
        assert torch.allclose(d.eps(x, t), eps, atol=1e-12) and torch.allclose(d.x0(x, t), x0, atol=1e-12)
    # guidance: w·out(c) + (1 − w)·out(∅), one NFE for the pair
    net = lambda x_, t_, c: c.expand_as(x_)  # noqa: E731
    d = Denoiser(net, sch, cond=torch.ones(8, 2, dtype=torch.float64), uncond=torch.zeros(8, 2, dtype=torch.float64),
                 guidance_scale=3.0)
    assert torch.allclose(d.eps(x, t), torch.full_like(x, 3.0)) and d.nfe == 1
    d = Denoiser(lambda x_, t_: 5 * x_, sch, "x0", dynamic_threshold=0.9)
    assert float(d.x0(x, t).abs().max()) <= 1.0 + 1e-12


def test_validation_names_the_argument():
    sch = LinearVP()
    model = Denoiser(lambda x, t: x, sch)
    with pytest.raises(ValueError, match="unknown sampler"):
        get_sampler("euler_a")
    with pytest.raises(ValueError, match="decreasing"):
        SAMPLERS["ddim"](model, torch.zeros(2, 2), torch.tensor([0.1, 0.5]))
    with pytest.raises(TypeError, match="Denoiser"):
        SAMPLERS["ddim"](lambda x, t: x, torch.zeros(2, 2), time_grid(sch, 2))
    with pytest.raises(ValueError, match="order"):
        SAMPLERS["dpm_solver"](model, torch.zeros(2, 2), time_grid(sch, 2), order=4)
    with pytest.raises(ValueError, match="method"):
        SAMPLERS["dpm_solver++"](model, torch.zeros(2, 2), time_grid(sch, 2), method="4S")
    with pytest.raises(ValueError, match="prediction"):
        Denoiser(lambda x, t: x, sch, "score")
    with pytest.raises(ValueError, match="guidance_scale"):
        Denoiser(lambda x, t: x, sch, guidance_scale=2.0)
    assert math.isfinite(float(sch.lam(torch.tensor(sch.t_min, dtype=torch.float64))))
