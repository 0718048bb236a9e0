"""Inverse problem: recover λ1, λ2 of Burgers' equation from 2000 scattered, optionally noisy values.

    python examples/pinn_burgers_inverse.py [--noise 0.01] [--adam 2000] [--lbfgs 5000]

u_t + λ1 u u_x − λ2 u_xx = 0 (Raissi et al. 2019, §4.1.1; truth λ1 = 1, λ2 = 0.01/π). The
coefficients are ``parameters`` of the problem: the solver holds them as torch parameters, so
Adam and L-BFGS train them with the network; the residual reads them from ``d.params``.
"""
import argparse
import math

import torch

from sciml import Trainer
from sciml.solvers.pinn import Collocation, Domain, PDEProblem, PINNSolver
from sciml.solvers.pinn_conditions import Observations
from sciml.solvers.pinn_problems import burgers_reference

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--noise", type=float, default=0.0, help="noise, relative to the data's standard deviation")
parser.add_argument("--adam", type=int, default=2000)
parser.add_argument("--lbfgs", type=int, default=5000)
args = parser.parse_args()

gen = torch.Generator().manual_seed(0)
points = torch.rand(2000, 2, generator=gen, dtype=torch.float64) * torch.tensor([2.0, 1.0]) - torch.tensor([1.0, 0.0])
values = torch.from_numpy(burgers_reference(points[:, 0].numpy(), points[:, 1].numpy()))
values = values + args.noise * values.std() * torch.randn(2000, generator=gen, dtype=torch.float64)


def residual(p, d):
    return d["t"] + d.params["lambda1"] * d.u * d["x"] - torch.exp(d.params["log_lambda2"]) * d["xx"]


problem = PDEProblem(name="burgers_inverse", domain=Domain([(-1.0, 1.0)], time=(0.0, 1.0)), residual=residual,
                     conditions=(Observations(points, values, name="data"),),
                     parameters={"lambda1": 0.0, "log_lambda2": -6.0})
pinn = PINNSolver(problem, hidden=(20,) * 6, dtype=torch.float64)
data = pinn.collocation(2048)
torch.set_num_threads(1)
Trainer(pinn, optimizer="adam", lr=1e-3, epochs=1, batch_size=1, progress=False).fit(Collocation(data.sets * args.adam))
Trainer(pinn, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, progress=False,
        optimizer_options={"max_iter": args.lbfgs, "max_eval": 10**9, "history_size": 100,
                           "tolerance_grad": 1e-12, "tolerance_change": 1e-15}).fit(data)
lam1, lam2 = pinn.coefficients["lambda1"].item(), math.exp(pinn.coefficients["log_lambda2"].item())
print(f"λ1 = {lam1:.5f} (error {abs(lam1 - 1):.2%}), λ2 = {lam2:.6f} (error {abs(lam2 * math.pi / 0.01 - 1):.2%})")
