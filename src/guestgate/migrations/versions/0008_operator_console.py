"""operator console: users, org memberships, browser sessions, coupon presets

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:40:00.000000

- `console_users`: e-mail (lowercase, unique), argon2id hash, a one-time set-password token's
  SHA-256 with its expiry, and the login-throttle counter.
- `console_memberships`: user x org x role (owner, admin, viewer, front-desk).
- `console_sessions`: SHA-256 of the cookie's token, the org worked in, the CSRF token, times
  for the idle and absolute timeouts.
- `console_coupon_presets`: the front desk's "print N coupons" buttons.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import guestgate.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("id", guestgate.db.UUIDStr(length=36), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("invite_hash", sa.String(length=64), nullable=True),
        sa.Column("invite_expires_at", guestgate.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("failed_since", guestgate.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", guestgate.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("email", name=op.f("uq_console_users_email")),
        sa.UniqueConstraint("invite_hash", name=op.f("uq_console_users_invite_hash")),
    )
    op.create_table(
        "console_memberships",
        sa.Column("user_id", guestgate.db.UUIDStr(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", guestgate.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_console_memberships_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.id"],
            name=op.f("fk_console_memberships_user_id_console_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "org_id", name=op.f("pk_console_memberships")),
    )
    op.create_index(op.f("ix_console_memberships_org_id"), "console_memberships", ["org_id"])
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", guestgate.db.UUIDStr(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", guestgate.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", guestgate.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_console_sessions_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.id"],
            name=op.f("fk_console_sessions_user_id_console_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_user_id"), "console_sessions", ["user_id"])
    op.create_table(
        "console_coupon_presets",
        sa.Column("id", guestgate.db.UUIDStr(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("instance_id", guestgate.db.UUIDStr(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("minutes_valid", sa.Integer(), nullable=False),
        sa.Column("paper", sa.String(length=8), nullable=False),
        sa.Column("created_at", guestgate.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["instances.id"],
            name=op.f("fk_console_coupon_presets_instance_id_instances"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_console_coupon_presets_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_coupon_presets")),
    )
    op.create_index(
        op.f("ix_console_coupon_presets_org_id_name"), "console_coupon_presets", ["org_id", "name"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_coupon_presets_org_id_name"), table_name="console_coupon_presets")
    op.drop_table("console_coupon_presets")
    op.drop_index(op.f("ix_console_sessions_user_id"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_index(op.f("ix_console_memberships_org_id"), table_name="console_memberships")
    op.drop_table("console_memberships")
    op.drop_table("console_users")
