"""auth_integrations: generic OpenID Connect (`oidc`) integrations (`issuer`, `sign_in_host`)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 19:30:00.000000

`issuer` is the issuer URL of an `oidc` integration (NULL for the other types), `sign_in_host`
the host of its authorization endpoint, found in its discovery document when it was saved: the
host the guests' browsers must reach in the auth window. Existing rows are Google, Microsoft or
GitHub integrations and keep NULL in both. The downgrade refuses while `oidc` integrations
exist (an older version cannot sign anyone in with them): delete them first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issuer", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("sign_in_host", sa.String(length=253), nullable=True))


def downgrade() -> None:
    count = op.get_bind().scalar(sa.text("SELECT count(*) FROM auth_integrations WHERE type = 'oidc'"))
    if count:
        raise RuntimeError(
            f"{count} auth integration(s) of type 'oidc' exist; delete them before downgrading below 0012"
        )
    with op.batch_alter_table("auth_integrations", schema=None) as batch_op:
        batch_op.drop_column("sign_in_host")
        batch_op.drop_column("issuer")
