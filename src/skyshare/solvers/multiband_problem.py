"""The per-block power-allocation problem of seed 004 (eqs. (6), (7), (14)) that its solvers take.

One block of the multicell multiband downlink with per-cell zero forcing, for B independent
realizations, noise-normalised (sigma^2 = 1 in the scenario). User index k = b * U + u is user u
of cell b (C cells, U users per cell, K = C * U), F frequency channels:

    maximize_p  sum_{b,u,f} log2(1 + p_{b,u}[f] / c_{b,u}[f](p))                       (6a)
    s.t.        sum_f p_{b,u}[f] <= P_b(t) / U,   p >= 0                               (14)

with the environmental function of eq. (7),

    c_{b,u}[f] = (sum_{b~ != b} sum_{u~} p_{b~,u~}[f] |w_{b~,u~}^H h_{b~,(b,u)}[f]|^2 + sigma^2)
                 / |w_{b,u}^H h_{b,(b,u)}[f]|^2.

:class:`MultibandProblem` holds the tensors that the solvers of
:mod:`skyshare.solvers.flwf` and :mod:`skyshare.solvers.waterfilling` read, and nothing of the
scenario's process (no generator, no budget roll-over): the scenario builds it from a block with
``MultibandScenario.problem(state)`` and an environment with ``MultibandEnv.problem()``; a test
can build one by hand. The solvers never import a scenario or an environment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skyshare import metrics
from skyshare.errors import ConfigError, ShapeError

__all__ = ["MultibandProblem"]

_LN2 = math.log(2.0)


@dataclass(frozen=True)
class MultibandProblem:
    """One block of B instances of the seed 004 power-allocation problem (module docstring).

    Attributes:
        gain_power: (B, K, K, F) float, ``gain_power[b, k, j, f] = |w_j^H h_{cell(j),k}[f]|^2``,
            the power at user k of stream j's unit-power ZF beam (``|A|^2`` of
            :func:`skyshare.metrics.effective_gains`). Its diagonal is the direct gain; the
            terms with j in another cell than k are the cross gains of eq. (7).
        direct_gain: (B, K, F) float > 0, ``|w_{b,u}^H h_{b,(b,u)}[f]|^2`` (the diagonal of
            ``gain_power``; SSWF's floors are ``noise / direct_gain``, the inverse gains).
        user_budget: (B, K) float >= 0, each user's share ``P_b(t) / U`` of its BS's block
            budget (eqs. (5), (14)).
        noise: sigma^2, the noise power (1 in the normalised scenario).
        n_cells: C. users_per_cell: U (K = C U).
        H: (B, K, C, F, M) complex, ``H[:, b*U+u, b~, f] = h_{b~,(b,u)}[f]`` (eq. (2)), and
        W: (B, C, K, F, M) complex, the unit-norm per-cell ZF beams (eqs. (3)-(4)): used only by
            :meth:`rates`, the package's SINR kernel on the block (what the environment pays);
            ``None`` in a hand-built problem, where :meth:`rates` falls back to
            ``log2(1 + p / c)`` (equal when ZF nulls the intra-cell term).
    """

    gain_power: torch.Tensor
    direct_gain: torch.Tensor
    user_budget: torch.Tensor
    noise: float
    n_cells: int
    users_per_cell: int
    H: torch.Tensor | None = None
    W: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.direct_gain.ndim != 3:
            raise ShapeError(f"direct_gain must be (B, K, F), got {tuple(self.direct_gain.shape)}")
        B, K, F = self.direct_gain.shape
        if self.n_cells < 1 or self.users_per_cell < 1 or self.n_cells * self.users_per_cell != K:
            raise ShapeError(
                f"n_cells * users_per_cell must equal K = {K} (the users of direct_gain), got "
                f"{self.n_cells} * {self.users_per_cell}"
            )
        if tuple(self.gain_power.shape) != (B, K, K, F):
            raise ShapeError(
                f"gain_power must be (B, K, K, F) = {(B, K, K, F)}, got "
                f"{tuple(self.gain_power.shape)}"
            )
        if tuple(self.user_budget.shape) != (B, K):
            raise ShapeError(
                f"user_budget must be (B, K) = {(B, K)}, got {tuple(self.user_budget.shape)}"
            )
        if (self.H is None) != (self.W is None):
            raise ShapeError("H and W go together: give both (exact SINR kernel) or neither")
        if self.H is not None and (
            self.H.shape[:4] != (B, K, self.n_cells, F)
            or self.W.shape[:4] != (B, self.n_cells, K, F)
        ):
            raise ShapeError(
                f"H must be (B, K, C, F, M) and W (B, C, K, F, M) with (B, K, C, F) = "
                f"{(B, K, self.n_cells, F)}, got {tuple(self.H.shape)} and {tuple(self.W.shape)}"
            )

    # ---------------------------------------------------------------------------------------
    # Sizes
    # ---------------------------------------------------------------------------------------

    @property
    def batch_size(self) -> int:
        """B."""
        return self.direct_gain.shape[0]

    @property
    def n_users(self) -> int:
        """K = C U."""
        return self.direct_gain.shape[1]

    @property
    def n_freq(self) -> int:
        """F = N_f."""
        return self.direct_gain.shape[2]

    @property
    def dtype(self) -> torch.dtype:
        return self.direct_gain.dtype

    @property
    def device(self) -> torch.device:
        return self.direct_gain.device

    @property
    def user_cell(self) -> torch.Tensor:
        """(K,) long, the cell of user k (``k // U``)."""
        cells = torch.arange(self.n_cells, device=self.device)
        return cells.repeat_interleave(self.users_per_cell)

    # ---------------------------------------------------------------------------------------
    # Checks and evaluation
    # ---------------------------------------------------------------------------------------

    def check_power(self, power: torch.Tensor, name: str = "power") -> torch.Tensor:
        """``power`` as a (B, K, F) tensor of the problem's dtype and device, or ShapeError /
        ConfigError (not a real tensor, wrong shape, NaN, inf or negative entries)."""
        expected = (self.batch_size, self.n_users, self.n_freq)
        if not isinstance(power, torch.Tensor) or power.is_complex():
            raise ShapeError(f"{name} must be a real torch.Tensor of shape (B, C*U, F)")
        if tuple(power.shape) != expected:
            raise ShapeError(f"{name} must be (B, C*U, F) = {expected}, got {tuple(power.shape)}")
        if not bool(torch.isfinite(power).all()) or bool((power < 0).any()):
            raise ConfigError(f"{name} must be finite and >= 0 on every user and frequency channel")
        return power.to(device=self.device, dtype=self.dtype)

    def interference_plus_noise_ratio(self, power: torch.Tensor) -> torch.Tensor:
        """The environmental function ``c_{b,u}[f]`` of eq. (7): (B, K, F) -> (B, K, F).

        Other-cell interference under ``power`` plus noise over the direct ZF gain, so that
        user (b, u)'s rate on f is ``log2(1 + p_{b,u}[f] / c_{b,u}[f])``. Unchecked input.
        """
        cell = self.user_cell
        other_cell = cell[:, None] != cell[None, :]  # (K, J)
        cross = self.gain_power * other_cell[None, :, :, None]
        ici = torch.einsum("bkjf,bjf->bkf", cross, power)
        return (ici + self.noise) / self.direct_gain

    def rates(self, power: torch.Tensor) -> torch.Tensor:
        """Per-user per-channel rate ``log2(1 + SINR_{b,u}[f])`` of eq. (1), bit/s/Hz:
        (B, K, F) -> (B, K, F). Unchecked input.

        With the block's channels (``H``, ``W``): the package's SINR kernel
        (:func:`skyshare.metrics.effective_gains` + :func:`skyshare.metrics.sinr`) with the ZF
        beams scaled by ``sqrt(p)``, the intra-cell term kept (~0 by ZF), exactly what the
        environment pays. Without: ``log2(1 + p / c(p))`` with c of eq. (7) (as FLWF does).
        """
        if self.H is None:
            return torch.log1p(power / self.interference_plus_noise_ratio(power)) / _LN2
        W = self.W * power.sqrt().to(self.W.dtype)[:, None, :, :, None]
        return metrics.sinr(metrics.effective_gains(self.H, W), noise=self.noise).rate

    def cell_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over each cell's users and channels: (B, K, F) -> (B, C) (per-BS power, or
        the capacity of each cell in bit/s/Hz when ``x`` holds rates)."""
        if x.ndim != 3 or tuple(x.shape[1:]) != (self.n_users, self.n_freq):
            raise ShapeError(
                f"expected (B, C*U={self.n_users}, F={self.n_freq}), got {tuple(x.shape)}"
            )
        U, F = self.users_per_cell, self.n_freq
        return x.reshape(x.shape[0], self.n_cells, U * F).sum(-1)

    def subset(self, index: torch.Tensor | slice | list[int]) -> MultibandProblem:
        """The instances ``index`` of the batch (e.g. ``[b] * S``: realization b repeated)."""

        def pick(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[index]

        return MultibandProblem(
            gain_power=self.gain_power[index],
            direct_gain=self.direct_gain[index],
            user_budget=self.user_budget[index],
            noise=self.noise,
            n_cells=self.n_cells,
            users_per_cell=self.users_per_cell,
            H=pick(self.H),
            W=pick(self.W),
        )
