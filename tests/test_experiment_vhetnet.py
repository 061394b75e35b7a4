"""The seed 003 problem object, scheme registry, loop and experiments (with the fast ``mrt``
scheme; the solvers have their own tests).

Reference values are recomputed here by explicit loops over UEs and BSs, or in closed form.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from skyshare.cli import main
from skyshare.errors import ConfigError, ShapeError
from skyshare.experiments.registry import get_experiment
from skyshare.experiments.vhetnet_report import paired
from skyshare.metrics import lpei
from skyshare.scenarios.vhetnet import VhetnetConfig, VhetnetScenario, mrt_joint_transmission
from skyshare.schemes.vhetnet import VHETNET_SCHEMES, mrt_beamformers, run_vhetnet
from skyshare.solvers.cellfree_problem import CellFreeProblem


def small_problem(seed: int = 0, B: int = 2) -> CellFreeProblem:
    config = VhetnetConfig(n_ue=3, n_mbs=2, haps_n_h=2, haps_n_v=3, mbs_n_h=2, mbs_n_v=1)
    scenario = VhetnetScenario(config, batch_size=B)
    return scenario.reset(seed).problem()


def test_problem_evaluation_matches_a_loop_over_ues_and_bss():
    problem = small_problem()
    B, K, T, M = problem.shape
    g = torch.Generator().manual_seed(1)
    W = torch.randn(B, T, K, M, dtype=torch.complex64, generator=g) * 0.1
    out = problem.evaluate(W)
    antennas = problem.antennas
    for b in range(B):
        for k in range(K):

            def gain(j, b=b, k=k):
                return sum(
                    (problem.H[b, k, t, : antennas[t]].conj() * W[b, t, j, : antennas[t]]).sum()
                    for t in range(T)
                )

            signal = abs(gain(k)) ** 2
            interference = sum(abs(gain(j)) ** 2 for j in range(K) if j != k)
            sinr = signal / (interference + 1.0)
            assert float(out.sinr[b, k]) == pytest.approx(float(sinr), rel=1e-4)
            assert float(out.se[b, k]) == pytest.approx(math.log2(1 + float(sinr)), rel=1e-4)
        for t in range(T):  # power counts only the transmitter's own antennas
            power = (W[b, t, :, : antennas[t]].abs() ** 2).sum()
            assert float(out.power[b, t]) == pytest.approx(float(power), rel=1e-5)
    assert torch.allclose(out.pf_objective, torch.log(out.se).sum(-1))


def test_problem_refuses_bad_input_with_the_field_name():
    problem = small_problem()
    H, mask = problem.H, problem.antenna_mask
    with pytest.raises(ConfigError, match="p_max"):
        CellFreeProblem(H, mask, -problem.p_max, 1.0)
    with pytest.raises(ConfigError, match="gamma_min"):
        CellFreeProblem(H, mask, problem.p_max, float("nan"))
    with pytest.raises(ConfigError, match="gamma_min"):
        CellFreeProblem(H, mask, problem.p_max, -1.0)
    with pytest.raises(ShapeError, match="antenna_mask"):
        CellFreeProblem(H, mask[:, :-1], problem.p_max, 1.0)
    with pytest.raises(ShapeError, match="p_max"):
        CellFreeProblem(H, mask, problem.p_max[:-1], 1.0)
    with pytest.raises(ShapeError, match="B, K, T, M_max >= 1"):
        CellFreeProblem(H[:, :0], mask, problem.p_max, 1.0)
    with pytest.raises(ShapeError, match="W must be"):
        problem.evaluate(problem.zeros()[:, :1])


def test_mrt_spends_every_budget_and_adds_coherently():
    scenario = VhetnetScenario(VhetnetConfig(n_ue=4), batch_size=2)
    state = scenario.reset(3)
    problem = state.problem()
    W = mrt_beamformers(problem)
    assert torch.allclose(W, mrt_joint_transmission(state))
    assert torch.allclose(problem.power(W), problem.p_max.expand(2, -1), rtol=1e-5)
    # every desired term h_{t,k}^H w_{t,k} = sqrt(P_t / K) ||h_{t,k}||: real and positive
    desired = torch.einsum("bktm,btkm->bkt", problem.H.conj(), W)
    expected = torch.sqrt(problem.p_max / 4) * torch.linalg.vector_norm(problem.H, dim=-1)
    assert torch.allclose(desired.real, expected, rtol=1e-4)
    assert float(desired.imag.abs().max()) < 1e-3 * float(expected.max())


def test_scheme_options_are_checked_against_the_solver():
    with pytest.raises(ConfigError, match="unknown option"):
        VHETNET_SCHEMES.build("mrt", {"max_iter": 3})


def test_run_vhetnet_chunks_are_the_scenario_realizations():
    mrt = VHETNET_SCHEMES.build("mrt")
    run = run_vhetnet(VhetnetScenario(VhetnetConfig(n_ue=4), batch_size=3), mrt, 7, seed=5)
    assert run.se.shape == (7, 4) and run.time_s.shape == (7,)
    assert run.power.shape == (7, 5)
    # the first chunk is reset(5)'s batch, the second the next step
    scenario = VhetnetScenario(VhetnetConfig(n_ue=4), batch_size=3)
    first = scenario.reset(5).problem()
    second = scenario.step().problem()
    assert torch.allclose(run.se[:3], first.evaluate(mrt_beamformers(first)).se)
    assert torch.allclose(run.se[3:6], second.evaluate(mrt_beamformers(second)).se)
    with pytest.raises(ConfigError, match="n_realizations"):
        run_vhetnet(scenario, mrt, 0)


def test_lpei_closed_form_and_range():
    # F / (log10(1 + C) + log10(1 + S)) with C = 99, S = 999: 20 / (2 + 3)
    assert lpei(20.0, 99.0, 999.0) == pytest.approx(4.0)
    assert lpei(20.0, 9.0, 9.0) > lpei(20.0, 99.0, 9.0)
    with pytest.raises(ValueError, match="computation"):
        lpei(1.0, -1.0, 1.0)
    with pytest.raises(ValueError, match="positive"):
        lpei(1.0, 0.0, 0.0)


def test_relative_lpei_pairs_realizations_of_the_same_point_and_seed():
    def result(scheme, pf, time_s, signaling):
        return {
            "scheme": scheme,
            "seed": 0,
            "label": "default",
            "pf_objective": pf,
            "time_s": time_s,
            "signaling_per_bs": signaling,
        }

    summary = {
        "results": {
            "a": result("distributed", [10.0, 12.0], [0.009, 0.009], [99.0, 0.0]),
            "b": result("centralized", [11.0, 12.0], [0.099999, 0.099999], [999.0, 0.0]),
        }
    }
    pairs = paired(summary, "distributed", "centralized")
    assert len(pairs) == 2
    # distributed: 10 / (log10(1 + 9000) + log10(100)); centralized: 11 / (5 + 3)
    expected = (10.0 / (math.log10(9001.0) + 2.0)) / (11.0 / (math.log10(100_000.0) + 3.0))
    assert pairs[0]["relative_lpei"] == pytest.approx(expected, rel=1e-6)


def test_sweep_experiment_runs_and_plots(tmp_path):
    experiment = get_experiment("vhetnet-fig8")
    summary = experiment.run(
        tmp_path, "quick", schemes=["mrt"], overrides=["realizations=3", "batch=2"]
    )
    assert (tmp_path / "fig8.png").stat().st_size > 10_000
    table = json.loads((tmp_path / "summary.json").read_text())["table"]
    assert [row["label"] for row in table] == ["HAPS 4x4", "HAPS 8x8", "HAPS 16x16"]
    assert all(row["realizations"] == 3 for row in table)
    # the table's mean SE is the mean over realizations of the per-UE mean in result.json
    first = next(iter(summary["results"].values()))
    per_realization = [sum(row) / len(row) for row in first["se"]]
    assert table[0]["se"][0] == pytest.approx(sum(per_realization) / 3)
    title, columns, rows = experiment.table(summary)
    assert "vhetnet-fig8" in title and len(rows) == 3 and "SE/UE" in columns


def test_comparison_figures_need_both_algorithms(tmp_path):
    with pytest.raises(ConfigError, match="compares centralized, distributed"):
        get_experiment("vhetnet-fig4").run(
            tmp_path, "quick", schemes=["mrt"], overrides=["realizations=2"]
        )


def test_cli_refuses_an_unknown_vhetnet_scheme(tmp_path, capsys):
    code = main(["run", "vhetnet-fig4", "--schemes", "nope", "--out", str(tmp_path / "r")])
    assert code == 2
    assert "nope" in capsys.readouterr().err


def test_mean_traces_hold_objectives_and_drop_finished_residuals():
    from skyshare.experiments.vhetnet_pf import _mean_trace

    nan = float("nan")
    chunks = [torch.tensor([[1.0, 2.0, nan]]), torch.tensor([[1.0, 4.0, 6.0]])]
    # an objective: the stopped realization keeps 2.0, so the mean stays over both
    assert _mean_trace(chunks, hold_last=True) == [1.0, 3.0, 4.0]
    # a residual: the stopped realization leaves the mean
    assert _mean_trace(chunks) == [1.0, 3.0, 6.0]


def test_bad_overrides_and_options_exit_2_before_any_job(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "vhetnet-fig8", "--schemes", "mrt", "--set", "scenario.n_ue=-1",
                 "--out", str(out)])  # fmt: skip
    assert code == 2 and "n_ue" in capsys.readouterr().err
    code = main(["run", "vhetnet-fig8", "--schemes", "distributed",
                 "--set", "options.distributed.bogus=1", "--out", str(out)])  # fmt: skip
    assert code == 2 and "bogus" in capsys.readouterr().err
    assert not (out / "jobs").exists()
    # a PfbwdConfig field passed through pfbwd's **options is accepted
    VHETNET_SCHEMES.build("distributed", {"beta_max": 1e6})


def test_centralized_signaling_is_channels_up_and_beamformers_down(tmp_path):
    # K = 3 UEs: BS t sends K M_t complex channel coefficients and receives K M_t complex
    # beamformer coefficients, 4 K M_t real scalars (HAPS 8x8: 768, MBS 4x4: 192)
    summary = get_experiment("vhetnet-table3").run(
        tmp_path, "quick", schemes=["pf-wmmse"], overrides=["realizations=1", "scenario.n_ue=3"]
    )
    result = next(iter(summary["results"].values()))
    assert result["signaling_per_bs"] == [4 * 3 * 64] + [4 * 3 * 16] * 4


def test_centralized_jensen_scheme_solves_the_distributed_algorithms_problem():
    """Same problem as the exact centralized SCA, but with the per-BS Jensen interference bound:
    its SINRs under the bound can only be lower, and the (true) PF objective it reaches is
    not above the exact one's on these instances; its options cannot switch the bound off
    silently (an explicit override is the user's choice and stays possible)."""
    problem = small_problem(seed=1, B=2)
    jensen = VHETNET_SCHEMES.build("centralized-jensen")
    assert jensen.options == {"interference": "jensen"}
    exact = VHETNET_SCHEMES.build("centralized").decide(problem)
    bounded = jensen.decide(problem)
    assert bool((bounded.pf_objective <= exact.pf_objective + 1e-3).all())
    assert bounded.evaluation.meets_gamma_min().all()
    assert VHETNET_SCHEMES.build("centralized-jensen", {"max_iter": 3}).options == {
        "interference": "jensen",
        "max_iter": 3,
    }


def _fake_clock(monkeypatch, call_times):
    """``mrt``'s timer reads start, start + t for each solver call's time t in turn."""
    import types

    import skyshare.schemes.vhetnet as schemes

    readings = iter([v for i, t in enumerate(call_times) for v in (10.0 * i, 10.0 * i + t)])
    monkeypatch.setattr(schemes, "time", types.SimpleNamespace(perf_counter=lambda: next(readings)))


def test_time_is_measured_per_solver_call_and_reported_without_a_spread(tmp_path, monkeypatch):
    """5 realizations in calls of 2, 2, 1 taking 0.2, 0.6, 0.1 s: the result keeps every
    call's time, the table gives (0.2 + 0.6 + 0.1) / 5 = 0.18 s per realization, once, with
    no ± (the realizations of a call share one measurement)."""
    _fake_clock(monkeypatch, [0.2, 0.6, 0.1])
    experiment = get_experiment("vhetnet-table3")
    summary = experiment.run(
        tmp_path, "quick", schemes=["mrt"], overrides=["realizations=5", "batch=2"]
    )
    (result,) = summary["results"].values()
    assert result["call_sizes"] == [2, 2, 1]
    assert result["call_time_s"] == pytest.approx([0.2, 0.6, 0.1])
    assert result["time_s"] == pytest.approx([0.1, 0.1, 0.3, 0.3, 0.1])  # shares, kept
    (row,) = json.loads((tmp_path / "summary.json").read_text())["table"]
    assert row["time_per_realization_s"] == pytest.approx(0.18)
    assert row["solver_calls"] == 3 and row["time_per_call_s"] == pytest.approx(0.3)
    assert "time_s" not in row  # no (mean, half-width) pair: there is no spread to report
    title, columns, rows = experiment.table(summary)
    cell = rows[0][columns.index("s/realization")]
    assert cell == "0.18" and "±" not in cell
    assert "measured once per call, so no ± spread" in title


@pytest.mark.filterwarnings("ignore:No artists with labels")  # mrt has no ADMM traces to draw
def test_one_solver_call_gives_one_time_for_all_its_realizations(tmp_path, monkeypatch):
    _fake_clock(monkeypatch, [2.67])
    experiment = get_experiment("vhetnet-fig3")
    summary = experiment.run(tmp_path, "quick", schemes=["mrt"], overrides=["realizations=3"])
    (result,) = summary["results"].values()
    assert result["call_sizes"] == [3] and result["call_time_s"] == pytest.approx([2.67])
    title, columns, rows = experiment.table(summary)
    assert rows[0][columns.index("s/realization")] == "0.89"  # 2.67 s / 3, not "2.67 ± 0"
    assert "no ± spread" in title


def test_tables_still_read_a_summary_written_before_call_times(tmp_path, monkeypatch):
    """An older summary.json: results without call_time_s, table rows with time_s as
    (mean, half-width). Both the stored table and one aggregated anew print the mean time per
    realization without a spread."""
    _fake_clock(monkeypatch, [0.4, 0.2])
    experiment = get_experiment("vhetnet-table3")
    summary = experiment.run(
        tmp_path, "quick", schemes=["mrt"], overrides=["realizations=4", "batch=2"]
    )
    old = json.loads(json.dumps(summary))
    for result in old["results"].values():
        del result["call_time_s"], result["call_sizes"]
    old["table"] = [
        {key: value for key, value in row.items() if "time" not in key and key != "solver_calls"}
        | {"time_s": [0.15, 0.0]}
        for row in summary["table"]
    ]
    _, columns, rows = experiment.table(old)
    assert rows[0][columns.index("s/realization")] == "0.15"
    del old["table"]  # aggregated from the older results: the shares' total / realizations
    _, columns, rows = experiment.table(old)
    assert rows[0][columns.index("s/realization")] == "0.15"
    from skyshare.experiments.vhetnet_report import aggregate

    (row,) = aggregate(old)
    assert row["time_per_realization_s"] == pytest.approx(0.15)
    assert row["solver_calls"] is None and row["time_per_call_s"] is None


@pytest.mark.parametrize(
    ("experiment", "override", "needle"),
    [
        ("vhetnet-fig6", "scenario.n_ue=0", "scenario.n_ue is swept by this experiment "
         "(points[].scenario.n_ue: 4, 8, 16)"),
        ("vhetnet-fig7", "scenario.n_mbs=3", "scenario.n_mbs is swept by this experiment "
         "(points[].scenario.n_mbs: 1, 2, 4)"),
        ("vhetnet-fig7", "scenario.with_haps=false", "(points[].scenario.with_haps: true, false)"),
        ("vhetnet-fig8", "scenario.haps_n_v=4", "scenario.haps_n_v is swept"),
        ("vhetnet-fig9", "scenario.haps_power_dbm=20", "scenario.haps_power_dbm is swept"),
        ("vhetnet-table2", "options.distributed.rho_over_beta=1", "options.distributed."
         "rho_over_beta is swept by this experiment (points[].options.distributed.rho_over_beta"),
    ],
)  # fmt: skip
def test_a_fixed_field_the_sweep_sets_is_refused_before_anything_is_written(
    tmp_path, capsys, experiment, override, needle
):
    out = tmp_path / "run"
    assert main(["run", experiment, "--set", override, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "would be ignored" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_fixed_field_only_some_points_set_is_kept_for_the_others():
    """A point's own value wins only for that point: the fixed value is not ignored when some
    points leave the field unset, so it is accepted and used by them; a value every point
    sets (even the same one) is refused."""
    experiment = get_experiment("vhetnet-fig6")
    points = "points=[{scenario: {n_ue: 4, n_mbs: 1}}, {scenario: {n_ue: 8}}]"
    preset = experiment.load_preset("quick", overrides=[points, "scenario.n_mbs=2"])
    jobs = experiment.jobs(preset, "quick", ["mrt"])
    assert [job.params["scenario"] for job in jobs] == [
        {"n_mbs": 1, "n_ue": 4},
        {"n_mbs": 2, "n_ue": 8},
    ]
    every = "points=[{scenario: {n_ue: 4, n_mbs: 1}}, {scenario: {n_ue: 8, n_mbs: 1}}]"
    preset = experiment.load_preset("quick", overrides=[every, "scenario.n_mbs=2"])
    with pytest.raises(ConfigError, match=r"scenario.n_mbs is set by every point of this"):
        experiment.jobs(preset, "quick", ["mrt"])


def test_fixed_fields_the_sweep_leaves_alone_are_kept():
    experiment = get_experiment("vhetnet-fig6")
    preset = experiment.load_preset("quick", overrides=["scenario.n_mbs=2"])
    jobs = experiment.jobs(preset, "quick", ["mrt"])
    assert [job.params["scenario"] for job in jobs] == [{"n_mbs": 2, "n_ue": n} for n in (4, 8, 16)]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("points=[{scenario: {n_mbs: 2}}]", "points[0].scenario.n_ue: not set, but sweep = 'n_ue'"),
        ("sweep=null", "sweep: vhetnet-fig6 draws its figure against a scenario field"),
    ],
)
def test_a_sweep_figure_without_its_x_values_is_refused_before_any_job(
    tmp_path, capsys, override, needle
):
    out = tmp_path / "run"
    argv = ["run", "vhetnet-fig6", "--schemes", "mrt", "--set", override, "--out", str(out)]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()  # before: every job ran, then the figure failed


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("options.distributed.executor=bogus",
         "options.distributed.executor: must be one of local, ray, got 'bogus'"),
        ("options.centralized.solver=MOSEK",
         "options.centralized.solver: must be an installed conic solver, got 'MOSEK'"),
        ("options.centralized.interference=bogus",
         "options.centralized.interference: must be one of ('exact', 'jensen'), got 'bogus'"),
        ("options.distributed.progress=abc",
         "options.distributed.progress: must be true or false, got 'abc'"),
        ("options.centralized.progress=1", "options.centralized.progress: must be true or false"),
        ("options.distributed.rho_over_beta=-1",
         "options.distributed.rho_over_beta: must be a finite number > 0, got -1"),
        ("options.distributed.omega=abc", "options.distributed.omega: must be a number, got 'abc'"),
        ("options.distributed.agents=3", "options.distributed.agents: takes an agent group"),
        ("options.distributed.ledger=x", "options.distributed.ledger: takes a SignalingLedger"),
        ("options.pf-wmmse.tol=2", "options.pf-wmmse.tol: must be a number in [0, 1), got 2"),
    ],
)  # fmt: skip
def test_a_bad_option_value_is_refused_naming_its_path_before_anything_is_written(
    tmp_path, capsys, override, needle
):
    """Before: executor, solver, interference failed inside the job (after preset.yaml and
    job.json were written, blocking the corrected rerun), progress=abc ran, and agents/ledger
    crashed with a traceback after 3 retries. pf-wmmse is keyed but not run (--schemes
    leaves it out): its options are checked all the same."""
    out = tmp_path / "run"
    assert main(["run", "vhetnet-table3", "--set", override, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("scheme", ["centralized", "centralized-jensen"])
def test_a_centralized_model_over_the_memory_limit_is_refused_before_anything_is_written(
    tmp_path, capsys, monkeypatch, scheme
):
    """1024 UEs with table3's arrays: the SCA's CVXPY model (about K^3; 3.3 TB by the fitted
    estimate) was built inside the job until the kernel killed it at ~20 GB; now the job
    check refuses it by the same estimate, and the distributed scheme (no such model) passes
    that check."""
    from skyshare.experiments.jobs import Job
    from skyshare.experiments.vhetnet_pf import _check_job
    from skyshare.solvers.pf_sca import model_memory_bytes

    monkeypatch.setenv("SKYSHARE_MEMORY_LIMIT_GB", "8")
    out = tmp_path / "run"
    argv = ["run", "vhetnet-table3", "--schemes", scheme, "--out", str(out)]
    assert main([*argv, "--set", "scenario.n_ue=1024"]) == 2
    err = capsys.readouterr().err
    estimate = model_memory_bytes(1024, 5 * 64) / 1e9
    assert "K = 1024 UEs and 5 x 64 antenna coordinates" in err
    assert f"needs about {estimate:.3g} GB" in err and "Traceback" not in err
    assert not out.exists()
    params = {"scenario": {"n_ue": 1024}, "options": {}}
    _check_job(Job("vhetnet-table3", "distributed", 0, params))  # builds no CVXPY model


def test_a_bad_option_set_by_a_point_is_named_by_the_points_path():
    from skyshare.experiments.vhetnet_pf import Preset

    experiment = get_experiment("vhetnet-table3")
    preset = Preset(
        schemes=["distributed"],
        options={"distributed": {"max_outer": 2}},
        points=[{}, {"options": {"distributed": {"executor": "bogus"}}}],
    )
    with pytest.raises(ConfigError, match=r"^points\[1\]\.options\.distributed\.executor: "):
        experiment.jobs(preset, "custom", None)
    preset = Preset(schemes=["distributed"], options={"distributed": {"max_outer": 0}})
    with pytest.raises(ConfigError, match=r"^options\.distributed\.max_outer: must be an integer"):
        experiment.jobs(preset, "custom", None)


def test_python_object_options_still_work_when_building_a_scheme_in_python():
    from skyshare.signaling import SignalingLedger

    problem = small_problem()
    ledger = SignalingLedger({"bs": problem.shape[2]}, problem.shape[0])
    scheme = VHETNET_SCHEMES.build("distributed", {"ledger": ledger, "max_outer": 1})
    assert scheme.options["ledger"] is ledger
    with pytest.raises(ConfigError, match="option executor: must be one of local, ray"):
        VHETNET_SCHEMES.build("distributed", {"executor": "bogus"})


@pytest.mark.parametrize(
    ("sweep", "label", "integer"),
    [("n_ue", "number of UEs", True), ("n_mbs", "number of MBSs", True),
     ("haps_power_dbm", "HAPS transmit power (dBm)", False)],
)  # fmt: skip
def test_sweep_figures_label_the_x_axis_readably_with_integer_ticks_for_counts(
    tmp_path, monkeypatch, sweep, label, integer
):
    """Before: the x axis read ``n_ue`` / ``n_mbs`` and Fig. 7 ticked 1.5, 2.5 MBSs."""
    import skyshare.plots.vhetnet as plots
    from skyshare.experiments.vhetnet_report import sweep_axis

    assert sweep_axis(sweep) == (label, integer)
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: figures.append(figure) or path)
    curves = {"mrt": ([1.0, 2.0, 4.0], [1.0, 2.0, 3.0], [0.1, 0.1, 0.1])}
    plots.plot_sweep([("SE", curves)], label, tmp_path / "f.png", "t", integer_x=integer)
    (axis,) = figures[0].axes
    assert axis.get_xlabel() == label
    ticks = [t for t in axis.get_xticks() if 1 <= t <= 4]
    assert all(float(t).is_integer() for t in ticks) == integer


def test_an_option_error_survives_pickling():
    """Raised in a worker process or a Ray task, it crosses a pickle: same type, text and
    fields (the default exception pickling passes only the message to a 3-argument init)."""
    import pickle

    from skyshare.schemes.vhetnet import OptionError

    error = OptionError("distributed", "executor", "must be one of ('local', 'ray')")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is OptionError and str(copy) == str(error)
    assert (copy.scheme, copy.option, copy.problem) == (error.scheme, error.option, error.problem)
