"""The server under test for the fleet benchmark: started on a store, or an already-running one on loopback.

`start_store("embedded", ...)` runs `egovmon server` (uvicorn, a free loopback
port) on the embedded default: SQLite and the embedded history in the data
directory. `start_store("pg-vm", ...)` first starts a PostgreSQL 15 and a
VictoriaMetrics of its own under the work directory (tests/services.py) and
points the server at them. `attach(url, ...)` measures a server someone else
started (loopback only); its PostgreSQL and VictoriaMetrics are then unknown.

`Store.usage()` reads the CPU and RSS of each part from /proc (bench/procstat.py):
the server's process tree (workers included), PostgreSQL's (backends included)
and VictoriaMetrics', so each is reported on its own. `Store.sizes()` is what the
stores hold on disk: the state database and the history.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.http11 import loopback_address
from bench.procstat import Usage, usage
from tests.services import Postgres, VictoriaMetrics, free_port, start_postgres, start_victoriametrics, wait_until

ROOT = Path(__file__).resolve().parent.parent
STORES = ("embedded", "pg-vm")
# A token value the settings accept (they refuse well-known defaults); VictoriaMetrics ignores it.
VM_TOKEN = "fleet-bench-token-not-a-secret"


class StoreError(RuntimeError):
    """The server under test could not be started or found."""


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under `path` (0 when it does not exist)."""
    total = 0
    for item in [path, *path.rglob("*")] if path.exists() else []:
        try:
            if item.is_file() and not item.is_symlink():
                total += item.stat().st_size
        except OSError:
            continue
    return total


@dataclass
class Store:
    """The server under test and what it stores into; `stop()` ends only what this module started."""

    kind: str
    url: str
    data_dir: Path | None
    server_pids: list[int]
    process: subprocess.Popen[str] | None = None
    log_path: Path | None = None
    postgres: Postgres | None = None
    victoriametrics: VictoriaMetrics | None = None
    admin_token_value: str | None = None
    workers: int = 1
    _stopped: bool = field(default=False, init=False)

    def admin_headers(self) -> dict[str, str]:
        """The admin's Authorization header: the given token, or the data directory's initial-admin-token."""
        if self.admin_token_value:
            return {"Authorization": f"Bearer {self.admin_token_value}"}
        if self.data_dir is None:
            raise StoreError("no admin token: pass --admin-token or --data-dir")
        token_file = self.data_dir / "initial-admin-token"
        wait_until(token_file.exists, 30, "the initial admin token")
        return {"Authorization": f"Bearer {token_file.read_text().strip()}"}

    def usage(self) -> dict[str, Usage | None]:
        """CPU seconds so far and RSS now of the server, PostgreSQL and VictoriaMetrics (None: not ours to see)."""
        return {
            "server": usage(self.server_pids) if self.server_pids else None,
            "postgres": usage([self.postgres.process.popen.pid]) if self.postgres else None,
            "victoriametrics": usage([self.victoriametrics.process.popen.pid]) if self.victoriametrics else None,
        }

    def sizes(self) -> dict[str, int]:
        """Bytes on disk by part: the PostgreSQL database and VictoriaMetrics' data, or the data directory's SQLite
        files (state and embedded history share them) and the rest of it (spools); empty when unknown."""
        out: dict[str, int] = {}
        if self.postgres is not None:
            import psycopg

            with psycopg.connect(self.postgres.dsn("egovmon"), autocommit=True) as conn:
                out["postgres"] = int(conn.execute("SELECT pg_database_size('egovmon')").fetchone()[0])
        if self.victoriametrics is not None:
            out["victoriametrics"] = tree_bytes(self.victoriametrics.data_dir)
        if self.data_dir is not None:
            sqlite = sum(tree_bytes(p) for p in self.data_dir.glob("*.db*"))
            if sqlite:
                out["sqlite"] = sqlite
            out["data_dir_other"] = tree_bytes(self.data_dir) - sqlite
        return out

    def log_errors(self) -> int | None:
        """ERROR lines and tracebacks in the server's log so far (None when the log is not ours)."""
        if self.log_path is None or not self.log_path.exists():
            return None
        count = 0
        with self.log_path.open("rb") as log:
            for line in log:
                if b" ERROR " in line or line.startswith((b"ERROR", b"Traceback")):
                    count += 1
        return count

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                try:
                    self.process.wait(30)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
        finally:
            if self.victoriametrics is not None:
                self.victoriametrics.stop()
            if self.postgres is not None:
                self.postgres.stop()


def _server_config(workdir: Path, *, port: int, workers: int, database_url: str | None, vm_url: str | None) -> Path:
    lines = [f"data_dir: {workdir / 'data'}", "log: {level: WARNING}"]
    server = f"server: {{port: {port}, workers: {workers}"
    if database_url:
        server += f", database_url: '{database_url}'"
    lines.append(server + "}")
    if vm_url:
        lines.append(f"tsdb: {{kind: influxdb2, url: '{vm_url}', token: {VM_TOKEN}, org: egovmon, bucket: egovmon}}")
    config = workdir / "egovmon.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _migrate(config: Path) -> None:
    """Bring the state database to the newest schema before several workers start.

    Workers that all migrate a fresh PostgreSQL database at once race on creating
    `alembic_version` (UniqueViolation on pg_type), and the loser exits.
    """
    from server.database import make_engine, migrate
    from server.settings import load_settings

    settings = load_settings(config)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def start_store(kind: str, workdir: Path, *, workers: int = 1) -> Store:
    """Start the server (and for pg-vm its PostgreSQL and VictoriaMetrics) with everything under `workdir`.

    Raises:
        StoreError: the server did not print its URL or did not become ready.
        tests.services.ServiceError: PostgreSQL or VictoriaMetrics did not start.
    """
    if kind not in STORES:
        raise StoreError(f"unknown store {kind!r}; one of {', '.join(STORES)}")
    workdir.mkdir(parents=True, exist_ok=True)
    postgres = victoriametrics = None
    database_url = vm_url = None
    try:
        if kind == "pg-vm":
            postgres = start_postgres(workdir)
            database_url = postgres.create_database("egovmon")
            victoriametrics = start_victoriametrics(workdir)
            vm_url = victoriametrics.url
        port = free_port() if workers > 1 else 0
        config = _server_config(workdir, port=port, workers=workers, database_url=database_url, vm_url=vm_url)
        if workers > 1:
            _migrate(config)
        log_path = workdir / "server.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "cli", "server", "--config", str(config)],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
            )
        store = Store(kind, "", workdir / "data", [process.pid], process, log_path, postgres, victoriametrics, workers=workers)
    except BaseException:
        for service in (victoriametrics, postgres):
            if service is not None:
                service.stop()
        raise
    try:
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not match:
            raise StoreError(f"the server did not print its URL: {line!r}; see {log_path}")
        store.url = match.group(0)
        wait_until(lambda: process.poll() is None and _ready(store.url), 90, "the egovmon server")
        return store
    except BaseException:
        store.stop()
        raise


def listening_pids(port: int) -> list[int]:
    """The topmost processes listening on a loopback TCP port (a uvicorn parent, not each worker)."""
    pids = {c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid}
    return sorted(pid for pid in pids if psutil.Process(pid).ppid() not in pids)


def attach(url: str, *, data_dir: Path | None, admin_token: str | None, workers: int = 1) -> Store:
    """A server already running on loopback; its CPU is read from the processes listening on its port.

    Raises:
        bench.http11.LoopbackOnlyError: `url` is not a loopback URL.
        StoreError: it does not answer /readyz.
    """
    host, port = loopback_address(url)
    url = f"http://{host}:{port}"
    if not _ready(url):
        raise StoreError(f"{url}/readyz does not answer 200")
    return Store("url", url, data_dir, listening_pids(port), admin_token_value=admin_token, workers=workers)
