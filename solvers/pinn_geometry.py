"""Geometries for PINN domains: boxes, balls, polygons, and their unions, differences and intersections.

Constructive solid geometry as in DeepXDE (Lu, Meng, Mao & Karniadakis 2021, "DeepXDE: A deep
learning library for solving differential equations", SIAM Review 63, §3.1): a domain is built
from primitives with ``|`` (union), ``-`` (difference) and ``&`` (intersection). Each geometry

- tests membership through a signed distance s(x) (negative inside), exact for the primitives; for
  combinations the min/max bound of Ricci 1973, "A constructive geometry for computer graphics"
  (Comput. J. 16): s_{A∪B} = min(s_A, s_B), s_{A∩B} = max(s_A, s_B), s_{A−B} = max(s_A, −s_B),
  which has the right sign and the right zero set (the boundary), though not the exact distance;
- samples its interior uniformly by rejection from its bounding box (a ball maps the unit cube
  onto itself directly, so high dimensions work), and its boundary uniformly in surface measure:
  a primitive parametrises its surface, a combination draws from the boundaries of its two parts
  in proportion to their measure and keeps the pieces that bound the result (for A − B, ∂A outside
  B and ∂B inside A, whose normals turn round); a piece both parts share is kept once, from A, where
  it bounds the result (same outward normals for ∪ and ∩, opposite ones for −);
- gives the outward unit normal at boundary points: closed forms on the primitives, the normal of
  the nearer part's boundary (|s| smallest) on a combination.

Point sets come from the unit cube by ``"uniform"`` draws, a Latin hypercube or a scrambled Sobol'
sequence (:func:`unit_samples`, ``scipy.stats.qmc``), each reproducible from its seed.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import Tensor

from sciml.validation import nonnegative_int, positive_int

__all__ = ["Geometry", "Box", "Ball", "Polygon", "Union", "Difference", "Intersection", "unit_samples", "SAMPLERS"]

SAMPLERS = ("uniform", "lhs", "sobol")
_MC_POINTS = 1 << 16  # Monte Carlo points behind the measures of combined shapes (error ~ 0.4%)
_MAX_CANDIDATES = 1 << 22  # rejection gives up beyond this many candidates (a shape of measure ~ 0)


def unit_samples(n: int, dim: int, sampler: str = "sobol", seed: int = 0) -> Tensor:
    """``n`` points in the unit cube [0, 1)^dim, float64, reproducible from ``seed``.

    ``"uniform"``: independent uniform draws; ``"lhs"``: Latin hypercube; ``"sobol"``:
    scrambled Sobol' sequence (best balanced when ``n`` is a power of two). Uniform and Sobol'
    sets of one seed are prefixes of each other: the first m of n > m points are the m points.
    """
    positive_int("n", n)
    positive_int("dim", dim)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "uniform":
        return torch.rand(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    from scipy.stats import qmc

    if sampler == "lhs":
        return torch.from_numpy(qmc.LatinHypercube(d=dim, seed=seed).random(n))
    with warnings.catch_warnings():  # a Sobol' set of any size is still a good point set
        warnings.filterwarnings("ignore", message="The balance properties of Sobol")
        return torch.from_numpy(qmc.Sobol(d=dim, scramble=True, seed=seed).random(n))


def box_faces(u: Tensor, lower: Tensor, upper: Tensor, space_dim: int) -> tuple[Tensor, Tensor]:
    """Points on the faces of the box [lower, upper] from unit samples ``u`` of ``lower.numel() + 1``
    columns: column 0 picks a face normal to one of the first ``space_dim`` axes (by face measure),
    the last its side, the others place the point on it (extra axes, such as time, run along).
    Returns the points and the face index (axis) of each."""
    n, dim = u.shape[0], lower.numel()
    length = (upper - lower)[:space_dim]
    measure = torch.stack([length.prod() / length[i] for i in range(space_dim)])
    edges = torch.cumsum(measure / measure.sum(), 0)
    face = torch.searchsorted(edges, u[:, 0].contiguous(), right=True).clamp_max(space_dim - 1)
    rest, side = u[:, 1:-1], u[:, -1] >= 0.5
    full = torch.zeros(n, dim, dtype=torch.float64)
    for i in range(space_dim):  # a loop over axes, not points
        rows = (face == i).nonzero(as_tuple=True)[0]
        others = torch.tensor([j for j in range(dim) if j != i], dtype=torch.long)
        full[rows[:, None], others] = rest[rows]
    points = lower + (upper - lower) * full
    for i in range(space_dim):  # the face coordinate set exactly: lo + (hi − lo)·1 may round
        rows = face == i
        points[rows, i] = torch.where(side[rows], upper[i], lower[i])
    return points, face


def _as_points(x: Tensor, dim: int, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}), got {tuple(x.shape)}")
    return x


class Geometry:
    """A closed region of R^dim. Subclasses define ``sdf``, ``normal`` and ``_surface``; primitives
    also ``volume`` and ``boundary_measure``."""

    dim: int
    lower: Tensor  # bounding box, float64
    upper: Tensor

    # ---------------------------------------------------------------- what a shape defines
    def sdf(self, x: Tensor) -> Tensor:
        """Signed distance (a bound for combinations) at ``(n, dim)`` points: < 0 inside, 0 on the boundary."""
        raise NotImplementedError

    def normal(self, x: Tensor) -> Tensor:
        """``(n, dim)`` outward unit normals at boundary points ``x``."""
        raise NotImplementedError

    def _surface(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Boundary points and normals from unit samples of ``surface_columns`` columns, uniform in
        surface measure."""
        raise NotImplementedError

    @property
    def surface_columns(self) -> int:
        return self.dim

    @property
    def diameter(self) -> float:
        return float((self.upper - self.lower).norm())

    def _tol(self) -> float:
        return 1e-9 * self.diameter  # rounding of a point placed on a boundary, in length units

    # ---------------------------------------------------------------- derived
    def inside(self, x: Tensor, tol: float | None = None) -> Tensor:
        """Boolean ``(n,)``: whether each point lies in the closed region (within ``tol``)."""
        x = _as_points(x, self.dim)
        return self.sdf(x.to(torch.float64)) <= (self._tol() if tol is None else tol)

    def on_boundary(self, x: Tensor, tol: float | None = None) -> Tensor:
        """Boolean ``(n,)``: whether each point lies on the boundary (within ``tol``)."""
        x = _as_points(x, self.dim)
        return self.sdf(x.to(torch.float64)).abs() <= (self._tol() if tol is None else tol)

    @property
    def volume(self) -> float:
        """Volume (area in 2-D, length in 1-D); Monte Carlo on 2^16 Sobol' points for combinations."""
        if not hasattr(self, "_volume"):
            box = (self.upper - self.lower)
            u = unit_samples(_MC_POINTS, self.dim, "sobol", seed=12345)
            self._volume = float(box.prod()) * float(self.inside(self.lower + box * u).double().mean())
        return self._volume

    @property
    def boundary_measure(self) -> float:
        """Boundary measure (perimeter in 2-D); estimated by the kept fraction for combinations."""
        raise NotImplementedError

    def interior(self, n: int, sampler: str = "sobol", seed: int = 0, extra: int = 0) -> Tensor:
        """``(n, dim + extra)``: points uniform in the region by rejection from the bounding box, then
        ``extra`` unit coordinates drawn jointly with them (for time, say)."""
        positive_int("n", n)
        nonnegative_int("extra", extra)
        box = self.upper - self.lower
        m = max(64, math.ceil(1.3 * n * float(box.prod()) / max(self.volume, 1e-300)))
        while m <= max(_MAX_CANDIDATES, 4 * n):
            u = unit_samples(m, self.dim + extra, sampler, seed)
            x = self.lower + box * u[:, : self.dim]
            keep = self.sdf(x) < 0
            if int(keep.sum()) >= n:  # the first n accepted, in sequence order (a Sobol' prefix stays balanced)
                return torch.cat([x, u[:, self.dim:]], 1)[keep][:n]
            m *= 2
        raise ValueError(f"could not place {n} interior points in {self!r}: its volume looks like zero")

    def boundary(self, n: int, sampler: str = "sobol", seed: int = 0, extra: int = 0) -> tuple[Tensor, Tensor]:
        """``(points (n, dim + extra), normals (n, dim))`` uniform on the boundary in surface measure;
        the ``extra`` unit coordinates are drawn jointly with the points."""
        positive_int("n", n)
        nonnegative_int("extra", extra)
        k = self.surface_columns
        u = unit_samples(n, k + extra, sampler, seed)
        x, nrm = self._surface(u[:, :k])
        return torch.cat([x, u[:, k:]], 1), nrm

    def __or__(self, other: Geometry) -> Geometry:
        return Union(self, other)

    def __and__(self, other: Geometry) -> Geometry:
        return Intersection(self, other)

    def __sub__(self, other: Geometry) -> Geometry:
        return Difference(self, other)


class Box(Geometry):
    """The axis-aligned box [lower, upper] (a rectangle in 2-D, an interval in 1-D)."""

    def __init__(self, lower: Sequence[float], upper: Sequence[float]):
        lo = torch.as_tensor(lower, dtype=torch.float64).flatten()
        hi = torch.as_tensor(upper, dtype=torch.float64).flatten()
        if lo.numel() == 0 or lo.shape != hi.shape or not bool((lo < hi).all()) \
                or not bool(torch.isfinite(hi - lo).all()):
            raise ValueError(f"lower and upper must be finite corners of equal length with lower < upper, "
                             f"got {list(lower)!r} and {list(upper)!r}")
        self.lower, self.upper, self.dim = lo, hi, lo.numel()

    def __repr__(self) -> str:
        return f"Box({self.lower.tolist()}, {self.upper.tolist()})"

    def sdf(self, x: Tensor) -> Tensor:
        c, h = (self.upper + self.lower) / 2, (self.upper - self.lower) / 2
        q = (x - c.to(x)).abs() - h.to(x)
        return q.clamp_min(0).norm(dim=1) + q.max(dim=1).values.clamp_max(0)

    def normal(self, x: Tensor) -> Tensor:
        x = _as_points(x, self.dim)
        lo, hi = self.lower.to(x), self.upper.to(x)
        gaps = torch.cat([(x - lo).abs(), (hi - x).abs()], 1)  # distance to each face
        face = gaps.argmin(1)
        out = torch.zeros_like(x)
        out[torch.arange(x.shape[0]), face % self.dim] = torch.where(face < self.dim, -1.0, 1.0).to(x)
        return out

    @property
    def volume(self) -> float:
        return float((self.upper - self.lower).prod())

    @property
    def boundary_measure(self) -> float:
        length = self.upper - self.lower
        return 2.0 if self.dim == 1 else float(2 * sum(length.prod() / length[i] for i in range(self.dim)))

    def _surface(self, u: Tensor) -> tuple[Tensor, Tensor]:
        x, face = box_faces(u, self.lower, self.upper, self.dim)
        nrm = torch.zeros_like(x)
        nrm[torch.arange(x.shape[0]), face] = torch.where(u[:, -1] >= 0.5, 1.0, -1.0).to(x)
        return x, nrm

    surface_columns = property(lambda self: self.dim + 1)  # face, position on it, side

    def face(self, axis: int, side: str):
        """A predicate ``points -> bool`` for the face x_axis = lower (``"min"``) or upper (``"max"``)."""
        if side not in ("min", "max"):
            raise ValueError(f"side must be 'min' or 'max', got {side!r}")
        value = float((self.lower if side == "min" else self.upper)[axis])
        tol = self._tol()
        return lambda p: (p[:, axis] - value).abs() <= tol


class Ball(Geometry):
    """The closed ball |x − center| ≤ radius (a disk in 2-D). Interior points map the unit cube onto
    the ball (Gaussian direction by the inverse normal CDF, radius r·v^{1/dim}), so any dimension works."""

    def __init__(self, center: Sequence[float], radius: float):
        c = torch.as_tensor(center, dtype=torch.float64).flatten()
        if c.numel() == 0 or not bool(torch.isfinite(c).all()):
            raise ValueError(f"center must be a non-empty list of finite coordinates, got {center!r}")
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (0 < radius < math.inf):
            raise ValueError(f"radius must be a positive finite number, got {radius!r}")
        self.center, self.radius, self.dim = c, float(radius), c.numel()
        self.lower, self.upper = c - self.radius, c + self.radius

    def __repr__(self) -> str:
        return f"Ball({self.center.tolist()}, {self.radius})"

    def sdf(self, x: Tensor) -> Tensor:
        return (x - self.center.to(x)).norm(dim=1) - self.radius

    def normal(self, x: Tensor) -> Tensor:
        r = _as_points(x, self.dim) - self.center.to(x)
        return r / r.norm(dim=1, keepdim=True)

    @property
    def volume(self) -> float:
        d = self.dim
        return math.pi ** (d / 2) / math.gamma(d / 2 + 1) * self.radius ** d

    @property
    def boundary_measure(self) -> float:
        return self.dim * self.volume / self.radius

    def _directions(self, u: Tensor) -> Tensor:
        if self.dim == 1:
            return torch.where(u[:, :1] < 0.5, -1.0, 1.0).to(u)
        if self.dim == 2:  # the angle itself: uniform, and a low-discrepancy set stays one
            angle = 2 * math.pi * u[:, 0]
            return torch.stack([torch.cos(angle), torch.sin(angle)], 1)
        g = math.sqrt(2.0) * torch.erfinv(2 * u.clamp(1e-15, 1 - 1e-15) - 1)  # standard normal, isotropic
        return g / g.norm(dim=1, keepdim=True)

    def _surface(self, u: Tensor) -> tuple[Tensor, Tensor]:
        nrm = self._directions(u)
        return self.center + self.radius * nrm, nrm

    def interior(self, n: int, sampler: str = "sobol", seed: int = 0, extra: int = 0) -> Tensor:
        positive_int("n", n)
        nonnegative_int("extra", extra)
        u = unit_samples(n, self.dim + 1 + extra, sampler, seed)
        radius = self.radius * u[:, self.dim].pow(1.0 / self.dim)  # P(|x| ≤ r) = (r/R)^dim
        return torch.cat([self.center + radius[:, None] * self._directions(u[:, : self.dim]), u[:, self.dim + 1:]], 1)


def _crossing_edges(a: Tensor, e: Tensor) -> tuple[int, int] | None:
    """The first pair (i, j) of edges a_i + s·e_i (s ∈ [0, 1]) of a closed polygon that meet other than
    neighbours at their shared vertex (touching and collinear overlap included), or None: the orientation
    test of segment intersection (Cormen et al., "Introduction to Algorithms", §33.1), all pairs at once."""
    n = a.shape[0]
    b = a + e
    eps = 1e-12 * float(e.norm(dim=1).max()) ** 2  # a cross product this small is zero (collinear)

    def orient(p, q, r):  # cross((q − p), (r − p)): > 0 when r lies left of p→q
        return (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])

    def on_segment(p, q, r):  # r, collinear with p and q, lies between them
        lo, hi = torch.minimum(p, q), torch.maximum(p, q)
        return ((r >= lo - 1e-12) & (r <= hi + 1e-12)).all(-1)

    p1, p2, q1, q2 = a[:, None], b[:, None], a[None], b[None]
    d1, d2, d3, d4 = orient(q1, q2, p1), orient(q1, q2, p2), orient(p1, p2, q1), orient(p1, p2, q2)
    meet = ((d1 * d2 < 0) & (d3 * d4 < 0)) \
        | ((d1.abs() <= eps) & on_segment(q1, q2, p1)) | ((d2.abs() <= eps) & on_segment(q1, q2, p2)) \
        | ((d3.abs() <= eps) & on_segment(p1, p2, q1)) | ((d4.abs() <= eps) & on_segment(p1, p2, q2))
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    gap = (j - i) % n
    meet &= (i < j) & (gap != 1) & (gap != n - 1)  # neighbours share a vertex by construction
    # neighbours folding back onto each other (a spike): collinear with opposite directions
    fold = (orient(torch.zeros_like(e), e, e.roll(-1, 0)).abs() <= eps) & ((e * e.roll(-1, 0)).sum(1) < 0)
    if bool(fold.any()):
        k = int(fold.nonzero()[0])
        return k, (k + 1) % n
    if bool(meet.any()):
        k = meet.nonzero()[0]
        return int(k[0]), int(k[1])
    return None


class Polygon(Geometry):
    """A simple polygon in 2-D from its vertices (either orientation; not closed by repeating the first).
    A self-intersecting one is refused: its inside test (even–odd) and its shoelace area disagree."""

    def __init__(self, vertices: Sequence[Sequence[float]]):
        v = torch.as_tensor(vertices, dtype=torch.float64)
        if v.dim() != 2 or v.shape[1] != 2 or v.shape[0] < 3 or not bool(torch.isfinite(v).all()):
            raise ValueError(f"vertices must be at least 3 finite points (x, y), got {vertices!r}")
        w = v.roll(-1, 0)
        area2 = float((v[:, 0] * w[:, 1] - w[:, 0] * v[:, 1]).sum())  # shoelace: 2 × signed area
        if abs(area2) < 1e-14:
            raise ValueError(f"vertices enclose no area (collinear?), got {vertices!r}")
        self.vertices = v if area2 > 0 else v.flip(0)  # counter-clockwise: outward is to the right
        self._area = abs(area2) / 2
        self.dim = 2
        self.lower, self.upper = v.min(0).values, v.max(0).values
        a, b = self.vertices, self.vertices.roll(-1, 0)
        self._a, self._edge = a, b - a
        self._length = self._edge.norm(dim=1)
        if bool((self._length == 0).any()):
            raise ValueError("vertices must not repeat consecutively (an edge of zero length)")
        self._outward = torch.stack([self._edge[:, 1], -self._edge[:, 0]], 1) / self._length[:, None]
        crossing = _crossing_edges(v, v.roll(-1, 0) - v)  # edge i runs from vertex i to i + 1, as given
        if crossing is not None:
            raise ValueError(f"vertices must form a simple polygon (no edge may meet another but its neighbours "
                             f"at their shared vertex), but edges {crossing[0]} and {crossing[1]} meet: {vertices!r}")

    def __repr__(self) -> str:
        return f"Polygon({self.vertices.tolist()})"

    def _edge_distance(self, x: Tensor) -> Tensor:
        """``(n, edges)`` distance from each point to each edge segment."""
        a, e = self._a.to(x), self._edge.to(x)
        rel = x[:, None, :] - a[None]
        s = ((rel * e).sum(-1) / (e * e).sum(-1)).clamp(0, 1)
        return (rel - s[..., None] * e).norm(dim=-1)

    def sdf(self, x: Tensor) -> Tensor:
        dist = self._edge_distance(x).min(1).values
        a, b = self._a.to(x), (self._a + self._edge).to(x)
        X, Y = x[:, :1], x[:, 1:]
        crosses = ((a[:, 1] > Y) != (b[:, 1] > Y)) & \
            (X < a[:, 0] + (Y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1]))  # even–odd ray test
        inside = crosses.sum(1) % 2 == 1
        return torch.where(inside, -dist, dist)

    def normal(self, x: Tensor) -> Tensor:
        edge = self._edge_distance(_as_points(x, 2)).argmin(1)
        return self._outward.to(x)[edge]

    @property
    def volume(self) -> float:
        return self._area

    @property
    def boundary_measure(self) -> float:
        return float(self._length.sum())

    def _surface(self, u: Tensor) -> tuple[Tensor, Tensor]:
        edges = torch.cumsum(self._length / self._length.sum(), 0)
        k = torch.searchsorted(edges, u[:, 0].contiguous(), right=True).clamp_max(len(self._length) - 1)
        return self._a[k] + u[:, 1:2] * self._edge[k], self._outward[k]


class _Combination(Geometry):
    """Two geometries combined; ``_keep`` says which boundary points of each part bound the result."""

    symbol = "?"

    def __init__(self, a: Geometry, b: Geometry):
        for name, g in (("a", a), ("b", b)):
            if not isinstance(g, Geometry):
                raise TypeError(f"{name} must be a Geometry, got {type(g).__name__}")
        if a.dim != b.dim:
            raise ValueError(f"geometries of different dimensions cannot be combined: {a.dim} and {b.dim}")
        self.a, self.b, self.dim = a, b, a.dim
        self.lower, self.upper = self._bounds()

    def __repr__(self) -> str:
        return f"({self.a!r} {self.symbol} {self.b!r})"

    def _bounds(self) -> tuple[Tensor, Tensor]:
        return torch.minimum(self.a.lower, self.b.lower), torch.maximum(self.a.upper, self.b.upper)

    b_sign = 1.0  # the sign of b's normals on the result's boundary

    def _keep(self, x: Tensor, normals: Tensor, from_a: bool) -> Tensor:
        """Which of the boundary points ``x`` (outward ``normals``) of part a (or b) bound the result."""
        raise NotImplementedError

    @staticmethod
    def _shared(other: Geometry, x: Tensor, normals: Tensor, s: Tensor, sign: float) -> Tensor:
        """Points of one part's boundary that also lie on ``other``'s (``s`` its sdf there) and whose
        normal is ``sign`` times ``other``'s: a boundary both parts share, kept once (from a)."""
        on = s.abs() <= other._tol()
        out = torch.zeros_like(on)
        if bool(on.any()):
            out[on] = sign * (other.normal(x[on]) * normals[on]).sum(1) > 0.5
        return out

    def normal(self, x: Tensor) -> Tensor:
        x = _as_points(x, self.dim)
        sa, sb = self.a.sdf(x).abs(), self.b.sdf(x).abs()
        na, nb = self.a.normal(x), self.b.normal(x) * self.b_sign
        return torch.where((sa <= sb)[:, None], na, nb)

    def _parts(self, m: int, sampler: str, seed: int, extra: int) -> tuple[Tensor, Tensor]:
        """Boundary candidates of both parts, ``m`` in all, in proportion to the parts' measures, the
        ones that bound the result kept, in a random order."""
        ma, mb = self.a.boundary_measure, self.b.boundary_measure
        na = max(1, round(m * ma / (ma + mb)))
        xs, ns = [], []
        for part, count, s, from_a in ((self.a, na, 2 * seed, True), (self.b, max(1, m - na), 2 * seed + 1, False)):
            x, nrm = part.boundary(count, sampler, s, extra)
            keep = self._keep(x[:, : self.dim], nrm, from_a)
            xs.append(x[keep])
            ns.append((1.0 if from_a else self.b_sign) * nrm[keep])
        x, nrm = torch.cat(xs), torch.cat(ns)
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
        return x[order], nrm[order]

    @property
    def boundary_measure(self) -> float:
        if not hasattr(self, "_measure"):
            ma, mb = self.a.boundary_measure, self.b.boundary_measure
            kept = self._parts(_MC_POINTS, "sobol", 54321, 0)[0].shape[0]
            self._measure = (ma + mb) * kept / _MC_POINTS
        return self._measure

    def boundary(self, n: int, sampler: str = "sobol", seed: int = 0, extra: int = 0) -> tuple[Tensor, Tensor]:
        positive_int("n", n)
        nonnegative_int("extra", extra)
        ma, mb = self.a.boundary_measure, self.b.boundary_measure
        m = max(64, math.ceil(1.3 * n * (ma + mb) / max(self.boundary_measure, 1e-300)))
        while m <= max(_MAX_CANDIDATES, 4 * n):
            x, nrm = self._parts(m, sampler, seed, extra)
            if x.shape[0] >= n:
                return x[:n], nrm[:n]
            m *= 2
        raise ValueError(f"could not place {n} boundary points on {self!r}: its boundary looks empty")


class Union(_Combination):
    """A ∪ B: the boundary of each part outside the other, and once where they share it facing the same way."""

    symbol = "|"

    def sdf(self, x: Tensor) -> Tensor:
        return torch.minimum(self.a.sdf(x), self.b.sdf(x))

    def _keep(self, x: Tensor, normals: Tensor, from_a: bool) -> Tensor:
        other = self.b if from_a else self.a
        s = other.sdf(x)
        keep = s > other._tol()
        return keep | self._shared(other, x, normals, s, 1.0) if from_a else keep


class Intersection(_Combination):
    """A ∩ B: the boundary of each part inside the other, and once where they share it facing the same way."""

    symbol = "&"

    def _bounds(self) -> tuple[Tensor, Tensor]:
        return torch.maximum(self.a.lower, self.b.lower), torch.minimum(self.a.upper, self.b.upper)

    def sdf(self, x: Tensor) -> Tensor:
        return torch.maximum(self.a.sdf(x), self.b.sdf(x))

    def _keep(self, x: Tensor, normals: Tensor, from_a: bool) -> Tensor:
        other = self.b if from_a else self.a
        s = other.sdf(x)
        keep = s < -other._tol()
        return keep | self._shared(other, x, normals, s, 1.0) if from_a else keep


class Difference(_Combination):
    """A − B: the boundary of A outside B (and where B touches it from outside), and that of B inside A
    with its normal turned round."""

    symbol = "-"

    def _bounds(self) -> tuple[Tensor, Tensor]:
        return self.a.lower, self.a.upper

    def sdf(self, x: Tensor) -> Tensor:
        return torch.maximum(self.a.sdf(x), -self.b.sdf(x))

    b_sign = -1.0

    def _keep(self, x: Tensor, normals: Tensor, from_a: bool) -> Tensor:
        if from_a:  # where B touches A from outside (opposite normals), A's boundary stays
            s = self.b.sdf(x)
            return (s > self.b._tol()) | self._shared(self.b, x, normals, s, -1.0)
        return self.a.sdf(x) < -self.a._tol()
