"""MKOR: Kronecker-factored preconditioning with rank-one Sherman–Morrison updates of the inverses.

Mozaffari, Li, Zhang & Mehri Dehnavi, "MKOR: Momentum-Enabled Kronecker-Factor-Based Optimizer
Using Rank-1 Updates", NeurIPS 2023, Sec. 3 and Algorithm 1 (numbered here).
For a layer y = W a (+ b) — Linear or 1×1 convolution, bias as a column of W against a constant
1 in a — the curvature is approximated by the Kronecker product of an output-gradient factor L and
an activation factor R, both exponential averages of rank-one terms built from the batch means
ḡ (output gradients, summed over the rows of a batch-mean loss) and ā (inputs):

    L_t = γ L_{t−1} + (1 − γ) ḡ ḡᵀ,    R_t = γ R_{t−1} + (1 − γ) ā āᵀ                 (1)

whose inverses follow by Sherman–Morrison, with J⁻¹ symmetric and u = J⁻¹v:

    (γ J + (1 − γ) v vᵀ)⁻¹ = (1/γ) [ J⁻¹ − (1 − γ) u uᵀ / (γ + (1 − γ) vᵀu) ]         (2)

(O(n²) per factor instead of an O(n³) inversion; refreshed every ``inv_freq`` steps, starting
from the identity). The preconditioned gradient is rescaled to the norm of the gradient, so the
step size stays that of the first-order backend that applies it:

    Δ = L⁻¹ ∇W R⁻¹,    Δ ← Δ · ‖∇W‖_F / ‖Δ‖_F                                         (3)

Factors that only decay in some direction grow their inverses by 1/γ per update; once an
inverse's largest entry passes ``max_inverse`` it is pulled back as J⁻¹ ← ζ J⁻¹ + (1 − ζ) I
(the paper's stabilization factor ζ; the trigger is ours). All other parameters (biases of
other layers, norms, complex spectral weights, k×k convolutions) get the backend's plain step.

MKOR-H (``hybrid=True``, the paper's hybrid variant): second-order steps speed up the early phase; once the loss
falls by less than ``switch_threshold`` (relative) from one window of ``switch_window`` steps to
the next, the optimizer switches to the first-order backend for good. For that it declares
``"loss"`` in :attr:`MKOR.step_requires` and takes ``step(loss=...)``.

The optimizer is built from the model: forward hooks record ā, hooks on the layer outputs
record ḡ (the last gradient that reaches an output wins, so derivatives that a PINN takes of
its network before ``loss.backward()`` do not count). Statistics are collected in training mode
with gradients enabled and cleared by ``zero_grad``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from ._adam import real_view
from ._backend import adam_step, momentum_step
from ._checks import check_betas, check_choice, check_range

__all__ = ["MKOR", "sherman_morrison_update", "BACKENDS"]

BACKENDS = ("adam", "sgd")


def sherman_morrison_update(inverse: Tensor, v: Tensor, gamma: float) -> Tensor:
    """(γ J + (1 − γ) v vᵀ)⁻¹ from J⁻¹ (symmetric) and v, by (2)."""
    u = inverse @ v
    return (inverse - (1 - gamma) * torch.outer(u, u) / (gamma + (1 - gamma) * (v @ u))) / gamma  # (2)


def _eligible(module: nn.Module) -> bool:
    """A Linear layer or a 1×1, stride-1 convolution without groups: y = W a (+ b) row by row."""
    if isinstance(module, nn.Linear):
        return module.weight.requires_grad
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        return (module.weight.requires_grad and module.groups == 1 and all(k == 1 for k in module.kernel_size)
                and all(p == 0 for p in module.padding) and all(s == 1 for s in module.stride))
    return False


def _rows(t: Tensor, conv: bool) -> Tensor:
    """``(N, C, *S)`` (conv) or ``(..., C)`` (linear) as rows ``(n, C)``."""
    return t.movedim(1, -1).reshape(-1, t.shape[1]) if conv else t.reshape(-1, t.shape[-1])


class _Layer:
    """One preconditioned layer: its parameters and this step's statistics."""

    def __init__(self, module: nn.Module):
        self.module, self.conv = module, not isinstance(module, nn.Linear)
        self.weight = module.weight
        # A frozen bias is a constant, not a column of the preconditioned matrix.
        self.bias = module.bias if module.bias is not None and module.bias.requires_grad else None
        self.clear()

    def clear(self) -> None:
        self.a_sum, self.a_rows, self.g_calls = None, 0, []

    def forward_hook(self, module, inputs, output) -> None:
        if not (module.training and torch.is_grad_enabled() and output.requires_grad):
            return
        with torch.no_grad():
            a = _rows(inputs[0].detach(), self.conv)
            s = a.sum(0)
            if self.bias is not None:
                s = torch.cat([s, s.new_full((1,), a.shape[0])])  # the constant input of the bias
            self.a_sum = s if self.a_sum is None else self.a_sum + s
            self.a_rows += a.shape[0]
        slot = len(self.g_calls)
        self.g_calls.append(None)

        def keep(grad: Tensor) -> None:
            self.g_calls[slot] = _rows(grad.detach(), self.conv).sum(0)  # later gradients overwrite earlier ones

        output.register_hook(keep)

    def means(self) -> tuple[Tensor, Tensor] | None:
        """(ā, ḡ) of this step, or None if the layer saw no complete forward and backward pass."""
        grads = [g for g in self.g_calls if g is not None]
        if self.a_sum is None or not grads:
            return None
        return self.a_sum / self.a_rows, torch.stack(grads).sum(0)

    def matrix(self, w: Tensor, b: Tensor | None) -> Tensor:
        """[W | b] as ``(out, in [+ 1])``."""
        w = w.reshape(w.shape[0], -1)
        return torch.cat([w, b[:, None]], dim=1) if b is not None else w


class MKOR(Optimizer):
    """MKOR / MKOR-H over a model's Linear and 1×1 conv layers (see the module docstring).

    Parameters
    ----------
    model : the module whose layers are hooked (e.g. a Solver).
    lr : learning rate of the backend (default 1e-3).
    weight_decay : decoupled weight decay (default 0).
    params : parameters or groups to optimise (default: all trainable parameters of ``model``).
    stat_decay : γ of (1) (default 0.95).
    inv_freq : steps between updates (2) of the inverse factors (default 10).
    backend : ``"adam"`` (default) or ``"sgd"`` (with ``momentum``), the first-order method that
        applies Δ of (3) and steps the other parameters.
    betas, eps : Adam's (β₁, β₂) and ε.
    momentum : SGD momentum.
    stabilization : ζ of the safeguard on the inverse factors (default 0.1).
    max_inverse : entry size of an inverse factor that triggers the safeguard (default 1e6).
    hybrid : MKOR-H, switch to the backend alone when the loss stalls.
    switch_window, switch_threshold : the stall test of MKOR-H.
    """

    def __init__(self, model: nn.Module, lr: float = 1e-3, weight_decay: float = 0.0, *, params=None,
                 stat_decay: float = 0.95, inv_freq: int = 10, backend: str = "adam", betas=(0.9, 0.999),
                 eps: float = 1e-8, momentum: float = 0.9, stabilization: float = 0.1, max_inverse: float = 1e6,
                 hybrid: bool = False, switch_window: int = 50, switch_threshold: float = 0.01):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module (MKOR hooks its layers), got {type(model).__name__}")
        check_range("stat_decay", stat_decay, 0.0, 1.0, low_open=True)
        check_choice("backend", backend, BACKENDS)
        check_range("stabilization", stabilization, 0.0, 1.0, high_open=False)
        check_range("max_inverse", max_inverse, 1.0, low_open=True)
        check_range("switch_threshold", switch_threshold, 0.0)
        for name, value in (("inv_freq", inv_freq), ("switch_window", switch_window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(hybrid, bool):
            raise ValueError(f"hybrid must be True or False, got {hybrid!r}")
        self.stat_decay, self.inv_freq, self.backend = float(stat_decay), inv_freq, backend
        self.stabilization, self.max_inverse = float(stabilization), float(max_inverse)
        self.hybrid, self.switch_window, self.switch_threshold = hybrid, switch_window, float(switch_threshold)
        if params is None:
            params = [p for p in model.parameters() if p.requires_grad]
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, betas=tuple(betas), eps=eps,
                                      momentum=momentum))
        owned = {id(p) for g in self.param_groups for p in g["params"]}
        self.layers = [_Layer(m) for m in model.modules() if _eligible(m) and id(m.weight) in owned]
        self._handles = [layer.module.register_forward_hook(layer.forward_hook) for layer in self.layers]

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        check_range("lr", group["lr"], 0.0)
        check_range("weight_decay", group["weight_decay"], 0.0)
        check_betas("betas", group["betas"])
        check_range("eps", group["eps"], 0.0, low_open=True)
        check_range("momentum", group["momentum"], 0.0, 1.0)

    # The Kronecker factors come from each process's own batch: under DDP the ranks would drift apart.
    supports_ddp = False

    @property
    def step_may_require(self) -> frozenset[str]:
        return frozenset({"loss"}) if self.hybrid else frozenset()

    @property
    def step_requires(self) -> frozenset[str]:
        """``{"loss"}`` for MKOR-H while it still watches the loss, else nothing."""
        return frozenset({"loss"}) if self.hybrid and not self.first_order else frozenset()

    @property
    def first_order(self) -> bool:
        """True once MKOR-H has switched to the backend alone."""
        return bool(self.state.get("mkor_first_order", False))

    def remove_hooks(self) -> None:
        """Detach the optimizer from the model's layers."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for layer in self.layers:
            layer.clear()

    # ------------------------------------------------------------------ second order
    def _update_factors(self, layer: _Layer) -> None:
        """(1)–(2) for one layer, then the safeguard on the inverses."""
        means = layer.means()
        if means is None:
            return
        a, g = means
        state = self.state[layer.weight]
        for key, v in (("left_inverse", g), ("right_inverse", a)):
            v = v.to(layer.weight.dtype)
            inv = state.get(key)
            if inv is None:
                inv = torch.eye(v.numel(), dtype=v.dtype, device=v.device)
            inv = sherman_morrison_update(inv, v, self.stat_decay)  # (2)
            if inv.abs().max() > self.max_inverse or not torch.isfinite(inv).all():
                inv = torch.nan_to_num(inv, nan=0.0, posinf=0.0, neginf=0.0)
                inv = self.stabilization * inv + (1 - self.stabilization) * torch.eye(
                    v.numel(), dtype=v.dtype, device=v.device)
            state[key] = inv

    def _preconditioned(self, layer: _Layer) -> dict[Tensor, Tensor]:
        """Δ of (3) for the layer's weight (and bias), shaped like their gradients."""
        state = self.state[layer.weight]
        grad = layer.matrix(layer.weight.grad, layer.bias.grad if layer.bias is not None else None)
        if "left_inverse" not in state:
            return {}
        delta = state["left_inverse"] @ grad @ state["right_inverse"]  # (3)
        delta = delta * (grad.norm() / delta.norm().clamp_min(torch.finfo(delta.dtype).tiny))  # (3)
        out = {layer.weight: delta[:, : layer.weight[0].numel()].reshape(layer.weight.shape)}
        if layer.bias is not None:
            out[layer.bias] = delta[:, -1]
        return out

    def _watch_loss(self, loss: Tensor | float | None) -> None:
        """MKOR-H: switch to first order when the windowed loss stops falling."""
        if loss is None:
            raise RuntimeError("MKOR-H needs step(loss=...) while 'loss' is in its step_requires")
        history = self.state.setdefault("mkor_losses", [])
        history.append(float(loss))
        w = self.switch_window
        if len(history) < 2 * w:
            return
        before, now = sum(history[-2 * w: -w]) / w, sum(history[-w:]) / w
        if not (before - now > self.switch_threshold * abs(before)):
            self.state["mkor_first_order"] = True
            self.remove_hooks()
        del history[: -2 * w]

    # ------------------------------------------------------------------ the step
    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None, *, loss: Tensor | float | None = None
             ) -> Tensor | None:
        """One step; ``closure`` re-evaluates the loss; ``loss`` feeds MKOR-H's switch."""
        closure_loss = None
        if closure is not None:
            with torch.enable_grad():
                closure_loss = closure()
        if self.hybrid and not self.first_order:
            self._watch_loss(loss if loss is not None else closure_loss)
        directions: dict[Tensor, Tensor] = {}
        if not self.first_order:
            count = self.state.get("mkor_steps", 0)
            for layer in self.layers:
                if layer.weight.grad is None:
                    continue
                if count % self.inv_freq == 0:
                    self._update_factors(layer)
                directions.update(self._preconditioned(layer))
            self.state["mkor_steps"] = count + 1
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._backend_step(p, directions.get(p, p.grad), group)
        return closure_loss

    def _backend_step(self, p: Tensor, d: Tensor, group: dict) -> None:
        """Decoupled weight decay, then Adam or SGD with momentum on the direction ``d``."""
        w, d = real_view(p), real_view(d)
        if group["weight_decay"]:
            w.mul_(1 - group["lr"] * group["weight_decay"])
        if self.backend == "sgd":
            momentum_step(self.state[p], w, d, group["lr"], group["momentum"])
        else:
            adam_step(self.state[p], w, d, group["lr"], group["betas"], group["eps"])
