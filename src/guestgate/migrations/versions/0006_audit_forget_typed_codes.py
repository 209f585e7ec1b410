"""audit_events: failed guest sign-ins no longer keep the code the guest typed

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 18:00:00.000000

A refused code is often one character off a valid one, and the audit log is read by every
operator of the org: `guest.signin_failed` events now keep only a keyed hash of the code
(`detail.code_hash`, written by the portal). The codes stored by earlier versions are removed
here; they cannot be turned into hashes without the deployment's signing key, and nothing
needs them. The downgrade has nothing to restore.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE audit_events SET detail = detail - 'code' "
            "WHERE action = 'guest.signin_failed' AND detail ? 'code'"
        )
    else:
        op.execute(
            "UPDATE audit_events SET detail = json_remove(detail, '$.code') "
            "WHERE action = 'guest.signin_failed' AND json_type(detail, '$.code') IS NOT NULL"
        )


def downgrade() -> None:
    """The removed codes are gone; the events stay as they are."""
