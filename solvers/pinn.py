"""PINNSolver: physics-informed neural networks on the :class:`~sciml.Solver` contract.

Raissi, Perdikaris & Karniadakis 2019, "Physics-informed neural networks: A deep learning
framework for solving forward and inverse problems involving nonlinear partial differential
equations" (J. Comput. Phys. 378): a network u_θ(x, t) is trained so that the PDE residual
vanishes at collocation points and the boundary and initial data hold, by minimising the sum of
mean squared errors MSE = MSE_u + MSE_f (eq. 4–6); derivatives of the network come from
automatic differentiation.

Around that core:

- hard constraints by output transformation, Lagaris, Likas & Fotiadis 1998, "Artificial neural
  networks for solving ordinary and partial differential equations" (IEEE TNN 9), eq. 11:
  u = g(x) + d(x)·N(x) with g taking the prescribed values and d vanishing where they are
  prescribed, so those conditions hold exactly (to rounding: sin(π) ≈ 1.2e-16, ≈ 8.7e-8 in
  float32) and their loss terms drop out;
- collocation by uniform, Latin-hypercube or scrambled Sobol sampling (``scipy.stats.qmc``);
- residual-based adaptive refinement: RAR, Lu, Meng, Mao & Karniadakis 2021, "DeepXDE: A deep
  learning library for solving differential equations" (SIAM Review 63), §2.8, adds the
  candidates with the largest residual; RAR-D, Wu, Zhu, Tan, Kartha & Lu 2023, "A comprehensive
  study of non-adaptive and residual-based adaptive sampling for physics-informed neural
  networks" (CMAME 403), eq. 2, draws them with density p ∝ ε^k / E[ε^k] + c;
- the Adam-then-L-BFGS schedule of Rathore, Lei, Frangella, Lu & Udell 2024, "Challenges in
  training PINNs: a loss landscape perspective" (ICML): two ``Trainer.fit`` calls on one solver.

Problems a user brings: a :class:`Domain` on any shape of :mod:`~sciml.solvers.pinn_geometry`
(boxes, balls, polygons and their unions, differences and intersections) with named boundary
parts; conditions per part, each its own weighted loss term (:mod:`~sciml.solvers.pinn_conditions`:
Dirichlet, Neumann, Robin, periodic, initial value and rate, observations); several outputs with
derivatives addressed per output (``d["u", "xx"]``, any order, cached); trainable coefficients
(``PDEProblem(parameters=...)``, read as ``d.params``) for inverse problems.

How the Trainer feeds it: a PINN has no data set, so :class:`Collocation` is a small map-style
Dataset whose every item is one complete set of collocation points (a dict of point tensors).
One step uses ``batch_size`` sets (normally one: full batch, what L-BFGS needs); with
``sets > 1`` every step sees fresh points. The sets are drawn once from a seed, so a run resumes
exactly and the solver itself holds no random state. Problems (Burgers, convection, reaction,
wave, Poisson, Allen–Cahn) with their references are in :mod:`sciml.solvers.pinn_problems`.

Example (Adam, then L-BFGS, in float64)::

    problem = burgers()
    solver = PINNSolver(problem, hidden=(20, 20, 20), dtype=torch.float64)
    data = solver.collocation(n_interior=2540, n_boundary=80, n_initial=160)
    Trainer(solver, optimizer="adam", lr=1e-3, epochs=15000, batch_size=1).fit(data)
    Trainer(solver, optimizer="lbfgs", lr=1.0, epochs=20, batch_size=1,
            optimizer_options={"max_iter": 1000, "history_size": 50}).fit(data)
    solver.relative_error()
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from sciml.solver import Solver
from sciml.solvers.pinn_causal import causal_residual
from sciml.solvers.pinn_conditions import Condition
from sciml.solvers.pinn_features import InputFeatures
from sciml.solvers.pinn_geometry import SAMPLERS, Box, Geometry, box_faces, unit_samples
from sciml.validation import positive_int

__all__ = ["Domain", "Derivatives", "PDEProblem", "PINNSolver", "Collocation", "MLP", "SAMPLERS", "TERMS"]

TERMS = ("residual", "boundary", "initial")  # the terms of the problem's own boundary and initial fields
REFINEMENTS = ("rar", "rar-d")
# names a condition may not take: loss terms, batch keys and evaluate's metrics
_RESERVED = ("residual", "interior", "loss", "rel_l2", "causal_loss", "causal_weight")
_ACTIVATIONS = {"tanh": torch.tanh, "sin": torch.sin, "gelu": nn.functional.gelu, "silu": nn.functional.silu}


class Domain:
    """A region in space (a box, or any :mod:`~sciml.solvers.pinn_geometry` shape), times an optional
    time interval.

    Parameters
    ----------
    space : ``[(lo, hi), ...]``, one interval per spatial dimension, or a
        :class:`~sciml.solvers.pinn_geometry.Geometry` (disk, polygon, their combinations, ...).
    time : ``(t0, t1)`` or None for a steady problem.
    names : one name per spatial coordinate (default ``x``, ``y``, ``z``, and ``x0``, ``x1``, ... beyond
        three dimensions); time is ``t``.
    parts : named parts of the boundary, ``{name: predicate}`` with ``predicate(points (n, dim)) ->
        bool (n,)``; conditions refer to them by name. A box also has its faces ``"x_min"``,
        ``"x_max"``, ``"y_min"``, ... (named after ``names``).

    Points are rows ``(x_1, ..., x_d, t)`` of shape ``(n, dim)``.
    """

    def __init__(self, space: Sequence[tuple[float, float]] | Geometry, time: tuple[float, float] | None = None,
                 names: Sequence[str] | None = None, parts: dict[str, Callable[[Tensor], Tensor]] | None = None):
        if isinstance(space, Geometry):
            self.geometry = space
            space = list(zip(space.lower.tolist(), space.upper.tolist()))
        else:
            space = [tuple(map(float, s)) for s in space]
            if not space or any(len(s) != 2 or not s[0] < s[1] for s in space):
                raise ValueError(f"space must be a non-empty list of intervals (lo, hi) with lo < hi or a Geometry, "
                                 f"got {space!r}")
            self.geometry = Box([s[0] for s in space], [s[1] for s in space])
        if time is not None and (len(time) != 2 or not float(time[0]) < float(time[1])):
            raise ValueError(f"time must be (t0, t1) with t0 < t1 or None, got {time!r}")
        if names is None:
            names = ("x", "y", "z")[: len(space)] if len(space) <= 3 else tuple(f"x{i}" for i in range(len(space)))
        names = tuple(names)
        if len(names) != len(space) or len(set(names)) != len(names) or "t" in names \
                or any(not (isinstance(c, str) and c.isidentifier()) for c in names):
            raise ValueError(f"names must be {len(space)} distinct identifiers other than 't' (single letters read "
                             f"best: d['xy']), got {names!r}")
        self.space = space
        self.time = (float(time[0]), float(time[1])) if time is not None else None
        self.names = names + (("t",) if self.time else ())
        bounds = space + ([self.time] if self.time else [])
        self.lower = torch.tensor([b[0] for b in bounds], dtype=torch.float64)
        self.upper = torch.tensor([b[1] for b in bounds], dtype=torch.float64)
        self.parts: dict[str, Callable[[Tensor], Tensor]] = {}
        if isinstance(self.geometry, Box):
            for i, c in enumerate(names):
                for side in ("min", "max"):
                    self.parts[f"{c}_{side}"] = self.geometry.face(i, side)
        for key, predicate in (parts or {}).items():
            if not isinstance(key, str) or not callable(predicate):
                raise TypeError(f"parts must map names to predicates on points, got {key!r}: {predicate!r}")
            self.parts[key] = predicate

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def space_dim(self) -> int:
        return len(self.space)

    @property
    def _box(self) -> bool:
        return type(self.geometry) is Box

    def __repr__(self) -> str:
        space = self.space if self._box else self.geometry
        return f"Domain(space={space}, time={self.time}, names={self.names[: self.space_dim]})"

    def _with_time(self, points: Tensor, unit_time: Tensor) -> Tensor:
        """Space points joined with times mapped from unit samples (nothing for a steady domain)."""
        if self.time is None:
            return points
        t0, t1 = self.time
        return torch.cat([points, t0 + (t1 - t0) * unit_time[:, :1]], 1)

    def interior(self, n: int, sampler: str = "sobol", seed: int = 0) -> Tensor:
        """``(n, dim)`` points in the region (space × time)."""
        if self._box:
            return self.lower + (self.upper - self.lower) * unit_samples(n, self.dim, sampler, seed)
        u = self.geometry.interior(n, sampler, seed, extra=1 if self.time else 0)
        return self._with_time(u[:, : self.space_dim], u[:, self.space_dim:])

    def initial(self, n: int, sampler: str = "sobol", seed: int = 0) -> Tensor:
        """``(n, dim)`` points on the initial slice t = t0."""
        if self.time is None:
            raise ValueError("a steady domain (time=None) has no initial slice")
        s = self.space_dim
        if self._box:
            pts = self.lower[:s] + (self.upper[:s] - self.lower[:s]) * unit_samples(n, s, sampler, seed)
        else:
            pts = self.geometry.interior(n, sampler, seed)
        return torch.cat([pts, torch.full((n, 1), self.time[0], dtype=torch.float64)], dim=1)

    def boundary(self, n: int, sampler: str = "sobol", seed: int = 0, part: Any = None) -> Tensor:
        """``(n, dim)`` points on the spatial boundary (times the time interval), uniform in surface
        measure; on one ``part`` (a name in :attr:`parts` or a predicate) if given."""
        return self.boundary_normals(n, sampler, seed, part)[0]

    def boundary_normals(self, n: int, sampler: str = "sobol", seed: int = 0,
                         part: Any = None) -> tuple[Tensor, Tensor]:
        """``(points (n, dim), outward normals (n, space_dim))`` on the boundary or one ``part`` of it:
        points of the whole boundary are drawn and those on the part kept, more until n are."""
        positive_int("n", n)
        if part is not None:
            predicate = self._part(part)
            m = 4 * n
            while m <= max(1 << 20, 256 * n):  # a part of measure ~ 0 would take forever: give up
                points, normals = self.boundary_normals(m, sampler, seed)
                keep = predicate(points)
                if not isinstance(keep, Tensor) or keep.dtype != torch.bool or keep.shape != points.shape[:1]:
                    got = f"{keep.dtype} {tuple(keep.shape)}" if isinstance(keep, Tensor) else type(keep).__name__
                    raise ValueError(f"part {part!r} must return a bool tensor of shape ({m},) (a comparison such "
                                     f"as p[:, 0] > 0), got {got}")
                if int(keep.sum()) >= n:
                    return points[keep][:n], normals[keep][:n]
                m *= 4
            raise ValueError(f"part {part!r} holds almost none of the boundary ({int(keep.sum())} of {m} points)")
        if self._box:
            points = box_faces(unit_samples(n, self.dim + 1, sampler, seed), self.lower, self.upper, self.space_dim)[0]
            return points, self.geometry.normal(points[:, : self.space_dim])
        points, normals = self.geometry.boundary(n, sampler, seed, extra=1 if self.time else 0)
        return self._with_time(points[:, : self.space_dim], points[:, self.space_dim:]), normals

    def _part(self, part: Any) -> Callable[[Tensor], Tensor]:
        if callable(part):
            return part
        if part not in self.parts:
            faces = "" if self._box else " (face names such as 'x_min' exist only on a plain box domain; give " \
                "other shapes their parts as Domain(..., parts={name: predicate}))"
            raise ValueError(f"unknown boundary part {part!r}; the domain has {sorted(self.parts)}{faces}")
        return self.parts[part]

    def normal(self, points: Tensor) -> Tensor:
        """``(n, space_dim)`` outward unit normals at boundary points."""
        return self.geometry.normal(points[:, : self.space_dim])

    def inside(self, points: Tensor) -> Tensor:
        """Boolean ``(n,)``: whether each point lies in the closed region (and time interval)."""
        ok = self.geometry.inside(points[:, : self.space_dim].to(torch.float64))
        if self.time is not None:
            t = points[:, -1]
            ok = ok & (t >= self.time[0]) & (t <= self.time[1])
        return ok

    def periodic_pairs(self, n: int, sampler: str = "sobol", seed: int = 0, axis: str | None = None) -> Tensor:
        """``(n, 2, dim)``: points on the lower faces of the bounding box and their images on the
        opposite faces; all spatial axes (by face measure), or only ``axis``. Box domains only."""
        if not self._box:
            raise ValueError(f"periodic pairs need a box domain (on {self.geometry!r} the faces of the bounding "
                             f"box lie outside the domain)")
        if axis is None:
            u = unit_samples(n, self.dim, sampler, seed)
            u = torch.cat([u, torch.zeros(n, 1, dtype=torch.float64)], 1)
            lo = box_faces(u, self.lower, self.upper, self.space_dim)[0]
            hi = box_faces(u + torch.eye(self.dim + 1, dtype=torch.float64)[-1], self.lower, self.upper,
                           self.space_dim)[0]
            return torch.stack([lo, hi], dim=1)
        if axis not in self.names[: self.space_dim]:
            raise ValueError(f"axis must be one of the spatial coordinates {self.names[: self.space_dim]}, "
                             f"got {axis!r}")
        i = self.names.index(axis)
        lo = self.lower + (self.upper - self.lower) * unit_samples(n, self.dim, sampler, seed)
        lo[:, i] = self.lower[i]
        hi = lo.clone()
        hi[:, i] = self.upper[i]
        return torch.stack([lo, hi], dim=1)

    def grid(self, *counts: int) -> Tensor:
        """``(prod(counts), dim)`` tensor-product grid over the bounding box including the end points,
        first axis slowest."""
        if len(counts) != self.dim:
            raise ValueError(f"counts must give one size per dimension ({self.dim}), got {counts!r}")
        axes = [torch.linspace(float(lo), float(hi), positive_int("counts", c), dtype=torch.float64)
                for lo, hi, c in zip(self.lower, self.upper, counts)]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, self.dim)


class Derivatives:
    """Derivatives of the network's outputs at a batch of points, by reverse-mode autograd.

    With one output, ``d.u`` is u, ``d["x"]`` is ∂u/∂x, ``d["xt"]`` is ∂²u/∂x∂t and ``d["xxx"]``
    ∂³u/∂x³ (letters are the domain's coordinate names; any order). With several outputs, name
    the output: ``d["v"]`` is v, ``d["v", "xy"]`` is ∂²v/∂x∂y. ``d.params`` holds the problem's
    trainable coefficients. All points are differentiated at once: u at one point depends on that
    point only, so the gradient of Σ_i u(p_i) is the per-point gradient. Mixed derivatives are
    taken in one order (coordinates sorted), so ∂²u/∂x∂t and ∂²u/∂t∂x are one computation, and
    every derivative is computed once and kept: one backward pass gives the whole gradient of a
    derivative, hence every derivative one order higher.
    """

    def __init__(self, u: Tensor, points: Tensor, names: Sequence[str], outputs: Sequence[str] = ("u",),
                 params: dict[str, Tensor] | None = None):
        self.values = u if u.dim() == 2 else u[:, None]
        self.points, self.names, self.outputs = points, tuple(names), tuple(outputs)
        if self.values.shape[1] != len(self.outputs):
            raise ValueError(f"u has {self.values.shape[1]} output column(s) for the outputs {self.outputs}")
        self.params = dict(params or {})
        self._grads: dict[tuple[int, tuple[int, ...]], Tensor] = {}  # (output, derivative) -> its gradient
        self._dimensions = [i for i, c in enumerate(self.names) if c != "t"]  # what dimension_sum runs over
        self._dimension_scale = 1.0

    @property
    def u(self) -> Tensor:
        """The output named ``u``, or the only output."""
        if "u" in self.outputs:
            return self.values[:, self.outputs.index("u")]
        if len(self.outputs) == 1:
            return self.values[:, 0]
        raise AttributeError(f"no output named 'u' among {self.outputs}; use d[name]")

    def _output(self, name: Any) -> int:
        if isinstance(name, int) and 0 <= name < len(self.outputs):
            return name
        if name not in self.outputs:
            raise KeyError(f"unknown output {name!r}; the problem's outputs are {self.outputs}")
        return self.outputs.index(name)

    def _derivative(self, k: int, order: tuple[int, ...]) -> Tensor:
        if not order:
            return self.values[:, k]
        return self._gradient(k, order[:-1])[:, order[-1]]

    def _gradient(self, k: int, order: tuple[int, ...]) -> Tensor:
        """``(n, dim)``: the gradient of the derivative ``order`` of output ``k``, cached."""
        key = (k, order)
        if key not in self._grads:
            f = self._derivative(k, order)
            if f.requires_grad:
                self._grads[key] = torch.autograd.grad(f.sum(), self.points, create_graph=True,
                                                       materialize_grads=True)[0]
            else:  # constant in the points (a derivative beyond the network's degree)
                self._grads[key] = torch.zeros_like(self.points)
        return self._grads[key]

    def gradient(self, output: Any = 0) -> Tensor:
        """``(n, dim)``: ∇ of one output (by name or index) at every point."""
        return self._gradient(self._output(output), ())

    @property
    def grad(self) -> Tensor:
        """``(n, dim)``: ∇u at every point (the only output, or the one named ``u``)."""
        return self.gradient("u" if "u" in self.outputs or len(self.outputs) > 1 else 0)

    def __getitem__(self, key: Any) -> Tensor:
        if isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], str):
            k, spec = self._output(key[0]), key[1]
        elif isinstance(key, str) and key in self.outputs:
            return self.values[:, self.outputs.index(key)]
        elif isinstance(key, str) and len(self.outputs) == 1:
            k, spec = 0, key
        elif isinstance(key, str):
            raise KeyError(f"{key!r} is not an output, and with several outputs {self.outputs} a derivative "
                           f"names its output: d['{self.outputs[0]}', {key!r}]")
        else:
            raise KeyError(f"derivatives are named by coordinate letters, e.g. d['x'], d['xt'], or d[output, 'xx']; "
                           f"got {key!r}")
        if not spec:
            return self.values[:, k]
        return self._derivative(k, tuple(sorted(self._parse(spec))))

    def _parse(self, spec: str) -> list[int]:
        """Coordinate indices of a derivative name: ``"xxy"`` → x, x, y; with longer coordinate names
        (``x0``, ``x1``, ...) the longest name that fits is read first (``"x1x1"`` → x1, x1)."""
        out, at = [], 0
        by_length = sorted(self.names, key=len, reverse=True)
        while at < len(spec):
            c = next((c for c in by_length if spec.startswith(c, at)), None)
            if c is None:
                raise KeyError(f"unknown coordinate in {spec!r} at {spec[at:]!r}; "
                               f"the domain's coordinates are {self.names}")
            out.append(self.names.index(c))
            at += len(c)
        return out

    def dimension_sum(self, term: Callable[[str], Tensor]) -> Tensor:
        """Σ over the spatial coordinates c of ``term(c)`` (e.g. ``lambda c: d[c + c]``, the Laplacian).

        Written this way, an operator that is a sum over dimensions can be trained by SDGD
        (:class:`~sciml.solvers.sdgd.SDGDSolver`), which sums over a random subset of the
        coordinates instead, scaled to stay unbiased; otherwise every spatial coordinate counts once."""
        return self.dimension_scale * sum(term(self.names[i]) for i in self.dimensions)

    @property
    def dimensions(self) -> list[int]:
        """The coordinate indices :meth:`dimension_sum` runs over: the spatial ones, or those SDGD drew."""
        return self._dimensions

    @property
    def dimension_scale(self) -> float:
        return self._dimension_scale

    def sample_dimensions(self, dims: Sequence[int]) -> None:
        """Let :meth:`dimension_sum` run over the coordinates ``dims`` only, scaled by
        (spatial dimensions)/len(dims) so that its mean over uniform draws is the full sum (SDGD)."""
        space = len([c for c in self.names if c != "t"])
        self._dimensions, self._dimension_scale = [int(i) for i in dims], space / len(dims)

    def laplacian(self, output: Any = 0) -> Tensor:
        """Σ_i ∂²u/∂x_i² over the spatial coordinates (time excluded), as a :meth:`dimension_sum`."""
        k = self._output(output)
        return self.dimension_sum(lambda c: self._derivative(k, (self.names.index(c),) * 2))


@dataclass(frozen=True)
class PDEProblem:
    """A PDE problem for :class:`PINNSolver`.

    Parameters
    ----------
    name : short name, e.g. ``"burgers"``.
    domain : the :class:`Domain`.
    residual : ``(points, d) -> (n,)`` with ``d`` a :class:`Derivatives`; zero at the solution. A
        system returns one ``(n,)`` residual per equation (a tuple or list), or ``(n, m)``.
    boundary : Dirichlet data ``points -> (n,)`` on the spatial boundary, ``"periodic"``, or None.
    periodic_derivatives : with ``"periodic"``, also match the first derivatives normal to the
        faces (needed for second-order operators such as u_xx).
    initial : u(x, t0) as ``points -> (n,)``, or None.
    initial_rate : ∂u/∂t(x, t0) as ``points -> (n,)`` (second order in time), or None.
    lift, distance : ``points -> (n,)`` for the hard constraint u = lift + distance·N (Lagaris
        et al. 1998, eq. 11); distance vanishes where the constraint holds (to rounding).
    hard_terms : the loss terms that the hard constraints satisfy to rounding (dropped with them):
        ``"initial"`` and a Dirichlet ``"boundary"`` through lift and distance, a periodic
        ``"boundary"`` through periodic input features (:class:`~sciml.solvers.pinn_features.InputFeatures`).
    solution : exact solution ``points -> (n,)`` (``(n, k)`` for k outputs), if known; without a
        ``reference``, :meth:`PINNSolver.relative_error` measures against it.
    reference : ``(points (m, dim), values (m,) or (m, k))`` to measure the error against.
    outputs : the names of the network's outputs, e.g. ``("u", "v", "p")`` (not coordinate names).
    conditions : :class:`~sciml.solvers.pinn_conditions.Condition` objects (Dirichlet, Neumann,
        Robin, periodic, initial, observations), each a loss term of its own name and weight.
    parameters : trainable PDE coefficients ``{name: initial value}`` (inverse problems): the solver
        holds them as parameters, trained with the network, and the residual reads them from
        ``d.params[name]``.
    """

    name: str
    domain: Domain
    residual: Callable[[Tensor, Derivatives], Tensor]
    boundary: Callable[[Tensor], Tensor] | str | None = None
    periodic_derivatives: bool = False
    initial: Callable[[Tensor], Tensor] | None = None
    initial_rate: Callable[[Tensor], Tensor] | None = None
    lift: Callable[[Tensor], Tensor] | None = None
    distance: Callable[[Tensor], Tensor] | None = None
    hard_terms: tuple[str, ...] = ()
    solution: Callable[[Tensor], Tensor] | None = None
    reference: tuple[Tensor, Tensor] | None = None
    outputs: tuple[str, ...] = ("u",)
    conditions: tuple[Condition, ...] = ()
    parameters: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.domain, Domain):
            raise TypeError(f"domain must be a Domain, got {type(self.domain).__name__}")
        if isinstance(self.boundary, str) and self.boundary != "periodic":
            raise ValueError(f"boundary must be a callable, 'periodic' or None, got {self.boundary!r}")
        if self.boundary == "periodic" and not self.domain._box:
            raise ValueError(f"boundary='periodic' needs a box domain, got {self.domain.geometry!r}")
        if (self.initial is not None or self.initial_rate is not None) and self.domain.time is None:
            raise ValueError("initial conditions need a domain with a time interval")
        if (self.lift is None) != (self.distance is None):
            raise ValueError("lift and distance must be given together")
        unknown = set(self.hard_terms) - {"boundary", "initial"}
        if unknown:
            raise ValueError(f"hard_terms must be a subset of ('boundary', 'initial'), got {self.hard_terms!r}")
        outputs = tuple(self.outputs) if not isinstance(self.outputs, str) else ()
        if not outputs or len(set(outputs)) != len(outputs) or any(
                not (isinstance(o, str) and o.isidentifier()) or o in self.domain.names for o in outputs):
            raise ValueError(f"outputs must be distinct names that are not coordinates {self.domain.names}, "
                             f"got {self.outputs!r}")
        object.__setattr__(self, "outputs", outputs)
        k = len(outputs)
        if k > 1 and (self.boundary is not None or self.initial is not None or self.initial_rate is not None):
            raise ValueError("boundary, initial and initial_rate serve one output; with several outputs pose "
                             "Dirichlet, Periodic, Initial, ... conditions")
        if self.reference is not None:
            pts, vals = self.reference
            want = (pts.shape[0],) if k == 1 else (pts.shape[0], k)
            if pts.dim() != 2 or pts.shape[1] != self.domain.dim or tuple(vals.shape) not in (want, (pts.shape[0], k)):
                shape = "(m,)" if k == 1 else f"(m, {k})"
                raise ValueError(f"reference must be (points (m, {self.domain.dim}), values {shape}), "
                                 f"got {tuple(pts.shape)} and {tuple(vals.shape)}")
        self._check_conditions()
        params = dict(self.parameters)
        for name, value in params.items():
            if not (isinstance(name, str) and name.isidentifier()) or isinstance(value, bool) \
                    or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"parameters must map names to finite initial values, got {name!r}: {value!r}")
        object.__setattr__(self, "parameters", params)

    def _check_conditions(self) -> None:
        conditions = tuple(self.conditions)
        object.__setattr__(self, "conditions", conditions)
        names = [c.name for c in conditions if isinstance(c, Condition)]
        if len(names) != len(conditions):
            bad = next(c for c in conditions if not isinstance(c, Condition))
            raise TypeError(f"conditions must be Condition objects (Dirichlet, Neumann, ...), got {type(bad).__name__}")
        reserved = list(_RESERVED) + (["boundary"] if self.boundary is not None else []) + \
            (["periodic"] if self.boundary == "periodic" else []) + \
            (["initial"] if self.initial is not None or self.initial_rate is not None else [])
        taken = [n for n in names if names.count(n) > 1 or n in reserved]
        if taken:
            raise ValueError(f"condition names must be distinct and not {tuple(reserved)} (terms, batch keys and "
                             f"metrics of their own); {sorted(set(taken))} are not: give them name=...")
        for c in conditions:
            if c.component is not None and set(c.component) - set(self.outputs):
                raise ValueError(f"condition {c.name!r} acts on {c.component}, but the outputs are {self.outputs}")
            if c.kind == "initial" and self.domain.time is None:
                raise ValueError(f"condition {c.name!r} needs a domain with a time interval")
            if isinstance(c.on, str):
                self.domain._part(c.on)
            if c.kind == "periodic" and c.axis not in self.domain.names[: self.domain.space_dim]:
                raise ValueError(f"condition {c.name!r}: axis must be one of "
                                 f"{self.domain.names[: self.domain.space_dim]}, got {c.axis!r}")
            if c.kind == "periodic" and not self.domain._box:
                raise ValueError(f"condition {c.name!r}: Periodic needs a box domain (on {self.domain.geometry!r} "
                                 f"the faces of the bounding box lie outside the domain)")
            if c.kind == "data":
                k = len(c.component or self.outputs)
                if c.data_points.shape[1] != self.domain.dim or c.values.shape[1] != k:
                    raise ValueError(f"condition {c.name!r}: observations need points (m, {self.domain.dim}) "
                                     f"{self.domain.names} and values (m,) or (m, {k}) for the outputs "
                                     f"{c.component or self.outputs}, got {tuple(c.data_points.shape)} and "
                                     f"{tuple(c.values.shape)}")

    @property
    def terms(self) -> tuple[str, ...]:
        """The loss terms this problem has (before hard constraints)."""
        out = ["residual"]
        if self.boundary is not None:
            out.append("boundary")
        if self.initial is not None or self.initial_rate is not None:
            out.append("initial")
        return tuple(out) + tuple(c.name for c in self.conditions)


class MLP(nn.Module):
    """Fully connected network ``(n, in) → (n, out)`` with Glorot-normal weights and zero biases
    (the initialisation of Raissi et al. 2019 and DeepXDE)."""

    def __init__(self, in_features: int, out_features: int = 1, hidden: Sequence[int] = (20, 20, 20),
                 activation: str = "tanh", seed: int | None = 0):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(_ACTIVATIONS)}, got {activation!r}")
        sizes = [positive_int("in_features", in_features), *(positive_int("hidden", h) for h in hidden),
                 positive_int("out_features", out_features)]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = activation
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        for layer in self.layers:
            # drawn in float32 whatever the default dtype: a seed gives one network, and its draws are
            # not those of the float64 Fourier frequencies of the same seed (InputFeatures)
            weight = nn.init.xavier_normal_(torch.empty(layer.weight.shape, dtype=torch.float32), generator=gen)
            with torch.no_grad():
                layer.weight.copy_(weight)
            nn.init.zeros_(layer.bias)

    def forward(self, z: Tensor) -> Tensor:
        act = _ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            z = act(layer(z))
        return self.layers[-1](z)


class Collocation(torch.utils.data.Dataset):
    """Collocation points as a map-style Dataset: item ``i`` is the ``i``-th complete point set.

    Items are dicts of float64 tensors: ``"interior"`` ``(n_interior, dim)``, and where the
    problem needs them ``"boundary"`` ``(n_boundary, dim)`` (Dirichlet), ``"periodic"``
    ``(n_boundary, 2, dim)`` (pairs of matching points) and ``"initial"`` ``(n_initial, dim)``;
    each condition's points under its name (with ``"<name>.normal"`` for Neumann and Robin, and
    ``"<name>.values"`` for observations).
    Terms satisfied by a hard constraint get no points. Build it with
    :meth:`PINNSolver.collocation`.
    """

    def __init__(self, sets: list[dict[str, Tensor]]):
        if not sets:
            raise ValueError("sets must hold at least one point set")
        self.sets = sets

    def __len__(self) -> int:
        return len(self.sets)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.sets[i]

    def __repr__(self) -> str:
        shapes = {k: tuple(v.shape) for k, v in self.sets[0].items()}
        return f"Collocation({len(self)} sets of {shapes})"


class PINNSolver(Solver):
    """A physics-informed neural network for one :class:`PDEProblem`.

    Parameters
    ----------
    problem : the PDE problem (see :mod:`sciml.solvers.pinn_problems`).
    network : an ``nn.Module`` mapping the ``(n, solver.features.out_features)`` input features
        to ``(n, len(problem.outputs))``; default :class:`MLP` with ``hidden`` and ``activation``.
        The problem's ``parameters`` become the trainable :attr:`coefficients` beside it.
    hidden, activation, seed : the default MLP's layer widths, activation and initialisation seed
        (``seed`` also draws the Fourier frequencies).
    hard : enforce ``problem.hard_terms`` to rounding through u = lift + distance·N and, for a
        periodic boundary, periodic input features.
    fourier_scale, fourier_count : σ and number m of random Fourier features of the coordinates
        that are not periodic (:class:`~sciml.solvers.pinn_features.InputFeatures`); None (the
        default) feeds them to the network as they are. The scale is in the scaled coordinates
        z ∈ [-1, 1]: a solution with k periods along a coordinate has frequency πk in z.
    weights : loss weight per term (``"residual"``, ``"boundary"``, ``"initial"``, and each
        condition's name); default 1, or the condition's own ``weight``. A weight for a term the
        solver does not have (absent from the problem, or dropped by ``hard``) raises ValueError.
    dtype : parameter dtype; use ``torch.float64`` with L-BFGS (it stalls in float32).
    causal, causal_chunks : ε and the number of time chunks M of causal training
        (:mod:`~sciml.solvers.pinn_causal`, Wang, Sankaran & Perdikaris 2024): the residual term
        weighs the chunk at t_i by exp(−ε·(residual loss of the chunks before it)). None (the
        default) weighs all points alike. Needs a time-dependent problem; :meth:`evaluate` then
        reports ``causal_weight``, the smallest chunk weight (near 1: trained through to t1;
        the Trainer averages it over evaluation batches). The weights follow the parameters but
        take no part in the gradient, so train with a first-order optimizer (Adam, as the paper
        does): L-BFGS's line search would see a loss that its gradient does not describe.

    The loss on a batch of point sets is (Raissi et al. 2019, eq. 4–6)
    w_r·mean(r²) + w_b·mean((u − g)²) + w_0·mean((u − u₀)² [+ (u_t − v₀)²]); a periodic
    boundary term is mean((u(lo) − u(hi))²) [+ the same for the normal derivative].

    The network must be pointwise: u at a point may depend on that point only, since
    :class:`Derivatives` differentiates all points in one pass. Construction checks it once, in
    training mode, on 8 points (∂u(p_0)/∂p_j = 0 for j ≠ 0) and refuses a network that mixes
    its batch (BatchNorm in training mode, attention across points) with a ValueError.
    """

    supports_bf16 = False  # second derivatives of a bf16 network are noise

    def __init__(self, problem: PDEProblem, network: nn.Module | None = None, *, hidden: Sequence[int] = (20, 20, 20),
                 activation: str = "tanh", seed: int | None = 0, hard: bool = False,
                 weights: dict[str, float] | None = None, dtype: torch.dtype = torch.float32,
                 fourier_scale: float | None = None, fourier_count: int = 32, causal: float | None = None,
                 causal_chunks: int = 32):
        super().__init__()
        if not isinstance(problem, PDEProblem):
            raise TypeError(f"problem must be a PDEProblem, got {type(problem).__name__}")
        periodic_hard = hard and problem.boundary == "periodic" and "boundary" in problem.hard_terms
        needs_lift = "initial" in problem.hard_terms or ("boundary" in problem.hard_terms and not periodic_hard)
        if hard and (not problem.hard_terms or (needs_lift and problem.lift is None)):
            raise ValueError(f"hard=True needs a problem with hard_terms, and lift and distance for initial or "
                             f"Dirichlet ones; {problem.name!r} has hard_terms={problem.hard_terms!r} and "
                             f"lift={'given' if problem.lift else None}")
        weights = dict(weights or {})
        unknown = set(weights) - set(problem.terms)
        if unknown:
            raise ValueError(f"weights has unknown terms {sorted(unknown)}; expected some of {problem.terms}")
        if any(isinstance(w, bool) or not (isinstance(w, (int, float)) and w >= 0 and math.isfinite(w))
               for w in weights.values()):
            raise ValueError(f"weights must be finite non-negative numbers (not bools), got {weights!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
        if causal is not None:
            if isinstance(causal, bool) or not (isinstance(causal, numbers.Real) and 0 < causal < math.inf):
                raise ValueError(f"causal must be None or a positive number ε, got {causal!r}")
            if problem.domain.time is None:
                raise ValueError(f"causal training needs a time-dependent problem; {problem.name!r} is steady")
        if positive_int("causal_chunks", causal_chunks) < 2:
            raise ValueError(f"causal_chunks must be at least 2, got {causal_chunks}")
        self.causal, self.causal_chunks = (float(causal) if causal is not None else None), causal_chunks
        self.problem, self.hard = problem, hard
        self._lifted = hard and needs_lift  # u = lift + distance·N; else u = N
        self.terms = tuple(t for t in problem.terms if not (hard and t in problem.hard_terms))
        unused = sorted(set(weights) - set(self.terms))
        if unused:
            raise ValueError(f"weights has terms {unused} that this solver does not have (problem {problem.name!r} "
                             f"with hard={hard} has the terms {self.terms}); drop them")
        conditions = {c.name for c in problem.conditions}
        self._own_terms = tuple(t for t in self.terms if t not in conditions)  # from boundary=, initial=
        defaults = {c.name: c.weight for c in problem.conditions}
        self.weights = {t: float(weights.get(t, defaults.get(t, 1.0))) for t in self.terms}
        self.coefficients = nn.ParameterDict({k: nn.Parameter(torch.tensor(float(v), dtype=dtype))
                                              for k, v in problem.parameters.items()})
        dim = problem.domain.dim
        periodic = tuple(range(problem.domain.space_dim)) if periodic_hard else ()
        self.features = InputFeatures(dim, periodic, fourier_scale, fourier_count, seed)
        k = len(problem.outputs)
        self.network = network if network is not None else MLP(self.features.out_features, k, hidden, activation, seed)
        if not isinstance(self.network, nn.Module):
            raise TypeError(f"network must be an nn.Module, got {type(self.network).__name__}")
        self.network.to(dtype)
        self._check_pointwise()
        if periodic_hard and self._lifted:
            self._check_periodic_lift()
        self.register_buffer("lower", problem.domain.lower.clone(), persistent=False)
        self.register_buffer("upper", problem.domain.upper.clone(), persistent=False)
        if problem.reference is not None:
            self.register_buffer("ref_points", problem.reference[0].to(torch.float64), persistent=False)
            self.register_buffer("ref_values", problem.reference[1].to(torch.float64).reshape(
                problem.reference[0].shape[0], k), persistent=False)
        elif problem.solution is not None:  # PDEProblem.solution at 4096 Sobol' points of the domain
            points = problem.domain.interior(4096, "sobol", seed=2024)
            self.register_buffer("ref_points", points, persistent=False)
            self.register_buffer("ref_values", problem.solution(points).to(torch.float64).reshape(4096, k),
                                 persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.network.parameters()).dtype

    # ------------------------------------------------------------------ the network
    def _net(self, z: Tensor) -> Tensor:
        """The network at ``(n, dim)`` scaled inputs, ``(n, outputs)``."""
        features = self.features(z)
        out = self.network(features)
        k = len(self.problem.outputs)
        if out.dim() != 2 or out.shape != (z.shape[0], k):
            raise ValueError(f"network must map (n, {features.shape[1]}) input features to (n, {k}), "
                             f"got {tuple(out.shape)}")
        return out

    def _check_pointwise(self) -> None:
        """Refuse a network whose output at one point depends on the other points of its batch:
        :class:`Derivatives` takes the gradient of Σ_i u(p_i) as the per-point gradient."""
        param = next(self.network.parameters(), None)
        if param is None:
            raise ValueError("network must have parameters to train, got none")
        modes = {m: m.training for m in self.network.modules()}
        z = (2 * unit_samples(8, self.problem.domain.dim, "sobol", seed=0) - 1).to(param.device, param.dtype)
        z.requires_grad_(True)
        try:
            with torch.random.fork_rng(devices=[]), torch.enable_grad():  # dropout leaves the global stream alone
                self.network.train()  # the mode the loss is computed in
                try:
                    first = self._net(z)[0].sum()
                except RuntimeError as err:  # e.g. a first layer sized for the raw coordinates
                    if "shape" not in str(err) and "size" not in str(err):
                        raise
                    raise ValueError(f"network must map (n, {self.features.out_features}) input features "
                                     f"({self.features!r}) to (n, {len(self.problem.outputs)}), but calling it "
                                     f"failed: {err}") from err
                cross = torch.autograd.grad(first, z, allow_unused=True)[0]
        finally:
            for m, training in modes.items():
                m.train(training)
        leak = 0.0 if cross is None else float(cross[1:].abs().max())
        if leak > 1e-6 * max(1.0, float(cross[0].abs().max())):
            raise ValueError(f"network must act on each point alone (u at a point may depend on that point only), "
                             f"but its output at one point changes with the others (|du(p_0)/dp_j| up to {leak:.2e}); "
                             f"BatchNorm in training mode or attention across the batch break the derivatives")

    def _check_periodic_lift(self) -> None:
        """With the periodic boundary made exact by the input features, u = lift + distance·N is
        periodic only if lift and distance are (and their gradients, where the problem matches
        derivatives across the faces): refuse them otherwise rather than lose the condition."""
        p = self.problem
        pairs = p.domain.periodic_pairs(64, "sobol", seed=0).requires_grad_(True)
        lo, hi = pairs[:, 0], pairs[:, 1]
        space = p.domain.space_dim
        for name, fn in (("lift", p.lift), ("distance", p.distance)):
            a, b = fn(lo), fn(hi)
            gap = float((a - b).detach().abs().max())
            if p.periodic_derivatives:
                ga, gb = torch.autograd.grad((a.sum(), b.sum()), (lo, hi), allow_unused=True, materialize_grads=True)
                gap = max(gap, float((ga - gb)[:, :space].abs().max()))
            scale = max(1.0, float(a.detach().abs().max()))  # relative to the lift's size
            if gap > 1e-6 * scale:
                derivs = " and its gradient" if p.periodic_derivatives else ""
                raise ValueError(f"{name} of problem {p.name!r} must be periodic{derivs} across the periodic faces "
                                 f"for hard=True (the network is made periodic; u = lift + distance·N must be too), "
                                 f"but it differs by {gap:.2e}; leave 'boundary' out of hard_terms to keep it a loss term")

    def values(self, points: Tensor) -> Tensor:
        """All outputs at ``(n, dim)`` points, ``(n, outputs)``, differentiable in the points and the
        parameters."""
        lower, upper = self.lower.to(points.dtype), self.upper.to(points.dtype)
        z = 2.0 * (points - lower) / (upper - lower) - 1.0  # inputs in [-1, 1]: tanh layers start unsaturated
        out = self._net(z)
        if self._lifted:  # Lagaris et al. 1998, eq. 11
            n, k = out.shape
            out = self.problem.lift(points).reshape(n, -1) + self.problem.distance(points).reshape(n, -1) * out
        return out

    def u(self, points: Tensor) -> Tensor:
        """u at ``(n, dim)`` points: ``(n,)`` for one output, ``(n, outputs)`` for several."""
        out = self.values(points)
        return out[:, 0] if out.shape[1] == 1 else out

    def derivatives(self, points: Tensor) -> Derivatives:
        """:class:`Derivatives` of the outputs at ``points`` (a fresh leaf that requires grad)."""
        points = points.detach().to(self.dtype).requires_grad_(True)
        return Derivatives(self.values(points), points, self.problem.domain.names, self.problem.outputs,
                           dict(self.coefficients.items()))

    def _equations(self, points: Tensor) -> list[Tensor]:
        """The PDE residual at ``(n, dim)`` points: one ``(n,)`` vector per equation."""
        d = self.derivatives(points)
        r = self.problem.residual(d.points, d)
        rs = [q.reshape(-1) for q in r] if isinstance(r, (tuple, list)) else [r] if r.dim() == 1 else list(r.unbind(1))
        lengths = [q.numel() for q in rs]
        if any(n != points.shape[0] for n in lengths):
            raise ValueError(f"residual of problem {self.problem.name!r} must give one value per point and equation "
                             f"({points.shape[0]} points), got components of lengths {lengths}")
        return rs

    def residual(self, points: Tensor) -> Tensor:
        """The PDE residual at ``(n, dim)`` points: ``(n,)``, or ``(n, equations)`` for a system."""
        r = self._equations(self._check_points(points, "points"))
        return r[0] if len(r) == 1 else torch.stack(r, 1)

    # ------------------------------------------------------------------ the contract
    def _check_points(self, points: Any, name: str, pairs: bool = False) -> Tensor:
        dim = self.problem.domain.dim
        if not isinstance(points, Tensor):
            raise TypeError(f"{name} must be a tensor, got {type(points).__name__}")
        tail = (2, dim) if pairs else (dim,)
        if points.dim() < len(tail) or tuple(points.shape[-len(tail):]) != tail:
            want = "(..., 2, dim)" if pairs else "(..., dim)"
            raise ValueError(f"{name} must have shape {want} with dim={dim}, got {tuple(points.shape)}")
        return points.reshape(-1, *tail)

    def residuals(self, batch: dict[str, Tensor], causal: bool = True) -> dict[str, list[Tensor]]:
        """Per term, the vectors whose mean squares add up to it (Raissi et al. 2019, eq. 4–6);
        with ``causal`` (and ``self.causal`` set) the PDE residual carries the causal weights."""
        if not isinstance(batch, dict) or "interior" not in batch:
            raise ValueError(f"a PINN batch is a dict with at least 'interior' points (a Collocation item), "
                             f"got {type(batch).__name__}")
        p = self.problem
        points = self._check_points(batch["interior"], "batch['interior']")
        rs = self._equations(points)  # MSE_f, eq. 5
        out = {"residual": [self._causal(points, r)[0] for r in rs] if causal and self.causal is not None else rs}
        if "boundary" in self._own_terms:
            if p.boundary == "periodic":
                pairs = self._check_points(batch.get("periodic"), "batch['periodic']", pairs=True)
                out["boundary"] = self._periodic(pairs)
            else:
                pts = self._check_points(batch.get("boundary"), "batch['boundary']").to(self.dtype)
                out["boundary"] = [self.u(pts) - p.boundary(pts)]  # MSE_u, eq. 4
        if "initial" in self._own_terms:
            pts = self._check_points(batch.get("initial"), "batch['initial']")
            if p.initial_rate is None:
                pts = pts.to(self.dtype)
                out["initial"] = [self.u(pts) - p.initial(pts)]
            else:
                d = self.derivatives(pts)
                out["initial"] = [d.u - p.initial(d.points), d["t"] - p.initial_rate(d.points)]
        out.update(self.condition_residuals(batch))
        return out

    def condition_residuals(self, batch: dict[str, Tensor]) -> dict[str, list[Tensor]]:
        """Per condition of the problem, the vectors whose mean squares make up its term."""
        out = {}
        for c in self.problem.conditions:
            if c.name not in batch:
                raise ValueError(f"batch has no points for condition {c.name!r}; build it with solver.collocation")
            own = {c.name: self._check_points(batch[c.name], f"batch[{c.name!r}]", pairs=c.kind == "periodic")}
            for key in (f"{c.name}.normal", f"{c.name}.values"):  # (sets, n, k) from the Trainer: (n, k)
                if key in batch:
                    own[key] = batch[key].reshape(-1, batch[key].shape[-1])
            out[c.name] = c.residuals(self, own)
        return out

    def _causal(self, points: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
        """The residual ``r`` at interior ``points`` rescaled by the causal weights, and the weights."""
        t0, t1 = self.problem.domain.time
        return causal_residual(r, points[:, -1], t0, t1, self.causal, self.causal_chunks)

    def causal_weights(self, points: Tensor) -> Tensor:
        """The causal weight w_i of each time chunk at these interior points, ``(causal_chunks,)``."""
        if self.causal is None:
            raise ValueError("causal_weights needs a solver built with causal=ε")
        points = self._check_points(points, "points")
        with torch.enable_grad():
            r = self.residual(points).detach()
        return self._causal(points, r)[1]

    def loss_terms(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The unweighted loss terms on one batch of point sets (Raissi et al. 2019, eq. 4–6)."""
        return {k: sum(r.pow(2).mean() for r in rs) for k, rs in self.residuals(batch).items()}

    def _periodic(self, pairs: Tensor) -> list[Tensor]:
        lo, hi = pairs[:, 0], pairs[:, 1]
        if not self.problem.periodic_derivatives:
            return [self.u(lo.to(self.dtype)) - self.u(hi.to(self.dtype))]
        dlo, dhi = self.derivatives(lo), self.derivatives(hi)
        normal = (hi != lo)[:, : self.problem.domain.space_dim].to(self.dtype)  # which face each pair is on
        grad_gap = ((dlo.grad - dhi.grad)[:, : self.problem.domain.space_dim] * normal).sum(1)
        return [dlo.u - dhi.u, grad_gap]

    def sampled_loss(self, batch: dict[str, Tensor], generator: torch.Generator) -> Tensor:
        """Sophia-G's sampled loss (see :meth:`sciml.Solver.sampled_loss`): Σ ⟨r, s⟩, s ~ N(0, 2w/n·I).

        Every term w·mean(r²) of the loss is the negative log-likelihood of zero "labels" under a
        Gaussian around the residuals r (n of them), whose Fisher matrix in r is 2w/n·I; the
        draws s make E[ĝĝᵀ] = Σ (2w/n) JᵀJ, the Gauss–Newton matrix of the loss.
        """
        total = 0.0
        for k, rs in self.residuals(batch).items():
            for r in rs:
                xi = torch.randn(r.shape, generator=generator, dtype=r.dtype).to(r.device)
                total = total + (r * xi).sum() * math.sqrt(2.0 * self.weights[k] / r.numel())
        return total

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        terms = self.loss_terms(batch)
        return sum(self.weights[k] * v for k, v in terms.items())

    def evaluate(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The loss, its terms and (with a reference) the relative L2 error on the reference.

        With causal training these are the plain (unweighted) loss and terms, comparable across
        runs and a fair pick for the best checkpoint (the weighted loss is smallest while the
        weights still hide the later times); the weighted objective is ``causal_loss``."""
        with torch.enable_grad():  # the Trainer evaluates under no_grad; residuals need autograd
            residuals = {k: [r.detach() for r in rs] for k, rs in self.residuals(batch, causal=False).items()}
        terms = {k: sum(r.pow(2).mean() for r in rs) for k, rs in residuals.items()}
        metrics = {"loss": sum(self.weights[k] * v for k, v in terms.items()), **terms}
        if self.causal is not None:
            points = self._check_points(batch["interior"], "batch['interior']")
            weighted = [self._causal(points, r) for r in residuals["residual"]]
            metrics["causal_loss"] = metrics["loss"] + self.weights["residual"] * (
                sum(r.pow(2).mean() for r, _ in weighted) - terms["residual"])
            metrics["causal_weight"] = min(w.min() for _, w in weighted)
        for name, value in self.coefficients.items():
            metrics[f"param.{name}"] = value.detach()
        if getattr(self, "ref_points", None) is not None:
            metrics["rel_l2"] = torch.tensor(self.relative_error())
        return metrics

    @torch.no_grad()
    def sample(self, points: Tensor, batch_size: int | None = 65536) -> Tensor:
        """The solution u at ``points`` of shape ``(..., dim)``, returned with shape ``(...)``, or
        ``(..., outputs)`` for several outputs."""
        if not isinstance(points, Tensor):
            raise TypeError(f"points must be a tensor, got {type(points).__name__}")
        if points.device != self.device:
            raise ValueError(f"points are on {points.device} but the solver is on {self.device}; move one of them")
        shape = points.shape[:-1]
        flat = self._check_points(points, "points").to(self.dtype)
        if batch_size is not None:
            positive_int("batch_size", batch_size)
        chunks = flat.split(batch_size) if batch_size else (flat,)
        out = torch.cat([self.values(c) for c in chunks])
        return out.reshape(shape) if out.shape[1] == 1 else out.reshape(*shape, out.shape[1])

    def relative_error(self, points: Tensor | None = None, components: Sequence[str] | None = None) -> float:
        """‖u − u_ref‖₂ / ‖u_ref‖₂ (in float64) over the outputs named in ``components`` (default all).

        The reference: the problem's ``solution`` at ``points`` if given; else the problem's
        ``reference``, or its ``solution`` at 4096 Sobol' points of the domain drawn at construction."""
        p = self.problem
        if points is not None:
            if p.solution is None:
                raise ValueError(f"points need problem.solution to compare with; {p.name!r} has none")
            points = self._check_points(points, "points").to(torch.float64)
            ref = p.solution(points).to(torch.float64).reshape(points.shape[0], -1)
        elif getattr(self, "ref_points", None) is not None:
            points, ref = self.ref_points, self.ref_values
        else:
            raise ValueError(f"problem {p.name!r} has no reference solution (give it solution or reference)")
        names = tuple(components) if components is not None else p.outputs
        if isinstance(components, str) or set(names) - set(p.outputs) or not names:
            raise ValueError(f"components must be a list of output names from {p.outputs}, got {components!r}")
        cols = [p.outputs.index(c) for c in names]
        pred = self.sample(points.to(self.device)).double().cpu().reshape(points.shape[0], -1)[:, cols]
        ref = ref.cpu()[:, cols]
        return float(torch.linalg.vector_norm(pred - ref) / torch.linalg.vector_norm(ref))

    # ------------------------------------------------------------------ collocation
    def collocation(self, n_interior: int, n_boundary: int | None = None, n_initial: int | None = None, *,
                    sampler: str = "sobol", sets: int = 1, seed: int = 0) -> Collocation:
        """Point sets for training, as a :class:`Collocation` Dataset.

        Parameters
        ----------
        n_interior : residual points per set.
        n_boundary : boundary points (or periodic pairs) per set; needed where the problem has
            a boundary term that is not hard-constrained (default ``max(n_interior // 20, 1)``).
        n_initial : initial-slice points per set; likewise (default ``max(n_interior // 20, 1)``).
        sampler : ``"uniform"``, ``"lhs"`` or ``"sobol"``.
        sets : number of independent sets (``sets > 1``: fresh points at every step).
        seed : all sets follow from it.
        """
        positive_int("n_interior", n_interior)
        positive_int("sets", sets)
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        n_b = positive_int("n_boundary", n_boundary) if n_boundary is not None else max(n_interior // 20, 1)
        n_0 = positive_int("n_initial", n_initial) if n_initial is not None else max(n_interior // 20, 1)
        dom, out = self.problem.domain, []
        for s in range(sets):
            base = seed * 1_000_003 + 4 * s  # distinct streams per set and region
            item = {"interior": dom.interior(n_interior, sampler, base)}
            if "boundary" in self._own_terms:
                key = "periodic" if self.problem.boundary == "periodic" else "boundary"
                draw = dom.periodic_pairs if key == "periodic" else dom.boundary
                item[key] = draw(n_b, sampler, base + 1)
            if "initial" in self._own_terms:
                item["initial"] = dom.initial(n_0, sampler, base + 2)
            for j, c in enumerate(self.problem.conditions):
                if c.name in self.terms:
                    n = c.points or (n_0 if c.kind == "initial" else n_b)
                    item.update(c.sample(dom, n, sampler, seed * 1_000_003 + 500_000 + 64 * s + j))
            out.append(item)
        return Collocation(out)

    def refine(self, data: Collocation, n_add: int, *, method: str = "rar-d", candidates: int | None = None,
               k: float = 1.0, c: float = 1.0, sampler: str = "sobol", seed: int = 0) -> Collocation:
        """Residual-based adaptive refinement: a new Collocation with ``n_add`` more interior
        points in every set.

        ``method="rar"`` (Lu et al. 2021, §2.8) adds the ``n_add`` candidates with the largest
        |residual|; ``"rar-d"`` (Wu et al. 2023, eq. 2) draws them without replacement with
        probability p ∝ |r|^k / mean(|r|^k) + c. Candidates: ``candidates`` points (default
        ``10 * n_add``) from ``sampler`` with ``seed``.
        """
        if not isinstance(data, Collocation):
            raise TypeError(f"data must be a Collocation, got {type(data).__name__}")
        positive_int("n_add", n_add)
        if method not in REFINEMENTS:
            raise ValueError(f"method must be one of {REFINEMENTS}, got {method!r}")
        m = positive_int("candidates", candidates) if candidates is not None else 10 * n_add
        if m < n_add:
            raise ValueError(f"candidates must be at least n_add={n_add}, got {m}")
        if not (k >= 0 and c >= 0 and math.isfinite(k) and math.isfinite(c)):
            raise ValueError(f"k and c must be finite and non-negative, got k={k!r}, c={c!r}")
        pool = self.problem.domain.interior(m, sampler, seed)
        with torch.enable_grad():
            r = torch.cat([self.residual(chunk.to(self.device)).detach().double().cpu().reshape(chunk.shape[0], -1)
                           .norm(dim=1) for chunk in pool.split(8192)])
        if method == "rar":
            chosen = torch.topk(r, n_add).indices
        else:
            density = r.pow(k) / r.pow(k).mean().clamp_min(1e-300) + c  # Wu et al. 2023, eq. 2
            chosen = torch.multinomial(density, n_add, replacement=False,
                                       generator=torch.Generator().manual_seed(seed))
        new = pool[chosen]
        return Collocation([{**s, "interior": torch.cat([s["interior"], new.to(s["interior"].dtype)])}
                            for s in data.sets])
