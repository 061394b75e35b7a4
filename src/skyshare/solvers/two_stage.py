"""The two-stage scheme of seed 000 §IV-B and §VI over dynamic slots.

Every slot: (1) user association (SC or DCD with power control), (2) coordinated beamforming
(WMMSE, low-complexity WMMSE or direct FP) for that association, warm-started from the previous
slot's beamformers where the association did not change. The channel process of a
:class:`~skyshare.scenarios.CatnScenario` supplies the slots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from skyshare.errors import UnknownNameError
from skyshare.scenarios.catn import CatnScenario
from skyshare.solvers.problem import AssociationResult, BeamformingProblem, BeamformingResult

__all__ = [
    "ASSOCIATIONS",
    "BEAMFORMERS",
    "PAPER_TABLE1_SECONDS",
    "TwoStageTrace",
    "run_two_stage",
]


def _sc(scenario: CatnScenario, H: torch.Tensor) -> AssociationResult:
    from skyshare.solvers.association_sc import associate_sc

    return associate_sc(H, p_max=scenario.config.p_max_w)


def _dcd(scenario: CatnScenario, H: torch.Tensor) -> AssociationResult:
    from skyshare.solvers.association_dcd import associate_dcd

    return associate_dcd(H, p_max=scenario.config.p_max_w, n_antennas=scenario.config.n_antennas)


Multipliers = dict[str, torch.Tensor]


def _wmmse(
    problem: BeamformingProblem, w0: torch.Tensor | None, warm: Multipliers | None = None, **options
) -> BeamformingResult:
    from skyshare.solvers.wmmse import wmmse

    warm = warm or {}
    return wmmse(problem, w0=w0, mu0=warm.get("mu"), eta0=warm.get("eta"), **options)


def _wmmse_lite(
    problem: BeamformingProblem, w0: torch.Tensor | None, warm: Multipliers | None = None, **options
) -> BeamformingResult:
    from skyshare.solvers.wmmse_lite import wmmse_lite

    return wmmse_lite(problem, w0=w0, mu0=(warm or {}).get("mu"), **options)


def _fp(
    problem: BeamformingProblem, w0: torch.Tensor | None, warm: Multipliers | None = None, **options
) -> BeamformingResult:
    from skyshare.solvers.fp import fp

    warm = warm or {}
    return fp(problem, w0=w0, mu0=warm.get("mu"), eta0=warm.get("eta"), **options)


ASSOCIATIONS: dict[str, Callable[[CatnScenario, torch.Tensor], AssociationResult]] = {
    "sc": _sc,
    "dcd": _dcd,
}
# name -> solve(problem, w0, warm_multipliers=None, **solver_options)
BEAMFORMERS: dict[str, Callable[..., BeamformingResult]] = {
    "wmmse": _wmmse,
    "wmmse-lite": _wmmse_lite,
    "fp": _fp,
}

PAPER_TABLE1_SECONDS: dict[str, tuple[float, str]] = {
    # seed 000 Table I, average computation time per slot (L=2, N=7, K=21, M=16), i7-11700K
    "fp": (78.78, "DCD-DFP, MATLAB"),
    "wmmse": (1.257, "D3QN-WMMSE (low-complexity WMMSE), Python"),
    "wmmse-lite": (1.257, "D3QN-WMMSE (low-complexity WMMSE), Python"),
}


@dataclass
class TwoStageTrace:
    """Per-slot results of :func:`run_two_stage` (S slots, B realizations, L AUs).

    Attributes:
        slots: (S,) slot indices.
        sum_rate: (S, B) TU sum rate in bit/s/Hz.
        au_interference_ratio: (S, B, L) rho_l / I_max.
        feasible: (S, B) bool, (2b)-(2c) within tolerance.
        iterations: (S,) beamforming iterations.
        association_time_s, beamforming_time_s: (S,) wall time per slot for the whole batch.
        handovers: (S, B) TUs whose BS changed w.r.t. the previous slot.
    """

    association: str
    beamforming: str
    slots: torch.Tensor
    sum_rate: torch.Tensor
    au_interference_ratio: torch.Tensor
    feasible: torch.Tensor
    iterations: torch.Tensor
    association_time_s: torch.Tensor
    beamforming_time_s: torch.Tensor
    handovers: torch.Tensor

    @property
    def slot_time_s(self) -> torch.Tensor:
        return self.association_time_s + self.beamforming_time_s

    def summary(self) -> dict[str, float]:
        ratio = self.au_interference_ratio
        return {
            "mean sum rate (bit/s/Hz)": float(self.sum_rate.mean()),
            "mean AU interference / I_max": float(ratio.mean()) if ratio.numel() else 0.0,
            "max AU interference / I_max": float(ratio.max()) if ratio.numel() else 0.0,
            "feasible slots (%)": float(self.feasible.float().mean() * 100),
            "mean beamforming iterations": float(self.iterations.float().mean()),
            "time per slot (s)": float(self.slot_time_s.mean()),
            "association time per slot (s)": float(self.association_time_s.mean()),
            "beamforming time per slot (s)": float(self.beamforming_time_s.mean()),
            "handovers per slot": float(self.handovers.float().mean()),
        }

    def plot(self, path: str | Path, *, span: int = 41) -> Path:
        """Sum rate and AU interference over slots (moving average of ``span`` slots, §VI)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        def smooth(x: torch.Tensor) -> torch.Tensor:  # (S,) -> centred moving average
            k = max(1, min(span, x.numel()))
            kernel = torch.ones(1, 1, k, dtype=x.dtype) / k
            padded = torch.nn.functional.pad(x[None, None], (k // 2, k - 1 - k // 2), "replicate")
            return torch.nn.functional.conv1d(padded, kernel)[0, 0]

        path = Path(path)
        slots = self.slots.numpy()
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
        top.plot(slots, smooth(self.sum_rate.mean(1)).numpy(), label="sum rate")
        top.set(
            ylabel="TU sum rate (bit/s/Hz)",
            title=f"{self.association.upper()}-{self.beamforming.upper()} (seed 000 §VI)",
        )
        for l_ in range(self.au_interference_ratio.shape[-1]):
            series = 10 * torch.log10(self.au_interference_ratio[:, :, l_].mean(1))
            bottom.plot(slots, smooth(series).numpy(), label=f"AU {l_}")
        bottom.axhline(0.0, color="k", ls="--", lw=1, label="I_max")
        bottom.set(xlabel="slot", ylabel="AU interference / I_max (dB)")
        bottom.legend()
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def run_two_stage(
    scenario: CatnScenario,
    association: str,
    beamforming: str,
    n_slots: int,
    *,
    warm_start: bool = True,
    seed: int | None = None,
    progress: bool = True,
    solver_options: dict | None = None,
) -> TwoStageTrace:
    """Run association + beamforming on ``n_slots`` consecutive slots of ``scenario``.

    The scenario is reset (``seed``), then stepped; the first slot starts from MRT, later slots
    from the previous beamformers (users who changed BS restart from MRT) and the previous
    multipliers mu, eta (§VI's dynamic setting). ``solver_options`` go to the beamformer, e.g.
    ``{"max_iter": 20}`` for a per-slot iteration budget.
    """
    if association not in ASSOCIATIONS:
        raise UnknownNameError(
            f"unknown association {association!r}; available: {', '.join(ASSOCIATIONS)}"
        )
    if beamforming not in BEAMFORMERS:
        raise UnknownNameError(
            f"unknown beamforming {beamforming!r}; available: {', '.join(BEAMFORMERS)}"
        )
    if n_slots < 1 or n_slots > scenario.config.n_slots:
        raise ValueError(f"n_slots must be in [1, {scenario.config.n_slots}], got {n_slots}")
    from tqdm.auto import tqdm

    associate, beamform = ASSOCIATIONS[association], BEAMFORMERS[beamforming]
    state = scenario.reset(seed=seed)
    p_max, i_max = scenario.config.p_max_w, scenario.i_max_normalized
    rows: dict[str, list] = {key: [] for key in TwoStageTrace.__dataclass_fields__}
    w_prev = serving_prev = None
    multipliers_prev: Multipliers = {}
    bar = tqdm(range(n_slots), desc=f"{association}-{beamforming}", disable=not progress)
    for t in bar:
        if t > 0:
            state = scenario.step()
        start = time.perf_counter()
        assoc = associate(scenario, state.H)
        assoc_time = time.perf_counter() - start
        serving = assoc.serving
        problem = BeamformingProblem(state.H, state.G, serving, p_max, i_max)
        w0 = warm = None
        if warm_start and w_prev is not None:
            w0 = torch.where((serving == serving_prev)[..., None], w_prev, torch.zeros_like(w_prev))
            warm = {k: v for k, v in multipliers_prev.items() if k in ("mu", "eta")}
        result = beamform(problem, w0, warm, **(solver_options or {}))
        handovers = (
            (serving != serving_prev).sum(-1)
            if serving_prev is not None
            else torch.zeros(serving.shape[0], dtype=torch.long)
        )
        rows["slots"].append(state.t)
        rows["sum_rate"].append(result.sum_rate)
        rows["au_interference_ratio"].append(result.au_interference / i_max)
        rows["feasible"].append(result.feasible)
        rows["iterations"].append(result.iterations)
        rows["association_time_s"].append(assoc_time)
        rows["beamforming_time_s"].append(result.wall_time_s)
        rows["handovers"].append(handovers)
        bar.set_postfix(sum_rate=f"{float(result.sum_rate.mean()):.1f}")
        w_prev, serving_prev, multipliers_prev = result.w, serving, result.multipliers
    return TwoStageTrace(
        association=association,
        beamforming=beamforming,
        slots=torch.tensor(rows["slots"]),
        sum_rate=torch.stack(rows["sum_rate"]),
        au_interference_ratio=torch.stack(rows["au_interference_ratio"]),
        feasible=torch.stack(rows["feasible"]),
        iterations=torch.tensor(rows["iterations"]),
        association_time_s=torch.tensor(rows["association_time_s"], dtype=torch.float64),
        beamforming_time_s=torch.tensor(rows["beamforming_time_s"], dtype=torch.float64),
        handovers=torch.stack(rows["handovers"]),
    )
