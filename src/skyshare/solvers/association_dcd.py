"""Dual coordinate descent (DCD) user association with joint BS power control.

Seed 000 Algorithm 1 (§IV-B, benchmark "DCD" of §VI), after Shen & Yu, "Distributed pricing-based
user association for downlink heterogeneous cellular networks", IEEE JSAC 32(6), 2014 (seed 000
ref. [16]). The association maximises the proportional-fair utility of equal time sharing,

    maximize  sum_n sum_{k in K_n} log(r_{n,k} / |K_n|)
            = sum_k u_{rho_k,k} - sum_n |K_n| log |K_n|,
    u_{n,k} = log(M log2(1 + SINR_{n,k})),
    SINR_{n,k} = ||h_{n,k}||^2 q_n / (sum_{m != n} ||h_{m,k}||^2 q_m + 1)      (noise power 1).

Relaxing x_{n,k} in {0, 1} to [0, 1] and the loads |K_n| to reals with sum_n |K_n| = K, the
dual with prices mu_n (for |K_n| = sum_k x_{n,k}) and nu (for sum_n |K_n| = K) is

    g(mu, nu) = sum_k max_n (u_{n,k} - mu_n) + sum_n exp(mu_n - nu - 1) + nu K,

(the maximising load is |K_n| = exp(mu_n - nu - 1)). DCD minimises g exactly in one coordinate at
a time: line 6 for each mu_n (Gauss-Seidel over n), then line 8 for nu; g never increases. The
association is read off the prices, rho_k = argmax_n (u_{n,k} - mu_n) (line 10). The joint scheme
(seed 000 §IV-B, [16]) alternates DCD with the Newton power control of
:mod:`skyshare.solvers.power_control`.

Line 6 in closed form. For BS n and the other prices fixed, user k prefers n at price mu iff
mu <= t_k = u_{n,k} - max_{m != n}(u_{m,k} - mu_m), so |U_n(mu)| = #{k : t_k >= mu}. With the
thresholds sorted, t_(1) >= ... >= t_(K), |U_n(mu)| >= j iff mu <= t_(j), hence

    exp(mu - nu - 1) <= |U_n(mu)|  iff  there is j with mu <= t_(j) and mu <= nu + 1 + log j,
    mu_n = sup{...} = max_{j=1..K} min(t_(j), nu + 1 + log j).

This mu_n is an exact minimiser of g over mu_n: g is convex in mu_n with left derivative
exp(mu - nu - 1) - #{t_k >= mu} <= 0 at mu_n and right derivative
exp(mu - nu - 1) - #{t_k > mu} >= 0 there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError
from skyshare.solvers.association_sc import bs_loads
from skyshare.solvers.power_control import newton_power_control
from skyshare.solvers.problem import AssociationResult

__all__ = [
    "DualCoordinateDescentResult",
    "associate_dcd",
    "dcd_price_update",
    "dcd_utility",
    "dual_coordinate_descent",
    "dual_objective",
    "optimal_nu",
    "price_association",
]


@dataclass
class DualCoordinateDescentResult:
    """Output of :func:`dual_coordinate_descent` (one run of seed 000 Algorithm 1).

    Attributes:
        serving: (B, K) long, rho_k = argmax_n (u_{n,k} - mu_n) (line 10, ties see
            :func:`price_association`).
        mu: (B, N) BS prices. nu: (B,) load multiplier.
        dual_trace: (B, T) g(mu, nu) after each sweep (T = iterations).
        iterations: sweeps run (the batch stops when every instance has converged).
        converged: (B,) bool, |g change| <= tol (1 + |g|).
    """

    serving: torch.Tensor
    mu: torch.Tensor
    nu: torch.Tensor
    dual_trace: torch.Tensor
    iterations: int
    converged: torch.Tensor


def _check_utility(utility: torch.Tensor) -> None:
    if utility.ndim != 3 or utility.is_complex() or not utility.is_floating_point():
        raise ShapeError(f"utility must be (B, K, N) real, got {tuple(utility.shape)}")
    if not bool(torch.isfinite(utility).all()):
        raise ShapeError("utility must be finite")


def dcd_utility(
    strength: torch.Tensor, bs_power: torch.Tensor, n_antennas: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """Utilities u_{n,k} = log(M log2(1 + SINR_{n,k})) of seed 000 Algorithm 1 line 2.

    Args:
        strength: (B, K, N) real, ||h_{n,k}||^2 (noise-normalised).
        bs_power: (B, N) real, q_n in watts (>= 0).
        n_antennas: M, float or (B, N); log M only shifts the utilities of a BS.

    Returns:
        (B, K, N) utilities; a zero rate (q_n = 0 or h = 0) is floored at log(tiny) so that the
        utilities stay finite.
    """
    if strength.ndim != 3 or strength.is_complex():
        raise ShapeError(f"strength must be (B, K, N) real, got {tuple(strength.shape)}")
    B, _, N = strength.shape
    if bs_power.shape != (B, N):
        raise ShapeError(f"bs_power must be (B, N) = {(B, N)}, got {tuple(bs_power.shape)}")
    if bool((bs_power < 0).any()):
        raise ConfigError("bs_power must be >= 0 W")
    antennas = torch.as_tensor(n_antennas, dtype=strength.dtype, device=strength.device)
    if bool((antennas <= 0).any()):
        raise ConfigError(f"n_antennas must be > 0, got {n_antennas}")
    try:
        antennas = antennas.expand(B, N)
    except RuntimeError:
        raise ShapeError(
            f"n_antennas must be a float or broadcast to (B, N) = {(B, N)}, "
            f"got {tuple(antennas.shape)}"
        ) from None
    received = strength * bs_power[:, None, :]  # (B, K, N)
    interference_plus_noise = received.sum(-1, keepdim=True) - received + 1.0
    rate = antennas[:, None, :] * torch.log1p(received / interference_plus_noise) / math.log(2.0)
    return torch.log(rate.clamp_min(torch.finfo(strength.dtype).tiny))


def dual_objective(utility: torch.Tensor, mu: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
    """g(mu, nu) = sum_k max_n (u_{n,k} - mu_n) + sum_n exp(mu_n - nu - 1) + nu K (line 9).

    Args: utility (B, K, N), mu (B, N), nu (B,). Returns (B,).
    """
    K = utility.shape[1]
    best = (utility - mu[:, None, :]).amax(-1).sum(-1)
    return best + torch.exp(mu - nu[:, None] - 1.0).sum(-1) + nu * K


def optimal_nu(mu: torch.Tensor, n_users: int) -> torch.Tensor:
    """Line 8: nu = log((1/K) sum_n exp(mu_n - 1)), the minimiser of g over nu: (B, N) -> (B,)."""
    return torch.logsumexp(mu - 1.0, dim=-1) - math.log(n_users)


def dcd_price_update(
    utility: torch.Tensor, mu: torch.Tensor, nu: torch.Tensor, n: int
) -> torch.Tensor:
    """Line 6 for BS n: sup{mu : exp(mu - nu - 1) <= |U_n(mu)|}, the other prices fixed.

    Closed form max_j min(t_(j), nu + 1 + log j) over the descending thresholds
    t_k = u_{n,k} - max_{m != n}(u_{m,k} - mu_m) (derivation in the module docstring).

    Args:
        utility: (B, K, N). mu: (B, N) (mu[:, n] is ignored). nu: (B,). n: the BS index.

    Returns:
        (B,) the new price mu_n.
    """
    K, N = utility.shape[1:]
    if not 0 <= n < N:
        raise ConfigError(f"n must lie in [0, {N}), got {n}")
    adjusted = utility - mu[:, None, :]
    return _price_from_adjusted(utility, adjusted, nu, n, _log_ranks(K, utility))


def _log_ranks(n_users: int, like: torch.Tensor) -> torch.Tensor:
    """(K,) log j for j = 1..K."""
    return torch.arange(1, n_users + 1, dtype=like.dtype, device=like.device).log()


def _price_from_adjusted(
    utility: torch.Tensor, adjusted: torch.Tensor, nu: torch.Tensor, n: int, log_j: torch.Tensor
) -> torch.Tensor:
    """Line 6 given adjusted = u - mu (B, K, N): (B,)."""
    column = torch.tensor([n], device=utility.device)
    best_other = adjusted.index_fill(-1, column, -math.inf).amax(-1)  # (B, K)
    thresholds = utility[:, :, n] - best_other  # +inf when N = 1
    descending = thresholds.sort(-1, descending=True).values
    return torch.minimum(descending, nu[:, None] + 1.0 + log_j).amax(-1)


def price_association(
    utility: torch.Tensor, mu: torch.Tensor, *, tie_tol: float = 1e-5
) -> torch.Tensor:
    """Line 10: rho_k = argmax_n (u_{n,k} - mu_n): (B, K) long.

    At the dual optimum the marginal users of a BS are indifferent between BSs (line 6 puts the
    price exactly on a threshold); the seed does not say where they go (and the text of [16] was
    not available here). Choice: among the
    BSs within ``tie_tol`` of the maximum of u - mu, the user takes the one with the largest
    utility u_{n,k} (its best link), then the lowest index. With one user this is the
    strongest-SINR BS, and with equal prices it is argmax u.
    """
    if not tie_tol >= 0:
        raise ConfigError(f"tie_tol must be >= 0, got {tie_tol}")
    adjusted = utility - mu[:, None, :]
    tied = adjusted >= adjusted.amax(-1, keepdim=True) - tie_tol
    return torch.where(tied, utility, torch.full_like(utility, -math.inf)).argmax(-1)


def dual_coordinate_descent(
    utility: torch.Tensor, *, max_iter: int = 100, tol: float = 1e-6, tie_tol: float = 1e-5
) -> DualCoordinateDescentResult:
    """Seed 000 Algorithm 1 on given utilities u_{n,k}, batched over B.

    Lines 3-9: mu = 0, nu = log((1/K) sum_n exp(mu_n - 1)); each sweep updates mu_1..mu_N in turn
    by line 6 (Gauss-Seidel, each with the latest prices) and then nu by line 8 with the new
    prices; stop when |g_t - g_{t-1}| <= ``tol`` (1 + |g_t|) or after ``max_iter`` sweeps.
    Converged instances are frozen while the others continue.

    Args:
        utility: (B, K, N) real, finite.
        max_iter: sweeps at most (default 100).
        tol: relative tolerance on the dual objective (default 1e-6).
        tie_tol: tie tolerance of :func:`price_association` (default 1e-5).
    """
    _check_utility(utility)
    if max_iter < 1:
        raise ConfigError(f"max_iter must be >= 1, got {max_iter}")
    if not tol > 0:
        raise ConfigError(f"tol must be > 0, got {tol}")
    if not tie_tol >= 0:
        raise ConfigError(f"tie_tol must be >= 0, got {tie_tol}")
    B, K, N = utility.shape
    log_j = _log_ranks(K, utility)
    mu = torch.zeros(B, N, dtype=utility.dtype, device=utility.device)
    nu = optimal_nu(mu, K)
    adjusted = utility.clone()  # u - mu, kept current column by column
    previous = dual_objective(utility, mu, nu)
    converged = torch.zeros(B, dtype=torch.bool, device=utility.device)
    trace = []
    iterations = 0
    while iterations < max_iter and not bool(converged.all()):
        iterations += 1
        active = ~converged
        for n in range(N):  # Gauss-Seidel sweep over the BSs (the algorithm)
            price = _price_from_adjusted(utility, adjusted, nu, n, log_j)
            mu[:, n] = torch.where(active, price, mu[:, n])
            adjusted[:, :, n] = utility[:, :, n] - mu[:, n, None]
        nu = torch.where(active, optimal_nu(mu, K), nu)
        value = dual_objective(utility, mu, nu)
        trace.append(value)
        converged = converged | ((previous - value).abs() <= tol * (1.0 + value.abs()))
        previous = value
    empty = torch.zeros(B, 0, dtype=utility.dtype, device=utility.device)  # only when B = 0
    dual_trace = torch.stack(trace, -1) if trace else empty
    return DualCoordinateDescentResult(
        serving=price_association(utility, mu, tie_tol=tie_tol),
        mu=mu,
        nu=nu,
        dual_trace=dual_trace,
        iterations=iterations,
        converged=converged,
    )


def _power_budget(
    p_max: float | torch.Tensor, B: int, N: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """P_max as a (B, N) tensor; a clear error unless finite, > 0 and broadcastable."""
    upper = torch.as_tensor(p_max, dtype=dtype, device=device)
    if bool((upper <= 0).any()) or not bool(torch.isfinite(upper).all()):
        raise ConfigError(f"p_max must be finite and > 0 W, got {p_max}")
    try:
        return upper.expand(B, N)
    except RuntimeError:
        raise ShapeError(
            f"p_max must be a float or broadcast to (B, N) = {(B, N)}, got {tuple(upper.shape)}"
        ) from None


def associate_dcd(
    H: torch.Tensor,
    *,
    p_max: float | torch.Tensor,
    bs_power: torch.Tensor | None = None,
    n_antennas: float | torch.Tensor | None = None,
    power_control: bool = True,
    max_iter: int = 100,
    tol: float = 1e-6,
    outer_iter: int = 10,
    tie_tol: float = 1e-5,
    newton_max_iter: int = 50,
    newton_tol: float = 1e-6,
    min_power_fraction: float = 1e-6,
) -> AssociationResult:
    """DCD user association (seed 000 Algorithm 1), jointly with Newton power control ([16]).

    Joint scheme (seed 000 §IV-B, §VI "DCD"): starting from q = ``bs_power`` (default P_max),
    repeat: DCD association for powers q; stop if the association equals the previous round's;
    else q <- :func:`~skyshare.solvers.power_control.newton_power_control` for that association
    (warm-started from q). At most ``outer_iter`` rounds; instances whose association is stable
    are frozen. The returned association and powers form a consistent pair: q is optimised for
    the returned association (or is the input q when ``power_control=False``, one DCD run).

    Args:
        H: (B, K, N, M) complex, BS n -> TU k, noise-normalised (noise power 1).
        p_max: P_max in watts, float or (B, N).
        bs_power: (B, N) BS powers q_n in watts, default P_max. With power control the starting
            point (clamped into [``min_power_fraction`` P_max, P_max]); without, the fixed
            powers of Algorithm 1's input (0 switches a BS off).
        n_antennas: M in u_{n,k} = log(M log2(1 + SINR)), float or (B, N); default H's M.
        power_control: alternate with Newton power control (True, the seed's DCD) or run
            Algorithm 1 once on ``bs_power`` (False).
        max_iter, tol, tie_tol: of each DCD run (:func:`dual_coordinate_descent`).
        outer_iter: association/power-control rounds at most (default 10).
        newton_max_iter, newton_tol, min_power_fraction: of the power control.

    Returns:
        :class:`AssociationResult`: ``serving`` (B, K), ``loads`` (B, N), ``bs_power`` (B, N)
        q in watts, ``dual_trace`` (B, T) g after every DCD sweep with the rounds concatenated
        (g jumps where power control changed the utilities; instances that finished early
        repeat their last value), ``iterations`` = T, ``converged`` (B,) (last DCD converged
        and, with power control, association stable).
    """
    start = time.perf_counter()
    if H.ndim != 4 or not H.is_complex():
        raise ShapeError(f"H must be (B, K, N, M) complex, got {tuple(H.shape)}")
    if outer_iter < 1:
        raise ConfigError(f"outer_iter must be >= 1, got {outer_iter}")
    if not 0 < min_power_fraction < 1:
        raise ConfigError(f"min_power_fraction must lie in (0, 1), got {min_power_fraction}")
    B, _, N, M = H.shape
    strength = metrics.channel_strength(H)  # (B, K, N)
    upper = _power_budget(p_max, B, N, strength.dtype, H.device)
    if bs_power is None:
        power = upper.clone()
    else:
        if bs_power.shape != (B, N):
            raise ShapeError(f"bs_power must be (B, N) = {(B, N)}, got {tuple(bs_power.shape)}")
        power = bs_power.to(strength.dtype).clone()
        if power_control:  # a starting point of the power control: into its box
            power = torch.minimum(torch.maximum(power, upper * min_power_fraction), upper)
    antennas = M if n_antennas is None else n_antennas

    serving: torch.Tensor | None = None
    done = torch.zeros(B, dtype=torch.bool, device=H.device)
    dcd_converged = torch.zeros(B, dtype=torch.bool, device=H.device)
    traces: list[torch.Tensor] = []
    for _ in range(outer_iter if power_control else 1):
        dcd = dual_coordinate_descent(
            dcd_utility(strength, power, antennas), max_iter=max_iter, tol=tol, tie_tol=tie_tol
        )
        round_trace = dcd.dual_trace
        if serving is None:
            serving, dcd_converged = dcd.serving, dcd.converged
        else:
            round_trace = torch.where(done[:, None], traces[-1][:, -1:], round_trace)
            stable = (dcd.serving == serving).all(-1)
            dcd_converged = torch.where(done, dcd_converged, dcd.converged)
            serving = torch.where(done[:, None], serving, dcd.serving)
            done = done | stable
        traces.append(round_trace)
        if not power_control or bool(done.all()):
            break
        new_power = newton_power_control(
            strength,
            serving,
            upper,
            power0=power,
            max_iter=newton_max_iter,
            tol=newton_tol,
            min_power_fraction=min_power_fraction,
        )
        power = torch.where(done[:, None], power, new_power)
    dual_trace = torch.cat(traces, -1)
    converged = dcd_converged & done if power_control else dcd_converged
    return AssociationResult(
        serving=serving,
        iterations=dual_trace.shape[1],
        converged=converged,
        wall_time_s=time.perf_counter() - start,
        dual_trace=dual_trace,
        bs_power=power,
        loads=bs_loads(serving, N),
    )
