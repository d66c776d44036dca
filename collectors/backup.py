"""Backup and restore-test freshness: last success, age, size and RPO compliance per declared job.

Each job of the agent's configuration is checked one of three ways (see
`collectors.settings.BackupJob`): the newest file under a path, a status file
written by the backup script, or a command. Every job gives one `backup` sample
(tags job, role, kind) and one `backup_status` observation whose `detail` keeps
the reason in words, so an error is never reduced to a 0.

The pure part (`parse_status_file`, `parse_command_output`, `evaluate`) turns
what a check found into a `CheckResult` and then into a sample and an
observation; the shells (`check_path`, `check_status_file`, `run_command`) only
look at the system. One job's failure never hides another's.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from collectors.settings import BackupJob
from core.collect import CollectTimeoutError, Reading, Target
from core.models import Observation, Sample

# First words (status files) and `status` values (JSON) that mean the run succeeded.
SUCCESS_WORDS: Final = frozenset({"success", "succeeded", "successful", "ok", "completed", "done"})

# Job states, the `status` attribute of a `backup_status` observation.
STATUS_OK: Final = "ok"  # the last success is within the RPO
STATUS_STALE: Final = "stale"  # the check found a success, older than the RPO
STATUS_FAILED: Final = "failed"  # the backup says it failed (or there is none)
STATUS_ERROR: Final = "error"  # the check itself could not run

# Share of the collection's timeout the checks may use; the rest builds the reading,
# so the scheduler's own timeout (the same number) does not cancel a finished check.
CHECK_SHARE: Final = 0.9
MAX_DETAIL_CHARS: Final = 1024
MAX_OUTPUT_CHARS: Final = 300  # of a command's stderr or a status file's text, in a detail

Outcome = Literal["success", "failed", "error"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check found.

    `outcome` is "success" (a backup succeeded), "failed" (the backup failed, or
    none was found) or "error" (the check could not run: missing path, unreadable
    file, a command that did not start or did not finish). `finished_at` is when
    the success happened; None with "success" means just now (a command that only
    exits 0).
    """

    outcome: Outcome
    finished_at: datetime | None = None
    size_bytes: int = 0
    detail: str = ""


@dataclass(frozen=True, slots=True)
class LastSuccess:
    """The newest success known for a job: when, and how big the backup was."""

    at: datetime
    size_bytes: int


# -- pure core --------------------------------------------------------------------------


def _clip(text: str, limit: int = MAX_OUTPUT_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _seconds(value: float) -> str:
    """A duration for people: 86400, not 86400.0 or 8.64e+04."""
    return f"{value:.0f}" if math.isfinite(value) and float(value).is_integer() else f"{value:g}"


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; a time without offset is the agent host's local time.

    Backup scripts usually write `date +%FT%T` (local time); reading that as UTC
    would shift the age by the host's offset (8 hours in China). None when
    `value` is not an ISO 8601 string.
    """
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC)  # astimezone() takes a naive time as local


def _from_json(data: dict[str, Any], finished_default: datetime | None) -> tuple[datetime | None, int, list[str]]:
    """finished_at and size_bytes of a JSON report, with a note for each value that had to be ignored."""
    notes = []
    finished = finished_default
    if "finished_at" in data:
        parsed = parse_time(data["finished_at"])
        if parsed is None:
            notes.append(f"finished_at {_clip(str(data['finished_at']), 64)!r} is not an ISO 8601 time, ignored")
        else:
            finished = parsed
    size = 0
    raw = data.get("size_bytes")
    if raw is not None:
        if type(raw) is int and raw >= 0:
            size = raw
        elif type(raw) is float and math.isfinite(raw) and raw >= 0:
            size = int(raw)
        else:
            notes.append(f"size_bytes {_clip(str(raw), 64)!r} is not a byte count, ignored")
    return finished, size, notes


def _json_object(text: str) -> dict[str, Any] | None:
    """The JSON object `text` is, or None when it is not one."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_status_file(text: str, mtime: datetime) -> CheckResult:
    """The outcome a status file reports: JSON `{"status", "finished_at", "size_bytes"}` or a first word.

    The run time is `finished_at` when the JSON has one, else the file's `mtime`.
    A JSON `message` (or `error`) is kept in the detail.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        data = _json_object(stripped)
        if data is None:
            return CheckResult("error", detail=f"status file is not a JSON object: {_clip(stripped, 80)!r}")
        word = str(data.get("status", "")).strip().lower()
        finished, size, notes = _from_json(data, mtime)
        message = data.get("message") or data.get("error")
        details = [f"status {word or 'missing'!r}"] + ([_clip(str(message))] if message else []) + notes
        if word in SUCCESS_WORDS:
            return CheckResult("success", finished, size, "; ".join(details))
        return CheckResult("failed", None, 0, "; ".join(details))
    if not stripped:
        return CheckResult("failed", detail="status file is empty")
    first_line = stripped.splitlines()[0]
    word = first_line.split()[0].rstrip(":;,.!").lower()
    if word in SUCCESS_WORDS:
        return CheckResult("success", mtime, 0, _clip(first_line))
    return CheckResult("failed", detail=_clip(first_line))


def _json_report(stdout: str) -> dict[str, Any] | None:
    """The JSON object that is all of stdout or its last non-blank line (after log lines); None when neither is."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    if not lines:
        return None
    data = _json_object(stdout.strip())
    return data if data is not None else _json_object(lines[-1])


def parse_command_output(returncode: int, stdout: str, stderr: str) -> CheckResult:
    """The outcome of a check command: exit 0 is success; a JSON object on stdout may add finished_at and size_bytes.

    The JSON may be all of stdout or its last line (after log lines). Without a
    `finished_at` the success is "just now".
    """
    if returncode != 0:
        how = f"killed by signal {-returncode}" if returncode < 0 else f"exit status {returncode}"
        said = _clip(stderr) or _clip(stdout)
        return CheckResult("failed", detail=f"{how}: {said}" if said else how)
    data = _json_report(stdout)
    if data is None:
        return CheckResult("success", None, 0, "exit status 0")
    finished, size, notes = _from_json(data, None)
    return CheckResult("success", finished, size, "; ".join(["exit status 0", *notes]))


def newer(known: LastSuccess | None, result: CheckResult, now: datetime) -> LastSuccess | None:
    """The newest success after `result`: its own when it succeeded later than `known`."""
    if result.outcome != "success":
        return known
    at = result.finished_at or now
    if known is None or at >= known.at:
        return LastSuccess(at, result.size_bytes)
    return known


def evaluate(job: BackupJob, result: CheckResult, last: LastSuccess | None, now: datetime) -> tuple[Sample, Observation]:
    """The `backup` sample and `backup_status` observation of one job, stamped `now`.

    `last` is the newest success known (from this check or an earlier one). With
    none, `last_success_timestamp_seconds` is 0 and `age_seconds` counts from the
    Unix epoch, so "age > RPO" holds for a job that never succeeded.
    """
    last_ts = last.at.timestamp() if last is not None else 0.0
    age = now.timestamp() - last_ts
    rpo_ok = last is not None and age <= job.rpo_seconds
    if result.outcome == "error":
        status = STATUS_ERROR
    elif result.outcome == "failed":
        status = STATUS_FAILED
    else:
        status = STATUS_OK if rpo_ok else STATUS_STALE
    when = (
        f"last success {last.at.isoformat()} ({age:.0f} s ago, RPO {_seconds(job.rpo_seconds)} s)"
        if last is not None else "no success seen"
    )
    # clip what the check said, never the part about the last success
    said = _clip(result.detail, MAX_DETAIL_CHARS - len(when) - 2) if result.detail else ""
    detail = f"{said}; {when}" if said else when
    sample = Sample(
        measurement="backup",
        tags={"job": job.name, "role": job.role, "kind": job.kind},
        fields={
            "last_success_timestamp_seconds": last_ts,
            "age_seconds": age,
            "size_bytes": last.size_bytes if last is not None else 0,
            "rpo_seconds": float(job.rpo_seconds),
            "rpo_ok": int(rpo_ok),
            "check_ok": int(result.outcome != "error"),
        },
        timestamp=now,
    )
    observation = Observation(
        kind="backup_status",
        subject=job.name,
        source="backup",
        attributes={"status": status, "detail": detail},
        observed_at=now,
    )
    return sample, observation


# -- shells -----------------------------------------------------------------------------


def _newest_file(root: Path, pattern: str) -> tuple[Path, os.stat_result] | None:
    """The most recently modified regular file under root matching pattern, with its stat; None when none.

    Raises:
        OSError: root itself could not be walked.
    """
    newest: tuple[Path, os.stat_result] | None = None
    for candidate in root.rglob(pattern):
        try:
            st = candidate.stat()
        except OSError:
            continue  # removed while walking, or a dangling link
        if stat.S_ISREG(st.st_mode) and (newest is None or st.st_mtime > newest[1].st_mtime):
            newest = (candidate, st)
    return newest


def check_path(root: Path, pattern: str) -> CheckResult:
    """The newest regular file under `root` matching `pattern` (recursively), or `root` itself when it is a file.

    Blocking: walks the tree. Subdirectories that cannot be read are skipped (pathlib's rglob).
    """
    try:
        root_stat = root.stat()
    except FileNotFoundError:
        return CheckResult("error", detail=f"{root} does not exist")
    except OSError as exc:
        return CheckResult("error", detail=f"cannot read {root}: {exc.strerror or exc}")
    newest: tuple[Path, os.stat_result] | None = (root, root_stat) if stat.S_ISREG(root_stat.st_mode) else None
    if newest is None:
        try:
            newest = _newest_file(root, pattern)
        except OSError as exc:
            return CheckResult("error", detail=f"cannot read {root}: {exc.strerror or exc}")
    if newest is None:
        return CheckResult("failed", detail=f"no file matching {pattern!r} under {root}")
    path, st = newest
    return CheckResult("success", datetime.fromtimestamp(st.st_mtime, UTC), st.st_size, f"newest file {path}")


def check_status_file(path: Path) -> CheckResult:
    """Read a status file (blocking) and parse it; its mtime is the run time unless it says otherwise."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(65536)
            mtime = os.fstat(handle.fileno()).st_mtime
    except FileNotFoundError:
        return CheckResult("error", detail=f"status file {path} does not exist")
    except OSError as exc:
        return CheckResult("error", detail=f"cannot read status file {path}: {exc.strerror or exc}")
    return parse_status_file(raw.decode("utf-8", errors="replace"), datetime.fromtimestamp(mtime, UTC))


def _kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the command and everything it started (it leads its own session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone


async def run_command(argv: Sequence[str], timeout: float) -> CheckResult:
    """Run a check command without a shell; kill it and its children when it takes longer than `timeout` seconds
    (counted from the call, so a slow start under load is part of the time allowed)."""
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so a timeout kills the children too
        )
    except OSError as exc:
        return CheckResult("error", detail=f"cannot start {argv[0]}: {exc.strerror or exc}")
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), max(deadline - asyncio.get_running_loop().time(), 0.0))
    except TimeoutError:
        _kill_group(process)
        await process.wait()
        return CheckResult("error", detail=f"{argv[0]} did not finish within {timeout:g} s and was killed")
    finally:
        if process.returncode is None:  # cancelled from outside: leave nothing running
            _kill_group(process)
    return parse_command_output(
        process.returncode or 0,
        stdout.decode("utf-8", errors="replace"),
        stderr.decode("utf-8", errors="replace"),
    )


def _utc_now() -> datetime:
    return datetime.now(UTC)


class BackupCollector:
    """Checks the declared backup jobs and restore tests, all at once, each within its own timeout.

    It remembers each job's newest success while the agent runs, so a failed run
    after a good one still reports how old the good one is. A path or status-file
    check that hangs (a dead NFS mount) is reported as an error after its timeout;
    its thread cannot be killed and finishes on its own.
    """

    name: ClassVar[str] = "backup"

    def __init__(self, jobs: Sequence[BackupJob], *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._jobs = tuple(jobs)
        self._clock = clock
        self._last: dict[str, LastSuccess] = {}

    async def _check(self, job: BackupJob, limit: float) -> CheckResult:
        if job.kind == "command":
            return await run_command(job.command or [], limit)
        path = Path(job.path) if job.path is not None else Path()
        blocking = (lambda: check_path(path, job.pattern)) if job.kind == "path" else (lambda: check_status_file(path))
        try:
            return await asyncio.wait_for(asyncio.to_thread(blocking), limit)
        except TimeoutError:
            return CheckResult("error", detail=f"checking {path} took longer than {limit:g} s")

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        """Check every job; one sample and one observation per job, all stamped with one clock reading.

        Raises:
            CollectTimeoutError: the checks outlasted `timeout` (they are bounded to
                nine tenths of it, so this means the event loop itself was stalled).
        """
        budget = timeout * CHECK_SHARE
        checks = (self._check(job, min(job.timeout_seconds, budget)) for job in self._jobs)
        try:
            results = await asyncio.wait_for(asyncio.gather(*checks), timeout)
        except TimeoutError as exc:
            raise CollectTimeoutError(f"backup checks took longer than {timeout:g} s") from exc
        now = self._clock()
        samples, observations = [], []
        for job, result in zip(self._jobs, results, strict=True):
            last = newer(self._last.get(job.name), result, now)
            if last is not None:
                self._last[job.name] = last
            sample, observation = evaluate(job, result, last, now)
            samples.append(sample)
            observations.append(observation)
        return Reading(samples=tuple(samples), observations=tuple(observations))
