"""login failures (throttling and temporary lockout of password logins)

Revision ID: 0009_login_failures
Revises: 0007_leases
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.database

revision = '0009_login_failures'
down_revision = '0008_agency_findings_governance'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=8), nullable=False, comment='user or address'),
    sa.Column('key', sa.String(length=64), nullable=False, comment='Lower-cased user name, or source address (IPv6: its /64)'),
    sa.Column('at', server.database.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index('ix_login_failures_scope_key_at', ['scope', 'key', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_login_failures_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_failures_at'))
        batch_op.drop_index('ix_login_failures_scope_key_at')

    op.drop_table('login_failures')
