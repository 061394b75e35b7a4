"""The coordinated-beamforming problem of seed 000 (2a)-(2c) and the result objects of solvers.

All quantities are noise-normalised (noise power 1): channels divided by sigma, I_max in noise
units, powers in watts. A problem holds B independent instances (leading batch axis).

    maximize_w   sum_k log2(1 + gamma_k)                                        (2a)
    s.t.         sum_{k in K_n} ||w_k||^2 <= P_max             for every BS n    (2b)
                 sum_k |g_{rho_k,l}^H w_k|^2 <= I_max          for every AU l    (2c)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from skyshare import metrics
from skyshare.errors import ShapeError

__all__ = [
    "ActiveSet",
    "AssociationResult",
    "BeamformingProblem",
    "BeamformingResult",
    "Evaluation",
    "evaluate",
    "finish",
    "finish_safeguarded",
    "initial_beamformers",
    "scale_to_interference_limit",
]


@dataclass(frozen=True)
class BeamformingProblem:
    """One batch of instances of problem (2) for a fixed association.

    Attributes:
        H: (B, K, N, M) complex, BS n -> TU k, noise-normalised.
        G: (B, L, N, M) complex, BS n -> AU l, noise-normalised (L may be 0).
        serving: (B, K) long, the BS rho_k of each TU.
        p_max: P_max per BS in watts (float, or (B, N) tensor).
        i_max: I_max in noise units (float, or (B, L) tensor); ``inf`` disables (2c).
    """

    H: torch.Tensor
    G: torch.Tensor
    serving: torch.Tensor
    p_max: float | torch.Tensor
    i_max: float | torch.Tensor

    def __post_init__(self) -> None:
        if self.H.ndim != 4 or not self.H.is_complex():
            raise ShapeError(f"H must be (B, K, N, M) complex, got {tuple(self.H.shape)}")
        B, K, N, M = self.H.shape
        if self.G.ndim != 4 or self.G.shape[0] != B or self.G.shape[2:] != (N, M):
            raise ShapeError(f"G must be (B, L, N={N}, M={M}), got {tuple(self.G.shape)}")
        if self.serving.shape != (B, K) or self.serving.dtype != torch.long:
            raise ShapeError(f"serving must be (B, K) long, got {tuple(self.serving.shape)}")
        if bool((self.serving < 0).any()) or bool((self.serving >= N).any()):
            raise ShapeError(f"serving indices must lie in [0, {N})")
        if bool((torch.as_tensor(self.p_max) <= 0).any()):
            raise ValueError("p_max must be > 0 W")
        if bool((torch.as_tensor(self.i_max) <= 0).any()):
            raise ValueError("i_max must be > 0 (noise units)")

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        """(B, K, N, M, L)."""
        B, K, N, M = self.H.shape
        return B, K, N, M, self.G.shape[1]

    def p_max_per_bs(self) -> torch.Tensor:
        """(B, N) real tensor of per-BS power budgets."""
        B, _, N, _ = self.H.shape
        return torch.as_tensor(self.p_max, dtype=self.H.real.dtype, device=self.H.device).expand(
            B, N
        )

    def i_max_per_au(self) -> torch.Tensor:
        """(B, L) real tensor of AU interference limits (noise units)."""
        B, L = self.G.shape[:2]
        return torch.as_tensor(self.i_max, dtype=self.H.real.dtype, device=self.H.device).expand(
            B, L
        )

    def subset(self, index: torch.Tensor | slice) -> BeamformingProblem:
        """The instances ``index`` of the batch (tensors sliced on the batch axis)."""

        def pick(x: float | torch.Tensor) -> float | torch.Tensor:
            return x[index] if isinstance(x, torch.Tensor) and x.ndim >= 1 else x

        return BeamformingProblem(
            H=self.H[index],
            G=self.G[index],
            serving=self.serving[index],
            p_max=pick(self.p_max),
            i_max=pick(self.i_max),
        )


@dataclass(frozen=True)
class Evaluation:
    """Metrics of beamformers ``w`` on a problem (see :func:`evaluate`).

    Attributes:
        rates: (B, K) bit/s/Hz. sum_rate: (B,). sinr: (B, K).
        au_interference: (B, L) noise units. bs_power: (B, N) watts.
        power_violation: (B,) max_n (P_n - P_max,n) / P_max,n, <= 0 when (2b) holds.
        interference_violation: (B,) max_l (rho_l - I_max,l) / I_max,l, <= 0 when (2c) holds.
    """

    rates: torch.Tensor
    sum_rate: torch.Tensor
    sinr: torch.Tensor
    au_interference: torch.Tensor
    bs_power: torch.Tensor
    power_violation: torch.Tensor
    interference_violation: torch.Tensor

    def feasible(self, tol: float = 1e-3) -> torch.Tensor:
        """(B,) bool: (2b) and (2c) hold within the relative tolerance ``tol``."""
        return (self.power_violation <= tol) & (self.interference_violation <= tol)


def evaluate(problem: BeamformingProblem, w: torch.Tensor) -> Evaluation:
    """Rates, AU interference, per-BS power and constraint violations of ``w (B, K, M)``."""
    B, K, N, M, L = problem.shape
    if w.shape != (B, K, M):
        raise ShapeError(f"w must be (B, K, M) = {(B, K, M)}, got {tuple(w.shape)}")
    result = metrics.sinr(metrics.associated_gains(problem.H, w, problem.serving), 1.0)
    user_power = w.real.square().sum(-1) + w.imag.square().sum(-1)  # (B, K)
    owner = torch.nn.functional.one_hot(problem.serving, N).to(user_power.dtype)  # (B, K, N)
    bs_power = torch.einsum("bk,bkn->bn", user_power, owner)
    p_max = problem.p_max_per_bs()
    power_violation = (bs_power / p_max - 1.0).amax(-1)
    if L > 0:
        rho = metrics.primary_interference(problem.G, w, problem.serving)
        i_max = problem.i_max_per_au()
        interference_violation = (rho / i_max - 1.0).amax(-1)  # finite when i_max = inf
    else:
        rho = torch.zeros(B, 0, dtype=user_power.dtype, device=w.device)
        interference_violation = torch.full((B,), float("-inf"), device=w.device)
    return Evaluation(
        rates=result.rate,
        sum_rate=result.rate.sum(-1),
        sinr=result.sinr,
        au_interference=rho,
        bs_power=bs_power,
        power_violation=power_violation,
        interference_violation=interference_violation,
    )


@dataclass
class BeamformingResult:
    """What every beamforming solver returns.

    Attributes:
        w: (B, K, M) complex beamformers (w_k sent by BS serving[k]).
        evaluation: rates, sum rate, AU interference, BS power, violations of ``w``.
        objective_trace: (B, T) sum rate (2a) after each iteration (T = iterations run).
        iterations: iterations run (the batch stops when every instance has converged).
        converged: (B,) bool, relative objective change below ``tol``.
        feasible: (B,) bool, (2b) and (2c) hold within ``feasibility_tol``.
        wall_time_s: seconds spent in the solver.
        multipliers: named dual variables, e.g. ``{"mu": (B, L), "eta": (B, N)}``.
        instance_iterations: (B,) long, iterations each instance ran, for solvers with
            per-instance convergence (an active set: converged instances leave the batch);
            None otherwise (every instance ran ``iterations``).
    """

    w: torch.Tensor
    evaluation: Evaluation
    objective_trace: torch.Tensor
    iterations: int
    converged: torch.Tensor
    feasible: torch.Tensor
    wall_time_s: float
    multipliers: dict[str, torch.Tensor] = field(default_factory=dict)
    instance_iterations: torch.Tensor | None = None

    @property
    def rates(self) -> torch.Tensor:
        return self.evaluation.rates

    @property
    def sum_rate(self) -> torch.Tensor:
        return self.evaluation.sum_rate

    @property
    def au_interference(self) -> torch.Tensor:
        return self.evaluation.au_interference

    @property
    def bs_power(self) -> torch.Tensor:
        return self.evaluation.bs_power


@dataclass
class AssociationResult:
    """What every user-association solver returns.

    Attributes:
        serving: (B, K) long, the BS of each TU.
        iterations: iterations run.
        converged: (B,) bool.
        wall_time_s: seconds spent.
        dual_trace: (B, T) dual objective per iteration (DCD), empty for SC.
        bs_power: (B, N) BS powers in watts used/optimised by the scheme (DCD + power control).
        loads: (B, N) long, users per BS.
    """

    serving: torch.Tensor
    iterations: int
    converged: torch.Tensor
    wall_time_s: float
    dual_trace: torch.Tensor
    bs_power: torch.Tensor
    loads: torch.Tensor


class ActiveSet:
    """Bookkeeping of a batched iterative solver whose converged instances leave the batch.

    The solver keeps its working tensors for the running instances only; ``index`` (n,) maps
    them to the batch. :meth:`retire` writes the settled instances' values into the full-batch
    outputs, records their iteration count and returns the rows to keep (the solver compacts
    its own tensors with them); :meth:`close` writes the instances that never settled.

    Args:
        iterations: the iteration limit (what an instance that never settles reports).
        outputs: full-batch tensors (B, ...) of the initial values, e.g. ``w=w, mu=mu``;
            cloned, then kept up to date in :attr:`out`.

    Attributes: ``out`` (name -> (B, ...)), ``converged`` (B,) bool, ``iterations`` (B,) long,
    ``index`` (n,) long: the batch rows still running.
    """

    def __init__(self, iterations: int, **outputs: torch.Tensor) -> None:
        first = next(iter(outputs.values()))
        B, device = first.shape[0], first.device
        self.out = {name: value.clone() for name, value in outputs.items()}
        self.converged = torch.zeros(B, dtype=torch.bool, device=device)
        self.iterations = torch.full((B,), iterations, dtype=torch.long, device=device)
        self.index = torch.arange(B, device=device)

    def retire(self, settled: torch.Tensor, iteration: int, **values: torch.Tensor) -> torch.Tensor:
        """Instances with ``settled`` (n,) True finish at ``iteration`` with ``values`` (n, ...)
        of the running rows; returns ``keep`` (m,) long, the running rows that go on."""
        finished = self.index[settled]
        for name, value in values.items():
            self.out[name][finished] = value[settled]
        self.converged[finished] = True
        self.iterations[finished] = iteration
        keep = (~settled).nonzero()[:, 0]
        self.index = self.index[keep]
        return keep

    def close(self, **values: torch.Tensor) -> None:
        """Write the last values (n, ...) of the instances still running (they hit the limit)."""
        if self.index.numel():
            for name, value in values.items():
                self.out[name][self.index] = value


def initial_beamformers(
    problem: BeamformingProblem, w0: torch.Tensor | None = None
) -> torch.Tensor:
    """Starting point of the iterative solvers: (B, K, M) complex.

    Without ``w0``: maximum-ratio beams, each BS spending P_max equally over its users (seed 000
    Algorithm 2 line 1: ``sum_{k in K_n} ||w_k||^2 = P_max``). With ``w0`` (warm start from the
    previous slot, §VI's dynamic setting): ``w0`` where it is non-zero, MRT at the BS's
    equal share ``P_max / |K_n|`` for users whose ``w0`` is zero (e.g. just handed over); a BS
    whose warm beams then exceed P_max is scaled down onto P_max, one below it is kept as it
    is (scaling a previous solution up would undo the slack it kept for (2c)).
    """
    from skyshare.beamforming import mrt_equal_power

    B, K, N, M, _ = problem.shape
    p_max = problem.p_max_per_bs()
    mrt = mrt_equal_power(problem.H, problem.serving, 1.0)  # every BS spends 1 W
    owner = torch.nn.functional.one_hot(problem.serving, N).to(p_max.dtype)  # (B, K, N)

    def bs_power(w: torch.Tensor) -> torch.Tensor:  # (B, N)
        user_power = w.real.square().sum(-1) + w.imag.square().sum(-1)  # (B, K)
        return torch.einsum("bk,bkn->bn", user_power, owner)

    def per_user(x: torch.Tensor) -> torch.Tensor:  # (B, N) -> (B, K, 1)
        return torch.gather(x, 1, problem.serving)[..., None]

    if w0 is None:
        return mrt * per_user(p_max.sqrt())
    if w0.shape != (B, K, M):
        raise ShapeError(f"w0 must be (B, K, M) = {(B, K, M)}, got {tuple(w0.shape)}")
    fresh = (w0.abs().square().sum(-1) == 0)[..., None]
    w = torch.where(fresh, mrt * per_user(p_max.sqrt()), w0.to(problem.H.dtype))
    scale = torch.sqrt(p_max / bs_power(w).clamp_min(1e-30)).clamp_max(1.0)  # (B, N)
    return w * per_user(scale)


def finish(
    problem: BeamformingProblem,
    w: torch.Tensor,
    *,
    trace: list[torch.Tensor],
    iterations: int,
    converged: torch.Tensor,
    start_time: float,
    feasibility_tol: float,
    multipliers: dict[str, torch.Tensor],
    instance_iterations: torch.Tensor | None = None,
) -> BeamformingResult:
    """Package an iterative solver's output: evaluate ``w`` in the problem's dtype, stack the
    objective trace (list of (B,) tensors) and stamp the wall time since ``start_time``."""
    import time

    w = w.to(problem.H.dtype)
    evaluation = evaluate(problem, w)
    return BeamformingResult(
        w=w,
        evaluation=evaluation,
        objective_trace=torch.stack(trace, 1).to(problem.H.real.dtype),
        iterations=iterations,
        converged=converged,
        feasible=evaluation.feasible(feasibility_tol),
        wall_time_s=time.perf_counter() - start_time,
        multipliers=multipliers,
        instance_iterations=instance_iterations,
    )


def finish_safeguarded(
    problem: BeamformingProblem,
    work: BeamformingProblem,
    w: torch.Tensor,
    trace: list[torch.Tensor],
    iterations: int,
    converged: torch.Tensor,
    start_time: float,
    feasibility_tol: float,
    mu: torch.Tensor,
    eta: torch.Tensor,
    extra: dict[str, torch.Tensor] | None = None,
    instance_iterations: torch.Tensor | None = None,
) -> BeamformingResult:
    """The common end of the multiplier-based solvers (WMMSE, direct FP).

    Apply the final (2c) safeguard :func:`scale_to_interference_limit` on ``work`` (the
    instances in the compute dtype), then :func:`finish` with the multipliers ``mu (B, L)``,
    ``eta (B, N)``, ``scaled_for_feasibility (B,)`` and the solver's ``extra`` entries, in
    this order.

    Args:
        problem: the instances as given (the result is in their dtype).
        work: the instances the solver iterated on. w: (B, K, M) its final beams.
        trace, iterations, converged, start_time, feasibility_tol: as in :func:`finish`.
        mu, eta: the final multipliers. extra: further named entries of ``multipliers``.
        instance_iterations: (B,) per-instance iterations (active-set solvers), or None.
    """
    w, scaled = scale_to_interference_limit(work, w, feasibility_tol)
    if problem.H.dtype != work.H.dtype:
        # The beams are returned rounded to the problem's dtype, which moves g^H w by up to
        # eps sum_m |g_m| |w_m|: in float32 that undoes AU nulls deeper than ~1e-7 (seen:
        # rho = 1.7 I_max at I_max = 1e-8 noise powers, after (2c) held in complex128).
        # Where (2c) may not survive the rounding, the rounded beams are scaled with a margin
        # for it; elsewhere the beams are as above.
        rounded = w.to(problem.H.dtype).to(work.H.dtype)
        eps = torch.finfo(problem.H.real.dtype).eps
        rounded, rescaled = scale_to_interference_limit(
            work, rounded, feasibility_tol, rounding=eps
        )
        w = torch.where(rescaled[:, None, None], rounded, w)
        scaled = scaled | rescaled
    multipliers = {"mu": mu, "eta": eta, "scaled_for_feasibility": scaled, **(extra or {})}
    return finish(
        problem,
        w,
        trace=trace,
        iterations=iterations,
        converged=converged,
        start_time=start_time,
        feasibility_tol=feasibility_tol,
        multipliers=multipliers,
        instance_iterations=instance_iterations,
    )


def scale_to_interference_limit(
    problem: BeamformingProblem, w: torch.Tensor, tol: float, *, rounding: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final feasibility safeguard for (2c).

    Where some AU sees more than ``(1 + tol) I_max``, every beam of that instance is multiplied
    by ``min(1, min_l sqrt(I_max,l / rho_l))``: the interference then meets (2c) exactly and
    the BS powers only shrink, so (2b) keeps holding.

    Args:
        problem: the instances. w: (B, K, M) complex beamformers. tol: relative tolerance.
        rounding: relative error of each entry of the beams once rounded to the dtype they
            are returned in (its eps; 0: none). ``rho_l`` is then replaced by its bound under
            that rounding, ``sum_k (|g^H w_k| + rounding sum_m |g_m| |w_k,m|)^2``, so that the
            returned, rounded beams meet (2c) (within ``tol`` where they are not rescaled).

    Returns:
        (w (B, K, M), scaled (B,) bool: whether the instance was rescaled).
    """
    B, L = w.shape[0], problem.G.shape[1]
    if L == 0:
        return w, torch.zeros(B, dtype=torch.bool, device=w.device)
    if rounding:
        gains = metrics.associated_gains(problem.G, w, problem.serving).abs()  # (B, L, K)
        spread = metrics.associated_gains(problem.G.abs() + 0j, w.abs() + 0j, problem.serving)
        rho = (gains + rounding * spread.real).square().sum(-1)  # (B, L)
    else:
        rho = metrics.primary_interference(problem.G, w, problem.serving)  # (B, L)
    i_max = problem.i_max_per_au().to(rho.dtype)
    ratio = (i_max / rho.clamp_min(torch.finfo(rho.dtype).tiny)).amin(-1)  # (B,)
    scaled = ratio < 1.0 / (1.0 + tol)
    factor = torch.where(scaled, ratio.sqrt(), torch.ones_like(ratio))
    return w * factor[:, None, None].to(w.dtype), scaled
