"""Kiosk messages: what kiosks' offline queues delivered, stored once per (terminal, idempotency key).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'kiosk_messages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('terminal_id', sa.String(64), nullable=False),
        sa.Column('idempotency_key', sa.String(128), nullable=False),
        sa.Column('kind', sa.String(40), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('received_at', sa.DateTime(), nullable=False),
        sa.Column('copies', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'],
                                name=op.f('fk_kiosk_messages_terminal_id_terminals')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_kiosk_messages')),
        sa.UniqueConstraint('terminal_id', 'idempotency_key',
                            name=op.f('uq_kiosk_messages_terminal_id_idempotency_key')))
    with op.batch_alter_table('kiosk_messages') as batch:
        batch.create_index('ix_kiosk_messages_kind_id', ['kind', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kiosk_messages') as batch:
        batch.drop_index('ix_kiosk_messages_kind_id')
    op.drop_table('kiosk_messages')
