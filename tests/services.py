"""Start real servers for tests: VictoriaMetrics, InfluxDB 1.6 and PostgreSQL on free loopback ports.

Each `start_*` function launches one server process with its data under a
directory the caller gives, polls until the server answers (never a fixed
sleep), and returns a handle that owns the process: `stop()` ends it by its PID.
How each server is started follows ../shared/REAL_COMPONENTS.md. Nothing starts
at import; the session fixtures in `tests/conftest.py` call these functions.

Raises (every `start_*`):
    BinaryMissingError: the server's program is not installed.
    ServiceStartError: the server exited or did not become ready in time.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx

T = TypeVar("T")

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")


class ServiceError(RuntimeError):
    """Root of errors starting a test server."""


class BinaryMissingError(ServiceError):
    """The server's program is not installed on this machine."""


class ServiceStartError(ServiceError):
    """The server exited, or did not answer in time; the message ends with its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str, *, interval: float = 0.05) -> T:
    """Call predicate until it returns something truthy, and return that; poll every `interval` seconds.

    Raises:
        TimeoutError: still falsy after `timeout` seconds; the message names `what`.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _require(program: str | Path) -> str:
    """The path of an installed program."""
    found = shutil.which(str(program))
    if found is None:
        raise BinaryMissingError(f"{program} is not installed (see ../shared/REAL_COMPONENTS.md)")
    return found


def missing(reason: str) -> NoReturn:
    """A component a test needs is not here: the test is skipped, or fails when CI=true (CI never skips)."""
    import pytest  # tests/services.py is also imported by bench/, which does not need pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; required when CI=true", pytrace=False)
    pytest.skip(reason)


def require_program(program: str) -> str:
    """The path of a program a test needs: skipped when missing, failed when missing and CI=true."""
    found = shutil.which(program)
    if found is None:
        missing(f"{program} is not installed (see ../shared/REAL_COMPONENTS.md)")
    return found


@dataclass
class ServerProcess:
    """One running server process, its log file, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, probe: Callable[[], bool], timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Poll probe until it is true; stop the process and raise ServiceStartError if it exits or times out."""

        def ready() -> bool:
            if not self.running():
                raise ServiceStartError(f"{self.name} exited with status {self.popen.returncode}:\n{self.log_tail()}")
            return probe()

        try:
            wait_until(ready, timeout, f"{self.name} to answer")
        except TimeoutError as exc:
            self.stop()
            raise ServiceStartError(f"{exc}:\n{self.log_tail()}") from exc
        except ServiceStartError:
            self.stop()
            raise

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Signal the process by its PID and wait for it to exit; SIGKILL it if it does not in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout)


def _spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    cwd: Path | None = None,
    stop_signal: int = signal.SIGTERM,
) -> ServerProcess:
    """Start argv in the background with stdout and stderr going to log_path."""
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            cwd=cwd,
            start_new_session=True,
        )
    return ServerProcess(name, popen, log_path, stop_signal)


def _http_status(url: str, method: str = "GET") -> int | None:
    """The HTTP status of one request, or None when nothing answers."""
    try:
        return httpx.request(method, url, timeout=2.0).status_code
    except httpx.TransportError:
        return None


# VictoriaMetrics ----------------------------------------------------------------------------------


@dataclass
class VictoriaMetrics:
    """A running VictoriaMetrics; writes go to `url` + /api/v2/write (InfluxDB v2 API)."""

    port: int
    data_dir: Path
    process: ServerProcess
    username: str | None = None
    password: str | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _auth(self) -> tuple[str, str] | None:
        return (self.username, self.password) if self.username and self.password else None

    def force_flush(self) -> None:
        """Make every sample received so far searchable (POST /internal/force_flush)."""
        httpx.post(f"{self.url}/internal/force_flush", auth=self._auth(), timeout=10.0).raise_for_status()

    def export(self, match: str) -> list[dict[str, Any]]:
        """The raw samples of the series matching a selector, one dict per series (POST /api/v1/export).

        Each dict has `metric` (labels, `__name__` included), `values` and
        `timestamps` (milliseconds), as VictoriaMetrics stores them.
        """
        self.force_flush()
        response = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match}, auth=self._auth(), timeout=10.0)
        response.raise_for_status()
        return [json.loads(line) for line in response.text.splitlines() if line.strip()]

    def samples(self, match: str) -> dict[tuple[tuple[str, str], ...], list[tuple[int, float]]]:
        """Exported samples keyed by sorted labels: [(timestamp_ms, value), ...] sorted by time."""
        out: dict[tuple[tuple[str, str], ...], list[tuple[int, float]]] = {}
        for series in self.export(match):
            key = tuple(sorted(series["metric"].items()))
            out.setdefault(key, []).extend(zip(series["timestamps"], series["values"], strict=True))
        return {key: sorted(values) for key, values in out.items()}

    def stop(self) -> None:
        self.process.stop()


def start_victoriametrics(
    tmpdir: Path, *, port: int | None = None, username: str | None = None, password: str | None = None, host: str = "127.0.0.1",
    extra: Sequence[str] = (),
) -> VictoriaMetrics:
    """Start VictoriaMetrics on `host` (loopback unless given: e.g. the address of a veth the test made, for network
    namespaces to reach), a free port unless given, data under tmpdir, and wait for /health.

    Started with `-search.latencyOffset=0s -search.disableCache` so that
    freshly written samples can be read back at once. With username and
    password every endpoint, /health excepted, needs HTTP basic auth. `extra`
    flags are appended. Started again with the same tmpdir and port, it reopens its data.
    """
    program = _require("victoria-metrics")
    port = port or free_port()
    data_dir = Path(tmpdir) / f"victoriametrics-{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        program,
        f"-httpListenAddr={host}:{port}",
        f"-storageDataPath={data_dir}",
        "-retentionPeriod=1d",
        "-search.latencyOffset=0s",
        "-search.disableCache",
        "-loggerLevel=WARN",
    ]
    if username and password:
        argv += [f"-httpAuth.username={username}", f"-httpAuth.password={password}"]
    argv += list(extra)
    process = _spawn("victoria-metrics", argv, data_dir.with_suffix(".log"))
    server = VictoriaMetrics(port, data_dir, process, username, password, host)
    process.wait_ready(lambda: _http_status(f"{server.url}/health") == 200)
    return server


# InfluxDB 1.x -------------------------------------------------------------------------------------

_INFLUXDB1_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  log-enabled = false
"""


@dataclass
class InfluxDB1:
    """A running InfluxDB 1.x with the database `egovmon` created."""

    port: int
    data_dir: Path
    process: ServerProcess
    database: str = "egovmon"
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, q: str, *, database: str | None = None, method: str = "GET") -> dict[str, Any]:
        """Run one InfluxQL statement via /query (timestamps as epoch nanoseconds) and return the decoded JSON.

        Raises:
            ServiceError: the server answered with an error for the statement.
        """
        params = {"q": q, "db": database or self.database, "epoch": "ns"}
        auth = (self.username, self.password) if self.username and self.password else None
        response = httpx.request(method, f"{self.url}/query", params=params, auth=auth, timeout=10.0)
        body: dict[str, Any] = response.json()
        errors = [body.get("error")] + [r.get("error") for r in body.get("results", [])]
        if response.status_code != 200 or any(errors):
            raise ServiceError(f"InfluxQL {q!r} failed ({response.status_code}): {body}")
        return body

    def rows(self, q: str) -> list[dict[str, Any]]:
        """The rows of a SELECT as dicts (column name → value), with `_series_tags` from GROUP BY."""
        out: list[dict[str, Any]] = []
        for result in self.query(q)["results"]:
            for series in result.get("series", []):
                for values in series["values"]:
                    row = dict(zip(series["columns"], values, strict=True))
                    row["_series_tags"] = series.get("tags", {})
                    out.append(row)
        return out

    def stop(self) -> None:
        self.process.stop()


def start_influxdb1(tmpdir: Path, *, username: str | None = None, password: str | None = None) -> InfluxDB1:
    """Start InfluxDB 1.x (influxd) on free loopback ports, data under tmpdir, and create database egovmon.

    With username and password, authentication is enabled and that user is
    created as the admin (InfluxDB allows creating the first admin unauthenticated).
    """
    program = _require("influxd")
    port = free_port()
    rpc_port = free_port()
    while rpc_port == port:
        rpc_port = free_port()
    data_dir = Path(tmpdir) / f"influxdb1-{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    auth = bool(username and password)
    config = data_dir / "influxdb.conf"
    config.write_text(
        _INFLUXDB1_CONFIG.format(rpc_port=rpc_port, dir=data_dir, port=port, auth=str(auth).lower()),
        encoding="utf-8",
    )
    process = _spawn("influxd", [program, "-config", str(config)], data_dir.with_suffix(".log"))
    server = InfluxDB1(port, data_dir, process)
    process.wait_ready(lambda: _http_status(f"{server.url}/ping") == 204)
    if auth:
        server.query(f"CREATE USER \"{username}\" WITH PASSWORD '{password}' WITH ALL PRIVILEGES", method="POST")
        server.username, server.password = username, password
    server.query(f'CREATE DATABASE "{server.database}"', method="POST")
    return server


# PostgreSQL ---------------------------------------------------------------------------------------


def _traversable_by(path: Path, uid: int, gids: set[int]) -> bool:
    """True when the user can enter path and every directory above it."""
    for directory in [path, *path.parents]:
        st = directory.stat()
        if st.st_uid == uid:
            allowed = st.st_mode & stat.S_IXUSR
        elif st.st_gid in gids:
            allowed = st.st_mode & stat.S_IXGRP
        else:
            allowed = st.st_mode & stat.S_IXOTH
        if not allowed:
            return False
    return True


@dataclass
class Postgres:
    """A running PostgreSQL server listening on 127.0.0.1, trust authentication for user postgres."""

    port: int
    base_dir: Path
    process: ServerProcess
    remove_base_dir: bool = False

    def url(self, dbname: str = "postgres") -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of one database on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """The libpq connection string of one database."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=5"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def accepts_connections(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster's PID), then remove a data directory made outside tmpdir."""
        self.process.stop()
        if self.remove_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)


def start_postgres(tmpdir: Path, *, listen_addresses: Sequence[str] = ("127.0.0.1",), trust_networks: Sequence[str] = ()) -> Postgres:
    """Initialise and start a PostgreSQL cluster on a free loopback port, and wait until it accepts connections.

    `listen_addresses` (127.0.0.1 first: the handle connects there) may add addresses of interfaces the test made,
    and `trust_networks` (CIDR) the clients allowed from them without a password, e.g. network namespaces.

    Run as root, the server runs as the `postgres` user (PostgreSQL refuses
    root); its directory, socket directory included, is then owned by postgres.
    When postgres cannot reach tmpdir (pytest's temporary directories are
    private to root), the cluster goes into a fresh directory under the
    system temporary directory, removed again by `stop()`.
    """
    initdb = _require(POSTGRES_BIN / "initdb")
    postgres = _require(POSTGRES_BIN / "postgres")
    import psycopg  # noqa: F401  (fail here, clearly, when the driver is missing)

    user: str | None = None
    tmpdir = Path(tmpdir)
    remove = False
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise BinaryMissingError("PostgreSQL is installed but there is no postgres user") from exc
        user = "postgres"
        gids = set(os.getgrouplist("postgres", account.pw_gid))
        if not _traversable_by(tmpdir, account.pw_uid, gids):
            tmpdir, remove = Path(tempfile.mkdtemp(prefix="egovmon-postgres-")), True
            os.chown(tmpdir, account.pw_uid, account.pw_gid)
        base = Path(tempfile.mkdtemp(prefix="postgres-", dir=tmpdir))
        os.chown(base, account.pw_uid, account.pw_gid)
    else:
        base = Path(tempfile.mkdtemp(prefix="postgres-", dir=tmpdir))
    data_dir = base / "data"
    initdb_argv = [initdb, "-D", str(data_dir), "-A", "trust", "-U", "postgres"]
    initdb_argv += ["--no-sync", "--encoding=UTF8", "--locale=C"]
    init = subprocess.run(initdb_argv, user=user, capture_output=True, text=True, cwd=base)
    if init.returncode != 0:
        if remove:
            shutil.rmtree(tmpdir, ignore_errors=True)
        raise ServiceStartError(f"initdb failed ({init.returncode}):\n{init.stdout}\n{init.stderr}")
    if trust_networks:
        with (data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.writelines(f"host all all {network} trust\n" for network in trust_networks)
    port = free_port()
    options = [f"listen_addresses={','.join(listen_addresses)}", "fsync=off", "synchronous_commit=off", "full_page_writes=off"]
    argv = [postgres, "-D", str(data_dir), "-p", str(port), "-k", str(base)] + [
        arg for option in options for arg in ("-c", option)
    ]
    process = _spawn("postgres", argv, base / "postgres.log", user=user, cwd=base, stop_signal=signal.SIGINT)
    server = Postgres(port, tmpdir if remove else base, process, remove_base_dir=remove)
    try:
        process.wait_ready(server.accepts_connections)
    except ServiceStartError:
        server.stop()
        raise
    return server


# Prometheus ---------------------------------------------------------------------------------------


@dataclass
class Prometheus:
    """A running Prometheus scraping the targets it was started with."""

    port: int
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10.0)
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def stop(self) -> None:
        self.process.stop()


def start_prometheus(tmpdir: Path, targets: dict[str, str], *, scrape_interval: str = "1s") -> Prometheus:
    """Start Prometheus on 127.0.0.1 scraping `targets` (job name → host:port) and wait for /-/ready."""
    program = _require("prometheus")
    port = free_port()
    directory = Path(tmpdir) / f"prometheus-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    jobs = "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n" for job, target in targets.items()
    )
    config = directory / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: {scrape_interval}\n  evaluation_interval: {scrape_interval}\nscrape_configs:\n{jobs}")
    process = _spawn(
        "prometheus",
        [program, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        directory / "prometheus.log",
    )
    server = Prometheus(port, process)
    process.wait_ready(lambda: _http_status(f"{server.url}/-/ready") == 200)
    return server


# Prometheus Alertmanager -------------------------------------------------------------------------


@dataclass
class Alertmanager:
    """A running Alertmanager (Debian's prometheus-alertmanager 0.25), clustering off."""

    port: int
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alerts(self) -> list[dict[str, Any]]:
        """GET /api/v2/alerts: the alerts it holds that have not ended."""
        response = httpx.get(f"{self.url}/api/v2/alerts", timeout=10.0)
        response.raise_for_status()
        return list(response.json())

    def stop(self) -> None:
        self.process.stop()


def start_alertmanager(tmpdir: Path, config: str) -> Alertmanager:
    """Start prometheus-alertmanager on 127.0.0.1 with the YAML `config` and wait for /-/ready.

    `--cluster.listen-address=` (empty) turns gossip clustering off; otherwise it binds 0.0.0.0:9094.
    """
    program = _require("prometheus-alertmanager")
    port = free_port()
    directory = Path(tmpdir) / f"alertmanager-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "alertmanager.yml").write_text(config)
    process = _spawn(
        "prometheus-alertmanager",
        [program, f"--config.file={directory / 'alertmanager.yml'}", f"--storage.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        directory / "alertmanager.log",
    )
    server = Alertmanager(port, process)
    process.wait_ready(lambda: _http_status(f"{server.url}/-/ready") == 200)
    return server


# net-snmp snmpd and snmpsim -----------------------------------------------------------------------


def _snmp_answers(port: int, community: str) -> bool:
    """True when a v2c GET of sysUpTime.0 with `community` on 127.0.0.1:port is answered (net-snmp snmpget)."""
    done = subprocess.run(
        ["snmpget", "-v2c", "-c", community, "-t", "0.5", "-r", "0", "-On", f"127.0.0.1:{port}", "1.3.6.1.2.1.1.3.0"],
        capture_output=True, text=True,
    )
    return done.returncode == 0 and "1.3.6.1.2.1.1.3.0" in done.stdout


@dataclass
class Snmpd:
    """A running net-snmp snmpd on 127.0.0.1: a v2c read-only community and v3 authPriv users."""

    port: int
    community: str
    users: dict[str, tuple[str, str, str, str]]  # name -> (auth proto, auth key, priv proto, priv key)
    process: ServerProcess

    def stop(self) -> None:
        self.process.stop()


def start_snmpd(
    tmpdir: Path, *, community: str = "egovmon-ro",
    users: dict[str, tuple[str, str, str, str]] | None = None,
) -> Snmpd:
    """Start snmpd on a free UDP port with its persistent dir (v3 users) under tmpdir; wait for an answer.

    `users` maps a v3 user name to (auth proto, auth key, priv proto, priv key) in net-snmp's
    spelling (`SHA`, `SHA-256`; `AES`, `AES-256`); each is a read-only authPriv user.
    """
    program = _require("/usr/sbin/snmpd")
    _require("snmpget")
    users = users if users is not None else {
        "egovmon-sha": ("SHA", "authpass123", "AES", "privpass123"),
        "egovmon-sha256": ("SHA-256", "authpass256", "AES-256", "privpass256"),
    }
    port = _free_udp_port()
    directory = Path(tmpdir) / f"snmpd-{port}"
    (directory / "persist").mkdir(parents=True, exist_ok=True)
    lines = [f"[snmp] persistentDir {directory / 'persist'}", "[snmp] mibs :", f"rocommunity {community} 127.0.0.1"]
    for name, (auth, auth_key, priv, priv_key) in users.items():
        lines += [f'createUser {name} {auth} "{auth_key}" {priv} "{priv_key}"', f"rouser {name} priv"]
    config = directory / "snmpd.conf"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = [program, "-f", "-Lo", "-C", "-c", str(config), "-p", str(directory / "snmpd.pid"), f"udp:127.0.0.1:{port}"]
    process = _spawn("snmpd", argv, directory / "snmpd.log")
    process.wait_ready(lambda: _snmp_answers(port, community))
    return Snmpd(port, community, dict(users), process)


def _free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Snmpsim:
    """A running snmpsim command responder; the community of a recording is its file name without .snmprec."""

    port: int
    data_dir: Path
    process: ServerProcess

    def stop(self) -> None:
        self.process.stop()


def start_snmpsim(tmpdir: Path, recordings: Sequence[Path], *, repair_hex: bool = True) -> Snmpsim:
    """Serve copies of `recordings` with snmpsim on a free UDP port; wait until the first one answers.

    With `repair_hex`, a line tagged hex whose value is not hex (LibreNMS anonymised
    values such as `346288XXYYZZ`, which snmpsim cannot serve) is re-tagged as a plain
    string in the copy, so walks pass it.
    """
    beside = Path(sys.executable).parent / "snmpsim-command-responder"  # the venv's, when not on PATH
    program = str(beside) if beside.exists() else _require("snmpsim-command-responder")
    _require("snmpget")
    if not recordings:
        raise ValueError("snmpsim needs at least one recording")
    port = _free_udp_port()
    directory = Path(tmpdir) / f"snmpsim-{port}"
    data_dir = directory / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for recording in recordings:
        text = Path(recording).read_text(encoding="latin-1")
        if repair_hex:
            text = "\n".join(_repair_snmprec_line(line) for line in text.splitlines()) + "\n"
        (data_dir / Path(recording).name).write_text(text, encoding="latin-1")
    argv = [program, f"--data-dir={data_dir}", f"--cache-dir={directory / 'cache'}",
            f"--agent-udpv4-endpoint=127.0.0.1:{port}", "--log-level=error"]
    if os.geteuid() == 0:
        argv += ["--process-user=root", "--process-group=root"]
    process = _spawn("snmpsim", argv, directory / "snmpsim.log")
    first = Path(recordings[0]).name.removesuffix(".snmprec")
    process.wait_ready(lambda: _snmp_answers(port, first), timeout=60)
    return Snmpsim(port, data_dir, process)


def _repair_snmprec_line(line: str) -> str:
    parts = line.split("|", 2)
    if len(parts) == 3 and parts[1].endswith("x"):
        try:
            bytes.fromhex(parts[2])
        except ValueError:
            return f"{parts[0]}|{parts[1][:-1]}|{parts[2]}"
    return line


@contextlib.contextmanager
def small_tmpfs(directory: Path, size: str = "8m") -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` for disk-full tests, unmounted after (also when the test fails).

    Needs root (mount); skipped without it, failed without it when CI=true.
    """
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)], check=False,
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        import pytest

        reason = f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; required when CI=true", pytrace=False)
        pytest.skip(reason)
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill_disk(path: Path) -> int:
    """Write zeros to `path` until the file system is full (ENOSPC); the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    try:
        while True:
            try:
                written += os.write(fd, bytes(64 << 10))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for _ in range(64):  # the last few blocks a 64 KB write could not take
            try:
                written += os.write(fd, bytes(512))
            except OSError:
                break
    finally:
        os.close(fd)
    return written


# HAProxy ------------------------------------------------------------------------------------------

_HAPROXY_CONFIG = """\
global
  maxconn 2000
  stats socket {directory}/haproxy.sock mode 600 level admin
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  # a request that cannot connect to a replica (refused: the replica died) is retried, on another replica
  retries 3
  option redispatch 1
  option httpchk GET {check_path}
  default-server inter 300ms fall 2 rise 2
frontend egovmon
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
{servers}
"""


@dataclass
class HAProxy:
    """A running Debian haproxy on 127.0.0.1 in front of HTTP servers, health-checking each of them."""

    port: int
    directory: Path
    process: ServerProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> list[dict[str, str]]:
        """`show stat` on its admin socket: one dict per frontend, backend and server (columns pxname, svname,
        status, stot (sessions), hrsp_5xx, wretr (retries), wredis (redispatches), ...)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.directory / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().lstrip("# ").splitlines()
        header = lines[0].split(",")
        return [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]

    def server_stats(self) -> dict[str, dict[str, str]]:
        """The stats of each backend server, by its name."""
        return {row["svname"]: row for row in self.stats() if row.get("pxname") == "replicas" and row["svname"] not in ("BACKEND", "FRONTEND")}

    def stop(self) -> None:
        self.process.stop()


def start_haproxy(tmpdir: Path, servers: Sequence[tuple[str, str, int]], *, check_path: str = "/healthz") -> HAProxy:
    """Start haproxy on a free 127.0.0.1 port balancing over `servers` ((name, address, port), health-checked with
    GET check_path every 300 ms), and wait until it answers through at least one of them."""
    program = _require("haproxy")
    port = free_port()
    directory = Path(tmpdir) / f"haproxy-{port}"
    directory.mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f"  server {name} {address}:{server_port} check" for name, address, server_port in servers)
    config = directory / "haproxy.cfg"
    config.write_text(_HAPROXY_CONFIG.format(directory=directory, check_path=check_path, port=port, servers=lines), encoding="utf-8")
    checked = subprocess.run([program, "-c", "-q", "-f", str(config)], check=False, capture_output=True, text=True)
    if checked.returncode != 0:
        raise ServiceStartError(f"haproxy refused its configuration:\n{checked.stdout}{checked.stderr}")
    process = _spawn("haproxy", [program, "-db", "-f", str(config)], directory / "haproxy.log")
    server = HAProxy(port, directory, process)
    process.wait_ready(lambda: _http_status(f"{server.url}{check_path}") == 200)
    return server
