"""The offline agent install, end to end: bundles built from the lock, served by a real `egovmon server`, installed by
install.sh on a "host" that can reach nothing but the server.

The host is a network namespace this test creates with one veth link to the server and no default route; the
install runs there with Debian's own /usr/bin/python3 (no venv, no pip configuration, PIP_NO_INDEX), relocated under
a temporary root (`--root`) so this machine's /opt, /etc and users are left alone. The agent must report within
30 s; then a newer bundle is served, the server offers the upgrade, install.sh is re-run (no token: the credential
is kept), the agent reports the new version, and --uninstall --purge removes everything. The aarch64 bundle is built
and every wheel's platform tags are checked (it cannot be installed here).

Downloaded wheels are kept in .ci/cache/wheels (EGOVMON_WHEEL_CACHE overrides), so a second run needs no network.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.bundle import DEFAULT_LOCK, SOURCE_ROOT, build_bundle, check_wheels, read_lock
from core.agentbundle import BundleInfo, parse_wheel_name
from tests.probes.servers import make_cert
from tests.serverproc import RunningServer, start_server
from tests.services import require_program, wait_until

CACHE = Path(os.environ.get("EGOVMON_WHEEL_CACHE", SOURCE_ROOT / ".ci" / "cache" / "wheels"))
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's python3 package: the interpreter an agency host has
TAG = f"eb{os.getpid() % 100000}"
SUBNET = f"10.254.{os.getpid() % 250}"
SERVER_IP, HOST_IP = f"{SUBNET}.1", f"{SUBNET}.2"
CLEAN_ENV = ["env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
             "PIP_NO_INDEX=1", "PIP_CONFIG_FILE=/dev/null"]  # fmt: skip


def _sizes(info: BundleInfo) -> str:
    return f"{info.arch}: {info.tarball_bytes / 1e6:.1f} MB tarball, {len(info.wheels)} wheels, " \
           f"{sum(w.size_bytes for w in info.wheels) / 1e6:.1f} MB of wheels"  # fmt: skip


def test_aarch64_bundle_holds_only_wheels_for_aarch64(tmp_path: Path):
    """Built for aarch64 on this x86_64 machine: every wheel of the lock, each installable by CPython 3.11 on a
    manylinux2014 (glibc 2.17) aarch64 host, and the tarball's SHA256SUMS matching its files."""
    started = time.monotonic()
    info = build_bundle(arch="aarch64", output=tmp_path, cache=CACHE)
    print(f"\nbundle {_sizes(info)}; built in {time.monotonic() - started:.1f} s")
    assert info.tarball_sha256 == hashlib.sha256((tmp_path / info.tarball).read_bytes()).hexdigest()
    assert (tmp_path / f"{info.tarball}.sha256").read_text() == f"{info.tarball_sha256}  {info.tarball}\n"
    with tarfile.open(tmp_path / info.tarball) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    sums = dict(line.split("  ", 1)[::-1] for line in members["egovmon-agent/SHA256SUMS"].decode().splitlines())
    assert sorted(sums) == sorted(name.removeprefix("egovmon-agent/") for name in members if not name.endswith("SHA256SUMS"))
    assert all(hashlib.sha256(members[f"egovmon-agent/{name}"]).hexdigest() == digest for name, digest in sums.items())
    wheels = [name.rsplit("/", 1)[1] for name in members if name.endswith(".whl")]
    dependencies = [w for w in wheels if not w.startswith("egovmon-")]
    assert check_wheels(dependencies, read_lock(DEFAULT_LOCK.read_text()), arch="aarch64", python_version="3.11") == []
    binary = sorted(w for w in wheels if "any" not in parse_wheel_name(w).platform_tags)
    assert binary and all("aarch64" in w and "x86_64" not in w for w in binary), binary
    assert {parse_wheel_name(w).name for w in binary} >= {"pydantic-core", "cryptography", "psutil", "pyyaml", "cffi"}
    own = next(name for name in members if name.startswith("egovmon-agent/wheels/egovmon-"))
    with zipfile.ZipFile(io.BytesIO(members[own])) as wheel:
        names = set(wheel.namelist())
    assert "server/agentdist/install.sh" in names  # a server installed from this wheel can serve the installer
    assert not any(name.startswith(("tests/", "bench/", "deploy/")) for name in names)
    # the same inputs give the same tarball: the checksum an operator noted stays valid for a rebuild
    assert build_bundle(arch="aarch64", output=tmp_path / "again", cache=CACHE, now=info.built_at).tarball_sha256 == info.tarball_sha256


@dataclass
class Lab:
    ns: str
    server: RunningServer
    root: Path  # the "host"'s file system root for the install (--root)
    work: Path

    def run_in_host(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """`command` through sh inside the namespace, with a clean environment (no venv, no pip configuration)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *CLEAN_ENV, f"HOME={self.work}/home", f"TMPDIR={self.work}",
                               "sh", "-c", command], capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip

    def start_agent(self) -> subprocess.Popen[str]:
        egovmon = self.root / "opt/egovmon/venv/bin/egovmon"
        return subprocess.Popen(["ip", "netns", "exec", self.ns, *CLEAN_ENV, str(egovmon), "agent", "run",
                                 "--config", str(self.root / "etc/egovmon/agent.yaml")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    for program in ("ip", "curl", "sha256sum", "useradd", "tar"):
        require_program(program)
    require_program(SYSTEM_PYTHON)
    ns, host_if, ns_if = f"{TAG}h", f"{TAG}s", f"{TAG}n"
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", ns)
        _ip("addr", "add", f"{SERVER_IP}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", ns, "addr", "add", f"{HOST_IP}/30", "dev", ns_if)
        _ip("-n", ns, "link", "set", ns_if, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        server = start_server(tmp_path / "server", host=SERVER_IP)
        root = tmp_path / "host-root"
        (root / "etc").mkdir(parents=True)
        # The host's account databases, for useradd --prefix (a fresh system's own would do as well)
        for name, line in (("passwd", "root:x:0:0:root:/root:/bin/sh"), ("group", "root:x:0:"),
                           ("shadow", "root:*:19000:0:99999:7:::"), ("gshadow", "root:*::")):  # fmt: skip
            (root / "etc" / name).write_text(line + "\n")
        (tmp_path / "home").mkdir()
        try:
            yield Lab(ns, server, root, tmp_path)
        finally:
            server.stop()
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _newer_source(tmp_path: Path, version: str) -> Path:
    """A copy of this checkout whose version is `version` (the next release, for the upgrade)."""
    copy = tmp_path / "source-next"
    shutil.copytree(SOURCE_ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build",
                                                                     "tests", "bench", ".ci", "egovmon-data"))  # fmt: skip
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = "[^"]+"', f'version = "{version}"', pyproject.read_text()))
    return copy


def _agent(server: RunningServer, hostname: str) -> dict | None:
    agents = httpx.get(f"{server.url}/api/v1/agents", headers=server.admin).json()
    return next((a for a in agents if a["hostname"] == hostname), None)


def _reporting(server: RunningServer, hostname: str, version: str) -> dict | None:
    """The agent of `hostname` once its host has sent data and it has reported `version`."""
    hosts = httpx.get(f"{server.url}/api/v1/hosts", headers=server.admin).json()
    host = next((h for h in hosts if h["hostname"] == hostname and h["last_seen_at"]), None)
    agent = _agent(server, hostname)
    return agent if host and agent and agent["version"] == version else None


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_offline_install_upgrade_and_uninstall_on_a_host_that_reaches_only_the_server(lab: Lab, tmp_path: Path):
    assert subprocess.run(["ip", "-n", lab.ns, "route", "show", "default"], capture_output=True, text=True, check=True).stdout == ""
    bundles = lab.server.data_dir / "agent-bundles"  # the server's default agent_bundle_dir
    first = build_bundle(arch="x86_64", output=bundles, cache=CACHE)
    print(f"\nbundle {_sizes(first)}")
    token = lab.server.enrollment_token("bundle-test")
    hostname = f"offline-{TAG}"
    url = lab.server.url
    # A private CA for the server's certificate (this server speaks plain http here, so it is only carried into the
    # agent's configuration; the agent still loads it at start)
    ca, _key = make_cert(tmp_path / "ca", common_name="egovmon-ca", dns_names=[], ips=[], valid_days=30)
    install = (f"curl -fsS {url}/agent/install.sh | sh -s -- --server {url} --token {token} --root {lab.root} "
               f"--python {SYSTEM_PYTHON} --hostname {hostname} --insecure --no-start --ca-file {ca}")  # fmt: skip

    started = time.monotonic()
    done = lab.run_in_host(install)
    install_seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"install in the namespace: {install_seconds:.1f} s")
    assert f"installing egovmon agent {first.version}" in done.stdout

    # What landed: a venv of its own under /opt/egovmon from the system python, the unit, the config, the user
    venv = lab.root / "opt/egovmon/venv"
    assert venv.is_symlink() and "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    assert Path(os.path.realpath(venv / "bin/python")) == Path(os.path.realpath(SYSTEM_PYTHON))
    unit = (lab.root / "etc/systemd/system/egovmon-agent.service").read_text()
    assert f"ExecStart={venv}/bin/egovmon agent run --config {lab.root}/etc/egovmon/agent.yaml\n" in unit
    assert "User=egovmon\n" in unit
    assert re.search(r"(?m)^egovmon:x:\d+:\d+::/nonexistent:/usr/sbin/nologin$", (lab.root / "etc/passwd").read_text())
    config = (lab.root / "etc/egovmon/agent.yaml").read_text()
    assert f"state_dir: {lab.root}/var/lib/egovmon-agent" in config and "  insecure_http: true" in config
    assert f"\n  ca_file: {lab.root}/etc/egovmon/ca.pem " in config
    assert (lab.root / "etc/egovmon/ca.pem").read_bytes() == ca.read_bytes()
    assert oct((lab.root / "var/lib/egovmon-agent/credential.json").stat().st_mode & 0o777) == "0o600"
    # Item 4: nothing of egovmon in the system python's reach; inside the venv, its packages come from the venv
    system = lab.run_in_host(f"cd / && {SYSTEM_PYTHON} -c 'import cli.bundle'")
    assert "ModuleNotFoundError" in system.stderr
    located = lab.run_in_host(f"cd / && {venv}/bin/python -c 'import core, server, cli; print(core.__file__)'")
    assert located.stdout == f"{venv}/lib/python3.11/site-packages/core/__init__.py\n", located.stdout + located.stderr

    agent = lab.start_agent()
    try:
        reported = wait_until(lambda: _reporting(lab.server, hostname, first.version), 30, "the installed agent's first batch")
        assert reported["upgrade_available"] is False and reported["latest_version"] == first.version

        # A newer bundle on the server: the agent is offered the upgrade, install.sh re-run without a token
        newer = build_bundle(arch="x86_64", output=bundles, cache=CACHE, source=_newer_source(tmp_path, "0.1.1"))
        assert newer.version == "0.1.1" and newer.tarball_sha256 != first.tarball_sha256
        offered = _agent(lab.server, hostname)
        assert (offered["version"], offered["latest_version"], offered["upgrade_available"]) == ("0.1.0", "0.1.1", True)
    finally:
        _stop(agent)
    upgrade = lab.run_in_host(f"curl -fsS {url}/agent/install.sh | sh -s -- --server {url} --root {lab.root} "
                              f"--python {SYSTEM_PYTHON} --no-start")  # fmt: skip
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "already enrolled: keeping the credential" in upgrade.stdout
    assert [p.name.split("-")[0] for p in (lab.root / "opt/egovmon/venvs").iterdir()] == ["0.1.1"]  # the old one removed
    agent = lab.start_agent()
    try:
        upgraded = wait_until(lambda: _reporting(lab.server, hostname, "0.1.1"), 30, "the upgraded agent's version")
        assert upgraded["upgrade_available"] is False and upgraded["id"] == reported["id"]  # same agent, same credential
    finally:
        _stop(agent)

    # A bundle whose checksum does not match is refused before anything is touched
    (lab.work / "install.sh").write_bytes(httpx.get(f"{url}/agent/install.sh").content)
    tampered = lab.run_in_host(f"sh {lab.work}/install.sh --bundle {bundles / newer.tarball} --sha256 {'0' * 64} "
                               f"--root {lab.root} --python {SYSTEM_PYTHON} --no-start")  # fmt: skip
    assert tampered.returncode == 1 and f"expected {'0' * 64}: not installing it" in tampered.stderr

    removed = lab.run_in_host(f"sh {lab.work}/install.sh --uninstall --purge --root {lab.root}")
    assert removed.returncode == 0, removed.stderr
    left = sorted(str(p.relative_to(lab.root)) for p in lab.root.rglob("*") if p.is_file())
    assert [p for p in left if not p.startswith("etc/")] == [] and all(p.count("/") == 1 for p in left), left
    assert "egovmon:" not in (lab.root / "etc/passwd").read_text()
