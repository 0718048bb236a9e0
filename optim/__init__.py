"""Optimizers for the training step, and :func:`build_optimizer`, which groups a model's parameters.

The Trainer learns what an optimizer's ``step`` needs from one declaration, never from its
class name: an optimizer (class or instance) may carry ``step_requires``, a set of

- ``"closure"``: ``step(closure)`` re-evaluates the loss itself (L-BFGS, line searches);
- ``"create_graph"``: the backward pass must keep its graph, so ``step`` can take
  Hessian-vector products (AdaHessian, Sophia-H).

An optimizer with no declaration gets a plain gradient.
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "build_optimizer", "step_requires"]

_KNOWN_REQUIREMENTS = frozenset({"closure", "create_graph"})


def _lbfgs(params, lr, weight_decay=0.0, **options):
    if weight_decay:
        raise ValueError(f"lbfgs takes no weight_decay, got {weight_decay}")
    opt = torch.optim.LBFGS(params, lr=lr, **{"line_search_fn": "strong_wolfe", **options})
    opt.step_requires = frozenset({"closure"})
    return opt


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "lbfgs": _lbfgs,
}


def step_requires(optimizer: torch.optim.Optimizer) -> frozenset[str]:
    """What ``optimizer.step`` needs from the training step (see the module docstring)."""
    req = frozenset(getattr(optimizer, "step_requires", ()))
    unknown = req - _KNOWN_REQUIREMENTS
    if unknown:
        raise ValueError(f"optimizer {type(optimizer).__name__} declares unknown step requirements {sorted(unknown)}; "
                         f"expected a subset of {sorted(_KNOWN_REQUIREMENTS)}")
    return req


def _groups(model: nn.Module | Iterable[nn.Parameter], weight_decay: float) -> list[dict]:
    """Decay matrices and kernels; leave biases, norms and other vectors undecayed."""
    params = model.parameters() if isinstance(model, nn.Module) else model
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    decay = [p for p in params if p.dim() >= 2]
    plain = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0})
    return groups


def build_optimizer(name: str, model: nn.Module | Iterable[nn.Parameter], lr: float = 1e-3,
                    weight_decay: float = 0.0, **options) -> torch.optim.Optimizer:
    """An optimizer by name over ``model``'s trainable parameters.

    Parameters of two or more dimensions get ``weight_decay``; biases and normalisation
    weights get none. ``options`` go to the optimizer's constructor.
    """
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of: {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
    factory = OPTIMIZERS[name.lower()]
    if factory is _lbfgs:  # one group: L-BFGS does not support several
        params = [p for p in (model.parameters() if isinstance(model, nn.Module) else model) if p.requires_grad]
        return factory(params, lr=lr, weight_decay=weight_decay, **options)
    return factory(_groups(model, weight_decay), lr=lr, **options)
