"""Conditions of a PINN problem, each on its own part of the domain, with its own weight and loss term.

The loss of Raissi, Perdikaris & Karniadakis 2019 (J. Comput. Phys. 378, eq. 4–6) is a sum of mean
squared residuals, one per kind of data; here every condition is one such term, named, weighted and
reported on its own by :meth:`~sciml.solvers.pinn.PINNSolver.evaluate`:

============================  ==================================================  ===============
condition                     residual at its points                              points
============================  ==================================================  ===============
:class:`Dirichlet` (g)        u − g                                               boundary part
:class:`Neumann` (g)          ∂u/∂n − g  (n the outward normal; ∇u by autograd)   boundary part
:class:`Robin` (α, β, g)      α·u + β·∂u/∂n − g                                   boundary part
:class:`Periodic` (axis)      u(lo) − u(hi)  [and ∂u/∂x_axis(lo) − ∂u/∂x_axis(hi)]  paired faces
:class:`Initial` (g)          u(x, t0) − g                                        t = t0
:class:`InitialRate` (g)      ∂u/∂t(x, t0) − g                                    t = t0
:class:`Observations` (data)  u(x_i) − u_i  (values may be noisy)                 the data points
============================  ==================================================  ===============

A value g is a number or a function of the ``(n, dim)`` points (time included) returning ``(n,)``,
or ``(n, k)`` for a condition on k outputs. ``component`` names the output(s) a condition acts
on (None: all outputs). ``on`` is the boundary part: None (all of it), the name of a part of the
domain (``Domain(..., parts={...})``, and for a box its faces ``"x_min"``, ``"x_max"``, ...), or
a predicate ``points -> bool``.
"""
from __future__ import annotations

import math
import numbers
from typing import Callable, Sequence, Union

import torch
from torch import Tensor

from sciml.validation import positive_int

__all__ = ["Condition", "Dirichlet", "Neumann", "Robin", "Periodic", "Initial", "InitialRate", "Observations"]

Value = Union[float, Callable[[Tensor], Tensor]]


def _value(name: str, v: Value) -> Value:
    if callable(v):
        return v
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
        raise TypeError(f"{name} must be a finite number or a function of the points, got {v!r}")
    return float(v)


def _evaluate(v: Value, points: Tensor, k: int, label: str) -> Tensor:
    """``v`` at ``points`` as ``(n, k)``; ``label`` names it in errors (condition and argument)."""
    n = points.shape[0]
    if not callable(v):
        return torch.full((n, k), v, dtype=points.dtype, device=points.device)
    out = v(points)
    if not isinstance(out, Tensor) or out.shape[:1] != (n,) or out.numel() != n * k:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        want = f"({n},)" + (f" or ({n}, {k})" if k > 1 else "")
        raise ValueError(f"{label} must return a tensor of shape {want} at {n} points, got {shape}")
    return out.reshape(n, k)


class Condition:
    """One loss term: a residual on points of its own. Subclasses set ``kind`` (how the points are
    drawn: ``"boundary"``, ``"initial"``, ``"periodic"`` or ``"data"``) and define :meth:`residuals`.

    Parameters
    ----------
    on : the boundary part (None, a part name, or a predicate on ``(n, dim)`` points).
    component : output name, names, or None for all outputs.
    weight : the term's weight in the loss.
    name : the term's name in the loss and in ``evaluate`` (default: the class name in lower case).
    points : points per set for this condition (default: the solver's ``n_boundary``/``n_initial``).
    """

    kind = "boundary"

    def __init__(self, *, on: str | Callable[[Tensor], Tensor] | None = None,
                 component: str | Sequence[str] | None = None, weight: float = 1.0, name: str | None = None,
                 points: int | None = None):
        if on is not None and not isinstance(on, str) and not callable(on):
            raise TypeError(f"on must be None, a part name or a predicate on points, got {type(on).__name__}")
        if on is not None and self.kind != "boundary":
            raise ValueError(f"on selects a part of the boundary; {type(self).__name__} has its own points "
                             f"({self.kind}) and takes no on=, got {on!r}")
        if isinstance(weight, bool) or not isinstance(weight, numbers.Real) or not (0 <= weight < math.inf):
            raise ValueError(f"weight must be a finite non-negative number, got {weight!r}")
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise ValueError(f"name must be a non-empty string without '.', got {name!r}")
        if component is not None and not isinstance(component, str) and \
                not (isinstance(component, (tuple, list)) and component and all(isinstance(c, str) for c in component)):
            raise TypeError(f"component must be None, an output name or a list of them, got {component!r}")
        self.on, self.weight = on, float(weight)
        self.component = (component,) if isinstance(component, str) else (tuple(component) if component else None)
        self.name = name or type(self).__name__.lower()
        self.points = positive_int("points", points) if points is not None else None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, on={self.on!r}, component={self.component}, "
                f"weight={self.weight})")

    def sample(self, domain, n: int, sampler: str, seed: int) -> dict[str, Tensor]:
        """This condition's entries of a collocation set: its points (and normals) under its name."""
        if self.kind == "initial":
            return {self.name: domain.initial(n, sampler, seed)}
        points, normals = domain.boundary_normals(n, sampler, seed, part=self.on)
        return {self.name: points, f"{self.name}.normal": normals}

    def residuals(self, solver, batch: dict[str, Tensor]) -> list[Tensor]:
        """The vectors whose mean squares make up this term, one per output it acts on."""
        raise NotImplementedError

    # helpers for subclasses
    def _columns(self, solver) -> list[int]:
        names = self.component or solver.problem.outputs
        return [solver.problem.outputs.index(c) for c in names]

    def _normal_derivative(self, solver, batch: dict[str, Tensor]):
        d = solver.derivatives(batch[self.name])
        normals = batch[f"{self.name}.normal"].to(d.points.dtype)
        space = normals.shape[1]
        return d, torch.stack([(d.gradient(k)[:, :space] * normals).sum(1) for k in self._columns(solver)], 1)


class Dirichlet(Condition):
    """u = g on a boundary part."""

    def __init__(self, value: Value, **options):
        super().__init__(**options)
        self.value = _value("value", value)

    def sample(self, domain, n, sampler, seed):
        return {self.name: domain.boundary_normals(n, sampler, seed, part=self.on)[0]}

    def residuals(self, solver, batch):
        p = batch[self.name].to(solver.dtype)
        cols = self._columns(solver)
        r = solver.values(p)[:, cols] - _evaluate(self.value, p, len(cols), f"condition {self.name!r}: value")
        return list(r.unbind(1))


class Neumann(Condition):
    """∂u/∂n = g on a boundary part, n the outward unit normal of the geometry."""

    def __init__(self, value: Value, **options):
        super().__init__(**options)
        self.value = _value("value", value)

    def residuals(self, solver, batch):
        d, dudn = self._normal_derivative(solver, batch)
        value = _evaluate(self.value, d.points, dudn.shape[1], f"condition {self.name!r}: value")
        return list((dudn - value).unbind(1))


class Robin(Condition):
    """α·u + β·∂u/∂n = g on a boundary part (α, β, g numbers or functions of the points)."""

    def __init__(self, alpha: Value, beta: Value, value: Value, **options):
        super().__init__(**options)
        self.alpha, self.beta, self.value = _value("alpha", alpha), _value("beta", beta), _value("value", value)

    def residuals(self, solver, batch):
        d, dudn = self._normal_derivative(solver, batch)
        k = dudn.shape[1]
        u = d.values[:, self._columns(solver)]
        label = f"condition {self.name!r}: "
        alpha = _evaluate(self.alpha, d.points, 1, label + "alpha")
        beta = _evaluate(self.beta, d.points, 1, label + "beta")
        r = alpha * u + beta * dudn - _evaluate(self.value, d.points, k, label + "value")
        return list(r.unbind(1))


class Periodic(Condition):
    """u(…, lo, …) = u(…, hi, …) across the two faces of a box domain normal to ``axis`` (a coordinate
    name), and with ``derivatives=True`` ∂u/∂x_axis too (second-order operators need it). Box domains
    only: on other shapes the faces' points would lie outside the domain."""

    kind = "periodic"

    def __init__(self, axis: str, derivatives: bool = False, **options):
        super().__init__(**options)
        if not isinstance(axis, str):
            raise TypeError(f"axis must be a coordinate name such as 'x', got {axis!r}")
        self.axis, self.derivatives = axis, bool(derivatives)

    def sample(self, domain, n, sampler, seed):
        return {self.name: domain.periodic_pairs(n, sampler, seed, axis=self.axis)}

    def residuals(self, solver, batch):
        pairs = batch[self.name]
        cols = self._columns(solver)
        if not self.derivatives:
            lo, hi = solver.values(pairs[:, 0].to(solver.dtype)), solver.values(pairs[:, 1].to(solver.dtype))
            return list((lo - hi)[:, cols].unbind(1))
        dlo, dhi = solver.derivatives(pairs[:, 0]), solver.derivatives(pairs[:, 1])
        i = solver.problem.domain.names.index(self.axis)
        out = [dlo.values[:, k] - dhi.values[:, k] for k in cols]
        return out + [dlo.gradient(k)[:, i] - dhi.gradient(k)[:, i] for k in cols]


class Initial(Condition):
    """u(x, t0) = g."""

    kind = "initial"

    def __init__(self, value: Value, **options):
        super().__init__(**options)
        self.value = _value("value", value)

    def residuals(self, solver, batch):
        p = batch[self.name].to(solver.dtype)
        cols = self._columns(solver)
        value = _evaluate(self.value, p, len(cols), f"condition {self.name!r}: value")
        return list((solver.values(p)[:, cols] - value).unbind(1))


class InitialRate(Condition):
    """∂u/∂t(x, t0) = g (second order in time)."""

    kind = "initial"

    def __init__(self, value: Value, **options):
        super().__init__(**options)
        self.value = _value("value", value)

    def residuals(self, solver, batch):
        d = solver.derivatives(batch[self.name])
        cols = self._columns(solver)
        rate = torch.stack([d.gradient(k)[:, -1] for k in cols], 1)
        value = _evaluate(self.value, d.points, len(cols), f"condition {self.name!r}: value")
        return list((rate - value).unbind(1))


class Observations(Condition):
    """u(x_i) = u_i at given points: data, possibly noisy, for inverse problems or to guide a fit.

    Parameters
    ----------
    points : ``(m, dim)`` points (time included).
    values : ``(m,)`` or, for k outputs, ``(m, k)``.
    """

    kind = "data"

    def __init__(self, points: Tensor, values: Tensor, **options):
        super().__init__(**options)
        if not isinstance(points, Tensor) or not isinstance(values, Tensor):
            raise TypeError(f"points and values must be tensors, got {type(points).__name__} and "
                            f"{type(values).__name__}")
        if points.dim() != 2 or values.shape[:1] != points.shape[:1] or values.dim() > 2 or points.shape[0] == 0:
            raise ValueError(f"points must be (m, dim) and values (m,) or (m, k) with m > 0, "
                             f"got {tuple(points.shape)} and {tuple(values.shape)}")
        self.data_points = points.detach().to(torch.float64)
        self.values = values.detach().to(torch.float64).reshape(points.shape[0], -1)

    def sample(self, domain, n, sampler, seed):
        return {self.name: self.data_points, f"{self.name}.values": self.values}

    def residuals(self, solver, batch):
        p = batch[self.name].to(solver.dtype)
        values = batch[f"{self.name}.values"].to(solver.dtype)  # shapes checked by PDEProblem
        return list((solver.values(p)[:, self._columns(solver)] - values).unbind(1))
