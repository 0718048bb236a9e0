"""DiffusionSolver.sample and the shared sampler options: the random source, float32 grids, callbacks
that correct x, the warm-up rule, the method vocabulary and the checks at the door."""
import math

import pytest
import torch
from torch import nn

from sciml.solvers.diffusion import (CosineVP, Denoiser, DiffusionSolver, EDMSchedule, GaussianMixture, LinearVP,
                                     get_sampler, time_grid)

pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest

GMM = GaussianMixture(torch.tensor([[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]], dtype=torch.float64),
                      torch.tensor([0.4, 0.5, 0.3], dtype=torch.float64))


class Exact(nn.Module):
    """The mixture's exact ε as a network, in the dtype of its input."""

    def __init__(self, sch):
        super().__init__()
        self.sch = sch

    def forward(self, x, t):
        a, s = self.sch.alpha(t.double())[:, None], self.sch.sigma(t.double())[:, None]
        return GMM.eps(x.double(), a, s).to(x.dtype)


def _solver(sch=None):
    sch = sch or LinearVP()
    return DiffusionSolver(Exact(sch), sch, data_shape=(2,))


@pytest.mark.parametrize("name, options", [("euler_maruyama", {}), ("dpm_solver++_sde", {}), ("ddim", {"eta": 1.0}),
                                           ("heun_edm", {"s_churn": 10.0})])
def test_one_generator_seed_gives_one_sample_and_leaves_the_global_rng_alone(name, options):
    solver = _solver()
    run = lambda seed: solver.sample(4, name, steps=5, generator=torch.Generator().manual_seed(seed),  # noqa: E731
                                     **options)
    state = torch.get_rng_state()
    a, b = run(0), run(0)
    assert torch.equal(torch.get_rng_state(), state)  # all noise came from the generator
    assert torch.equal(a, b) and not torch.equal(a, run(1))


@pytest.mark.parametrize("sch", [EDMSchedule(sigma_max=80.3), CosineVP(T=0.99)])
def test_float32_grid_starting_at_a_T_that_rounds_up(sch):
    """float32(80.3) > 80.3 and float32(0.99) > 0.99: the grid starts at T as float32 can hold it."""
    solver = _solver(sch)
    assert float(torch.tensor(sch.T, dtype=torch.float32)) > sch.T
    x_T = float(sch.sigma(torch.tensor(sch.T, dtype=torch.float64))) * torch.randn(
        64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    single = solver.sample(64, "ddim", steps=5, x_T=x_T.float())
    double = solver.sample(64, "ddim", steps=5, x_T=x_T)
    assert single.dtype == torch.float32
    assert float((single.double() - double).abs().max() / double.abs().max()) < 1e-5


def test_unipc_honours_a_corrected_x_from_the_callback():
    """UniPC-1 over two steps, the callback replacing x after the first by 0: the second (uncorrected)
    predictor step from 0 is x = −α₂ (e^{−h} − 1) x̂₀(x̃₁, t₁) with h = λ₂ − λ₁."""
    sch = LinearVP()
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ts = time_grid(sch, 2)
    seen = {}

    def callback(info):
        seen[info["i"]] = info
        return torch.zeros_like(info["x"]) if info["i"] == 0 else None

    out = get_sampler("unipc")(Denoiser(GMM.noise_predictor(sch), sch), x, ts, order=1, callback=callback)
    h = sch.lam(ts[2]) - sch.lam(ts[1])
    assert torch.allclose(out, -sch.alpha(ts[2]) * torch.expm1(-h) * seen[1]["denoised"], rtol=1e-14, atol=0)
    with pytest.raises(ValueError, match="must return None"):
        get_sampler("probability_flow")(Denoiser(GMM.noise_predictor(sch), sch), x, ts,
                                        callback=lambda info: info["x"])


def test_auto_warmup_is_full_only_for_a_t_start():
    """A grid below T from pure noise (diffusers' "leading" spacing starts at t = 0.901) is warmed up
    with lower orders, one evaluation per step; an explicit t_start gets the full-order start."""
    solver = _solver()
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    leading = (torch.arange(900, -1, -90, dtype=torch.float64) + 1) / 1000
    auto = solver.sample(8, "dpm_solver++", method="3M", timesteps=leading, x_T=x_T)
    assert solver.last_nfe == len(leading) - 1
    assert torch.equal(auto, solver.sample(8, "dpm_solver++", method="3M", timesteps=leading, x_T=x_T,
                                           warmup="lower_order"))
    auto = solver.sample(8, "dpm_solver++", method="3M", steps=10, t_start=0.4, x_T=x_T)
    assert solver.last_nfe == 3 + 3 + 8  # singlestep order 3 for the first two steps, then 1 per step
    assert torch.equal(auto, solver.sample(8, "dpm_solver++", method="3M", steps=10, t_start=0.4, x_T=x_T,
                                           warmup="full"))


@pytest.mark.parametrize("name", ["dpm_solver", "dpm_solver++"])
def test_both_dpm_solvers_take_the_short_method_names(name):
    sch = LinearVP()
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda **o: get_sampler(name)(Denoiser(GMM.noise_predictor(sch), sch), x, time_grid(sch, 6), **o)  # noqa
    for short, order, method in (("2S", 2, "singlestep"), ("3S", 3, "singlestep"), ("2M", 2, "multistep"),
                                 ("3M", 3, "multistep")):
        assert torch.equal(run(method=short), run(order=order, method=method)), short
    with pytest.raises(ValueError, match="order"):
        run(order=True)


def test_checks_at_the_door():
    solver = _solver()
    with pytest.raises(TypeError, match="n must be"):
        solver.sample(True, "ddim")
    with pytest.raises(TypeError, match="steps must be an int"):
        time_grid(solver.schedule, True)
    with pytest.raises(ValueError, match="rho"):
        solver.sample(4, "ddim", steps=5, grid="time_uniform", rho=3.0)
    with pytest.raises(ValueError, match="rho"):
        solver.sample(4, "ddim", timesteps=time_grid(solver.schedule, 5), rho=3.0)
    with pytest.raises(ValueError, match="device"):
        get_sampler("ddim")(solver.denoiser(), torch.zeros(1, 2), time_grid(solver.schedule, 2).to("meta"))
    with pytest.raises(ValueError, match=r"t = \(k \+ 1\)/N"):
        from sciml.solvers.diffusion import DiscreteVP
        DiffusionSolver(Exact(LinearVP()), DiscreteVP.linear(), data_shape=(2,)).sample(
            2, "ddim", timesteps=torch.tensor([999.0, 499.0]))
    assert solver.training
    with pytest.raises(TypeError, match="etaa"):
        solver.sample(4, "ddim", steps=3, etaa=1.0)  # a typo reaches the sampler ...
    assert solver.training  # ... which raises, and the solver is back in training mode
    assert math.isfinite(float(solver.sample(4, "ddim", steps=3, grid="karras", rho=3.0).sum()))
