"""diffusers interop: our samplers on a wrapped diffusers UNet2DModel match diffusers' own schedulers
step for step on the same timesteps (a small randomly initialised UNet built here: nothing is
downloaded). Skipped when diffusers is not installed (it is an optional extra)."""
import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from sciml.solvers.diffusion import SAMPLERS  # noqa: E402
from sciml.solvers.diffusion.diffusers_interop import from_diffusers  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # small models: see conftest

STEPS = 10


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(8, 16), norm_num_groups=4,
                                 down_block_types=("DownBlock2D", "DownBlock2D"),
                                 up_block_types=("UpBlock2D", "UpBlock2D")).double().eval()


def _scheduler(cls, **config):
    """A diffusers scheduler whose tables are float64 (they are float32 by default), set to STEPS."""
    sched = cls(num_train_timesteps=1000, beta_schedule="linear", **config)
    for name in ("alphas_cumprod", "final_alpha_cumprod"):
        if hasattr(sched, name):
            setattr(sched, name, torch.as_tensor(getattr(sched, name)).double())
    sched.set_timesteps(STEPS)
    if hasattr(sched, "sigmas"):  # set_timesteps casts σ to float32: recompute it in float64
        abar = sched.alphas_cumprod[sched.timesteps]
        sched.sigmas = torch.cat([((1 - abar) / abar).sqrt(), sched.sigmas[-1:].double()])
    return sched


def _compare(unet, sched, sampler, **options):
    """diffusers' prev_sample after every step, and ours on the same timesteps: t = (k + 1)/N, and the
    final step to ᾱ = 1 (σ = 0) as denoise_to_zero."""
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    theirs, z = [], x.clone()
    with torch.no_grad():
        for k in sched.timesteps:
            z = sched.step(unet(z, k).sample, k, z).prev_sample
            theirs.append(z)
    solver = from_diffusers(unet, sched)
    ours = []
    out = solver.sample(2, sampler, timesteps=(sched.timesteps.double() + 1) / 1000, x_T=x, denoise_to_zero=True,
                        callback=lambda info: ours.append(info["x"]), **options)
    assert solver.last_nfe == STEPS and len(ours) == STEPS - 1
    return [float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours + [out], theirs)]


def test_ddim_matches_ddim_scheduler(unet):
    sched = _scheduler(diffusers.DDIMScheduler, set_alpha_to_one=True, clip_sample=False, timestep_spacing="trailing")
    assert max(_compare(unet, sched, "ddim")) < 1e-12


def test_dpm_solver_pp_2m_matches_dpm_solver_multistep_scheduler(unet):
    """diffusers computes this update in float32 whatever the input dtype (``sample.to(torch.float32)`` in
    its ``step``): agreement is to float32 rounding, relative to the size of x (up to ~700 here: a random
    network is no denoiser, so x̂₀ = (x − σ ε̂)/α grows near T)."""
    sched = _scheduler(diffusers.DPMSolverMultistepScheduler, algorithm_type="dpmsolver++", solver_order=2)
    assert max(_compare(unet, sched, "dpm_solver++", method="2M")) < 1e-6


@pytest.mark.parametrize("order", [2, 3])
def test_unipc_matches_unipc_multistep_scheduler(unet, order):
    sched = _scheduler(diffusers.UniPCMultistepScheduler, solver_order=order)  # bh2, lower_order_final (< 15 steps)
    assert max(_compare(unet, sched, "unipc", order=order, lower_order_final=True)) < 1e-12


def test_every_sampler_runs_on_the_wrapped_unet(unet):
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction", clip_sample=False)
    solver = from_diffusers(unet, sched)
    assert solver.prediction == "v" and solver.data_shape == (1, 8, 8)
    for name in SAMPLERS:
        if name == "probability_flow":
            continue
        out = solver.sample(2, name, steps=3, generator=torch.Generator().manual_seed(0))
        assert out.shape == (2, 1, 8, 8) and bool(torch.isfinite(out).all()), name
    with pytest.raises(TypeError, match="alphas_cumprod"):
        from_diffusers(unet, object())


def test_what_from_diffusers_cannot_carry_over_is_said(unet):
    """A default DDIMScheduler clips x̂₀ (clip_sample=True), which the samplers here do not: a warning;
    a zero-terminal-SNR schedule has λ = −∞ at T: refused by name; integer timesteps: the hint t = (k + 1)/N."""
    with pytest.warns(UserWarning, match="clip_sample=True"):
        from_diffusers(unet, diffusers.DDIMScheduler())
    with pytest.warns(UserWarning, match="thresholding=True"):
        from_diffusers(unet, diffusers.DDIMScheduler(clip_sample=False, thresholding=True))
    with pytest.raises(ValueError, match="zero terminal SNR"):
        from_diffusers(unet, diffusers.DDIMScheduler(clip_sample=False, rescale_betas_zero_snr=True))
    solver = from_diffusers(unet, diffusers.DDIMScheduler(clip_sample=False))
    with pytest.raises(ValueError, match=r"t = \(k \+ 1\)/N"):
        solver.sample(2, "ddim", timesteps=torch.tensor([900.0, 800.0]))


def test_dpm_solver_pp_2m_matches_diffusers_on_a_leading_grid(unet):
    """diffusers' "leading" spacing starts from pure noise at t = 0.901, below T: the default warm-up
    of sample() is then lower order, as diffusers', one evaluation per step."""
    sched = _scheduler(diffusers.DPMSolverMultistepScheduler, algorithm_type="dpmsolver++", solver_order=2,
                       timestep_spacing="leading")
    assert int(sched.timesteps[0]) == 900
    assert max(_compare(unet, sched, "dpm_solver++", method="2M")) < 1e-6
