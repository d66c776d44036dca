"""Settings of the collectors that are one module each: the agent's `backup_jobs:` (`collectors.backup`).

The flow and SNMP collectors keep theirs in `collectors/flow/settings.py` and
`collectors/snmp/settings.py`, the probe kinds in `probes/settings.py`; how often
each collector runs is the agent's business (`agent/settings.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class BackupJob(BaseModel):
    """One backup (or restore test) whose success the agent checks.

    kind `path`: the newest file under `path` (recursively, optionally matching
    `pattern`) must be younger than the RPO; its size is reported.
    kind `status_file`: `path` holds the last run's outcome, as JSON
    (`{"status": "success", "finished_at": "...", "size_bytes": N}`) or as a
    first word `success`/`ok`/`failed`; the file's mtime is the run time.
    kind `command`: `command` (argv list, no shell) is run; exit status 0 means
    the last backup succeeded; a JSON object on stdout may add `finished_at` and
    `size_bytes`.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="Job name, a tag value")
    kind: Literal["path", "status_file", "command"]
    role: Literal["backup", "restore_test"] = Field("backup", description="A backup job or a restore test")
    rpo_seconds: float = Field(86_400, gt=0, allow_inf_nan=False, description="Longest acceptable time since the last success")
    path: Path | None = Field(None, description="Directory or file (path), status file (status_file)")
    pattern: str = Field("*", description="Glob of backup files under path (path)")
    command: list[str] | None = Field(None, description="argv of the check command (command)")
    timeout_seconds: float = Field(60, gt=0, le=3600, allow_inf_nan=False, description="Longest a check may take")

    @model_validator(mode="after")
    def _needs(self) -> BackupJob:
        if self.kind in ("path", "status_file") and self.path is None:
            raise ValueError(f"backup job {self.name}: kind {self.kind} needs path")
        if self.kind == "command" and not self.command:
            raise ValueError(f"backup job {self.name}: kind command needs command (an argv list)")
        return self
