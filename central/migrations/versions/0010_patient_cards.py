"""办卡绑卡 (K2): e-health cards issued through the HIS (the code kept encrypted so it can be shown again) and
physical visit cards (就诊卡) bound to patient files, found by a blind index of the card number.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-15 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'  # the reference HIS's line; the server upgrades to all heads
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'his_ehealth_issued',
        sa.Column('patient_id', sa.String(32), nullable=False),
        sa.Column('code', sa.LargeBinary(), nullable=False),
        sa.Column('code_index', sa.String(64), nullable=False),
        sa.Column('issued_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'],
                                name=op.f('fk_his_ehealth_issued_patient_id_his_patients')),
        sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_his_ehealth_issued')),
        sa.UniqueConstraint('code_index', name=op.f('uq_his_ehealth_issued_code_index')))
    op.create_table(
        'his_visit_cards',
        sa.Column('card_index', sa.String(64), nullable=False),
        sa.Column('card_no', sa.LargeBinary(), nullable=False),
        sa.Column('patient_id', sa.String(32), nullable=False),
        sa.Column('bound_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'],
                                name=op.f('fk_his_visit_cards_patient_id_his_patients')),
        sa.PrimaryKeyConstraint('card_index', name=op.f('pk_his_visit_cards')))
    with op.batch_alter_table('his_visit_cards') as batch:
        batch.create_index('ix_his_visit_cards_patient_id', ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('his_visit_cards') as batch:
        batch.drop_index('ix_his_visit_cards_patient_id')
    op.drop_table('his_visit_cards')
    op.drop_table('his_ehealth_issued')
