"""per-agency findings, per-agency declarations, allotments and declaration requests

Revision ID: 0008_agency_findings_governance
Revises: 0007_leases
Create Date: 2026-12-04 09:00:00

Findings become unique per (rule, subject, agency) — the constraint is also the
index `findings.apply_drafts` looks drafts up by. Plan prefixes and exemptions
become unique per agency (two agencies' rooms may both use 192.168.1.0/24); plan
entries get the admin-only `shared` flag. New tables: the prefixes allotted to
agencies, and the declarations waiting for the e-gov office's approval.

Stored findings keep their ids and owners; evidence facts of other agencies' hosts are removed from them
(until now a finding could carry the hosts of every agency that saw its subject).

SQLite keeps unnamed UNIQUE constraints: batch mode reflects them under the naming
convention below so they can be dropped; PostgreSQL names them `<table>_prefix_key`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import server.database

revision = '0008_agency_findings_governance'
down_revision = '0007_leases'
branch_labels = None
depends_on = None

NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _prefix_unique(table: str) -> str:
    """The name of the old unnamed UNIQUE(prefix) on `table` on this backend."""
    return f"uq_{table}_prefix" if op.get_bind().dialect.name == "sqlite" else f"{table}_prefix_key"


def _own_evidence_only() -> None:
    """Drop evidence facts reported by another agency's hosts from every finding (Article 25)."""
    bind = op.get_bind()
    agencies = sa.table('agencies', sa.column('id', sa.Integer()), sa.column('code', sa.String()))
    findings = sa.table('findings', sa.column('id', sa.Integer()), sa.column('agency_id', sa.Integer()), sa.column('evidence', sa.JSON()))
    codes = dict(bind.execute(sa.select(agencies.c.id, agencies.c.code)).all())
    for id_, agency_id, evidence in bind.execute(sa.select(findings.c.id, findings.c.agency_id, findings.c.evidence)).all():
        own = [e for e in evidence or [] if e.get('agency') == codes.get(agency_id)]
        if len(own) != len(evidence or []):
            bind.execute(findings.update().where(findings.c.id == id_).values(evidence=own))


def upgrade() -> None:
    _own_evidence_only()
    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_constraint('uq_finding_rule_subject', type_='unique')
        batch_op.create_unique_constraint('uq_finding_rule_subject_agency', ['rule_id', 'subject', 'agency_id'])

    with op.batch_alter_table('inventory_plan', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint(_prefix_unique('inventory_plan'), type_='unique')
        batch_op.add_column(sa.Column('shared', sa.Boolean(), server_default=sa.false(), nullable=False,
                                      comment='Platform-wide (admins only): counts as declared for every agency'))
        batch_op.create_unique_constraint('uq_plan_prefix_agency', ['prefix', 'agency_id'])

    with op.batch_alter_table('inventory_exemptions', schema=None, naming_convention=NAMING) as batch_op:
        batch_op.drop_constraint(_prefix_unique('inventory_exemptions'), type_='unique')
        batch_op.create_unique_constraint('uq_exemption_prefix_agency', ['prefix', 'agency_id'])

    op.create_table('inventory_allotments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('prefix', sa.String(length=64), nullable=False, comment='The allotted prefix'),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('approval_ref', sa.String(length=200), nullable=True, comment='The document that allots it'),
    sa.Column('note', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('prefix', 'agency_id', name='uq_allotment_prefix_agency')
    )
    with op.batch_alter_table('inventory_allotments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inventory_allotments_agency_id'), ['agency_id'], unique=False)

    op.create_table('inventory_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False, comment='address_plan or exemptions'),
    sa.Column('prefix', sa.String(length=64), nullable=False),
    sa.Column('agency_id', sa.Integer(), nullable=False),
    sa.Column('entry', sa.JSON(), nullable=False, comment='The declaration as requested'),
    sa.Column('reason', sa.String(length=32), nullable=False, comment='too_wide, outside_allotment, shared, requested'),
    sa.Column('status', sa.String(length=16), nullable=False, comment='pending, approved, rejected'),
    sa.Column('requested_by', sa.String(length=100), nullable=False),
    sa.Column('requested_at', server.database.UTCDateTime(timezone=True), nullable=False),
    sa.Column('note', sa.String(length=1000), nullable=False),
    sa.Column('decided_by', sa.String(length=100), nullable=True),
    sa.Column('decided_at', server.database.UTCDateTime(timezone=True), nullable=True),
    sa.Column('approval_ref', sa.String(length=200), nullable=True, comment='The approval reference (批准文号) when approved'),
    sa.Column('decision_note', sa.String(length=1000), nullable=False),
    sa.Column('entry_id', sa.Integer(), nullable=True, comment='The declaration created on approval'),
    sa.ForeignKeyConstraint(['agency_id'], ['agencies.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('inventory_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inventory_requests_agency_id'), ['agency_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inventory_requests_status'), ['status'], unique=False)


def downgrade() -> None:
    """Back to platform-wide uniqueness: fails if two agencies hold the same finding or prefix (merge them first)."""
    with op.batch_alter_table('inventory_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inventory_requests_status'))
        batch_op.drop_index(batch_op.f('ix_inventory_requests_agency_id'))
    op.drop_table('inventory_requests')
    with op.batch_alter_table('inventory_allotments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inventory_allotments_agency_id'))
    op.drop_table('inventory_allotments')

    with op.batch_alter_table('inventory_exemptions', schema=None) as batch_op:
        batch_op.drop_constraint('uq_exemption_prefix_agency', type_='unique')
        batch_op.create_unique_constraint(_prefix_unique('inventory_exemptions'), ['prefix'])

    with op.batch_alter_table('inventory_plan', schema=None) as batch_op:
        batch_op.drop_constraint('uq_plan_prefix_agency', type_='unique')
        batch_op.drop_column('shared')
        batch_op.create_unique_constraint(_prefix_unique('inventory_plan'), ['prefix'])

    with op.batch_alter_table('findings', schema=None) as batch_op:
        batch_op.drop_constraint('uq_finding_rule_subject_agency', type_='unique')
        batch_op.create_unique_constraint('uq_finding_rule_subject', ['rule_id', 'subject'])
