"""Optimizers for the training step, and :func:`build_optimizer`, which groups a model's parameters.

Orthogonalized methods for hidden weight matrices (each with AdamW groups for the rest of a
model): :class:`Muon`, :class:`NorMuon`, :class:`ROOT`, :class:`AuON`, :class:`HybridAuON`;
their shared Newton–Schulz iteration is :func:`newton_schulz`. Projected methods for
scale-invariant weights: :class:`AdamP`, :class:`SGDP`. Second-order methods: :class:`Sophia`
(``estimator="hutchinson"`` for Sophia-H, ``"gnb"`` for Sophia-G), :class:`AdaHessian`,
:class:`MFAC`, :class:`MKOR` (built from the model, whose layers it hooks; ``hybrid=True`` for
MKOR-H), :class:`DCTLowRank` and :class:`NNCG` (Nyström-preconditioned Newton–CG with a line
search, for PINNs after Adam); the Hutchinson estimator shared by the first two is
:func:`hessian_diagonal`. All are registered by lower-case name in :data:`OPTIMIZERS`
(``"hybrid_auon"`` for Hybrid-AuON, ``"dct_lowrank"`` for the DCT low-rank method).

The Trainer learns what an optimizer's ``step`` needs from one declaration, never from its
class name: an optimizer (class or instance) may carry ``step_requires``, a set of

- ``"closure"``: ``step(closure)`` re-evaluates the loss itself (L-BFGS, line searches);
  declared with ``"create_graph"`` (NNCG), the step gets the graph-carrying gradient of the loss
  and then the closure, and reads the gradient before calling the closure;
- ``"create_graph"``: the backward pass must keep its graph, so ``step`` can take
  Hessian-vector products (AdaHessian, Sophia-H);
- ``"sampled_loss"``: ``step(sampled_grad=f)`` with ``f(generator, params)`` returning the
  gradients, for ``params``, of the loss with labels drawn from the model's predictive
  distribution (:meth:`sciml.Solver.sampled_loss`; Sophia-G);
- ``"loss"``: ``step(loss=value)`` with this step's loss (MKOR-H watches it to switch).

An optimizer with no declaration gets a plain gradient. The declaration is read before every
step, so it may change: Sophia and AdaHessian ask for the graph only on the steps that refresh
their Hessian estimate, and declare in ``step_may_require`` what any step may ask for, so that the
Trainer can refuse before training what it cannot serve (Hessian-vector products under
``torch.compile``; per-rank curvature under DDP, where an optimizer whose statistics come from
each rank's own batch, like MKOR, sets ``supports_ddp = False``). Layer activations need no declaration: an optimizer that wants them
(MKOR) is built from the model and hooks its layers. Under the Trainer's ``grad_clip`` the
step's objective is ``c·L`` with ``c = min(1, grad_clip / ‖∇L‖)``: the gradient, the graph of
``"create_graph"`` and the sampled gradient of ``"sampled_loss"`` are all scaled alike, so
curvature estimates see the clipped objective; closure optimizers refuse ``grad_clip``.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from .adahessian import AdaHessian
from .adamp import SGDP, AdamP
from .auon import AuON, HybridAuON
from .dct_lowrank import DCTLowRank
from .hutchinson import hessian_diagonal
from .mfac import MFAC
from .mkor import MKOR
from .muon import Muon
from .newton_schulz import newton_schulz
from .nncg import NNCG
from .normuon import NorMuon
from .orthogonalized import OrthogonalizedOptimizer
from .root import ROOT
from .sophia import Sophia

__all__ = ["OPTIMIZERS", "may_require", "ORTHOGONALIZED", "DEFAULT_EXCLUDE", "build_optimizer", "step_requires",
           "is_hidden_matrix", "Muon", "NorMuon", "ROOT", "AuON", "HybridAuON", "AdamP", "SGDP",
           "OrthogonalizedOptimizer", "newton_schulz", "Sophia", "AdaHessian", "MFAC", "MKOR", "DCTLowRank",
           "NNCG", "hessian_diagonal", "SECOND_ORDER"]

_KNOWN_REQUIREMENTS = frozenset({"closure", "create_graph", "sampled_loss", "loss"})


def _lbfgs(params, lr, weight_decay=0.0, **options):
    if weight_decay:
        raise ValueError(f"lbfgs takes no weight_decay, got {weight_decay}")
    opt = torch.optim.LBFGS(params, lr=lr, **{"line_search_fn": "strong_wolfe", **options})
    opt.step_requires = frozenset({"closure"})
    return opt


ORTHOGONALIZED: dict[str, type[OrthogonalizedOptimizer]] = {
    "muon": Muon,
    "normuon": NorMuon,
    "root": ROOT,
    "auon": AuON,
    "hybrid_auon": HybridAuON,
}

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": torch.optim.SGD,
    "lbfgs": _lbfgs,
    **ORTHOGONALIZED,
    "adamp": AdamP,
    "sgdp": SGDP,
    "sophia": Sophia,
    "adahessian": AdaHessian,
    "mfac": MFAC,
    "mkor": MKOR,
    "dct_lowrank": DCTLowRank,
    "nncg": NNCG,
}

#: the second-order methods (``"sophia"`` takes ``estimator="hutchinson"`` or ``"gnb"``)
SECOND_ORDER: tuple[str, ...] = ("sophia", "adahessian", "mfac", "mkor", "dct_lowrank", "nncg")

#: name fragments of layers kept under AdamW: a network's input and output maps (an FNO's
#: lifting and projection, embeddings, output heads) are not hidden layers
DEFAULT_EXCLUDE: tuple[str, ...] = ("lifting", "projection", "embed", "head")


def step_requires(optimizer: torch.optim.Optimizer) -> frozenset[str]:
    """What ``optimizer.step`` needs from the next training step (see the module docstring)."""
    return _checked(optimizer, getattr(optimizer, "step_requires", ()))


def may_require(optimizer: torch.optim.Optimizer) -> frozenset[str]:
    """Everything ``optimizer.step`` may need on some step: ``step_may_require`` with ``step_requires``."""
    return _checked(optimizer, getattr(optimizer, "step_may_require", ())) | step_requires(optimizer)


def _checked(optimizer: torch.optim.Optimizer, declared) -> frozenset[str]:
    req = frozenset(declared)
    unknown = req - _KNOWN_REQUIREMENTS
    if unknown:
        raise ValueError(f"optimizer {type(optimizer).__name__} declares unknown step requirements {sorted(unknown)}; "
                         f"expected a subset of {sorted(_KNOWN_REQUIREMENTS)}")
    return req


def _decays(p: torch.Tensor) -> bool:
    """Matrices and kernels (fan-in of two or more) are decayed; biases, also (C, 1, 1) ones, are not."""
    return p.dim() >= 2 and p[0].numel() >= 2


def _groups(model: nn.Module | Iterable[nn.Parameter], weight_decay: float) -> list[dict]:
    """Decay matrices and kernels; leave biases, norms and other vectors undecayed."""
    params = model.parameters() if isinstance(model, nn.Module) else model
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    decay = [p for p in params if _decays(p)]
    plain = [p for p in params if not _decays(p)]
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0})
            if g["params"]]


def is_hidden_matrix(name: str, p: torch.Tensor, exclude: Sequence[str] = DEFAULT_EXCLUDE) -> bool:
    """The default rule for the orthogonalized methods: is ``p`` a hidden weight matrix?

    True for a tensor that is a matrix with at least two rows and two columns in the matrix
    view of :mod:`sciml.optim.orthogonalized` (a Linear weight, a conv kernel ``(out, in, *k)``,
    a complex spectral weight ``(in, out, *modes)``) whose name contains none of ``exclude``.
    Biases, norms, per-channel scales, and lifting/projection/embedding/head layers are not.
    """
    if p.dim() < 2 or any(fragment in name for fragment in exclude):
        return False
    if p.is_complex():
        return min(p.shape[0], p.shape[1]) >= 2
    return p.shape[0] >= 2 and p[0].numel() >= 2


def _split(model: nn.Module | Iterable[nn.Parameter], hidden: Callable[[str, torch.Tensor], bool],
           weight_decay: float, adamw_lr: float | None) -> list[dict]:
    """Groups: hidden matrices, then AdamW groups with and without weight decay."""
    named = model.named_parameters() if isinstance(model, nn.Module) else ((str(i), p) for i, p in enumerate(model))
    named = [(n, p) for n, p in named if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters")
    matrices = [p for n, p in named if hidden(n, p)]
    if not matrices:
        raise ValueError("no parameter of the model is a hidden weight matrix under the grouping rule; "
                         "pass hidden=<predicate (name, param) -> bool> or exclude=<name fragments>")
    chosen = {id(p) for p in matrices}
    rest = [p for _, p in named if id(p) not in chosen]
    extra = {"adamw": True} if adamw_lr is None else {"adamw": True, "lr": adamw_lr}
    groups = [{"params": matrices, "weight_decay": weight_decay}]
    decayed = [p for p in rest if _decays(p)]
    plain = [p for p in rest if not _decays(p)]
    if decayed:
        groups.append({"params": decayed, "weight_decay": weight_decay, **extra})
    if plain:
        groups.append({"params": plain, "weight_decay": 0.0, **extra})
    return groups


def build_optimizer(name: str, model: nn.Module | Iterable[nn.Parameter], lr: float = 1e-3,
                    weight_decay: float = 0.0, *, hidden: Callable[[str, torch.Tensor], bool] | None = None,
                    exclude: Sequence[str] = DEFAULT_EXCLUDE, adamw_lr: float | None = None,
                    **options) -> torch.optim.Optimizer:
    """An optimizer by name over ``model``'s trainable parameters.

    Parameters of two or more dimensions get ``weight_decay``; biases and normalisation
    weights get none. ``options`` go to the optimizer's constructor.

    For the orthogonalized methods (:data:`ORTHOGONALIZED`) the parameters are split: those for
    which ``hidden(name, param)`` holds (default :func:`is_hidden_matrix` with ``exclude``) go
    to the method, all others to AdamW groups inside the same optimizer, at ``adamw_lr``
    (default ``lr``). So that one ``lr`` suits both, ``adjust_lr_fn`` defaults to
    ``"match_rms_adamw"`` here (pass ``adjust_lr_fn="original"`` for Muon's own scale), and
    ``complex_mode`` (``"per_mode"`` or ``"flatten"``) chooses how FNO spectral weights are
    orthogonalized. ``hidden``, ``exclude`` and ``adamw_lr`` apply to those methods only.

    ``"mkor"`` needs ``model`` to be an ``nn.Module``: it hooks its Linear and 1×1 conv layers.
    """
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of: {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
    factory = OPTIMIZERS[name.lower()]
    if factory in ORTHOGONALIZED.values():
        rule = hidden if hidden is not None else (lambda n, p: is_hidden_matrix(n, p, exclude))
        options.setdefault("adjust_lr_fn", "match_rms_adamw")
        return factory(_split(model, rule, weight_decay, adamw_lr), lr=lr, **options)
    if hidden is not None or adamw_lr is not None or tuple(exclude) != DEFAULT_EXCLUDE:
        raise ValueError(f"hidden, exclude and adamw_lr apply to the orthogonalized optimizers "
                         f"({', '.join(ORTHOGONALIZED)}), not to {name!r}")
    if factory is MKOR:  # built from the model: it hooks the model's layers
        if not isinstance(model, nn.Module):
            raise TypeError(f"mkor is built from an nn.Module (it hooks its layers), got {type(model).__name__}")
        return MKOR(model, lr=lr, params=_groups(model, weight_decay), **options)
    if factory is _lbfgs or factory is NNCG:  # one group: L-BFGS does not support several, NNCG's step couples all
        params = [p for p in (model.parameters() if isinstance(model, nn.Module) else model) if p.requires_grad]
        if factory is NNCG:
            if weight_decay:
                raise ValueError(f"nncg takes no weight_decay, got {weight_decay}")
            return NNCG(params, lr=lr, **options)
        return factory(params, lr=lr, weight_decay=weight_decay, **options)
    return factory(_groups(model, weight_decay), lr=lr, **options)
