"""The plots layer: topology figures of every scenario, drawn without touching matplotlib's
global state (no backend switch, no pyplot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from skyshare import plots
from skyshare.errors import UnknownNameError
from skyshare.plots import plot_topology

PNG = b"\x89PNG\r\n\x1a\n"

# Runs in a fresh interpreter, so that no other test's imports (pyplot included) interfere.
# The caller's backend is "svg" (set through MPLBACKEND): a drawing that switched to Agg, or
# pulled in pyplot, would show up below.
_DRAW_ALL = """
import json, sys
import matplotlib

before = matplotlib.get_backend()
had_pyplot = "matplotlib.pyplot" in sys.modules
from skyshare.plots import plot_topology
from skyshare.scenarios import SCENARIOS

sizes = {}
for name in ("catn", "tn_ntn", "vhetnet", "multiband"):
    scenario = SCENARIOS[name].from_preset("quick", batch_size=2)
    scenario.reset(seed=0)
    path = plot_topology(scenario, f"{sys.argv[1]}/{name}.png")
    sizes[name] = path.stat().st_size
pyplot = "matplotlib.pyplot" in sys.modules
print(json.dumps({"before": before, "after": matplotlib.get_backend(), "sizes": sizes,
                  "had_pyplot": had_pyplot, "pyplot": pyplot}))
"""


def test_topology_of_every_scenario_without_global_matplotlib_state(tmp_path):
    env = {**os.environ, "MPLBACKEND": "svg"}
    done = subprocess.run(
        [sys.executable, "-c", _DRAW_ALL, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] == report["after"] == "svg"
    assert not report["had_pyplot"] and not report["pyplot"]
    assert set(report["sizes"]) == {"catn", "tn_ntn", "vhetnet", "multiband"}
    for name, size in report["sizes"].items():
        data = (tmp_path / f"{name}.png").read_bytes()
        assert data[:8] == PNG and size == len(data) > 10_000, name


def test_unknown_scenario_name_raises():
    with pytest.raises(UnknownNameError, match=r"'nope'.*catn, multiband, tn_ntn, vhetnet"):
        plot_topology(SimpleNamespace(name="nope"), "never.png")
    with pytest.raises(UnknownNameError, match="None"):
        plot_topology(object(), "never.png")


def test_package_reexports():
    assert "plot_topology" in plots.__all__
    for name in plots.__all__:
        assert getattr(plots, name) is not None
    assert plots.new_figure is plots.figures.new_figure
    assert plots.plot_topology is plots.topology.plot_topology


def test_training_curves_colour_per_scheme_and_width_per_seed(tmp_path, monkeypatch):
    # twelve curves = six schemes x two seeds: more than the ten colours of the cycle, yet
    # every scheme keeps one colour and its second seed is drawn thinner
    from skyshare.plots import figures

    drawn = []

    def spy(figure, path):
        top = figure.axes[0]
        drawn.extend(
            (line.get_label(), line.get_color(), line.get_linewidth()) for line in top.get_lines()
        )
        return figures.Path(path)

    monkeypatch.setattr(figures, "save_figure", spy)
    curves = [
        figures.TrainingCurve(
            f"S{s}, seed {seed}",
            [0, 1, 2],
            [1.0, 2.0, 3.0],
            [[0.5, 0.5, 0.5]],
            1e-10,
            group=f"S{s}",
        )
        for s in range(6)
        for seed in (0, 1)
    ]
    figures.plot_training_curves(curves, tmp_path / "c.png", "test")
    lines = {label: (colour, width) for label, colour, width in drawn}
    colours = [lines[f"S{s}, seed 0"][0] for s in range(6)]
    assert len(set(colours)) == 6
    for s in range(6):
        assert lines[f"S{s}, seed 1"][0] == lines[f"S{s}, seed 0"][0]
        assert lines[f"S{s}, seed 1"][1] < lines[f"S{s}, seed 0"][1]


def test_training_curves_title_names_the_window_actually_used(tmp_path, monkeypatch):
    """The moving average spans min(41, slots): a 30-slot run says 30, a 100-slot run 41."""
    from skyshare.plots import figures

    titles = []

    def spy(figure, path):
        titles.append(figure.axes[0].get_title())
        return figures.Path(path)

    monkeypatch.setattr(figures, "save_figure", spy)
    for n in (30, 100):
        curve = figures.TrainingCurve("S", list(range(n)), [1.0] * n, [[0.5] * n], 1e-10)
        figures.plot_training_curves([curve], tmp_path / "c.png", "run")
    sparse = figures.TrainingCurve("DFP", [0.0, 60.0, 120.0], [1.0] * 3, [[0.5] * 3], 1e-10)
    figures.plot_training_curves([sparse], tmp_path / "c.png", "run")  # drawn unsmoothed
    assert titles == [
        "run, moving average over 30 slots",
        "run, moving average over 41 slots",
        "run",
    ]
