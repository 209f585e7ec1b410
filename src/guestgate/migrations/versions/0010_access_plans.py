"""access plans: what a code buys (devices, sign-ins, speed, data, when validity starts) and usage

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 19:20:00.000000

- `instances`: the default plan. `max_devices` (guests signed in with one code at once, 1),
  `max_uses` (sign-ins with one code in total, 1; NULL: no limit), `download_kbps`,
  `upload_kbps`, `data_limit_mb` (NULL: no limit), `validity_from` (`creation` or `first_use`).
  The defaults are today's behaviour: a code signs in one guest, once, without limits.
- `coupon_schedules.plan`: the schedule's overrides (JSON; a key present overrides the
  instance's value, NULL in it meaning "no limit"); `schedule_runs.plan`: the effective plan the
  batch was made with.
- `coupons`: the effective plan copied onto each code (the sign-in reads one row) and `uses`,
  the sign-ins so far.
- `site_users`: the session's limits, taken from its code at sign-in; usage (`bytes_in`,
  `bytes_out`, `last_seen_at`) and the gateway's last raw counter readings, so that usage is
  added across gateway reboots instead of replaced.
Existing rows get the defaults: every existing code stays single-use and unlimited.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

import guestgate.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

LIMITS = ("download_kbps", "upload_kbps", "data_limit_mb")


def _plan_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("max_devices", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("max_uses", sa.Integer(), nullable=True, server_default="1"),
        *(sa.Column(name, sa.Integer(), nullable=True) for name in LIMITS),
        sa.Column("validity_from", sa.String(length=16), nullable=False, server_default="creation"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("instances", schema=None) as batch_op:
        for column in _plan_columns():
            batch_op.add_column(column)
    with op.batch_alter_table("coupon_schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan", guestgate.db.JSONDoc(), nullable=True))
    with op.batch_alter_table("schedule_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("plan", guestgate.db.JSONDoc(), nullable=True))
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        for column in _plan_columns():
            batch_op.add_column(column)
        batch_op.add_column(sa.Column("uses", sa.Integer(), nullable=False, server_default="0"))
    # A redeemed code has been used once.
    op.execute("UPDATE coupons SET uses = 1 WHERE redeemed_at IS NOT NULL")
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        for name in LIMITS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("bytes_in", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("bytes_out", sa.BigInteger(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_seen_at", guestgate.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("gateway_bytes_in", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("gateway_bytes_out", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("site_users", schema=None) as batch_op:
        for name in (
            *LIMITS,
            "bytes_in",
            "bytes_out",
            "last_seen_at",
            "gateway_bytes_in",
            "gateway_bytes_out",
        ):
            batch_op.drop_column(name)
    with op.batch_alter_table("coupons", schema=None) as batch_op:
        for name in ("max_devices", "max_uses", *LIMITS, "validity_from", "uses"):
            batch_op.drop_column(name)
    for table in ("schedule_runs", "coupon_schedules"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("plan")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        for name in ("max_devices", "max_uses", *LIMITS, "validity_from"):
            batch_op.drop_column(name)
