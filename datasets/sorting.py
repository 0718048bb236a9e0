"""Orderings of a dataset's systems before a recycling solver sees them.

SKR (Wang et al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
Recycling", ICLR 2024, Sec. 4.1 and its released code) solves the systems in a greedy
nearest-neighbour order of their raw parameter fields: start at sample 0, then repeatedly go
to the closest sample not yet visited,

    π₀ = 0,   π_{t+1} = argmin_{j ∉ {π₀ … π_t}} ‖θ_{π_t} − θ_j‖_F,                       (1)

the Frobenius norm of the difference of the fields (the Euclidean norm of the flattened
features). The identity order is its control, so the effect of sorting can be measured apart
from that of recycling. Ties go to the lowest index, so an order is a pure function of the
features, and a resumed run re-derives it.

Cost: ``n`` steps of an ``O(n)`` scan over a precomputed matrix of squared distances
(``O(n² d)`` once, as one matrix product; 512 MiB in float64 at the default limit,
``n ≤ 8192``), or, beyond ``max_elements``, ``n`` matrix-vector products of ``O(n d)`` each
with no matrix stored (minutes for ``n = 10⁴`` fields of ``128²`` on two CPU cores).
"""
import torch

from sciml.validation import positive_int

__all__ = ["greedy_order", "identity_order", "tour_length", "ORDERINGS", "get_ordering"]


def _check_features(features):
    if not isinstance(features, torch.Tensor) or not features.is_floating_point():
        raise TypeError(f"features must be a floating-point torch.Tensor, got "
                        f"{type(features).__name__}")
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError(f"features must have shape (n, d) with n >= 1, got "
                         f"{tuple(features.shape)}")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features must be finite, got NaN or inf values")


def greedy_order(features, *, max_elements=2 ** 26):
    """SKR's greedy nearest-neighbour order (1) of the rows of ``features``.

    Parameters
    ----------
    features : Tensor, shape (n, d)
        The flattened parameter field of each sample, on any device.
    max_elements : int
        Largest distance matrix (``n²`` entries) to precompute; beyond it, distances are
        computed one row per step.

    Returns
    -------
    LongTensor, shape (n,)
        The permutation ``π``: sample ``π[t]`` is solved at position ``t``; ``π[0] = 0``.
        On ``features``' device.
    """
    _check_features(features)
    positive_int("max_elements", max_elements)
    x = features.to(torch.float64)
    n = x.shape[0]
    # Squared distances ‖x_i‖² + ‖x_j‖² − 2 x_i·x_j: matrix products, and the same argmin.
    squares = (x * x).sum(1)
    full = n * n <= max_elements
    if full:
        distances = squares[:, None] + squares[None, :] - 2 * (x @ x.T)
    visited = torch.zeros(n, dtype=torch.bool, device=x.device)
    order = torch.empty(n, dtype=torch.int64, device=x.device)
    current = 0
    for t in range(n):
        order[t] = current
        visited[current] = True
        if t == n - 1:
            break
        row = distances[current] if full else squares + squares[current] - 2 * (x @ x[current])
        # argmin returns the first minimum: ties go to the lowest index.
        current = int(torch.argmin(row.masked_fill(visited, float("inf"))))
    return order


def identity_order(n):
    """The identity permutation: ``n`` an int, or the features ``(n, d)`` of n samples.

    Returns
    -------
    LongTensor, shape (n,)
        ``0, 1, …, n − 1`` (on the features' device when given features).
    """
    if isinstance(n, torch.Tensor):
        _check_features(n)
        return torch.arange(n.shape[0], device=n.device)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int or a features tensor (n, d), got {n!r}")
    return torch.arange(n)


def tour_length(features, order):
    """``Σ_t ‖θ_{π_{t+1}} − θ_{π_t}‖``: the distance a recycling solver travels along ``order``.

    Parameters
    ----------
    features : Tensor, shape (n, d)
    order : LongTensor, shape (n,)
        A permutation of ``0 … n − 1``.

    Returns
    -------
    float
    """
    _check_features(features)
    n = features.shape[0]
    if not isinstance(order, torch.Tensor) or order.shape != (n,) or not torch.equal(
            torch.sort(order.cpu()).values, torch.arange(n)):
        raise ValueError(f"order must be a permutation of 0 … {n - 1} as a tensor of shape "
                         f"({n},)")
    x = features.to(torch.float64)[order.to(features.device)]
    return float(torch.linalg.vector_norm(x[1:] - x[:-1], dim=1).sum())


ORDERINGS = {"greedy": greedy_order, "identity": identity_order}


def get_ordering(name):
    """The ordering registered as ``name``: a function ``features (n, d) -> LongTensor (n,)``.

    Parameters
    ----------
    name : str
        A key of :data:`ORDERINGS`.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__} {name!r}")
    if name not in ORDERINGS:
        raise ValueError(f"unknown ordering {name!r}; expected one of: "
                         f"{', '.join(sorted(ORDERINGS))}")
    return ORDERINGS[name]
