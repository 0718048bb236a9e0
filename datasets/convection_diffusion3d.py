"""Steady convection–diffusion on the unit cube in a random divergence-free flow.

    −ε Δu + v·∇u = f  on (0, 1)³,   u = 0 on the boundary,                              (1)

    v = V ∇×(ψ₂, 0, ψ₁) = V (∂ψ₁/∂y, ∂ψ₂/∂z − ∂ψ₁/∂x, −∂ψ₂/∂y),                         (2)

with ψ₁, ψ₂ independent Gaussian random fields (:func:`sciml.datasets.grf3d.grf3d`), so that
``∇·v = 0`` and the flow turns in every plane. The velocity is taken at the nodes by
second-order differences (``torch.gradient``). The 3-D counterpart of
:mod:`.convection_diffusion` and discretized the same way, axis by axis: the seven-point
Laplacian and central differences for ``v·∇u`` where the cell Péclet number
``|v_a| h / (2ε) ≤ 1`` (second order), first-order upwinding where it exceeds 1, so the
matrix is a non-symmetric M-matrix on every grid (Morton, "Numerical Solution of
Convection–Diffusion Problems", 1996, Ch. 2).
"""
import torch

from .fdm import check_real, check_resolution
from .fdm3d import GridFamily3D, embed3d, forcing_vector3d, seven_point_matrices
from .grf3d import grf3d

__all__ = ["ConvectionDiffusion3D"]


class ConvectionDiffusion3D(GridFamily3D):
    """Convection–diffusion (1) in the flow (2).

    Parameters
    ----------
    epsilon : float
        Diffusivity ε > 0.
    velocity : float
        Amplitude V ≥ 0 of the flow (2).
    alpha, tau : float
        Covariance of the potentials' GRFs.
    forcing : float
        Constant right-hand side ``f``.

    Notes
    -----
    Parameters: ``{"stream": ψ₁, "stream2": ψ₂}``, each ``(n, R, R, R)``. Inputs: ``v``
    (three channels), sorted on, flattened. Outputs: ``u``. Non-symmetric, a new matrix per
    sample.
    """

    name = "convection_diffusion3d"
    #: The preconditioner of its Krylov solves: multigrid with Gauss–Seidel smoothing.
    krylov_preconditioner = "gsmg"
    in_channels = 3
    out_channels = 1
    spd = False
    matrix_varies = True
    _param_keys = ("stream", "stream2")

    def __init__(self, epsilon=0.05, velocity=1.0, alpha=2.0, tau=3.0, forcing=1.0):
        self.epsilon = check_real("epsilon", epsilon, positive=True)
        self.velocity = check_real("velocity", velocity)
        if self.velocity < 0:
            raise ValueError(f"velocity must be >= 0, got {velocity!r}")
        self.alpha = check_real("alpha", alpha, positive=True)
        self.tau = check_real("tau", tau, positive=True)
        self.forcing = check_real("forcing", forcing)
        self._options = {"epsilon": self.epsilon, "velocity": self.velocity,
                         "alpha": self.alpha, "tau": self.tau, "forcing": self.forcing}

    def sample_params(self, n, resolution, generator=None, device=None):
        """``{"stream": ψ₁, "stream2": ψ₂}``, each ``(n, R, R, R)`` float64 on ``device``."""
        check_resolution(resolution)
        draw = lambda: grf3d(n, resolution, alpha=self.alpha, tau=self.tau,  # noqa: E731
                             generator=generator, device=device)
        return {"stream": draw(), "stream2": draw()}

    def flow(self, params):
        """The velocity (2) at the nodes, ``(n, 3, R, R, R)`` float64."""
        self._check_params(params)
        psi1, psi2 = (params[key].to(torch.float64) for key in self._param_keys)
        h = 1.0 / (psi1.shape[-1] - 1)
        d1x, d1y = torch.gradient(psi1, spacing=h, dim=(1, 2), edge_order=2)
        d2y, d2z = torch.gradient(psi2, spacing=h, dim=(2, 3), edge_order=2)
        return self.velocity * torch.stack([d1y, d2z - d1x, -d2y], 1)

    def inputs(self, params):
        """The velocity, ``(n, 3, R, R, R)``."""
        return self.flow(params)

    def sort_features(self, params):
        """The velocity flattened, ``(n, 3 R³)``."""
        return self.flow(params).flatten(1)

    def _matrices(self, v):
        m = v.shape[-1] - 2
        h = 1.0 / (m + 1)
        diffusion = self.epsilon * (m + 1) ** 2
        centre, couplings = 0, []
        for axis in range(3):
            vel = v[:, axis, 1:-1, 1:-1, 1:-1]
            central = vel.abs() * h <= 2 * self.epsilon                  # cell Péclet ≤ 1
            # Central differences where resolved, upwinding elsewhere (module docstring).
            minus = torch.where(central, -diffusion - vel / (2 * h),
                                -diffusion - vel.clamp(min=0) / h)
            plus = torch.where(central, -diffusion + vel / (2 * h),
                               -diffusion + vel.clamp(max=0) / h)
            centre = centre + 2 * diffusion + (~central) * vel.abs() / h
            couplings += [minus, plus]
        return seven_point_matrices(centre, *couplings)

    def assemble(self, v, f=None):
        """The system of one sample.

        Parameters
        ----------
        v : Tensor, shape (3, R, R, R)
            Velocity at the nodes.
        f : float or Tensor of shape (R, R, R), optional
            Right-hand side at the nodes; default the constant ``forcing``.

        Returns
        -------
        A : Tensor, shape ((R − 2)³, (R − 2)³), CSR float64, a non-symmetric M-matrix
        b : Tensor, shape ((R − 2)³,), float64
        """
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"v must be a floating-point torch.Tensor, got {type(v).__name__}")
        if v.ndim != 4 or v.shape[0] != 3 or len(set(v.shape[1:])) != 1:
            raise ValueError(f"v must have shape (3, R, R, R), got {tuple(v.shape)}")
        check_resolution(v.shape[-1])
        if not bool(torch.isfinite(v).all()):
            raise ValueError("v must be finite, got NaN or inf values")
        v = v.to(torch.float64)
        b = forcing_vector3d(self.forcing if f is None else f, v.shape[-1], v.device, like="v")
        return self._matrices(v[None])[0], b

    def solve(self, params, linear_solve):
        """Assemble the block's systems and solve with ``linear_solve``.

        Returns
        -------
        Tensor, shape (n, 1, R, R, R), float64, zero on the boundary
        """
        v = self.flow(params)
        resolution = v.shape[-1]
        B = forcing_vector3d(self.forcing, resolution, v.device, like="v", samples=v.shape[0])
        return embed3d(linear_solve(self._matrices(v), B), resolution)[:, None]
