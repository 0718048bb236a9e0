"""SKR's greedy ordering: a permutation, equal to a brute-force reference, shorter tours."""
import math

import pytest
import torch

from sciml.datasets import Darcy, get_ordering, greedy_order, identity_order, tour_length


def _reference(points):
    """Greedy nearest neighbour in plain Python: from 0, the closest unvisited, lowest index on
    ties."""
    rows = points.tolist()
    order, left = [0], list(range(1, len(rows)))
    while left:
        here = rows[order[-1]]
        best = min(left, key=lambda j: (math.dist(here, rows[j]), j))
        order.append(best)
        left.remove(best)
    return order


@pytest.mark.parametrize("n, d, max_elements", [(1, 3, 2 ** 25), (7, 2, 2 ** 25),
                                                (40, 5, 2 ** 25), (40, 5, 100)])
def test_greedy_equals_the_brute_force_reference(n, d, max_elements):
    points = torch.randn(n, d, generator=torch.Generator().manual_seed(n + d),
                         dtype=torch.float64)
    order = greedy_order(points, max_elements=max_elements)
    assert order.dtype == torch.int64 and order.shape == (n,)
    assert torch.equal(torch.sort(order).values, torch.arange(n))
    assert order.tolist() == _reference(points)


def test_ties_go_to_the_lowest_index_and_the_order_is_deterministic():
    # Point 0 is equidistant from 1, 2 and 3; 3 and 1 coincide.
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [5.0, 5.0]])
    assert greedy_order(points).tolist() == [0, 1, 3, 2, 4] == _reference(points)
    features = Darcy().sample_coefficients(30, 9, torch.Generator().manual_seed(0)).flatten(1)
    assert torch.equal(greedy_order(features), greedy_order(features.clone()))


def test_greedy_tour_is_shorter_than_random_orders_on_clustered_data():
    g = torch.Generator().manual_seed(1)
    centres = 10 * torch.randn(6, 16, generator=g, dtype=torch.float64)
    points = centres.repeat_interleave(20, 0) + torch.randn(120, 16, generator=g,
                                                            dtype=torch.float64)
    points = points[torch.randperm(120, generator=g)]
    greedy = tour_length(points, greedy_order(points))
    shuffled = [tour_length(points, torch.randperm(120, generator=g)) for _ in range(20)]
    identity = tour_length(points, identity_order(points))
    # Within-cluster steps are ~√(2·16) ≈ 5.7 and there are at most a few dozen jumps between
    # clusters of spread ~10·√(2·16); a random order jumps clusters 5 times in 6.
    assert greedy < 0.5 * min(shuffled) and greedy < 0.5 * identity, (greedy, min(shuffled))


def test_registry_and_identity():
    assert get_ordering("greedy") is greedy_order
    points = torch.randn(5, 3, dtype=torch.float64)
    assert get_ordering("identity")(points).tolist() == [0, 1, 2, 3, 4]
    assert identity_order(4).tolist() == [0, 1, 2, 3]
    assert tour_length(points, identity_order(5)) == pytest.approx(
        sum(float(torch.linalg.norm(points[i + 1] - points[i])) for i in range(4)), rel=1e-14)


@pytest.mark.parametrize("call, error, words", [
    (lambda: greedy_order(torch.ones(3)), ValueError, "(n, d)"),
    (lambda: greedy_order(torch.ones(0, 2)), ValueError, "n >= 1"),
    (lambda: greedy_order(torch.ones(3, 2, dtype=torch.int64)), TypeError, "floating-point"),
    (lambda: greedy_order(torch.full((3, 2), float("nan"))), ValueError, "finite"),
    (lambda: greedy_order(torch.ones(3, 2), max_elements=0), ValueError, "max_elements"),
    (lambda: identity_order(0), ValueError, "positive int"),
    (lambda: tour_length(torch.ones(3, 2), torch.tensor([0, 0, 1])), ValueError, "permutation"),
    (lambda: get_ordering("random"), ValueError, "'random'; expected one of: greedy, identity"),
])
def test_bad_input_is_rejected_with_a_clear_message(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_order_matches_cpu():
    features = Darcy(coefficient="lognormal").sample_coefficients(
        200, 17, torch.Generator().manual_seed(2)).flatten(1)
    order = greedy_order(features.cuda())
    assert order.device.type == "cuda"
    assert torch.equal(order.cpu(), greedy_order(features))
