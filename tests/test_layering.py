"""The package's layers (docs/developers.md): imports only point down.

Every ``skyshare`` import in ``src/skyshare`` (module level or inside a function) is read from
the source with ``ast`` and its target's layer compared with the importer's. Same-layer imports
are allowed; an import into a higher layer fails the test unless it is one of the documented
exceptions below (and an exception that no longer exists fails it too, so the list stays true).
"""

from __future__ import annotations

import ast
from pathlib import Path

import skyshare

PACKAGE = Path(skyshare.__file__).parent

LAYERS = (
    "ground",  # units, config, errors, checks, signaling, runtime
    "geometry",
    "channels",
    "metrics",
    "problems",  # solvers/problem.py, solvers/*_problem.py, beamforming.py
    "scenarios",
    "solvers",
    "envs",
    "rl",
    "schemes",
    "plots",
    "experiments",
    "top",  # cli, __main__, fuzz (a tool over every layer), the package itself
)
GROUND = {"units", "config", "errors", "checks", "signaling", "runtime", "__version__"}

DOCUMENTED_EXCEPTIONS = {
    # TnNtnScenario.round_robin_assignment: the paper's reference schedule of the scenario's
    # link budget, written once in the solver layer (docs/developers.md)
    ("skyshare.scenarios.tn_ntn", "skyshare.solvers.ofdm_allocation"),
}


def layer(module: str) -> str:
    """The layer of a dotted ``skyshare...`` module name."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in ("cli", "__main__", "fuzz"):
        return "top"
    head = parts[0]
    if head in GROUND:
        return "ground"
    if head == "beamforming":
        return "problems"
    if head == "solvers" and len(parts) > 1 and parts[1].endswith("problem"):
        return "problems"
    assert head in LAYERS, f"{module}: a module outside the documented layers"
    return head


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST) -> list[str]:
    """Every absolute ``skyshare`` module an AST imports (``from skyshare import x`` as
    ``skyshare.x``)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "skyshare":
                found += [f"skyshare.{alias.name}" for alias in node.names]
            elif node.module.startswith("skyshare."):
                found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("skyshare.")]
    return found


def upward_imports() -> set[tuple[str, str]]:
    upward = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        rank = LAYERS.index(layer(importer))
        for target in imported_modules(ast.parse(path.read_text(), filename=str(path))):
            if LAYERS.index(layer(target)) > rank:
                upward.add((importer, target))
    return upward


def test_imports_only_point_down_except_the_documented_exceptions():
    assert upward_imports() == DOCUMENTED_EXCEPTIONS


def test_the_checker_sees_an_upward_import():
    """The reader finds function-level imports and ``from skyshare import x`` forms, and the
    layer order puts an env above a scenario (so the test above can fail)."""
    tree = ast.parse(
        "def f():\n    from skyshare.envs.catn import CatnEnv\n"
        "from skyshare import metrics\nimport skyshare.rl.cup\n"
    )
    found = sorted(imported_modules(tree))
    assert found == ["skyshare.envs.catn", "skyshare.metrics", "skyshare.rl.cup"]
    assert LAYERS.index(layer("skyshare.envs.catn")) > LAYERS.index(layer("skyshare.scenarios"))
    assert layer("skyshare.solvers.cellfree_problem") == "problems"
    assert layer("skyshare.solvers.pfbwd") == "solvers"
    assert layer("skyshare.runtime") == "ground"
