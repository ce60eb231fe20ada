"""Garbage collection and durability reporting.

``garbage_pieces.piece_size`` lets the collector count the bytes it frees;
``coordinator_secrets`` holds the key that binds root piece ids to the segment
they were handed out for (``coordinator/metainfo/roots.py``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "garbage_pieces",
        sa.Column("piece_size", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "coordinator_secrets",
        sa.Column("name", sa.String, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_coordinator_secrets"),
    )


def downgrade() -> None:
    op.drop_table("coordinator_secrets")
    with op.batch_alter_table("garbage_pieces") as batch:
        batch.drop_column("piece_size")
