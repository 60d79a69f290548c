"""Fleet: terminal info and status snapshot, device-health timeline, beats, events, remote commands with
their audit log, alerts with history, artifacts (screenshots, log bundles).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('fleet_alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('message', sa.String(length=300), nullable=False),
    sa.Column('raised_at', sa.DateTime(), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=64), nullable=True),
    sa.Column('resolved_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_alerts_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_alerts'))
    )
    with op.batch_alter_table('fleet_alerts') as batch_op:
        batch_op.create_index('ix_fleet_alerts_status', ['status'], unique=False)
        batch_op.create_index('ix_fleet_alerts_terminal_id_status', ['terminal_id', 'status'], unique=False)

    op.create_table('fleet_beats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('agent_boot', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('queued', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_beats_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_beats')),
    sa.UniqueConstraint('terminal_id', 'agent_boot', 'seq', name=op.f('uq_fleet_beats_terminal_id_agent_boot_seq'))
    )
    with op.batch_alter_table('fleet_beats') as batch_op:
        batch_op.create_index('ix_fleet_beats_received_at', ['received_at'], unique=False)

    op.create_table('fleet_commands',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('args', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('issued_by', sa.String(length=64), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('sent_at', sa.DateTime(), nullable=True),
    sa.Column('acked_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('artifact_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_commands_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_commands'))
    )
    with op.batch_alter_table('fleet_commands') as batch_op:
        batch_op.create_index('ix_fleet_commands_status_expires_at', ['status', 'expires_at'], unique=False)
        batch_op.create_index('ix_fleet_commands_terminal_id_status', ['terminal_id', 'status'], unique=False)

    op.create_table('fleet_device_health',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('device', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=60), nullable=False),
    sa.Column('detail', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_device_health_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_device_health'))
    )
    with op.batch_alter_table('fleet_device_health') as batch_op:
        batch_op.create_index('ix_fleet_device_health_terminal_id_id', ['terminal_id', 'id'], unique=False)

    op.create_table('fleet_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_events_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_events')),
    sa.UniqueConstraint('terminal_id', 'key', name=op.f('uq_fleet_events_terminal_id_key'))
    )
    with op.batch_alter_table('fleet_events') as batch_op:
        batch_op.create_index('ix_fleet_events_terminal_id_id', ['terminal_id', 'id'], unique=False)

    op.create_table('fleet_status',
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(), nullable=False),
    sa.Column('last_beat_at', sa.DateTime(), nullable=False),
    sa.Column('last_sent_at', sa.DateTime(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.Column('agent_boot', sa.String(length=64), nullable=False),
    sa.Column('interval_s', sa.Float(), nullable=False),
    sa.Column('beats', sa.Integer(), nullable=False),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('app_version', sa.String(length=40), nullable=False),
    sa.Column('app_running', sa.Boolean(), nullable=False),
    sa.Column('app_uptime_s', sa.Float(), nullable=False),
    sa.Column('screen', sa.String(length=60), nullable=False),
    sa.Column('service', sa.String(length=60), nullable=False),
    sa.Column('payment_in_progress', sa.Boolean(), nullable=False),
    sa.Column('maintenance', sa.Boolean(), nullable=False),
    sa.Column('paper', sa.String(length=16), nullable=False),
    sa.Column('cpu_pct', sa.Float(), nullable=True),
    sa.Column('mem_pct', sa.Float(), nullable=True),
    sa.Column('disk_pct', sa.Float(), nullable=True),
    sa.Column('temp_c', sa.Float(), nullable=True),
    sa.Column('rtt_ms', sa.Float(), nullable=True),
    sa.Column('queue_depth', sa.Integer(), nullable=False),
    sa.Column('queue_parked', sa.Integer(), nullable=False),
    sa.Column('queue_oldest_s', sa.Float(), nullable=True),
    sa.Column('errors_last', sa.Integer(), nullable=False),
    sa.Column('devices', sa.Text(), nullable=False),
    sa.Column('facts', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_status_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('terminal_id', name=op.f('pk_fleet_status'))
    )
    op.create_table('fleet_terminal_info',
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('campus', sa.String(length=100), nullable=False),
    sa.Column('floor', sa.String(length=40), nullable=False),
    sa.Column('location', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_terminal_info_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('terminal_id', name=op.f('pk_fleet_terminal_info'))
    )
    op.create_table('fleet_alert_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.String(length=300), nullable=False),
    sa.ForeignKeyConstraint(['alert_id'], ['fleet_alerts.id'], name=op.f('fk_fleet_alert_log_alert_id_fleet_alerts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_alert_log'))
    )
    with op.batch_alter_table('fleet_alert_log') as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_alert_log_alert_id'), ['alert_id'], unique=False)

    op.create_table('fleet_artifacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('terminal_id', sa.String(length=64), nullable=False),
    sa.Column('command_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('content_type', sa.String(length=60), nullable=False),
    sa.Column('path', sa.String(length=300), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['command_id'], ['fleet_commands.id'], name=op.f('fk_fleet_artifacts_command_id_fleet_commands')),
    sa.ForeignKeyConstraint(['terminal_id'], ['terminals.terminal_id'], name=op.f('fk_fleet_artifacts_terminal_id_terminals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_artifacts'))
    )
    with op.batch_alter_table('fleet_artifacts') as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_artifacts_terminal_id'), ['terminal_id'], unique=False)

    op.create_table('fleet_command_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('command_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['command_id'], ['fleet_commands.id'], name=op.f('fk_fleet_command_log_command_id_fleet_commands')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_command_log'))
    )
    with op.batch_alter_table('fleet_command_log') as batch_op:
        batch_op.create_index(batch_op.f('ix_fleet_command_log_command_id'), ['command_id'], unique=False)


def downgrade() -> None:
    op.drop_table('fleet_command_log')
    op.drop_table('fleet_artifacts')
    op.drop_table('fleet_alert_log')
    op.drop_table('fleet_terminal_info')
    op.drop_table('fleet_status')
    op.drop_table('fleet_events')
    op.drop_table('fleet_device_health')
    op.drop_table('fleet_commands')
    op.drop_table('fleet_beats')
    op.drop_table('fleet_alerts')
