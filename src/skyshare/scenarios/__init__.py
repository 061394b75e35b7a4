"""One module per seed system; :data:`SCENARIOS` maps CLI names to scenario classes."""

from __future__ import annotations

from skyshare.errors import UnknownNameError
from skyshare.scenarios.base import LinkBudget, LinkBudgetRow, Scenario
from skyshare.scenarios.catn import CatnConfig, CatnScenario, CatnState
from skyshare.scenarios.multiband import MultibandConfig, MultibandScenario, MultibandState
from skyshare.scenarios.tn_ntn import TnNtnConfig, TnNtnScenario, TnNtnState
from skyshare.scenarios.vhetnet import VhetnetConfig, VhetnetScenario, VhetnetState

SCENARIOS: dict[str, type[Scenario]] = {
    CatnScenario.name: CatnScenario,
    MultibandScenario.name: MultibandScenario,
    TnNtnScenario.name: TnNtnScenario,
    VhetnetScenario.name: VhetnetScenario,
}


def get_scenario(name: str) -> type[Scenario]:
    """The scenario class registered as ``name`` (clear error listing the names otherwise)."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown scenario {name!r}; available: {', '.join(sorted(SCENARIOS))}"
        ) from None


__all__ = [
    "SCENARIOS",
    "CatnConfig",
    "CatnScenario",
    "CatnState",
    "LinkBudget",
    "LinkBudgetRow",
    "MultibandConfig",
    "MultibandScenario",
    "MultibandState",
    "Scenario",
    "TnNtnConfig",
    "TnNtnScenario",
    "TnNtnState",
    "VhetnetConfig",
    "VhetnetScenario",
    "VhetnetState",
    "get_scenario",
]
