"""Heat equation on a disk with a Robin boundary condition and an initial condition.

    python examples/pinn_heat_disk_robin.py [--points 4096] [--adam 1000] [--lbfgs 3000]

u_t = Δu + u on the unit disk × [0, 1] with u = e^{−t} sin(x) cos(y): ∂u/∂n + u = g on the circle
(normals from the geometry), u(x, y, 0) = sin(x) cos(y). The geometry is crossed with the time
interval by ``Domain(Ball(...), time=...)``.
"""
import argparse

import torch

from sciml import Trainer
from sciml.solvers.pinn import Collocation, Domain, PDEProblem, PINNSolver
from sciml.solvers.pinn_conditions import Initial, Robin
from sciml.solvers.pinn_geometry import Ball

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--points", type=int, default=4096)
parser.add_argument("--adam", type=int, default=1000)
parser.add_argument("--lbfgs", type=int, default=3000)
args = parser.parse_args()


def exact(p):
    return torch.exp(-p[:, 2]) * torch.sin(p[:, 0]) * torch.cos(p[:, 1])


def robin_data(p):  # ∂u/∂n + u on |x| = 1, where n = x
    x, y, e = p[:, 0], p[:, 1], torch.exp(-p[:, 2])
    return e * (x * torch.cos(x) * torch.cos(y) - y * torch.sin(x) * torch.sin(y)) + exact(p)


problem = PDEProblem(name="heat_disk", domain=Domain(Ball([0, 0], 1.0), time=(0.0, 1.0)),
                     residual=lambda p, d: d["t"] - d.laplacian() - exact(p),
                     conditions=(Robin(alpha=1.0, beta=1.0, value=robin_data), Initial(exact)), solution=exact)
pinn = PINNSolver(problem, hidden=(32, 32, 32), dtype=torch.float64)
data = pinn.collocation(args.points, n_boundary=512, n_initial=512)
torch.set_num_threads(1)
Trainer(pinn, optimizer="adam", lr=1e-3, epochs=1, batch_size=1, progress=False).fit(Collocation(data.sets * args.adam))
Trainer(pinn, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, progress=False,
        optimizer_options={"max_iter": args.lbfgs, "max_eval": 10**9, "history_size": 100,
                           "tolerance_grad": 1e-12, "tolerance_change": 1e-15}).fit(data)
print(f"relative L2 in space-time: {pinn.relative_error():.2e}")
