"""Compute adverts in the database: every coordinator over it routes inference to a node,
whichever one the node's heartbeats reach.

Revision ID: 0011
Revises: 0010
Create Date: 2027-01-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_adverts",
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("advert", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("node_id", name="pk_compute_adverts"),
    )


def downgrade() -> None:
    op.drop_table("compute_adverts")
