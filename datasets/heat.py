"""The heat equation with a random conductivity, stepped by Crank–Nicolson.

    u_t = ∇·(a(x) ∇u)  on (0, 1)² × (0, T dt],   u = 0 on the boundary,   u(0) = u₀,      (1)

with ``a = exp(ψ_a)`` log-normal and ``u₀(x, y) = ψ₀(x, y) sin(πx) sin(πy)``, ψ_a and ψ₀
independent Gaussian random fields (:func:`sciml.datasets.grf`); the window makes ``u₀``
smooth and zero on the boundary, compatible with the boundary condition. In space, the
flux-form five-point operator ``L_a`` of :mod:`.darcy` (eqs. (2)–(3) there, second order,
SPD); in time, Crank–Nicolson (second order, A-stable):

    (I + dt/2 L_a) u^{k+1} = (I − dt/2 L_a) u^k = 2 u^k − (I + dt/2 L_a) u^k,             (2)

for ``k = 0 … T − 1``. Each sample is a sequence of T systems with one SPD matrix and
changing right-hand sides, solved from the previous step: the case Krylov recycling is made
for. Crank–Nicolson damps the stiffest modes only weakly (amplification → −1 as
``dt λ → ∞``); the smooth initial data carries almost nothing in them.

SKR's "thermal" set (Wang et al., ICLR 2024) is different: the steady Laplace equation on a
plate with a slot (finite elements, MATLAB PDE toolbox), random boundary temperature and flux
in [0, 100] and [−100, 0], one matrix for every sample; matrix sizes 2755 … 70031, main table
11063 (about 105², ``resolution`` 107 here), tolerances 1e-5 … 1e-11.
"""
import torch

from sciml.validation import positive_int

from .fdm import GridFamily, apply_five_point, check_real, check_resolution, embed, \
    five_point_matrices, flux_form_couplings, nodes
from .grf import grf

__all__ = ["Heat"]


class Heat(GridFamily):
    """The heat equation (1), stepped by (2).

    Parameters
    ----------
    dt : float
        Time step (> 0).
    time_steps : int
        Number T of steps, all stored (≥ 1).
    alpha, tau : float
        Covariance of both GRFs.

    Notes
    -----
    Parameters: ``{"grf": ψ_a, "initial": ψ₀}``, both ``(n, R, R)``. Inputs: ``a`` and ``u₀``
    (two channels), sorted on both, flattened. Outputs: ``(n, 1, T, R, R)``, ``u`` at
    ``dt, 2 dt, …, T dt``. SPD; one matrix per sample, shared by its T steps.
    """

    name = "heat"
    in_channels = 2
    out_channels = 1
    spd = True
    matrix_varies = True
    _param_keys = ("grf", "initial")

    def __init__(self, dt=0.005, time_steps=10, alpha=2.0, tau=3.0):
        self.dt = check_real("dt", dt, positive=True)
        self.time_steps = positive_int("time_steps", time_steps)
        self.alpha = check_real("alpha", alpha, positive=True)
        self.tau = check_real("tau", tau, positive=True)
        self._options = {"dt": self.dt, "time_steps": self.time_steps, "alpha": self.alpha,
                         "tau": self.tau}

    def sample_params(self, n, resolution, generator=None, device=None):
        """``{"grf": ψ_a, "initial": ψ₀}``, each ``(n, R, R)`` float64 on ``device``."""
        check_resolution(resolution)
        return {key: grf(n, resolution, alpha=self.alpha, tau=self.tau, generator=generator,
                         device=device) for key in self._param_keys}

    def _fields(self, params):
        self._check_params(params)
        a = torch.exp(params["grf"].to(torch.float64))
        X, Y = nodes(a.shape[-1], a.device)
        window = torch.sin(torch.pi * X) * torch.sin(torch.pi * Y)
        u0 = params["initial"].to(torch.float64) * window
        return a, u0

    def inputs(self, params):
        """``a`` and ``u₀``, ``(n, 2, R, R)`` float64."""
        return torch.stack(self._fields(params), 1)

    def sort_features(self, params):
        """:meth:`inputs` flattened, ``(n, 2 R²)``."""
        return self.inputs(params).flatten(1)

    def _couplings(self, a):
        # The couplings of I + dt/2 L_a, eq. (2).
        c, w, e, s, n = (0.5 * self.dt * t for t in flux_form_couplings(a))
        return c + 1, w, e, s, n

    def assemble(self, a):
        """The Crank–Nicolson matrix ``I + dt/2 L_a`` of (2) for one coefficient.

        Parameters
        ----------
        a : Tensor, shape (R, R)
            Conductivity at the nodes, > 0.

        Returns
        -------
        Tensor, shape ((R − 2)², (R − 2)²), CSR float64, SPD
        """
        if not isinstance(a, torch.Tensor) or not a.is_floating_point():
            raise TypeError(f"a must be a floating-point torch.Tensor, got {type(a).__name__}")
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"a must have shape (R, R), got {tuple(a.shape)}")
        check_resolution(a.shape[0])
        if not bool((a > 0).all()):
            raise ValueError(f"a must be > 0 everywhere, got minimum {float(a.min())!r}")
        return five_point_matrices(*self._couplings(a[None].to(torch.float64)))[0]

    def solve(self, params, linear_solve):
        """Step the block through (2), one ``linear_solve`` call per step.

        Each call gets the same matrix objects and ``X0`` = the previous step.

        Returns
        -------
        Tensor, shape (n, 1, T, R, R), float64, zero on the boundary
        """
        a, u0 = self._fields(params)
        n, resolution = a.shape[0], a.shape[-1]
        couplings = self._couplings(a)
        As = five_point_matrices(*couplings)
        x = u0[:, 1:-1, 1:-1].reshape(n, -1)
        steps = []
        for _ in range(self.time_steps):
            x = linear_solve(As, 2 * x - apply_five_point(*couplings, x), X0=x)
            steps.append(x)
        return embed(torch.stack(steps, 1), resolution)[:, None]
