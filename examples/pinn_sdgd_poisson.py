"""SDGD on a problem you pose: −Δu = f on the unit ball in 100 dimensions, 10 dimensions per step.

    python examples/pinn_sdgd_poisson.py [--dim 100] [--dims 10] [--steps 300]

The residual writes its Laplacian as ``d.laplacian()`` (a ``d.dimension_sum``), so SDGDSolver can
sum it over a random subset of dimensions (Hu et al. 2024). u = (1 − ‖x‖²)·N through the hard
constraint, f from the two-body solution of the paper. ``seed`` fixes the network and the draws.
"""
import argparse

import torch

from sciml import Trainer
from sciml.solvers.pinn import Domain, PDEProblem
from sciml.solvers.pinn_geometry import Ball
from sciml.solvers.sdgd import SDGDSolver, TwoBodyPoisson

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--dim", type=int, default=100)
parser.add_argument("--dims", type=int, default=10)
parser.add_argument("--steps", type=int, default=300)
args = parser.parse_args()

two_body = TwoBodyPoisson(args.dim, seed=0)  # the exact solution and its forcing f = −Δu*
problem = PDEProblem(name="poisson_ball", domain=Domain(Ball([0.0] * args.dim, 1.0)),
                     residual=lambda p, d: -d.laplacian() - two_body.forcing(p),
                     boundary=lambda p: torch.zeros_like(p[:, 0]), lift=lambda p: torch.zeros_like(p[:, 0]),
                     distance=lambda p: 1 - p.pow(2).sum(1), hard_terms=("boundary",), solution=two_body.exact)
solver = SDGDSolver(problem, dims=args.dims, hidden=64, depth=4, seed=0)
test = two_body.sample(2000, torch.Generator().manual_seed(1))
print(f"before: relative L2 {float(solver.evaluate(test)['rel_l2']):.3f}")
train = two_body.sample(args.steps * 100, torch.Generator().manual_seed(2))  # fresh points every step
Trainer(solver, optimizer="adam", lr=3e-3, epochs=1, batch_size=100, progress=False).fit(
    torch.utils.data.TensorDataset(train))
print(f"after {args.steps} steps: relative L2 {float(solver.evaluate(test)['rel_l2']):.3f}")
