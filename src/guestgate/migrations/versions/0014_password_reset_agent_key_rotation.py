"""console password resets by mail; per-site agent key generations

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-06 02:10:00.000000

`console_users.reset_hash` is the SHA-256 of the one-time reset link mailed from the login
page's "Forgot password" (the token itself is only ever in the mail), `reset_expires_at` its
end, and `reset_mails`/`reset_since` count the mails sent to the address in the current window
(the per-address throttle, kept with the account as the login throttle is).

`sites.agent_key_salt` makes a site's agent key its own to rotate: NULL (every existing site)
keeps the key derived from the signing key and the site id, so no agent loses its key at the
upgrade; a rotation stores a random salt and the key becomes the HMAC of the id and that salt.
The downgrade refuses while any site has a rotated key (an older version would hand out, and
accept, the site's old key again): it would silently re-enable keys that were rotated away.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import guestgate.db

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


# Plain ALTER TABLE, not batch mode: on SQLite a batch rebuilds the table, and rebuilding `sites`
# or `console_users` would cascade-delete the rows that reference them (gardens, sessions...).
# SQLite has had ALTER TABLE DROP COLUMN since 3.35.


def upgrade() -> None:
    op.add_column("console_users", sa.Column("reset_hash", sa.String(length=64), nullable=True))
    op.add_column(
        "console_users", sa.Column("reset_expires_at", guestgate.db.UTCDateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "console_users", sa.Column("reset_mails", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column(
        "console_users", sa.Column("reset_since", guestgate.db.UTCDateTime(timezone=True), nullable=True)
    )
    op.create_index(op.f("ix_console_users_reset_hash"), "console_users", ["reset_hash"], unique=True)
    op.add_column("sites", sa.Column("agent_key_salt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    count = op.get_bind().scalar(sa.text("SELECT count(*) FROM sites WHERE agent_key_salt IS NOT NULL"))
    if count:
        raise RuntimeError(
            f"{count} site(s) have a rotated agent key; an older version would accept their old key "
            "again. Refusing to downgrade below 0014."
        )
    op.drop_column("sites", "agent_key_salt")
    op.drop_index(op.f("ix_console_users_reset_hash"), table_name="console_users")
    for name in ("reset_since", "reset_mails", "reset_expires_at", "reset_hash"):
        op.drop_column("console_users", name)
