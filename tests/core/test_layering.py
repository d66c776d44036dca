"""The package layering: `core` at the bottom, then the pure packages, then the collectors and probes, the agent
and the server, the CLI on top. A package imports only the packages below it (and itself), so the pure ones stay
testable and installable alone (an agent host has no server stack).

Two checks: a static one over the source (every `import` anywhere in a module: top level, functions and
`TYPE_CHECKING` blocks alike) and a live one importing every `core` module in a fresh interpreter.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT_PACKAGES = ("core", "inventory", "alerting", "dashboards", "collectors", "probes", "agent", "server", "cli")

# What each package may import of the project (itself included). Not listed: cli, which may import anything.
ALLOWED = {
    "core": {"core"},
    "inventory": {"core", "inventory"},
    "alerting": {"core", "alerting"},
    "dashboards": {"core", "dashboards"},
    "collectors": {"core", "collectors"},  # the agent composes the collectors, never the other way round
    "probes": {"core", "probes"},
    "agent": {"core", "collectors", "probes", "agent"},
    "server": {"core", "inventory", "alerting", "dashboards", "collectors", "probes", "server"},
}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level project package) of every absolute import in the file at `path`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in PROJECT_PACKAGES]
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_package_imports_only_the_packages_below_it(package):
    modules = sorted((ROOT / package).rglob("*.py"))
    assert modules, f"no Python files under {package}/"
    violations = [
        f"{path.relative_to(ROOT)}:{line} imports {imported}"
        for path in modules
        for line, imported in project_imports(path)
        if imported not in ALLOWED[package]
    ]
    assert violations == []


def test_the_static_check_sees_imports_inside_functions_and_type_checking_blocks(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nimport core.models\n"
        "if TYPE_CHECKING:\n    from server.settings import Settings\n"
        "def f():\n    import agent.settings, json\n    from . import sibling\n",
        encoding="utf-8",
    )
    assert project_imports(module) == [(2, "core"), (4, "server"), (6, "agent")]


# Imports every module of core in a fresh interpreter and prints which project packages got loaded.
IMPORT_ALL_OF_CORE = """
import importlib, json, pkgutil, sys
import core
names = sorted(info.name for info in pkgutil.walk_packages(core.__path__, "core."))
for name in names:
    importlib.import_module(name)
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1])))
print(json.dumps({"imported": names, "loaded": loaded}))
"""


def test_importing_all_of_core_loads_no_outer_project_package():
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL_OF_CORE, json.dumps(PROJECT_PACKAGES)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )
    report = json.loads(result.stdout)
    assert {"core.settings", "core.models", "core.collect"} <= set(report["imported"])  # the walk did find core
    assert report["loaded"] == ["core"]
