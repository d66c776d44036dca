"""inventory revision counter (the declared registry is cached per change, server/inventory/revision.py)

Revision ID: 0011_inventory_revision
Revises: 0010_per_agency_declaration_keys
Create Date: 2026-12-04 11:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011_inventory_revision'
down_revision = '0010_per_agency_declaration_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table('inventory_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.bulk_insert(table, [{'id': 1, 'value': 0}])


def downgrade() -> None:
    op.drop_table('inventory_revision')
