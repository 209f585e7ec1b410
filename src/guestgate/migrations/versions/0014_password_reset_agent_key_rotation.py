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


def upgrade() -> None:
    with op.batch_alter_table("console_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reset_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reset_expires_at", guestgate.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reset_mails", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("reset_since", guestgate.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_console_users_reset_hash"), ["reset_hash"])
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agent_key_salt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    count = op.get_bind().scalar(sa.text("SELECT count(*) FROM sites WHERE agent_key_salt IS NOT NULL"))
    if count:
        raise RuntimeError(
            f"{count} site(s) have a rotated agent key; an older version would accept their old key "
            "again. Refusing to downgrade below 0014."
        )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("agent_key_salt")
    with op.batch_alter_table("console_users", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_console_users_reset_hash"), type_="unique")
        batch_op.drop_column("reset_since")
        batch_op.drop_column("reset_mails")
        batch_op.drop_column("reset_expires_at")
        batch_op.drop_column("reset_hash")
