"""Registrations carry a status, so a registration the patient did not use can be cancelled and refunded.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('his_registrations') as batch:
        batch.add_column(sa.Column('status', sa.String(16), nullable=False, server_default='BOOKED'))


def downgrade() -> None:
    with op.batch_alter_table('his_registrations') as batch:
        batch.drop_column('status')
