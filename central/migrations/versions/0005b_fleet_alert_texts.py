"""Fleet alerts carry their text in Chinese beside the English one (``fleet_alerts.message_zh``).

Alerts raised before this revision keep an empty Chinese text; the console shows their English one.

Revision ID: 0005b
Revises: 0005
Create Date: 2026-12-02 09:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005b'
down_revision: str | None = '0005'  # the fleet's own line; the server upgrades to all heads
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('fleet_alerts') as batch:
        batch.add_column(sa.Column('message_zh', sa.String(length=300), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('fleet_alerts') as batch:
        batch.drop_column('message_zh')
