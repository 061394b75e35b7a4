"""Tables and figures of the ``vhetnet-*`` experiments (:mod:`skyshare.experiments.vhetnet_pf`).

Every ``finish`` adds its aggregated rows to the summary (written by the runner after the
figures) and writes the paper's figure;
every table function returns ``(title, columns, rows)`` for the CLI. Means are pooled over
seeds and realizations with 95 % confidence half-widths ``1.96 s / sqrt(n)``.

The distributed solver's traces are read by name: ``primal_residual`` and ``dual_residual``
per inner ADMM iteration (their sum is the "sum of residuals" of seed 003 Fig. 3(a)) and
``objective`` (the PF objective per outer ALM iteration, Fig. 3(b)); the inner iterations of a
realization (Table II) are the length of its ``primal_residual`` trace.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from skyshare.errors import ConfigError
from skyshare.metrics import lpei

__all__ = ["FINISH", "TABLES", "aggregate", "paired"]

RESIDUAL_TRACES = ("primal_residual", "dual_residual")
OBJECTIVE_TRACE = "objective"


def _mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 95 % confidence half-width ``1.96 s / sqrt(n)`` (0 for one value)."""
    x = torch.as_tensor(list(values), dtype=torch.float64)
    if x.numel() == 0:
        return math.nan, math.nan
    half = 1.96 * float(x.std()) / math.sqrt(x.numel()) if x.numel() > 1 else 0.0
    return float(x.mean()), half


def _row(label: str, scheme: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    ses = [row for r in results for row in r["se"]]
    pf = [v for r in results for v in r["pf_objective"]]
    signaling = [r["signaling_per_bs"] for r in results if r.get("signaling_per_bs")]
    lengths = [r.get("trace_lengths", {}).get(RESIDUAL_TRACES[0], []) for r in results]
    inner = [v for per_job in lengths for v in per_job]
    return {
        "label": label,
        "scheme": scheme,
        "scenario": results[0]["scenario"],
        "options": results[0]["options"],
        "realizations": len(pf),
        "se": _mean_ci([sum(row) / len(row) for row in ses]),
        "min_se": _mean_ci([min(row) for row in ses]),
        "pf_objective": _mean_ci(pf),
        **_timing(results),
        "iterations": _mean_ci([v for r in results for v in r["iterations"]]),
        "inner_iterations": _mean_ci(inner) if inner else None,
        "infeasible_share": sum(sum(r["infeasible"]) for r in results) / len(pf),
        "signaling_per_bs": (
            torch.tensor(signaling, dtype=torch.float64).mean(0).tolist() if signaling else None
        ),
    }


def _timing(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Wall time of the solver calls that solved ``results``' realizations.

    A solver call handles a batch of realizations together, so time is measured once per call,
    not per realization: ``time_per_realization_s`` is the calls' total time over the
    realizations, with no confidence interval (the realizations of a call share one number);
    ``solver_calls`` and ``time_per_call_s`` (mean) describe the calls. A result written
    before ``call_time_s`` was recorded gives its total time (the sum of the equal shares in
    its ``time_s``) and no call count."""
    shares = [v for r in results for v in r["time_s"]]
    calls = [r.get("call_time_s") for r in results]
    known = all(c is not None for c in calls)
    n_calls = sum(len(c) for c in calls) if known else None
    total = sum(v for c in calls for v in c) if known else math.fsum(shares)
    return {
        "time_per_realization_s": total / len(shares) if shares else math.nan,
        "solver_calls": n_calls,
        "time_per_call_s": total / n_calls if n_calls else None,
    }


def _time_per_realization(row: dict[str, Any]) -> float:
    """A table row's time per realization; an older ``summary.json`` row kept ``time_s`` as
    (mean, half-width) of the equal shares: its mean is the same number."""
    if "time_per_realization_s" in row:
        return row["time_per_realization_s"]
    return row["time_s"][0]


def _fmt_time(row: dict[str, Any]) -> str:
    value = _time_per_realization(row)
    return "-" if value is None or math.isnan(value) else f"{value:.3g}"


TIME_NOTE = (
    "s/realization: wall time of the batched solver calls / realizations (measured once per "
    "call, so no ± spread)"
)


def aggregate(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (point label, scheme) in the order of the jobs, pooled over seeds."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in summary["results"].values():
        groups.setdefault((result["label"], result["scheme"]), []).append(result)
    return [_row(label, scheme, results) for (label, scheme), results in groups.items()]


def paired(summary: dict[str, Any], scheme: str, reference: str) -> list[dict[str, Any]]:
    """Per realization of the same point and seed: ``scheme`` vs ``reference`` (PF objective,
    mean SE, time, signaling summed over the BSs) and the relative LPEI (:func:`lpei` with
    the wall time in microseconds and the real scalars exchanged)."""
    found = {(r["label"], r["seed"], r["scheme"]): r for r in summary["results"].values()}
    pairs = []
    for (label, seed, name), result in found.items():
        other = found.get((label, seed, reference))
        if name != scheme or other is None:
            continue
        signal = sum(result["signaling_per_bs"] or [0.0])
        signal_ref = sum(other["signaling_per_bs"] or [0.0])
        for i, (pf, pf_ref) in enumerate(
            zip(result["pf_objective"], other["pf_objective"], strict=True)
        ):
            time_s, time_ref = result["time_s"][i], other["time_s"][i]
            pairs.append(
                {
                    "label": label,
                    "seed": seed,
                    "realization": i,
                    "pf": pf,
                    "pf_reference": pf_ref,
                    "time_s": time_s,
                    "time_reference_s": time_ref,
                    "signaling": signal,
                    "signaling_reference": signal_ref,
                    "relative_lpei": lpei(pf, time_s * 1e6, signal)
                    / lpei(pf_ref, time_ref * 1e6, signal_ref),
                }
            )
    return pairs


def _require(summary: dict[str, Any], needed: Sequence[str]) -> None:
    present = {result["scheme"] for result in summary["results"].values()}
    missing = [name for name in needed if name not in present]
    if missing:
        raise ConfigError(
            f"{summary['experiment']} compares {', '.join(needed)}; this run has no "
            f"{', '.join(missing)} results (check --schemes)"
        )


def _save(run_dir: Path, summary: dict[str, Any], **extra: Any) -> None:
    """Add ``extra`` to ``summary`` (the runner writes ``summary.json`` after the figures)."""
    summary.update(extra)


def _title(summary: dict[str, Any], what: str) -> str:
    return f"{summary['experiment']} ({summary['preset']}): {what}"


def _fmt(pair: Sequence[float] | None, spec: str = ".3f") -> str:
    if pair is None or math.isnan(pair[0]):
        return "-"
    return f"{pair[0]:{spec}} ± {pair[1]:{spec}}"


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------


def _finish_convergence(run_dir: Path, jobs: list[Any], summary: dict[str, Any]) -> Path:
    """Fig. 3 (and Table II's figure): mean residual and PF objective traces per setting."""
    from skyshare.plots.vhetnet import plot_convergence

    rows = aggregate(summary)
    _save(run_dir, summary, table=rows)
    residuals: dict[str, list[float]] = {}
    objectives: dict[str, list[float]] = {}
    for result in summary["results"].values():
        traces = result["traces"]
        if all(name in traces for name in RESIDUAL_TRACES):
            total = [
                sum(values) for values in zip(*(traces[n] for n in RESIDUAL_TRACES), strict=True)
            ]
            residuals.setdefault(result["label"], total)
        objectives.setdefault(result["label"], traces.get(OBJECTIVE_TRACE, []))
    name = "fig3.png" if summary["experiment"].endswith("fig3") else "table2.png"
    title = _title(summary, "seed 003 Fig. 3, convergence of the distributed PFBWD")
    return plot_convergence(residuals, objectives, Path(run_dir) / name, title)


def _finish_fig4(run_dir: Path, jobs: list[Any], summary: dict[str, Any]) -> Path:
    from skyshare.plots.vhetnet import plot_cdfs

    _require(summary, ("centralized", "distributed"))
    rows = aggregate(summary)
    se: dict[str, list[float]] = {}
    pf: dict[str, list[float]] = {}
    for result in summary["results"].values():
        se.setdefault(result["scheme"], []).extend(v for row in result["se"] for v in row)
        pf.setdefault(result["scheme"], []).extend(result["pf_objective"])
    _save(run_dir, summary, table=rows, gaps=_gaps(rows))
    panels = [("SE per UE (bit/s/Hz)", se), ("PF objective sum_k ln SE_k", pf)]
    title = _title(summary, "seed 003 Fig. 4, centralized vs distributed")
    return plot_cdfs(panels, Path(run_dir) / "fig4.png", title)


def _gaps(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Relative gaps of the distributed means to the centralized ones (per point label), and
    to ``centralized-jensen`` (the same per-BS bound) where that scheme ran."""
    by = {(row["label"], row["scheme"]): row for row in rows}
    gaps = {}
    for (label, scheme), row in by.items():
        if scheme != "distributed":
            continue
        for name, suffix in (("centralized", ""), ("centralized-jensen", " vs centralized-jensen")):
            reference = by.get((label, name))
            if reference is None:
                continue
            for key in ("se", "pf_objective"):
                gaps[f"{label}: {key}{suffix}"] = 1.0 - row[key][0] / reference[key][0]
    return gaps


def _finish_fig5(run_dir: Path, jobs: list[Any], summary: dict[str, Any]) -> Path:
    from skyshare.plots.vhetnet import plot_cdfs

    _require(summary, ("centralized", "distributed"))
    pairs = paired(summary, "distributed", "centralized")
    ratios = [pair["relative_lpei"] for pair in pairs]
    above = sum(ratio > 1 for ratio in ratios)
    _save(run_dir, summary, table=aggregate(summary), lpei_pairs=pairs, lpei_above_one=above)
    title = _title(summary, f"seed 003 Fig. 5, relative LPEI > 1 on {above}/{len(ratios)}")
    curves = {"PFBWD / centralized": ratios}
    if any(result["scheme"] == "centralized-jensen" for result in summary["results"].values()):
        jensen = paired(summary, "distributed", "centralized-jensen")
        curves["PFBWD / centralized-jensen"] = [pair["relative_lpei"] for pair in jensen]
    panels = [("relative LPEI (distributed / centralized)", curves)]
    return plot_cdfs(panels, Path(run_dir) / "fig5.png", title, reference_line=1.0)


def sweep_fields(sweep: str) -> tuple[str, ...]:
    """The scenario fields every point must set for :func:`sweep_x` to read its x value:
    none for ``haps_array`` (N_h N_v, each 8 when a point leaves it out), else ``sweep``."""
    return () if sweep == "haps_array" else (sweep,)


def sweep_x(row: dict[str, Any], sweep: str) -> float:
    scenario = row["scenario"]
    if not sweep_fields(sweep):  # haps_array
        return float(scenario.get("haps_n_h", 8) * scenario.get("haps_n_v", 8))
    if sweep not in scenario:
        raise ConfigError(f"sweep {sweep!r}: point {row['label']!r} does not set it")
    return float(scenario[sweep])


SWEEP_LABELS = {
    "n_ue": "number of UEs",
    "n_mbs": "number of MBSs",
    "haps_array": "HAPS antennas N_h x N_v",
    "haps_n_h": "HAPS antennas N_h",
    "haps_n_v": "HAPS antennas N_v",
    "haps_power_dbm": "HAPS transmit power (dBm)",
}
"""Readable x-axis labels of the sweeps (a field not listed is shown by its name)."""


def sweep_axis(sweep: str) -> tuple[str, bool]:
    """(x-axis label, integer ticks) of a sweep: the label of :data:`SWEEP_LABELS`, else the
    field's name; integer ticks for a count (an integer field of ``VhetnetConfig``, or
    ``haps_array``)."""
    from skyshare.scenarios.vhetnet import VhetnetConfig

    field = VhetnetConfig.model_fields.get(sweep)
    integer = sweep == "haps_array" or (field is not None and field.annotation is int)
    return SWEEP_LABELS.get(sweep, sweep), integer


def _curve_name(row: dict[str, Any], sweep: str) -> str:
    if sweep == "n_mbs":  # Fig. 7: vHetNet vs standalone terrestrial
        network = "vHetNet" if row["scenario"].get("with_haps", True) else "terrestrial"
        return f"{network}, {row['scheme']}"
    return row["scheme"]


def _finish_sweep(metrics: Sequence[tuple[str, str]], figure: str) -> Callable[..., Path]:
    def finish(run_dir: Path, jobs: list[Any], summary: dict[str, Any]) -> Path:
        from skyshare.plots.vhetnet import plot_sweep

        rows = aggregate(summary)
        _save(run_dir, summary, table=rows)
        sweep = summary["params"]["sweep"]
        if not sweep:
            raise ConfigError(f"{summary['experiment']}: the preset must name its sweep")
        panels = []
        for key, ylabel in metrics:
            curves: dict[str, tuple[list[float], list[float], list[float]]] = {}
            for row in sorted(rows, key=lambda r: sweep_x(r, sweep)):
                x, mean, half = curves.setdefault(_curve_name(row, sweep), ([], [], []))
                x.append(sweep_x(row, sweep))
                mean.append(row[key][0])
                half.append(row[key][1])
            panels.append((ylabel, curves))
        xlabel, integer = sweep_axis(sweep)
        title = _title(summary, f"seed 003 Fig. {figure}")
        path = Path(run_dir) / f"fig{figure}.png"
        return plot_sweep(panels, xlabel, path, title, integer_x=integer)

    return finish


def _finish_table3(run_dir: Path, jobs: list[Any], summary: dict[str, Any]) -> None:
    _save(run_dir, summary, table=aggregate(summary))


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _main_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    rows = summary.get("table") or aggregate(summary)
    columns = ["point", "scheme", "n", "SE/UE", "min SE", "PF objective", "s/realization", "iters"]
    table = [
        [
            row["label"],
            row["scheme"],
            str(row["realizations"]),
            _fmt(row["se"]),
            _fmt(row["min_se"]),
            _fmt(row["pf_objective"], ".2f"),
            _fmt_time(row),
            _fmt(row["iterations"], ".1f"),
        ]
        for row in rows
    ]
    title = _title(summary, f"means ± 95 % CI over realizations (SE in bit/s/Hz); {TIME_NOTE}")
    return title, columns, table


def _table2(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    rows = summary.get("table") or aggregate(summary)
    columns = ["setting", "inner iterations", "outer iterations", "PF objective", "SE/UE"]
    table = [
        [
            row["label"],
            _fmt(row["inner_iterations"], ".1f"),
            _fmt(row["iterations"], ".1f"),
            _fmt(row["pf_objective"], ".2f"),
            _fmt(row["se"]),
        ]
        for row in rows
    ]
    return _title(summary, "seed 003 Table II, iterations of the distributed PFBWD"), columns, table


def _table3(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    rows = summary.get("table") or aggregate(summary)
    columns = ["scheme", "signaling per BS (real scalars)", "s/realization", "iterations", "inner"]
    table = []
    for row in rows:
        signaling = row["signaling_per_bs"]
        text = "-" if signaling is None else ", ".join(f"{v:.0f}" for v in signaling)
        table.append(
            [
                row["scheme"],
                text,
                _fmt_time(row),
                _fmt(row["iterations"], ".1f"),
                _fmt(row["inner_iterations"], ".1f"),
            ]
        )
    title = _title(
        summary,
        "seed 003 Table III, measured per realization (signaling: per BS, HAPS first; "
        "distributed from the ledger, centralized = channels up + beamformers down); " + TIME_NOTE,
    )
    return title, columns, table


FINISH: dict[str, Callable[..., Any]] = {
    "vhetnet-fig3": _finish_convergence,
    "vhetnet-table2": _finish_convergence,
    "vhetnet-fig4": _finish_fig4,
    "vhetnet-fig5": _finish_fig5,
    "vhetnet-fig6": _finish_sweep(
        [("se", "average SE per UE (bit/s/Hz)"), ("pf_objective", "average PF objective")], "6"
    ),
    "vhetnet-fig7": _finish_sweep([("se", "average SE per UE (bit/s/Hz)")], "7"),
    "vhetnet-fig8": _finish_sweep([("se", "average SE per UE (bit/s/Hz)")], "8"),
    "vhetnet-fig9": _finish_sweep([("min_se", "minimum SE per UE (bit/s/Hz)")], "9"),
    "vhetnet-table3": _finish_table3,
}
SWEEP_FIGURES = ("vhetnet-fig6", "vhetnet-fig7", "vhetnet-fig8", "vhetnet-fig9")
"""The experiments whose figure is drawn against the preset's ``sweep`` (a scenario field)."""
TABLES: dict[str, Callable[..., tuple[str, list[str], list[list[str]]]]] = {
    name: _main_table for name in FINISH
}
TABLES["vhetnet-table2"] = _table2
TABLES["vhetnet-table3"] = _table3
