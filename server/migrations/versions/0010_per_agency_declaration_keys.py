"""per-agency keys for systems, websites and hosts; platform-wide (shared) websites

Revision ID: 0010_per_agency_declaration_keys
Revises: 0009_login_failures
Create Date: 2026-12-04 10:30:00

A system code, website host or host name was unique platform-wide: an agency declaring a key another agency
had declared got a different answer (409) than for a free key (201), which told it that the other agency has
that system, website or host (Article 25). Each agency's registry is now its own namespace: the keys are unique
per (key, agency), as plan prefixes and exemptions became in 0008. Websites get the admin-only `shared` flag:
a platform-wide website counts as registered for every agency's observations.

SQLite keeps unnamed UNIQUE constraints: batch mode reflects them under the naming
convention below so they can be dropped; PostgreSQL names them `<table>_<column>_key`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010_per_agency_declaration_keys'
down_revision = '0009_login_failures'
branch_labels = None
depends_on = None

NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
KEYS = (('inventory_systems', 'code', 'uq_system_code_agency'),
        ('inventory_websites', 'host', 'uq_website_host_agency'),
        ('inventory_hosts', 'name', 'uq_host_name_agency'))


def _old_unique(table: str, column: str) -> str:
    """The name of the old unnamed UNIQUE(column) on `table` on this backend."""
    return f"uq_{table}_{column}" if op.get_bind().dialect.name == "sqlite" else f"{table}_{column}_key"


def upgrade() -> None:
    for table, column, name in KEYS:
        with op.batch_alter_table(table, schema=None, naming_convention=NAMING) as batch_op:
            batch_op.drop_constraint(_old_unique(table, column), type_='unique')
            if table == 'inventory_websites':
                batch_op.add_column(sa.Column('shared', sa.Boolean(), server_default=sa.false(), nullable=False,
                                              comment='Platform-wide (admins only): registered for every agency'))
            batch_op.create_unique_constraint(name, [column, 'agency_id'])


def downgrade() -> None:
    """Back to platform-wide keys: fails if two agencies declared the same key (merge them first)."""
    for table, column, name in reversed(KEYS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_='unique')
            if table == 'inventory_websites':
                batch_op.drop_column('shared')
            batch_op.create_unique_constraint(_old_unique(table, column), [column])
