"""Small multiband instances and a hand water-filling shared by the seed-004 solver tests."""

from __future__ import annotations

import torch

from skyshare.scenarios.multiband import MultibandConfig, MultibandScenario


def tiny(batch_size: int = 3, **changes) -> MultibandScenario:
    """2 cells, M = 3, U = 2, F = 3, float64: small enough for per-user Python loops."""
    fields = {"n_cells": 2, "n_antennas": 3, "users_per_cell": 2, "n_freq": 3, "n_blocks": 4}
    fields.update(changes)
    return MultibandScenario(MultibandConfig(**fields), batch_size=batch_size, dtype=torch.float64)


def hand_water_filling(floors: list[float], budget: float) -> list[float]:
    """Textbook water-filling on Python floats: activate the channels in ascending floor order
    while the level (P + sum of active floors) / count stays above the next floor."""
    order = sorted(range(len(floors)), key=lambda f: floors[f])
    level = floors[order[0]] + budget
    for count in range(1, len(floors) + 1):
        candidate = (budget + sum(floors[f] for f in order[:count])) / count
        if candidate > floors[order[count - 1]]:
            level = candidate
    return [max(level - n, 0.0) for n in floors]
