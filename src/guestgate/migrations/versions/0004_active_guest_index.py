"""site_users: a partial index of active sessions by guest; on PostgreSQL, the coupon
redemption as a function

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-12 10:00:00.000000

The index `ix_site_users_active_guest` (site_id, ip_address, expires_at) WHERE status =
'active' answers "the guest's newest live sessions" with its equality columns and its order,
so every plan of that look-up, generic or custom, with or without statistics, takes it: the
(status, expires_at) and (site_id, started_at) indexes cannot compete with it.

That makes the redemption safe to run from a cached plan, which `guestgate_redeem_coupon`
does: PL/pgSQL keeps its statements' plans for the life of the connection, so a sign-in's
database work is one small statement to plan (the call) instead of the whole redemption.
The function takes the guest's advisory lock first; being VOLATILE, each of its statements
runs on a fresh snapshot under READ COMMITTED, so the redemption sees a session that a
concurrent sign-in of the same guest committed while it waited for the lock. The body is
the statement PostgresGuestStore ran before (see guestgate.portal.store.postgres); it is kept
in 0004_guestgate_redeem_coupon.sql beside this file.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The function's CREATE statement, kept as SQL beside this file.
REDEEM_FUNCTION = (Path(__file__).parent / "0004_guestgate_redeem_coupon.sql").read_text(encoding="utf-8")


def upgrade() -> None:
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        batch_op.create_index(
            "ix_site_users_active_guest",
            ["site_id", "ip_address", "expires_at"],
            unique=False,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(REDEEM_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS guestgate_redeem_coupon(text, text, text, text, text, timestamptz, text)"
        )
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        batch_op.drop_index("ix_site_users_active_guest")
