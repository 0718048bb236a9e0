"""M-FAC: preconditioning by the inverse of an empirical Fisher over a sliding window of gradients.

Frantar, Kurtic & Alistarh, "M-FAC: Efficient Matrix-Free Approximations of Second-Order
Information", NeurIPS 2021, arXiv:2107.03356, Sec. 3 (the dynamic, sliding-window algorithm).
With the last m gradients as the rows of G (m × d) and damping λ, the curvature is

    F = λ I + (1/m) Gᵀ G                                                              (1)

and the step direction is the inverse-Hessian-vector product (IHVP) F⁻¹ g. The paper unrolls
(1) as m Sherman–Morrison updates, whose coefficients depend on G only through the m × m
matrix of scalar products G Gᵀ; collected, they give the Woodbury form

    F⁻¹ x = (1/λ) (x − Gᵀ A⁻¹ G x),   A = λ m I + G Gᵀ                              (2)

so an IHVP costs two products with G and one with A⁻¹: O(dm + m²). When the newest gradient
replaces the oldest (row i of G), row and column i of G Gᵀ are recomputed (O(dm)) and A changes
by the symmetric rank-two term e_i wᵀ + w e_iᵀ, so A⁻¹ follows by Woodbury with a 2 × 2 core
(O(m²)):

    A'⁻¹ = A⁻¹ − A⁻¹U (C + Uᵀ A⁻¹ U)⁻¹ Uᵀ A⁻¹,   U = [e_i, w],  C = [[0, 1], [1, 0]]      (3)

Rounding in (3) accumulates and, where A is ill-conditioned, cancels: A⁻¹ is recomputed exactly
every m replacements and whenever the residual of A A⁻¹ on a fixed vector (an O(m²) check)
exceeds 1e-10 (O(m³), m ≪ d). The optimizer keeps one window for all its parameters
(flattened, complex as pairs of reals) and steps by SGD with momentum on F⁻¹g, as the paper's
optimizer does; weight decay is decoupled. Plain torch: the same code runs on CPU and CUDA.

GᵀG/m is the empirical Fisher, not the Hessian: it carries the curvature where gradient noise
keeps it from vanishing. For least squares with inputs x ~ N(0, Σ), noise σ and error δ, the
per-sample gradients have E[ggᵀ] = 4(δᵀΣδ + σ²)Σ + 8ΣδδᵀΣ, stiff where the Hessian 2Σ is; without
noise this vanishes with δ and F⁻¹g grows like the inverse of the loss (Kunstner, Balles &
Hennig 2019, "Limitations of the empirical Fisher approximation"). λ sets the step along the
directions the window does not see.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torch.optim import Optimizer

from ._adam import real_view
from ._checks import check_range

__all__ = ["MFAC", "SlidingWindowIHVP"]


class SlidingWindowIHVP:
    """F⁻¹ x for F = λI + GᵀG/m over a ring buffer of the last m gradients, (1)–(3).

    Parameters
    ----------
    dim : d, the length of a gradient.
    m : window length (number of gradients kept).
    damp : λ > 0.
    dtype, device : of the gradient buffer G (use float64 for exact comparisons); the m × m
        matrices are always float64.

    The buffers start at zero: rows not yet filled contribute nothing to (1).
    """

    def __init__(self, dim: int, m: int, damp: float, dtype: torch.dtype = torch.float32,
                 device: torch.device | str | None = None):
        self.m, self.damp = m, float(damp)
        self.grads = torch.zeros(m, dim, dtype=dtype, device=device)  # G
        # the m × m matrices in float64: A is as ill-conditioned as the gradients are large against λ
        self.gram = torch.zeros(m, m, dtype=torch.float64, device=device)  # G Gᵀ
        self.inverse = torch.eye(m, dtype=torch.float64, device=device) / (self.damp * m)  # A⁻¹ with G = 0
        self.slot, self.replaced = 0, 0

    def add(self, g: Tensor) -> None:
        """Replace the oldest gradient by ``g`` (d,): O(dm + m²)."""
        i, G = self.slot, self.grads
        G[i] = g
        row = G.double() @ g.double()  # new row i of G Gᵀ, in float64 like the m × m matrices
        change = row - self.gram[i]
        self.gram[i], self.gram[:, i] = row, row
        self.slot, self.replaced = (i + 1) % self.m, self.replaced + 1
        if self.replaced % self.m == 0:  # exact refresh against the drift of (3)
            self._invert()
            return
        w = change.clone()
        w[i] -= change[i] / 2  # e_i wᵀ + w e_iᵀ adds change[i] once on the diagonal
        inv = self.inverse
        inv_u = torch.stack([inv[:, i], inv @ w], dim=1)  # A⁻¹ U, (m, 2)
        core = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=inv.dtype, device=inv.device)
        core = core + torch.stack([inv_u[i], w @ inv_u])  # C + Uᵀ A⁻¹ U
        try:
            self.inverse = inv - inv_u @ torch.linalg.solve(core, inv_u.T)  # (3)
        except torch.linalg.LinAlgError:
            self._invert()
            return
        # (3) cancels large terms when A is ill-conditioned (m > d, or gradients large against λ):
        # an O(m²) residual check A (A⁻¹ 1) = 1, and an exact inversion where it fails
        ones = torch.ones(self.m, dtype=inv.dtype, device=inv.device)
        y = self.inverse @ ones
        residual = self.damp * self.m * y + self.gram @ y - ones
        if not residual.norm() <= 1e-10 * self.m ** 0.5:
            self._invert()

    def _invert(self) -> None:
        """A⁻¹ from the eigenvalues of G Gᵀ, clipped at zero (it is PSD; rounding may say otherwise)."""
        mu, v = torch.linalg.eigh(self.gram)
        self.inverse = (v / (self.damp * self.m + mu.clamp_min(0))) @ v.T

    def ihvp(self, x: Tensor) -> Tensor:
        """F⁻¹ x for x of shape (d,), by (2): O(dm + m²)."""
        # In float64: x − Gᵀc cancels almost completely when the gradients are large against λ
        # (in float32 the error reached 5% at ‖g‖ ≈ 70 with λ = 1e-4).
        G, x64 = self.grads.double(), x.double()
        coef = self.inverse @ (G @ x64)
        return ((x64 - G.T @ coef) / self.damp).to(x.dtype)  # (2)

    def state_dict(self) -> dict:
        return {"grads": self.grads, "gram": self.gram, "inverse": self.inverse, "slot": self.slot,
                "replaced": self.replaced}

    def load_state_dict(self, state: dict) -> None:
        self.grads, self.gram, self.inverse = state["grads"], state["gram"], state["inverse"]
        self.slot, self.replaced = state["slot"], state["replaced"]


class MFAC(Optimizer):
    """M-FAC with SGD momentum on the preconditioned gradient (see the module docstring).

    Parameters
    ----------
    params : parameters or parameter groups (real or complex); one window serves them all.
    lr : learning rate (default 1e-3).
    momentum : SGD momentum on F⁻¹g (default 0).
    weight_decay : decoupled weight decay (default 0).
    ngrads : m, the window length (default 32; the paper uses up to 1024 on a GPU).
    damp : λ (default 1e-4).

    The window is built at the first step, in the dtype and on the device of the first
    parameter; its memory is m × d numbers.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, weight_decay: float = 0.0, *,
                 ngrads: int = 32, damp: float = 1e-4):
        if isinstance(ngrads, bool) or not isinstance(ngrads, int) or ngrads < 1:
            raise ValueError(f"ngrads must be an integer >= 1, got {ngrads!r}")
        check_range("damp", damp, 0.0, low_open=True)
        self.ngrads, self.damp = ngrads, float(damp)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))
        self._window: SlidingWindowIHVP | None = None

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_range("lr", group["lr"], 0.0)
        check_range("momentum", group["momentum"], 0.0, 1.0)
        check_range("weight_decay", group["weight_decay"], 0.0)

    def _params(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def _window_for(self, params: list[Tensor]) -> SlidingWindowIHVP:
        if self._window is None:
            dim = sum(real_view(p).numel() for p in params)
            dtype = params[0].real.dtype if params[0].is_complex() else params[0].dtype
            self._window = SlidingWindowIHVP(dim, self.ngrads, self.damp, dtype, params[0].device)
            if "mfac" in self.state:  # restored by load_state_dict before the first step
                self._window.load_state_dict({k: v.clone() if torch.is_tensor(v) else v
                                              for k, v in self.state["mfac"].items()})
            self.state["mfac"] = self._window.state_dict()
        return self._window

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._window = None  # rebuilt from self.state["mfac"] at the next step

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One step; ``closure`` re-evaluates the loss and returns it."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params()
        if all(p.grad is None for p in params):
            return loss
        window = self._window_for(params)
        # a parameter without a gradient this step contributes zeros: the window keeps one layout
        g = torch.cat([real_view(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        window.add(g.to(window.grads.dtype))
        direction = window.ihvp(g.to(window.grads.dtype))  # F⁻¹ g, (2)
        self.state["mfac"] = window.state_dict()
        offset = 0
        for group in self.param_groups:
            for p in group["params"]:
                w = real_view(p)
                n = w.numel()
                d = direction[offset: offset + n].view_as(w).to(w.dtype)
                offset += n
                if p.grad is None:
                    continue
                if group["momentum"]:
                    state = self.state[p]
                    buf = state.setdefault("momentum_buffer", torch.zeros_like(w))
                    d = buf.mul_(group["momentum"]).add_(d)
                if group["weight_decay"]:
                    w.mul_(1 - group["lr"] * group["weight_decay"])
                w.add_(d, alpha=-group["lr"])
        return loss
