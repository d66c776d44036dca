"""Backup freshness: real files, real status files, real commands, an injected clock."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

import pytest

from collectors.backup import BackupCollector, CheckResult, evaluate, parse_status
from core.agentconfig import BackupJob
from core.collect import LOCAL

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def run(jobs, now=NOW):
    reading = asyncio.run(BackupCollector(jobs, clock=lambda: now).collect(LOCAL, timeout=10))
    samples = {s.tags["job"]: s.fields for s in reading.samples}
    status = {o.subject: o.attributes for o in reading.observations}
    return samples, status


def touch(path, age_seconds, size=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    stamp = (NOW - timedelta(seconds=age_seconds)).timestamp()
    os.utime(path, (stamp, stamp))


def test_newest_file_under_a_path_decides(tmp_path):
    touch(tmp_path / "db" / "mon.sql.gz", 3 * 86400, 10)
    touch(tmp_path / "db" / "2026" / "tue.sql.gz", 3600, 2048)
    touch(tmp_path / "db" / "notes.txt", 60, 1)  # does not match the pattern
    samples, status = run([BackupJob(name="db", kind="path", path=tmp_path / "db", pattern="*.sql.gz", rpo_seconds=86400)])
    assert samples["db"] == {
        "last_success_timestamp_seconds": (NOW - timedelta(hours=1)).timestamp(), "age_seconds": 3600.0,
        "size_bytes": 2048, "rpo_seconds": 86400.0, "rpo_ok": 1, "check_ok": 1,
    }
    assert status["db"]["status"] == "ok"


def test_stale_missing_and_empty_paths(tmp_path):
    touch(tmp_path / "old" / "a.tar", 2 * 86400, 5)
    (tmp_path / "empty").mkdir()
    jobs = [
        BackupJob(name="old", kind="path", path=tmp_path / "old", rpo_seconds=86400),
        BackupJob(name="missing", kind="path", path=tmp_path / "nope"),
        BackupJob(name="empty", kind="path", path=tmp_path / "empty"),
    ]
    samples, status = run(jobs)
    assert (samples["old"]["rpo_ok"], samples["old"]["age_seconds"], status["old"]["status"]) == (0, 172800.0, "stale")
    assert (samples["missing"]["check_ok"], status["missing"]["status"]) == (0, "error")
    assert "does not exist" in status["missing"]["detail"]
    assert (samples["empty"]["check_ok"], samples["empty"]["last_success_timestamp_seconds"], status["empty"]["status"]) == (1, 0.0, "failed")


@pytest.mark.parametrize(
    ("text", "status", "size"),
    [
        ('{"status": "success", "finished_at": "2026-11-28T11:00:00Z", "size_bytes": 1234}', "success", 1234),
        ('{"status": "FAILED", "message": "disk full"}', "failed", 0),
        ("success\n", "success", 0),
        ("ok 2026-11-28", "success", 0),
        ("failed: tape error", "failed", 0),
        ("", "failed", 0),
        ("{not json", "error", 0),
    ],
)
def test_status_file_formats(text, status, size):
    result = parse_status(text, NOW - timedelta(minutes=5))
    assert (result.status, result.size_bytes) == (status, size)
    if text.startswith('{"status": "success"'):
        assert result.finished_at == datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    elif status == "success":
        assert result.finished_at == NOW - timedelta(minutes=5)


def test_status_file_and_restore_test(tmp_path):
    status_file = tmp_path / "restore.json"
    status_file.write_text('{"status": "success", "finished_at": "2026-11-01T00:00:00Z"}')
    job = BackupJob(name="drill", kind="status_file", role="restore_test", path=status_file, rpo_seconds=30 * 86400)
    samples, status = run([job])
    assert samples["drill"]["age_seconds"] == (NOW - datetime(2026, 11, 1, tzinfo=UTC)).total_seconds()
    assert (samples["drill"]["rpo_ok"], status["drill"]["status"], status["drill"]["role"]) == (1, "ok", "restore_test")


def test_commands(tmp_path):
    jobs = [
        BackupJob(name="ok", kind="command", command=["true"]),
        BackupJob(name="fails", kind="command", command=["/bin/sh", "-c", "echo tape jammed >&2; exit 3"]),
        BackupJob(name="json", kind="command", command=[sys.executable, "-c",
                  'print(\'{"finished_at": "2026-11-28T10:00:00+00:00", "size_bytes": 99}\')']),
        BackupJob(name="hangs", kind="command", command=["sleep", "30"], timeout_seconds=0.5),
        BackupJob(name="absent", kind="command", command=[str(tmp_path / "no-such-program")]),
    ]
    samples, status = run(jobs)
    assert (samples["ok"]["age_seconds"], samples["ok"]["rpo_ok"]) == (0.0, 1)
    assert status["fails"]["status"] == "failed" and "exit status 3: tape jammed" in status["fails"]["detail"]
    assert (samples["json"]["age_seconds"], samples["json"]["size_bytes"]) == (7200.0, 99)
    assert status["hangs"]["status"] == "error" and "did not finish within 0.5 s" in status["hangs"]["detail"]
    assert (status["absent"]["status"], samples["absent"]["check_ok"]) == ("error", 0)


def test_last_success_is_remembered_across_a_later_failure(tmp_path):
    status_file = tmp_path / "s"
    status_file.write_text("success")
    stamp = (NOW - timedelta(hours=2)).timestamp()
    os.utime(status_file, (stamp, stamp))
    collector = BackupCollector([BackupJob(name="j", kind="status_file", path=status_file)], clock=lambda: NOW)
    asyncio.run(collector.collect(LOCAL, timeout=5))
    status_file.write_text("failed")
    reading = asyncio.run(collector.collect(LOCAL, timeout=5))
    fields = reading.samples[0].fields
    assert (fields["age_seconds"], fields["rpo_ok"]) == (7200.0, 1)
    assert reading.observations[0].attributes["status"] == "failed"


def test_evaluate_without_any_success():
    job = BackupJob(name="new", kind="path", path="/x")
    sample, observation = evaluate(CheckResult("failed", detail="nothing yet"), job, NOW, None)
    assert sample.fields["age_seconds"] == -1.0 and sample.fields["rpo_ok"] == 0
    assert observation.attributes == {"status": "failed", "role": "backup", "detail": "nothing yet"}
