"""Train a diffusion model on 2-D points and sample it with DPM-Solver++: the README's second example.

    python examples/diffusion_2d.py [--epochs 200]
"""
import argparse
import math

import torch

from sciml import Trainer
from sciml.solvers.diffusion import DiffusionSolver, TimeMLP

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=200)
args = parser.parse_args()

g = torch.Generator().manual_seed(0)
angle = 2 * math.pi * torch.rand(4096, generator=g)
points = torch.stack([angle.cos(), angle.sin()], 1) + 0.1 * torch.randn(4096, 2, generator=g)  # a noisy ring

diffusion = DiffusionSolver(TimeMLP(dim=2), schedule="cosine", prediction="eps")
Trainer(diffusion, lr=2e-3, epochs=args.epochs, batch_size=256).fit(torch.utils.data.TensorDataset(points))
x = diffusion.sample(1000, sampler="dpm_solver++", steps=20)
radius = x.norm(dim=1)
print(f"sample radius {radius.mean():.3f} ± {radius.std():.3f} (data: 1.00 ± 0.10)")
