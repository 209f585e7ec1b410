"""access plans at sign-in: the redemption on PostgreSQL counts uses and devices; an index of a
code's active sessions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 20:00:00.000000

- `ix_site_users_active_coupon` (coupon_id, expires_at) WHERE status = 'active': the sessions
  signed in with a code right now, counted when a code that has been used as many times as it
  has devices is tried again (`max_devices`).
- PostgreSQL: `guestgate_redeem_coupon` replaced by the version in
  0011_guestgate_redeem_coupon.sql (spends a use, checks `max_uses` and `max_devices`, moves the
  expiry at first use for `validity_from = 'first_use'`, copies the code's limits onto the
  session, and returns them). Its result columns grew, which CREATE OR REPLACE cannot change:
  the old function is dropped first, in the same transaction. 0004's file stays as it was (the
  downgrade restores it).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_HERE = Path(__file__).parent
# The function's CREATE statement, kept as SQL beside this file.
REDEEM_FUNCTION = (_HERE / "0011_guestgate_redeem_coupon.sql").read_text(encoding="utf-8")
PREVIOUS_FUNCTION = (_HERE / "0004_guestgate_redeem_coupon.sql").read_text(encoding="utf-8")
DROP_FUNCTION = (
    "DROP FUNCTION IF EXISTS guestgate_redeem_coupon(text, text, text, text, text, timestamptz, text)"
)


def upgrade() -> None:
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        batch_op.create_index(
            "ix_site_users_active_coupon",
            ["coupon_id", "expires_at"],
            unique=False,
            sqlite_where=sa.text("status = 'active'"),
            postgresql_where=sa.text("status = 'active'"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP_FUNCTION)
        op.execute(REDEEM_FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP_FUNCTION)
        op.execute(PREVIOUS_FUNCTION)
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        batch_op.drop_index("ix_site_users_active_coupon")
