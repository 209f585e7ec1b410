"""Coupon batches and their public links: revocation, batch listing, local time and network name

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-16 10:00:00.000000

- `schedule_runs` is the record of every generated batch from now on, including the ones made
  by `POST .../coupons` (kind `api`, no schedule); `urls_revoked_at` revokes a batch's public
  links, and (instance_id, ran_at) lists an instance's batches newest first.
- `coupon_schedules.urls_revoked_at` revokes a schedule's public links (and its batches').
- `coupons` (schedule_id, created_at) WHERE redeemed_at IS NULL pages a schedule link's valid
  coupons newest first from the index.
- `instances.network_name` (printed on the cards) and `instances.timezone` (the local time of
  cards, e-mails and pages that have no schedule, and of the portal's status page).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import guestgate.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("network_name", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
    with op.batch_alter_table("coupon_schedules", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("urls_revoked_at", guestgate.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("schedule_runs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("urls_revoked_at", guestgate.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_schedule_runs_instance_id_ran_at"), ["instance_id", "ran_at"], unique=False
        )
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.create_index(
            "ix_coupons_schedule_unredeemed",
            ["schedule_id", "created_at"],
            unique=False,
            sqlite_where=sa.text("redeemed_at IS NULL"),
            postgresql_where=sa.text("redeemed_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        batch_op.drop_index("ix_coupons_schedule_unredeemed")
    with op.batch_alter_table("schedule_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_schedule_runs_instance_id_ran_at"))
        batch_op.drop_column("urls_revoked_at")
    with op.batch_alter_table("coupon_schedules", schema=None) as batch_op:
        batch_op.drop_column("urls_revoked_at")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("network_name")
