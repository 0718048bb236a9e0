"""Hutchinson's estimator of the Hessian diagonal, shared by Sophia-H and AdaHessian.

Bekas, Kokiopoulou & Saad 2007, "An estimator for the diagonal of a matrix" (Appl. Numer. Math.
57), after Hutchinson 1989: for probes z with independent Rademacher entries (±1),

    E[z ⊙ Hz] = diag(H),                                                          (1)

and Hz is a Hessian-vector product, the gradient of ⟨∇L, z⟩ with respect to the parameters, so
the gradient must carry its graph (``loss.backward(create_graph=True)``). The estimate of
``probes`` probes is their mean; its variance is Σ_{j≠i} H_ij² per entry and probe.

Complex parameters (FNO spectral weights) are pairs of real numbers: z has a ±1 real and
imaginary part, and PyTorch's gradient of the real number Re⟨z, ∇L⟩ is then the real-pair
Hessian-vector product written as a complex tensor, so (1) holds on the real views.

Probes come from a ``torch.Generator`` whose state lives in the optimizer's ``state`` (see
:func:`stored_generator`), so a run resumed from ``optimizer.state_dict()`` draws the same probes.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import Tensor

from ._adam import real_view

__all__ = ["rademacher_like", "hessian_diagonal", "stored_generator"]


def rademacher_like(p: Tensor, generator: torch.Generator) -> Tensor:
    """A tensor like ``p`` with independent ±1 entries (both parts ±1 for a complex ``p``).

    Drawn on the CPU from ``generator`` and moved to ``p``'s device, so the stream is the same
    on every device.
    """
    shape = (*p.shape, 2) if p.is_complex() else p.shape
    real = p.real.dtype if p.is_complex() else p.dtype
    z = torch.randint(0, 2, shape, generator=generator, dtype=real).mul_(2).sub_(1).to(p.device)
    return torch.view_as_complex(z) if p.is_complex() else z


def hessian_diagonal(params: Sequence[Tensor], grads: Sequence[Tensor], generator: torch.Generator,
                     probes: int = 1) -> list[Tensor]:
    """Hutchinson's estimate (1) of diag(H) for each parameter, as real views.

    Parameters
    ----------
    params : the parameters (leaves) the gradients were taken with respect to.
    grads : their gradients, each with its graph (``create_graph=True``).
    generator : the source of the probes.
    probes : number of probes averaged.

    Returns
    -------
    One tensor per parameter, shaped like ``real_view(param)`` (a trailing axis of 2 for complex).
    """
    live = [i for i, g in enumerate(grads) if g.grad_fn is not None]
    if not live:
        raise RuntimeError("Hessian-vector products need the gradient's graph: call loss.backward(create_graph=True) "
                           "on steps where 'create_graph' is in the optimizer's step_requires")
    estimate = [torch.zeros_like(real_view(p)) for p in params]  # a constant gradient has a zero Hessian row
    for k in range(probes):
        zs = [rademacher_like(p, generator) for p in params]  # drawn for all, so the stream does not depend on `live`
        hz = torch.autograd.grad([grads[i] for i in live], params, grad_outputs=[zs[i] for i in live],
                                 retain_graph=k < probes - 1, allow_unused=True)  # Hz
        for e, z, h in zip(estimate, zs, hz):
            if h is not None:
                e.addcmul_(real_view(z), real_view(h), value=1.0 / probes)  # (1)
    return estimate


@contextmanager
def stored_generator(optimizer: torch.optim.Optimizer, key: str, seed: int) -> Iterator[torch.Generator]:
    """A CPU generator kept in ``optimizer.state[key]`` (seeded with ``seed`` on first use).

    Its state is written back on exit, so it travels with ``optimizer.state_dict()``.
    """
    generator = torch.Generator()
    if key in optimizer.state:
        generator.set_state(optimizer.state[key].cpu())
    else:
        generator.manual_seed(seed)
    yield generator
    optimizer.state[key] = generator.get_state()
