"""Records, appointments and check-in: printable documents (imaging reports, medical-record summaries,
e-invoices) with their print counts, the platform's print records, department clinic types (特需 / MDT),
doctors' pinyin initials and minutes per patient, and check-in state on registrations.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('his_departments') as batch:
        batch.add_column(sa.Column('clinic_type', sa.String(16), nullable=False, server_default='general'))
    with op.batch_alter_table('his_doctors') as batch:
        batch.add_column(sa.Column('initials', sa.String(16), nullable=True))
        batch.add_column(sa.Column('minutes_per_patient', sa.Integer(), nullable=False, server_default='10'))
        batch.create_index('ix_his_doctors_initials', ['initials'], unique=False)
    with op.batch_alter_table('his_registrations') as batch:
        batch.add_column(sa.Column('checked_in_at', sa.DateTime(), nullable=True))
        batch.add_column(sa.Column('seen_at', sa.DateTime(), nullable=True))
    op.create_table(
        'his_imaging_reports',
        sa.Column('report_no', sa.String(32), nullable=False),
        sa.Column('patient_id', sa.String(32), nullable=False),
        sa.Column('dept_code', sa.String(32), nullable=False),
        sa.Column('modality', sa.String(16), nullable=False),
        sa.Column('title', sa.String(100), nullable=False),
        sa.Column('findings', sa.Text(), nullable=False),
        sa.Column('impression', sa.Text(), nullable=False),
        sa.Column('examined_at', sa.DateTime(), nullable=False),
        sa.Column('reported_at', sa.DateTime(), nullable=False),
        sa.Column('printed_count', sa.Integer(), nullable=False, server_default='0'),
        sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'],
                                name=op.f('fk_his_imaging_reports_patient_id_his_patients')),
        sa.ForeignKeyConstraint(['dept_code'], ['his_departments.code'],
                                name=op.f('fk_his_imaging_reports_dept_code_his_departments')),
        sa.PrimaryKeyConstraint('report_no', name=op.f('pk_his_imaging_reports')))
    with op.batch_alter_table('his_imaging_reports') as batch:
        batch.create_index('ix_his_imaging_reports_patient_id', ['patient_id'], unique=False)
    op.create_table(
        'his_medical_records',
        sa.Column('record_no', sa.String(32), nullable=False),
        sa.Column('patient_id', sa.String(32), nullable=False),
        sa.Column('dept_code', sa.String(32), nullable=False),
        sa.Column('doctor_code', sa.String(32), nullable=False),
        sa.Column('visited_at', sa.DateTime(), nullable=False),
        sa.Column('complaint', sa.LargeBinary(), nullable=False),
        sa.Column('diagnosis', sa.LargeBinary(), nullable=False),
        sa.Column('advice', sa.LargeBinary(), nullable=False),
        sa.Column('printed_count', sa.Integer(), nullable=False, server_default='0'),
        sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'],
                                name=op.f('fk_his_medical_records_patient_id_his_patients')),
        sa.ForeignKeyConstraint(['dept_code'], ['his_departments.code'],
                                name=op.f('fk_his_medical_records_dept_code_his_departments')),
        sa.ForeignKeyConstraint(['doctor_code'], ['his_doctors.code'],
                                name=op.f('fk_his_medical_records_doctor_code_his_doctors')),
        sa.PrimaryKeyConstraint('record_no', name=op.f('pk_his_medical_records')))
    with op.batch_alter_table('his_medical_records') as batch:
        batch.create_index('ix_his_medical_records_patient_id', ['patient_id'], unique=False)
    op.create_table(
        'his_invoices',
        sa.Column('invoice_no', sa.String(32), nullable=False),
        sa.Column('order_ref', sa.String(64), nullable=False),
        sa.Column('patient_id', sa.String(32), nullable=False),
        sa.Column('title', sa.String(100), nullable=False),
        sa.Column('amount_fen', sa.Integer(), nullable=False),
        sa.Column('items', sa.Text(), nullable=False),
        sa.Column('issued_at', sa.DateTime(), nullable=False),
        sa.Column('printed_count', sa.Integer(), nullable=False, server_default='0'),
        sa.ForeignKeyConstraint(['patient_id'], ['his_patients.patient_id'],
                                name=op.f('fk_his_invoices_patient_id_his_patients')),
        sa.PrimaryKeyConstraint('invoice_no', name=op.f('pk_his_invoices')),
        sa.UniqueConstraint('order_ref', name=op.f('uq_his_invoices_order_ref')))
    with op.batch_alter_table('his_invoices') as batch:
        batch.create_index('ix_his_invoices_patient_id', ['patient_id'], unique=False)
    op.create_table(
        'his_print_log',
        sa.Column('print_ref', sa.String(64), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('doc_no', sa.String(32), nullable=False),
        sa.Column('count_after', sa.Integer(), nullable=False),
        sa.Column('printed_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('print_ref', name=op.f('pk_his_print_log')))
    op.create_table(
        'print_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('terminal_id', sa.String(64), nullable=False),
        sa.Column('idempotency_key', sa.String(128), nullable=False),
        sa.Column('patient_id', sa.String(32), nullable=False),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('doc_no', sa.String(32), nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('count_after', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'],
                                name=op.f('fk_print_records_terminal_id_terminals')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_print_records')),
        sa.UniqueConstraint('terminal_id', 'idempotency_key', name=op.f('uq_print_records_terminal_id_idempotency_key')))
    with op.batch_alter_table('print_records') as batch:
        batch.create_index('ix_print_records_patient_id', ['patient_id'], unique=False)
    _fill_initials()


def _fill_initials() -> None:
    """Doctors already in a reference HIS get their initials now; new ones get them when seeded."""
    from central.his.pinyin import name_initials

    bind = op.get_bind()
    doctors = sa.table('his_doctors', sa.column('code', sa.String), sa.column('name', sa.String),
                       sa.column('initials', sa.String))
    for code, name in bind.execute(sa.select(doctors.c.code, doctors.c.name)).all():
        bind.execute(doctors.update().where(doctors.c.code == code).values(initials=name_initials(name)))


def downgrade() -> None:
    with op.batch_alter_table('print_records') as batch:
        batch.drop_index('ix_print_records_patient_id')
    op.drop_table('print_records')
    op.drop_table('his_print_log')
    with op.batch_alter_table('his_invoices') as batch:
        batch.drop_index('ix_his_invoices_patient_id')
    op.drop_table('his_invoices')
    with op.batch_alter_table('his_medical_records') as batch:
        batch.drop_index('ix_his_medical_records_patient_id')
    op.drop_table('his_medical_records')
    with op.batch_alter_table('his_imaging_reports') as batch:
        batch.drop_index('ix_his_imaging_reports_patient_id')
    op.drop_table('his_imaging_reports')
    with op.batch_alter_table('his_registrations') as batch:
        batch.drop_column('seen_at')
        batch.drop_column('checked_in_at')
    with op.batch_alter_table('his_doctors') as batch:
        batch.drop_index('ix_his_doctors_initials')
        batch.drop_column('minutes_per_patient')
        batch.drop_column('initials')
    with op.batch_alter_table('his_departments') as batch:
        batch.drop_column('clinic_type')
