"""The agent's lock (deploy/agent-requirements.txt) against pyproject.toml, and the bundle builder's pure checks."""

from __future__ import annotations

import tomllib

import pytest
from packaging.requirements import Requirement
from typer.testing import CliRunner

from cli.bundle import DEFAULT_LOCK, SOURCE_ROOT, BundleError, check_wheels, read_lock
from cli.main import app
from core.agentbundle import canonical_name


def test_the_lock_pins_every_agent_dependency_within_its_range():
    """Each [project] dependency (the agent's: no extras) is pinned, at a version its range allows; nothing of a
    server-only extra is in it (the bundle stays small)."""
    project = tomllib.loads((SOURCE_ROOT / "pyproject.toml").read_text())["project"]
    pins = read_lock(DEFAULT_LOCK.read_text())
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = canonical_name(requirement.name)
        assert name in pins, f"{name} is not in {DEFAULT_LOCK.name}"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {requirement.specifier}"
    server_only = {canonical_name(Requirement(r).name) for r in project["optional-dependencies"]["server"]}
    assert server_only & set(pins) <= {canonical_name(Requirement(r).name) for r in project["dependencies"]}
    assert {"fastapi", "sqlalchemy", "weasyprint", "numpy"}.isdisjoint(pins)
    assert "pip" in pins  # install.sh runs pip from its wheel


def test_bundle_lock_command_lists_the_same_packages_as_the_lock():
    """`egovmon agent bundle lock` (the lock of this environment) names the same distributions as the committed one."""
    result = CliRunner().invoke(app, ["agent", "bundle", "lock"])
    assert result.exit_code == 0, result.output
    here = read_lock(result.output)
    assert set(here) == set(read_lock(DEFAULT_LOCK.read_text())) - {"pip"}


@pytest.mark.parametrize("line", ["pydantic>=2", "pydantic", "pydantic==2.1; python_version<'3.12'", "-e ."])
def test_a_lock_line_that_is_not_a_pin_is_refused(line: str):
    with pytest.raises(BundleError, match="expected name==version"):
        read_lock(line)


def test_wheels_are_checked_against_the_lock():
    pins = {"pyyaml": "6.0.4", "idna": "3.20", "psutil": "7.2.2"}
    files = ["PyYAML-6.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl", "idna-3.19-py3-none-any.whl",
             "six-1.16.0-py2.py3-none-any.whl"]  # fmt: skip
    assert check_wheels(files, pins, arch="aarch64", python_version="3.11") == [
        ("PyYAML-6.0.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl: platform "
         "manylinux2014_x86_64.manylinux_2_17_x86_64 is not manylinux for aarch64 with glibc <= 2.17"),
        "idna-3.19-py3-none-any.whl: the lock says 3.20",
        "six-1.16.0-py2.py3-none-any.whl: not in the lock",
        "psutil==7.2.2: no wheel",
    ]


def test_build_refuses_an_unknown_architecture(tmp_path):
    result = CliRunner().invoke(app, ["agent", "bundle", "build", "--arch", "riscv64", "--output", str(tmp_path)])
    assert result.exit_code == 2 and "x86_64, aarch64" in result.output
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_a_python_version_that_is_not_one(tmp_path):
    result = CliRunner().invoke(app, ["agent", "bundle", "build", "--arch", "x86_64", "--output", str(tmp_path),
                                      "--python-version", "3.11; rm -rf /"])  # fmt: skip
    assert result.exit_code == 1 and "CPython versions such as 3.11" in result.output
    assert list(tmp_path.iterdir()) == []
