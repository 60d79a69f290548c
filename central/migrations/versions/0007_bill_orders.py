"""Outpatient bills paid at the kiosk: bill orders keep their items (order_items); the reference HIS records
payment and item status (paid, executed, refunded) on its bills.

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-23 12:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'order_items',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.String(32), nullable=False),
        sa.Column('category', sa.String(32), nullable=False),
        sa.Column('name', sa.String(100), nullable=False),
        sa.Column('insurance_class', sa.String(1), nullable=False),
        sa.Column('amount_fen', sa.Integer(), nullable=False),
        sa.Column('place', sa.String(200), nullable=False),
        sa.Column('place_en', sa.String(200), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('refund_no', sa.String(48), nullable=True),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_items_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_order_items')),
        sa.UniqueConstraint('order_id', 'item_id', name=op.f('uq_order_items_order_id_item_id')))
    with op.batch_alter_table('order_items') as batch:
        batch.create_index('ix_order_items_order_id', ['order_id'], unique=False)
    with op.batch_alter_table('his_bills') as batch:
        batch.add_column(sa.Column('payment_ref', sa.String(64), nullable=True))
        batch.add_column(sa.Column('paid_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('his_bill_items') as batch:
        batch.add_column(sa.Column('status', sa.String(16), nullable=False, server_default='PENDING'))
        batch.add_column(sa.Column('refund_ref', sa.String(64), nullable=True))
    op.execute("UPDATE his_bill_items SET status = 'PAID' WHERE bill_no IN "
               "(SELECT bill_no FROM his_bills WHERE status = 'PAID')")


def downgrade() -> None:
    with op.batch_alter_table('his_bill_items') as batch:
        batch.drop_column('refund_ref')
        batch.drop_column('status')
    with op.batch_alter_table('his_bills') as batch:
        batch.drop_column('paid_at')
        batch.drop_column('payment_ref')
    with op.batch_alter_table('order_items') as batch:
        batch.drop_index('ix_order_items_order_id')
    op.drop_table('order_items')
