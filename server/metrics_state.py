"""What `server.metrics.StateCollector` reads at scrape time: the outbox, findings and alerts counted in the database."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from server.alerting.models import AlertRecord, Notification
from server.findings.models import Finding

MAX_LABEL_SETS = 1000  # per family: a scrape stays bounded whatever the database holds


def count_state_rows(sessions: sessionmaker[Session]) -> dict[str, list[tuple[tuple[str, ...], int]]]:
    """{family: [(label values, count)]} for notifications (receiver, status), findings (rule, status) and alerts
    (status, severity): three GROUP BY queries."""
    queries = {
        "notifications": (Notification.receiver, Notification.status),
        "findings": (Finding.rule_id, Finding.status),
        "alerts": (AlertRecord.status, AlertRecord.severity),
    }
    counted: dict[str, list[tuple[tuple[str, ...], int]]] = {}
    with sessions() as session:
        for family, columns in queries.items():
            rows = session.execute(select(*columns, func.count()).group_by(*columns).limit(MAX_LABEL_SETS)).all()
            counted[family] = [(tuple(str(v) for v in row[:-1]), int(row[-1])) for row in rows]
    return counted
