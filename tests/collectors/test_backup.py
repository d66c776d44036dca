"""Backup freshness: real files, real status files, real commands, an injected clock, exact values."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta

import psutil
import pytest

from collectors.backup import (
    BackupCollector,
    CheckResult,
    LastSuccess,
    evaluate,
    parse_command_output,
    parse_status_file,
    parse_time,
)
from collectors.settings import BackupJob
from core.collect import LOCAL
from core.models import validation_context

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
T = NOW.timestamp()  # 1795867200.0
DAY = 86400.0


def collect(jobs, *, now=NOW, timeout=10.0, collector=None):
    """One collection; samples and observations by job name."""
    collector = collector or BackupCollector(jobs, clock=lambda: now)
    reading = asyncio.run(collector.collect(LOCAL, timeout=timeout))
    assert [s.tags["job"] for s in reading.samples] == [job.name for job in jobs]  # one per job, in order
    assert [o.subject for o in reading.observations] == [job.name for job in jobs]
    for sample, observation in zip(reading.samples, reading.observations, strict=True):
        assert sample.timestamp == observation.observed_at == now
        assert observation.kind == "backup_status" and observation.source == "backup"
        # what the server will accept: the same models, with its time window
        type(sample).model_validate(sample.model_dump(), context=validation_context(now))
    return {s.tags["job"]: s for s in reading.samples}, {o.subject: o.attributes for o in reading.observations}


def touch(path, age_seconds, size=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = T - age_seconds
    os.utime(path, (stamp, stamp))


def fields(last_success, age, size, rpo, rpo_ok, check_ok):
    return {
        "last_success_timestamp_seconds": last_success, "age_seconds": age, "size_bytes": size, "rpo_seconds": rpo,
        "rpo_ok": rpo_ok, "check_ok": check_ok,
    }


# -- kind path --------------------------------------------------------------------------


def test_the_newest_matching_file_under_a_path_decides(tmp_path):
    touch(tmp_path / "db" / "mon.sql.gz", 3 * DAY, 10)
    touch(tmp_path / "db" / "2026" / "11" / "sat.sql.gz", 3600, 2048)
    touch(tmp_path / "db" / "notes.txt", 60, 1)  # newer, but not a backup
    job = BackupJob(name="db", kind="path", path=tmp_path / "db", pattern="*.sql.gz", rpo_seconds=DAY)
    samples, status = collect([job])
    assert samples["db"].tags == {"job": "db", "role": "backup", "kind": "path"}
    assert samples["db"].fields == fields(T - 3600, 3600.0, 2048, DAY, 1, 1)
    assert status["db"] == {
        "status": "ok",
        "detail": f"newest file {tmp_path}/db/2026/11/sat.sql.gz; "
                  "last success 2026-11-28T11:00:00+00:00 (3600 s ago, RPO 86400 s)",
    }


@pytest.mark.parametrize(
    ("layout", "pattern", "expected_fields", "expected_status", "detail_start"),
    [
        ({"a.tar": (2 * DAY, 5)}, "*", fields(T - 2 * DAY, 2 * DAY, 5, DAY, 0, 1), "stale", "newest file "),
        ({}, "*", fields(0.0, T, 0, DAY, 0, 1), "failed", "no file matching '*' under "),
        ({"a.txt": (60, 1)}, "*.tar", fields(0.0, T, 0, DAY, 0, 1), "failed", "no file matching '*.tar' under "),
        ({"a.tar": (DAY, 7)}, "*", fields(T - DAY, DAY, 7, DAY, 1, 1), "ok", "newest file "),  # exactly the RPO
    ],
    ids=["stale", "empty", "no-match", "at-rpo"],
)
def test_path_outcomes(tmp_path, layout, pattern, expected_fields, expected_status, detail_start):
    (tmp_path / "b").mkdir()
    for name, (age, size) in layout.items():
        touch(tmp_path / "b" / name, age, size)
    samples, status = collect([BackupJob(name="b", kind="path", path=tmp_path / "b", pattern=pattern, rpo_seconds=DAY)])
    assert samples["b"].fields == expected_fields
    assert status["b"]["status"] == expected_status
    assert status["b"]["detail"].startswith(detail_start)


def test_a_missing_path_is_a_check_error(tmp_path):
    samples, status = collect([BackupJob(name="gone", kind="path", path=tmp_path / "nope")])
    assert samples["gone"].fields == fields(0.0, T, 0, DAY, 0, 0)
    assert status["gone"] == {"status": "error", "detail": f"{tmp_path}/nope does not exist; no success seen"}


def test_a_path_may_be_the_backup_file_itself(tmp_path):
    touch(tmp_path / "etc.tar.zst", 7200, 300)
    samples, status = collect([BackupJob(name="etc", kind="path", path=tmp_path / "etc.tar.zst", pattern="*.gz")])
    assert samples["etc"].fields == fields(T - 7200, 7200.0, 300, DAY, 1, 1)
    assert status["etc"]["status"] == "ok"


# -- kind status_file -------------------------------------------------------------------

MTIME = NOW - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"status": "success", "finished_at": "2026-11-28T11:00:00Z", "size_bytes": 1234}',
         CheckResult("success", datetime(2026, 11, 28, 11, tzinfo=UTC), 1234, "status 'success'")),
        ('{"status": "success", "finished_at": "2026-11-28T19:00:00+08:00"}',
         CheckResult("success", datetime(2026, 11, 28, 11, tzinfo=UTC), 0, "status 'success'")),
        ('{"status": "OK"}', CheckResult("success", MTIME, 0, "status 'ok'")),
        ('{"status": "success", "finished_at": "yesterday", "size_bytes": -1}',
         CheckResult("success", MTIME, 0, "status 'success'; finished_at 'yesterday' is not an ISO 8601 time, ignored; "
                                          "size_bytes '-1' is not a byte count, ignored")),
        ('{"status": "failed", "message": "disk full on /backup", "size_bytes": 5}',
         CheckResult("failed", None, 0, "status 'failed'; disk full on /backup")),
        ('{"finished_at": "2026-11-28T11:00:00Z"}', CheckResult("failed", None, 0, "status 'missing'")),
        ("success\n", CheckResult("success", MTIME, 0, "success")),
        ("OK 2026-11-28 03:00 full backup\nsecond line\n", CheckResult("success", MTIME, 0, "OK 2026-11-28 03:00 full backup")),
        ("Success.", CheckResult("success", MTIME, 0, "Success.")),
        ("failed: tape error", CheckResult("failed", None, 0, "failed: tape error")),
        ("running", CheckResult("failed", None, 0, "running")),
        ("  \n", CheckResult("failed", None, 0, "status file is empty")),
        ("{not json", CheckResult("error", None, 0, "status file is not a JSON object: '{not json'")),
    ],
    ids=["json", "json-offset", "json-ok", "json-bad-values", "json-failed", "json-no-status", "word", "word-line",
         "word-punct", "failed", "other-word", "empty", "bad-json"],
)
def test_status_file_formats(text, expected):
    assert parse_status_file(text, MTIME) == expected


def test_a_time_without_offset_is_local_time():
    assert parse_time("2026-11-28T03:00:00") == datetime(2026, 11, 28, 3).astimezone(UTC)
    assert parse_time("2026-11-28T03:00:00Z") == datetime(2026, 11, 28, 3, tzinfo=UTC)
    assert parse_time(1795867200) is None
    assert parse_time("28/11/2026") is None


def test_status_files_on_disk(tmp_path):
    drill = tmp_path / "restore.json"
    drill.write_text('{"status": "success", "finished_at": "2026-11-01T00:00:00Z", "size_bytes": 4096}')
    nightly = tmp_path / "nightly.status"
    nightly.write_text("success\n")
    os.utime(nightly, (T - 1800, T - 1800))
    broken = tmp_path / "broken.status"
    broken.write_text("failed: ssh: connect to host nas port 22: Connection refused\n")
    jobs = [
        BackupJob(name="drill", kind="status_file", role="restore_test", path=drill, rpo_seconds=30 * DAY),
        BackupJob(name="nightly", kind="status_file", path=nightly),
        BackupJob(name="broken", kind="status_file", path=broken),
        BackupJob(name="absent", kind="status_file", path=tmp_path / "absent.status"),
    ]
    samples, status = collect(jobs)
    assert samples["drill"].tags == {"job": "drill", "role": "restore_test", "kind": "status_file"}
    assert samples["drill"].fields == fields(T - 27.5 * DAY, 27.5 * DAY, 4096, 30 * DAY, 1, 1)
    assert samples["nightly"].fields == fields(T - 1800, 1800.0, 0, DAY, 1, 1)
    assert samples["broken"].fields == fields(0.0, T, 0, DAY, 0, 1)
    assert samples["absent"].fields == fields(0.0, T, 0, DAY, 0, 0)
    assert status == {
        "drill": {"status": "ok", "detail": "status 'success'; last success 2026-11-01T00:00:00+00:00 "
                                            "(2376000 s ago, RPO 2592000 s)"},
        "nightly": {"status": "ok", "detail": "success; last success 2026-11-28T11:30:00+00:00 (1800 s ago, RPO 86400 s)"},
        "broken": {"status": "failed",
                   "detail": "failed: ssh: connect to host nas port 22: Connection refused; no success seen"},
        "absent": {"status": "error", "detail": f"status file {tmp_path}/absent.status does not exist; no success seen"},
    }


def test_the_last_success_is_remembered_across_a_later_failure(tmp_path):
    status_file = tmp_path / "s"
    status_file.write_text("success")
    os.utime(status_file, (T - 7200, T - 7200))
    job = BackupJob(name="j", kind="status_file", path=status_file, rpo_seconds=3 * 3600)
    clock = iter([NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=2)])
    collector = BackupCollector([job], clock=lambda: next(clock))
    collect([job], collector=collector)
    status_file.write_text("failed: disk full")
    samples, status = collect([job], now=NOW + timedelta(hours=1), collector=collector)
    assert samples["j"].fields == fields(T - 7200, 10800.0, 0, 10800.0, 1, 1)
    assert status["j"]["status"] == "failed"
    samples, status = collect([job], now=NOW + timedelta(hours=2), collector=collector)
    assert samples["j"].fields == fields(T - 7200, 14400.0, 0, 10800.0, 0, 1)
    assert status["j"] == {
        "status": "failed",
        "detail": "failed: disk full; last success 2026-11-28T10:00:00+00:00 (14400 s ago, RPO 10800 s)",
    }


# -- kind command -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returncode", "stdout", "stderr", "expected"),
    [
        (0, "", "", CheckResult("success", None, 0, "exit status 0")),
        (0, "all good\n", "", CheckResult("success", None, 0, "exit status 0")),
        (0, '{"finished_at": "2026-11-28T10:00:00+00:00", "size_bytes": 99}\n',
         "", CheckResult("success", datetime(2026, 11, 28, 10, tzinfo=UTC), 99, "exit status 0")),
        (0, 'checking repository\nno errors\n{"finished_at": "2026-11-28T10:00:00Z", "size_bytes": 1.5e9}\n',
         "", CheckResult("success", datetime(2026, 11, 28, 10, tzinfo=UTC), 1_500_000_000, "exit status 0")),
        (0, '{"size_bytes": "big"}', "", CheckResult("success", None, 0, "exit status 0; size_bytes 'big' is not a byte count, ignored")),
        (3, "", "tape jammed\n", CheckResult("failed", None, 0, "exit status 3: tape jammed")),
        (1, "repository locked\n", "", CheckResult("failed", None, 0, "exit status 1: repository locked")),
        (1, "", "", CheckResult("failed", None, 0, "exit status 1")),
        (-9, "", "", CheckResult("failed", None, 0, "killed by signal 9")),
    ],
    ids=["silent", "text", "json", "json-last-line", "json-bad-size", "stderr", "stdout", "bare", "signal"],
)
def test_command_outcomes(returncode, stdout, stderr, expected):
    assert parse_command_output(returncode, stdout, stderr) == expected


def test_real_commands(tmp_path):
    report = '{"finished_at": "2026-11-28T10:00:00+00:00", "size_bytes": 99}'
    jobs = [
        BackupJob(name="true", kind="command", command=["true"]),
        BackupJob(name="exit1", kind="command", command=["/bin/sh", "-c", "exit 1"]),
        BackupJob(name="jammed", kind="command", command=["/bin/sh", "-c", "echo tape jammed >&2; exit 3"]),
        BackupJob(name="json", kind="command", command=[sys.executable, "-c", f"print({report!r})"]),
        BackupJob(name="absent", kind="command", command=[str(tmp_path / "no-such-program")]),
        BackupJob(name="literal", kind="command", command=["/bin/echo", "$(touch", f"{tmp_path}/pwned)"]),
    ]
    samples, status = collect(jobs)
    assert {name: s.fields for name, s in samples.items()} == {
        "true": fields(T, 0.0, 0, DAY, 1, 1),
        "exit1": fields(0.0, T, 0, DAY, 0, 1),
        "jammed": fields(0.0, T, 0, DAY, 0, 1),
        "json": fields(T - 7200, 7200.0, 99, DAY, 1, 1),
        "absent": fields(0.0, T, 0, DAY, 0, 0),
        "literal": fields(T, 0.0, 0, DAY, 1, 1),
    }
    assert {name: a["status"] for name, a in status.items()} == {
        "true": "ok", "exit1": "failed", "jammed": "failed", "json": "ok", "absent": "error", "literal": "ok",
    }
    assert status["jammed"]["detail"] == "exit status 3: tape jammed; no success seen"
    assert status["absent"]["detail"] == f"cannot start {tmp_path}/no-such-program: No such file or directory; no success seen"
    assert not (tmp_path / "pwned").exists()  # no shell ever saw the argv


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $$ $! > {pids}; wait"
    jobs = [
        BackupJob(name="hangs", kind="command", command=["/bin/sh", "-c", script], timeout_seconds=0.5),
        BackupJob(name="fine", kind="command", command=["true"]),
    ]
    started = time.monotonic()
    samples, status = collect(jobs)
    assert time.monotonic() - started < 5
    assert samples["hangs"].fields == fields(0.0, T, 0, DAY, 0, 0)
    assert status["hangs"] == {"status": "error", "detail": "/bin/sh did not finish within 0.5 s and was killed; no success seen"}
    assert status["fine"]["status"] == "ok"  # one job's failure hides nothing
    shell, sleeper = (int(p) for p in pids.read_text().split())
    deadline = time.monotonic() + 5
    while (alive(shell) or alive(sleeper)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (alive(shell), alive(sleeper)) == (False, False)


def test_the_collection_timeout_bounds_every_job(tmp_path):
    """A job allowed 60 s still ends within the collection's timeout, as an error; the others report."""
    touch(tmp_path / "b" / "x.tar", 60, 1)
    jobs = [
        BackupJob(name="slow", kind="command", command=["sleep", "30"], timeout_seconds=60),
        BackupJob(name="files", kind="path", path=tmp_path / "b"),
    ]
    started = time.monotonic()
    samples, status = collect(jobs, timeout=1.0)
    assert time.monotonic() - started < 1.5  # the collector itself raises past 1.0; this bounds the loop's start and end
    assert status["slow"] == {"status": "error", "detail": "sleep did not finish within 0.9 s and was killed; no success seen"}
    assert samples["files"].fields == fields(T - 60, 60.0, 1, DAY, 1, 1)


def test_no_jobs_no_samples():
    reading = asyncio.run(BackupCollector([], clock=lambda: NOW).collect(LOCAL, timeout=1))
    assert (reading.samples, reading.observations) == ((), ())


# -- evaluate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "last", "expected_fields", "expected_status"),
    [
        (CheckResult("success", NOW - timedelta(hours=1), 10), LastSuccess(NOW - timedelta(hours=1), 10),
         fields(T - 3600, 3600.0, 10, DAY, 1, 1), "ok"),
        (CheckResult("success", NOW - timedelta(days=2), 10), LastSuccess(NOW - timedelta(days=2), 10),
         fields(T - 2 * DAY, 2 * DAY, 10, DAY, 0, 1), "stale"),
        (CheckResult("failed", detail="x"), None, fields(0.0, T, 0, DAY, 0, 1), "failed"),
        (CheckResult("failed", detail="x"), LastSuccess(NOW - timedelta(hours=1), 10),
         fields(T - 3600, 3600.0, 10, DAY, 1, 1), "failed"),
        (CheckResult("error", detail="x"), LastSuccess(NOW - timedelta(hours=1), 10),
         fields(T - 3600, 3600.0, 10, DAY, 1, 0), "error"),
    ],
    ids=["ok", "stale", "failed-never", "failed-after-success", "error-after-success"],
)
def test_evaluate(result, last, expected_fields, expected_status):
    job = BackupJob(name="j", kind="path", path="/x")
    sample, observation = evaluate(job, result, last, NOW)
    assert sample.fields == expected_fields
    assert observation.attributes["status"] == expected_status


def test_a_long_detail_is_clipped_to_the_attribute_limit():
    job = BackupJob(name="j", kind="command", command=["x"])
    _, observation = evaluate(job, CheckResult("failed", detail="e" * 5000), None, NOW)
    detail = observation.attributes["detail"]
    assert (len(detail), detail[-20:]) == (1024, "ee…; no success seen")
