"""Water-filling, selfish single-user water-filling (SSWF) and random power allocation (seed 004).

**Water-filling** (Cover & Thomas, *Elements of Information Theory*, 2nd ed., 2006, §9.4;
Tse & Viswanath, *Fundamentals of Wireless Communication*, 2005, §5.4.6): over F parallel
channels with floors ``n_f`` (noise-plus-interference over gain),

    maximize_p  sum_f log2(1 + p_f / n_f)   s.t.  sum_f p_f = P,  p_f >= 0

is solved by ``p_f = (mu - n_f)^+`` with the water level mu set so that the budget is met with
equality. Exact, sort-based, no bisection: with the floors sorted ascending
``n_(1) <= ... <= n_(F)`` and ``S_k = n_(1) + ... + n_(k)``,

    mu = min_{k = 1..F} (P + S_k) / k.

Why the minimum: for every k and every level m, ``sum_{i<=k} (m - n_(i)) <= sum_f (m - n_f)^+``,
so the root ``mu_k = (P + S_k) / k`` of the left side is >= the root mu of the right side, with
equality when the first k channels are exactly the active ones. (This equals the textbook rule
"the largest k with mu_k > n_(k)".) Floors may be negative (the forward-looking floors of FLWF
can be) or ``+inf`` (a channel that can carry nothing: it gets no power).

**SSWF** (seed 004 §V, "selfish single-user water-filling"): every user (b, u) water-fills its
share ``P_b(t) / U_b`` of its BS's budget (eq. (14)) over the N_f channels, "ignorant of any ICI
to and from other cells": floor ``n_{b,u}[f] = sigma^2 / |w_{b,u}^H h_{b,(b,u)}[f]|^2``, i.e.
c_{b,u}[f] of eq. (7) without the ICI term. The reported rates are the actual ones, with the ICI
that the resulting powers cause (``MultibandProblem.rates``, the package's SINR kernel).

**Random power allocation** (seed 004 §V, "randomly chosen and unoptimized"): the seed gives no
distribution. Choice (default ``"dirichlet"``): each user spends its full per-user budget
``P_b(t) / U_b``, split over the N_f channels by a Dirichlet(1, ..., 1) draw, i.e. uniformly on
the simplex, sampled as i.i.d. Exp(1) variables divided by their sum (L. Devroye, *Non-Uniform
Random Variate Generation*, Springer, 1986, §V.2.2 and §XI.4). ``"uniform"``: i.i.d. U(0, 1)
weights normalised to the budget (not uniform on the simplex, more concentrated near equal
power).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.multiband_problem import MultibandProblem

__all__ = [
    "RANDOM_POWER_DISTRIBUTIONS",
    "SswfResult",
    "random_power",
    "random_split",
    "sswf",
    "water_filling",
    "water_level",
]

RANDOM_POWER_DISTRIBUTIONS = ("dirichlet", "uniform")


# ------------------------------------------------------------------------------------------------
# Water-filling
# ------------------------------------------------------------------------------------------------


def _level(floors: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """``min_k (P + n_(1) + ... + n_(k)) / k``: (..., F), (...) -> (..., 1)."""
    ascending = floors.sort(dim=-1).values
    n_active = torch.arange(1, floors.shape[-1] + 1, device=floors.device, dtype=floors.dtype)
    candidate_levels = (budget[..., None] + ascending.cumsum(-1)) / n_active  # mu_k, k = 1..F
    return candidate_levels.amin(-1, keepdim=True)


def _relative_floors(floors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n - n_min, n_min)``: the floors above the lowest one (..., F), and it (..., 1);
    ``n_min`` is 0 where every floor is +inf."""
    lowest = floors.amin(-1, keepdim=True)
    lowest = torch.where(torch.isinf(lowest), 0.0, lowest)
    return floors - lowest, lowest


def _level_and_power(floors: torch.Tensor, budget: torch.Tensor):
    """Water level (..., 1) and power (..., F), unchecked.

    ``p_f = mu - n_f`` cancels the floors away and leaves their rounding error, ``eps n`` per
    channel, which exceeds the budget P itself when the floors are ~1/eps times larger
    (float32 at SNR -40 dB: 5 % overspent). Where the powers miss P by more than
    ``16 F eps P``, they are recomputed above the lowest floor, ``p_f = (mu - n_min) -
    (n_f - n_min)``: an active channel has ``n_f - n_min < P``, so when P << n_min that
    difference is exact (Sterbenz) and the powers add up to P to rounding. Elsewhere the
    numbers are those of the direct formula.
    """
    level = _level(floors, budget)
    power = (level - floors).clamp_min(0.0)
    slack = 16 * floors.shape[-1] * torch.finfo(floors.dtype).eps
    lossy = (power.sum(-1) - budget).abs() > slack * budget  # NaN (all floors inf): kept
    if bool(lossy.any()):
        relative, lowest = _relative_floors(floors)
        level_above = _level(relative, budget)
        power = torch.where(lossy[..., None], (level_above - relative).clamp_min(0.0), power)
        level = torch.where(lossy[..., None], level_above + lowest, level)
    return level, power


def _water_level(floors: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Unchecked core of :func:`water_level`: (..., F), (...) -> (..., 1)."""
    return _level_and_power(floors, budget)[0]


def _water_fill(floors: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Unchecked core of :func:`water_filling` (used inside iterative solvers)."""
    return _level_and_power(floors, budget)[1]


def _check_water_filling_args(inverse_gains: torch.Tensor, budget: torch.Tensor) -> None:
    if not isinstance(inverse_gains, torch.Tensor) or inverse_gains.is_complex():
        raise ShapeError("inverse_gains must be a real torch.Tensor of shape (..., F)")
    if inverse_gains.ndim < 1 or inverse_gains.shape[-1] < 1:
        raise ShapeError(
            f"inverse_gains must be (..., F) with F >= 1 channels, got {tuple(inverse_gains.shape)}"
        )
    if not isinstance(budget, torch.Tensor) or tuple(budget.shape) != inverse_gains.shape[:-1]:
        got = tuple(budget.shape) if isinstance(budget, torch.Tensor) else type(budget).__name__
        raise ShapeError(
            f"budget must be a tensor of shape {tuple(inverse_gains.shape[:-1])} (the leading "
            f"axes of inverse_gains), got {got}"
        )
    if bool(torch.isnan(inverse_gains).any()) or bool((inverse_gains == -torch.inf).any()):
        raise ConfigError("inverse_gains must be real numbers or +inf (no NaN, no -inf)")
    if not bool(torch.isfinite(budget).all()) or bool((budget < 0).any()):
        raise ConfigError("budget must be finite and >= 0")


def water_level(inverse_gains: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """The water level mu of :func:`water_filling`: (..., F), (...) -> (...).

    ``mu = min_k (P + n_(1) + ... + n_(k)) / k`` over the ascending floors (module docstring).
    """
    _check_water_filling_args(inverse_gains, budget)
    return _water_level(inverse_gains, budget.to(inverse_gains.dtype)).squeeze(-1)


def water_filling(inverse_gains: torch.Tensor, budget: torch.Tensor) -> torch.Tensor:
    """Exact water-filling power allocation, batched over every leading axis.

    Solves ``max sum_f log2(1 + p_f / n_f)`` s.t. ``sum_f p_f = P``, ``p >= 0``
    (Cover & Thomas 2006, §9.4): ``p_f = (mu - n_f)^+``, one water level mu per problem.

    Args:
        inverse_gains: (..., F) float, the floors ``n_f`` (noise-plus-interference power over
            the channel gain; any real number, or +inf for an unusable channel).
        budget: (...) float >= 0, the power P to spend.

    Returns:
        (..., F) float: the power, ``sum_f p_f = P`` (to rounding) whenever some floor is
        finite, equal level ``p_f + n_f = mu`` on the active channels (``p_f > 0``) and zero
        power where ``n_f >= mu``.
    """
    _check_water_filling_args(inverse_gains, budget)
    return _water_fill(inverse_gains, budget.to(inverse_gains.dtype))


# ------------------------------------------------------------------------------------------------
# Selfish single-user water-filling (SSWF)
# ------------------------------------------------------------------------------------------------


@dataclass
class SswfResult:
    """What :func:`sswf` returns.

    Attributes:
        power: (B, C*U, F) float, ``p_{b,u}[f]``; each user spends ``P_b(t) / U`` (eq. (14)).
        rates: (B, C*U, F) float, bit/s/Hz, with the actual ICI (``MultibandProblem.rates``).
        cell_capacity: (B, C) float, bit/s/Hz, sum over the cell's users and channels.
        water_level: (B, C*U) float, each user's level mu (in the noise-only floor units).
        wall_time_s: seconds spent (allocation and rate evaluation).
        scalars_exchanged: real scalars exchanged between BSs: 0 (each BS needs only its own
            users' direct ZF gains, local CSI).
    """

    power: torch.Tensor
    rates: torch.Tensor
    cell_capacity: torch.Tensor
    water_level: torch.Tensor
    wall_time_s: float
    scalars_exchanged: int = 0


def sswf(problem: MultibandProblem) -> SswfResult:
    """Selfish single-user water-filling (seed 004 §V), every user of every cell at once.

    User (b, u) water-fills ``P_b(t) / U`` (eq. (14)) over the N_f channels with floors
    ``sigma^2 / |w_{b,u}^H h_{b,(b,u)}[f]|^2`` (eq. (7) with the ICI term left out).

    Args:
        problem: the block (:class:`~skyshare.solvers.multiband_problem.MultibandProblem`;
            reads ``direct_gain (B, C*U, F)``, ``user_budget (B, C*U)`` and the noise, and
            ``rates`` for the reported rates).

    Returns:
        :class:`SswfResult`; rates and capacities include the ICI of the chosen powers.
    """
    start = time.perf_counter()
    floors = problem.noise / problem.direct_gain  # (B, K, F)
    per_user = problem.user_budget.to(floors.dtype)  # (B, K)
    level, power = _level_and_power(floors, per_user)
    rates = problem.rates(power)
    return SswfResult(
        power=power,
        rates=rates,
        cell_capacity=problem.cell_sum(rates),
        water_level=level.squeeze(-1),
        wall_time_s=time.perf_counter() - start,
    )


# ------------------------------------------------------------------------------------------------
# Random power allocation
# ------------------------------------------------------------------------------------------------


def random_split(
    budget: torch.Tensor,
    n_freq: int,
    generator: torch.Generator,
    *,
    distribution: str = "dirichlet",
) -> torch.Tensor:
    """Split each budget at random over ``n_freq`` channels: (...) -> (..., n_freq).

    Args:
        budget: (...) float >= 0, the power each split spends in full.
        n_freq: F >= 1 channels.
        generator: the only source of randomness (on ``budget``'s device).
        distribution: ``"dirichlet"`` (default; weights Dirichlet(1, ..., 1), uniform on the
            simplex, as i.i.d. Exp(1) / their sum, Devroye 1986 §V.2.2) or ``"uniform"``
            (i.i.d. U(0, 1) weights / their sum).

    Returns:
        (..., n_freq) float, non-negative, summing to ``budget`` along the last axis.
    """
    if isinstance(n_freq, bool) or int(n_freq) != n_freq or n_freq < 1:
        raise ConfigError(f"n_freq must be an integer >= 1, got {n_freq}")
    if distribution not in RANDOM_POWER_DISTRIBUTIONS:
        raise ConfigError(
            f"distribution must be one of {RANDOM_POWER_DISTRIBUTIONS}, got {distribution!r}"
        )
    shape = (*budget.shape, int(n_freq))
    weights = torch.empty(shape, device=budget.device, dtype=budget.dtype)
    if distribution == "dirichlet":
        weights.exponential_(1.0, generator=generator)
    else:
        weights.uniform_(0.0, 1.0, generator=generator)
    weights = weights.clamp_min(torch.finfo(weights.dtype).tiny)  # an all-zero draw cannot split
    return weights / weights.sum(-1, keepdim=True) * budget[..., None]


def random_power(
    problem: MultibandProblem,
    generator: torch.Generator,
    *,
    distribution: str = "dirichlet",
) -> torch.Tensor:
    """The random, unoptimised benchmark of seed 004 §V: (B, C*U, F) float.

    Every user spends its full share ``P_b(t) / U`` (eq. (14), ``problem.user_budget
    (B, C*U)``), split at random over the N_f channels by :func:`random_split` (default
    Dirichlet(1), uniform on the simplex; choice, the seed gives no distribution).
    """
    return random_split(problem.user_budget, problem.n_freq, generator, distribution=distribution)
