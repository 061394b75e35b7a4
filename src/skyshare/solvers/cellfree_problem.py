"""The proportional-fair beamforming problem of seed 003 (PFBWD, §II-B) that its solvers take.

Cell-free coherent joint transmission: T base stations (the HAPS and the MBSs, each with its own
antenna count M_t) jointly serve K single-antenna UEs; BS t sends UE k's symbol with its own
beamformer ``w_{t,k}``. With noise-normalised channels (``h / sigma``, so the noise power is 1):

    maximize_w  sum_k ln(SE_k),   SE_k = log2(1 + SINR_k)
    s.t.        SINR_k >= gamma_min                                     for all k
                sum_k ||w_{t,k}||^2 <= P_t                              for all t

    SINR_k = |sum_t h_{t,k}^H w_{t,k}|^2 / (sum_{j != k} |sum_t h_{t,k}^H w_{t,j}|^2 + 1)

(``docs/scenarios/vhetnet.md``; the seed text lost its equations). :class:`CellFreeProblem` holds
the tensors the solvers read and nothing of the scenario's process: the scenario builds it with
``VhetnetState.problem()``; a test can build one by hand. Solvers never import a scenario.

Beamformers use the kernel layout ``W: (B, T, K, M_max)`` complex in sqrt(W), zero outside each
transmitter's antennas (``antenna_mask``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError

__all__ = ["CellFreeEvaluation", "CellFreeProblem", "CellFreeResult"]


@dataclass(frozen=True)
class CellFreeEvaluation:
    """Rates and constraints of beamformers W on a :class:`CellFreeProblem`.

    Attributes:
        sinr: (B, K) SINR. se: (B, K) ``log2(1 + SINR)`` bit/s/Hz.
        pf_objective: (B,) ``sum_k ln(SE_k)`` (SE floored at 1e-9, as
            :func:`skyshare.metrics.proportional_fair_utility`).
        power: (B, T) ``sum_k ||w_{t,k}||^2`` in W.
        interference: (B, K) ``sum_{j != k} |sum_t h_{t,k}^H w_{t,j}|^2`` (noise = 1).
        gamma_min: the problem's minimum SINR; p_max: (T,) its budgets.
    """

    sinr: torch.Tensor
    se: torch.Tensor
    pf_objective: torch.Tensor
    power: torch.Tensor
    interference: torch.Tensor
    gamma_min: float
    p_max: torch.Tensor

    def meets_gamma_min(self, rtol: float = 1e-4) -> torch.Tensor:
        """(B, K) bool: ``SINR_k >= (1 - rtol) gamma_min``."""
        return self.sinr >= (1.0 - rtol) * self.gamma_min

    def within_power(self, rtol: float = 1e-4) -> torch.Tensor:
        """(B, T) bool: ``sum_k ||w_{t,k}||^2 <= (1 + rtol) P_t``."""
        return self.power <= (1.0 + rtol) * self.p_max

    def feasible(self, rtol: float = 1e-4) -> torch.Tensor:
        """(B,) bool: every budget and every minimum SINR met (relative tolerance ``rtol``)."""
        return self.meets_gamma_min(rtol).all(-1) & self.within_power(rtol).all(-1)


@dataclass(frozen=True)
class CellFreeProblem:
    """B instances of the PFBWD problem (module docstring), noise-normalised.

    Attributes:
        H: (B, K, T, M_max) complex, ``H[b, k, t, :M_t] = h_{t,k} / sigma``, zero beyond
            transmitter t's ``M_t`` antennas (the layout of ``VhetnetState.padded()``).
        antenna_mask: (T, M_max) bool, True where transmitter t has antenna m.
        p_max: (T,) float > 0, per-transmitter budget ``P_t`` in W.
        gamma_min: minimum SINR (linear, >= 0; 0 = no minimum rate).
    """

    H: torch.Tensor
    antenna_mask: torch.Tensor
    p_max: torch.Tensor
    gamma_min: float

    def __post_init__(self) -> None:
        H, mask, p_max = self.H, self.antenna_mask, self.p_max
        if not torch.is_tensor(H) or not H.is_complex() or H.ndim != 4:
            raise ShapeError(f"H must be a complex (B, K, T, M_max) tensor, got {_describe(H)}")
        B, K, T, M = H.shape
        if min(B, K, T, M) < 1:
            raise ShapeError(f"H must have B, K, T, M_max >= 1, got {tuple(H.shape)}")
        if not torch.is_tensor(mask) or mask.dtype != torch.bool or tuple(mask.shape) != (T, M):
            raise ShapeError(f"antenna_mask must be a bool (T, M_max) = {(T, M)} tensor")
        if not bool(mask.any(-1).all()):
            raise ShapeError("antenna_mask: every transmitter needs at least one antenna")
        if not torch.is_tensor(p_max) or tuple(p_max.shape) != (T,):
            raise ShapeError(f"p_max must be a (T,) = ({T},) tensor of budgets in W")
        if not bool(torch.isfinite(p_max).all()) or not bool((p_max > 0).all()):
            raise ConfigError(f"p_max: every budget must be finite and > 0 W, got {p_max.tolist()}")
        if not bool(torch.isfinite(torch.view_as_real(H)).all()):
            raise ConfigError("H: channels must be finite (no NaN or Inf)")
        gamma = self.gamma_min
        is_number = isinstance(gamma, int | float) and not isinstance(gamma, bool)
        if not is_number or not math.isfinite(gamma):
            raise ConfigError(f"gamma_min must be a finite number >= 0, got {gamma!r}")
        if gamma < 0:
            raise ConfigError(f"gamma_min must be >= 0 (linear SINR), got {gamma}")

    # ----------------------------------------------------------------------------------------
    # Sizes and views
    # ----------------------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B, K, T, M_max)."""
        B, K, T, M = self.H.shape
        return B, K, T, M

    @property
    def antennas(self) -> list[int]:
        """M_t of every transmitter (length T)."""
        return [int(m) for m in self.antenna_mask.sum(-1).tolist()]

    def local_channel(self, t: int) -> torch.Tensor:
        """Transmitter t's own channels ``h_{t,k}``: (B, K, M_t) complex (what BS t knows)."""
        return self.H[:, :, t, : self.antennas[t]]

    def subset(self, index: torch.Tensor | slice) -> CellFreeProblem:
        """The instances selected on the batch axis."""
        return CellFreeProblem(self.H[index], self.antenna_mask, self.p_max, self.gamma_min)

    def to(self, dtype: torch.dtype) -> CellFreeProblem:
        """The same problem in another complex precision (complex64 or complex128)."""
        real = torch.float64 if dtype == torch.complex128 else torch.float32
        return CellFreeProblem(
            self.H.to(dtype), self.antenna_mask, self.p_max.to(real), self.gamma_min
        )

    def zeros(self) -> torch.Tensor:
        """All-zero beamformers in the kernel layout: (B, T, K, M_max) complex."""
        B, K, T, M = self.shape
        return self.H.new_zeros(B, T, K, M)

    # ----------------------------------------------------------------------------------------
    # Evaluation
    # ----------------------------------------------------------------------------------------

    def check_beamformers(self, W: torch.Tensor) -> None:
        """Raise :class:`ShapeError` unless W is (B, T, K, M_max) complex and finite."""
        B, K, T, M = self.shape
        if not torch.is_tensor(W) or not W.is_complex() or tuple(W.shape) != (B, T, K, M):
            raise ShapeError(
                f"W must be a complex (B, T, K, M_max) = {(B, T, K, M)} tensor, got {_describe(W)}"
            )
        if not bool(torch.isfinite(torch.view_as_real(W)).all()):
            raise ShapeError("W: beamformers must be finite (no NaN or Inf)")

    def power(self, W: torch.Tensor) -> torch.Tensor:
        """Per-transmitter power ``sum_k ||w_{t,k}||^2`` inside the antenna mask: (B, T)."""
        inside = W * self.antenna_mask[None, :, None, :]
        return (inside.real.square() + inside.imag.square()).sum((-2, -1))

    def evaluate(self, W: torch.Tensor) -> CellFreeEvaluation:
        """SINR, SE, PF objective, power and interference of W: (B, T, K, M_max) complex."""
        self.check_beamformers(W)
        W_inside = W.to(self.H.dtype) * self.antenna_mask[None, :, None, :]
        result = metrics.sinr(metrics.effective_gains(self.H, W_inside), noise=1.0)
        return CellFreeEvaluation(
            sinr=result.sinr,
            se=result.rate,
            pf_objective=metrics.proportional_fair_utility(result.rate),
            power=self.power(W_inside),
            interference=result.interference,
            gamma_min=float(self.gamma_min),
            p_max=self.p_max,
        )


@dataclass
class CellFreeResult:
    """What every seed 003 solver returns (batched over the B instances).

    Attributes:
        W: (B, T, K, M_max) complex beamformers in sqrt(W), zero outside the antenna mask.
        evaluation: :class:`CellFreeEvaluation` of W on the problem (SE, PF objective, power).
        objective_trace: (B, I) float, the PF objective ``sum_k ln SE_k`` after each (outer)
            iteration, NaN after an instance stopped.
        iterations: (B,) long, (outer) iterations run per instance.
        converged: (B,) bool, the stopping rule was met (not the iteration cap).
        infeasible: (B,) bool, no beamformer meeting ``SINR_k >= gamma_min`` was found
            (W is then the solver's best effort and the flag, not the objective, is the answer).
        wall_time_s: wall-clock time of the whole call.
        solver: the solver's name (e.g. ``"sca-clarabel"``, ``"pfbwd"``, ``"pf-wmmse"``).
        traces: solver-specific traces, e.g. ``{"primal_residual": (B, I_inner)}``.
        info: solver-specific numbers and strings (solver statuses, iteration counts).
    """

    W: torch.Tensor
    evaluation: CellFreeEvaluation
    objective_trace: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    infeasible: torch.Tensor
    wall_time_s: float
    solver: str
    traces: dict[str, torch.Tensor]
    info: dict[str, object]

    @property
    def pf_objective(self) -> torch.Tensor:
        """(B,) ``sum_k ln SE_k`` of the returned beamformers."""
        return self.evaluation.pf_objective

    @property
    def message(self) -> str:
        """One line for a user: feasible/infeasible and converged counts."""
        B = int(self.W.shape[0])
        bad = int(self.infeasible.sum())
        done = int(self.converged.sum())
        text = f"{self.solver}: {done}/{B} instances converged"
        if bad:
            text += (
                f"; {bad}/{B} infeasible: no beamformer meets SINR >= gamma_min = "
                f"{self.evaluation.gamma_min:g} (lower gamma_min or raise the power budgets)"
            )
        return text


def _describe(x: object) -> str:
    if torch.is_tensor(x):
        return f"{tuple(x.shape)} {x.dtype}"
    return type(x).__name__
