"""Backup and restore-test freshness (Article 27(1)): last success, age, size and RPO compliance per job.

Each job in the agent's config is checked one of three ways (see
`core.agentconfig.BackupJob`): the newest file under a path, a status file, or a
command. The pure part, `evaluate(check, job, now)`, turns what a check found
into samples and an observation; the shells (`check_path`, `check_status_file`,
`check_command`) only look at the system. One job's failure never hides another.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

from core.agentconfig import BackupJob
from core.collect import Reading, Target
from core.models import Observation, Sample

SUCCESS_WORDS = frozenset({"success", "succeeded", "ok", "completed", "done"})


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What one check found: the last successful run (if known), its size, and why not when it failed."""

    status: str  # "success", "failed" (the backup failed), "error" (the check itself could not run)
    finished_at: datetime | None = None
    size_bytes: int = 0
    detail: str = ""


def evaluate(check: CheckResult, job: BackupJob, now: datetime, last_success: datetime | None) -> tuple[Sample, Observation]:
    """Samples and the status observation of one job; `last_success` is the newest success known so far."""
    age = (now - last_success).total_seconds() if last_success else None
    rpo_ok = age is not None and age <= job.rpo_seconds
    if check.status == "error":
        status = "error"
    elif check.status == "failed":
        status = "failed"
    else:
        status = "ok" if rpo_ok else "stale"
    tags = {"job": job.name, "role": job.role, "kind": job.kind}
    sample = Sample(
        measurement="backup",
        tags=tags,
        fields={
            "last_success_timestamp_seconds": last_success.timestamp() if last_success else 0.0,
            "age_seconds": float(age) if age is not None else -1.0,
            "size_bytes": int(check.size_bytes),
            "rpo_seconds": float(job.rpo_seconds),
            "rpo_ok": int(rpo_ok),
            "check_ok": int(check.status != "error"),
        },
        timestamp=now,
    )
    detail = check.detail or (f"last success {age:.0f} s ago, RPO {job.rpo_seconds:g} s" if age is not None else "no success recorded")
    observation = Observation(
        kind="backup_status", subject=job.name, source="backup", observed_at=now,
        attributes={"status": status, "role": job.role, "detail": detail[:1024]},
    )
    return sample, observation


def check_path(job: BackupJob) -> CheckResult:
    """The newest file under job.path matching job.pattern (or job.path itself when it is a file)."""
    root = Path(job.path or "")
    try:
        if root.is_file():
            candidates = [root]
        elif root.is_dir():
            candidates = [p for p in root.rglob(job.pattern) if p.is_file()]
        else:
            return CheckResult("error", detail=f"{root} does not exist")
        if not candidates:
            return CheckResult("failed", detail=f"no file matching {job.pattern!r} under {root}")
        newest = max(candidates, key=lambda p: p.stat().st_mtime)
        stat = newest.stat()
    except OSError as exc:
        return CheckResult("error", detail=f"cannot read {root}: {exc.strerror}")
    return CheckResult("success", datetime.fromtimestamp(stat.st_mtime, UTC), stat.st_size, f"newest: {newest.name}")


def parse_status(text: str, mtime: datetime) -> CheckResult:
    """A status file's outcome: JSON {status, finished_at, size_bytes} or a first word such as `success`/`failed`."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            return CheckResult("error", detail=f"status file is not valid JSON: {exc.msg}")
        word = str(data.get("status", "")).lower()
        finished = _parse_time(data.get("finished_at")) or mtime
        size = data.get("size_bytes", 0)
        size = int(size) if isinstance(size, int | float) and not isinstance(size, bool) else 0
        detail = str(data.get("message", ""))
    else:
        word = stripped.split()[0].lower() if stripped else ""
        finished, size, detail = mtime, 0, stripped[:200]
    if word in SUCCESS_WORDS:
        return CheckResult("success", finished, size, detail)
    return CheckResult("failed", None, size, detail or f"status {word or 'empty'!r}")


def check_status_file(job: BackupJob) -> CheckResult:
    path = Path(job.path or "")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        return CheckResult("error", detail=f"cannot read {path}: {exc.strerror}")
    return parse_status(text, mtime)


def check_command(job: BackupJob, now: datetime) -> CheckResult:
    """Run the job's argv (no shell); exit 0 is success, a JSON object on stdout may add finished_at and size_bytes."""
    argv = job.command or []
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=job.timeout_seconds, check=False)
    except subprocess.TimeoutExpired:
        return CheckResult("error", detail=f"{argv[0]} did not finish within {job.timeout_seconds:g} s")
    except OSError as exc:
        return CheckResult("error", detail=f"cannot run {argv[0]}: {exc.strerror}")
    if done.returncode != 0:
        return CheckResult("failed", detail=f"exit status {done.returncode}: {(done.stderr or done.stdout).strip()[:300]}")
    finished, size = now, 0
    out = done.stdout.strip()
    if out.startswith("{"):
        try:
            data = json.loads(out)
            finished = _parse_time(data.get("finished_at")) or now
            raw = data.get("size_bytes", 0)
            size = int(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0
        except json.JSONDecodeError:
            pass
    return CheckResult("success", finished, size)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class BackupCollector:
    """Checks the declared backup jobs and restore tests; remembers each job's newest success while it runs."""

    name: ClassVar[str] = "backup"

    def __init__(self, jobs: Sequence[BackupJob], *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._jobs = list(jobs)
        self._clock = clock
        self._last_success: dict[str, datetime] = {}

    def _check(self, job: BackupJob, now: datetime) -> CheckResult:
        if job.kind == "path":
            return check_path(job)
        if job.kind == "status_file":
            return check_status_file(job)
        return check_command(job, now)

    async def collect(self, target: Target, *, timeout: float) -> Reading:
        now = self._clock()
        results = await asyncio.gather(*(asyncio.to_thread(self._check, job, now) for job in self._jobs))
        samples, observations = [], []
        for job, result in zip(self._jobs, results, strict=True):
            if result.status == "success" and result.finished_at is not None:
                known = self._last_success.get(job.name)
                if known is None or result.finished_at > known:
                    self._last_success[job.name] = result.finished_at
            sample, observation = evaluate(result, job, now, self._last_success.get(job.name))
            samples.append(sample)
            observations.append(observation)
        return Reading(samples=tuple(samples), observations=tuple(observations))
