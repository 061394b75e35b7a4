"""Per-agent Adam for groups of independent networks (weights shaped (A, ...))."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adam import adam

from skyshare.errors import ConfigError, ShapeError

__all__ = ["GroupAdam"]


def _as_stored(x: torch.Tensor) -> torch.Tensor:
    """A contiguous view of a slice stored transposed (``transposed_storage`` layers); the
    fused Adam kernel is several times slower on the strided view. Other tensors unchanged."""
    if not x.is_contiguous() and x.ndim >= 2 and x.transpose(-1, -2).is_contiguous():
        return x.transpose(-1, -2)
    return x


class GroupAdam(torch.optim.Optimizer):
    """Adam (Kingma & Ba, ICLR 2015) for group parameters whose first axis is the agent.

    Every agent has its own step count (bias correction) and its own gradient-norm clipping
    (``max_grad_norm`` over all of that agent's parameters in the optimiser, as
    ``clip_grad_norm_`` per network in CleanRL). ``step(active)`` updates only the agents with
    ``active[a]`` True: their moments, step counts and parameters; the others are left exactly
    as they were (an early-stopped agent must not drift on Adam momentum).

    Implementation: the step runs PyTorch's own Adam kernel (``torch.optim.adam.adam``, fused
    on CPU and CUDA) on the per-agent slices ``p[a]`` of the active agents (views, one call per
    agent), so each agent's update is ``torch.optim.Adam`` on its own parameters in one fused
    pass over p, g, m, v. The clipping factor is folded into that pass as the kernel's
    ``grad_scale`` (the gradient is divided by 1 / factor on the fly), which saves a separate
    read-modify-write of every gradient; it equals clipping first up to float rounding.
    Memory traffic per step: 7 x 4 bytes per active parameter (read p, g, m, v; write p, m, v),
    plus one read of the gradients for their norms.

    Args:
        params: parameters of shape (A, ...), all with the same A.
        lr: learning rate. betas, eps: Adam's constants (eps 1e-5 as CleanRL's PPO).
        max_grad_norm: per-agent gradient-norm bound, or None.

    State (``state_dict``): per parameter ``step`` (A,) float, ``exp_avg`` and ``exp_avg_sq``
    shaped like the parameter: tensors only.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-5,
        max_grad_norm: float | None = None,
    ) -> None:
        if lr <= 0:
            raise ConfigError(f"learning rate must be > 0, got {lr}")
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ConfigError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
        defaults = {"lr": lr, "betas": betas, "eps": eps, "max_grad_norm": max_grad_norm}
        super().__init__(params, defaults)
        sizes = {p.shape[0] for g in self.param_groups for p in g["params"]}
        if len(sizes) != 1:
            raise ShapeError(f"all parameters need the same leading agent axis, got {sizes}")
        self.n_agents = sizes.pop()

    @torch.no_grad()
    def step(self, active: torch.Tensor | None = None) -> None:  # type: ignore[override]
        """One Adam step for the agents with ``active`` (A,) bool True (all when None)."""
        agents = self._active_agents(active)
        if not agents:
            return
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            self._prepare(params)
            fused = params[0].device.type in ("cpu", "cuda") and params[0].is_floating_point()
            inverse_scale = self._clip(group, params, agents, fused)
            for a in agents:
                self._agent_step(group, params, a, inverse_scale, fused)

    def _active_agents(self, active: torch.Tensor | None) -> list[int]:
        if active is None:
            return list(range(self.n_agents))
        if active.shape != (self.n_agents,):
            raise ShapeError(f"active must be ({self.n_agents},) bool, got {active.shape}")
        return [a for a, on in enumerate(active.tolist()) if on]

    def _prepare(self, params: list[torch.Tensor]) -> None:
        """Create missing moments; keep p, g, m, v in one memory layout."""
        for p in params:
            state = self.state[p]
            if not state:
                state["step"] = torch.zeros(self.n_agents, device=p.device)
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            state["step"] = state["step"].to(p.device)  # a checkpoint may hold it on CPU
            for name in ("exp_avg", "exp_avg_sq"):  # moments in the parameter's layout
                if state[name].stride() != p.stride():
                    state[name] = torch.empty_like(p).copy_(state[name])
            if p.grad.stride() != p.stride():  # so that p, g, m, v are viewed alike below
                p.grad = torch.empty_like(p).copy_(p.grad)

    def _clip(
        self, group: dict[str, Any], params: list[torch.Tensor], agents: list[int], fused: bool
    ) -> torch.Tensor | None:
        """Per-agent clipping: (A,) 1 / factor for the fused kernel, or None (no clipping, or
        the gradients were scaled in place for the unfused path)."""
        if group["max_grad_norm"] is None:
            return None
        # squared norm of each active agent's gradient, one BLAS dot per slice (twice as fast as
        # a norm reduction over (A, n) here); inactive agents keep scale 1
        first = params[0]
        squares = torch.zeros(self.n_agents, device=first.device, dtype=first.dtype)
        for a in agents:
            for p in params:
                g = _as_stored(p.grad[a]).reshape(-1)
                squares[a] += torch.dot(g, g)
        norm = squares.sqrt()  # (A,)
        scale = (group["max_grad_norm"] / (norm + 1e-6)).clamp(max=1.0)
        if fused:  # the fused kernel divides the gradient by grad_scale on the fly
            return scale.reciprocal()
        for p in params:
            p.grad.mul_(scale.view((-1,) + (1,) * (p.ndim - 1)))
        return None

    def _agent_step(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        a: int,
        inverse_scale: torch.Tensor | None,
        fused: bool,
    ) -> None:
        """Adam on agent ``a``'s slices p[a] of every parameter (views, no copies), with its own
        clipping factor folded into the kernel."""
        beta1, beta2 = group["betas"]
        adam(  # elementwise, so p, g, m, v (same layout) may be passed as stored
            [_as_stored(p.data[a]) for p in params],
            [_as_stored(p.grad[a]) for p in params],
            [_as_stored(self.state[p]["exp_avg"][a]) for p in params],
            [_as_stored(self.state[p]["exp_avg_sq"][a]) for p in params],
            [],
            [self.state[p]["step"][a] for p in params],
            foreach=None if fused else False,
            fused=True if fused else None,
            grad_scale=None if inverse_scale is None else inverse_scale[a],
            found_inf=None,
            amsgrad=False,
            beta1=beta1,
            beta2=beta2,
            lr=group["lr"],
            weight_decay=0.0,
            eps=group["eps"],
            maximize=False,
        )
