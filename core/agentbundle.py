"""The offline agent bundle: its file names, its description (`bundle.json`) and the wheel tag rules.

An agency host has no package index. The central server therefore serves, per CPU architecture, one tarball
holding every wheel the agent needs (egovmon's own and its locked dependency set, built for that architecture
by `egovmon agent bundle build`) and `install.sh`, which installs them into a virtual environment of their own
under /opt/egovmon with `pip install --no-index`. The builder writes and the server reads the files named here;
both speak `BundleInfo`. Pure: no I/O.

Wheel file names and tags: https://packaging.python.org/en/latest/specifications/binary-distribution-format/
and the platform tags of manylinux: https://peps.python.org/pep-0600/ .
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Arch = Literal["x86_64", "aarch64"]
ARCHES: tuple[Arch, ...] = ("x86_64", "aarch64")

# The oldest glibc the bundle promises to run on: manylinux2014 = glibc 2.17 (CentOS 7 era), so Kylin V10, UOS 20
# and Debian 10 and newer all qualify.
MANYLINUX = "manylinux2014"
MAX_INFO_BYTES = 256 * 1024  # bundle.json: about 40 wheels; the server refuses to parse anything larger
SHA256_PATTERN = r"^[0-9a-f]{64}$"
VERSION_PATTERN = r"^[0-9A-Za-z.+!_-]{1,64}$"


def tarball_name(arch: Arch) -> str:
    """The bundle's file name in the bundle directory (one current bundle per architecture)."""
    return f"egovmon-agent-{arch}.tar.gz"


def info_name(arch: Arch) -> str:
    """The name of the bundle's description next to its tarball."""
    return f"egovmon-agent-{arch}.json"


class WheelInfo(BaseModel):
    """One wheel inside the bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(max_length=255, pattern=r"^[A-Za-z0-9_.+!-]+\.whl$")
    sha256: str = Field(pattern=SHA256_PATTERN)
    size_bytes: int = Field(ge=0)


class BundleInfo(BaseModel):
    """What a built bundle holds: written by the builder as `egovmon-agent-<arch>.json`, read by the server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: Arch
    version: str = Field(pattern=VERSION_PATTERN, description="The egovmon version the bundle installs")
    python_versions: tuple[str, ...] = Field(min_length=1, max_length=8, description="e.g. 3.11: wheels are built for these")
    platform: str = Field(pattern=r"^[a-z0-9_]{1,64}$", description="manylinux2014_<arch>: the oldest glibc it runs on")
    built_at: datetime
    tarball: str = Field(max_length=255, pattern=r"^[A-Za-z0-9_.-]+\.tar\.gz$")
    tarball_sha256: str = Field(pattern=SHA256_PATTERN)
    tarball_bytes: int = Field(ge=0)
    wheels: tuple[WheelInfo, ...] = Field(max_length=1000)


class WheelName(BaseModel):
    """A wheel file name split into its parts (PEP 427): name-version(-build)?-python-abi-platform.whl."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    python_tags: frozenset[str]
    abi_tags: frozenset[str]
    platform_tags: frozenset[str]


class WheelNameError(ValueError):
    """Not a wheel file name."""


_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


def parse_wheel_name(filename: str) -> WheelName:
    """The parts of a wheel's file name. Raises WheelNameError."""
    match = _WHEEL.match(filename)
    if match is None:
        raise WheelNameError(f"not a wheel file name: {filename!r}")
    return WheelName(
        name=canonical_name(match["name"]), version=match["version"], python_tags=frozenset(match["py"].split(".")),
        abi_tags=frozenset(match["abi"].split(".")), platform_tags=frozenset(match["plat"].split(".")),
    )


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of -_. as one dash."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _glibc(platform_tag: str, arch: str) -> tuple[int, int] | None:
    """The glibc version a manylinux platform tag needs on `arch`, None for another tag or architecture."""
    legacy = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
    base, _, tag_arch = platform_tag.partition(f"_{arch}")
    if tag_arch or not platform_tag.endswith(f"_{arch}"):
        return None
    if base in legacy:
        return legacy[base]
    found = re.fullmatch(r"manylinux_(\d+)_(\d+)", base)
    return (int(found[1]), int(found[2])) if found else None


def platform_problem(wheel: WheelName, *, arch: Arch, python_version: str, max_glibc: tuple[int, int] = (2, 17)) -> str | None:
    """Why `wheel` cannot be installed by CPython `python_version` on a glibc `max_glibc` Linux of `arch`, or None.

    Accepted: pure wheels (platform `any`); binary wheels with a manylinux tag of this architecture needing at most
    `max_glibc`, built for this CPython (cpXY, or the stable ABI abi3 of an older or equal CPython).
    """
    major, minor = (int(part) for part in python_version.split(".")[:2])
    if "any" in wheel.platform_tags:
        return None if any(tag.startswith(("py3", f"cp{major}{minor}")) for tag in wheel.python_tags) else "not for Python 3"
    needs = [_glibc(tag, arch) for tag in wheel.platform_tags]
    if not any(glibc is not None and glibc <= max_glibc for glibc in needs):
        return f"platform {'.'.join(sorted(wheel.platform_tags))} is not manylinux for {arch} with glibc <= {max_glibc[0]}.{max_glibc[1]}"
    return _abi_problem(wheel, major, minor)


def _abi_problem(wheel: WheelName, major: int, minor: int) -> str | None:
    """Why a binary wheel does not fit CPython major.minor (neither its own ABI nor a usable abi3), or None."""
    if f"cp{major}{minor}" in wheel.abi_tags:
        return None
    if "abi3" in wheel.abi_tags and any(_stable_abi_ok(tag, major, minor) for tag in wheel.python_tags):
        return None
    return f"built for {'.'.join(sorted(wheel.python_tags))}/{'.'.join(sorted(wheel.abi_tags))}, not CPython {major}.{minor}"


def _stable_abi_ok(python_tag: str, major: int, minor: int) -> bool:
    found = re.fullmatch(r"cp(\d)(\d+)", python_tag)
    return found is not None and int(found[1]) == major and int(found[2]) <= minor


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """A sort key for egovmon's own versions (1.2.10 after 1.2.9; a release after its own pre-releases is not
    attempted: egovmon releases plain dotted numbers)."""
    parts = re.split(r"[.+!_-]", version)
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in parts)


def newer(candidate: str, installed: str) -> bool:
    """Whether version `candidate` is newer than `installed` (an empty `installed`: unknown, so no)."""
    return bool(installed) and version_key(candidate) > version_key(installed)
