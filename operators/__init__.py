"""Neural operators: plain ``nn.Module``s mapping ``(B, C_in, *grid) → (B, C_out, *grid)``.

They know nothing of Solvers or Trainers, so they drop into any torch code. Loaded lazily:
``import sciml.operators`` does not import neuraloperator (about 2 s) until a model is used.
"""
from __future__ import annotations

from importlib import import_module

from torch import nn

__all__ = ["FNO", "TFNO", "MGTFNO", "LSM", "MgNO", "OPERATORS", "build_operator"]

# name -> (module, class); the registry ``build_operator`` and ``sciml train --model`` read
OPERATORS: dict[str, tuple[str, str]] = {
    "fno": ("sciml.operators.fno", "FNO"),
    "tfno": ("sciml.operators.fno", "TFNO"),
    "mg_tfno": ("sciml.operators.mg_tfno", "MGTFNO"),
    "lsm": ("sciml.operators.lsm", "LSM"),
    "mgno": ("sciml.operators.mgno", "MgNO"),
}


def __getattr__(name: str):
    for module, cls in OPERATORS.values():
        if cls == name:
            return getattr(import_module(module), cls)
    raise AttributeError(f"module 'sciml.operators' has no attribute {name!r}")


def build_operator(name: str, **kwargs) -> nn.Module:
    """An operator by registry name, e.g. ``build_operator("fno", n_modes=(12, 12), ...)``."""
    key = name.lower() if isinstance(name, str) else name
    if key not in OPERATORS:
        raise ValueError(f"unknown model {name!r}; expected one of: {', '.join(OPERATORS)}")
    module, cls = OPERATORS[key]
    return getattr(import_module(module), cls)(**kwargs)
