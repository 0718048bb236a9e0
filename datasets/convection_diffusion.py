"""Steady convection–diffusion in a random divergence-free flow: non-symmetric systems.

    −ε Δu + v·∇u = f  on (0, 1)²,   u = 0 on the boundary,                              (1)

    v = V (∂ψ/∂y, −∂ψ/∂x),   ψ a Gaussian random stream function,                       (2)

so ``∇·v = 0``. The velocity is taken at the nodes from ψ by second-order differences
(``torch.gradient``, central inside, one-sided second order on the boundary). Eq. (1) is
discretized at the interior nodes by the five-point Laplacian and central differences for
the convection term, per direction (x shown; y likewise with v_y):

    −ε (u_{i+1,j} − 2u_{i,j} + u_{i−1,j}) / h² + v_x (u_{i+1,j} − u_{i−1,j}) / (2h),    (3)

second order. Central differences keep the matrix an M-matrix (non-positive off-diagonals,
diagonally dominant, hence a non-negative inverse and a discrete maximum principle) only
where the cell Péclet number ``|v_x| h / (2ε) ≤ 1``; at nodes where it exceeds 1 the
convection term switches to first-order upwinding,

    v_x (u_{i,j} − u_{i−1,j}) / h  (v_x > 0),   v_x (u_{i+1,j} − u_{i,j}) / h  (v_x < 0),   (4)

so the matrix is an M-matrix on every grid (no spurious oscillations), second order where the
flow is resolved and first order only where it is not.
"""
import torch

from .fdm import GridFamily, check_real, check_resolution, embed, five_point_matrices, \
    forcing_vector
from .grf import grf

__all__ = ["ConvectionDiffusion"]


class ConvectionDiffusion(GridFamily):
    """Convection–diffusion (1) in the flow (2), discretized by (3)–(4).

    Parameters
    ----------
    epsilon : float
        Diffusivity ε > 0.
    velocity : float
        Amplitude V ≥ 0 of the flow (2).
    alpha, tau : float
        Covariance of the stream function's GRF.
    forcing : float
        Constant right-hand side ``f``.

    Notes
    -----
    Parameters: ``{"stream": ψ}``, ``(n, R, R)``. Inputs: ``v_x, v_y`` (two channels), sorted
    on both, flattened. Outputs: ``u``. Non-symmetric (``spd`` False), a new matrix per sample.
    """

    name = "convection_diffusion"
    #: The preconditioner of its Krylov solves: multigrid with Gauss–Seidel smoothing.
    krylov_preconditioner = "gsmg"
    in_channels = 2
    out_channels = 1
    spd = False
    matrix_varies = True
    _param_keys = ("stream",)

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
        """``{"stream": ψ}``, ψ of shape ``(n, R, R)`` float64 on ``device``."""
        check_resolution(resolution)
        return {"stream": grf(n, resolution, alpha=self.alpha, tau=self.tau,
                              generator=generator, device=device)}

    def flow(self, params):
        """The velocity (2) at the nodes, ``(n, 2, R, R)`` float64: channels ``v_x, v_y``."""
        self._check_params(params)
        psi = params["stream"].to(torch.float64)
        h = 1.0 / (psi.shape[-1] - 1)
        dpsi_dx, dpsi_dy = torch.gradient(psi, spacing=h, dim=(1, 2), edge_order=2)
        return self.velocity * torch.stack([dpsi_dy, -dpsi_dx], 1)

    def inputs(self, params):
        """The velocity ``(v_x, v_y)``, ``(n, 2, R, R)``."""
        return self.flow(params)

    def sort_features(self, params):
        """The velocity flattened, ``(n, 2 R²)``."""
        return self.flow(params).flatten(1)

    def _matrices(self, v):
        m = v.shape[-1] - 2
        h = 1.0 / (m + 1)
        diffusion = self.epsilon * (m + 1) ** 2
        vx, vy = v[:, 0, 1:-1, 1:-1], v[:, 1, 1:-1, 1:-1]
        couplings = []
        for vel in (vx, vy):
            central = vel.abs() * h <= 2 * self.epsilon          # cell Péclet ≤ 1
            # Eq. (3) where central, eq. (4) elsewhere; (minus, plus) neighbour and centre.
            minus = torch.where(central, -diffusion - vel / (2 * h),
                                -diffusion - vel.clamp(min=0) / h)
            plus = torch.where(central, -diffusion + vel / (2 * h),
                               -diffusion + vel.clamp(max=0) / h)
            centre = 2 * diffusion + (~central) * vel.abs() / h
            couplings.append((minus, plus, centre))
        (w, e, cx), (s, n, cy) = couplings
        return five_point_matrices(cx + cy, w, e, s, n)

    def assemble(self, v, f=None):
        """The system (3)–(4) of one sample.

        Parameters
        ----------
        v : Tensor, shape (2, R, R)
            Velocity ``(v_x, v_y)`` at the nodes.
        f : float or Tensor of shape (R, R), optional
            Right-hand side at the nodes (boundary values unused), finite; default the
            constant ``forcing``.

        Returns
        -------
        A : Tensor, shape ((R − 2)², (R − 2)²), CSR float64, a non-symmetric M-matrix
        b : Tensor, shape ((R − 2)²,), float64
        """
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"v must be a floating-point torch.Tensor, got {type(v).__name__}")
        if v.ndim != 3 or v.shape[0] != 2 or v.shape[1] != v.shape[2]:
            raise ValueError(f"v must have shape (2, R, R), got {tuple(v.shape)}")
        check_resolution(v.shape[-1])
        if not bool(torch.isfinite(v).all()):
            raise ValueError("v must be finite, got NaN or inf values")
        v = v.to(torch.float64)
        b = forcing_vector(self.forcing if f is None else f, v.shape[-1], v.device, like="v")
        return self._matrices(v[None])[0], b

    def solve(self, params, linear_solve):
        """Assemble (3)–(4) for the block and solve with ``linear_solve``.

        Returns
        -------
        Tensor, shape (n, 1, R, R), float64, zero on the boundary
        """
        v = self.flow(params)
        resolution = v.shape[-1]
        B = forcing_vector(self.forcing, resolution, v.device, like="v", samples=v.shape[0])
        return embed(linear_solve(self._matrices(v), B), resolution)[:, None]
