"""Reference subchannel allocations for the TN-NTN OFDM downlink of seed 001 (§II, §III-C-2).

N BSs share F subchannels; subchannel f of every BS occupies the same frequencies. A schedule is
``assignment: (B, N, F) long``, the user 0..K_max-1 that BS n serves on subchannel f or -1 (off);
one entry per (BS, subchannel) is the orthogonality constraint (1). The power is not a decision:
the rule of §III-C-2 (:func:`equal_power`) splits p_max equally over the M = F / S SRBs of a BS
(S = ``srb_size`` contiguous subchannels each) and then equally over the SRB's "on" subchannels,
so the per-BS total is <= p_max (5). With the noise-normalised gains ``|h|^2`` the rate of user k
of BS n is eq. (3) summed over its subchannels,

    R_k = W sum_f x_{k,n,f} log2(1 + |h_{k,n,f}|^2 p_{n,f} / (g_{k,n,f} + 1)),
    g_{k,n,f} = sum_{l != n} |h_{k,l,f}|^2 p_{l,f},

the QoS constraint (4) is ``R_k >= eta`` for every active user and the cost (11) is
``max(eta - R_k, 0)``. The learners maximise the sum rate (9) subject to QoS; the references here
show how far they are from an optimisation reference:

- :func:`random_allocation`: each subchannel of a BS to a uniformly random active user of it;
- :func:`round_robin_allocation`: subchannel f of BS n to its ``(f mod A_n)``-th active user;
- :func:`greedy_best_response`: a centralized full-CSI heuristic for the penalised objective

      J(x) = sum_{active k} R_k - w max(eta - R_k, 0) - v 1(R_k < eta)

  (the sum rate minus w times the cost (11), optionally minus v per QoS miss)

  in two phases. (a) :func:`qos_greedy`, QoS first (the "most-starved user picks" rule of Rhee &
  Cioffi, VTC 2000, and the "rate-craving greedy" of Kivanc, Li & Liu, IEEE TWC 2(6), 2003, made
  interference-aware): with every BS transmitting on every subchannel at p_max / F the
  interference at every user is fixed, so each BS gives its subchannels, in rounds, to its users
  below eta (each such user claims the free subchannel where its rate is the largest fraction of
  the best rate any of its BS's users gets there) until they meet eta, then every remaining
  subchannel to the user with the largest marginal gain of J. (b) :func:`best_response`: every
  (BS, subchannel) pair is a player whose choices are {off, each active user of its BS} and whose
  payoff is the common objective J (an identical-interest game, so J is an exact potential:
  Monderer & Shapley, Games Econ. Behav. 14, 1996, and best-improvement moves terminate at a
  pure Nash equilibrium, a point no single (BS, subchannel) change improves). Each round
  evaluates the exact change of J of every unilateral move (switching the user keeps the powers;
  switching a subchannel on or off re-splits its SRB's power, which changes the BS's rates on the
  whole SRB and the interference at the other BSs' users there), applies the best move of every
  SRB group (SRB m of all BSs; groups share no subchannel) at once when that beats the single best
  move, and otherwise the single best move, so J never decreases. When no single move improves,
  each BS tries its best swap of the users of two of its subchannels (no power changes, so the
  swaps of different BSs add exactly). ``n_starts > 1`` reruns (b) from round robin and random
  schedules and keeps each realization's best.

All functions are batched over the leading axis B; the loops are over greedy rounds and
best-response rounds only. The solvers never import a scenario or an environment: build an
:class:`OfdmAllocationProblem` from the tensors of a ``TnNtnState`` (see docs/solvers/
ofdm_allocation.md).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass

import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError

__all__ = [
    "OfdmAllocationEvaluation",
    "OfdmAllocationProblem",
    "OfdmAllocationResult",
    "best_response",
    "equal_power",
    "evaluate_allocation",
    "greedy_best_response",
    "qos_greedy",
    "random_allocation",
    "round_robin_allocation",
]


# ------------------------------------------------------------------------------------------------
# Problem, rules and evaluation
# ------------------------------------------------------------------------------------------------


def _check_active(active: torch.Tensor) -> None:
    if not isinstance(active, torch.Tensor) or active.dtype != torch.bool or active.ndim != 3:
        got = (
            f"{active.dtype} tensor of shape {tuple(active.shape)}"
            if isinstance(active, torch.Tensor)
            else type(active).__name__
        )
        raise ShapeError(f"active must be a bool tensor of shape (B, N, K_max), got {got}")


def _check_positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _check_finite(value: float, name: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {type(value).__name__}")
    bound_ok = value > 0 if positive else value >= 0
    if not math.isfinite(value) or not bound_ok:
        raise ConfigError(f"{name} must be finite and {'> 0' if positive else '>= 0'}, got {value}")
    return float(value)


def _p_max_tensor(
    p_max_w: float | torch.Tensor, n_bs: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """p_max as an (N,) tensor, checked (> 0, finite)."""
    if isinstance(p_max_w, torch.Tensor):
        if p_max_w.is_complex() or p_max_w.shape not in ((), (n_bs,)):
            raise ShapeError(
                f"p_max_w must be a number or a real tensor of shape (N,) = ({n_bs},), got "
                f"{p_max_w.dtype} tensor of shape {tuple(p_max_w.shape)}"
            )
        value = p_max_w.to(device=device, dtype=dtype).expand(n_bs)
    else:
        value = torch.full((n_bs,), _check_finite(p_max_w, "p_max_w", positive=True), dtype=dtype)
        value = value.to(device)
    if not bool(torch.isfinite(value).all()) or bool((value <= 0).any()):
        raise ConfigError(f"p_max_w must be finite and > 0 W for every BS, got {value.tolist()}")
    return value


def equal_power(
    assignment: torch.Tensor,
    p_max_w: float | torch.Tensor,
    srb_size: int,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The power rule of seed 001 §III-C-2: p_max split equally over the M = F / S SRBs of a BS,
    then equally over the SRB's "on" subchannels (``assignment >= 0``).

    SRB m holds the contiguous subchannels ``[m S, (m + 1) S)``; the per-BS total is
    ``p_max (SRBs with an on subchannel) / M <= p_max`` (constraint (5)). The same numbers as
    ``TnNtnScenario.equal_power``.

    Args:
        assignment: (B, N, F) long, user 0..K_max-1 of BS n on subchannel f, -1 off.
        p_max_w: p_max per BS in watts, a number or an (N,) tensor.
        srb_size: S, subchannels per SRB (F must be a multiple).
        dtype: of the result; default the dtype of a tensor ``p_max_w``, else torch's default.

    Returns:
        power_w: (B, N, F), watts.
    """
    if not isinstance(assignment, torch.Tensor) or assignment.dtype != torch.long:
        raise ShapeError("assignment must be a long tensor of shape (B, N, F)")
    if assignment.ndim != 3:
        raise ShapeError(f"assignment must have shape (B, N, F), got {tuple(assignment.shape)}")
    _, N, F = assignment.shape
    _check_positive_int(srb_size, "srb_size")
    if F % srb_size != 0:
        raise ConfigError(f"srb_size = {srb_size} must divide the F = {F} subchannels")
    if dtype is None:
        floating = isinstance(p_max_w, torch.Tensor) and p_max_w.is_floating_point()
        dtype = p_max_w.dtype if floating else torch.get_default_dtype()
    n_srb = F // srb_size
    on = (assignment >= 0).unflatten(-1, (n_srb, srb_size))  # (B, N, M, S)
    n_on = on.sum(-1, keepdim=True).clamp_min(1).to(dtype)
    if isinstance(p_max_w, torch.Tensor):
        share = _p_max_tensor(p_max_w, N, dtype, assignment.device).view(N, 1, 1) / n_srb
    else:
        share = _check_finite(p_max_w, "p_max_w", positive=True) / n_srb
    power = share / n_on * on.to(dtype)
    return power.flatten(-2)


def _active_order(active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The slots, active ones first (in slot order), and the active count: (B, N, K), (B, N, 1)."""
    order = torch.argsort((~active).to(torch.int8), dim=-1, stable=True)
    return order, active.sum(-1, keepdim=True)


def round_robin_allocation(active: torch.Tensor, n_subchannels: int) -> torch.Tensor:
    """Subchannel f of BS n to its ``(f mod A_n)``-th active user (A_n active users, in slot
    order); every subchannel of a BS without an active user is off.

    Args:
        active: (B, N, K_max) bool, the psi mask of §III-E.
        n_subchannels: F.

    Returns:
        assignment: (B, N, F) long, -1 off.
    """
    _check_active(active)
    _check_positive_int(n_subchannels, "n_subchannels")
    order, count = _active_order(active)
    f = torch.arange(n_subchannels, device=active.device)
    assignment = torch.gather(order, -1, (f % count.clamp_min(1)).expand(*count.shape[:2], -1))
    return torch.where(count > 0, assignment, -1)


def random_allocation(
    active: torch.Tensor, n_subchannels: int, generator: torch.Generator
) -> torch.Tensor:
    """Each subchannel of a BS to an independent, uniformly random active user of that BS (off
    when the BS has none); every subchannel stays on.

    Args:
        active: (B, N, K_max) bool.
        n_subchannels: F.
        generator: a ``torch.Generator`` on ``active``'s device (the only source of randomness).

    Returns:
        assignment: (B, N, F) long, -1 off.
    """
    _check_active(active)
    _check_positive_int(n_subchannels, "n_subchannels")
    if not isinstance(generator, torch.Generator):
        raise ConfigError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    order, count = _active_order(active)
    B, N, _ = active.shape
    u = torch.rand((B, N, n_subchannels), generator=generator, device=active.device)
    pick = (u * count).floor().long().clamp(max=(count - 1).clamp_min(0))
    return torch.where(count > 0, torch.gather(order, -1, pick), -1)


@dataclass(frozen=True)
class OfdmAllocationProblem:
    """B instances of the seed 001 subchannel-allocation problem (module docstring).

    Attributes:
        gain: (B, P, N, F) real >= 0, ``|h_{p,n,f}|^2`` noise-normalised (``|h|^2 p`` with p in
            watts is an SNR); user slot ``p = n K_max + k`` is user k of BS n (P = N K_max). From
            a ``TnNtnState``: ``state.gain`` (``|H|^2``).
        active: (B, N, K_max) bool, which user slots hold a user (psi).
        p_max_w: p_max per BS in watts, a number or an (N,) tensor; stored as an (N,) tensor.
        srb_size: S, subchannels per SRB (F a multiple of S).
        min_rate_bps: eta, the QoS rate (4) in bit/s.
        subchannel_bandwidth_hz: W, the width of one subchannel.
    """

    gain: torch.Tensor
    active: torch.Tensor
    p_max_w: float | torch.Tensor
    srb_size: int
    min_rate_bps: float
    subchannel_bandwidth_hz: float

    def __post_init__(self) -> None:
        gain = self.gain
        if not isinstance(gain, torch.Tensor) or not gain.is_floating_point() or gain.ndim != 4:
            got = (
                f"{gain.dtype} tensor of shape {tuple(gain.shape)}"
                if isinstance(gain, torch.Tensor)
                else type(gain).__name__
            )
            raise ShapeError(f"gain must be a real tensor of shape (B, P, N, F), got {got}")
        B, P, N, F = gain.shape
        _check_active(self.active)
        if self.active.shape[:2] != (B, N) or self.active.shape[2] * N != P:
            raise ShapeError(
                f"active must be (B, N, K_max) with B = {B}, N = {N} and N K_max = P = {P} (the "
                f"axes of gain), got {tuple(self.active.shape)}"
            )
        if self.active.device != gain.device:
            raise ShapeError(f"active is on {self.active.device}, gain on {gain.device}")
        if not bool(torch.isfinite(gain).all()) or bool((gain < 0).any()):
            raise ConfigError("gain must be finite and >= 0 everywhere (no NaN or inf)")
        _check_positive_int(self.srb_size, "srb_size")
        if F % self.srb_size != 0:
            raise ConfigError(f"srb_size = {self.srb_size} must divide the F = {F} subchannels")
        _check_finite(self.min_rate_bps, "min_rate_bps", positive=False)
        _check_finite(self.subchannel_bandwidth_hz, "subchannel_bandwidth_hz", positive=True)
        object.__setattr__(self, "p_max_w", _p_max_tensor(self.p_max_w, N, gain.dtype, gain.device))

    @property
    def batch_size(self) -> int:
        return self.gain.shape[0]

    @property
    def n_bs(self) -> int:
        return self.gain.shape[2]

    @property
    def k_max(self) -> int:
        return self.active.shape[2]

    @property
    def n_subchannels(self) -> int:
        return self.gain.shape[3]

    @property
    def n_srb(self) -> int:
        return self.n_subchannels // self.srb_size

    def power(self, assignment: torch.Tensor) -> torch.Tensor:
        """:func:`equal_power` of ``assignment`` with this problem's p_max and SRBs."""
        return equal_power(assignment, self.p_max_w, self.srb_size, dtype=self.gain.dtype)

    def check_assignment(self, assignment: torch.Tensor) -> None:
        """Raise ShapeError/ConfigError unless ``assignment`` is a valid (B, N, F) schedule."""
        shape = (self.batch_size, self.n_bs, self.n_subchannels)
        if not isinstance(assignment, torch.Tensor) or assignment.dtype != torch.long:
            raise ShapeError(f"assignment must be a long tensor of shape (B, N, F) = {shape}")
        if tuple(assignment.shape) != shape:
            raise ShapeError(
                f"assignment must have shape (B, N, F) = {shape}, got {tuple(assignment.shape)}"
            )
        if bool(((assignment < -1) | (assignment >= self.k_max)).any()):
            raise ConfigError(
                f"assignment values must be -1 (off) or a user in [0, K_max = {self.k_max})"
            )


@dataclass
class OfdmAllocationEvaluation:
    """What a schedule achieves (:func:`evaluate_allocation`).

    Attributes:
        power: (B, N, F) watts, the :func:`equal_power` rule.
        user_rates: (B, P) bit/s, eq. (3) summed over each user's subchannels; 0 for inactive
            slots (a subchannel given to an empty slot carries nothing but still interferes).
        throughput: (B,) bit/s, the sum rate (eq. (9) times K).
        cost: (B, P) bit/s, the cost (11) ``max(eta - R_k, 0)`` of active users, 0 elsewhere.
        qos_miss: (B,) long, active users with ``R_k < eta``.
        n_active: (B,) long, active users.
    """

    power: torch.Tensor
    user_rates: torch.Tensor
    throughput: torch.Tensor
    cost: torch.Tensor
    qos_miss: torch.Tensor
    n_active: torch.Tensor

    def objective(self, qos_weight: float, miss_penalty: float = 0.0) -> torch.Tensor:
        """(B,) bit/s: the penalised objective ``throughput - qos_weight * sum_k cost_k -
        miss_penalty * qos_miss``."""
        return self.throughput - qos_weight * self.cost.sum(-1) - miss_penalty * self.qos_miss


def evaluate_allocation(
    problem: OfdmAllocationProblem, assignment: torch.Tensor
) -> OfdmAllocationEvaluation:
    """Rates, throughput, QoS misses and cost (11) of ``assignment`` (B, N, F) long (-1 off)
    under the :func:`equal_power` rule, through :func:`skyshare.metrics.ofdm_link_sinr`."""
    problem.check_assignment(assignment)
    power = problem.power(assignment)
    links = metrics.ofdm_link_sinr(problem.gain, assignment, power, problem.k_max)
    active = problem.active.flatten(1)
    rates = metrics.ofdm_user_rates(links, active.shape[1], active)
    rates = rates * problem.subchannel_bandwidth_hz
    cost = (problem.min_rate_bps - rates).clamp_min(0.0) * active
    miss = (active & (rates < problem.min_rate_bps)).sum(-1)
    return OfdmAllocationEvaluation(power, rates, rates.sum(-1), cost, miss, active.sum(-1))


# ------------------------------------------------------------------------------------------------
# Heuristic: QoS-first greedy + best response on the penalised objective
# ------------------------------------------------------------------------------------------------


@dataclass
class OfdmAllocationResult:
    """What :func:`best_response` and :func:`greedy_best_response` return.

    Attributes:
        assignment: (B, N, F) long, -1 off.
        power: (B, N, F) watts (:func:`equal_power`).
        user_rates: (B, P) bit/s (0 for inactive slots).
        throughput: (B,) bit/s.
        cost: (B, P) bit/s, cost (11) per active user.
        qos_miss: (B,) long, active users below eta.
        objective: (B,) bit/s, J = ``throughput - qos_weight * cost.sum(-1) - miss_penalty *
            qos_miss``.
        objective_trace: (T + 1, B) bit/s, J after each best-response round (row 0: the start);
            non-decreasing.
        iterations: best-response rounds run (T; summed over the starts of
            :func:`greedy_best_response`).
        converged: (B,) bool, verified that no unilateral move and no swap improves J by more
            than ``tol |J|`` (a pure Nash equilibrium of the identical-interest game); False
            where ``max_rounds`` stopped the search first.
        qos_weight: w, the price of one bit/s of cost (11).
        miss_penalty: v, bit/s charged per QoS miss.
        wall_time_s: seconds.
    """

    assignment: torch.Tensor
    power: torch.Tensor
    user_rates: torch.Tensor
    throughput: torch.Tensor
    cost: torch.Tensor
    qos_miss: torch.Tensor
    objective: torch.Tensor
    objective_trace: torch.Tensor
    iterations: int
    converged: torch.Tensor
    qos_weight: float
    miss_penalty: float
    wall_time_s: float


class _Work:
    """The problem in float64 spectral-efficiency units (bit/s/Hz; eta -> eta / W), with the
    per-user view of the gains ``Gv[b, n, k, l, f] = |h|^2`` from BS l to user k of BS n."""

    def __init__(
        self, problem: OfdmAllocationProblem, qos_weight: float, miss_penalty: float = 0.0
    ) -> None:
        B, P, N, F = problem.gain.shape
        K, S = problem.k_max, problem.srb_size
        self.B, self.N, self.K, self.F, self.S, self.M, self.P = B, N, K, F, S, F // S, P
        self.Gv = problem.gain.to(torch.float64).view(B, N, K, N, F)
        self.own = torch.diagonal(self.Gv, dim1=1, dim2=3).permute(0, 3, 1, 2)  # (B, N, K, F)
        self.active = problem.active  # (B, N, K)
        self.p_max = problem.p_max_w.to(torch.float64)
        self.eta = problem.min_rate_bps / problem.subchannel_bandwidth_hz
        self.w = qos_weight
        self.v = miss_penalty / problem.subchannel_bandwidth_hz
        device = problem.gain.device
        self.users = torch.arange(K, device=device)
        self.bs = torch.arange(N, device=device)
        self.group = torch.arange(F, device=device) // S  # m(f)
        self.not_self = ~torch.eye(N, dtype=torch.bool, device=device)

    def subset(self, index: torch.Tensor) -> _Work:
        """The same problem restricted to the realizations ``index`` (1-D long)."""
        sub = copy.copy(self)
        sub.Gv, sub.own, sub.active = self.Gv[index], self.own[index], self.active[index]
        sub.B = index.numel()
        return sub

    def phi(self, rate: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """Per-user objective ``R - w max(eta - R, 0) - v [R < eta]`` of active users, 0
        elsewhere."""
        value = rate - self.w * (self.eta - rate).clamp_min(0.0)
        if self.v:
            value = value - self.v * (rate < self.eta)
        return torch.where(active, value, 0.0)

    def power(self, assignment: torch.Tensor) -> torch.Tensor:
        return equal_power(assignment, self.p_max, self.S, dtype=torch.float64)

    def rates(self, assignment: torch.Tensor):
        """Power (B, N, F), interference at every user (B, N, K, F), the rate every user would
        get on every subchannel at the current powers (B, N, K, F) and the per-user rates R
        (B, N, K)."""
        p = self.power(assignment)
        total = (self.Gv * p[:, None, None]).sum(3)  # (B, N, K, F), all BSs' received power
        interference = (total - self.own * p[:, :, None]).clamp_min(0.0)
        rate_all = torch.log2(1.0 + self.own * p[:, :, None] / (interference + 1.0))
        served = assignment[:, :, None] == self.users[:, None]  # (B, N, K, F)
        R = (rate_all * served).sum(-1)
        return p, interference, rate_all, R

    def objective(self, assignment: torch.Tensor) -> torch.Tensor:
        return self.phi(self.rates(assignment)[3], self.active).sum((1, 2))


def qos_greedy(
    problem: OfdmAllocationProblem, *, qos_weight: float = 100.0, miss_penalty: float = 0.0
) -> torch.Tensor:
    """Phase (a) of :func:`greedy_best_response`: a QoS-first greedy schedule.

    Every BS with an active user transmits on every subchannel at p_max / F, so the interference
    at every user, and hence the rate ``r_{k,f}`` user k would get on subchannel f, is known and
    fixed. In rounds, every active user of a BS still below eta claims the free subchannel with
    the largest ``r_{k,f} / max_k' r_{k',f}`` (the least sacrifice of its BS's best rate there)
    among those where it is worth it (its marginal gain of J beats that best rate); when several
    users claim one subchannel the largest ratio wins. When no user below eta claims anything,
    every free subchannel goes to the user with the largest marginal gain of J.

    Args:
        problem: the instances.
        qos_weight, miss_penalty: w and v of J (:func:`greedy_best_response`).

    Returns:
        assignment: (B, N, F) long; off only at BSs without an active user.
    """
    _check_finite(qos_weight, "qos_weight", positive=False)
    _check_finite(miss_penalty, "miss_penalty", positive=False)
    work = _Work(problem, qos_weight, miss_penalty)
    has_user = work.active.any(-1)  # (B, N)
    full = torch.where(has_user[..., None], 0, -1).expand(-1, -1, work.F)
    _, _, rate, _ = work.rates(full.contiguous())  # (B, N, K, F) at p_max / F everywhere
    rate = torch.where(work.active[..., None], rate, 0.0)
    best = rate.amax(2, keepdim=True)  # (B, N, 1, F)
    ratio = rate / best.clamp_min(1e-300)
    assignment = torch.full_like(full, -1)
    R = torch.zeros_like(rate[..., 0])
    for _ in range(work.F):
        free = (assignment < 0) & has_user[..., None]  # (B, N, F)
        unmet = work.active & (R < work.eta)  # (B, N, K)
        gain = work.phi(R[..., None] + rate, work.active[..., None]) - work.phi(
            R[..., None], work.active[..., None]
        )
        worth = (gain > best) | (rate >= best)  # (B, N, K, F)
        score = torch.where(free[:, :, None] & unmet[..., None] & worth & (rate > 0), ratio, -1.0)
        claim, pick = score.max(-1)  # (B, N, K): each unmet user's best free subchannel
        claiming = claim >= 0
        if not bool(claiming.any()):
            break
        # conflicts: per (b, n, f) the claimant with the largest ratio (lowest slot on ties)
        bid = torch.where(
            claiming[..., None] & (pick[..., None] == torch.arange(work.F, device=pick.device)),
            claim[..., None],
            -1.0,
        )  # (B, N, K, F)
        top, winner = bid.max(2)  # (B, N, F)
        won = top >= 0
        assignment = torch.where(won, winner, assignment)
        R = R + (rate * (won[:, :, None] & (winner[:, :, None] == work.users[:, None]))).sum(-1)
    gain = work.phi(R[..., None] + rate, work.active[..., None]) - work.phi(
        R[..., None], work.active[..., None]
    )
    gain = torch.where(work.active[..., None], gain, -torch.inf)
    rest = gain.argmax(2)  # (B, N, F)
    free = (assignment < 0) & has_user[..., None]
    return torch.where(free, rest, assignment)


@dataclass
class _Links:
    """The current schedule's served links and rates (float64, bit/s/Hz)."""

    assignment: torch.Tensor  # (B, N, F)
    power: torch.Tensor  # (B, N, F)
    interference: torch.Tensor  # (B, N, K, F), at every user from the other BSs
    rate_all: torch.Tensor  # (B, N, K, F), every user's rate on every subchannel at these powers
    R: torch.Tensor  # (B, N, K)
    on: torch.Tensor  # (B, N, F)
    slot: torch.Tensor  # (B, N, F) long, n K + served user (n K where off)
    own_s: torch.Tensor  # (B, N, F) own gain of the served user
    int_s: torch.Tensor  # (B, N, F) interference at the served user
    rate_s: torch.Tensor  # (B, N, F) served rate (0 where off)
    cross_s: torch.Tensor  # (B, N_l, N_n, F): gain from BS n to the served user of (l, f)
    J: torch.Tensor  # (B,)

    def subset(self, index: torch.Tensor) -> _Links:
        fields = {f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)}
        return _Links(**fields)


def _links(work: _Work, assignment: torch.Tensor) -> _Links:
    p, interference, rate_all, R = work.rates(assignment)
    on = assignment >= 0
    user = assignment.clamp_min(0)
    B, N, K, F = work.B, work.N, work.K, work.F
    index = user[:, :, None]
    own_s = torch.gather(work.own, 2, index).squeeze(2)
    int_s = torch.gather(interference, 2, index).squeeze(2)
    rate_s = torch.gather(rate_all, 2, index).squeeze(2) * on
    cross_s = torch.gather(work.Gv, 2, user[:, :, None, None].expand(B, N, 1, N, F)).squeeze(2)
    slot = work.bs[:, None] * K + user
    J = work.phi(R, work.active).sum((1, 2))
    return _Links(assignment, p, interference, rate_all, R, on, slot, own_s, int_s, rate_s,
                  cross_s, J)  # fmt: skip


def _srb_levels(work: _Work, links: _Links) -> torch.Tensor:
    """(B, N, 2, M): the per-subchannel power of SRB m of BS n after switching one of its
    subchannels off (d = 0; 0 when none would be left on) or on (d = 1)."""
    count = links.on.view(work.B, work.N, work.M, work.S).sum(-1).to(torch.float64)
    share = (work.p_max / work.M)[:, None]  # (N, 1)
    down = torch.where(count > 1, share / (count - 1).clamp_min(1), 0.0)
    return torch.stack([down, share / (count + 1)], dim=2)


def _common_changes(work: _Work, links: _Links, levels: torch.Tensor):
    """Rate changes of every served link in SRB m when BS n's on subchannels there move to the
    level ``levels[b, n, d, m]``, the candidate subchannel not yet counted.

    Returns ``delta (B, N_mover, 2, N_l, F)`` (0 outside the mover's on subchannels) and the
    per-user sums ``dR (B, N_mover, 2, M, P)`` over each SRB group.
    """
    B, N, F, M, P = work.B, work.N, work.F, work.M, work.P
    q = levels[..., work.group]  # (B, N, 2, F) new level on each subchannel of the mover
    mover_on = links.on[:, :, None]  # (B, N, 1, F)
    own_new = torch.log2(1.0 + links.own_s[:, :, None] * q / (links.int_s[:, :, None] + 1.0))
    own_delta = (own_new - links.rate_s[:, :, None]) * mover_on  # (B, N, 2, F)
    # at the served user of (l, f): interference + G_{n -> (l, f)} (q - p_n)
    cross = links.cross_s.permute(0, 2, 1, 3)[:, :, None]  # (B, N_mover, 1, N_l, F)
    extra = cross * (q - links.power[:, :, None])[:, :, :, None]  # (B, N_mover, 2, N_l, F)
    signal = (links.own_s * links.power)[:, None, None]  # (1 -> B, 1, 1, N_l, F)
    interference = (links.int_s[:, None, None] + extra).clamp_min(0.0)
    other = torch.log2(1.0 + signal / (interference + 1.0)) - links.rate_s[:, None, None]
    other = other * links.on[:, None, None] * mover_on[:, :, :, None]
    self_mask = ~work.not_self[:, None, :, None]  # (N_mover, 1, N_l, 1)
    delta = torch.where(self_mask, own_delta[:, :, :, None], other)
    index = work.group * P + links.slot  # (B, N_l, F) into (M P)
    index = index[:, None, None].expand(B, N, 2, N, F).reshape(B, N, 2, N * F)
    dR = torch.zeros(B, N, 2, M * P, dtype=torch.float64, device=delta.device)
    dR.scatter_add_(-1, index, delta.reshape(B, N, 2, N * F))
    return delta, dR.view(B, N, 2, M, P)


def _move_values(work: _Work, links: _Links) -> torch.Tensor:
    """Exact change of J of every unilateral move: (B, N, F, K + 1), index 0 = off, 1 + k = user
    k; -inf where the move is not one (the current value, an inactive user)."""
    B, N, K, F, M, P = work.B, work.N, work.K, work.F, work.M, work.P
    phi, on, active = work.phi, links.on, work.active
    R_flat = links.R.reshape(B, P)
    active_flat = active.reshape(B, P)
    levels = _srb_levels(work, links)
    delta, dR = _common_changes(work, links, levels)
    base = phi(R_flat[:, None, None, None] + dR, active_flat[:, None, None, None])
    common = (base - phi(R_flat, active_flat)[:, None, None, None]).sum(-1)  # (B, N, 2, M)
    direction = (~on).long()  # d = 0: switch off (on now), 1: switch on (off now)
    common_f = torch.gather(common[..., work.group], 2, direction[:, :, None]).squeeze(2)

    # the users served on f by every BS j (j = the mover too): their rates after the common part
    dR_flat = dR.reshape(B, N, 2 * M * P)
    slot_f = links.slot.transpose(1, 2)  # (B, F, N_j)
    index = (direction[..., None] * M + work.group[:, None]) * P + slot_f[:, None]
    X = torch.gather(dR_flat, 2, index.reshape(B, N, F * N)).view(B, N, F, N)
    X = X + torch.gather(R_flat, 1, slot_f.reshape(B, F * N)).view(B, 1, F, N)
    act_j = torch.gather(active_flat, 1, slot_f.reshape(B, F * N)).view(B, 1, F, N)
    on_j = on.transpose(1, 2)[:, None]  # (B, 1, F, N_j)
    common_j = torch.gather(delta, 2, direction[:, :, None, None, :].expand(B, N, 1, N, F))
    common_j = common_j.squeeze(2).transpose(2, 3)  # (B, N_mover, F, N_j)
    # actual change at (j, f) when the mover's power there goes p -> p_new
    p_now = links.power[:, :, :, None]  # (B, N_mover, F, 1)
    level_f = torch.gather(levels[:, :, 1], 2, work.group.expand(B, N, F))[..., None]
    p_new = torch.where(on[..., None], 0.0, level_f)
    cross = links.cross_s.permute(0, 2, 3, 1)  # (B, N_mover, F, N_j)
    sig_j = (links.own_s * links.power).transpose(1, 2)[:, None]
    int_j = (links.int_s.transpose(1, 2)[:, None] + cross * (p_new - p_now)).clamp_min(0.0)
    actual = torch.log2(1.0 + sig_j / (int_j + 1.0)) - links.rate_s.transpose(1, 2)[:, None]
    is_mover = ~work.not_self[:, None, :]  # (N_mover, 1, N_j)
    actual = torch.where(is_mover, -links.rate_s[..., None], actual)  # own link: switched off
    keep = on_j & ~(is_mover & ~on[..., None])  # the mover's own link only when switched off
    change = phi(X - common_j + actual, act_j) - phi(X, act_j)
    flip = common_f + (change * keep).sum(-1)  # (B, N, F): off, or on before the new user

    # switching on with user k: its rate at the new level, with its current interference
    user_index = (M + work.group[:, None]) * P + (work.bs[:, None, None] * K + work.users)
    X_k = torch.gather(dR_flat, 2, user_index.reshape(1, N, F * K).expand(B, N, F * K))
    X_k = X_k.view(B, N, F, K)
    X_k = X_k + links.R[:, :, None, :]
    own_t = work.own.transpose(2, 3)  # (B, N, F, K)
    r_k = torch.log2(1.0 + own_t * level_f / (links.interference.transpose(2, 3) + 1.0))
    act_k = active[:, :, None, :]
    switch_on = flip[..., None] + phi(X_k + r_k, act_k) - phi(X_k, act_k)
    # switching user (power unchanged): u loses its rate, k gains its rate at this power
    R_u = torch.gather(links.R, 2, links.assignment.clamp_min(0))  # (B, N, F)
    act_u = torch.gather(active, 2, links.assignment.clamp_min(0))
    loss = phi(R_u - links.rate_s, act_u) - phi(R_u, act_u)
    R_k = links.R[:, :, None, :]
    rate_k = links.rate_all.transpose(2, 3)
    switch = loss[..., None] + phi(R_k + rate_k, act_k) - phi(R_k, act_k)
    to_user = torch.where(on[..., None], switch, switch_on)
    current = links.assignment[..., None] == work.users  # (B, N, F, K)
    to_user = torch.where(act_k & ~current, to_user, -torch.inf)
    to_off = torch.where(on, flip, -torch.inf)
    return torch.cat([to_off[..., None], to_user], dim=-1)


def _apply(assignment: torch.Tensor, values: torch.Tensor, tol: torch.Tensor, S: int, M: int):
    """The best move of every SRB group at once and the single best move: two schedules and the
    single best move's exact gain (B,)."""
    B, N, _, C = values.shape
    grouped = values.view(B, N, M, S, C).permute(0, 2, 1, 3, 4).reshape(B, M, N * S * C)
    gain, flat = grouped.max(-1)  # (B, M)
    n, rest = flat // (S * C), flat % (S * C)
    f = torch.arange(M, device=values.device) * S + rest // C
    value = rest % C - 1
    b = torch.arange(B, device=values.device)[:, None].expand(B, M)
    parallel = assignment.clone()
    apply = gain > tol[:, None]
    parallel[b[apply], n[apply], f[apply]] = value[apply]
    best_gain, m = gain.max(-1)
    single = assignment.clone()
    one = best_gain > tol
    bb = torch.arange(B, device=values.device)
    n1, f1, v1 = n[bb, m], f[bb, m], value[bb, m]
    single[bb[one], n1[one], f1[one]] = v1[one]
    return parallel, single, best_gain


def _swap_values(work: _Work, links: _Links) -> torch.Tensor:
    """Exact change of J when BS n exchanges the users of its on subchannels f1 < f2 (powers and
    interference unchanged, so only the two users' rates move): (B, N, F, F), -inf where not a
    swap (f1 >= f2, either off, the same user)."""
    B, N, F = links.assignment.shape
    user = links.assignment.clamp_min(0)
    # cross[b, n, f1, f2]: rate of the user of f1 if it were served on f2
    cross = torch.gather(links.rate_all, 2, user[..., None].expand(B, N, F, F))
    R = torch.gather(links.R, 2, user)  # (B, N, F), the served user's total rate
    act = torch.gather(work.active, 2, user)
    new_1 = R[..., :, None] - links.rate_s[..., :, None] + cross
    new_2 = R[..., None, :] - links.rate_s[..., None, :] + cross.transpose(2, 3)
    act_1, act_2 = act[..., :, None], act[..., None, :]
    phi = work.phi
    gain = phi(new_1, act_1) - phi(R[..., :, None], act_1)
    gain = gain + phi(new_2, act_2) - phi(R[..., None, :], act_2)
    upper = torch.ones(F, F, dtype=torch.bool, device=gain.device).triu(1)
    valid = links.on[..., :, None] & links.on[..., None, :] & upper
    valid = valid & (user[..., :, None] != user[..., None, :])
    return torch.where(valid, gain, -torch.inf)


def _apply_swaps(assignment: torch.Tensor, values: torch.Tensor, tol: torch.Tensor):
    """The best swap of every BS at once (their gains add: a swap changes no power, and the
    BSs' users are disjoint) where it gains more than ``tol`` (B,): the new schedule and the
    total gain (B,), 0 where no swap was made."""
    B, N, F, _ = values.shape
    gain, flat = values.view(B, N, F * F).max(-1)  # (B, N)
    take = gain > tol[:, None]
    f1, f2 = flat // F, flat % F
    b = torch.arange(B, device=values.device)[:, None].expand(B, N)
    n = torch.arange(N, device=values.device)[None].expand(B, N)
    out = assignment.clone()
    u1, u2 = assignment[b, n, f1], assignment[b, n, f2]
    out[b[take], n[take], f1[take]] = u2[take]
    out[b[take], n[take], f2[take]] = u1[take]
    return out, torch.where(take, gain, 0.0).sum(-1)


def best_response(
    problem: OfdmAllocationProblem,
    assignment: torch.Tensor,
    *,
    qos_weight: float = 100.0,
    miss_penalty: float = 0.0,
    max_rounds: int = 5000,
    tol: float = 1e-9,
) -> OfdmAllocationResult:
    """Phase (b) of :func:`greedy_best_response`: best-improvement unilateral moves on the
    penalised objective J from ``assignment``, until no move gains more than
    ``tol * max(1, |J|)`` (J in bit/s/Hz) or ``max_rounds`` rounds.

    A move sets one (BS, subchannel) to off or to an active user of the BS; its exact change of
    J includes the re-split power of its SRB and the interference it changes at the other BSs'
    users. Each round applies the best move of every SRB group together when that raises J at
    least as much as the single best move, else the single best move: J never decreases
    (computed in float64).

    Args:
        problem: the instances.
        assignment: (B, N, F) long, the start (e.g. :func:`qos_greedy` or
            :func:`round_robin_allocation`); assignments to inactive users are allowed and are
            moved away when that pays.
        qos_weight: w >= 0, the price of one bit/s of cost (11).
        miss_penalty: v >= 0, bit/s charged per active user below eta.
        max_rounds: the most rounds (>= 0).
        tol: relative improvement below which a move does not count.

    Returns:
        :class:`OfdmAllocationResult`.
    """
    start = time.perf_counter()
    result = _best_response(problem, assignment, qos_weight, miss_penalty, max_rounds, tol)
    result.wall_time_s = time.perf_counter() - start
    return result


def _check_search_args(qos_weight, miss_penalty, max_rounds, tol) -> None:
    _check_finite(qos_weight, "qos_weight", positive=False)
    _check_finite(miss_penalty, "miss_penalty", positive=False)
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 0:
        raise ConfigError(f"max_rounds must be an integer >= 0, got {max_rounds!r}")
    _check_finite(tol, "tol", positive=False)


def _best_response(problem, assignment, qos_weight, miss_penalty, max_rounds, tol):
    problem.check_assignment(assignment)
    _check_search_args(qos_weight, miss_penalty, max_rounds, tol)
    work = _Work(problem, qos_weight, miss_penalty)
    assignment = assignment.clone()
    J = work.objective(assignment)
    trace = [J.clone()]
    converged = torch.zeros_like(J, dtype=torch.bool)
    running = torch.arange(work.B, device=J.device)  # realizations not converged yet
    rounds = 0
    while running.numel() > 0 and rounds < max_rounds:
        sub = work.subset(running)
        links = _links(sub, assignment[running])
        threshold = tol * links.J.abs().clamp_min(1.0)
        values = _move_values(sub, links)
        parallel, single, best_gain = _apply(links.assignment, values, threshold, sub.S, sub.M)
        J_parallel = sub.objective(parallel)
        use = J_parallel >= links.J + best_gain
        step = torch.where(use[:, None, None], parallel, single)
        J_step = torch.where(use, J_parallel, links.J + best_gain.clamp_min(0.0))
        stuck = (best_gain <= threshold).nonzero().squeeze(1)  # no single move: try swaps
        if stuck.numel() > 0:
            stuck_links = links.subset(stuck)
            swapped, swap_gain = _apply_swaps(
                stuck_links.assignment,
                _swap_values(sub.subset(stuck), stuck_links),
                threshold[stuck],
            )
            step[stuck] = swapped
            J_step[stuck] = links.J[stuck] + swap_gain
            converged[running[stuck[swap_gain == 0]]] = True
        changed = (step != links.assignment).any((1, 2))
        if not bool(changed.any()):
            break
        assignment[running] = step
        J[running] = J_step  # exact gains; recomputed from scratch at the next round
        trace.append(J.clone())
        running = running[~converged[running]]
        rounds += 1
    evaluation = evaluate_allocation(problem, assignment)
    return OfdmAllocationResult(
        assignment=assignment,
        power=evaluation.power,
        user_rates=evaluation.user_rates,
        throughput=evaluation.throughput,
        cost=evaluation.cost,
        qos_miss=evaluation.qos_miss,
        objective=evaluation.objective(qos_weight, miss_penalty),
        objective_trace=torch.stack(trace).to(problem.gain.dtype) * problem.subchannel_bandwidth_hz,
        iterations=rounds,
        converged=converged,
        qos_weight=float(qos_weight),
        miss_penalty=float(miss_penalty),
        wall_time_s=0.0,
    )


def greedy_best_response(
    problem: OfdmAllocationProblem,
    *,
    qos_weight: float = 100.0,
    miss_penalty: float = 0.0,
    n_starts: int = 1,
    generator: torch.Generator | None = None,
    max_rounds: int = 5000,
    tol: float = 1e-9,
) -> OfdmAllocationResult:
    """The centralized full-CSI reference: :func:`best_response` from :func:`qos_greedy`, and
    from ``n_starts - 1`` more starts (the :func:`round_robin_allocation`, then
    :func:`random_allocation` draws), keeping the best J of each realization (module
    docstring; docs/solvers/ofdm_allocation.md).

    Args:
        problem: the instances.
        qos_weight: w >= 0 and
        miss_penalty: v >= 0 of J = sum rate - w sum_k cost_k - v (QoS misses), in bit/s. The
            default w = 100 makes QoS come first (a QoS-strict reference); w = 4 is a soft one.
        n_starts: starts (>= 1), run one after the other (each batched over B).
        generator: draws the random starts (n_starts >= 3); default one seeded with 0.
        max_rounds, tol: of :func:`best_response`, per start.

    Returns:
        :class:`OfdmAllocationResult` of the best start of each realization;
        ``objective_trace`` is that start's (padded with its last value), ``iterations`` the
        rounds summed over the starts, ``wall_time_s`` covers everything.
    """
    start = time.perf_counter()
    _check_search_args(qos_weight, miss_penalty, max_rounds, tol)
    _check_positive_int(n_starts, "n_starts")
    best = None
    for index in range(n_starts):
        if index == 0:
            assignment = qos_greedy(problem, qos_weight=qos_weight, miss_penalty=miss_penalty)
        elif index == 1:
            assignment = round_robin_allocation(problem.active, problem.n_subchannels)
        else:
            if generator is None:
                generator = torch.Generator(device=problem.gain.device).manual_seed(0)
            assignment = random_allocation(problem.active, problem.n_subchannels, generator)
        result = _best_response(problem, assignment, qos_weight, miss_penalty, max_rounds, tol)
        best = result if best is None else _better(best, result)
    best.wall_time_s = time.perf_counter() - start
    return best


def _better(a: OfdmAllocationResult, b: OfdmAllocationResult) -> OfdmAllocationResult:
    """Per realization the result with the larger objective (``a`` on ties)."""
    take = b.objective > a.objective  # (B,)

    def pick(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.where(take.view(-1, *([1] * (x.ndim - 1))), y, x)

    length = max(a.objective_trace.shape[0], b.objective_trace.shape[0])

    def pad(trace: torch.Tensor) -> torch.Tensor:
        return torch.cat([trace, trace[-1:].expand(length - trace.shape[0], -1)])

    return OfdmAllocationResult(
        assignment=pick(a.assignment, b.assignment),
        power=pick(a.power, b.power),
        user_rates=pick(a.user_rates, b.user_rates),
        throughput=pick(a.throughput, b.throughput),
        cost=pick(a.cost, b.cost),
        qos_miss=pick(a.qos_miss, b.qos_miss),
        objective=pick(a.objective, b.objective),
        objective_trace=torch.where(take, pad(b.objective_trace), pad(a.objective_trace)),
        iterations=a.iterations + b.iterations,
        converged=pick(a.converged, b.converged),
        qos_weight=a.qos_weight,
        miss_penalty=a.miss_penalty,
        wall_time_s=0.0,
    )
