"""sciml: scientific machine learning behind one small API.

Generate PDE datasets (:mod:`sciml.datasets`), train neural operators, PINNs, neural ODEs
and diffusion models (:mod:`sciml.operators`, :mod:`sciml.solvers`) with one
:class:`Trainer`, and sample any of them with ``solver.sample``.

``import sciml`` stays fast: the heavy parts load on first use.
"""
from importlib import import_module

__version__ = "0.1.0"

_LAZY = {
    "Solver": "sciml.solver",
    "Trainer": "sciml.train",
    "History": "sciml.train",
    "losses": "sciml.losses",
    "load_run": "sciml.runs",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return module if name == "losses" else getattr(module, name)
    raise AttributeError(f"module 'sciml' has no attribute {name!r}")
