"""`egovmon agent bundle`: build the offline agent bundle the server hands to agency hosts.

`build` makes, for one architecture, a tarball with egovmon's own wheel, every wheel of the agent's locked
dependency set (deploy/agent-requirements.txt) built for that architecture and CPython version, pip's own wheel
(install.sh runs pip from it, so a host needs neither pip nor ensurepip), install.sh and a SHA-256 manifest;
next to it `egovmon-agent-<arch>.json` (`core.agentbundle.BundleInfo`) and `<tarball>.sha256`. Point the server's
`server.agent_bundle_dir` at the output directory.

Downloads go through pip (`pip download --only-binary=:all: --platform manylinux2014_<arch>`), first from the
wheel cache alone (`--no-index --find-links CACHE`, no network) and only when that cannot satisfy the lock from
the configured package index; what was downloaded is added to the cache.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from core.agentbundle import (
    ARCHES,
    MANYLINUX,
    Arch,
    BundleInfo,
    WheelInfo,
    info_name,
    parse_wheel_name,
    platform_problem,
    tarball_name,
)

bundle_app = typer.Typer(help="The offline agent bundle served by the server to agency hosts.", no_args_is_help=True)

SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout egovmon's own wheel is built from
DEFAULT_LOCK = SOURCE_ROOT / "deploy" / "agent-requirements.txt"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "egovmon" / "wheels"
FIXED_MTIME = 1_600_000_000  # tar members get one fixed time, so the same inputs give the same tarball


class BundleError(Exception):
    """The bundle cannot be built as asked; the message says why."""


def read_lock(text: str) -> dict[str, str]:
    """`name==version` lines of a lock file → {canonical name: version}. Raises BundleError on anything else."""
    from core.agentbundle import canonical_name

    pins: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip() or any(c in line for c in "<>;[ "):
            raise BundleError(f"lock line {number}: expected name==version, got {raw!r}")
        pins[canonical_name(name.strip())] = version.strip()
    return pins


def check_wheels(files: Sequence[str], pins: dict[str, str], *, arch: Arch, python_version: str) -> list[str]:
    """What is wrong with a bundle's wheel files for `arch` and CPython `python_version`: a pin missing, a wheel not in
    the lock or at another version, or one that does not install there (its platform tags). Empty when all is well."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for file in files:
        wheel = parse_wheel_name(file)
        seen[wheel.name] = wheel.version
        if wheel.name not in pins:
            problems.append(f"{file}: not in the lock")
        elif pins[wheel.name] != wheel.version:
            problems.append(f"{file}: the lock says {pins[wheel.name]}")
        problem = platform_problem(wheel, arch=arch, python_version=python_version)
        if problem:
            problems.append(f"{file}: {problem}")
    problems += [f"{name}=={version}: no wheel" for name, version in pins.items() if name not in seen]
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    # SOURCE_DATE_EPOCH: the wheel's zip entries get this time instead of now (reproducible builds)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(FIXED_MTIME)}
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, check=False, env=env)  # fmt: skip


def download_wheels(lock: Path, *, arch: Arch, python_version: str, cache: Path, into: Path) -> None:
    """Every wheel of `lock` for `arch` and `python_version` into `into`: from `cache` alone if it has them all,
    else from the package index (and then kept in `cache`). Raises BundleError with pip's message."""
    target = [
        "download", "--no-deps", "--only-binary=:all:", "--platform", f"{MANYLINUX}_{arch}",
        "--python-version", python_version, "--implementation", "cp", "-r", str(lock), "-d", str(into),
    ]  # fmt: skip
    cache.mkdir(parents=True, exist_ok=True)
    offline = _pip([*target, "--no-index", "--find-links", str(cache)])
    if offline.returncode == 0:
        return
    online = _pip(target)
    if online.returncode != 0:
        raise BundleError(f"pip download for {arch} failed:\n{online.stderr[-4000:]}")
    for wheel in into.glob("*.whl"):
        if not (cache / wheel.name).exists():
            shutil.copy2(wheel, cache / wheel.name)


def _has_build_backend() -> bool:
    from importlib.util import find_spec

    return find_spec("setuptools") is not None and find_spec("wheel") is not None


def build_own_wheel(source: Path, into: Path) -> Path:
    """egovmon's own wheel, built from the checkout at `source` (no dependencies). Raises BundleError."""
    with tempfile.TemporaryDirectory(prefix="egovmon-wheel-") as build_dir:
        # Build from a copy, so the checkout gets no build/ or egg-info/ and two builds do not race on them.
        copy = Path(build_dir) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build",
                                                                     "dist", "tests", "bench", ".ci", "egovmon-data"))  # fmt: skip
        # Build in this environment when it has the build backend (no network); else pip fetches it (build isolation).
        isolation = ["--no-build-isolation"] if _has_build_backend() else []
        done = _pip(["wheel", "--no-deps", *isolation, "-q", "-w", str(into), str(copy)])
        if done.returncode != 0:
            raise BundleError(f"building egovmon's wheel failed:\n{done.stderr[-4000:]}")
    wheels = sorted(into.glob("egovmon-*.whl"))
    if len(wheels) != 1:
        raise BundleError(f"expected one egovmon wheel, found {[w.name for w in wheels]}")
    return wheels[0]


def install_script() -> bytes:
    """install.sh as the server serves it (also inside every bundle, for a host reached by USB stick)."""
    return resources.files("server.agentdist").joinpath("install.sh").read_bytes()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    member = tarfile.TarInfo(name)
    member.size, member.mode, member.mtime = len(data), mode, FIXED_MTIME
    member.uname = member.gname = "root"
    tar.addfile(member, io.BytesIO(data))


def build_bundle(
    *, arch: Arch, output: Path, python_versions: Sequence[str] = ("3.11",), lock: Path = DEFAULT_LOCK,
    source: Path = SOURCE_ROOT, cache: Path = DEFAULT_CACHE, now: datetime | None = None,
) -> BundleInfo:
    """Build the bundle for `arch` into `output` (tarball, its .sha256 and the .json description) and return its
    description. The tarball holds `egovmon-agent/`: `wheels/*.whl`, `install.sh`, `bundle.json` (the wheel list)
    and `SHA256SUMS` (sha256sum -c format, every other file). Raises BundleError."""
    _check_request(arch, python_versions)
    pins = read_lock(lock.read_text(encoding="utf-8"))
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"egovmon-bundle-{arch}-") as work:
        wheels_dir = Path(work) / "wheels"
        wheels_dir.mkdir()
        own = build_own_wheel(source, Path(work) / "own")
        own_name = parse_wheel_name(own.name)
        for python_version in python_versions:
            _download_checked(lock, pins, arch=arch, python_version=python_version, cache=cache, into=wheels_dir)
        shutil.copy2(own, wheels_dir / own.name)
        wheels = tuple(
            WheelInfo(file=p.name, sha256=_sha256(p), size_bytes=p.stat().st_size) for p in sorted(wheels_dir.glob("*.whl"))
        )
        inner = {
            "arch": arch, "version": own_name.version, "python_versions": list(python_versions),
            "platform": f"{MANYLINUX}_{arch}", "wheels": [w.model_dump() for w in wheels],
        }  # fmt: skip
        tarball = output / tarball_name(arch)
        _write_tarball(tarball, wheels_dir, wheels, (json.dumps(inner, indent=2) + "\n").encode())
    digest = _sha256(tarball)
    info = BundleInfo(
        arch=arch, version=own_name.version, python_versions=tuple(python_versions), platform=f"{MANYLINUX}_{arch}",
        built_at=now or datetime.now(UTC), tarball=tarball.name, tarball_sha256=digest,
        tarball_bytes=tarball.stat().st_size, wheels=wheels,
    )
    (output / f"{tarball.name}.sha256").write_text(f"{digest}  {tarball.name}\n", encoding="utf-8")
    (output / info_name(arch)).write_text(info.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return info


def _check_request(arch: str, python_versions: Sequence[str]) -> None:
    """Raises BundleError for an unknown architecture or a Python version that is not CPython 3.X."""
    if arch not in ARCHES:
        raise BundleError(f"unknown architecture {arch!r}; one of {', '.join(ARCHES)}")
    bad = [v for v in python_versions if not re.fullmatch(r"3\.\d{1,2}", v)]
    if bad or not python_versions:
        raise BundleError(f"--python-version takes CPython versions such as 3.11, not {bad or 'nothing'}")


def _download_checked(lock: Path, pins: dict[str, str], *, arch: Arch, python_version: str, cache: Path, into: Path) -> None:
    """Download the lock's wheels for `arch` and `python_version` into `into` and check that the installable ones
    match the lock. Raises BundleError."""
    download_wheels(lock, arch=arch, python_version=python_version, cache=cache / arch, into=into)
    files = sorted(p.name for p in into.glob("*.whl"))
    chosen = [f for f in files if platform_problem(parse_wheel_name(f), arch=arch, python_version=python_version) is None]
    problems = check_wheels(chosen, pins, arch=arch, python_version=python_version)
    if problems:
        raise BundleError(f"the {arch} wheels for Python {python_version} do not match the lock:\n" + "\n".join(problems))


def _write_tarball(tarball: Path, wheels_dir: Path, wheels: Sequence[WheelInfo], inner_json: bytes) -> None:
    """Write `egovmon-agent/` (install.sh, bundle.json, SHA256SUMS, the wheels) to `tarball`, byte-identical for
    identical inputs, through a partial file renamed into place."""
    script = install_script()
    sums = [f"{w.sha256}  wheels/{w.file}" for w in wheels]
    sums += [f"{hashlib.sha256(script).hexdigest()}  install.sh", f"{hashlib.sha256(inner_json).hexdigest()}  bundle.json"]
    partial = tarball.with_suffix(".partial")
    # gzip's header carries a time too: fixed, so identical inputs give an identical tarball (and checksum).
    with partial.open("wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as packed, \
            tarfile.open(fileobj=packed, mode="w") as tar:
        _add(tar, "egovmon-agent/install.sh", script, 0o755)
        _add(tar, "egovmon-agent/bundle.json", inner_json)
        _add(tar, "egovmon-agent/SHA256SUMS", ("\n".join(sums) + "\n").encode())
        for wheel in wheels:
            _add(tar, f"egovmon-agent/wheels/{wheel.file}", (wheels_dir / wheel.file).read_bytes())
    os.replace(partial, tarball)


@bundle_app.command("build")
def build_command(
    arch: Annotated[str, typer.Option(help="Target CPU architecture: x86_64 or aarch64")],
    output: Annotated[Path, typer.Option(help="Directory for the tarball, its .sha256 and .json (the server's agent_bundle_dir)")],
    python: Annotated[list[str], typer.Option("--python-version", help="CPython version of the agency hosts (repeatable)")] = ["3.11"],  # noqa: B006
    lock: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Locked dependency set")] = DEFAULT_LOCK,
    source: Annotated[Path, typer.Option(exists=True, file_okay=False, help="egovmon checkout to build from")] = SOURCE_ROOT,
    cache: Annotated[Path, typer.Option(help="Wheel cache: reused without network when it has the whole lock")] = DEFAULT_CACHE,
) -> None:
    """Build the offline agent bundle for one architecture and print its size and checksum."""
    if arch not in ARCHES:
        typer.echo(f"error: --arch must be one of {', '.join(ARCHES)}", err=True)
        raise typer.Exit(2)
    try:
        info = build_bundle(arch=arch, output=output, python_versions=python, lock=lock, source=source, cache=cache)
    except BundleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    unpacked = sum(w.size_bytes for w in info.wheels)
    typer.echo(
        f"{output / info.tarball}: egovmon {info.version} for {arch} (Python {', '.join(info.python_versions)}), "
        f"{len(info.wheels)} wheels, {info.tarball_bytes / 1e6:.1f} MB (wheels {unpacked / 1e6:.1f} MB), sha256 {info.tarball_sha256}"
    )


@bundle_app.command("lock")
def lock_command() -> None:
    """Print the lock of the agent's dependencies as installed in this environment (egovmon without extras)."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import (
        Requirement,  # a build machine's tool (pip's own dependency); never on agents
    )

    from core.agentbundle import canonical_name

    pins: dict[str, str] = {}

    def walk(name: str) -> None:
        try:
            dist = distribution(name)
        except PackageNotFoundError as exc:
            raise typer.BadParameter(f"{name} is not installed here") from exc
        key = canonical_name(dist.metadata["Name"])
        if key in pins:
            return
        pins[key] = dist.version
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                walk(requirement.name)

    walk("egovmon")
    pins.pop("egovmon")
    typer.echo("\n".join(f"{name}=={version}" for name, version in sorted(pins.items())))
