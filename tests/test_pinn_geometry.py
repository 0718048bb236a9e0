"""Geometries for PINN domains against closed forms: areas, perimeters, normals, the divergence theorem."""
import math

import pytest
import torch

from sciml.solvers.pinn import Domain
from sciml.solvers.pinn_geometry import Ball, Box, Polygon, unit_samples

pytestmark = pytest.mark.usefixtures("one_thread")

L_SHAPE = Box([-1.0, -1.0], [1.0, 1.0]) - Box([0.0, 0.0], [1.0, 1.0])
ANNULUS = Ball([0.0, 0.0], 1.0) - Ball([0.0, 0.0], 0.5)
HALF_DISK = Ball([0.0, 0.0], 1.0) & Box([0.0, -2.0], [2.0, 2.0])
TRIANGLE = Polygon([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # clockwise on purpose
LENS_UNION = Ball([0.0, 0.0], 1.0) | Ball([1.0, 0.0], 1.0)  # two unit disks, centres 1 apart


def _lens_union_area():
    lens = 2 * math.acos(0.5) - 0.5 * math.sqrt(3)  # 2r²acos(d/2r) − (d/2)√(4r² − d²), r = d = 1
    return 2 * math.pi - lens


@pytest.mark.parametrize("shape, area, perimeter", [
    (L_SHAPE, 3.0, 8.0), (ANNULUS, 0.75 * math.pi, 3 * math.pi), (HALF_DISK, math.pi / 2, math.pi + 2),
    (TRIANGLE, 0.5, 2 + math.sqrt(2)), (LENS_UNION, _lens_union_area(), 2 * math.pi * 4 / 3),
    (Ball([0.0] * 3, 2.0), 4 / 3 * math.pi * 8, 4 * math.pi * 4), (Box([0, 0, 0], [1, 2, 3]), 6.0, 22.0),
])
def test_areas_and_perimeters_match_closed_forms(shape, area, perimeter):
    """Monte Carlo on 2^16 Sobol' points for combinations (error ~ 1e-3), exact for primitives."""
    assert shape.volume == pytest.approx(area, rel=5e-3)
    assert shape.boundary_measure == pytest.approx(perimeter, rel=5e-3)


@pytest.mark.parametrize("sampler", ["sobol", "lhs", "uniform"])
def test_interior_points_are_inside_and_uniform(sampler):
    x = ANNULUS.interior(4000, sampler, seed=1)
    r = x.norm(dim=1)
    assert bool(((r >= 0.5) & (r <= 1.0)).all()) and bool(ANNULUS.inside(x).all())
    # uniform in area: P(r < 0.75) = (0.75² − 0.5²) / (1 − 0.5²)
    assert float((r < 0.75).double().mean()) == pytest.approx((0.5625 - 0.25) / 0.75, abs=0.025)
    ball = Ball([0.0] * 10, 1.0).interior(4000, sampler, seed=2)  # mapped, not rejected: any dimension
    assert float(ball.norm(dim=1).max()) <= 1.0
    assert float((ball.norm(dim=1) < 0.5 ** 0.1).double().mean()) == pytest.approx(0.5, abs=0.03)


def test_normals_on_known_shapes():
    x, n = ANNULUS.boundary(2000, seed=3)
    r = x.norm(dim=1, keepdim=True)
    outer = (r[:, 0] > 0.75)
    assert torch.allclose(n[outer], x[outer] / r[outer], atol=1e-12)
    assert torch.allclose(n[~outer], -x[~outer] / r[~outer], atol=1e-12)  # the hole's normal points inward
    assert float(outer.double().mean()) == pytest.approx(2 / 3, abs=0.02)  # by arc length: 2π of 3π
    assert torch.allclose(ANNULUS.normal(x), n, atol=1e-12)
    assert bool(ANNULUS.on_boundary(x).all()) and not bool(ANNULUS.on_boundary(0.75 * x / r).any())
    x, n = L_SHAPE.boundary(2000, seed=4)
    on_reentrant = ((x[:, 0].abs() < 1e-12) & (x[:, 1] > 0)) | ((x[:, 1].abs() < 1e-12) & (x[:, 0] > 0))
    # the removed quadrant lies at x > 0, y > 0: outward on its edges is +e_x (x = 0) and +e_y (y = 0)
    expect = torch.where((x[:, 0].abs() < 1e-12)[:, None], torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    assert torch.equal(n[on_reentrant], expect[on_reentrant].to(n))
    assert float(on_reentrant.double().mean()) == pytest.approx(2 / 8, abs=0.02)
    x, n = TRIANGLE.boundary(500, seed=5)
    hyp = (x.sum(1) - 1).abs() < 1e-12
    assert torch.allclose(n[hyp], torch.full_like(n[hyp], 2 ** -0.5))


@pytest.mark.parametrize("shape", [L_SHAPE, ANNULUS, HALF_DISK, TRIANGLE, LENS_UNION], ids=repr)
def test_divergence_theorem_with_sampled_boundary(shape):
    """∮ F·n ds = ∫ div F dA for F = (x², xy): the boundary points must be uniform and the normals right."""
    x, n = shape.boundary(1 << 15, seed=6)
    flux = (x[:, 0] ** 2 * n[:, 0] + x[:, 0] * x[:, 1] * n[:, 1]).mean() * shape.boundary_measure
    inner = shape.interior(1 << 15, seed=7)
    divergence = (3 * inner[:, 0]).mean() * shape.volume  # div F = 2x + x
    assert float(flux) == pytest.approx(float(divergence), abs=0.03)  # Monte Carlo: about 0.01 at 2^15 points


def test_domain_on_a_geometry_crossed_with_time_and_parts():
    dom = Domain(ANNULUS, time=(0.0, 2.0), parts={"hole": lambda p: p[:, :2].norm(dim=1) < 0.75})
    assert dom.space == [(-1.0, 1.0), (-1.0, 1.0)] and dom.names == ("x", "y", "t")
    pts = dom.interior(1000, seed=0)
    assert bool(dom.inside(pts).all()) and float(pts[:, 2].max()) <= 2.0
    assert float(pts[:, 2].mean()) == pytest.approx(1.0, abs=0.03)
    b, n = dom.boundary_normals(300, seed=1, part="hole")
    assert torch.allclose(b[:, :2].norm(dim=1), torch.full((300,), 0.5, dtype=torch.float64))
    assert torch.allclose(n, -b[:, :2] / 0.5, atol=1e-12)
    assert torch.allclose(dom.normal(b), n, atol=1e-12)
    init = dom.initial(100, seed=2)
    assert bool((init[:, 2] == 0).all()) and bool(ANNULUS.inside(init[:, :2]).all())
    box = Domain([(0.0, 1.0), (0.0, 2.0)])  # a box has its faces as parts
    top, normals = box.boundary_normals(50, seed=3, part="y_max")
    assert bool((top[:, 1] == 2.0).all()) and bool((normals == torch.tensor([0.0, 1.0], dtype=torch.float64)).all())


def test_samplers_are_reproducible_and_prefixes():
    a, b = unit_samples(64, 3, "sobol", seed=4), unit_samples(128, 3, "sobol", seed=4)
    assert torch.equal(a, b[:64])
    assert torch.equal(L_SHAPE.interior(100, "lhs", seed=2), L_SHAPE.interior(100, "lhs", seed=2))


def test_bad_geometry_input_raises_naming_the_argument():
    with pytest.raises(ValueError, match="lower and upper"):
        Box([0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="radius"):
        Ball([0.0], -1.0)
    with pytest.raises(ValueError, match="vertices"):
        Polygon([[0, 0], [1, 1], [2, 2]])
    with pytest.raises(ValueError, match="different dimensions"):
        Ball([0.0, 0.0], 1.0) | Ball([0.0, 0.0, 0.0], 1.0)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        L_SHAPE.inside(torch.zeros(3, 3))
    with pytest.raises(ValueError, match="unknown boundary part 'inlet'"):
        Domain(L_SHAPE).boundary(10, part="inlet")
    with pytest.raises(ValueError, match="holds almost none"):
        Domain(L_SHAPE).boundary(10, part=lambda p: p[:, 0] > 5)


@pytest.mark.parametrize("shape, perimeter, shared", [
    # an L from two boxes sharing the edges x = 0 (0 ≤ y ≤ 1) and y = 0 (0 ≤ x ≤ 1): 2 + 1 + 1 + 1 + 1 + 2
    (Box([0, 0], [2, 1]) | Box([0, 0], [1, 2]), 8.0, lambda x: (x[:, 0].abs() < 1e-12) & (x[:, 1] < 1)),
    # the unit box inside the 2-box sharing two of its edges: the unit box itself
    (Box([0, 0], [2, 2]) & Box([0, 0], [1, 1]), 4.0, lambda x: (x[:, 0].abs() < 1e-12) & (x[:, 1] < 1)),
    # B touches A from outside along x = 2, 0 ≤ y ≤ 1: A is unchanged
    (Box([0, 0], [2, 2]) - Box([2, 0], [3, 1]), 8.0, lambda x: ((x[:, 0] - 2).abs() < 1e-12) & (x[:, 1] < 1)),
], ids=["union", "intersection", "difference"])
def test_a_boundary_both_parts_share_is_kept_once(shape, perimeter, shared):
    """Points on the boundaries of both parts: kept once where they bound the result (they were lost)."""
    assert shape.boundary_measure == pytest.approx(perimeter, rel=1e-3)
    x, n = shape.boundary(4000, seed=8)
    length = 1.0  # each shared piece above is one unit long: 1/perimeter of the points, no more (kept once)
    assert float(shared(x).double().mean()) == pytest.approx(length / perimeter, abs=0.01)
    assert torch.equal(shape.normal(x), n) and bool(shape.on_boundary(x).all())
    assert bool((shape.sdf(x + 1e-6 * n) > 0).all()) and bool((shape.sdf(x - 1e-6 * n) < 0).all())  # outward
    # boxes touching from outside: their common face is inside the union and bounds no intersection
    assert (Box([0, 0], [1, 1]) | Box([1, 0], [2, 1])).boundary_measure == pytest.approx(6.0, rel=1e-3)


def test_self_intersecting_polygon_is_refused():
    # the review's pentagon: shoelace area 0.5, but it covers about 1.34 (its edges 0 and 2 cross)
    with pytest.raises(ValueError, match="simple polygon.*edges 0 and 2 meet"):
        Polygon([[0, 0], [2, 0], [2, 2], [1, -1], [0, 1]])
    with pytest.raises(ValueError, match="simple polygon"):  # a vertex touching a non-adjacent edge
        Polygon([[0, 0], [2, 0], [2, 2], [1, 0], [0, 2]])
    with pytest.raises(ValueError, match="simple polygon"):  # an edge folding back onto its neighbour
        Polygon([[0, 0], [2, 0], [1, 0], [1, 1]])
    L = Polygon([[-1, -1], [1, -1], [1, 0], [0, 0], [0, 1], [-1, 1]])  # non-convex but simple: accepted
    assert L.volume == 3.0 and L.boundary_measure == 8.0
