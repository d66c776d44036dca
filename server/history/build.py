"""Build the history writer the settings ask for, with its on-disk spool."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from server.history.base import HistoryWriter
from server.settings import Settings, TsdbKind, TsdbSettings


def _influx2(tsdb: TsdbSettings) -> HistoryWriter:
    from server.history.influx2 import InfluxV2Writer  # noqa: PLC0415 - only the configured TSDB's writer is imported

    return InfluxV2Writer(tsdb)


def _influx1(tsdb: TsdbSettings) -> HistoryWriter:
    from server.history.influx1 import InfluxV1Writer  # noqa: PLC0415 - only the configured TSDB's writer is imported

    return InfluxV1Writer(tsdb)


WRITERS: dict[TsdbKind, Callable[[TsdbSettings], HistoryWriter]] = {
    TsdbKind.INFLUXDB2: _influx2,
    TsdbKind.INFLUXDB1: _influx1,
}


def claim_spool_dir(base: Path) -> tuple[Path, int]:
    """Lock and return the first free `base/<n>` spool directory, with the lock's file descriptor.

    Several server processes (uvicorn workers, replicas on one host) each need a
    spool of their own; a restarted process claims a free one and replays what
    an earlier process left there. The lock lives as long as the descriptor.
    """
    base.mkdir(parents=True, exist_ok=True)
    for index in range(1024):
        fd = os.open(base / f"{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        path = base / str(index)
        path.mkdir(exist_ok=True)
        return path, fd
    raise RuntimeError(f"no free spool directory under {base}")


def build_history(settings: Settings) -> tuple[HistoryWriter | None, int | None]:
    """The spooled TSDB writer (started), or (None, None) for embedded history."""
    if settings.tsdb.kind is TsdbKind.NONE:
        return None, None
    from server.history.spool import SpooledWriter  # noqa: PLC0415 - only the configured TSDB's writer is imported

    spool_dir, lock_fd = claim_spool_dir(settings.data_dir / "tsdb-spool")
    writer = SpooledWriter(WRITERS[settings.tsdb.kind](settings.tsdb), spool_dir, settings.tsdb.spool_max_bytes)
    writer.start()
    return writer, lock_fd
