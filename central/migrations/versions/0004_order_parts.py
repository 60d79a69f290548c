"""An order may be settled by several payments: the insurance part and the self-pay part of one bill, or a
second trade opened when an aggregate QR code was scanned by the other app. Each payment carries its part
and its own amount; card payments keep the masked card number for the receipt and reconciliation. The order
remembers the method the patient chose and which trade paid it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.drop_constraint('uq_payments_order_id', type_='unique')
        batch.add_column(sa.Column('part', sa.String(16), nullable=False, server_default='self'))
        batch.add_column(sa.Column('amount_fen', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('detail', sa.Text(), nullable=False, server_default=''))
        batch.create_index('ix_payments_order_id', ['order_id'], unique=False)
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('insurance_fen', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('payment_method', sa.String(32), nullable=True))
        batch.add_column(sa.Column('paid_trade_no', sa.String(32), nullable=True))
    op.execute("UPDATE orders SET payment_method = (SELECT channel FROM payments WHERE payments.order_id = orders.id)")
    op.execute("UPDATE orders SET paid_trade_no = (SELECT out_trade_no FROM payments WHERE payments.order_id = "
               "orders.id) WHERE paid_at IS NOT NULL")
    op.execute("UPDATE payments SET amount_fen = (SELECT amount_fen FROM orders WHERE orders.id = payments.order_id)")


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('paid_trade_no')
        batch.drop_column('payment_method')
        batch.drop_column('insurance_fen')
    with op.batch_alter_table('payments') as batch:
        batch.drop_index('ix_payments_order_id')
        batch.drop_column('detail')
        batch.drop_column('amount_fen')
        batch.drop_column('part')
        batch.create_unique_constraint('uq_payments_order_id', ['order_id'])
