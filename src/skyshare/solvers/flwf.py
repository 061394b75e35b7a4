"""Forward-looking water-filling (FLWF), the distributed frequency-allocation game of seed 004 §III.

Every active user (b, u) is a player with the per-user budget of eq. (14),
``sum_f p_{b,u}[f] <= P_b(t) / U_b``. Its environment is summarised by the environmental
function of eq. (7) (``MultibandProblem.interference_plus_noise_ratio``),

    c_{b,u}[f] = (sum_{b~ != b} sum_{u~} p_{b~,u~}[f] |w_{b~,u~}^H h_{b~,(b,u)}[f]|^2 + sigma^2)
                 / |w_{b,u}^H h_{b,(b,u)}[f]|^2,

so that its rate on f is ``log2(1 + p_{b,u}[f] / c_{b,u}[f])``. The belief (9) linearises the
environment's reaction to the player's own power with the interference derivative (16), and
each player plays the water-filling update (15) ([25] = Ren & Wong, IEEE Access 7, 2019,
Proposition 3). Iteration i (every user at once, Jacobi, from p^{i-1}):

    c^i[f]   = c(p^{i-1}_{-(b,u)})[f]                                       (7)
    phi^i[f] = -sqrt(c^i[f] / (2 c^i[f] + p^{i-1}[f]))                      (16)
    g^i[f]   = ((c^i[f])^2 + phi^i[f] (p^{i-1}[f])^2) / (c^i[f] - phi^i[f] p^{i-1}[f])
    p^i[f]   = (w^i - g^i[f])^+,     w^i such that sum_f p^i[f] = P_b(t) / U_b     (15), (14)

(user indices (b, u) and block t dropped). (15) is "water level minus floor", so w^i is found
exactly by the sort-based water-filling of :mod:`skyshare.solvers.waterfilling` with the
floors g^i (which can be negative). phi < 0, so the denominator ``c - phi p`` is > 0.

Interpretation (our derivation, not in the seed): with the belief (9) linearised at p^{i-1},
the stationarity (KKT) condition of (13) on an active channel at ``p = p^{i-1}`` reads
``1 / lambda = c (c + p) / (c - phi p) = p + g``: (15) is the fixed-point iteration of that
condition, so its fixed points are exactly the allocations that satisfy the KKT conditions of
every player's forward-looking problem (13) at once, the equilibrium (11). With ``phi = 0`` the
update is classic iterative water-filling (W. Yu, G. Ginis, J. Cioffi, "Distributed multiuser
power control for digital subscriber lines", IEEE JSAC 20(5), 2002): ``forward_looking=False``.
Even without inter-cell coupling phi of (16) is not zero, so FLWF does not reduce to SSWF; it
concentrates each user's power on fewer, better channels than water-filling does.

Locality: c^i is measured by user (b, u) (its interference-plus-noise power over its own
direct ZF gain, both known at its own BS); phi^i and g^i use only c^i and the user's own
previous power. No scalar is exchanged between BSs (``scalars_exchanged = 0``); the players
interact only through the interference they cause each other.

Equilibrium check and stopping rule (choices, the seed has none):

* the **equilibrium gap** of an allocation p is the largest relative change of a user's actual
  rate if it alone played its best response (15) to the others' current powers,
  ``max_{b,u} |R_{b,u}(BR_{b,u}(p)) - R_{b,u}(p_{b,u})| / R_{b,u}(p_{b,u})`` with
  ``R_{b,u}(x) = sum_f log2(1 + x[f] / c_{b,u}(p)[f])`` (c with the others' powers fixed, a
  unilateral deviation). It is 0 at a fixed point of (15); gap <= eps makes p an
  eps-equilibrium in the usual sense (no player changes its rate by more than a fraction eps
  by deviating). The absolute value: the forward-looking response need not raise the
  immediate rate, it may lower it.
* an instance has **converged** when its gap is <= ``tol`` (checked from the first iterate on,
  which meets the budgets); it keeps that allocation and leaves the batch (active set: the
  unconverged instances are compacted, :func:`_play`), so every instance's result is what it
  would be alone, and ``equilibrium_gap <= tol`` holds
  for every converged instance. The gap, not the change of the powers, is the criterion: at
  high SINR the update (15) contracts slowly (for ``p >> c`` the floor is about
  ``-p + sqrt(c p)``, so ``p^i ~ w + p^{i-1} - sqrt(c p^{i-1})``, a Jacobian of
  ``1 - sqrt(c/p)/2``, within 2 % of 1 at 30 dB), while the rates, to which a user's split
  between its interference-free channels matters little, settle much sooner.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.multiband_problem import MultibandProblem
from skyshare.solvers.waterfilling import _water_fill, random_split

__all__ = [
    "FlwfResult",
    "FlwfStartsResult",
    "equilibrium_gap",
    "flwf",
    "flwf_random_starts",
    "flwf_update",
    "forward_looking_floor",
    "interference_derivative",
]

_LN2 = math.log(2.0)


# ------------------------------------------------------------------------------------------------
# The update (15)-(16)
# ------------------------------------------------------------------------------------------------


def interference_derivative(c: torch.Tensor, power_prev: torch.Tensor) -> torch.Tensor:
    """The interference derivative of eq. (16), ``phi = -sqrt(c / (2 c + p^{i-1}))``.

    Args:
        c: (..., F) float > 0, environmental function c^i of eq. (7).
        power_prev: (..., F) float >= 0, the user's previous allocation p^{i-1}.

    Returns:
        (..., F) float in [-1/sqrt(2), 0).
    """
    return -torch.sqrt(c / (2.0 * c + power_prev))


def forward_looking_floor(
    c: torch.Tensor, power_prev: torch.Tensor, *, forward_looking: bool = True
) -> torch.Tensor:
    """The floor of eq. (15), ``(c^2 + phi p^2) / (c - phi p)`` with phi of eq. (16).

    Args:
        c: (..., F) float > 0, c^i of eq. (7).
        power_prev: (..., F) float >= 0, p^{i-1}.
        forward_looking: False sets phi = 0, which gives the floor c of classic iterative
            water-filling (Yu, Ginis, Cioffi 2002).

    Returns:
        (..., F) float (may be negative; equals c where ``p^{i-1} = 0``).
    """
    if not forward_looking:
        return c
    phi = interference_derivative(c, power_prev)
    return (c.square() + phi * power_prev.square()) / (c - phi * power_prev)


def flwf_update(
    c: torch.Tensor,
    power_prev: torch.Tensor,
    budget: torch.Tensor,
    *,
    forward_looking: bool = True,
) -> torch.Tensor:
    """One FLWF update (15) of every user: ``p^i = (w^i - floor)^+`` with ``sum_f p^i = budget``.

    Args:
        c: (..., F) float > 0, c^i of eq. (7).
        power_prev: (..., F) float >= 0, p^{i-1}.
        budget: (...) float >= 0, the per-user budget ``P_b(t) / U_b`` of eq. (14).
        forward_looking: False gives classic iterative water-filling (phi = 0).

    Returns:
        (..., F) float, p^i; the water level w^i is solved exactly (sort-based).
    """
    if c.shape != power_prev.shape or budget.shape != c.shape[:-1]:
        raise ShapeError(
            f"c and power_prev must be (..., F) of one shape and budget (...): got "
            f"{tuple(c.shape)}, {tuple(power_prev.shape)}, {tuple(budget.shape)}"
        )
    floors = forward_looking_floor(c, power_prev, forward_looking=forward_looking)
    return _water_fill(floors, budget.to(floors.dtype))


# ------------------------------------------------------------------------------------------------
# The game, batched over realizations and starts
# ------------------------------------------------------------------------------------------------


class _Environment:
    """c of eq. (7) for S allocations per realization that share its channel.

    The other-cell gains are arranged once as ``cross[b, f, k, j]`` (zero for j in k's cell),
    so that the ICI of all users, channels and starts is one batched matrix product (einsum:
    ``torch.matmul`` on the permuted allocation is up to 100x slower on the CPU).
    Equal to ``MultibandProblem.interference_plus_noise_ratio`` (a test checks it).
    """

    def __init__(self, problem: MultibandProblem) -> None:
        cell = problem.user_cell
        other_cell = (cell[:, None] != cell[None, :]).to(problem.gain_power.dtype)  # (K, J)
        self.cross = (problem.gain_power * other_cell[None, :, :, None]).permute(0, 3, 1, 2)
        self.cross = self.cross.contiguous()  # (B, F, K, J)
        self.direct = problem.direct_gain[:, None]  # (B, 1, K, F)
        self.noise = problem.noise

    def __call__(self, power: torch.Tensor) -> torch.Tensor:
        """(B, S, K, F) allocations -> (B, S, K, F) c."""
        ici = torch.einsum("bfkj,bsjf->bskf", self.cross, power)
        return (ici + self.noise) / self.direct

    def subset(self, rows: torch.Tensor) -> _Environment:
        """The environment of the realizations ``rows`` (n,) long."""
        out = copy.copy(self)
        out.cross = self.cross.index_select(0, rows)
        out.direct = self.direct.index_select(0, rows)
        return out


def _user_rates(power: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``log2(1 + p / c)``, the integrand of (6a) (ZF nulls the intra-cell term)."""
    return torch.log1p(power / c) / _LN2


def _mean_cell_capacity(rates: torch.Tensor, n_cells: int) -> torch.Tensor:
    """(B, S, K, F) rates -> (B, S) average capacity per cell, bit/s/Hz."""
    return rates.sum((-1, -2)) / n_cells


def _relative_gap(response: torch.Tensor, c: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """Equilibrium gap (module docstring) from the best responses ``(B, S, K, F)``, the
    environment c and the users' current rates ``current (B, S, K)``: (B, S)."""
    deviated = _user_rates(response, c).sum(-1)
    tiny = torch.finfo(current.dtype).tiny
    return ((deviated - current).abs() / current.clamp_min(tiny)).amax(-1)


@dataclass
class _Run:
    power: torch.Tensor  # (B, S, K, F)
    c: torch.Tensor  # (B, S, K, F), c of the final power
    iterations: int
    instance_iterations: torch.Tensor  # (B, S)
    converged: torch.Tensor  # (B, S)
    gap: torch.Tensor  # (B, S)
    trace: torch.Tensor  # (B, S, T)


def _repack(still: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The packed layout of the pairs ``still`` (R, W) bool that keep iterating.

    Returns ``(rows (R',), slots (R', W'), valid (R', W'))``: the rows of ``still`` with a pair
    left, and in each the columns of its pairs first (W' = the most pairs of one row); the
    padding columns repeat the row's first pair and are marked not ``valid``.
    """
    counts = still.sum(1)
    rows = counts.nonzero()[:, 0]
    width = int(counts.max())
    slots = torch.argsort((~still[rows]).to(torch.int8), dim=1, stable=True)[:, :width]
    valid = torch.arange(width, device=still.device) < counts[rows, None]
    return rows, torch.where(valid, slots, slots[:, :1]), valid


def _play(
    environment: _Environment,
    budget: torch.Tensor,
    power0: torch.Tensor,
    n_cells: int,
    max_iter: int,
    tol: float,
    forward_looking: bool,
) -> _Run:
    """Jacobi iterations of (15)-(16) from ``power0 (B, S, K, F)``; budget (B, 1, K).

    Iteration i computes every user's best response (15) to p^{i-1}. From i = 2 on (p^{i-1}
    then meets the budgets), an instance whose p^{i-1} has an equilibrium gap <= tol has
    converged: it keeps p^{i-1} and leaves the batch. The others move to the response. The
    final iterate's gap is computed after the loop (so converged == gap <= tol after >= 1
    update).

    Active set: the instances still iterating are packed as ``(B', S')`` (the realizations
    with an unconverged start, and in each its unconverged starts, padded to the largest
    count with copies whose results are dropped), so the S starts of a realization keep
    sharing its channel and an iteration costs about what the unconverged instances need.
    """
    B, S = power0.shape[:2]
    device = power0.device
    power = power0
    c = environment(power)
    user_rate = _user_rates(power, c).sum(-1)  # (B, S, K)
    capacity = user_rate.sum(-1) / n_cells  # (B, S), kept at a finished instance's last value
    trace = [capacity.clone()]
    power_out, c_out = power.clone(), c.clone()
    gap_out = torch.zeros(B, S, dtype=power.dtype, device=device)
    converged = torch.zeros(B, S, dtype=torch.bool, device=device)
    instance_iterations = torch.zeros(B, S, dtype=torch.long, device=device)
    # Packed layout: entry (r, j) is instance (rows[r], slots[r, j]); pairs of valid entries.
    rows = torch.arange(B, device=device)
    slots = torch.arange(S, device=device).expand(B, S)
    valid = torch.ones(B, S, dtype=torch.bool, device=device)
    pairs = (rows[:, None].expand(B, S).reshape(-1), slots.reshape(-1))
    entries = (pairs[0], pairs[1])  # valid entries in packed coordinates
    iterations = 0
    for i in range(1, max_iter + 1):
        response = _water_fill(
            forward_looking_floor(c, power, forward_looking=forward_looking), budget
        )
        if i > 1:
            gap = _relative_gap(response, c, user_rate)
            settled = valid & (gap <= tol)
            if bool(settled.any()):
                r, j = settled.nonzero(as_tuple=True)
                done = (rows[r], slots[r, j])
                power_out[done], c_out[done], gap_out[done] = power[r, j], c[r, j], gap[r, j]
                converged[done] = True
                still = valid & ~settled
                if not bool(still.any()):
                    valid = still
                    break
                keep, columns, valid = _repack(still)
                rows, slots = rows[keep], slots[keep[:, None], columns]
                power, c, user_rate, response = (
                    x[keep[:, None], columns] for x in (power, c, user_rate, response)
                )
                if keep.numel() < budget.shape[0]:
                    environment, budget = environment.subset(keep), budget[keep]
                entries = valid.nonzero(as_tuple=True)
                pairs = (rows[entries[0]], slots[entries])
        power = response
        c = environment(power)
        user_rate = _user_rates(power, c).sum(-1)
        capacity[pairs] = user_rate[entries].sum(-1) / n_cells
        trace.append(capacity.clone())
        instance_iterations[pairs] += 1
        iterations = i
    if bool(valid.any()):  # the instances that ran to the end: their final iterate's gap
        response = _water_fill(
            forward_looking_floor(c, power, forward_looking=forward_looking), budget
        )
        gap = _relative_gap(response, c, user_rate)
        power_out[pairs], c_out[pairs], gap_out[pairs] = power[entries], c[entries], gap[entries]
        converged[pairs] = (gap[entries] <= tol) & (instance_iterations[pairs] > 0)
    return _Run(
        power=power_out,
        c=c_out,
        iterations=iterations,
        instance_iterations=instance_iterations,
        converged=converged,
        gap=gap_out,
        trace=torch.stack(trace, dim=-1),
    )


def _check_iteration_args(max_iter: int, tol: float) -> None:
    if isinstance(max_iter, bool) or int(max_iter) != max_iter or max_iter < 0:
        raise ConfigError(f"max_iter must be an integer >= 0, got {max_iter}")
    if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
        raise ConfigError(f"tol must be a finite number >= 0, got {tol}")


# ------------------------------------------------------------------------------------------------
# Public solvers
# ------------------------------------------------------------------------------------------------


@dataclass
class FlwfResult:
    """What :func:`flwf` returns.

    Attributes:
        power: (B, C*U, F) float, the allocation after the last iteration; every user spends
            exactly its budget ``P_b(t) / U`` (eq. (14)) once at least one iteration ran.
        rates: (B, C*U, F) float, bit/s/Hz, ``log2(1 + p / c(p))`` with the actual ICI.
        cell_capacity: (B, C) float, bit/s/Hz, sum over each cell's users and channels.
        iterations: iterations run (the batch stops when every instance has converged).
        converged: (B,) bool, ``equilibrium_gap <= tol`` was reached (and the instance stopped).
        equilibrium_gap: (B,) float, relative rate change of the user that would gain or lose
            most by a unilateral best response (15) to ``power`` (module docstring); 0 at an
            equilibrium.
        capacity_trace: (B, T) float, average capacity per cell (bit/s/Hz) at the start
            (column 0) and after each iteration, ``T = iterations + 1``; constant once an
            instance has stopped.
        wall_time_s: seconds spent.
        scalars_exchanged: real scalars exchanged between BSs: 0 (every input is local).
        instance_iterations: (B,) long, iterations each instance ran before it converged
            (``iterations`` for the others).
    """

    power: torch.Tensor
    rates: torch.Tensor
    cell_capacity: torch.Tensor
    iterations: int
    converged: torch.Tensor
    equilibrium_gap: torch.Tensor
    capacity_trace: torch.Tensor
    wall_time_s: float
    scalars_exchanged: int
    instance_iterations: torch.Tensor


def _result(run: _Run, problem: MultibandProblem, start: float) -> FlwfResult:
    """Flatten the (B, S) instances of ``run`` to B*S (start s of realization b at b*S + s)."""
    B, S, K, F = run.power.shape
    power = run.power.reshape(B * S, K, F)
    rates = _user_rates(run.power, run.c).reshape(B * S, K, F)
    return FlwfResult(
        power=power,
        rates=rates,
        cell_capacity=problem.cell_sum(rates),
        iterations=run.iterations,
        converged=run.converged.reshape(B * S),
        equilibrium_gap=run.gap.reshape(B * S),
        capacity_trace=run.trace.reshape(B * S, -1),
        wall_time_s=time.perf_counter() - start,
        scalars_exchanged=0,
        instance_iterations=run.instance_iterations.reshape(B * S),
    )


def flwf(
    problem: MultibandProblem,
    power0: torch.Tensor,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    forward_looking: bool = True,
) -> FlwfResult:
    """Forward-looking water-filling (seed 004 §III-B, eqs. (7), (14)-(16)) from ``power0``.

    Every user of every cell updates at once from local information (c of eq. (7) and its own
    previous power) until the equilibrium gap is at most ``tol`` or ``max_iter`` iterations
    ran. ``max_iter = k`` runs exactly k iterations, as Algorithm 1 (TD3-MIX+FLWF) line 8 does
    (unless every instance converged earlier); ``max_iter = 0`` evaluates ``power0``.

    Args:
        problem: the block (``MultibandScenario.problem(state)``, ``MultibandEnv.problem()``):
            ``gain_power (B, C*U, C*U, F)``, ``direct_gain (B, C*U, F)``, ``user_budget
            (B, C*U)`` (``P_b(t) / U``, eq. (14)), noise, C and U. The B realizations may be
            copies of one channel (several initialisations, ``problem.subset([b] * S)``).
        power0: (B, C*U, F) float >= 0, the initial allocation p^0 (e.g. random, or the actor's
            output); it is not projected on the budget, the first update does that.
        max_iter: most iterations (>= 0).
        tol: convergence threshold on the equilibrium gap (relative rate change of the best
            unilateral response (15)); 0 runs ``max_iter`` iterations unless exactly stationary.
        forward_looking: False replaces phi of (16) by 0 (classic iterative water-filling).

    Returns:
        :class:`FlwfResult` (``scalars_exchanged = 0``).
    """
    start = time.perf_counter()
    _check_iteration_args(max_iter, tol)
    power0 = problem.check_power(power0, "power0")
    budget = problem.user_budget.to(power0.dtype)[:, None]  # (B, 1, K)
    run = _play(
        _Environment(problem),
        budget,
        power0[:, None],
        problem.n_cells,
        int(max_iter),
        float(tol),
        forward_looking,
    )
    return _result(run, problem, start)


@dataclass
class FlwfStartsResult:
    """What :func:`flwf_random_starts` returns (B realizations x S random starts).

    Attributes:
        result: :class:`FlwfResult` over B*S instances, start s of realization b at ``b*S + s``.
        power0: (B*S, C*U, F) float, the random initial allocations.
        capacity: (B, S) float, average capacity per cell of each start at the end (bit/s/Hz).
        capacity_mean: (B,) float, mean over the starts ("FLWF" in seed 004 Figs. 5-9).
        capacity_std: (B,) float, standard deviation over the starts (n - 1 denominator; 0
            for a single start).
        capacity_max: (B,) float, the best start (the "top end of FLWF", Fig. 9).
        n_starts: S.
    """

    result: FlwfResult
    power0: torch.Tensor
    capacity: torch.Tensor
    capacity_mean: torch.Tensor
    capacity_std: torch.Tensor
    capacity_max: torch.Tensor
    n_starts: int


def flwf_random_starts(
    problem: MultibandProblem,
    n_starts: int,
    generator: torch.Generator,
    *,
    max_iter: int = 200,
    tol: float = 1e-6,
    forward_looking: bool = True,
    distribution: str = "dirichlet",
) -> FlwfStartsResult:
    """FLWF from ``n_starts`` random initialisations of every realization (seed 004 §V: "FLWF"
    is the mean over 100 random initializations).

    Each start spends every user's budget at random over the channels
    (:func:`skyshare.solvers.waterfilling.random_split`, default Dirichlet(1)); all starts of
    all realizations play in one batch, the S starts of a realization sharing its channel
    (no copy of the channel is made). The result equals :func:`flwf` on the realizations
    repeated S times with the same initial powers.

    Args:
        problem: as for :func:`flwf` (B realizations).
        n_starts: S >= 1 random starts per realization.
        generator: source of the random starts.
        max_iter, tol, forward_looking: as for :func:`flwf`.
        distribution: of the random split, ``"dirichlet"`` or ``"uniform"``.

    Returns:
        :class:`FlwfStartsResult`.
    """
    start = time.perf_counter()
    _check_iteration_args(max_iter, tol)
    if isinstance(n_starts, bool) or int(n_starts) != n_starts or n_starts < 1:
        raise ConfigError(f"n_starts must be an integer >= 1, got {n_starts}")
    S = int(n_starts)
    per_user = problem.user_budget.to(problem.dtype)  # (B, K)
    B, K = per_user.shape
    power0 = random_split(
        per_user[:, None].expand(B, S, K),
        problem.n_freq,
        generator,
        distribution=distribution,
    )  # (B, S, K, F)
    run = _play(
        _Environment(problem),
        per_user[:, None],
        power0,
        problem.n_cells,
        int(max_iter),
        float(tol),
        forward_looking,
    )
    result = _result(run, problem, start)
    capacity = run.trace[..., -1]  # (B, S)
    std = capacity.std(-1, correction=1) if S > 1 else torch.zeros_like(capacity[:, 0])
    return FlwfStartsResult(
        result=result,
        power0=power0.reshape(B * S, K, -1),
        capacity=capacity,
        capacity_mean=capacity.mean(-1),
        capacity_std=std,
        capacity_max=capacity.amax(-1),
        n_starts=S,
    )


def equilibrium_gap(
    problem: MultibandProblem,
    power: torch.Tensor,
    *,
    forward_looking: bool = True,
) -> torch.Tensor:
    """Equilibrium gap of an allocation (module docstring): (B, C*U, F) -> (B,) float.

    ``max_{b,u} |R_{b,u}(BR_{b,u}(p)) - R_{b,u}(p_{b,u})| / R_{b,u}(p_{b,u})``: the largest
    relative change of a user's actual rate (others' powers fixed) if it alone played its
    best response (15) to the current powers. 0 exactly at a fixed point of (15).

    Args:
        problem: the block (:class:`MultibandProblem`).
        power: (B, C*U, F) float >= 0, the allocation to test.
        forward_looking: False tests the fixed point of classic iterative water-filling.
    """
    power = problem.check_power(power, "power")[:, None]
    budget = problem.user_budget.to(power.dtype)[:, None]
    c = _Environment(problem)(power)
    response = _water_fill(forward_looking_floor(c, power, forward_looking=forward_looking), budget)
    return _relative_gap(response, c, _user_rates(power, c).sum(-1))[:, 0]
