"""Coordinator keys: the network's set of coordinator identities nodes trust.

``coordinator_keys`` holds one row per coordinator identity: its id, Ed25519 public
key, the URL it last started at, when it was added and when (if ever) it was retired.
Each coordinator registers its own row at start; nodes are told the unretired keys.

Revision ID: 0010
Revises: 0009
Create Date: 2027-01-10
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coordinator_keys",
        sa.Column("coordinator_id", sa.String, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("url", sa.String, nullable=False),
        sa.Column("added_at", sa.Double, nullable=False),
        sa.Column("retired_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("coordinator_id", name="pk_coordinator_keys"),
    )


def downgrade() -> None:
    op.drop_table("coordinator_keys")
