"""Initial schema: terminals, orders, payments, order events, and the reference HIS (his_ tables).

Encrypted personal columns are BLOBs (AES-GCM, see central.crypto); timestamps are naive UTC (central.db.UTCDateTime).

Revision ID: 0001
Revises:
Create Date: 2026-11-23 08:02:32.969705
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('his_departments',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('location_en', sa.String(length=200), nullable=False),
    sa.Column('sort_order', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_his_departments'))
    )
    op.create_table('his_doctors',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=32), nullable=False),
    sa.Column('title_en', sa.String(length=64), nullable=False),
    sa.Column('specialty', sa.String(length=200), nullable=False),
    sa.Column('fee_fen', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_his_doctors'))
    )
    op.create_table('his_patients',
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.LargeBinary(), nullable=False),
    sa.Column('id_number', sa.LargeBinary(), nullable=False),
    sa.Column('id_index', sa.String(length=64), nullable=False),
    sa.Column('gender', sa.String(length=4), nullable=False),
    sa.Column('birth', sa.Date(), nullable=False),
    sa.Column('phone', sa.LargeBinary(), nullable=True),
    sa.Column('address', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('patient_id', name=op.f('pk_his_patients')),
    sa.UniqueConstraint('id_index', name=op.f('uq_his_patients_id_index'))
    )
    op.create_table('his_schedule_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('generated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_his_schedule_days'))
    )
    op.create_table('terminals',
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('secret_sha256', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('keyed_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('terminal_id', name=op.f('pk_terminals'))
    )
    op.create_table('his_bills',
    sa.Column('bill_no', sa.String(length=32), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('dept_code', sa.String(length=32), nullable=False),
    sa.Column('doctor_code', sa.String(length=32), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('total_fen', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dept_code'], ['his_departments.code'], name=op.f('fk_his_bills_dept_code_his_departments')),
    sa.ForeignKeyConstraint(['doctor_code'], ['his_doctors.code'], name=op.f('fk_his_bills_doctor_code_his_doctors')),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'], name=op.f('fk_his_bills_patient_id_his_patients')),
    sa.PrimaryKeyConstraint('bill_no', name=op.f('pk_his_bills'))
    )
    with op.batch_alter_table('his_bills', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_bills_patient_id'), ['patient_id'], unique=False)

    op.create_table('his_doctor_departments',
    sa.Column('doctor_code', sa.String(length=32), nullable=False),
    sa.Column('dept_code', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['dept_code'], ['his_departments.code'], name=op.f('fk_his_doctor_departments_dept_code_his_departments')),
    sa.ForeignKeyConstraint(['doctor_code'], ['his_doctors.code'], name=op.f('fk_his_doctor_departments_doctor_code_his_doctors')),
    sa.PrimaryKeyConstraint('doctor_code', 'dept_code', name=op.f('pk_his_doctor_departments'))
    )
    op.create_table('his_lab_reports',
    sa.Column('report_no', sa.String(length=32), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=100), nullable=False),
    sa.Column('specimen', sa.String(length=32), nullable=False),
    sa.Column('dept_code', sa.String(length=32), nullable=False),
    sa.Column('collected_at', sa.DateTime(), nullable=False),
    sa.Column('reported_at', sa.DateTime(), nullable=False),
    sa.Column('printed_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dept_code'], ['his_departments.code'], name=op.f('fk_his_lab_reports_dept_code_his_departments')),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'], name=op.f('fk_his_lab_reports_patient_id_his_patients')),
    sa.PrimaryKeyConstraint('report_no', name=op.f('pk_his_lab_reports'))
    )
    with op.batch_alter_table('his_lab_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_lab_reports_patient_id'), ['patient_id'], unique=False)

    op.create_table('his_session_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dept_code', sa.String(length=32), nullable=False),
    sa.Column('doctor_code', sa.String(length=32), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start', sa.String(length=5), nullable=False),
    sa.Column('end', sa.String(length=5), nullable=False),
    sa.Column('slot_minutes', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dept_code'], ['his_departments.code'], name=op.f('fk_his_session_templates_dept_code_his_departments')),
    sa.ForeignKeyConstraint(['doctor_code'], ['his_doctors.code'], name=op.f('fk_his_session_templates_doctor_code_his_doctors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_his_session_templates'))
    )
    op.create_table('his_slots',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dept_code', sa.String(length=32), nullable=False),
    sa.Column('doctor_code', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('start', sa.String(length=5), nullable=False),
    sa.Column('end', sa.String(length=5), nullable=False),
    sa.Column('starts_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('booked', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['dept_code'], ['his_departments.code'], name=op.f('fk_his_slots_dept_code_his_departments')),
    sa.ForeignKeyConstraint(['doctor_code'], ['his_doctors.code'], name=op.f('fk_his_slots_doctor_code_his_doctors')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_his_slots')),
    sa.UniqueConstraint('dept_code', 'doctor_code', 'day', 'start', name=op.f('uq_his_slots_dept_code_doctor_code_day_start'))
    )
    with op.batch_alter_table('his_slots', schema=None) as batch_op:
        batch_op.create_index('ix_his_slots_day_dept', ['day', 'dept_code'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_no', sa.String(length=32), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('patient_name_masked', sa.String(length=64), nullable=False),
    sa.Column('dept_code', sa.String(length=32), nullable=False),
    sa.Column('dept_name', sa.String(length=100), nullable=False),
    sa.Column('dept_location', sa.String(length=200), nullable=False),
    sa.Column('doctor_code', sa.String(length=32), nullable=False),
    sa.Column('doctor_name', sa.String(length=64), nullable=False),
    sa.Column('doctor_title', sa.String(length=32), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('slot_date', sa.Date(), nullable=False),
    sa.Column('slot_start', sa.String(length=5), nullable=False),
    sa.Column('slot_end', sa.String(length=5), nullable=False),
    sa.Column('his_lock_id', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('paid_at', sa.DateTime(), nullable=True),
    sa.Column('paid_fen', sa.Integer(), nullable=True),
    sa.Column('queue_no', sa.Integer(), nullable=True),
    sa.Column('visit_code', sa.String(length=32), nullable=True),
    sa.Column('registration_location', sa.String(length=200), nullable=True),
    sa.Column('refund_no', sa.String(length=64), nullable=True),
    sa.Column('refund_status', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_orders_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('order_no', name=op.f('uq_orders_order_no')),
    sa.UniqueConstraint('terminal_id', 'idempotency_key', name=op.f('uq_orders_terminal_id_idempotency_key'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index('ix_orders_status_expires', ['status', 'expires_at'], unique=False)

    op.create_table('his_bill_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('bill_no', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('spec', sa.String(length=100), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('unit', sa.String(length=16), nullable=False),
    sa.Column('unit_price_fen', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['bill_no'], ['his_bills.bill_no'], name=op.f('fk_his_bill_items_bill_no_his_bills')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_his_bill_items'))
    )
    with op.batch_alter_table('his_bill_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_bill_items_bill_no'), ['bill_no'], unique=False)

    op.create_table('his_lab_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_no', sa.String(length=32), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=32), nullable=False),
    sa.Column('unit', sa.String(length=32), nullable=False),
    sa.Column('reference_range', sa.String(length=32), nullable=False),
    sa.Column('flag', sa.String(length=2), nullable=False),
    sa.ForeignKeyConstraint(['report_no'], ['his_lab_reports.report_no'], name=op.f('fk_his_lab_results_report_no_his_lab_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_his_lab_results'))
    )
    with op.batch_alter_table('his_lab_results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_lab_results_report_no'), ['report_no'], unique=False)

    op.create_table('his_slot_locks',
    sa.Column('lock_id', sa.String(length=64), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('until', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'], name=op.f('fk_his_slot_locks_patient_id_his_patients')),
    sa.ForeignKeyConstraint(['slot_id'], ['his_slots.id'], name=op.f('fk_his_slot_locks_slot_id_his_slots')),
    sa.PrimaryKeyConstraint('lock_id', name=op.f('pk_his_slot_locks')),
    sa.UniqueConstraint('reference', name=op.f('uq_his_slot_locks_reference'))
    )
    with op.batch_alter_table('his_slot_locks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_slot_locks_slot_id'), ['slot_id'], unique=False)

    op.create_table('order_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('event', sa.String(length=40), nullable=False),
    sa.Column('from_status', sa.String(length=32), nullable=True),
    sa.Column('to_status', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_events_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_events'))
    )
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_order_events_order_id'), ['order_id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('out_trade_no', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('description', sa.String(length=127), nullable=False),
    sa.Column('code_url', sa.String(length=512), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('success_time', sa.String(length=40), nullable=True),
    sa.Column('notified_at', sa.DateTime(), nullable=True),
    sa.Column('queried_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_payments_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('order_id', name=op.f('uq_payments_order_id')),
    sa.UniqueConstraint('out_trade_no', name=op.f('uq_payments_out_trade_no'))
    )
    op.create_table('his_registrations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lock_id', sa.String(length=64), nullable=False),
    sa.Column('slot_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.String(length=32), nullable=False),
    sa.Column('dept_code', sa.String(length=32), nullable=False),
    sa.Column('doctor_code', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('queue_no', sa.Integer(), nullable=False),
    sa.Column('visit_code', sa.String(length=32), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('payment_ref', sa.String(length=64), nullable=False),
    sa.Column('fee_fen', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['lock_id'], ['his_slot_locks.lock_id'], name=op.f('fk_his_registrations_lock_id_his_slot_locks')),
    sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'], name=op.f('fk_his_registrations_patient_id_his_patients')),
    sa.ForeignKeyConstraint(['slot_id'], ['his_slots.id'], name=op.f('fk_his_registrations_slot_id_his_slots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_his_registrations')),
    sa.UniqueConstraint('dept_code', 'doctor_code', 'day', 'queue_no', name=op.f('uq_his_registrations_dept_code_doctor_code_day_queue_no')),
    sa.UniqueConstraint('lock_id', name=op.f('uq_his_registrations_lock_id')),
    sa.UniqueConstraint('visit_code', name=op.f('uq_his_registrations_visit_code'))
    )
    with op.batch_alter_table('his_registrations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_his_registrations_patient_id'), ['patient_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('his_registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_registrations_patient_id'))

    op.drop_table('his_registrations')
    op.drop_table('payments')
    with op.batch_alter_table('order_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_order_events_order_id'))

    op.drop_table('order_events')
    with op.batch_alter_table('his_slot_locks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_slot_locks_slot_id'))

    op.drop_table('his_slot_locks')
    with op.batch_alter_table('his_lab_results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_lab_results_report_no'))

    op.drop_table('his_lab_results')
    with op.batch_alter_table('his_bill_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_bill_items_bill_no'))

    op.drop_table('his_bill_items')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_status_expires')

    op.drop_table('orders')
    with op.batch_alter_table('his_slots', schema=None) as batch_op:
        batch_op.drop_index('ix_his_slots_day_dept')

    op.drop_table('his_slots')
    op.drop_table('his_session_templates')
    with op.batch_alter_table('his_lab_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_lab_reports_patient_id'))

    op.drop_table('his_lab_reports')
    op.drop_table('his_doctor_departments')
    with op.batch_alter_table('his_bills', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_his_bills_patient_id'))

    op.drop_table('his_bills')
    op.drop_table('terminals')
    op.drop_table('his_schedule_days')
    op.drop_table('his_patients')
    op.drop_table('his_doctors')
    op.drop_table('his_departments')
