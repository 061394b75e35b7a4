"""Per-BS power control for a fixed user association by projected Newton's method.

The power-control step of the joint user association and power control of Shen & Yu, "Distributed
pricing-based user association for downlink heterogeneous cellular networks", IEEE JSAC 32(6),
2014 (seed 000 ref. [16], used in seed 000 §IV-B and §VI). With the association rho fixed, BS n
sends at power q_n to every user it serves (time sharing; channel strength ||h_{n,k}||^2 as the
gain), and the proportional-fair network utility

    U(q) = sum_k log( log2(1 + SINR_k(q)) ),
    SINR_k(q) = s_{rho_k,k} q_{rho_k} / ( sum_{m != rho_k} s_{m,k} q_m + 1 )      (noise 1)

is maximised over the box q_min <= q_n <= P_max. The per-BS time-sharing term
-sum_n |K_n| log |K_n| of the objective of [16] does not depend on q and is dropped.

Choices where the seed is silent (the text of [16] was not available to this implementation; the
choice is the standard one for a smooth, non-convex, box-constrained problem):

* variable: x = log q (``variable="log_power"``, default), which makes the problem scale-free and
  keeps q > 0; ``variable="power"`` runs the same method on q itself.
* direction: Newton on the free coordinates (Bertsekas 1982, "Projected Newton methods for
  optimization problems with simple constraints", SIAM J. Control Optim. 20(2)): coordinates at a
  bound whose gradient points out of the box are held fixed; the Hessian of the free block is made
  negative definite by mirroring its eigenvalues, lambda -> -max(|lambda|, delta) (Nocedal &
  Wright, Numerical Optimization, 2nd ed., §3.4).
* step: the projected arc x(t) = P(x + t d) is evaluated at t = 0, 2^6, 2^5, ..., 2^-20 in one
  batched call and the best point that satisfies the Armijo condition
  U(x(t)) >= U(x) + sigma grad^T (x(t) - x) is taken; t = 0 is a candidate, so U never
  decreases. Steps longer than the Newton step let coordinates that want to switch off (a BS
  without users) reach q_min in one iteration instead of one nat per iteration.
* precision: float64 inside (``compute_dtype``): near the optimum a Newton step gains less than
  float32 resolves of U.
* q_min = ``min_power_fraction`` P_max (default 1e-6, -60 dB): a BS without users only interferes,
  so its optimal power is the lower bound; log q needs a finite one.
* gradient and Hessian in closed form (derivation in docs/solvers/association.md), checked
  against autograd in the tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare.errors import ConfigError, ShapeError

__all__ = [
    "PowerControlResult",
    "network_utility",
    "newton_power_control",
    "utility_derivatives",
]

_VARIABLES = ("log_power", "power")
# Step lengths t > 0 of the batched line search along the projected Newton arc: 2^6 ... 2^-20.
_STEP_EXPONENTS = torch.arange(6, -21, -1, dtype=torch.float64)


@dataclass
class PowerControlResult:
    """Full output of :func:`newton_power_control` (``full_output=True``).

    Attributes:
        power: (B, N) BS powers q_n in watts.
        utility_trace: (B, T + 1) network utility U(q) (nats of log2-rates, see
            :func:`network_utility`) at the start and after each iteration.
        projected_gradient: (B,) inf-norm of the projected gradient in the optimisation variable
            at the returned point (0 at a KKT point of the box-constrained problem).
        iterations: Newton iterations run.
        converged: (B,) bool.
    """

    power: torch.Tensor
    utility_trace: torch.Tensor
    projected_gradient: torch.Tensor
    iterations: int
    converged: torch.Tensor


def _check_inputs(strength: torch.Tensor, serving: torch.Tensor) -> tuple[int, int, int]:
    if strength.ndim != 3 or strength.is_complex():
        raise ShapeError(f"strength must be (B, K, N) real, got {tuple(strength.shape)}")
    B, K, N = strength.shape
    if serving.shape != (B, K) or serving.dtype != torch.long:
        raise ShapeError(f"serving must be (B, K) = {(B, K)} long, got {tuple(serving.shape)}")
    if bool((serving < 0).any()) or bool((serving >= N).any()):
        raise ShapeError(f"serving indices must lie in [0, {N})")
    if bool((strength < 0).any()):
        raise ShapeError("strength (||h_{n,k}||^2) must be >= 0")
    return B, K, N


def _per_bs(value: float | torch.Tensor, name: str, B: int, N: int, like: torch.Tensor):
    """``value`` as a (B, N) tensor of ``like``'s dtype, > 0."""
    out = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if bool((out <= 0).any()) or not bool(torch.isfinite(out).all()):
        raise ConfigError(f"{name} must be finite and > 0 W, got {value}")
    try:
        return out.expand(B, N).contiguous()
    except RuntimeError:
        raise ShapeError(
            f"{name} must be a float or broadcast to (B, N) = {(B, N)}, got {tuple(out.shape)}"
        ) from None


def _served_mask(serving: torch.Tensor, N: int, dtype: torch.dtype) -> torch.Tensor:
    """(B, K, N) one-hot of the serving BS."""
    return torch.nn.functional.one_hot(serving, N).to(dtype)


def _log_rates(strength: torch.Tensor, serving: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """log(ln(1 + SINR_k)) for S candidate power vectors: power (B, S, N) -> (B, S, K).

    strength (B, K, N), serving (B, K). Received powers by batched matrix products instead of
    a (B, S, K, N) tensor.
    """
    owner = _served_mask(serving, strength.shape[2], strength.dtype)
    signal = torch.bmm(power, (strength * owner).transpose(1, 2))  # (B, S, K)
    interference = torch.bmm(power, (strength * (1.0 - owner)).transpose(1, 2))
    rate_nats = torch.log1p(signal / (interference + 1.0))
    return torch.log(rate_nats.clamp_min(torch.finfo(strength.dtype).tiny))


def network_utility(
    strength: torch.Tensor, serving: torch.Tensor, power: torch.Tensor
) -> torch.Tensor:
    """Proportional-fair utility ``sum_k log(log2(1 + SINR_k))`` of [16] for fixed association.

    Args:
        strength: (B, K, N) real, ``||h_{n,k}||^2`` (noise-normalised, noise power 1).
        serving: (B, K) long, rho_k.
        power: (B, N) real, BS powers q_n in watts.

    Returns:
        (B,) utility in nats (log of bit/s/Hz rates). Users with a zero rate count as
        log(tiny) instead of -inf.
    """
    B, _, N = _check_inputs(strength, serving)
    if power.shape != (B, N):
        raise ShapeError(f"power must be (B, N) = {(B, N)}, got {tuple(power.shape)}")
    log_rates = _log_rates(strength, serving, power[:, None, :]).squeeze(1)
    return (log_rates - math.log(math.log(2.0))).sum(-1)


def utility_derivatives(
    strength: torch.Tensor, serving: torch.Tensor, power: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Utility, gradient and Hessian of :func:`network_utility` in x = log q (closed form).

    With a_{k,m} = s_{m,k} q_m, b_{k,m} = a_{k,m} [m != rho_k], T_k = sum_m a_{k,m} + 1,
    I_k = T_k - a_{k,rho_k}, r_k = ln(T_k / I_k) and c_{k,m} = a_{k,m}/T_k - b_{k,m}/I_k:

        dU/dx_m        = sum_k c_{k,m} / r_k
        d2U/dx_m dx_l  = [m = l] dU/dx_m
                         - sum_k ( a_{k,m} a_{k,l} / (T_k^2 r_k) - b_{k,m} b_{k,l} / (I_k^2 r_k)
                                   + c_{k,m} c_{k,l} / r_k^2 ).

    Args:
        strength: (B, K, N) real. serving: (B, K) long. power: (B, N) real, > 0.

    Returns:
        utility (B,), gradient (B, N), Hessian (B, N, N), all with respect to x = log q.
    """
    B, _, N = _check_inputs(strength, serving)
    if power.shape != (B, N):
        raise ShapeError(f"power must be (B, N) = {(B, N)}, got {tuple(power.shape)}")
    return _derivatives(strength, serving, power)


def _derivatives(
    strength: torch.Tensor, serving: torch.Tensor, power: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`utility_derivatives` without argument checks (called every Newton iteration)."""
    owner = _served_mask(serving, strength.shape[2], strength.dtype)
    a = strength * power[:, None, :]  # (B, K, N)
    b = a * (1.0 - owner)
    total = a.sum(-1) + 1.0  # T_k
    interference = b.sum(-1) + 1.0  # I_k
    rate = torch.log1p((total - interference) / interference).clamp_min(
        torch.finfo(strength.dtype).tiny
    )
    c = a / total[..., None] - b / interference[..., None]
    gradient = (c / rate[..., None]).sum(1)

    def weighted_gram(weight: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """sum_k weight_k v_k v_k^T: (B, K), (B, K, N) -> (B, N, N)."""
        return torch.bmm((v * weight[..., None]).transpose(1, 2), v)

    hessian = (
        torch.diag_embed(gradient)
        - weighted_gram(1.0 / (total.square() * rate), a)
        + weighted_gram(1.0 / (interference.square() * rate), b)
        - weighted_gram(1.0 / rate.square(), c)
    )
    utility = (torch.log(rate) - math.log(math.log(2.0))).sum(-1)
    return utility, gradient, hessian


def _check_newton_options(
    variable: str, max_iter: int, tol: float, min_power_fraction: float, armijo: float
) -> None:
    if variable not in _VARIABLES:
        raise ConfigError(f"variable must be one of {_VARIABLES}, got {variable!r}")
    if max_iter < 0:
        raise ConfigError(f"max_iter must be >= 0, got {max_iter}")
    if not tol > 0:
        raise ConfigError(f"tol must be > 0, got {tol}")
    if not 0 < min_power_fraction < 1:
        raise ConfigError(f"min_power_fraction must lie in (0, 1), got {min_power_fraction}")
    if not 0 < armijo < 0.5:
        raise ConfigError(f"armijo must lie in (0, 0.5), got {armijo}")


def _newton_direction(
    grad: torch.Tensor, hess: torch.Tensor, free: torch.Tensor, eye: torch.Tensor
) -> torch.Tensor:
    """Ascent direction (B, N) of the projected Newton step on the free coordinates: the
    Hessian restricted to them (identity on the active bounds) with its eigenvalues replaced
    by their absolute values (floored), the model Hessian ``-V diag(|lambda|) V^T``."""
    hess_free = hess * free[:, :, None] * free[:, None, :] - eye * (1.0 - free)[:, None, :]
    eigenvalues, eigenvectors = torch.linalg.eigh(hess_free)
    floor = 1e-8 * (1.0 + eigenvalues.abs().amax(-1, keepdim=True))
    curvature = torch.maximum(eigenvalues.abs(), floor)
    coefficients = (eigenvectors.transpose(1, 2) @ (grad * free)[..., None]).squeeze(-1)
    return (eigenvectors @ (coefficients / curvature)[..., None]).squeeze(-1)


def newton_power_control(
    strength: torch.Tensor,
    serving: torch.Tensor,
    p_max: float | torch.Tensor,
    *,
    power0: torch.Tensor | None = None,
    max_iter: int = 50,
    tol: float = 1e-6,
    variable: str = "log_power",
    min_power_fraction: float = 1e-6,
    armijo: float = 1e-4,
    compute_dtype: torch.dtype | None = torch.float64,
    full_output: bool = False,
) -> torch.Tensor | PowerControlResult:
    """Maximise ``sum_k log(log2(1 + SINR_k(q)))`` over ``q_min <= q <= P_max`` (fixed association).

    Projected Newton's method (the power-control step of [16], Shen & Yu 2014 §IV; method and
    choices in the module docstring and docs/solvers/association.md).

    Args:
        strength: (B, K, N) real, channel strengths ``||h_{n,k}||^2`` (noise-normalised).
        serving: (B, K) long, the fixed association rho_k.
        p_max: P_max in watts, float or (B, N).
        power0: (B, N) starting powers in watts (default P_max, i.e. full power); clamped into
            the box.
        max_iter: Newton iterations at most (default 50).
        tol: stop when the inf-norm of the projected gradient (in the optimisation variable) is
            <= ``tol`` or an iteration raises U by <= ``tol * (1 + |U|)`` (default 1e-6).
        variable: ``"log_power"`` (x = log q, default) or ``"power"`` (q).
        min_power_fraction: q_min / P_max in (0, 1) (default 1e-6).
        armijo: sufficient-increase constant sigma in (0, 0.5) (default 1e-4).
        compute_dtype: precision of the iteration (default float64: near the optimum one Newton
            step gains less than float32 resolves of U, so float32 stalls at a projected gradient
            ~1e-3); ``None`` keeps ``strength``'s dtype. The result has ``strength``'s dtype.
        full_output: return a :class:`PowerControlResult` instead of the powers.

    Returns:
        (B, N) powers q_n in watts, or :class:`PowerControlResult`.
    """
    B, K, N = _check_inputs(strength, serving)
    _check_newton_options(variable, max_iter, tol, min_power_fraction, armijo)
    out_dtype = strength.dtype
    strength = strength.to(compute_dtype or out_dtype)
    dtype, device = strength.dtype, strength.device
    upper_power = _per_bs(p_max, "p_max", B, N, strength)
    lower_power = upper_power * min_power_fraction
    if power0 is None:
        power = upper_power.clone()
    else:
        if power0.shape != (B, N):
            raise ShapeError(f"power0 must be (B, N) = {(B, N)}, got {tuple(power0.shape)}")
        power = torch.minimum(torch.maximum(power0.to(dtype), lower_power), upper_power)

    in_log = variable == "log_power"
    lower = lower_power.log() if in_log else lower_power
    upper = upper_power.log() if in_log else upper_power
    x = power.log() if in_log else power
    # Step lengths of the line search, t = 0 (stay) and 2^6 ... 2^-20: (S,).
    steps = torch.cat([torch.zeros(1), 2.0**_STEP_EXPONENTS]).to(dtype=dtype, device=device)
    log_log2 = K * math.log(math.log(2.0))
    eye = torch.eye(N, dtype=dtype, device=device)

    def to_power(x: torch.Tensor) -> torch.Tensor:
        return x.exp() if in_log else x

    def derivatives(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient and Hessian in the optimisation variable."""
        q = to_power(x)
        _, grad, hess = _derivatives(strength, serving, q)
        if not in_log:  # chain rule from x = log q to q
            hess = (hess - torch.diag_embed(grad)) / (q[:, :, None] * q[:, None, :])
            grad = grad / q
        return grad, hess

    def projected_gradient_norm(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        moved = torch.minimum(torch.maximum(x + grad, lower), upper)
        return (moved - x).abs().amax(-1)

    utility = _log_rates(strength, serving, to_power(x)[:, None, :]).sum(-1).squeeze(1)
    utility = utility - log_log2
    grad, hess = derivatives(x)
    trace = [utility]
    converged = projected_gradient_norm(x, grad) <= tol
    iterations = 0
    while iterations < max_iter and not bool(converged.all()):
        iterations += 1
        # Bertsekas' epsilon-active set: near a bound with the gradient pointing out of the box.
        eps = torch.minimum(projected_gradient_norm(x, grad)[:, None], 1e-3 * (upper - lower))
        at_upper = (x >= upper - eps) & (grad > 0)
        at_lower = (x <= lower + eps) & (grad < 0)
        free = (~(at_upper | at_lower)).to(dtype)  # (B, N)
        direction = _newton_direction(grad, hess, free, eye)

        # Line search on the projected arc, all step lengths at once: (B, S, N) candidates.
        candidates = x[:, None, :] + steps[None, :, None] * direction[:, None, :]
        candidates = torch.minimum(torch.maximum(candidates, lower[:, None]), upper[:, None])
        values = _log_rates(strength, serving, to_power(candidates)).sum(-1) - log_log2
        stay = values[:, :1]  # t = 0, evaluated the same way as the other candidates
        predicted = ((candidates - x[:, None, :]) * grad[:, None, :]).sum(-1)  # (B, S)
        acceptable = values >= stay + armijo * predicted
        acceptable[:, 0] = True
        best_value, best_index = torch.where(acceptable, values, -math.inf).max(1)  # (B,)
        move = ~converged
        best = candidates.gather(1, best_index[:, None, None].expand(B, 1, N)).squeeze(1)
        x = torch.where(move[:, None], best, x)
        gain = torch.where(move, best_value - stay.squeeze(1), 0.0)
        utility = torch.where(move, best_value, utility)
        grad, hess = derivatives(x)
        trace.append(utility)
        small_gain = gain <= tol * (1.0 + utility.abs())
        converged = converged | (projected_gradient_norm(x, grad) <= tol) | small_gain

    power = to_power(x).to(out_dtype)
    if not full_output:
        return power
    return PowerControlResult(
        power=power,
        utility_trace=torch.stack(trace, -1).to(out_dtype),
        projected_gradient=projected_gradient_norm(x, grad).to(out_dtype),
        iterations=iterations,
        converged=converged,
    )
