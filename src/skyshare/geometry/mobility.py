"""Mobility and traffic models: whole trajectories and arrival traces as tensors.

Trajectories have shape ``(B, S, n, 3)``: batch, time slot, node, xyz in metres; slot ``s`` is
time ``s * slot_s`` and slot 0 is the start position. Heights are kept constant (ground users,
airplanes at a fixed flight level).

* :func:`straight_flight`: constant speed, heading and altitude (seed 000 §VI: two airplanes at
  10 km flying at 250 m/s, 6000 slots of 0.02 s).
* :func:`smooth_random_trajectories`: smooth random curves at constant speed whose turn rate is an
  Ornstein-Uhlenbeck process (the terrestrial-user curves of seed 000 Fig. 3; the paper gives no
  model, so the OU turn rate is our documented choice). Loop-free: the AR(1) recursion is a causal
  convolution done with an FFT, heading and position are cumulative sums.
* :func:`random_walk`: a step of ``speed * slot_s`` in a fresh uniform direction every slot
  (seed 001 §IV: random walk at 1 m/s). Loop-free (cumulative sum).
* :func:`poisson_arrivals`: Poisson arrivals, exponential holding times, a capped population
  (seed 001 §IV, Fig. 4). This one loops over time slots (the blocking of an arrival depends on the
  population left by the previous slot); everything inside a slot is vectorised over batch and
  population slots.
* :func:`poisson_population` and :func:`active_mask`: the training-time user count of seed 001
  §III-E, ``min(Poisson(0.5 K_max), K_max)``, and the matching active-slot mask ``psi``.

Bounds ``(x_min, x_max, y_min, y_max)`` reflect trajectories specularly at the walls. The
reflection is computed in closed form by folding the free path into the box,
``x -> x_min + L - |((x - x_min) mod 2L) - L|`` with ``L = x_max - x_min``, which is exactly the
path of a node that bounces off the walls (angle of incidence = angle of reflection). The path
length per slot is preserved; only the chord of a slot that hits a wall is shorter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare.checks import check_memory
from skyshare.errors import ConfigError, ShapeError

__all__ = [
    "ArrivalTrace",
    "active_mask",
    "poisson_arrivals",
    "poisson_population",
    "random_walk",
    "slot_count",
    "smooth_random_trajectories",
    "straight_flight",
]

Bounds = tuple[float, float, float, float]


# ----------------------------------------------------------------------------- argument checks


def _check_start(start_m: torch.Tensor) -> None:
    if not isinstance(start_m, torch.Tensor) or start_m.ndim != 3 or start_m.shape[-1] != 3:
        shape = tuple(start_m.shape) if isinstance(start_m, torch.Tensor) else type(start_m)
        raise ShapeError(f"start_m must be a (B, n, 3) tensor of positions in metres, got {shape}")
    if not start_m.is_floating_point():
        raise ShapeError(f"start_m must be a floating-point tensor, got {start_m.dtype}")


def _check_slots(n_slots: int, slot_s: float) -> None:
    if isinstance(n_slots, bool) or not isinstance(n_slots, int) or n_slots < 1:
        raise ConfigError(f"n_slots must be an integer >= 1, got {n_slots!r}")
    if not slot_s > 0:
        raise ConfigError(f"slot_s must be > 0 s, got {slot_s}")


def _check_non_negative(name: str, value: float | torch.Tensor, unit: str) -> None:
    bad = bool((torch.as_tensor(value) < 0).any()) or bool(torch.as_tensor(value).isnan().any())
    if bad:
        raise ConfigError(f"{name} must be >= 0 {unit}, got {value}")


def _per_node(
    name: str, value: float | torch.Tensor, start_m: torch.Tensor, unit: str
) -> torch.Tensor:
    """A scalar or tensor broadcast to ``(B, n)`` on the device and in the dtype of ``start_m``."""
    tensor = torch.as_tensor(value, device=start_m.device, dtype=start_m.dtype)
    try:
        return torch.broadcast_to(tensor, start_m.shape[:2])
    except RuntimeError as error:
        raise ShapeError(
            f"{name} must be a float or broadcastable to (B, n) = {tuple(start_m.shape[:2])} "
            f"({unit}), got shape {tuple(tensor.shape)}"
        ) from error


def _check_bounds(bounds: Bounds | None, start_m: torch.Tensor) -> None:
    if bounds is None:
        return
    if len(bounds) != 4:
        raise ConfigError(f"bounds must be (x_min, x_max, y_min, y_max) in metres, got {bounds}")
    x_min, x_max, y_min, y_max = bounds
    if not (x_max > x_min and y_max > y_min):
        raise ConfigError(f"bounds must satisfy x_min < x_max and y_min < y_max, got {bounds}")
    x, y = start_m[..., 0], start_m[..., 1]
    if bool(((x < x_min) | (x > x_max) | (y < y_min) | (y > y_max)).any()):
        raise ConfigError(f"all start positions must lie inside bounds {bounds}")


# ----------------------------------------------------------------------------- path helpers


def _reflect_into(coordinate: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Fold a free coordinate into ``[low, high]`` by specular reflection at both walls."""
    width = high - low
    folded = torch.remainder(coordinate - low, 2.0 * width)
    return low + width - (folded - width).abs()


def _integrate_steps(
    start_m: torch.Tensor, steps_xy: torch.Tensor, bounds: Bounds | None
) -> torch.Tensor:
    """Positions from per-slot displacements.

    ``start_m: (B, n, 3)``, ``steps_xy: (B, S - 1, n, 2)`` (displacement from slot s to s + 1)
    -> ``(B, S, n, 3)`` with ``p_0 = start`` and ``p_s = start + sum_{k < s} step_k``; the height
    is kept. With ``bounds`` the free path is folded into the box (specular reflection).
    """
    zero = torch.zeros_like(steps_xy[:, :1])
    xy = start_m[:, None, :, :2] + torch.cat([zero, steps_xy], dim=1).cumsum(dim=1)
    if bounds is not None:
        x_min, x_max, y_min, y_max = bounds
        xy = torch.stack(
            [_reflect_into(xy[..., 0], x_min, x_max), _reflect_into(xy[..., 1], y_min, y_max)],
            dim=-1,
        )
    height = start_m[:, None, :, 2:].expand(-1, xy.shape[1], -1, -1)
    return torch.cat([xy, height], dim=-1)


def _ar1_filter(innovations: torch.Tensor, coefficient: float) -> torch.Tensor:
    """``x_s = a x_{s-1} + e_s`` with ``x_0 = e_0`` along the last axis, without a time loop.

    The recursion is the causal convolution ``x_s = sum_{k <= s} a^(s-k) e_k``; it is evaluated
    with an FFT of length >= 2S (zero padded, so the circular convolution equals the linear one).
    """
    n_steps = innovations.shape[-1]
    fft_length = 1 << (2 * n_steps - 1).bit_length()
    kernel = coefficient ** torch.arange(
        n_steps, device=innovations.device, dtype=innovations.dtype
    )
    spectrum = torch.fft.rfft(innovations, n=fft_length) * torch.fft.rfft(kernel, n=fft_length)
    return torch.fft.irfft(spectrum, n=fft_length)[..., :n_steps]


# ----------------------------------------------------------------------------- trajectories


def straight_flight(
    start_m: torch.Tensor,
    heading_rad: float | torch.Tensor,
    speed_m_s: float | torch.Tensor,
    n_slots: int,
    slot_s: float,
) -> torch.Tensor:
    """Straight, level flight at constant speed.

    Args:
        start_m: ``(B, n, 3)`` positions at slot 0.
        heading_rad: ``(B, n)``, ``(n,)`` or scalar; direction of flight from +x counter-clockwise.
        speed_m_s: scalar or broadcastable to ``(B, n)``; seed 000 §VI: 250 m/s.
        n_slots: ``S``, number of slots returned (slot 0 included); seed 000: 6000.
        slot_s: slot duration; seed 000: 0.02 s.

    Returns ``positions_m: (B, S, n, 3)``,
    ``p_s = start + s * slot_s * speed * (cos h, sin h, 0)`` (altitude constant, 10 km in seed 000).
    """
    _check_start(start_m)
    _check_slots(n_slots, slot_s)
    _check_non_negative("speed_m_s", speed_m_s, "m/s")
    heading = _per_node("heading_rad", heading_rad, start_m, "rad")
    speed = _per_node("speed_m_s", speed_m_s, start_m, "m/s")
    velocity = speed[..., None] * torch.stack([heading.cos(), heading.sin()], dim=-1)  # (B, n, 2)
    times = slot_s * torch.arange(n_slots, device=start_m.device, dtype=start_m.dtype)
    xy = start_m[:, None, :, :2] + times[None, :, None, None] * velocity[:, None]
    height = start_m[:, None, :, 2:].expand(-1, n_slots, -1, -1)
    return torch.cat([xy, height], dim=-1)


def smooth_random_trajectories(
    start_m: torch.Tensor,
    n_slots: int,
    slot_s: float,
    speed_m_s: float | torch.Tensor,
    generator: torch.Generator,
    *,
    turn_rate_std_deg_s: float = 5.0,
    heading_correlation_s: float = 10.0,
    initial_heading_rad: float | torch.Tensor | None = None,
    bounds: Bounds | None = None,
) -> torch.Tensor:
    """Smooth random paths at constant speed with an Ornstein-Uhlenbeck turn rate.

    Model (a Gauss-Markov / OU turn rate, the standard smooth-turn mobility model, e.g.
    Liang & Haas, INFOCOM 1999; exact discretisation of the OU process):

        omega_0 ~ N(0, sigma^2),
        omega_s = a omega_{s-1} + sigma sqrt(1 - a^2) z_s,   a = exp(-slot_s / tau),
        heading_s = heading_0 + slot_s * sum_{k < s} omega_k,
        p_{s+1} = p_s + speed * slot_s * (cos heading_s, sin heading_s, 0),

    with ``sigma`` = ``turn_rate_std_deg_s`` (stationary standard deviation of the turn rate) and
    ``tau`` = ``heading_correlation_s`` (correlation time of the turn rate). The paths curve
    gently like the terrestrial-user trajectories of seed 000 Fig. 3 (the paper does not state the
    model; the defaults 5 deg/s and 10 s are our choice: the heading wanders by about 40 degrees
    in 10 s).

    Computation: no loop over time. The AR(1) recursion is evaluated as a causal convolution with
    an FFT, heading and position as cumulative sums; everything is vectorised over ``(B, n)``.

    Args:
        start_m: ``(B, n, 3)`` positions at slot 0; height kept constant.
        n_slots: ``S``, slots returned (slot 0 included).
        slot_s: slot duration in seconds.
        speed_m_s: scalar or broadcastable to ``(B, n)``.
        generator: the source of randomness.
        initial_heading_rad: scalar or broadcastable to ``(B, n)``; default uniform in [-pi, pi).
        bounds: optional ``(x_min, x_max, y_min, y_max)``; paths reflect specularly at the walls.

    Returns ``positions_m: (B, S, n, 3)``.
    """
    _check_start(start_m)
    _check_slots(n_slots, slot_s)
    _check_non_negative("speed_m_s", speed_m_s, "m/s")
    _check_non_negative("turn_rate_std_deg_s", turn_rate_std_deg_s, "deg/s")
    if not heading_correlation_s > 0:
        raise ConfigError(f"heading_correlation_s must be > 0 s, got {heading_correlation_s}")
    _check_bounds(bounds, start_m)
    speed = _per_node("speed_m_s", speed_m_s, start_m, "m/s")
    batch, n_nodes = start_m.shape[:2]
    device, dtype = start_m.device, start_m.dtype

    if initial_heading_rad is None:
        uniform = torch.rand(batch, n_nodes, generator=generator, device=device, dtype=dtype)
        heading_0 = math.pi * (2.0 * uniform - 1.0)
    else:
        heading_0 = _per_node("initial_heading_rad", initial_heading_rad, start_m, "rad")

    n_moves = n_slots - 1
    if n_moves == 0:
        return start_m[:, None].clone()
    sigma = math.radians(turn_rate_std_deg_s)
    coefficient = math.exp(-slot_s / heading_correlation_s)
    normals = torch.randn(batch, n_nodes, n_moves, generator=generator, device=device, dtype=dtype)
    scale = torch.full(
        (n_moves,), sigma * math.sqrt(1.0 - coefficient**2), device=device, dtype=dtype
    )
    scale[0] = sigma  # omega_0 is drawn from the stationary distribution
    turn_rate = _ar1_filter(normals * scale, coefficient)  # (B, n, S-1), rad/s
    heading_change = slot_s * torch.cat(
        [torch.zeros_like(turn_rate[..., :1]), turn_rate[..., :-1]], dim=-1
    ).cumsum(dim=-1)
    heading = (heading_0[..., None] + heading_change).transpose(1, 2)  # (B, S-1, n)
    step_length = (speed * slot_s)[:, None, :, None]
    steps = step_length * torch.stack([heading.cos(), heading.sin()], dim=-1)
    return _integrate_steps(start_m, steps, bounds)


def random_walk(
    start_m: torch.Tensor,
    n_slots: int,
    slot_s: float,
    speed_m_s: float | torch.Tensor,
    generator: torch.Generator,
    *,
    bounds: Bounds | None = None,
) -> torch.Tensor:
    """Random walk: every slot each node moves ``speed * slot_s`` in a new uniform direction.

    ``p_{s+1} = p_s + speed * slot_s * (cos a_s, sin a_s, 0)``, ``a_s ~ U[0, 2 pi)`` i.i.d., height
    kept (seed 001 §IV: users walk at 1 m/s). The mean squared displacement after ``s`` steps is
    ``s (speed * slot_s)^2``. Loop-free (cumulative sum); optional specular reflection at
    ``bounds = (x_min, x_max, y_min, y_max)``.

    ``start_m: (B, n, 3)`` -> ``positions_m: (B, S, n, 3)`` with ``S = n_slots`` (slot 0 = start).
    """
    _check_start(start_m)
    _check_slots(n_slots, slot_s)
    _check_non_negative("speed_m_s", speed_m_s, "m/s")
    _check_bounds(bounds, start_m)
    speed = _per_node("speed_m_s", speed_m_s, start_m, "m/s")
    batch, n_nodes = start_m.shape[:2]
    angle = (2.0 * math.pi) * torch.rand(
        batch, n_slots - 1, n_nodes, generator=generator, device=start_m.device, dtype=start_m.dtype
    )
    step_length = (speed * slot_s)[:, None, :, None]
    steps = step_length * torch.stack([angle.cos(), angle.sin()], dim=-1)
    return _integrate_steps(start_m, steps, bounds)


# ----------------------------------------------------------------------------- arrivals


@dataclass(frozen=True)
class ArrivalTrace:
    """Output of :func:`poisson_arrivals`.

    Attributes:
        active: ``(B, S, P) bool``, population slot ``p`` occupied at the end of time slot ``s``
            (the ``psi`` metadata of seed 001 §III-E).
        arrivals: ``(B, S) long``, arrivals admitted during slot ``s``.
        departures: ``(B, S) long``, departures during slot ``s``.
        blocked: ``(B, S) long``, arrivals turned away during slot ``s`` because all ``P`` slots
            were occupied. Offered arrivals are ``arrivals + blocked``.
        slot_s: slot duration in seconds.
        admitted: ``(B, S, P) bool``, a new user took population slot ``p`` during slot ``s``
            (so a slot emptied and refilled within one time slot is told apart from a user who
            stays).
    """

    active: torch.Tensor
    arrivals: torch.Tensor
    departures: torch.Tensor
    blocked: torch.Tensor
    slot_s: float
    admitted: torch.Tensor

    @property
    def population(self) -> torch.Tensor:
        """``(B, S) long``, number of active users at the end of each slot."""
        return self.active.sum(dim=-1)


def slot_count(horizon_s: float, slot_s: float) -> int:
    """Slots of length ``slot_s`` that cover ``[0, horizon_s)``: ``ceil(horizon_s / slot_s)``,
    at least 1, with a relative tolerance of 1e-9 so that 1800 s / 0.1 s is 18000 slots, not
    18001 after rounding."""
    ratio = horizon_s / slot_s
    return max(1, math.ceil(ratio * (1.0 - 1e-9)))


def poisson_arrivals(
    batch: int,
    horizon_s: float,
    slot_s: float,
    arrival_rate_per_s: float,
    mean_holding_s: float,
    max_population: int,
    generator: torch.Generator,
    *,
    device: torch.device | str | None = None,
) -> ArrivalTrace:
    """Users arriving as a Poisson process, staying an exponential time, with a capped population.

    Seed 001 §IV (Fig. 4): arrivals at 1, 3 or 5 per minute per BS (``arrival_rate_per_s`` = 1/60,
    3/60, 5/60), exponential holding time with mean 3 min (``mean_holding_s`` = 180), at most
    ``K_max`` users per BS (``max_population``), 30 minutes (``horizon_s`` = 1800). This is an
    M/M/P/P loss system: an arrival that finds all ``P`` slots busy is blocked (counted, not
    queued). The system starts empty.

    Time is split into ``S = ceil(horizon_s / slot_s)`` slots. In slot ``s`` (time
    ``[s dt, (s+1) dt)``), all vectorised over the batch and the ``P`` population slots:

    1. users whose departure time ``t_a + H`` is ``<= (s+1) dt`` leave;
    2. ``A_s ~ Poisson(lambda dt)`` users arrive; they take the lowest free slot indices, the ones
       that find no free slot are blocked;
    3. each admitted user gets an arrival time ``t_a = (s + U) dt``, ``U ~ U[0, 1)``, and a holding
       time ``H ~ Exp(mean_holding_s)``; one that already leaves before ``(s+1) dt`` is counted
       as an arrival and a departure of slot ``s`` and never shows as active.

    ``active[:, s]`` is the state at the end of slot ``s``. Departures and arrivals are resolved at
    slot granularity (a slot freed in slot ``s`` is available to the arrivals of slot ``s``); with
    no cap the time-average population is exactly ``lambda * mean_holding_s`` (Little's law).
    The loop runs over the ``S`` time slots only.

    Returns an :class:`ArrivalTrace`.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be an integer >= 1, got {batch!r}")
    if not horizon_s > 0:
        raise ConfigError(f"horizon_s must be > 0 s, got {horizon_s}")
    if not slot_s > 0:
        raise ConfigError(f"slot_s must be > 0 s, got {slot_s}")
    _check_non_negative("arrival_rate_per_s", arrival_rate_per_s, "1/s")
    if not mean_holding_s > 0:
        raise ConfigError(f"mean_holding_s must be > 0 s, got {mean_holding_s}")
    if (
        isinstance(max_population, bool)
        or not isinstance(max_population, int)
        or max_population < 1
    ):
        raise ConfigError(f"max_population must be an integer >= 1, got {max_population!r}")

    device = torch.device(device) if device is not None else generator.device
    n_slots = slot_count(horizon_s, slot_s)
    # active and admitted_at (bool) plus four (B, S) long counters
    check_memory(batch * n_slots * (2 * max_population + 32), "poisson_arrivals")
    shape = (batch, max_population)
    active = torch.zeros(batch, n_slots, max_population, dtype=torch.bool, device=device)
    arrivals = torch.zeros(batch, n_slots, dtype=torch.long, device=device)
    departures = torch.zeros_like(arrivals)
    blocked = torch.zeros_like(arrivals)
    admitted_at = torch.zeros_like(active)

    occupied = torch.zeros(shape, dtype=torch.bool, device=device)
    departure_time = torch.zeros(shape, dtype=torch.float64, device=device)
    rate_per_slot = torch.full(
        (batch,), arrival_rate_per_s * slot_s, dtype=torch.float64, device=device
    )
    for slot in range(n_slots):
        slot_end = (slot + 1) * slot_s
        leaving = occupied & (departure_time <= slot_end)
        occupied = occupied & ~leaving

        offered = torch.poisson(rate_per_slot, generator=generator).long()  # (B,)
        free = ~occupied
        free_rank = free.long().cumsum(dim=-1)  # 1-based rank among free slots
        admitted = free & (free_rank <= offered[:, None])
        arrival_offset = torch.rand(shape, generator=generator, device=device, dtype=torch.float64)
        holding = torch.empty(shape, device=device, dtype=torch.float64).exponential_(
            1.0 / mean_holding_s, generator=generator
        )
        new_departure = (slot + arrival_offset) * slot_s + holding
        departure_time = torch.where(admitted, new_departure, departure_time)
        leaves_at_once = admitted & (new_departure <= slot_end)
        occupied = occupied | (admitted & ~leaves_at_once)

        n_admitted = admitted.sum(dim=-1)
        arrivals[:, slot] = n_admitted
        blocked[:, slot] = offered - n_admitted
        departures[:, slot] = leaving.sum(dim=-1) + leaves_at_once.sum(dim=-1)
        active[:, slot] = occupied
        admitted_at[:, slot] = admitted & ~leaves_at_once
    return ArrivalTrace(active, arrivals, departures, blocked, slot_s, admitted_at)


def poisson_population(
    batch: int,
    n_max: int,
    mean: float,
    generator: torch.Generator,
    *,
    extra_shape: tuple[int, ...] = (),
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Number of active users ``min(Poisson(mean), n_max)``: ``(B, *extra_shape) long``.

    Seed 001 §III-E/§IV: during training the number of active users of each BS is drawn per
    episode from a Poisson distribution with mean ``0.5 K_max``; counts above ``K_max`` are clipped
    to ``K_max`` (the paper does not say how; clipping is our choice). Use ``extra_shape=(N,)`` for
    one count per BS.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be an integer >= 1, got {batch!r}")
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 0:
        raise ConfigError(f"n_max must be an integer >= 0, got {n_max!r}")
    _check_non_negative("mean", mean, "users")
    device = torch.device(device) if device is not None else generator.device
    rates = torch.full((batch, *extra_shape), float(mean), dtype=torch.float64, device=device)
    return torch.poisson(rates, generator=generator).long().clamp(max=n_max)


def active_mask(counts: torch.Tensor, n_max: int) -> torch.Tensor:
    """Slots ``0 .. count-1`` active: ``counts: (...) long`` -> ``(..., n_max) bool``.

    The ``psi`` metadata of seed 001 §III-E for a population drawn by :func:`poisson_population`.
    """
    if isinstance(n_max, bool) or not isinstance(n_max, int) or n_max < 0:
        raise ConfigError(f"n_max must be an integer >= 0, got {n_max!r}")
    if bool((counts < 0).any()) or bool((counts > n_max).any()):
        raise ConfigError(f"counts must lie in [0, n_max={n_max}]")
    return torch.arange(n_max, device=counts.device) < counts.unsqueeze(-1)
