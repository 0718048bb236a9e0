"""A PDE system: steady Navier–Stokes (Kovasznay flow, Re = 20) with outputs u, v, p.

    python examples/pinn_kovasznay.py [--points 2048] [--adam 1000] [--lbfgs 3000]

The residual returns one vector per equation; derivatives name their output, ``d["u", "xx"]``.
"""
import argparse
import math

import torch

from sciml import Trainer
from sciml.solvers.pinn import Collocation, Domain, PDEProblem, PINNSolver
from sciml.solvers.pinn_conditions import Dirichlet

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--points", type=int, default=2048)
parser.add_argument("--adam", type=int, default=1000)
parser.add_argument("--lbfgs", type=int, default=3000)
args = parser.parse_args()
re = 20.0
lam = re / 2 - math.sqrt(re**2 / 4 + 4 * math.pi**2)


def exact(p):
    e = torch.exp(lam * p[:, 0])
    y = 2 * math.pi * p[:, 1]
    return torch.stack([1 - e * torch.cos(y), lam / (2 * math.pi) * e * torch.sin(y), 0.5 * (1 - e**2)], 1)


def navier_stokes(p, d):
    u, v = d["u"], d["v"]
    return (u * d["u", "x"] + v * d["u", "y"] + d["p", "x"] - (d["u", "xx"] + d["u", "yy"]) / re,
            u * d["v", "x"] + v * d["v", "y"] + d["p", "y"] - (d["v", "xx"] + d["v", "yy"]) / re,
            d["u", "x"] + d["v", "y"])


problem = PDEProblem(name="kovasznay", domain=Domain([(-0.5, 1.0), (-0.5, 1.5)]), residual=navier_stokes,
                     outputs=("u", "v", "p"), conditions=(Dirichlet(exact),), solution=exact)
pinn = PINNSolver(problem, hidden=(50,) * 4, dtype=torch.float64)
data = pinn.collocation(args.points, n_boundary=512)
torch.set_num_threads(1)
Trainer(pinn, optimizer="adam", lr=1e-3, epochs=1, batch_size=1, progress=False).fit(Collocation(data.sets * args.adam))
Trainer(pinn, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, progress=False,
        optimizer_options={"max_iter": args.lbfgs, "max_eval": 10**9, "history_size": 100,
                           "tolerance_grad": 1e-12, "tolerance_change": 1e-15}).fit(data)
print(f"velocity relative L2: {pinn.relative_error(components=('u', 'v')):.2e}")
