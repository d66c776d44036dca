"""audit log index by target (a finding's history on its console page)

Revision ID: 0012_console_triage2
Revises: 0011_inventory_revision
Create Date: 2026-12-04 12:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = '0012_console_triage2'
down_revision = '0011_inventory_revision'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_log_target', 'audit_log', ['target_type', 'target_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_log_target', table_name='audit_log')
