"""E-health cards (电子健康卡) bound to patient files, found by a blind index of the card's code.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'his_ehealth_cards',
        sa.Column('code_index', sa.String(64), nullable=False),
        sa.Column('patient_id', sa.String(32), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'],
                                name=op.f('fk_his_ehealth_cards_patient_id_his_patients')),
        sa.PrimaryKeyConstraint('code_index', 'patient_id', name=op.f('pk_his_ehealth_cards')))
    with op.batch_alter_table('his_ehealth_cards') as batch:
        batch.create_index('ix_his_ehealth_cards_patient_id', ['patient_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('his_ehealth_cards') as batch:
        batch.drop_index('ix_his_ehealth_cards_patient_id')
    op.drop_table('his_ehealth_cards')
