"""Multicell multi-band multiuser MIMO with per-cell zero forcing, seed 004 §II and §V.

C cells (the paper's B; ``n_cells`` here, since B is the batch axis), each with a BS of M
antennas serving U single-antenna users on N_f frequency channels that every cell may use.
Downlink signal of user u in cell b on channel f (eq. (1)):

    y_{b,u} = sqrt(p_{b,u}) w_{b,u}^H h_{b,(b,u)} s_{b,u}                     desired
            + sum_{u~ != u} sqrt(p_{b,u~}) w_{b,u~}^H h_{b,(b,u)} s_{b,u~}        intra-cell
            + sum_{b~ != b} sum_{u~} sqrt(p_{b~,u~}) w_{b~,u~}^H h_{b~,(b,u)} s_{b~,u~}   ICI
            + eta_{b,u},                                 eta ~ CN(0, sigma^2), all on channel f

with (1/M) E||h_{b~,(b,u)}[f]||^2 = a_{b~,b} (eq. (2)) and unit-norm per-cell ZF beamformers
(eqs. (3)-(4)), which null the intra-cell term whenever U <= M.

Normalisation (the seed gives only ratios): noise sigma^2 = 1, and the average SNR "per slot
per user per frequency channel" (20 dB, §V) is the SNR of unit transmit power per user per
channel, so a_{b,b} = SNR and a_{b~,b} = a_{b,b} / SIR (eq. (23); SIR = 0 dB in Figs. 5, 6, 8).
Powers are therefore in units of that reference power. Channels h ~ CN(0, a I_M) are drawn
independently per block (quasi-static block fading, §II-C), one block per step.

Power over time (§II-C, eq. (5)): BS b holds a total budget P_bar for the T blocks, and in block
t (1-based, t = 1..T) may spend

    P_b(t) = (P_bar - sum_{t' < t} sum_{f,u} p_{b,u}[t', f]) / (T - t + 1),

shared equally by its U users (eq. (14)). The default P_bar = T * U * N_f (choice) is unit power
per user per channel per block on average, the power at which the stated SNR holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from pydantic import Field, model_validator

from skyshare import metrics
from skyshare.beamforming import per_cell_zero_forcing
from skyshare.channels.ofdm import multiband_average_gains, multiband_channels
from skyshare.config import StrictModel
from skyshare.errors import ConfigError, ShapeError
from skyshare.scenarios.base import LinkBudget, Scenario
from skyshare.solvers.multiband_problem import MultibandProblem
from skyshare.units import linear_to_db

# Relative slack allowed when checking a block's spending against P_b(t) (float rounding).
_BUDGET_TOLERANCE = 1e-4


class MultibandConfig(StrictModel):
    """Seed 004 parameters; defaults are the paper's (§V, Fig. 5 at (M, U) = (32, 16)) unless
    the description says "choice". Powers are normalised (noise 1, unit power per user per
    channel gives the average SNR)."""

    seed: int = Field(0, ge=0, description="random seed of the channel blocks")
    n_cells: int = Field(3, ge=1, le=64, description="C (B in the paper), cells/BSs (§V: 3)")
    n_antennas: int = Field(32, ge=1, le=1024, description="M, BS antennas (Fig. 5: 8, 16, 32)")
    users_per_cell: int = Field(
        16, ge=1, le=1024, description="U, users per cell, U <= M (Fig. 5: 4, 8, 16)"
    )
    n_freq: int = Field(6, ge=1, le=4096, description="N_f, shared frequency channels (Fig. 6)")
    n_blocks: int = Field(10, ge=1, le=100_000, description="T, blocks sharing P_bar (Fig. 8)")
    snr_db: float = Field(
        20.0, ge=-50, le=80, description="average SNR per slot per user per frequency channel"
    )
    sir_db: float = Field(0.0, ge=-50, le=80, description="channel SIR a_bb / a_b~b, eq. (23)")
    total_power_budget: float | None = Field(
        None,
        gt=0,
        description="P_bar per BS for the T blocks in normalised power units "
        "(choice: None means T * U * N_f, unit power per user per channel per block)",
    )

    @model_validator(mode="after")
    def _check_zero_forcing(self) -> MultibandConfig:
        if self.users_per_cell > self.n_antennas:
            raise ValueError(
                f"users_per_cell (U = {self.users_per_cell}) must be <= n_antennas "
                f"(M = {self.n_antennas}): per-cell zero forcing needs M >= U (seed 004 §II-B)"
            )
        return self

    @property
    def n_users(self) -> int:
        """C * U, all users of all cells."""
        return self.n_cells * self.users_per_cell

    @property
    def power_budget_total(self) -> float:
        """P_bar, the per-BS budget for the T blocks (the default rule when unset)."""
        if self.total_power_budget is not None:
            return float(self.total_power_budget)
        return float(self.n_blocks * self.users_per_cell * self.n_freq)


@dataclass
class MultibandState:
    """One block (paper time t = ``t + 1``) for all B realizations, noise-normalised.

    User index k = b * U + u is user u of cell b; C = n_cells, F = N_f.

    Attributes:
        t: block index, 0-based (0 after reset, T - 1 in the last block).
        H: (B, C*U, C, F, M) complex, ``H[:, b*U+u, b~, f] = h_{b~,(b,u)}[f]`` (eq. (2)).
        gains: (C, C) float, average gains ``a[b~, b]`` (transmitter cell, receiver cell).
        W: (B, C, C*U, F, M) complex, unit-norm per-cell ZF beamformers (eqs. (3)-(4)), zero
            outside the serving cell (the SINR kernel's layout).
        gain_power: (B, C*U, C*U, F) float, ``|w_j^H h_{cell(j),(k)}|^2``: power at user k of
            the unit-power beam of stream j, all pairs (``|A|^2`` of metrics.effective_gains).
            The diagonal is the direct gain, same-cell off-diagonal terms are ~0 (ZF), the
            other-cell terms are the cross gains of eq. (7).
        direct_gain: (B, C*U, F) float, ``|w_{b,u}^H h_{b,(b,u)}|^2`` (diagonal of gain_power).
        spent: (B, C) float, power each BS spent in blocks 0..t-1.
        budget: (B, C) float, ``P_b(t)`` of eq. (5), what each BS may spend in this block.
    """

    t: int
    H: torch.Tensor
    gains: torch.Tensor
    W: torch.Tensor
    gain_power: torch.Tensor
    direct_gain: torch.Tensor
    spent: torch.Tensor
    budget: torch.Tensor


class MultibandScenario(Scenario[MultibandConfig]):
    """Seed 004's multicell multiband MIMO downlink as a batched block-fading process.

    ``step(power)`` charges the power a BS used in the block that ends against its budget
    (eq. (5)) and draws the next independent block.

    Args:
        config: :class:`MultibandConfig` (``paper`` preset when omitted).
        batch_size: B independent realizations.
        device, dtype: where and in which precision tensors live.
    """

    name = "multiband"
    title = "Multicell multiband MIMO with per-cell ZF (seed 004)"
    source = "Wong, Liu, Cun, Zhang, Zhao, Zheng, IEEE Access 9, 2021 (seed 004), §II and §V"
    Config = MultibandConfig

    def __init__(self, config: MultibandConfig | None = None, **kwargs) -> None:
        super().__init__(config, **kwargs)
        cfg = self.config
        # The seed gives no physical noise level: everything is normalised to sigma^2 = 1.
        self.noise_w = 1.0
        self.power_budget_total = cfg.power_budget_total
        self.gains = multiband_average_gains(
            cfg.n_cells, cfg.snr_db, cfg.sir_db, device=self.device, dtype=self.dtype
        )  # (C, C)
        self.user_cell = torch.arange(cfg.n_cells, device=self.device).repeat_interleave(
            cfg.users_per_cell
        )  # (C*U,) cell of user k
        self.state: MultibandState | None = None

    # ----------------------------------------------------------------------------------------
    # Blocks
    # ----------------------------------------------------------------------------------------

    def memory_estimate(self) -> float:
        """The channels H (B x K x C x F x M) and the ZF beams W (B x C x K x F x M) complex,
        K = C U, about four such tensors alive with temporaries."""
        cfg = self.config
        K = cfg.n_cells * cfg.users_per_cell
        return (
            4
            * self.batch_size
            * K
            * cfg.n_cells
            * cfg.n_freq
            * cfg.n_antennas
            * (self._complex_bytes)
        )

    def reset(self, seed: int | None = None) -> MultibandState:
        """Draw the first block's channels; return block 0 (paper t = 1), nothing spent."""
        self._seed(seed)
        self.t = 0
        spent = torch.zeros(
            self.batch_size, self.config.n_cells, device=self.device, dtype=self.dtype
        )
        self.state = self._block(spent)
        return self.state

    def step(self, power: torch.Tensor | None = None) -> MultibandState:
        """Close the current block and draw the next, independent one (§II-C block fading).

        Args:
            power: (B, C*U, F) float >= 0, the allocation used in the block that ends. Its sum
                per BS is charged to the budget; it must not exceed ``P_b(t)`` (eq. (6b)).
                None charges the full ``P_b(t)`` (a BS that spends its allowance every block,
                so ``P_b(t) = P_bar / T`` throughout).

        Returns:
            The state of block ``t + 1``.
        """
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        cfg = self.config
        if self.t + 1 >= cfg.n_blocks:
            raise ConfigError(
                f"block {self.t + 1} is past the horizon n_blocks={cfg.n_blocks} "
                "(the power budget covers T blocks); raise n_blocks or reset()"
            )
        if power is None:
            used = self.state.budget
        else:
            used = self.bs_power(self._check_power(power, self.state))
            limit = self.state.budget * (1 + _BUDGET_TOLERANCE) + _BUDGET_TOLERANCE
            if bool((used > limit).any()):
                worst = int((used - self.state.budget).flatten().argmax())
                b, c = divmod(worst, cfg.n_cells)
                raise ConfigError(
                    f"power exceeds the block budget P_b(t) of eq. (5)/(6b): realization {b}, "
                    f"BS {c} spent {float(used[b, c]):.6g} > {float(self.state.budget[b, c]):.6g}"
                )
        self.t += 1
        self.state = self._block(self.state.spent + used)
        return self.state

    def _block(self, spent: torch.Tensor) -> MultibandState:
        """A new independent block: channels, ZF beams, effective gains and P_b(t)."""
        cfg = self.config
        H = multiband_channels(
            self.gains,
            cfg.users_per_cell,
            cfg.n_freq,
            cfg.n_antennas,
            self.generator,
            self.batch_size,
            device=self.device,
            dtype=self.cdtype,
        )
        W = per_cell_zero_forcing(H, cfg.users_per_cell)
        A = metrics.effective_gains(H, W)  # (B, K, K, F)
        gain_power = A.real.square() + A.imag.square()
        direct = torch.diagonal(gain_power, dim1=1, dim2=2).transpose(1, 2)  # (B, K, F)
        return MultibandState(
            t=self.t,
            H=H,
            gains=self.gains,
            W=W,
            gain_power=gain_power,
            direct_gain=direct,
            spent=spent,
            budget=self.power_budget(spent, self.t + 1),
        )

    # ----------------------------------------------------------------------------------------
    # Helpers for the algorithms (batched)
    # ----------------------------------------------------------------------------------------

    def power_budget(self, spent_so_far: torch.Tensor, t: int) -> torch.Tensor:
        """Per-block power budget of eq. (5), ``P_b(t) = (P_bar - spent) / (T - t + 1)``.

        Args:
            spent_so_far: (B, C) float, ``sum_{t'<t} sum_{f,u} p_{b,u}[t', f]`` per BS.
            t: block index **1-based as in the paper**, ``1 <= t <= T`` (``state.t + 1``).

        Returns:
            (B, C) float, clamped at 0 if a BS has overspent.
        """
        T = self.config.n_blocks
        if isinstance(t, bool) or int(t) != t or not 1 <= t <= T:
            raise ConfigError(
                f"t is the 1-based block index of eq. (5): need 1 <= t <= {T}, got {t}"
            )
        if spent_so_far.ndim != 2 or spent_so_far.shape[1] != self.config.n_cells:
            raise ShapeError(
                f"spent_so_far must be (B, C={self.config.n_cells}), got "
                f"{tuple(spent_so_far.shape)}"
            )
        remaining = (self.power_budget_total - spent_so_far).clamp_min(0.0)
        return remaining / (T - int(t) + 1)

    def user_power_budget(self, budget: torch.Tensor) -> torch.Tensor:
        """Each user's share ``P_b(t) / U`` of its BS's budget (eq. (14)): (B, C) -> (B, C*U)."""
        if budget.ndim != 2 or budget.shape[1] != self.config.n_cells:
            raise ShapeError(
                f"budget must be (B, C={self.config.n_cells}), got {tuple(budget.shape)}"
            )
        U = self.config.users_per_cell
        return (budget / U).repeat_interleave(U, dim=1)

    def equal_power(self, state: MultibandState) -> torch.Tensor:
        """Reference allocation ``p_{b,u}[f] = P_b(t) / (U N_f)``: (B, C*U, F) float."""
        per_user = self.user_power_budget(state.budget)  # (B, K)
        return (per_user / self.config.n_freq)[..., None].expand(-1, -1, self.config.n_freq)

    def bs_power(self, power: torch.Tensor) -> torch.Tensor:
        """Total power of each BS, ``sum_{u,f} p_{b,u}[f]``: (B, C*U, F) -> (B, C)."""
        cfg = self.config
        return power.reshape(power.shape[0], cfg.n_cells, cfg.users_per_cell * cfg.n_freq).sum(-1)

    def problem(
        self, state: MultibandState | None = None, *, budget: torch.Tensor | None = None
    ) -> MultibandProblem:
        """The block's power-allocation problem, what the seed 004 solvers take.

        Args:
            state: the block (the current one when omitted).
            budget: (B, C) float, the BSs' block budgets ``P_b(t)`` (``state.budget`` when
                omitted); each user gets ``P_b(t) / U`` (eq. (14)).

        Returns:
            :class:`~skyshare.solvers.multiband_problem.MultibandProblem` holding the block's
            tensors (no copy): ``gain_power (B, C*U, C*U, F)``, ``direct_gain (B, C*U, F)``,
            ``user_budget (B, C*U)``, the noise, C and U, and ``H``, ``W`` for the exact rates.
        """
        if state is None:
            if self.state is None:
                raise RuntimeError("call reset() before problem()")
            state = self.state
        cfg = self.config
        return MultibandProblem(
            gain_power=state.gain_power,
            direct_gain=state.direct_gain,
            user_budget=self.user_power_budget(state.budget if budget is None else budget),
            noise=self.noise_w,
            n_cells=cfg.n_cells,
            users_per_cell=cfg.users_per_cell,
            H=state.H,
            W=state.W,
        )

    def rates(self, state: MultibandState, power: torch.Tensor) -> torch.Tensor:
        """Per-user per-channel rate ``log2(1 + SINR_{b,u}[f])`` of eq. (1) in bit/s/Hz.

        The SINR comes from the package's kernel (metrics.effective_gains + metrics.sinr) with
        the ZF beams scaled by ``sqrt(p)``; the intra-cell term is kept in the kernel and is ~0
        because of ZF (the integrand of eq. (6a)). ``MultibandProblem.rates`` on the block.

        Args:
            state: the block's state.
            power: (B, C*U, F) float >= 0, ``p_{b,u}[f]`` (normalised units).

        Returns:
            (B, C*U, F) float.
        """
        return self.problem(state).rates(self._check_power(power, state))

    def cell_capacity(self, rates: torch.Tensor) -> torch.Tensor:
        """Capacity of each cell, ``sum_{u,f} rate``: (B, C*U, F) -> (B, C) in bit/s/Hz."""
        cfg = self.config
        if rates.ndim != 3 or rates.shape[1:] != (cfg.n_users, cfg.n_freq):
            raise ShapeError(
                f"rates must be (B, C*U={cfg.n_users}, F={cfg.n_freq}), got {tuple(rates.shape)}"
            )
        return self.bs_power(rates)

    def interference_plus_noise_ratio(
        self, state: MultibandState, power: torch.Tensor
    ) -> torch.Tensor:
        """The environmental function ``c_{b,u}[f]`` of eq. (7).

        ``c_{b,u}[f] = (sum_{b~ != b} sum_{u~} p_{b~,u~}[f] |w_{b~,u~}^H h_{b~,(b,u)}|^2
        + sigma^2) / |w_{b,u}^H h_{b,(b,u)}|^2``: other-cell interference plus noise over the
        direct ZF gain, so that user (b, u)'s rate on f is ``log2(1 + p_{b,u}[f] / c_{b,u}[f])``.

        ``MultibandProblem.interference_plus_noise_ratio`` on the block.

        Args:
            state: the block's state (gain_power holds the unit-power gains).
            power: (B, C*U, F) float >= 0, the current allocation of every user.

        Returns:
            (B, C*U, F) float.
        """
        return self.problem(state).interference_plus_noise_ratio(self._check_power(power, state))

    def _check_power(self, power: torch.Tensor, state: MultibandState) -> torch.Tensor:
        cfg = self.config
        expected = (state.H.shape[0], cfg.n_users, cfg.n_freq)
        if not isinstance(power, torch.Tensor) or power.is_complex():
            raise ShapeError("power must be a real torch.Tensor of shape (B, C*U, F)")
        if tuple(power.shape) != expected:
            raise ShapeError(f"power must be (B, C*U, F) = {expected}, got {tuple(power.shape)}")
        if bool((power < 0).any()):
            raise ConfigError("power must be >= 0 on every user and frequency channel")
        return power.to(self.dtype)

    # ----------------------------------------------------------------------------------------
    # Summary
    # ----------------------------------------------------------------------------------------

    def link_budget(self) -> LinkBudget:
        """Link budget of the current block, averaged over the batch, cells and users.

        Reference transmission: equal power, each BS spreading ``P_b(t)`` equally over its U
        users and N_f channels, with the ZF beams (no frequency allocation).
        """
        state = self.state if self.state is not None else self.reset()
        cfg = self.config
        a_serving = float(self.gains[0, 0])
        budget = LinkBudget(f"{self.title}: block {state.t}, B={self.batch_size}")
        budget.add("noise power sigma^2", 0.0, "dB", "normalised to 1")
        budget.add("serving gain a_bb", linear_to_db(a_serving), "dB", "= SNR at unit power")
        if cfg.n_cells > 1:
            a_cross = float(self.gains[1, 0])
            budget.add("cross gain a_b~b", linear_to_db(a_cross), "dB", "a_bb / SIR, eq. (23)")
        budget.add("P_bar per BS", self.power_budget_total, "", f"over T = {cfg.n_blocks} blocks")
        budget.add("P_b(t) per BS", state.budget.mean(), "", "eq. (5), this block")

        zf_expected = a_serving * (cfg.n_antennas - cfg.users_per_cell + 1)
        budget.add(
            "direct ZF gain |w^H h|^2",
            linear_to_db(state.direct_gain.mean()),
            "dB",
            "mean over users, channels, batch",
        )
        budget.add(
            "expected ZF gain a_bb (M-U+1)",
            linear_to_db(zf_expected),
            "dB",
            "i.i.d. Rayleigh: gain ~ a_bb Gamma(M-U+1, 1)",
        )

        power = self.equal_power(state)
        # the ICI itself (c of eq. (7) without the noise, times the gain): c * gain - noise
        # cancels to rounding noise, negative (NaN dB) with one cell or at low SNR
        no_noise = replace(self.problem(state), noise=0.0)
        ici = no_noise.interference_plus_noise_ratio(power) * state.direct_gain
        budget.add("INR from other cells", linear_to_db(ici.mean()), "dB", "equal power")
        rates = self.rates(state, power)
        sinr = torch.exp2(rates) - 1
        budget.add("SINR, equal power", linear_to_db(sinr).median(), "dB", "median")
        budget.add(
            "cell capacity, equal power",
            self.cell_capacity(rates).mean(),
            "bit/s/Hz",
            "sum over users and channels",
        )
        no_ici = torch.log2(1 + power * state.direct_gain / self.noise_w)
        budget.add(
            "cell capacity, no ICI",
            self.cell_capacity(no_ici).mean(),
            "bit/s/Hz",
            "equal power, interference-free bound",
        )
        return budget
