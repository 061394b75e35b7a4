"""Every figure skyshare draws, on matplotlib's object API.

Figures are built as :class:`matplotlib.figure.Figure` objects (no state-machine interface, no
global backend switch), so importing or using skyshare never changes the caller's backend.

* :mod:`skyshare.plots.figures`: the building blocks (:func:`new_figure`, :func:`save_figure`)
  and the experiments' result figures (training curves, bar charts, capacity sweeps).
* :mod:`skyshare.plots.topology`: :func:`plot_topology`, the layout of a scenario's
  realization 0, one drawing per system; the scenarios provide the data, these draw it.
"""

from __future__ import annotations

from skyshare.plots.figures import (
    TrainingCurve,
    moving_average,
    new_figure,
    plot_capacity_sweep,
    plot_fig8_bars,
    plot_online_log,
    plot_training_curves,
    save_figure,
)
from skyshare.plots.topology import plot_topology

__all__ = [
    "TrainingCurve",
    "moving_average",
    "new_figure",
    "plot_capacity_sweep",
    "plot_fig8_bars",
    "plot_online_log",
    "plot_topology",
    "plot_training_curves",
    "save_figure",
]
