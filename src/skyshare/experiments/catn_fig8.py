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

from pathlib import Path
from typing import Any

import torch

from skyshare.errors import UnknownNameError
from skyshare.experiments import catn_fig4
from skyshare.experiments.catn_schemes import (
    VIOLATION_TOL,
    evaluate_scheme,
    read_series,
    scheme_experiment,
    summarize_log,
    train_scheme,
    write_series,
)
from skyshare.experiments.jobs import Job

__all__ = [
    "EXPERIMENT",
    "PRESETS",
    "SCHEMES",
    "catn_fig8_job",
    "catn_fig8_jobs",
    "plot_catn_fig8",
    "run",
    "summary_table",
    "test_metrics",
]

SCHEMES = ("D3QN-CUP", "DCD-CUP", "SC-CUP")

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {**catn_fig4.PRESETS["paper"], "test_slots": 6000, "test_seed_offset": 0},
    "quick": {**catn_fig4.PRESETS["quick"], "test_slots": 300, "test_seed_offset": 0},
}


def catn_fig8_jobs(preset: str = "quick", schemes: list[str] | None = None) -> list[Job]:
    """One job (train, then test) per scheme and seed."""
    if preset not in PRESETS:
        raise UnknownNameError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    params = {**PRESETS[preset], "preset": preset}
    return [
        Job("catn-fig8", name, seed, params)
        for name in schemes or SCHEMES
        for seed in params["seeds"]
    ]


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
    write_series(folder / "test_series.csv", tested.log, tested.env.L)
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


def plot_catn_fig8(run_dir: str | Path, jobs: list[Job]) -> Path:
    """Three bar charts like Fig. 8: (a) sum throughput in Mbit/s, (b) received interference
    power per AU in mW with I_max dotted, (c) handover percentage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skyshare.experiments.jobs import load_result

    run_dir = Path(run_dir)
    results = [load_result(run_dir, job) for job in jobs]
    several_seeds = len({job.seed for job in jobs}) > 1
    names = [f"{job.scheme} s{job.seed}" if several_seeds else job.scheme for job in jobs]
    colours = [f"C{i}" for i in range(len(jobs))]
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(13, 4.2))
    a.bar(names, [r["throughput_bps"] / 1e6 for r in results], color=colours)
    a.set(ylabel="sum throughput (Mbit/s)", title="(a) throughput of the TUs in one second")
    n_au = len(results[0]["au_rho_mw"])
    width = 0.8 / max(1, n_au)
    for l_ in range(n_au):
        x = [i + (l_ - (n_au - 1) / 2) * width for i in range(len(results))]
        b.bar(x, [r["au_rho_mw"][l_] for r in results], width, label=f"AU {l_ + 1}",
              color=colours, alpha=1.0 - 0.35 * l_, edgecolor="k")  # fmt: skip
    b.axhline(results[0]["i_max_mw"], color="k", ls=":", lw=1, label="I_max")
    b.set_xticks(range(len(results)), names)
    b.set(ylabel="received interference power (mW)", title="(b) interference at the AUs")
    b.legend(fontsize=8)
    c.bar(names, [r["handover_percent"] for r in results], color=colours)
    c.set(ylabel="TUs performing a handover (%)", title="(c) handover percentage")
    fig.suptitle("catn-fig8 (seed 000 Fig. 8): test slots after training, frozen policies")
    fig.tight_layout()
    path = run_dir / "fig8.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summary_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """(title, columns, rows): Fig. 8's quantities per scheme over the test slots."""
    columns = [
        "scheme",
        "throughput (Mbit/s)",
        "undiscounted (Mbit/s)",
        "rho / I_max per AU",
        "handovers (%)",
    ]
    rows = [
        [
            r["scheme"],
            f"{r['throughput_bps'] / 1e6:.4g}",
            f"{r['throughput_undiscounted_bps'] / 1e6:.4g}",
            ", ".join(f"{x:.3g}" for x in r["au_rho_over_imax"]),
            f"{r['handover_percent']:.3g}",
        ]
        for r in summary["results"].values()
    ]
    title = f"catn-fig8 ({summary['preset']}): {summary['params']['test_slots']} test slots"
    return title, columns, rows


EXPERIMENT = scheme_experiment(
    "catn-fig8",
    "seed 000 Fig. 8: throughput, AU interference and handovers of D3QN-, DCD-, "
    "SC-CUP in test slots after training",
    PRESETS,
    SCHEMES,
    catn_fig8_jobs,
    plot_catn_fig8,
    summary_table,
    catn_fig8_job,
)
run = EXPERIMENT.run
