"""Bounded stochastic policies, critic groups and the on-policy collector of the BS agents.

Seed 000 §V-C and §VI: every BS agent n has its own actor pi_theta (512-128-64, ReLU, ReLU,
sigmoid, outputs in [0, 1]), reward critic V_phi and cost critic V_psi^C (512-128-64, ReLU).
The N agents' networks are one :class:`~skyshare.rl.networks.GroupMLP` each (weights
(N, in, out)), so all agents act and learn in one batched call.

**Action distribution** (the seed only says the actor's outputs are sigmoid-normalised to
[0, 1]): each of the d action entries is an independent Beta(alpha, beta) with
``alpha = softplus(x_alpha) + 1`` and ``beta = softplus(x_beta) + 1`` from the actor's 2d outputs
(Chou, Maturana & Scherer, ICML 2017, "Improving stochastic policy gradients in continuous control
with deep reinforcement learning using the Beta distribution"). Beta has exactly the support
[0, 1] (no clipping bias of a Gaussian), alpha, beta >= 1 keep it unimodal, and its mean
``alpha / (alpha + beta) = sigmoid(log alpha - log beta)`` is a sigmoid output, the seed's
normalisation: the deterministic (evaluation) action is this mean. KL divergence in closed form:

    KL(Beta(a1, b1) || Beta(a2, b2)) = ln B(a2, b2) - ln B(a1, b1) + (a1 - a2) psi(a1)
                                       + (b1 - b2) psi(b1) + (a2 - a1 + b2 - b1) psi(a1 + b1),

with B the Beta function and psi the digamma function; entropy
``ln B(a, b) - (a - 1) psi(a) - (b - 1) psi(b) + (a + b - 2) psi(a + b)``. Both are summed over
the d independent entries. Samples are drawn as a Gamma ratio ``G_a / (G_a + G_b)`` with an
explicit generator and clamped to [eps, 1 - eps] (eps = 1e-6) so that log-probabilities stay
finite; the clamped value is the action that is stored and evaluated.

**Observations** (the CATN env leaves normalisation to the learner; its BS observations span
1e-3 .. 1e7): an optional signed log ``symlog(x) = sign(x) ln(1 + |x|)`` (Hafner et al. 2023,
DreamerV3) followed by a per-agent running mean/variance standardisation clipped to +-10 (the
Gymnasium ``NormalizeObservation`` wrapper used by CleanRL's PPO). Statistics are updated by
:meth:`OnPolicyAgents.act` during collection and frozen during an update.

**Optimiser**: :class:`GroupAdam`, Adam with per-agent step counts, per-agent gradient-norm
clipping and an ``active`` mask, so that an agent whose KL early stop fired stops moving while
the others continue (each agent runs Algorithm 3 on its own).

Layout: the environment's agent tensors are batch first, ``(B, N, ...)``; a collector stacks T
slots time first, ``(T, B, N, ...)``; the networks see agent first, ``(N, T*B, ...)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.adam import adam

from skyshare.errors import ConfigError, ShapeError
from skyshare.rl.networks import GroupLinear, GroupMLP

__all__ = [
    "ACTION_EPS",
    "BetaActorGroup",
    "CriticGroup",
    "GroupAdam",
    "IndependentBeta",
    "ObservationNormalizer",
    "OnPolicyAgents",
    "Trajectory",
    "TrajectoryCollector",
    "beta_entropy",
    "beta_kl",
    "beta_log_prob",
    "from_agent_major",
    "init_group_mlp",
    "log_beta_function",
    "to_agent_major",
]

ACTION_EPS = 1e-6
"""Sampled actions are clamped to [ACTION_EPS, 1 - ACTION_EPS] (finite log-densities)."""


# ---------------------------------------------------------------------------------------------
# The Beta action distribution
# ---------------------------------------------------------------------------------------------


def log_beta_function(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ln B(a, b) = ln Gamma(a) + ln Gamma(b) - ln Gamma(a + b), elementwise."""
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


def beta_log_prob(
    alpha: torch.Tensor, beta: torch.Tensor, x: torch.Tensor, eps: float = ACTION_EPS
) -> torch.Tensor:
    """Elementwise ln p(x) of Beta(alpha, beta), x clamped to [eps, 1 - eps]."""
    x = x.clamp(eps, 1.0 - eps)
    return ((alpha - 1.0) * torch.log(x) + (beta - 1.0) * torch.log1p(-x)) - log_beta_function(
        alpha, beta
    )


def beta_entropy(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Elementwise differential entropy of Beta(alpha, beta)."""
    total = alpha + beta
    return (
        log_beta_function(alpha, beta)
        - (alpha - 1.0) * torch.digamma(alpha)
        - (beta - 1.0) * torch.digamma(beta)
        + (total - 2.0) * torch.digamma(total)
    )


def beta_kl(
    alpha_p: torch.Tensor, beta_p: torch.Tensor, alpha_q: torch.Tensor, beta_q: torch.Tensor
) -> torch.Tensor:
    """Elementwise KL(Beta(alpha_p, beta_p) || Beta(alpha_q, beta_q)) in closed form."""
    total_p = alpha_p + beta_p
    return (
        log_beta_function(alpha_q, beta_q)
        - log_beta_function(alpha_p, beta_p)
        + (alpha_p - alpha_q) * torch.digamma(alpha_p)
        + (beta_p - beta_q) * torch.digamma(beta_p)
        + (alpha_q - alpha_p + beta_q - beta_p) * torch.digamma(total_p)
    )


class IndependentBeta:
    """d independent Beta distributions on [0, 1]^d, batched over leading axes.

    Args:
        alpha, beta: (..., d) concentrations > 0 (>= 1 from :class:`BetaActorGroup`).

    ``log_prob``, ``entropy`` and ``kl`` sum over the d entries and return (...).
    """

    def __init__(self, alpha: torch.Tensor, beta: torch.Tensor, eps: float = ACTION_EPS) -> None:
        if alpha.shape != beta.shape or alpha.ndim < 1:
            raise ShapeError(
                f"alpha and beta must have the same shape (..., d), got "
                f"{tuple(alpha.shape)} and {tuple(beta.shape)}"
            )
        self.alpha, self.beta, self.eps = alpha, beta, eps

    @property
    def mean(self) -> torch.Tensor:
        """(..., d) alpha / (alpha + beta): the deterministic action."""
        return self.alpha / (self.alpha + self.beta)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """(..., d) draws, clamped to [eps, 1 - eps]; no gradient (score-function learners).

        Beta(a, b) = G_a / (G_a + G_b) with independent G ~ Gamma(., 1) (Devroye 1986, §IX.4).
        ``torch._standard_gamma`` is used because it is the Gamma sampler that takes a generator.
        """
        with torch.no_grad():
            gammas = torch._standard_gamma(torch.stack((self.alpha, self.beta)), generator)
            x = gammas[0] / (gammas[0] + gammas[1])
            return x.nan_to_num(0.5).clamp(self.eps, 1.0 - self.eps)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """(...) sum over d of ln p(a_i); actions (..., d) in [0, 1]."""
        return beta_log_prob(self.alpha, self.beta, actions, self.eps).sum(-1)

    def entropy(self) -> torch.Tensor:
        """(...) sum over d of the entropies."""
        return beta_entropy(self.alpha, self.beta).sum(-1)

    def kl(self, other: IndependentBeta) -> torch.Tensor:
        """(...) KL(self || other), summed over d."""
        return beta_kl(self.alpha, self.beta, other.alpha, other.beta).sum(-1)

    def __getitem__(self, index: Any) -> IndependentBeta:
        """Index the batch axes (not the action axis), e.g. ``dist[:, minibatch]``."""
        return IndependentBeta(self.alpha[index], self.beta[index], self.eps)

    def detach(self) -> IndependentBeta:
        return IndependentBeta(self.alpha.detach(), self.beta.detach(), self.eps)


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


def init_group_mlp(mlp: GroupMLP, generator: torch.Generator, output_gain: float) -> None:
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


class BetaActorGroup(nn.Module):
    """N independent actors obs -> Beta(alpha, beta) on [0, 1]^act_dim.

    Args:
        n_agents: N. obs_dim: D. act_dim: d.
        hidden_sizes: hidden widths (seed §VI: 512, 128, 64).
        activations: one per hidden layer (seed §VI: relu, relu, sigmoid).

    Shapes: observations (N, batch, D) -> IndependentBeta with (N, batch, d) concentrations
    ``softplus(.) + 1``. The last layer starts at gain 0.01, so every agent starts near
    Beta(1.69, 1.69) (mean 0.5, broad).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        act_dim: int,
        hidden_sizes: Sequence[int],
        activations: Sequence[str] | str,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.net = GroupMLP(
            n_agents,
            (obs_dim, *hidden_sizes, 2 * act_dim),
            activations,
            reuse_grad_buffer=True,
            transposed_storage=True,
        )
        init_group_mlp(self.net, generator, output_gain=0.01)

    def forward(self, obs: torch.Tensor) -> IndependentBeta:
        out = self.net(obs)
        alpha = F.softplus(out[..., : self.act_dim]) + 1.0
        beta = F.softplus(out[..., self.act_dim :]) + 1.0
        return IndependentBeta(alpha, beta)


class CriticGroup(nn.Module):
    """N independent value networks obs (N, batch, D) -> (N, batch, n_outputs).

    One output for the reward critic V_phi; L outputs for the cost critic V_psi^C (one network
    per agent whose L outputs are the L cost values, as the seed's single psi with "the V values
    V_psi(o)", §V-C-1).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        n_outputs: int,
        hidden_sizes: Sequence[int],
        activation_name: str,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.net = GroupMLP(
            n_agents,
            (obs_dim, *hidden_sizes, n_outputs),
            activation_name,
            reuse_grad_buffer=True,
            transposed_storage=True,
        )
        init_group_mlp(self.net, generator, output_gain=1.0)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class ObservationNormalizer(nn.Module):
    """Per-agent ``clip((f(x) - mean) / sqrt(var + 1e-8), -clip, clip)`` with running moments.

    Args:
        n_agents, obs_dim: N, D.
        transform: "symlog" (sign(x) ln(1 + |x|)) or "none", applied before the moments.
        enabled: False makes the normaliser the identity after ``transform``.
        clip: bound of the standardised values (10, as Gymnasium's NormalizeObservation).

    Moments start at mean 0, var 1, count 1e-4 and merge batches with Chan et al.'s parallel
    update (as Gymnasium's ``RunningMeanStd``).
    """

    def __init__(
        self,
        n_agents: int,
        obs_dim: int,
        transform: str = "symlog",
        enabled: bool = True,
        clip: float = 10.0,
    ) -> None:
        super().__init__()
        if transform not in ("symlog", "none"):
            raise ConfigError(
                f"observation transform must be 'symlog' or 'none', got {transform!r}"
            )
        if clip <= 0:
            raise ConfigError(f"observation clip must be > 0, got {clip}")
        self.transform, self.enabled, self.clip = transform, enabled, clip
        self.register_buffer("mean", torch.zeros(n_agents, obs_dim))
        self.register_buffer("var", torch.ones(n_agents, obs_dim))
        self.register_buffer("count", torch.tensor(1e-4))

    def _transform(self, obs: torch.Tensor) -> torch.Tensor:
        if self.transform == "symlog":
            return torch.sign(obs) * torch.log1p(obs.abs())
        return obs

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Merge a batch (N, batch, D) into the running moments."""
        if self.enabled:
            self._merge(self._transform(obs.to(self.mean.dtype)))

    @torch.no_grad()
    def update_and_normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """``update(obs)`` then ``forward(obs)``, transforming the batch once."""
        x = self._transform(obs.to(self.mean.dtype))
        if not self.enabled:
            return x
        self._merge(x)
        return self._standardize(x)

    def _merge(self, x: torch.Tensor) -> None:
        """Chan et al.'s parallel merge of transformed observations (N, batch, D)."""
        batch_count = x.shape[1]
        batch_mean = x.mean(1)
        # the biased variance written out: torch.var over the batch axis takes a slow path
        # for (N, 1, D) inputs (6 ms per acting slot at N = 7, D = 3996)
        batch_var = (x - batch_mean[:, None, :]).square().mean(1)
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean += delta * (batch_count / total)
        m2 = self.var * self.count + batch_var * batch_count
        m2 += delta.square() * (self.count * batch_count / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(N, batch, D) -> (N, batch, D) normalised."""
        x = self._transform(obs.to(self.mean.dtype))
        if not self.enabled:
            return x
        return self._standardize(x)

    def _standardize(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean[:, None, :]) / torch.sqrt(self.var[:, None, :] + 1e-8)
        return z.clamp(-self.clip, self.clip)


# ---------------------------------------------------------------------------------------------
# Per-agent Adam
# ---------------------------------------------------------------------------------------------


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
        if active is None:
            agents = list(range(self.n_agents))
        else:
            if active.shape != (self.n_agents,):
                raise ShapeError(f"active must be ({self.n_agents},) bool, got {active.shape}")
            agents = [a for a, on in enumerate(active.tolist()) if on]
        if not agents:
            return
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
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
            fused = params[0].device.type in ("cpu", "cuda") and params[0].is_floating_point()
            inverse_scale = None  # (A,) 1 / clipping factor, or None without clipping
            if group["max_grad_norm"] is not None:
                # squared norm of each active agent's gradient, one BLAS dot per slice (twice
                # as fast as a norm reduction over (A, n) here); inactive agents keep scale 1
                first = params[0]
                squares = torch.zeros(self.n_agents, device=first.device, dtype=first.dtype)
                for a in agents:
                    for p in params:
                        g = _as_stored(p.grad[a]).reshape(-1)
                        squares[a] += torch.dot(g, g)
                norm = squares.sqrt()  # (A,)
                scale = (group["max_grad_norm"] / (norm + 1e-6)).clamp(max=1.0)
                if fused:  # the fused kernel divides the gradient by grad_scale on the fly
                    inverse_scale = scale.reciprocal()
                else:
                    for p in params:
                        p.grad.mul_(scale.view((-1,) + (1,) * (p.ndim - 1)))
            beta1, beta2 = group["betas"]
            # One call per active agent: its slices p[a] of every parameter (views, no copies),
            # with its own clipping factor folded into the kernel.
            for a in agents:
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


# ---------------------------------------------------------------------------------------------
# On-policy collector (Algorithm 4's xi_n^BS)
# ---------------------------------------------------------------------------------------------


@dataclass
class OnPolicyConfig:
    """Hyper-parameters shared by the on-policy BS learners (CUP, PPO-penalty).

    Defaults: seed 000 §VI unless marked; subclasses add their own fields and checks.
    """

    gamma: float = 0.5  # discount factor (§VI)
    gae_lambda: float = 0.1  # GAE parameter lambda (§VI)
    lr_critic: float = 3e-4  # alpha_V (§VI)
    lr_actor: float = 3e-4  # alpha_pi (§VI)
    kl_bound: float | None = 0.02  # epsilon of the KL early stops (§VI); None: no early stop
    collector_size: int = 50  # B_m^BS (§VI); used by the caller's TrajectoryCollector
    minibatch_size: int = 10  # B_b, in slots (§VI)
    epochs: int = 20  # B_e, per step (§VI)
    clip_ratio: float = 0.2  # epsilon of the clipped surrogate: Schulman et al. 2017 ([47])
    hidden_sizes: tuple[int, ...] = (512, 128, 64)  # actor and critics (§VI)
    actor_activations: tuple[str, ...] = ("relu", "relu", "sigmoid")  # §VI
    critic_activation: str = "relu"  # §VI
    standardize_advantages: bool = True  # reward advantages (CleanRL / OmniSafe default)
    entropy_coef: float = 0.0  # entropy bonus (CleanRL continuous PPO: 0)
    max_grad_norm: float | None = 0.5  # per agent and network (CleanRL PPO)
    adam_eps: float = 1e-5  # CleanRL PPO
    observation_transform: str = "symlog"  # "symlog" or "none" (choice, see above)
    normalize_observations: bool = True  # running mean/std per agent (choice)
    observation_clip: float = 10.0  # Gymnasium NormalizeObservation
    seed: int = 0  # network initialisation, sampling and minibatch shuffles

    def _checks(self) -> list[tuple[str, bool, str]]:
        """(field, valid, allowed range) for every field with a constraint."""
        return [
            ("gamma", 0.0 <= self.gamma < 1.0, "[0, 1)"),
            ("gae_lambda", 0.0 <= self.gae_lambda <= 1.0, "[0, 1]"),
            ("lr_critic", self.lr_critic > 0.0, "> 0"),
            ("lr_actor", self.lr_actor > 0.0, "> 0"),
            ("kl_bound", self.kl_bound is None or self.kl_bound > 0.0, "> 0 or None"),
            ("collector_size", self.collector_size >= 1, ">= 1"),
            ("minibatch_size", self.minibatch_size >= 1, ">= 1"),
            ("epochs", self.epochs >= 1, ">= 1"),
            ("clip_ratio", 0.0 < self.clip_ratio < 1.0, "(0, 1)"),
            ("hidden_sizes", bool(self.hidden_sizes) and min(self.hidden_sizes) >= 1, ">= 1"),
            (
                "actor_activations",
                len(self.actor_activations) == len(self.hidden_sizes),
                "one name per hidden layer",
            ),
            ("entropy_coef", self.entropy_coef >= 0.0, ">= 0"),
            ("max_grad_norm", self.max_grad_norm is None or self.max_grad_norm > 0.0, "> 0"),
            ("adam_eps", self.adam_eps > 0.0, "> 0"),
            ("observation_clip", self.observation_clip > 0.0, "> 0"),
        ]

    def __post_init__(self) -> None:
        self.hidden_sizes = tuple(self.hidden_sizes)
        self.actor_activations = tuple(self.actor_activations)
        for name, ok, allowed in self._checks():
            if not ok:
                raise ConfigError(
                    f"{type(self).__name__}.{name} = {getattr(self, name)!r}; allowed: {allowed}"
                )


@dataclass
class Trajectory:
    """T slots of experience <o_i, a_i, r_i, o_{i+1}, c_i> for all N agents in B environments.

    Attributes:
        obs: (T, B, N, D) float o_i.
        actions: (T, B, N, d) float a_i in [0, 1].
        rewards: (T, B, N) float r_i.
        costs: (T, B, N, L) float c_i.
        next_obs: (T, B, N, D) float o_{i+1}.
        terminated: optional (T, B) bool, o_{i+1} is terminal (its value is 0).
        truncated: optional (T, B) bool, the episode was cut after slot i (o_{i+1} is still
            bootstrapped; GAE does not chain across the cut).
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    costs: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor | None = None
    truncated: torch.Tensor | None = None

    @property
    def n_slots(self) -> int:
        return self.obs.shape[0]

    @property
    def n_envs(self) -> int:
        return self.obs.shape[1]

    def check(self, n_agents: int, obs_dim: int, act_dim: int, n_costs: int) -> None:
        """Raise :class:`ShapeError` unless the shapes match the documented layout."""
        if self.obs.ndim != 4:
            raise ShapeError(f"obs must be (T, B, N, D), got {tuple(self.obs.shape)}")
        T, B = self.obs.shape[:2]
        expected = {
            "obs": (T, B, n_agents, obs_dim),
            "actions": (T, B, n_agents, act_dim),
            "rewards": (T, B, n_agents),
            "costs": (T, B, n_agents, n_costs),
            "next_obs": (T, B, n_agents, obs_dim),
            "terminated": (T, B),
            "truncated": (T, B),
        }
        for name, shape in expected.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise ShapeError(f"trajectory {name} must be {shape}, got {tuple(value.shape)}")

    def episode_ends(self) -> torch.Tensor | None:
        """(T, B) bool: terminated or truncated, or None when neither is given."""
        ends = [x.bool() for x in (self.terminated, self.truncated) if x is not None]
        if not ends:
            return None
        return ends[0] | ends[1] if len(ends) == 2 else ends[0]

    def to(self, device: torch.device | str) -> Trajectory:
        return Trajectory(
            **{
                f.name: None if getattr(self, f.name) is None else getattr(self, f.name).to(device)
                for f in fields(self)
            }
        )


class TrajectoryCollector:
    """The trajectory collector xi^BS of size B_m^BS (Algorithm 4 lines 22-24), all agents at once.

    ``add`` stores one slot (batch-first tensors as the env gives them); once ``full``,
    ``pop()`` returns the stacked :class:`Trajectory` and empties the collector.
    """

    _FIELDS = ("obs", "actions", "rewards", "costs", "next_obs", "terminated", "truncated")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ConfigError(f"collector capacity (B_m^BS) must be >= 1, got {capacity}")
        self.capacity = capacity
        self._slots: list[dict[str, torch.Tensor | None]] = []

    def __len__(self) -> int:
        return len(self._slots)

    @property
    def full(self) -> bool:
        return len(self._slots) >= self.capacity

    def add(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        costs: torch.Tensor,
        next_obs: torch.Tensor,
        terminated: torch.Tensor | None = None,
        truncated: torch.Tensor | None = None,
    ) -> None:
        """Store slot i: obs (B, N, D), actions (B, N, d), rewards (B, N), costs (B, N, L),
        next_obs (B, N, D), terminated/truncated (B,) bool or None."""
        if self.full:
            raise RuntimeError(f"collector is full ({self.capacity} slots); call pop() first")
        slot = {
            "obs": obs,
            "actions": actions,
            "rewards": rewards,
            "costs": costs,
            "next_obs": next_obs,
            "terminated": terminated,
            "truncated": truncated,
        }
        if self._slots:
            for name, value in slot.items():
                if (value is None) != (self._slots[0][name] is None):
                    raise ShapeError(f"collector field {name} given in some slots only")
        self._slots.append({k: None if v is None else v.detach().clone() for k, v in slot.items()})

    def trajectory(self) -> Trajectory:
        """The stored slots stacked time first (without emptying the collector)."""
        if not self._slots:
            raise RuntimeError("collector is empty")
        return Trajectory(
            **{
                name: None
                if self._slots[0][name] is None
                else torch.stack([slot[name] for slot in self._slots])
                for name in self._FIELDS
            }
        )

    def pop(self) -> Trajectory:
        trajectory = self.trajectory()
        self.clear()
        return trajectory

    def clear(self) -> None:
        self._slots = []

    def state_dict(self) -> dict[str, Any]:
        """Stored slots (stacked) for checkpoints."""
        if not self._slots:
            return {"capacity": self.capacity, "trajectory": None}
        return {"capacity": self.capacity, "trajectory": vars(self.trajectory())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.capacity = int(state["capacity"])
        self.clear()
        stacked = state["trajectory"]
        if stacked is None:
            return
        for i in range(stacked["obs"].shape[0]):
            self._slots.append({k: None if v is None else v[i] for k, v in stacked.items()})


def to_agent_major(x: torch.Tensor) -> torch.Tensor:
    """(T, B, N, ...) -> (N, T*B, ...), sample s = t*B + b."""
    T, B, N = x.shape[:3]
    return x.movedim(2, 0).reshape(N, T * B, *x.shape[3:])


def from_agent_major(x: torch.Tensor, n_slots: int, n_envs: int) -> torch.Tensor:
    """(N, T*B, ...) -> (T, B, N, ...), the inverse of :func:`to_agent_major`."""
    return x.reshape(x.shape[0], n_slots, n_envs, *x.shape[2:]).movedim(0, 2)


@dataclass
class PreparedTrajectory:
    """A trajectory as the on-policy updates consume it (S = T*B samples per agent).

    Attributes:
        obs, next_obs: (N, S, D) normalised observations. actions: (N, S, d).
        values, next_values: (T, B, N) reward-critic values of obs and next_obs, the latter
            zeroed after a terminated slot. alive: (T, B) 0 after a terminated slot, else 1.
        rewards: (T, B, N), costs: (T, B, N, L) in the critics' dtype.
    """

    obs: torch.Tensor
    next_obs: torch.Tensor
    actions: torch.Tensor
    values: torch.Tensor
    next_values: torch.Tensor
    alive: torch.Tensor
    rewards: torch.Tensor
    costs: torch.Tensor


def standardized(x: torch.Tensor) -> torch.Tensor:
    """(N, S) -> per-agent zero mean, unit (population) standard deviation."""
    return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True, correction=0) + 1e-8)


# ---------------------------------------------------------------------------------------------
# What CUP and PPO-penalty agents share: networks, observation normaliser, act()
# ---------------------------------------------------------------------------------------------


class OnPolicyAgents:
    """N BS agents with a Beta actor group, a reward critic group, their per-agent Adam
    optimisers and an observation normaliser, for trajectories with L cost signals.

    Subclasses (``CupAgents``, ``PpoPenaltyAgents``) add their critics and ``update``. The
    config is duck-typed: it needs ``hidden_sizes``, ``actor_activations``,
    ``critic_activation``, ``observation_transform``, ``normalize_observations``,
    ``observation_clip``, ``lr_actor``, ``lr_critic``, ``adam_eps``, ``max_grad_norm`` and
    ``seed``.
    """

    # modules and optimizers saved by state_dict(); subclasses extend the tuple
    _checkpointed: tuple[str, ...] = (
        "actor",
        "reward_critic",
        "normalizer",
        "actor_optimizer",
        "reward_critic_optimizer",
    )

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        n_agents: int,
        n_costs: int,
        config: Any,
        device: str | torch.device = "cpu",
    ) -> None:
        for name, value in (
            ("obs_dim", obs_dim),
            ("act_dim", act_dim),
            ("n_agents", n_agents),
            ("n_costs (L)", n_costs),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        self.obs_dim, self.act_dim, self.n_agents = obs_dim, act_dim, n_agents
        self.n_costs = n_costs
        self.config = config
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)
        init_generator = torch.Generator().manual_seed(config.seed)
        self.actor = BetaActorGroup(
            n_agents,
            obs_dim,
            act_dim,
            config.hidden_sizes,
            config.actor_activations,
            init_generator,
        ).to(self.device)
        self.reward_critic = CriticGroup(
            n_agents, obs_dim, 1, config.hidden_sizes, config.critic_activation, init_generator
        ).to(self.device)
        self.normalizer = ObservationNormalizer(
            n_agents,
            obs_dim,
            transform=config.observation_transform,
            enabled=config.normalize_observations,
            clip=config.observation_clip,
        ).to(self.device)
        self.actor_optimizer = self._adam(self.actor, config.lr_actor)
        self.reward_critic_optimizer = self._adam(self.reward_critic, config.lr_critic)
        self.n_updates = 0

    @torch.no_grad()
    def _prepare(self, trajectory: Trajectory) -> PreparedTrajectory:
        """Check ``trajectory`` against the agents, move it to their device, normalise its
        observations and evaluate the reward critic on them (GAE's inputs)."""
        trajectory.check(self.n_agents, self.obs_dim, self.act_dim, self.n_costs)
        trajectory = trajectory.to(self.device)
        T, B = trajectory.n_slots, trajectory.n_envs
        obs = self.normalizer(to_agent_major(trajectory.obs))  # (N, S, D), S = T*B
        next_obs = self.normalizer(to_agent_major(trajectory.next_obs))
        values = from_agent_major(self.reward_critic(obs)[..., 0], T, B)  # (T, B, N)
        next_values = from_agent_major(self.reward_critic(next_obs)[..., 0], T, B)
        alive = torch.ones(T, B, dtype=values.dtype, device=self.device)
        if trajectory.terminated is not None:
            alive = (~trajectory.terminated.bool()).to(values.dtype)
        return PreparedTrajectory(
            obs=obs,
            next_obs=next_obs,
            actions=to_agent_major(trajectory.actions),  # (N, S, d)
            values=values,
            next_values=next_values * alive[..., None],
            alive=alive,
            rewards=trajectory.rewards.to(values.dtype),
            costs=trajectory.costs.to(values.dtype),
        )

    def _adam(self, network: torch.nn.Module, lr: float) -> GroupAdam:
        """Per-agent Adam over ``network`` with the config's eps and gradient-norm bound."""
        config = self.config
        return GroupAdam(
            network.parameters(), lr, eps=config.adam_eps, max_grad_norm=config.max_grad_norm
        )

    @torch.no_grad()
    def state_dict(self) -> dict[str, Any]:
        """Networks, normaliser, optimisers, generator state and the config (a dict)."""
        from dataclasses import asdict

        state = {name: getattr(self, name).state_dict() for name in self._checkpointed}
        state.update(
            config=asdict(self.config),
            dims=(self.obs_dim, self.act_dim, self.n_agents, self.n_costs),
            generator=self.generator.get_state(),
            n_updates=self.n_updates,
        )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` of agents with the same dimensions."""
        dims = (self.obs_dim, self.act_dim, self.n_agents, self.n_costs)
        if tuple(state["dims"]) != dims:
            raise ShapeError(
                f"checkpoint has (obs_dim, act_dim, n_agents, n_costs) = {tuple(state['dims'])}, "
                f"these agents {dims}"
            )
        for name in self._checkpointed:
            getattr(self, name).load_state_dict(state[name])
        self.generator.set_state(state["generator"])
        self.n_updates = int(state["n_updates"])

    @torch.no_grad()
    def act(
        self,
        obs: torch.Tensor,
        *,
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        update_statistics: bool | None = None,
        with_values: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Actions of all agents in all environments (Algorithm 4 line 26).

        Args:
            obs: (B, N, D) float observations (8), the env's layout.
            deterministic: use the Beta mean (evaluation) instead of a sample.
            generator: sampling generator (the agents' own seeded generator when None).
            update_statistics: merge ``obs`` into the normaliser's running moments; default
                ``not deterministic`` (collecting updates them, evaluation does not).
            with_values: also evaluate the reward critic. False returns None for the values and
                halves the cost of a decision (each network's first layer is 57 MB of weights
                to read for the paper's sizes; the actor alone decides).

        Returns:
            actions (B, N, d) in [1e-6, 1 - 1e-6], their log-probabilities (B, N) and the reward
            critic's values (B, N) (None with ``with_values=False``). No autograd graph is
            recorded (the learners recompute what they differentiate).
        """
        if obs.ndim != 3 or obs.shape[1:] != (self.n_agents, self.obs_dim):
            raise ShapeError(
                f"obs must be (B, N, D) = (B, {self.n_agents}, {self.obs_dim}), "
                f"got {tuple(obs.shape)}"
            )
        x = obs.to(self.device).transpose(0, 1)  # (N, B, D)
        if update_statistics if update_statistics is not None else not deterministic:
            z = self.normalizer.update_and_normalize(x)
        else:
            z = self.normalizer(x)
        dist = self.actor(z)
        if deterministic:
            actions = dist.mean.clamp(ACTION_EPS, 1.0 - ACTION_EPS)
        else:
            actions = dist.sample(generator if generator is not None else self.generator)
        log_probs = dist.log_prob(actions)
        values = self.reward_critic(z)[..., 0].transpose(0, 1) if with_values else None
        return actions.transpose(0, 1), log_probs.transpose(0, 1), values

    def _minibatches(self, n_samples: int, minibatch_samples: int) -> list[torch.Tensor]:
        """One shuffled pass over the samples in chunks of ``minibatch_samples``.

        The same permutation serves all agents (each agent still sees only its own data).
        """
        perm = torch.randperm(n_samples, generator=self.generator, device=self.device)
        return list(perm.split(minibatch_samples))
