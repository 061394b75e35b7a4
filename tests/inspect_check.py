"""Shared check of ``skyshare inspect``: its JSON link budget equals the library's."""

from __future__ import annotations

import json
import math
from pathlib import Path

from skyshare import cli


def assert_inspect_json_is_the_link_budget(
    cls, tmp_path: Path, *, preset: str, batch: int, seed: int, slot: int = 0
) -> None:
    """Run ``skyshare inspect`` with ``--json`` and compare every row with
    ``cls(config, batch).reset(seed)``, stepped ``slot`` times, ``.link_budget()``: the same
    quantities in the same order, the same values (NaN where the library has NaN)."""
    path = tmp_path / f"{cls.name}-inspect.json"
    argv = ["inspect", cls.name, "--preset", preset, "--batch", str(batch), "--seed", str(seed)]
    assert cli.main([*argv, "--slot", str(slot), "--json", str(path)]) == 0
    payload = json.loads(path.read_text())
    scenario = cls(cls.config_from(preset), batch_size=batch)
    scenario.reset(seed=seed)
    for _ in range(slot):
        scenario.step()
    expected = scenario.link_budget().rows
    assert payload["scenario"] == cls.name and payload["batch"] == batch
    assert [row["quantity"] for row in payload["link_budget"]] == [r.quantity for r in expected]
    for row, reference in zip(payload["link_budget"], expected, strict=True):
        value = float(reference.value)
        if math.isnan(value):
            assert math.isnan(row["value"]), row["quantity"]
        else:
            assert row["value"] == value, row["quantity"]
        assert row["unit"] == reference.unit
