"""audit_events: indexes for the audit list's filters by target and by action

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09 10:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_events_org_id_target_type_target_id"),
            ["org_id", "target_type", "target_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_audit_events_org_id_action_at"), ["org_id", "action", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_org_id_action_at"))
        batch_op.drop_index(batch_op.f("ix_audit_events_org_id_target_type_target_id"))
