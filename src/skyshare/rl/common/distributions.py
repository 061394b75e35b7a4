"""The bounded action distribution of the BS agents: d independent Beta distributions on [0, 1].

Seed 000 §VI only says that the actor's outputs are sigmoid-normalised to [0, 1]. Each of the d
action entries is an independent Beta(alpha, beta) with ``alpha = softplus(x_alpha) + 1`` and
``beta = softplus(x_beta) + 1`` from the actor's 2d outputs (Chou, Maturana & Scherer, ICML
2017, "Improving stochastic policy gradients in continuous control with deep reinforcement
learning using the Beta distribution"). Beta has exactly the support [0, 1] (no clipping bias of
a Gaussian), alpha, beta >= 1 keep it unimodal, and its mean
``alpha / (alpha + beta) = sigmoid(log alpha - log beta)`` is a sigmoid output, the seed's
normalisation: the deterministic (evaluation) action is this mean. KL divergence in closed form:

    KL(Beta(a1, b1) || Beta(a2, b2)) = ln B(a2, b2) - ln B(a1, b1) + (a1 - a2) psi(a1)
                                       + (b1 - b2) psi(b1) + (a2 - a1 + b2 - b1) psi(a1 + b1),

with B the Beta function and psi the digamma function; entropy
``ln B(a, b) - (a - 1) psi(a) - (b - 1) psi(b) + (a + b - 2) psi(a + b)``. Both are summed over
the d independent entries. Samples are drawn as a Gamma ratio ``G_a / (G_a + G_b)`` with an
explicit generator and clamped to [eps, 1 - eps] (eps = 1e-6) so that log-probabilities stay
finite; the clamped value is the action that is stored and evaluated.
"""

from __future__ import annotations

from typing import Any

import torch

from skyshare.errors import ShapeError

__all__ = [
    "ACTION_EPS",
    "IndependentBeta",
    "beta_entropy",
    "beta_kl",
    "beta_log_prob",
    "log_beta_function",
]

ACTION_EPS = 1e-6
"""Sampled actions are clamped to [ACTION_EPS, 1 - ACTION_EPS] (finite log-densities)."""


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
        alpha, beta: (..., d) concentrations > 0 (>= 1 from
            :class:`~skyshare.rl.common.networks.BetaActorGroup`).

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
# Masked multi-head categorical (seed 001: one head per subchannel of an agent's block)
# ---------------------------------------------------------------------------------------------

__all__ += ["MaskedMultiCategorical"]  # appended with the class below


class MaskedMultiCategorical:
    """S independent categorical heads of C choices each, with invalid choices masked out.

    Seed 001 §III-C-2: an agent gives each of the S subchannels of its block one of C = K_max + 1
    choices (0 = off, k = user slot k - 1); the choices of inactive user slots are invalid. Head s
    is a categorical distribution over its allowed choices (the logits of masked choices are set
    to -inf, so their probability is exactly 0 and they are never sampled):

        p_s(c) = exp(x_{s,c}) / sum_{c' allowed} exp(x_{s,c'}),   0 for a masked c,

    and the heads are independent, so the joint log-probability and entropy are sums over heads:

        ln pi(a) = sum_s ln p_s(a_s),   H(pi) = -sum_s sum_{c allowed} p_s(c) ln p_s(c).

    Args:
        logits: (..., S, C) float.
        mask: (..., S, C) bool, True where a choice is allowed, or None (all allowed). Every head
            needs an allowed choice (seed 001: "off" always is), else :class:`ShapeError`.

    ``log_prob``, ``entropy`` return (...); ``sample``, ``mode`` return (..., S) long.
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        if logits.ndim < 2:
            raise ShapeError(f"logits must be (..., S, C), got {tuple(logits.shape)}")
        if mask is not None:
            if mask.shape != logits.shape or mask.dtype != torch.bool:
                raise ShapeError(
                    f"mask must be bool of the logits' shape {tuple(logits.shape)}, got "
                    f"{mask.dtype} {tuple(mask.shape)}"
                )
            if not bool(mask.any(-1).all()):
                raise ShapeError("every head needs at least one allowed choice")
            logits = logits.masked_fill(~mask, float("-inf"))
        self.mask = mask
        self.logits = logits  # masked: -inf where not allowed
        self.log_probs = torch.log_softmax(logits, dim=-1)  # (..., S, C), -inf where masked

    @property
    def probs(self) -> torch.Tensor:
        """(..., S, C) p_s(c), 0 on masked choices."""
        return self.log_probs.exp()

    def mode(self) -> torch.Tensor:
        """(..., S) long: the most probable allowed choice of every head (evaluation)."""
        return self.logits.argmax(-1)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """(..., S) long draws, by inversion: one uniform u per head, the first choice whose
        cumulative probability exceeds u times the head's total (in float64). A masked choice
        (probability 0) adds nothing to the cumulative sum, so it is never the first to exceed
        it; one vectorised pass instead of ``torch.multinomial``'s per-row loop (about 10x
        faster for thousands of heads)."""
        with torch.no_grad():
            cumulative = self.probs.double().cumsum(-1)  # (..., S, C)
            total = cumulative[..., -1:]
            u = torch.rand(total.shape, generator=generator, dtype=total.dtype,
                           device=total.device)  # fmt: skip
            draws = (cumulative <= u * total).sum(-1)
            # u * total rounds to total only for u within 2^-53 of 1: take the mode then
            return torch.where(draws < cumulative.shape[-1], draws, self.mode())

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """(...) sum over the S heads of ln p_s(a_s); actions (..., S) long."""
        return self.head_log_prob(actions).sum(-1)

    def head_log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        """(..., S) ln p_s(a_s) of every head; actions (..., S) long."""
        if actions.shape != self.logits.shape[:-1]:
            raise ShapeError(
                f"actions must be {tuple(self.logits.shape[:-1])}, got {tuple(actions.shape)}"
            )
        return self.log_probs.gather(-1, actions.unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        """(...) sum over the S heads of the entropy over the allowed choices.

        Masked terms are dropped before the product (0 * -inf would give NaN values and
        gradients)."""
        log_probs = self.log_probs
        if self.mask is not None:
            log_probs = log_probs.masked_fill(~self.mask, 0.0)
        return -(self.probs * log_probs).sum((-2, -1))
