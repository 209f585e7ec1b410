"""api_tokens: the register of operator tokens minted here, so each can be named, listed and revoked

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:30:00.000000

A token minted from now on carries its row's id as `jti`; a token whose `jti` is revoked (or
not in this table) is refused. Tokens without `jti` (minted before, or by an identity provider)
are not affected.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import guestgate.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", guestgate.db.UUIDStr(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scopes", sa.String(length=200), nullable=False),
        sa.Column("created_at", guestgate.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", guestgate.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", guestgate.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["orgs.id"], name=op.f("fk_api_tokens_org_id_orgs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_tokens_org_id_created_at"), ["org_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_tokens_org_id_created_at"))
    op.drop_table("api_tokens")
