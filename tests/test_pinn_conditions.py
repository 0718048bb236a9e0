"""Conditions per boundary part, systems, derivatives of any order, trainable coefficients, solution-based errors.

The exact-network tests hand the solver a network that returns a known closed-form solution: every
residual (PDE and each condition) must then vanish to rounding, and a perturbed one must not, so the
signs of normals, Robin and initial-rate terms and the systems' equations are checked, not only run.
"""
import math

import pytest
import torch
from torch import nn

from sciml import Trainer
from sciml.solvers.pinn import Collocation, Derivatives, Domain, PDEProblem, PINNSolver
from sciml.solvers.pinn_conditions import Dirichlet, Initial, InitialRate, Neumann, Observations, Periodic, Robin
from sciml.solvers.pinn_geometry import Ball
from sciml.solvers.pinn_problems import burgers_identification, cavity, heat_disk, kovasznay, poisson_lshape

pytestmark = pytest.mark.usefixtures("one_thread")
PI = math.pi


class Exact(nn.Module):
    """A 'network' that returns ``fn`` of the unscaled points (plus ``shift``): the solver's scaling undone."""

    def __init__(self, fn, lower, upper, shift=0.0):
        super().__init__()
        self.fn, self.lower, self.upper, self.shift = fn, lower, upper, shift
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, z):
        x = self.lower + (z + 1) / 2 * (self.upper - self.lower)
        out = self.fn(x) + self.shift + 0 * self.dummy
        return out.reshape(z.shape[0], -1)


def _exact_solver(problem, fn=None, shift=0.0):
    dom = problem.domain
    net = Exact(fn or problem.solution, dom.lower, dom.upper, shift)
    return PINNSolver(problem, network=net, dtype=torch.float64)


@pytest.mark.parametrize("factory", [poisson_lshape, heat_disk, kovasznay], ids=lambda f: f.__name__)
def test_every_term_vanishes_at_the_exact_solution_and_not_off_it(factory):
    problem = factory()
    solver = _exact_solver(problem)
    batch = solver.collocation(256, 64, 64, seed=1)[0]
    terms = solver.evaluate(batch)
    names = set(problem.terms)
    assert names <= set(terms) and len(names) >= 2
    for name in names:
        assert float(terms[name]) < 1e-20, name
    assert solver.relative_error() < 1e-14  # PDEProblem.solution feeds relative_error directly
    def bumped(p):  # a smooth change in values and in every derivative
        u, bump = problem.solution(p), 1e-3 * torch.sin(p[:, 0] + 2 * p[:, 1])
        return u + (bump if u.dim() == 1 else bump[:, None])

    off = _exact_solver(problem, bumped).evaluate(batch)
    assert all(float(off[name]) > 1e-9 for name in names)


def test_neumann_and_robin_use_the_outward_normal():
    """u = x² + y² on the unit disk: ∂u/∂n = 2 on the circle, so Neumann(2) and Robin(1, 1, 3) hold and
    Neumann(−2) (the inward normal's value) does not."""
    dom = Domain(Ball([0.0, 0.0], 1.0))

    def problem(*conditions):
        return PDEProblem(name="disk", domain=dom, residual=lambda p, d: d.laplacian() - 4, conditions=conditions)

    fn = lambda x: (x ** 2).sum(1)  # noqa: E731
    good = _exact_solver(problem(Neumann(2.0), Robin(1.0, 1.0, 3.0)), fn)
    terms = good.evaluate(good.collocation(64, 128)[0])
    assert float(terms["neumann"]) < 1e-24 and float(terms["robin"]) < 1e-24 and float(terms["residual"]) < 1e-24
    bad = _exact_solver(problem(Neumann(-2.0)), fn)
    assert float(bad.evaluate(bad.collocation(64, 128)[0])["neumann"]) == pytest.approx(16.0)


def test_periodic_initial_and_rate_conditions():
    """u = sin(x − t) + t² on [0, 2π] × [0, 1]: periodic in x with u_x, u(x, 0) = sin x, u_t(x, 0) = −cos x."""
    dom = Domain([(0.0, 2 * PI)], time=(0.0, 1.0))
    fn = lambda p: torch.sin(p[:, 0] - p[:, 1]) + p[:, 1] ** 2  # noqa: E731
    conditions = (Periodic("x", derivatives=True), Initial(lambda p: torch.sin(p[:, 0])),
                  InitialRate(lambda p: -torch.cos(p[:, 0])))
    problem = PDEProblem(name="p", domain=dom, residual=lambda p, d: d["tt"] - d["xx"] - 2, conditions=conditions)
    solver = _exact_solver(problem, fn)
    terms = solver.evaluate(solver.collocation(128, 64, 64)[0])
    for name in ("residual", "periodic", "initial", "initialrate"):
        assert float(terms[name]) < 1e-24, name
    aperiodic = _exact_solver(problem, lambda p: fn(p) + 0.1 * p[:, 0])
    assert float(aperiodic.evaluate(aperiodic.collocation(128, 64, 64)[0])["periodic"]) == pytest.approx(
        (0.2 * PI) ** 2, rel=1e-9)  # the value gap 0.2π everywhere, the u_x gap 0


def test_derivatives_of_several_outputs_any_order_cached():
    x = torch.rand(20, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    u = torch.sin(x[:, 0]) * x[:, 1] ** 2 * torch.exp(x[:, 2])
    v = x[:, 0] ** 3 * x[:, 1]
    d = Derivatives(torch.stack([u, v], 1), x, ("x", "y", "t"), outputs=("u", "velocity"))
    s, c, e = torch.sin(x[:, 0]), torch.cos(x[:, 0]), torch.exp(x[:, 2])
    assert torch.allclose(d["u", "xxy"], -s * 2 * x[:, 1] * e)
    assert torch.allclose(d["u", "yx"], c * 2 * x[:, 1] * e)
    assert torch.allclose(d["velocity", "xxx"], torch.full_like(v, 6.0) * x[:, 1])
    assert torch.allclose(d["velocity", "xxxx"], torch.zeros_like(v))  # beyond the degree: zeros
    assert torch.allclose(d.laplacian("u"), (-s * x[:, 1] ** 2 + 2 * s) * e)  # t is not a space coordinate
    cached = len(d._grads)
    assert torch.equal(d["u", "yx"], d["u", "xy"]) and len(d._grads) == cached  # one computation for both orders
    assert d["velocity"] is not None and torch.equal(d.u, u)
    with pytest.raises(KeyError, match=r"d\['u', 'xx'\]"):
        d["xx"]
    with pytest.raises(KeyError, match="unknown output 'w'"):
        d["w", "x"]


def test_trainable_coefficient_is_identified_by_adam_and_lbfgs():
    """−k u_xx = 2π² sin(πx) on [0, 1] (k = 2), u = sin(πx) observed at 32 noisy points: k within 1%."""
    dom = Domain([(0.0, 1.0)])
    gen = torch.Generator().manual_seed(0)
    xs = torch.rand(32, 1, dtype=torch.float64, generator=gen)
    values = torch.sin(PI * xs[:, 0]) + 1e-3 * torch.randn(32, generator=gen, dtype=torch.float64)
    problem = PDEProblem(name="k", domain=dom, parameters={"k": 1.0},
                         residual=lambda p, d: -d.params["k"] * d["xx"] - 2 * PI ** 2 * torch.sin(PI * p[:, 0]),
                         conditions=(Observations(xs, values, weight=10.0),),
                         solution=lambda p: torch.sin(PI * p[:, 0]))
    solver = PINNSolver(problem, hidden=(16, 16), dtype=torch.float64, seed=0)
    assert [n for n, _ in solver.named_parameters()][0] == "coefficients.k"  # the optimizers see it
    data = solver.collocation(64)
    Trainer(solver, optimizer="adam", lr=1e-2, epochs=1, batch_size=1, progress=False, device="cpu").fit(
        Collocation(data.sets * 300))
    Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=1, batch_size=1, progress=False, device="cpu",
            optimizer_options={"max_iter": 300, "tolerance_grad": 1e-12, "tolerance_change": 1e-15}).fit(data)
    assert float(solver.coefficients["k"].detach()) == pytest.approx(2.0, rel=0.01)
    assert solver.relative_error() < 5e-3
    assert float(solver.evaluate(data[0])["param.k"]) == float(solver.coefficients["k"].detach())


def test_condition_weights_and_own_terms():
    problem = poisson_lshape()
    solver = PINNSolver(problem, dtype=torch.float64, weights={"neumann": 5.0})
    assert solver.weights == {"residual": 1.0, "dirichlet": 1.0, "neumann": 5.0}
    batch = solver.collocation(64, 32)[0]
    terms = solver.evaluate(batch)
    assert float(terms["loss"]) == pytest.approx(float(terms["residual"] + terms["dirichlet"] + 5 * terms["neumann"]))
    assert batch["neumann"].shape == (32, 2) and batch["neumann.normal"].shape == (32, 2)
    reentrant = problem.domain.parts["reentrant"]
    assert bool(reentrant(batch["neumann"]).all()) and not bool(reentrant(batch["dirichlet"]).any())
    with pytest.raises(ValueError, match="weights has unknown terms"):
        PINNSolver(problem, weights={"robin": 1.0})


def test_system_outputs_sample_shape_and_error_by_component():
    solver = _exact_solver(kovasznay())
    pts = solver.problem.domain.interior(10, seed=0)
    assert solver.sample(pts).shape == (10, 3) and solver.residual(pts).shape == (10, 3)
    assert solver.relative_error(components=("u", "v")) < 1e-14
    shifted = _exact_solver(kovasznay(), shift=torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
    assert shifted.relative_error(components=("u", "v")) < 1e-14 and shifted.relative_error(components=("p",)) > 0.1
    assert cavity().outputs == ("u", "v", "p")


def test_inverse_problem_data_is_the_cole_hopf_solution():
    problem = burgers_identification(500, noise=0.0, seed=3)
    obs = problem.conditions[0]
    pts, vals = problem.reference
    ref = dict(zip(map(tuple, pts.tolist()), vals.tolist()))
    assert all(abs(ref[tuple(p)] - v) < 1e-15 for p, v in zip(obs.data_points.tolist(), obs.values[:, 0].tolist()))
    noisy = burgers_identification(500, noise=0.01, seed=3).conditions[0].values[:, 0]
    assert float((noisy - obs.values[:, 0]).std()) == pytest.approx(0.01 * float(vals.std()), rel=0.15)


def test_bad_problem_input_raises_naming_the_argument():
    dom = Domain([(0.0, 1.0)])
    with pytest.raises(ValueError, match="unknown boundary part 'inlet'"):
        PDEProblem(name="p", domain=dom, residual=lambda p, d: d["xx"], conditions=(Dirichlet(0.0, on="inlet"),))
    with pytest.raises(ValueError, match="condition names must be distinct"):
        PDEProblem(name="p", domain=dom, residual=lambda p, d: d["xx"], conditions=(Dirichlet(0.0), Dirichlet(1.0)))
    with pytest.raises(ValueError, match="acts on"):
        PDEProblem(name="p", domain=dom, residual=lambda p, d: d["xx"], conditions=(Dirichlet(0.0, component="v"),))
    with pytest.raises(ValueError, match="outputs must be distinct names"):
        PDEProblem(name="p", domain=dom, residual=lambda p, d: d["xx"], outputs=("u", "x"))
    with pytest.raises(ValueError, match="needs a domain with a time interval"):
        PDEProblem(name="p", domain=dom, residual=lambda p, d: d["xx"], conditions=(Initial(0.0),))
    with pytest.raises(ValueError, match="parameters must map names to finite"):
        PDEProblem(name="p", domain=dom, residual=lambda p, d: d["xx"], parameters={"k": float("nan")})
    with pytest.raises(ValueError, match="weight must be a finite non-negative"):
        Dirichlet(0.0, weight=-1.0)
    with pytest.raises(TypeError, match="value must be a finite number or a function"):
        Neumann("zero")


def test_misplaced_conditions_are_refused_at_construction():
    disk = Domain(Ball([0.0, 0.0], 1.0))
    lap = lambda p, d: d.laplacian()  # noqa: E731
    # periodic pairs on the faces of a disk's bounding box would lie outside the disk
    with pytest.raises(ValueError, match="'periodic': Periodic needs a box domain"):
        PDEProblem(name="p", domain=disk, residual=lap, conditions=(Periodic("x"),))
    with pytest.raises(ValueError, match="boundary='periodic' needs a box domain"):
        PDEProblem(name="p", domain=disk, residual=lap, boundary="periodic")
    with pytest.raises(ValueError, match="face names such as 'x_min' exist only on a plain box"):
        PDEProblem(name="p", domain=disk, residual=lap, conditions=(Dirichlet(0.0, on="x_min"),))
    for cls, args in ((Initial, (0.0,)), (InitialRate, (0.0,)), (Periodic, ("x",)),
                      (Observations, (torch.zeros(2, 2), torch.zeros(2)))):
        with pytest.raises(ValueError, match=f"{cls.__name__} has its own points .* takes no on="):
            cls(*args, on="x_min")
    # observations whose points or columns do not fit the problem: named at construction, not at evaluate
    with pytest.raises(ValueError, match=r"'obs': observations need points \(m, 2\)"):
        PDEProblem(name="p", domain=disk, residual=lap, conditions=(Observations(torch.zeros(5, 3), torch.zeros(5),
                                                                                name="obs"),))
    with pytest.raises(ValueError, match=r"values \(m,\) or \(m, 1\) .* got \(5, 2\) and \(5, 3\)"):
        PDEProblem(name="p", domain=disk, residual=lap,
                   conditions=(Observations(torch.zeros(5, 2), torch.zeros(5, 3)),))
    # names that would overwrite a metric of evaluate or a batch key
    for name in ("loss", "rel_l2", "causal_loss", "causal_weight", "interior", "residual"):
        with pytest.raises(ValueError, match=f"condition names must be distinct and not .*'{name}'"):
            PDEProblem(name="p", domain=disk, residual=lap, conditions=(Dirichlet(0.0, name=name),))


def test_wrong_shapes_from_user_functions_are_named():
    disk = Domain(Ball([0.0, 0.0], 1.0))
    lap = lambda p, d: d.laplacian()  # noqa: E731
    solver = PINNSolver(PDEProblem(name="p", domain=disk, residual=lap,
                                   conditions=(Dirichlet(lambda p: torch.zeros(1), name="rim"),)), dtype=torch.float64)
    batch = solver.collocation(16, 16)[0]
    with pytest.raises(ValueError, match=r"condition 'rim': value must return a tensor of shape \(16,\) at 16 points, "
                                         r"got \(1,\)"):
        solver.evaluate(batch)
    uneven = PINNSolver(PDEProblem(name="sys", domain=disk, residual=lambda p, d: [d.u, d.u[:2]]))
    with pytest.raises(ValueError, match=r"residual of problem 'sys' .* got components of lengths \[3, 2\]"):
        uneven.residual(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="components of lengths"):  # the loss too, not only residual()
        uneven.loss(uneven.collocation(8)[0])
    # a part predicate must answer with booleans: a float mask was silently cast (0.3 → True)
    with pytest.raises(ValueError, match=r"must return a bool tensor .* got torch.float64"):
        disk.boundary_normals(10, part=lambda p: p[:, 0])
    right = disk.boundary_normals(100, part=lambda p: p[:, 0] > 0)[0]
    assert bool((right[:, 0] > 0).all())
