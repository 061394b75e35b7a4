"""Per-agent Adam for groups of independent networks (weights shaped (A, ...))."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.adam import adam

from skyshare.errors import ConfigError, ShapeError

__all__ = ["GroupAdam", "LowRankGrad", "low_rank_grad"]

CHUNK_BYTES = 2 << 20
"""Bytes of one chunk of a :class:`LowRankGrad` step: the gradient rows of a chunk are
computed into a buffer of this size, which stays in the core's cache (L2 + L3) while Adam
uses it (1 to 4 MB measured alike on the development CPU; 0.5 MB and 8 MB slower)."""


def _stored_transposed(x: torch.Tensor) -> bool:
    """Whether ``x`` is the transposed view of contiguous memory (``transposed_storage``)."""
    return not x.is_contiguous() and x.ndim >= 2 and x.transpose(-1, -2).is_contiguous()


def _as_stored(x: torch.Tensor) -> torch.Tensor:
    """A contiguous view of a slice stored transposed (``transposed_storage`` layers); the
    fused Adam kernel is several times slower on the strided view. Other tensors unchanged."""
    return x.transpose(-1, -2) if _stored_transposed(x) else x


class LowRankGrad:
    """The gradient of a wide group weight kept as its factors, ``G[a] = left[a]^T right[a]``.

    The weight gradient of an affine layer over n rows is ``x^T dy``: for the CUP minibatch (n
    = 10 slots) against a 3996 x 512 first layer it is a rank-10 matrix, and writing it out
    costs more than all the arithmetic (MKL's batched GEMM writes the 57 MB result at ~4
    GB/s here, 15-22 ms per network, then Adam and the clipping norm read it back).
    :class:`~skyshare.rl.common.networks.GroupLinear` with ``deferred_weight_grad`` hands
    its factors to the weight instead (``weight.low_rank_grad``, ``weight.grad`` stays None),
    and :class:`GroupAdam` uses them without the dense gradient:

    - clipping norm: ``||left^T right||_F^2 = sum((left left^T) * (right right^T))``, two
      (n, n) Gram matrices per agent instead of a pass over the gradient;
    - the Adam step, chunk by chunk of rows of the stored weight: the chunk's gradient rows
      ``left[a, :, rows]^T right[a]`` into a cache-resident buffer (:data:`CHUNK_BYTES`),
      then PyTorch's fused Adam kernel on the matching rows of p, m and v.

    The values are those of the dense gradient up to float rounding (another summation order).

    Args:
        left: (A, n, P), right: (A, n, Q), the factors in the weight's *storage* orientation:
            the stored weight is (A, P, Q) in memory.
    """

    def __init__(self, left: torch.Tensor, right: torch.Tensor) -> None:
        if left.ndim != 3 or right.ndim != 3 or left.shape[:2] != right.shape[:2]:
            raise ShapeError(
                f"factors must be (A, n, P) and (A, n, Q), got {tuple(left.shape)} and "
                f"{tuple(right.shape)}"
            )
        self.left, self.right = left, right

    @property
    def rows(self) -> int:
        """n, the rank bound (rows of the minibatches accumulated)."""
        return self.left.shape[1]

    def add(self, left: torch.Tensor, right: torch.Tensor) -> None:
        """Accumulate another backward pass's factors (the sum of the two gradients)."""
        self.left = torch.cat([self.left, left], 1)
        self.right = torch.cat([self.right, right], 1)

    def squared_norms(self) -> torch.Tensor:
        """(A,) ``||G[a]||_F^2`` from the Gram matrices of the factors."""
        gram_left = torch.bmm(self.left, self.left.transpose(1, 2))
        gram_right = torch.bmm(self.right, self.right.transpose(1, 2))
        return (gram_left * gram_right).sum((1, 2))

    def dense(self) -> torch.Tensor:
        """(A, P, Q) the gradient in the stored orientation."""
        return torch.bmm(self.left.transpose(1, 2), self.right)

    def rows_into(self, agent: int, start: int, stop: int, out: torch.Tensor) -> torch.Tensor:
        """Rows ``start:stop`` of ``G[agent]`` (stop - start, Q), written into ``out``."""
        return torch.mm(self.left[agent, :, start:stop].t(), self.right[agent], out=out)


def low_rank_grad(p: torch.Tensor) -> LowRankGrad | None:
    """The :class:`LowRankGrad` a deferred layer left on parameter ``p`` (None if none)."""
    return getattr(p, "low_rank_grad", None)


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
    plus one read of the gradients for their norms. A weight whose gradient is a
    :class:`LowRankGrad` (its ``.grad`` None) is stepped from the factors: 6 x 4 bytes per
    parameter, no gradient in memory. :meth:`zero_grad` and :meth:`step` drop those factors
    (a step consumes them; call ``zero_grad`` of this optimiser, not of the module, between a
    backward pass and the step).

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
        if agents:
            for group in self.param_groups:
                self._group_step(group, agents)
        self._drop_low_rank_grads()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """``torch.optim.Optimizer.zero_grad``, and drop the :class:`LowRankGrad` factors."""
        super().zero_grad(set_to_none)
        self._drop_low_rank_grads()

    def _drop_low_rank_grads(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if low_rank_grad(p) is not None:
                    p.low_rank_grad = None

    def _group_step(self, group: dict[str, Any], agents: list[int]) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        factored = [p for p in group["params"] if p.grad is None and low_rank_grad(p)]
        if not params and not factored:
            return
        first = (params or factored)[0]
        # factors exist only for float CPU weights (GroupLinear defers on the CPU only), where
        # the fused kernel that the chunked step needs is available
        fused = first.device.type in ("cpu", "cuda") and first.is_floating_point()
        self._prepare(params + factored)
        inverse_scale = self._clip(group, params, factored, agents, fused)
        for a in agents:
            if params:
                self._agent_step(group, params, a, inverse_scale, fused)
            for p in factored:
                self._low_rank_agent_step(group, p, a, inverse_scale)

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
            if p.grad is not None and p.grad.stride() != p.stride():  # p, g, m, v alike
                p.grad = torch.empty_like(p).copy_(p.grad)

    def _clip(
        self,
        group: dict[str, Any],
        params: list[torch.Tensor],
        factored: list[torch.Tensor],
        agents: list[int],
        fused: bool,
    ) -> torch.Tensor | None:
        """Per-agent clipping: (A,) 1 / factor for the fused kernel, or None (no clipping, or
        the gradients were scaled in place for the unfused path)."""
        if group["max_grad_norm"] is None:
            return None
        # squared norm of each active agent's gradient, one BLAS dot per slice (twice as fast as
        # a norm reduction over (A, n) here); inactive agents keep scale 1
        first = (params or factored)[0]
        squares = torch.zeros(self.n_agents, device=first.device, dtype=first.dtype)
        for a in agents:
            for p in params:
                g = _as_stored(p.grad[a]).reshape(-1)
                squares[a] += torch.dot(g, g)
        for p in factored:  # from the factors' Gram matrices (inactive agents unused)
            squares += low_rank_grad(p).squared_norms()
        norm = squares.sqrt()  # (A,)
        scale = (group["max_grad_norm"] / (norm + 1e-6)).clamp(max=1.0)
        if fused:  # the fused kernel divides the gradient by grad_scale (a float32) on the fly
            return scale.reciprocal().to(torch.float32)
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

    def _low_rank_agent_step(
        self,
        group: dict[str, Any],
        p: torch.Tensor,
        a: int,
        inverse_scale: torch.Tensor | None,
    ) -> None:
        """Adam on agent ``a``'s slice of ``p`` from its :class:`LowRankGrad`, chunk by chunk
        of stored rows: each chunk's gradient rows into a cache-sized buffer, then the fused
        Adam kernel on those rows of p, m, v (the step count advanced once, as ``adam`` does
        before its kernel)."""
        factors = low_rank_grad(p)
        weight = _as_stored(p.data[a])  # (P, Q), contiguous
        m = _as_stored(self.state[p]["exp_avg"][a])
        v = _as_stored(self.state[p]["exp_avg_sq"][a])
        step = self.state[p]["step"][a]
        step += 1
        n_rows, width = weight.shape
        chunk = max(1, CHUNK_BYTES // (width * weight.element_size()))
        buffer = torch.empty(min(chunk, n_rows), width, dtype=weight.dtype, device=weight.device)
        beta1, beta2 = group["betas"]
        constants = {
            "lr": group["lr"],
            "beta1": beta1,
            "beta2": beta2,
            "weight_decay": 0.0,
            "eps": group["eps"],
            "amsgrad": False,
            "maximize": False,
            "grad_scale": None if inverse_scale is None else inverse_scale[a],
            "found_inf": None,
        }
        for start in range(0, n_rows, chunk):
            rows = slice(start, min(start + chunk, n_rows))
            grad = factors.rows_into(a, start, rows.stop, buffer[: rows.stop - start])
            torch._fused_adam_(
                [weight[rows]], [grad], [m[rows]], [v[rows]], [], [step], **constants
            )
