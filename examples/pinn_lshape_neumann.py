"""Your own PINN problem on your own shape: Poisson on an L-shape with Neumann and Dirichlet boundary parts.

    python examples/pinn_lshape_neumann.py [--points 2048] [--adam 1000] [--lbfgs 3000] [--out pinn_lshape.png]

−Δu = 2π² sin(πx)cos(πy) on [−1, 1]² minus its upper-right quadrant, u = sin(πx)cos(πy). The two
re-entrant edges carry the flux ∂u/∂n (outward normals from the geometry, ∂u/∂n by autograd), the
six others the value. Everything is posed here, nothing comes built in. With the defaults (3×32
tanh, float64, one thread) the relative L2 error reaches about 1e-3 in some minutes.
"""
import argparse
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from sciml import Trainer  # noqa: E402
from sciml.solvers.pinn import Collocation, Domain, PDEProblem, PINNSolver  # noqa: E402
from sciml.solvers.pinn_conditions import Dirichlet, Neumann  # noqa: E402
from sciml.solvers.pinn_geometry import Box  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--points", type=int, default=2048, help="collocation points")
parser.add_argument("--adam", type=int, default=1000, help="Adam steps")
parser.add_argument("--lbfgs", type=int, default=3000, help="L-BFGS iterations after Adam")
parser.add_argument("--out", default="pinn_lshape.png")
args = parser.parse_args()
pi = math.pi

shape = Box([-1, -1], [1, 1]) - Box([0, 0], [1, 1])  # constructive geometry: | & - combine shapes


def exact(p):
    return torch.sin(pi * p[:, 0]) * torch.cos(pi * p[:, 1])


def on_reentrant(p):  # a boundary part is a predicate on points
    return ((p[:, 0].abs() < 1e-9) & (p[:, 1] >= 0)) | ((p[:, 1].abs() < 1e-9) & (p[:, 0] >= 0))


def flux(p):  # ∇u·n, with n = +e_x on x = 0 and +e_y on y = 0
    ux = pi * torch.cos(pi * p[:, 0]) * torch.cos(pi * p[:, 1])
    uy = -pi * torch.sin(pi * p[:, 0]) * torch.sin(pi * p[:, 1])
    return torch.where(p[:, 0].abs() < 1e-9, ux, uy)


problem = PDEProblem(
    name="my_poisson", domain=Domain(shape, parts={"reentrant": on_reentrant, "outer": lambda p: ~on_reentrant(p)}),
    residual=lambda p, d: -d["xx"] - d["yy"] - 2 * pi**2 * exact(p),
    conditions=(Dirichlet(exact, on="outer"), Neumann(flux, on="reentrant")),
    solution=exact)  # the solution feeds relative_error() and evaluate()'s rel_l2
pinn = PINNSolver(problem, hidden=(32, 32, 32), dtype=torch.float64)
data = pinn.collocation(n_interior=args.points, n_boundary=256)  # 256 points on each part
torch.set_num_threads(1)
Trainer(pinn, optimizer="adam", lr=1e-3, epochs=1, batch_size=1, progress=False).fit(Collocation(data.sets * args.adam))
print(f"after {args.adam} Adam steps: relative L2 {pinn.relative_error():.2e}")
Trainer(pinn, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, progress=False,
        optimizer_options={"max_iter": args.lbfgs, "max_eval": 10**9, "history_size": 100,
                           "tolerance_grad": 1e-12, "tolerance_change": 1e-15}).fit(data)
print(f"after {args.lbfgs} L-BFGS iterations: relative L2 {pinn.relative_error():.2e}")
print({k: f"{float(v):.2e}" for k, v in pinn.evaluate(data[0]).items()})  # one term per condition

grid = problem.domain.grid(201, 201)
inside = problem.domain.inside(grid)
err = torch.full((201 * 201,), float("nan"), dtype=torch.float64)
err[inside] = (pinn.sample(grid[inside]) - exact(grid[inside])).abs()
fig, ax = plt.subplots(figsize=(4.4, 3.6))
im = ax.imshow(err.reshape(201, 201).T, origin="lower", extent=(-1, 1, -1, 1), cmap="viridis")
ax.set(title="|PINN − exact| on the L-shape", xlabel="x", ylabel="y")
fig.colorbar(im, ax=ax)
fig.tight_layout()
fig.savefig(args.out, dpi=120)
