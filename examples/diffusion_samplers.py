"""Every sampler at the same cost on an exact model: error at a fixed budget of network evaluations.

    python examples/diffusion_samplers.py [--nfe 24] [--t-start 0.4]

The model is the exact noise prediction of a 2-D Gaussian mixture, wrapped in a module without
parameters, so no training is needed and the error against the probability-flow ODE (dopri5 at
tight tolerance) is the sampler's own. ``nfe=`` picks for each sampler the most steps its budget
allows; ``t_start`` starts below T (as SDEdit or img2img do), where ``warmup="auto"`` gives the
multistep methods a full-order start.
"""
import argparse

import torch
from torch import nn

from sciml.solvers.diffusion import Denoiser, DiffusionSolver, GaussianMixture, LinearVP, get_sampler, time_grid

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--nfe", type=int, default=24)
parser.add_argument("--t-start", type=float, default=None)
args = parser.parse_args()

gmm = GaussianMixture(torch.tensor([[-1.0, 0.5], [1.0, 1.0], [0.5, -1.2]], dtype=torch.float64),
                      torch.tensor([0.4, 0.5, 0.3], dtype=torch.float64))
schedule = LinearVP()


class ExactNoise(nn.Module):
    def forward(self, x, t):
        return gmm.noise_predictor(schedule)(x, t)


solver = DiffusionSolver(ExactNoise(), schedule, data_shape=(2,))
x_T = torch.randn(500, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
ref = get_sampler("probability_flow")(Denoiser(ExactNoise(), schedule), x_T,
                                      time_grid(schedule, 1, t_start=args.t_start), rtol=1e-10, atol=1e-10)
runs = [("ddim", {}), ("dpm_solver", {"order": 3}), ("dpm_solver++", {"method": "2M"}),
        ("dpm_solver++", {"method": "3M"}), ("unipc", {"order": 2}), ("pndm", {}), ("ghvb", {"order": 3}),
        ("heun_edm", {})]
print(f"{'sampler':32s} {'grid':7s}  NFE  median error")
for grid in ("logSNR", "karras"):
    for name, options in runs:
        x = solver.sample(500, name, nfe=args.nfe, grid=grid, x_T=x_T, t_start=args.t_start, **options)
        err = float((x - ref).norm(dim=1).median())
        label = name + (str(options) if options else "")
        print(f"{label:32s} {grid:7s} {solver.last_nfe:4d} {err:12.2e}")
