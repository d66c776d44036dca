"""What the alerting engine's parts share: the settings, the evaluator and its lock, routing, and the skip count.

`AlertingEngine` (server.alerting.engine) sets these in its `__init__`; its parts (lease, feed, outbox) inherit
this base so each one is type-checked against the same declarations instead of guessing what the others set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from alerting.channel import ReceiverBase
from alerting.evaluate import Evaluator
from alerting.route import Inhibition, MaintenanceWindow, Route
from alerting.rules import Rule
from server.settings import AlertingSettings

log = logging.getLogger("server.alerting.engine")

SkippedRow = tuple[str, str | int]  # (kind, rule name or row id) of an invalid stored row


class EngineState:
    """The attributes every part of the engine reads; assigned once in `AlertingEngine.__init__`."""

    settings: AlertingSettings
    rules: list[Rule]
    evaluator: Evaluator  # guarded by _lock
    route: Route | None
    receivers: dict[str, ReceiverBase]
    inhibitions: list[Inhibition]
    windows: list[MaintenanceWindow]
    _sessions: sessionmaker[Session]
    _clock: Callable[[], datetime]
    _lock: threading.Lock
    _measurements: set[str]  # the measurements some rule reads
    _on_skip: Callable[[str], None]
    _skipped: set[SkippedRow]  # logged once per row

    def _skip(self, kind: str, ident: str | int, exc: Exception) -> None:
        """One invalid stored row is left out of this cycle; the others are evaluated. Logged once per row, counted."""
        self._on_skip(kind)
        if (kind, ident) not in self._skipped:
            self._skipped.add((kind, ident))
            log.error("alert evaluation skips %s %s, which is invalid: %s", kind, ident, exc)
