"""site_users.gateway_applied_at: when the gateway let the guest through

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import guestgate.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gateway_applied_at", guestgate.db.UTCDateTime(timezone=True), nullable=True)
        )
    # Sessions from before this column were either enforced already or never will be: none waits.
    op.execute("UPDATE site_users SET gateway_applied_at = started_at")


def downgrade() -> None:
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        batch_op.drop_column("gateway_applied_at")
