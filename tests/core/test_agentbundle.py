"""Wheel file names and platform tags of the offline agent bundle (core.agentbundle), on real wheel names that pip
downloaded for the agent's lock (x86_64 and aarch64, CPython 3.11)."""

from __future__ import annotations

import pytest

from core.agentbundle import WheelNameError, newer, parse_wheel_name, platform_problem

FITS = [
    ("x86_64", "pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
    ("x86_64", "cryptography-50.0.2-cp311-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"),
    ("x86_64", "psutil-7.2.2-cp36-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl"),
    ("aarch64", "cffi-2.1.1-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl"),
    ("aarch64", "pyyaml-6.0.4-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.manylinux_2_28_aarch64.whl"),
    ("aarch64", "shellingham-1.5.4-py2.py3-none-any.whl"),
    ("x86_64", "pip-26.3-py3-none-any.whl"),
]

MISFITS = [
    ("aarch64", "pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "not manylinux for aarch64"),
    ("x86_64", "cffi-2.1.1-cp311-cp311-manylinux2014_aarch64.manylinux_2_17_aarch64.whl", "not manylinux for x86_64"),
    ("x86_64", "pydantic_core-2.50.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", "not CPython 3.11"),
    ("x86_64", "cryptography-50.0.2-cp311-abi3-manylinux_2_34_x86_64.whl", "glibc <= 2.17"),
    ("x86_64", "psutil-7.2.2-cp36-abi3-musllinux_1_2_x86_64.whl", "not manylinux"),
    ("x86_64", "cryptography-50.0.2-cp313-abi3-manylinux2014_x86_64.whl", "not CPython 3.11"),  # stable ABI of a newer CPython
    ("x86_64", "pyyaml-6.0.4-cp311-cp311-linux_x86_64.whl", "not manylinux"),
]


@pytest.mark.parametrize(("arch", "file"), FITS)
def test_wheels_that_install_on_the_architecture(arch: str, file: str):
    assert platform_problem(parse_wheel_name(file), arch=arch, python_version="3.11") is None


@pytest.mark.parametrize(("arch", "file", "problem"), MISFITS)
def test_wheels_that_do_not(arch: str, file: str, problem: str):
    found = platform_problem(parse_wheel_name(file), arch=arch, python_version="3.11")
    assert found is not None and problem in found


def test_wheel_name_parts():
    wheel = parse_wheel_name("typing_extensions-4.16.0-py3-none-any.whl")
    assert (wheel.name, wheel.version, wheel.platform_tags) == ("typing-extensions", "4.16.0", frozenset({"any"}))
    with pytest.raises(WheelNameError):
        parse_wheel_name("egovmon-0.1.0.tar.gz")


@pytest.mark.parametrize(("candidate", "installed", "expected"), [
    ("0.2.0", "0.1.0", True), ("0.1.10", "0.1.9", True), ("0.1.0", "0.1.0", False), ("0.1.0", "0.2.0", False),
    ("0.2.0", "", False),  # an agent of unknown version is not told to upgrade
])  # fmt: skip
def test_newer(candidate: str, installed: str, expected: bool):
    assert newer(candidate, installed) is expected
