"""VE and EDM schedules, ε/x₀/v/F predictions, EDM's Heun sampler, UniPC and the SDE samplers,
each checked against a closed form, an identity or a measured order."""
import math

import pytest
import torch

from sciml.solvers.diffusion import (Denoiser, EDMSchedule, GaussianMixture, LinearVP, VESchedule, get_sampler,
                                     karras_sigmas, time_grid)
from sciml.solvers.diffusion.gaussian_mixture import observed_order
from sciml.solvers.diffusion.predictions import PREDICTIONS, network_input, target

pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest

GMM = GaussianMixture(torch.tensor([[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]], dtype=torch.float64),
                      torch.tensor([0.4, 0.5, 0.3], dtype=torch.float64))


@pytest.mark.parametrize("sch", [VESchedule(), EDMSchedule()])
def test_sigma_schedules_and_the_edm_grid(sch):
    t = torch.linspace(sch.t_min, sch.T, 50, dtype=torch.float64)
    assert torch.allclose(sch.t_of_lam(sch.lam(t)), t, rtol=1e-12)
    assert torch.equal(sch.alpha(t), torch.ones_like(t))
    ts = time_grid(sch, 18, "karras")
    expect = karras_sigmas(18, float(sch.sigma(ts[-1])), float(sch.sigma(ts[0])))
    assert torch.allclose(sch.sigma(ts), expect, rtol=1e-12)
    if isinstance(sch, EDMSchedule):  # EDM's own numbers: σ from 80 to 0.002, ρ = 7 (eq. 5)
        assert float(ts[0]) == 80.0 and abs(float(ts[-1]) - 0.002) < 1e-15
        ramp = torch.arange(19, dtype=torch.float64) / 18
        assert torch.allclose(ts, (80 ** (1 / 7) + ramp * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7)


@pytest.mark.parametrize("sch", [LinearVP(), EDMSchedule()])
def test_every_prediction_gives_back_the_exact_eps_and_x0(sch):
    """An exact network of each parameterisation, called as the Denoiser calls it, gives ε and x₀ back."""
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 2, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g, dtype=torch.float64)
    t = torch.full((6,), 0.3 if isinstance(sch, LinearVP) else 2.5, dtype=torch.float64)
    a, s = sch.alpha(t)[:, None], sch.sigma(t)[:, None]
    x = a * x0 + s * eps
    for pred in PREDICTIONS:
        want = target(x0, eps, x, a, s, pred)
        x_in, t_in = network_input(x, t, a, s, pred)

        def net(x_, t_, x_in=x_in, t_in=t_in, want=want):
            assert torch.allclose(x_, x_in) and torch.allclose(t_, t_in)
            return want
        d = Denoiser(net, sch, pred)
        assert torch.allclose(d.eps(x, t), eps, atol=1e-12) and torch.allclose(d.x0(x, t), x0, atol=1e-12), pred
    # EDM's F: c_skip x + c_out F with σ_d = 0.5 at σ = 2.5 (Table 1)
    sd, sg = 0.5, 2.5
    f = target(x0, eps, x, a, s, "F")
    assert torch.allclose(sd**2 / (sg**2 + sd**2) * x / a + sg * sd / math.sqrt(sg**2 + sd**2) * f, x0) \
        or isinstance(sch, LinearVP)


def test_heun_edm_is_second_order_and_its_churn_keeps_the_distribution():
    sch = EDMSchedule()
    x = 80.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = get_sampler("probability_flow")(Denoiser(GMM.noise_predictor(sch), sch), x, time_grid(sch, 1),
                                          rtol=1e-10, atol=1e-10)
    steps = (40, 80, 160)
    errs = [float((get_sampler("heun_edm")(Denoiser(GMM.noise_predictor(sch), sch), x, time_grid(sch, n, "karras"))
                   - ref).norm(dim=1).median()) for n in steps]
    assert abs(observed_order(steps, errs) - 2) <= 0.3, errs
    model = Denoiser(GMM.noise_predictor(sch), sch)
    get_sampler("heun_edm")(model, x, time_grid(sch, 10, "karras"), denoise_to_zero=True)
    assert model.nfe == 21
    # churn: fresh noise, then the ODE; for Gaussian data the output law converges to the exact one,
    # at second order with S_churn = 10 (γ = S_churn/N shrinks with the steps)
    errs = [_weak_error("heun_edm", sch, n, s_churn=10.0) for n in (32, 64, 128)]
    assert abs(observed_order((32, 64, 128), errs) - 2) <= 0.3 and errs[-1] < 1e-3, errs
    churned = [get_sampler("heun_edm")(Denoiser(GMM.noise_predictor(sch), sch), x, time_grid(sch, 10, "karras"),
                                       s_churn=10.0, generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    assert torch.equal(churned[0], churned[1]) and not torch.allclose(churned[0], ref, atol=1e-3)


@pytest.mark.parametrize("variant", ["bh1", "bh2"])
def test_unipc_raises_the_order_by_one(variant):
    sch = LinearVP()
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = get_sampler("probability_flow")(Denoiser(GMM.noise_predictor(sch), sch), x, time_grid(sch, 1),
                                          rtol=1e-10, atol=1e-10)
    steps = (40, 80, 160)
    for p in (1, 2):
        errs = [float((get_sampler("unipc")(Denoiser(GMM.noise_predictor(sch), sch), x, time_grid(sch, n), order=p,
                                            variant=variant) - ref).norm(dim=1).median()) for n in steps]
        assert abs(observed_order(steps, errs) - (p + 1)) <= 0.3, (p, errs)


MU, S = 0.7, 0.4


def _law(name, sch, steps, **options):
    """Mean and std of the output for Gaussian data N(μ, s²), from x_T drawn from the exact law at T,
    without Monte Carlo: ε is affine in x, so the output is a·x_T + b + Σ c_j z_j, and rows 0, 1
    and 2 + j of one batch give b, a and c_j. Also the exact mean and std at the last time."""
    mu, s = MU, S
    gauss = GaussianMixture(torch.tensor([[mu]], dtype=torch.float64), torch.tensor([s], dtype=torch.float64))
    ts = time_grid(sch, steps)
    x = torch.zeros(steps + 2, 1, dtype=torch.float64)
    x[1] = 1
    count = [0]

    def unit_noise(a, b):
        z = torch.zeros_like(x)
        z[count[0] + 2] = 1
        count[0] += 1
        return z
    out = get_sampler(name)(Denoiser(gauss.noise_predictor(sch), sch), x, ts, noise_sampler=unit_noise, **options)[:, 0]
    b, a, c = out[0], out[1] - out[0], out[2:] - out[0]
    (a0, ae), (s0, se) = sch.alpha(ts[[0, -1]]), sch.sigma(ts[[0, -1]])
    std = torch.sqrt(a**2 * (a0**2 * s**2 + s0**2) + (c**2).sum())
    return float(a * a0 * mu + b), float(std), float(ae * mu), float(torch.sqrt(ae**2 * s**2 + se**2))


def _weak_error(name, sch, steps, **options):
    """|mean error| + |std error| of the output law (see :func:`_law`)."""
    m, sd, m_exact, sd_exact = _law(name, sch, steps, **options)
    return abs(m - m_exact) + abs(sd - sd_exact)


@pytest.mark.parametrize("sch", [LinearVP(), EDMSchedule()])
@pytest.mark.parametrize("name, options, weak_order", [("euler_maruyama", {}, 1), ("dpm_solver++_sde", {}, 2),
                                                       ("dpm_solver++_sde", {"order": 1}, 1)])
def test_sde_samplers_weak_order(sch, name, options, weak_order):
    steps = (40, 80, 160)
    errs = [_weak_error(name, sch, n, **options) for n in steps]
    assert abs(observed_order(steps, errs) - weak_order) <= 0.3, errs


def test_sde_samplers_draw_the_right_law_and_eta_zero_is_the_ode():
    """With their default noise (a generator), the samples follow the law computed exactly by :func:`_law`."""
    sch, n = LinearVP(), 40_000
    gauss = GaussianMixture(torch.tensor([[MU]], dtype=torch.float64), torch.tensor([S], dtype=torch.float64))
    ts = time_grid(sch, 30)
    a0, s0 = float(sch.alpha(ts[0])), float(sch.sigma(ts[0]))
    x = a0 * MU + math.sqrt(a0**2 * S**2 + s0**2) * torch.randn(n, 1, generator=torch.Generator().manual_seed(1),
                                                                 dtype=torch.float64)
    for name in ("euler_maruyama", "dpm_solver++_sde"):
        mean, std, _, _ = _law(name, sch, 30)
        out = get_sampler(name)(Denoiser(gauss.noise_predictor(sch), sch), x, ts,
                                generator=torch.Generator().manual_seed(2))
        assert abs(float(out.mean()) - mean) < 4 * std / math.sqrt(n), name
        assert abs(float(out.std()) / std - 1) < 4 / math.sqrt(2 * n), name
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = time_grid(sch, 10)
    run = lambda name, **o: get_sampler(name)(Denoiser(GMM.noise_predictor(sch), sch), x, ts, **o)  # noqa: E731
    assert torch.allclose(run("dpm_solver++_sde", eta=0.0), run("dpm_solver++", method="2M"), atol=1e-12)


def test_f_prediction_loss_is_edms_weighted_denoising_loss():
    """MSE on the F target equals EDM's eq. 8: E λ(σ)‖D(x; σ) − x₀‖² with λ = (σ² + σ_d²)/(σ σ_d)²."""
    from sciml.solvers.diffusion import DiffusionSolver

    class Net(torch.nn.Module):
        def forward(self, x, c_noise):
            return torch.tanh(x + c_noise[:, None])

    sch, sd = EDMSchedule(), 0.5
    solver = DiffusionSolver(Net(), sch, "F", sigma_data=sd)
    x0 = torch.randn(512, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.manual_seed(5)
    loss = solver.loss(x0)
    torch.manual_seed(5)
    sigma = sch.train_times(512, x0)[:, None]  # ln σ ~ N(−1.2, 1.2²), the same draws as in loss
    x = x0 + sigma * torch.randn_like(x0)
    denoised = solver.denoiser().x0(x, sigma[:, 0])
    weight = (sigma**2 + sd**2) / (sigma * sd) ** 2
    assert torch.allclose(loss, (weight * (denoised - x0) ** 2).mean(), rtol=1e-10)


def test_heun_edm_matches_k_diffusion_sample_heun():
    """k-diffusion is a peer for this check only, never a dependency (skipped where it is not installed)."""
    K = pytest.importorskip("k_diffusion.sampling")
    sch = EDMSchedule()
    x = 80 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sigmas = K.get_sigmas_karras(18, 0.002, 80.0, 7.0).double()  # 18 levels, then σ = 0
    theirs = K.sample_heun(lambda x_, s_: Denoiser(GMM.noise_predictor(sch), sch).x0(x_, s_), x.clone(), sigmas,
                           disable=True)
    ours = get_sampler("heun_edm")(Denoiser(GMM.noise_predictor(sch), sch), x, sigmas[:-1], denoise_to_zero=True)
    assert (ours - theirs).abs().max() < 1e-6
    torch.manual_seed(7)  # with churn at every step both draw one normal per step from the global generator
    theirs = K.sample_heun(lambda x_, s_: Denoiser(GMM.noise_predictor(sch), sch).x0(x_, s_), x.clone(), sigmas[:-1],
                           disable=True, s_churn=20.0)
    torch.manual_seed(7)
    ours = get_sampler("heun_edm")(Denoiser(GMM.noise_predictor(sch), sch), x, sigmas[:-1], s_churn=20.0,
                                   noise_sampler=lambda s, t: torch.randn_like(x))
    assert (ours - theirs).abs().max() < 1e-6


def _algorithm2(denoise, x, t, s_churn, s_tmin, s_tmax, s_noise, normals):
    """Karras et al. 2022, Algorithm 2, line by line, on levels t_0 > … > t_{N−1} > t_N = 0."""
    n = len(t) - 1
    for i in range(n):
        z = next(normals)
        gamma = min(s_churn / n, math.sqrt(2) - 1) if s_tmin <= t[i] <= s_tmax else 0.0
        t_hat = t[i] + gamma * t[i]
        x_hat = x + math.sqrt(t_hat**2 - t[i] ** 2) * s_noise * z
        d = (x_hat - denoise(x_hat, t_hat)) / t_hat
        x_next = x_hat + (t[i + 1] - t_hat) * d
        if t[i + 1] != 0:
            d2 = (x_next - denoise(x_next, t[i + 1])) / t[i + 1]
            x_next = x_hat + (t[i + 1] - t_hat) * (0.5 * d + 0.5 * d2)
        x = x_next
    return x


@pytest.mark.parametrize("s_tmin, s_tmax", [(0.0, math.inf), (0.05, 50.0)])
def test_heun_edm_with_churn_and_the_step_to_zero_is_algorithm_2(s_tmin, s_tmax):
    """Churn at every level including the last, γ = min(S_churn/N, √2 − 1) with N counting the step to 0."""
    sch = EDMSchedule()
    x = 80 * torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    levels = time_grid(sch, 9, "karras")  # 10 levels, then σ = 0
    normals = torch.randn(10, 32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    model = Denoiser(GMM.noise_predictor(sch), sch)
    denoise = lambda x_, s_: model.x0(x_, torch.as_tensor(s_, dtype=torch.float64))  # noqa: E731
    ref = _algorithm2(denoise, x, [float(v) for v in levels] + [0.0], 2.0, s_tmin, s_tmax, 1.1, iter(normals))
    draws = iter(normals)
    ours = get_sampler("heun_edm")(model, x, levels, s_churn=2.0, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=1.1,
                                   denoise_to_zero=True, noise_sampler=lambda s, t: next(draws))
    assert float((ours - ref).abs().max()) < 1e-12 * float(ref.abs().max())
