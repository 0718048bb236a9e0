"""PDE datasets: random fields, PDE families, orderings, linear solvers, generator and reader.

>>> from sciml.datasets import generate, H5Dataset
>>> path = generate("darcy", n=110, resolution=33, out="darcy33.h5")   # doctest: +SKIP
>>> train = H5Dataset(path, split="train")                             # doctest: +SKIP
"""
from .generate import generate
from .grf import grf
from .hdf5 import H5Dataset
from .linsolve import LINEAR_SOLVERS, SolveResult, get_linear_solver, solve_direct
from .pdes import PDES, ConvectionDiffusion, Darcy, Heat, Helmholtz, Poisson, get_pde
from .sorting import ORDERINGS, get_ordering, greedy_order, identity_order, tour_length

__all__ = ["grf", "Darcy", "Poisson", "Helmholtz", "Heat", "ConvectionDiffusion", "PDES",
           "get_pde", "ORDERINGS", "get_ordering", "greedy_order", "identity_order",
           "tour_length", "SolveResult", "solve_direct", "LINEAR_SOLVERS", "get_linear_solver",
           "generate", "H5Dataset"]
