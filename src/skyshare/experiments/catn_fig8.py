"""``catn-fig8``: D3QN-, DCD- and SC-CUP tested after training (seed 000 Fig. 8).

Each scheme is trained online (Algorithm 4, as in ``catn-fig4``) and then tested for 6000 slots
with frozen policies: greedy D3QN association, the mean of each BS's Beta policy, no updates
(§VI: "in 6000 test time slots"). Fig. 8 reports, per scheme,

* the sum throughput of the TUs in one second: ``mean_t sum_k R~_k(t) x W`` in bit/s, with
  R~_k the rate (16) after the handover discount (the share of a handover slot left for data)
  and W the bandwidth (10 MHz); the undiscounted ``sum_k R_k x W`` is reported too;
* the received interference power of each AU, ``mean_t rho_l(t)``, in mW and over I_max;
* the handover percentage: ``100 mean_t (TUs that changed BS in slot t) / K`` over the test
  slots after the first: the first test slot's predecessor is the environment's random
  warm-up association of reset (Algorithm 4 lines 5-6), not a decision of the scheme, so its
  "handovers" (about (N-1)/N of the TUs) would only measure that random draw.

The paper finds D3QN-CUP with the highest throughput, the lowest AU interference and the
lowest handover percentage.

Choice where the seed is silent: the test slots replay the training scenario (the paper has a
single simulation scenario, Fig. 3: same layout, trajectories and fading seed); the preset's
``test_seed_offset`` (0) shifts the test game's seed for a test on a fresh realization.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from skyshare.experiments.catn_schemes import (
    VIOLATION_TOL,
    CatnPreset,
    check_job,
    evaluate_scheme,
    read_series,
    scheme_jobs,
    summarize_log,
    train_scheme,
    write_series,
)
from skyshare.experiments.jobs import Experiment, Job, load_result
from skyshare.plots import plot_fig8_bars

__all__ = [
    "EXPERIMENT",
    "SCHEMES",
    "Preset",
    "catn_fig8_job",
    "finish",
    "jobs",
    "summary_table",
    "test_metrics",
]

SCHEMES = ("D3QN-CUP", "DCD-CUP", "SC-CUP")


class Preset(CatnPreset):
    """catn-fig8: the shared training parameters and the frozen-policy test."""

    test_slots: int = Field(..., ge=1, le=10_000_000, description="test slots after training")
    test_seed_offset: int = Field(0, ge=0, description="shift of the test game's seed")


def jobs(preset: Preset, preset_name: str, schemes: Sequence[str] | None = None) -> list[Job]:
    """One job (train, then test) per scheme and seed."""
    return scheme_jobs("catn-fig8", preset, preset_name, schemes or SCHEMES)


def test_metrics(series: dict[str, list[float]], bandwidth_hz: float, i_max_mw: float) -> dict:
    """Fig. 8's three quantities from a test series (:func:`read_series` layout)."""
    ratio = torch.tensor([series[k] for k in series if k.startswith("au")], dtype=torch.float64)
    mean = lambda key: float(torch.tensor(series[key], dtype=torch.float64).mean())  # noqa: E731
    return {
        "throughput_bps": mean("effective_sum_rate") * bandwidth_hz,
        "throughput_undiscounted_bps": mean("sum_rate") * bandwidth_hz,
        "au_rho_over_imax": ratio.mean(-1).tolist(),
        "au_rho_mw": (ratio.mean(-1) * i_max_mw).tolist(),
        "test_violation_share": float((ratio > 1.0 + VIOLATION_TOL).any(0).double().mean()),
        "handover_percent": 100.0
        * float(torch.tensor(series["handover_fraction"][1:] or [0.0], dtype=torch.float64).mean()),
        "i_max_mw": i_max_mw,
    }


test_metrics.__test__ = False  # not a pytest test, despite its name


def catn_fig8_job(job: Job, folder: Path) -> dict[str, Any]:
    """Train ``job.scheme`` (``checkpoint.pt``, ``series.csv``, ``networks.pt``), test it for
    ``test_slots`` slots (``test_checkpoint.pt``, ``test_series.csv``); return the training
    summary and the test metrics."""
    torch.set_num_threads(job.threads)
    p = job.params
    trained = train_scheme(job.scheme, p, job.seed, folder, device=job.device)
    test_seed = job.seed + int(p["test_seed_offset"])
    tested = evaluate_scheme(
        trained, p, test_seed, int(p["test_slots"]), folder / "test_checkpoint.pt"
    )
    write_series(folder / "test_series.csv", tested.log, tested.env.L, tested.env.K)
    scenario = tested.env.scenario.config
    metrics = test_metrics(
        read_series(folder / "test_series.csv"), scenario.bandwidth_mhz * 1e6, scenario.i_max_mw
    )
    return {
        **summarize_log(job.scheme, trained.log),
        "test_slots": len(tested.log.slots),
        "test_seed": test_seed,
        **metrics,
    }


def finish(run_dir: Path, selected: list[Job], summary: dict[str, Any]) -> Path:
    """``fig8.png``: Fig. 8's three bar charts from the finished jobs."""
    per_scheme: dict[str, list[dict[str, Any]]] = {}
    for job in selected:
        per_scheme.setdefault(job.scheme, []).append(load_result(run_dir, job))
    return plot_fig8_bars(
        list(per_scheme),
        [_mean_result(rs) for rs in per_scheme.values()],
        run_dir / "fig8.png",
        seeds=list(per_scheme.values()),
    )


def _mean_result(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The mean over seeds of what :func:`plot_fig8_bars` draws."""
    n = len(results)
    return {
        "throughput_bps": sum(r["throughput_bps"] for r in results) / n,
        "handover_percent": sum(r["handover_percent"] for r in results) / n,
        "au_rho_mw": [sum(v) / n for v in zip(*(r["au_rho_mw"] for r in results), strict=True)],
        "i_max_mw": results[0]["i_max_mw"],
    }


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows): Fig. 8's quantities per scheme over the test slots."""
    columns = [
        "scheme",
        "seed",
        "throughput (Mbit/s)",
        "undiscounted (Mbit/s)",
        "rho / I_max per AU",
        "handovers (%)",
    ]
    rows = [
        [
            r["scheme"],
            str(r["test_seed"] - int(summary["params"]["test_seed_offset"])),
            f"{r['throughput_bps'] / 1e6:.4g}",
            f"{r['throughput_undiscounted_bps'] / 1e6:.4g}",
            ", ".join(f"{x:.3g}" for x in r["au_rho_over_imax"]),
            f"{r['handover_percent']:.3g}",
        ]
        for r in summary["results"].values()
    ]
    title = f"catn-fig8 ({summary['preset']}): {summary['params']['test_slots']} test slots"
    return title, columns, rows


EXPERIMENT = Experiment(
    "catn-fig8",
    "seed 000 Fig. 8: throughput, AU interference and handovers of D3QN-, DCD-, "
    "SC-CUP in test slots after training",
    Preset,
    jobs,
    catn_fig8_job,
    finish,
    summary_table,
    SCHEMES,
    check_job=check_job,
)
