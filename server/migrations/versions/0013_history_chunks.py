"""embedded history in chunks: one row per host, measurement and minute instead of one per point

Revision ID: 0013_history_chunks
Revises: 0012_console_triage2
Create Date: 2026-12-04 19:00:00.000000

The points are carried over, an hour per chunk (server/hosts/chunks.py format 1, which readers keep forever); downgrade
expands them again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

from server.hosts import chunks

revision = '0013_history_chunks'
down_revision = '0012_console_triage2'
branch_labels = None
depends_on = None

_BATCH = 20_000  # points read and chunks written at a time


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, (str, bytes)) else value


def _create_chunks() -> None:
    op.create_table('history_chunks',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('measurement', sa.String(length=128), nullable=False),
    sa.Column('ts_ns', sa.BigInteger(), nullable=False, comment="The oldest point's time, ns since the epoch"),
    sa.Column('ts_max_ns', sa.BigInteger(), nullable=False, comment="The newest point's time (retention goes by it)"),
    sa.Column('points', sa.Integer(), nullable=False, comment='Points in the payload (the cap counts them)'),
    sa.Column('payload', sa.LargeBinary(), nullable=False, comment='chunks.encode(): version byte, zlib of JSON'),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('history_chunks', schema=None) as batch_op:
        batch_op.create_index('ix_history_chunks_host_measurement_ts', ['host_id', 'measurement', 'ts_ns'], unique=False)
        batch_op.create_index(batch_op.f('ix_history_chunks_ts_max_ns'), ['ts_max_ns'], unique=False)


def _create_points() -> None:
    op.create_table('history_points',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('measurement', sa.String(length=128), nullable=False),
    sa.Column('series_key', sa.String(length=2048), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('ts_ns', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('history_points', schema=None) as batch_op:
        batch_op.create_index('ix_history_host_measurement_ts', ['host_id', 'measurement', 'ts_ns'], unique=False)
        batch_op.create_index(batch_op.f('ix_history_points_ts_ns'), ['ts_ns'], unique=False)


def _old_points(connection: sa.Connection) -> Iterator[list[Any]]:
    """history_points in (host, measurement, time) order, a batch at a time, cut only between hours."""
    query = sa.text("SELECT host_id, measurement, series_key, tags, fields, ts_ns FROM history_points"
                    " ORDER BY host_id, measurement, ts_ns").execution_options(yield_per=_BATCH)
    pending: list[Any] = []
    for row in connection.execute(query):
        point = (row[0], row[1], row[2], _json(row[3]), _json(row[4]), row[5])
        if len(pending) >= _BATCH and pending[-1][:2] + (pending[-1][5] // chunks.HOUR_NS,) != point[:2] + (point[5] // chunks.HOUR_NS,):
            yield pending
            pending = []
        pending.append(point)
    if pending:
        yield pending


def upgrade() -> None:
    _create_chunks()
    connection = op.get_bind()
    table = sa.table('history_chunks', sa.column('host_id'), sa.column('measurement'), sa.column('ts_ns'), sa.column('ts_max_ns'),
                     sa.column('points'), sa.column('payload'))
    for points in _old_points(connection):
        rows = [{"host_id": c.host_id, "measurement": c.measurement, "ts_ns": c.ts_ns, "ts_max_ns": c.ts_max_ns,
                 "points": c.points, "payload": c.payload} for c in chunks.chunks_of(points, chunks.HOUR_NS)]
        connection.execute(table.insert(), rows)
    with op.batch_alter_table('history_points', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_history_points_ts_ns'))
        batch_op.drop_index('ix_history_host_measurement_ts')
    op.drop_table('history_points')


def downgrade() -> None:
    _create_points()
    connection = op.get_bind()
    table = sa.table('history_points', sa.column('host_id'), sa.column('measurement'), sa.column('series_key'), sa.column('tags', sa.JSON()),
                     sa.column('fields', sa.JSON()), sa.column('ts_ns'))
    query = sa.text("SELECT host_id, measurement, payload FROM history_chunks ORDER BY id")
    rows: list[dict[str, Any]] = []
    for host_id, measurement, payload in list(connection.execute(query)):
        rows.extend({"host_id": host_id, "measurement": measurement, "series_key": p.series_key, "tags": p.tags, "fields": p.fields,
                     "ts_ns": p.ts_ns} for p in chunks.decode(payload))
        if len(rows) >= _BATCH:
            connection.execute(table.insert(), rows)
            rows = []
    if rows:
        connection.execute(table.insert(), rows)
    with op.batch_alter_table('history_chunks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_history_chunks_ts_max_ns'))
        batch_op.drop_index('ix_history_chunks_host_measurement_ts')
    op.drop_table('history_chunks')
