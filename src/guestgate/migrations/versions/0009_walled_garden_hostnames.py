"""walled_garden_entries: host-name entries (`hostname`, an exact name or a `*.` wildcard)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:30:00.000000

An entry is an address (`ip_address`, as before) or a DNS name (`hostname`, IDNA-encoded,
at most 253 characters): `ip_address` becomes nullable and a check constraint keeps exactly one
of the two. Existing rows are address entries and satisfy it. The downgrade deletes host-name
entries (an older version could not enforce them) before restoring NOT NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("walled_garden_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hostname", sa.String(length=253), nullable=True))
        batch_op.alter_column("ip_address", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_check_constraint(
            batch_op.f("ck_walled_garden_entries_ip_address_or_hostname"),
            "(ip_address IS NULL) <> (hostname IS NULL)",
        )


def downgrade() -> None:
    op.execute("DELETE FROM walled_garden_entries WHERE hostname IS NOT NULL")
    with op.batch_alter_table("walled_garden_entries", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("ck_walled_garden_entries_ip_address_or_hostname"), type_="check")
        batch_op.alter_column("ip_address", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("hostname")
