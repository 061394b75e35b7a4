"""Groups of independent networks evaluated in one batched call, and the actor / critic groups.

Each paper gives every agent its own networks. A group of A independent MLPs is stored as
weights of shape (A, in, out) and evaluated with one ``torch.baddbmm`` per layer, instead of a
Python list of modules: inputs are ``(A, batch, in)`` (agent axis first) and outputs
``(A, batch, out)``. Parameter sharing (seed 004 §IV-C: one actor for all BSs) is A = 1 with the
agents folded into the batch axis.

Two opt-in speed options for large layers (the seed-000 BS networks: first layers of
N x 3996 x 512 floats, 57 MB), both giving the same values as the default path:

* ``reuse_grad_buffer=True``: by default autograd allocates a fresh ``weight.grad`` at every
  backward pass; on Linux every allocation that large is a fresh ``mmap`` whose page faults cost
  more than the gradient GEMM itself (measured 39 ms vs 9 ms per 57 MB layer on the 2-core CPU
  of BENCHMARKS.md). With the option on, the layer computes its weight gradient ``x^T dy`` into
  one buffer that it keeps between steps: written when ``weight.grad`` is None (after
  ``zero_grad(set_to_none=True)``), accumulated in place otherwise, so ``.grad`` holds what
  autograd would give. Contract: the buffer is reused, so do not keep a reference to an old
  ``weight.grad`` across ``zero_grad`` and the next backward; ``torch.autograd.grad`` w.r.t.
  such a weight is not supported (use ``.backward()``).
* ``transposed_storage=True``: the weight is kept in memory as (A, out, in) (``nn.Linear``'s
  orientation); ``weight`` is still the (A, in, out) tensor, a transposed view. For a few
  rows against a wide weight (the CUP minibatch of 10 slots) the faster form of the product
  depends on the CPU (:func:`weight_left_product`): ``W^T x^T`` on an Intel Xeon (7 ms vs 18
  ms per 57 MB layer), ``x W`` on an AMD EPYC (8.4 ms vs 14 ms); one row is always ``x W``.
* ``deferred_weight_grad=True`` (with ``reuse_grad_buffer``, CPU only): a layer of at least
  :data:`DEFERRED_MIN_WEIGHTS` weights per agent whose backward pass has few rows leaves its
  weight gradient as the factors ``x`` and ``dy`` (:class:`~skyshare.rl.common.optim.LowRankGrad`
  on ``weight.low_rank_grad``; ``weight.grad`` stays None) and
  :class:`~skyshare.rl.common.optim.GroupAdam` steps the weight from them chunk by chunk,
  without writing the dense gradient (2x faster per 57 MB layer: gradient, clipping norm and
  Adam together ~22 ms against ~45 ms on one core). Optimisers other than ``GroupAdam`` do not
  see such a gradient: use the option only with ``GroupAdam``.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from skyshare.checks import check_memory
from skyshare.rl.common.distributions import IndependentBeta
from skyshare.rl.common.optim import LowRankGrad, low_rank_grad

__all__ = [
    "ActivationName",
    "BetaActorGroup",
    "CriticGroup",
    "GroupLinear",
    "GroupMLP",
    "activation",
    "check_hidden_layers_memory",
    "init_orthogonal",
    "init_uniform",
    "training_bytes",
    "weight_left_product",
]

DEFERRED_MIN_WEIGHTS = 1 << 20
"""A ``deferred_weight_grad`` layer defers only with at least this many weights per agent
(the 3996 x 512 first layers of seed 000, not their 512 x 128 successors, where the chunked
step's extra calls cost more than the dense gradient)."""

ActivationName = Literal["relu", "tanh", "sigmoid", "elu", "identity"]
"""The activation names :func:`activation` knows (for config fields)."""

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "identity": nn.Identity,
}


def activation(name: str) -> nn.Module:
    """An activation module by name (relu, tanh, sigmoid, elu, identity)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; available: {', '.join(sorted(_ACTIVATIONS))}"
        ) from None


class GroupLinear(nn.Module):
    """A independent affine maps ``y_a = x_a W_a + b_a``.

    Args:
        n_agents: A. in_features, out_features: sizes.
        reuse_grad_buffer: keep the weight gradient in one buffer between steps.
        transposed_storage: keep the weight as (A, out, in) in memory.
        deferred_weight_grad: leave the weight gradient as its factors for ``GroupAdam``
            (module docstring; needs ``reuse_grad_buffer``).

    Shapes: input (A, batch, in) -> output (A, batch, out); ``weight`` (A, in, out), ``bias``
    (A, 1, out). Initialisation: each agent's weights like ``nn.Linear`` (Kaiming-uniform,
    a = sqrt(5)), independently drawn. The two options (module docstring) change speed, not
    values.
    """

    def __init__(
        self,
        n_agents: int,
        in_features: int,
        out_features: int,
        *,
        reuse_grad_buffer: bool = False,
        transposed_storage: bool = False,
        deferred_weight_grad: bool = False,
    ) -> None:
        super().__init__()
        if n_agents < 1 or in_features < 1 or out_features < 1:
            raise ValueError(
                f"n_agents, in_features and out_features must be >= 1, got "
                f"{n_agents}, {in_features}, {out_features}"
            )
        self.n_agents, self.in_features, self.out_features = n_agents, in_features, out_features
        # weights, gradient and an optimiser's two moments: refused by size before allocating
        check_memory(
            training_bytes(n_agents, (in_features, out_features)),
            f"a network layer of {n_agents} x {in_features} x {out_features} weights "
            "(hidden_sizes too large?)",
        )
        if transposed_storage:
            weight = torch.empty(n_agents, out_features, in_features).transpose(1, 2)
        else:
            weight = torch.empty(n_agents, in_features, out_features)
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.empty(n_agents, 1, out_features))
        self.reuse_grad_buffer = reuse_grad_buffer
        self.transposed_storage = transposed_storage
        self.deferred_weight_grad = (
            deferred_weight_grad and in_features * out_features >= DEFERRED_MIN_WEIGHTS
        )
        self._weight_grad_buffer: torch.Tensor | None = None
        self.reset_parameters()

    def reset_parameters(self, gain: float | None = None) -> None:
        """nn.Linear's default initialisation per agent, or orthogonal with ``gain``."""
        if gain is None:
            bound = 1.0 / math.sqrt(self.in_features)
            nn.init.uniform_(self.weight, -bound, bound)
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            for a in range(self.n_agents):  # initialisation only, not a hot path
                nn.init.orthogonal_(self.weight.data[a].T, gain=gain)
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[0] != self.n_agents or x.shape[-1] != self.in_features:
            raise ValueError(
                f"expected input (A={self.n_agents}, batch, {self.in_features}), "
                f"got {tuple(x.shape)}"
            )
        if self.reuse_grad_buffer and torch.is_grad_enabled() and self.weight.requires_grad:
            return _AffineWithReusedWeightGrad.apply(x, self.weight, self.bias, self)
        return _affine(x, self.weight, self.bias, self.transposed_storage)

    def _accumulate_weight_grad(self, x: torch.Tensor, grad_out: torch.Tensor) -> None:
        """weight.grad (+)= x^T grad_out, (A, in, batch) @ (A, batch, out), without allocating;
        or, for a deferred layer, the factors added to ``weight.low_rank_grad``."""
        if self._defer(x.shape[1]):
            left, right = (grad_out, x) if self.transposed_storage else (x, grad_out)
            factors = low_rank_grad(self.weight)
            if factors is None:
                self.weight.low_rank_grad = LowRankGrad(left.detach(), right.detach())
            else:
                factors.add(left.detach(), right.detach())
            return
        factors = low_rank_grad(self.weight)
        if factors is not None:  # too many rows to keep deferring: the dense gradient from here
            self.weight.low_rank_grad = None
            x_before, dy_before = (
                (factors.right, factors.left)
                if self.transposed_storage
                else (factors.left, factors.right)
            )
            self._accumulate_weight_grad(
                torch.cat([x_before, x], 1), torch.cat([dy_before, grad_out], 1)
            )
            return
        weight, grad = self.weight, self.weight.grad
        if grad is None:
            buffer = self._weight_grad_buffer
            if (
                buffer is None
                or buffer.shape != weight.shape
                or buffer.stride() != weight.stride()
                or buffer.dtype != weight.dtype
                or buffer.device != weight.device
            ):
                buffer = torch.empty_like(weight)  # same (possibly transposed) layout
                self._weight_grad_buffer = buffer
            beta, grad = 0.0, buffer
        else:
            beta = 1.0
        if grad.is_contiguous():  # grad (A, in, out) = x^T dy
            torch.baddbmm(grad, x.transpose(1, 2), grad_out, beta=beta, out=grad)
        else:  # grad^T (A, out, in) = dy^T x, into the contiguous transposed view
            grad_t = grad.transpose(1, 2)
            torch.baddbmm(grad_t, grad_out.transpose(1, 2), x, beta=beta, out=grad_t)
        weight.grad = grad

    def _defer(self, rows: int) -> bool:
        """Whether a backward pass of ``rows`` rows leaves factors: a deferred CPU layer with
        no dense gradient yet, while the factors stay small against the weight (n (in + out)
        <= in out / 4 over every pass since the last step)."""
        if not self.deferred_weight_grad or self.weight.grad is not None:
            return False
        if self.weight.device.type != "cpu":
            return False
        factors = low_rank_grad(self.weight)
        total = rows + (0 if factors is None else factors.rows)
        width = self.in_features + self.out_features
        return 4 * total * width <= self.in_features * self.out_features

    def extra_repr(self) -> str:
        return f"agents={self.n_agents}, in={self.in_features}, out={self.out_features}"


def training_bytes(n_agents: int, sizes: Sequence[int]) -> int:
    """Bytes of ``n_agents`` float32 MLPs of widths ``sizes`` (input, hidden..., output) with
    their training state: weights and biases, gradient and Adam's two moments (4 copies)."""
    return 16 * n_agents * sum((a + 1) * b for a, b in itertools.pairwise(sizes))


def check_hidden_layers_memory(hidden_sizes: Sequence[int], what: str) -> None:
    """Refuse ``hidden_sizes`` whose hidden-to-hidden layers alone, for one agent, need more
    memory than the limit: the bytes :class:`GroupLinear` checks when built (weights,
    gradient, two Adam moments), summed over the consecutive pairs. A lower bound on what a
    learner with these widths allocates, so it refuses only sizes that cannot fit; for the
    checks that run before an experiment writes anything (the layers next to the inputs and
    outputs need the env's sizes and are checked when the networks are built)."""
    check_memory(training_bytes(1, hidden_sizes), f"{what}: hidden_sizes {list(hidden_sizes)}")


@functools.cache
def weight_left_product(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether a few rows against a weight stored (A, out, in) run as ``(W^T x^T)^T`` (True)
    or as ``x W`` on the transposed view (False, MKL's transB case).

    Same values up to float rounding; which is faster depends on the kernels MKL dispatches,
    and MKL dispatches by CPU vendor. Measured for the seed-000 first layers (7 x 3996 x 512,
    10 rows, one thread): ``W^T x^T`` 7 ms against 18 ms for ``x W`` on the Intel Xeon host of
    the earlier sessions, ``x W`` 8.4 ms against 14 ms on the AMD EPYC host (19 against 22 ms
    at 50 rows; docs/rl/cup.md, "Forward form per CPU"). Decided once per process from the
    vendor in ``cpuinfo`` (GenuineIntel: True; any other CPU, or no such file: False), so one
    machine always computes the same form.
    """
    try:
        with cpuinfo.open() as lines:
            for line in lines:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip() == "GenuineIntel"
    except OSError:
        pass
    return False


def _affine(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, transposed: bool
) -> torch.Tensor:
    """``bias + x @ weight`` batched over agents: (A, batch, in), (A, in, out) -> (A, batch, out).

    ``transposed``: the weight is stored as (A, out, in); with more than one row on a CPU where
    :func:`weight_left_product` holds, the product is then computed as ``(W^T x^T)^T`` and
    returned as an (A, batch, out) view of an (A, out, batch) tensor.
    """
    if transposed and x.shape[1] > 1 and (x.device.type != "cpu" or weight_left_product()):
        product = torch.baddbmm(bias.transpose(1, 2), weight.transpose(1, 2), x.transpose(1, 2))
        return product.transpose(1, 2)
    return torch.baddbmm(bias, x, weight)


class _AffineWithReusedWeightGrad(torch.autograd.Function):
    """:func:`_affine` whose backward writes the weight gradient into the layer's reused buffer
    (and returns None for it) instead of handing autograd a fresh tensor.

    The input and bias gradients are those of ``torch.baddbmm``'s own backward:
    dx = dy W^T, db = sum_batch dy, dW = x^T dy.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, layer):  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        ctx.layer = layer
        return _affine(x, weight, bias, layer.transposed_storage)

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.bmm(grad_out, weight.transpose(1, 2))
        if ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(1, keepdim=True)
        if ctx.needs_input_grad[1]:
            ctx.layer._accumulate_weight_grad(x, grad_out)
        return grad_x, None, grad_bias, None


class GroupMLP(nn.Module):
    """A independent MLPs with the same architecture.

    Args:
        n_agents: A.
        sizes: layer widths from input to output, e.g. ``(obs_dim, 512, 128, 64, act_dim)``.
        activations: one activation name per hidden layer, or one name for all.
        output_activation: activation after the last layer ("identity" by default).
        output_gain: orthogonal gain of the last layer (None: nn.Linear default).
        reuse_grad_buffer, transposed_storage, deferred_weight_grad: speed options of every
            layer (:class:`GroupLinear`; same values up to float rounding).
    """

    def __init__(
        self,
        n_agents: int,
        sizes: Sequence[int],
        activations: str | Sequence[str] = "relu",
        output_activation: str = "identity",
        output_gain: float | None = None,
        *,
        reuse_grad_buffer: bool = False,
        transposed_storage: bool = False,
        deferred_weight_grad: bool = False,
    ) -> None:
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes needs at least input and output widths, got {sizes}")
        hidden = len(sizes) - 2
        names = [activations] * hidden if isinstance(activations, str) else list(activations)
        if len(names) != hidden:
            raise ValueError(f"need {hidden} hidden activations, got {len(names)}")
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(
                GroupLinear(
                    n_agents,
                    sizes[i],
                    sizes[i + 1],
                    reuse_grad_buffer=reuse_grad_buffer,
                    transposed_storage=transposed_storage,
                    deferred_weight_grad=deferred_weight_grad,
                )
            )
            layers.append(activation(names[i] if i < hidden else output_activation))
        if output_gain is not None:
            layers[-2].reset_parameters(gain=output_gain)
        self.net = nn.Sequential(*layers)
        self.n_agents = n_agents
        self.sizes = tuple(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(A, batch, in) -> (A, batch, out)."""
        return self.net(x)


# ---------------------------------------------------------------------------------------------
# Initialisation with an explicit generator
# ---------------------------------------------------------------------------------------------


def init_orthogonal(mlp: GroupMLP, generator: torch.Generator, output_gain: float) -> None:
    """Orthogonal initialisation of every agent's layers with an explicit generator.

    Hidden layers gain sqrt(2), last layer ``output_gain``, biases 0: CleanRL's PPO
    (``layer_init``; Engstrom et al., ICLR 2020, "Implementation matters in deep policy
    gradients"). Initialisation only, so the loop over agents is not a hot path.
    """
    layers = [m for m in mlp.modules() if isinstance(m, GroupLinear)]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            gain = output_gain if i == len(layers) - 1 else math.sqrt(2.0)
            for a in range(layer.n_agents):
                nn.init.orthogonal_(layer.weight.data[a].T, gain=gain, generator=generator)
            layer.bias.zero_()


def init_uniform(network: nn.Module, generator: torch.Generator) -> None:
    """nn.Linear's default initialisation U(-1/sqrt(in), 1/sqrt(in)) for every GroupLinear of
    ``network`` (weights, then bias, layer by layer), drawn from ``generator``."""
    with torch.no_grad():
        for layer in network.modules():
            if isinstance(layer, GroupLinear):
                bound = 1.0 / math.sqrt(layer.in_features)
                for parameter in (layer.weight, layer.bias):
                    draw = torch.empty(parameter.shape, device=generator.device)
                    draw.uniform_(-bound, bound, generator=generator)
                    parameter.copy_(draw)


# ---------------------------------------------------------------------------------------------
# Actor and critic groups of the on-policy BS agents (seed 000 §V-C, §VI)
# ---------------------------------------------------------------------------------------------


class BetaActorGroup(nn.Module):
    """N independent actors obs -> Beta(alpha, beta) on [0, 1]^act_dim.

    Args:
        n_agents: N. obs_dim: D. act_dim: d.
        hidden_sizes: hidden widths (seed §VI: 512, 128, 64).
        activations: one per hidden layer (seed §VI: relu, relu, sigmoid).
        generator: initialisation (:func:`init_orthogonal`).
        deferred_weight_grad: the first layer's weight gradient as factors, for
            :class:`~skyshare.rl.common.optim.GroupAdam` only (module docstring).

    Shapes: observations (N, batch, D) -> :class:`IndependentBeta` with (N, batch, d)
    concentrations ``softplus(.) + 1``. The last layer starts at gain 0.01, so every agent
    starts near Beta(1.69, 1.69) (mean 0.5, broad).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int],
        activations: Sequence[str] | str,
        generator: torch.Generator,
        *,
        deferred_weight_grad: bool = False,
    ) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.net = GroupMLP(
            n_agents,
            (obs_dim, *hidden_sizes, 2 * act_dim),
            activations,
            reuse_grad_buffer=True,
            transposed_storage=True,
            deferred_weight_grad=deferred_weight_grad,
        )
        init_orthogonal(self.net, generator, output_gain=0.01)

    def forward(self, obs: torch.Tensor) -> IndependentBeta:
        out = self.net(obs)
        alpha = F.softplus(out[..., : self.act_dim]) + 1.0
        beta = F.softplus(out[..., self.act_dim :]) + 1.0
        return IndependentBeta(alpha, beta)


class CriticGroup(nn.Module):
    """N independent value networks obs (N, batch, D) -> (N, batch, n_outputs).

    One output for the reward critic V_phi; L outputs for the cost critic V_psi^C (one network
    per agent whose L outputs are the L cost values, as the seed's single psi with "the V values
    V_psi(o)", §V-C-1). Orthogonal initialisation, output gain 1. ``deferred_weight_grad``:
    as :class:`BetaActorGroup`'s (for :class:`~skyshare.rl.common.optim.GroupAdam` only).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_outputs: int,
        hidden_sizes: Sequence[int],
        activation_name: str,
        generator: torch.Generator,
        *,
        deferred_weight_grad: bool = False,
    ) -> None:
        super().__init__()
        self.net = GroupMLP(
            n_agents,
            (obs_dim, *hidden_sizes, n_outputs),
            activation_name,
            reuse_grad_buffer=True,
            transposed_storage=True,
            deferred_weight_grad=deferred_weight_grad,
        )
        init_orthogonal(self.net, generator, output_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)
