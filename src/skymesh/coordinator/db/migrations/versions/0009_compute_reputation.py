"""Compute reputation: spot checks of inference answers, and each node's standing.

``compute_reputation`` holds one row per compute node that was spot-checked: its
beta score over agreements and disagreements, the counts, and when it was excluded
from compute routing. ``spot_checks`` holds one row per inference order reported as
evidence (so an order counts once), with the node compared against and the outcome.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-16
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_reputation",
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("alpha", sa.Double, nullable=False),
        sa.Column("beta", sa.Double, nullable=False),
        sa.Column("agreed", sa.BigInteger, nullable=False),
        sa.Column("disagreed", sa.BigInteger, nullable=False),
        sa.Column("excluded_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("node_id", name="pk_compute_reputation"),
    )
    op.create_table(
        "spot_checks",
        sa.Column("serial", sa.String, nullable=False),
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("other_node_id", sa.String, nullable=False),
        sa.Column("other_operator", sa.String, nullable=False),
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("agree", sa.Boolean, nullable=False),
        sa.Column("reported_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("serial", name="pk_spot_checks"),
    )
    op.create_index("ix_spot_checks_node", "spot_checks", ["node_id", "reported_at"])
    op.create_index("ix_spot_checks_reported", "spot_checks", ["reported_at"])


def downgrade() -> None:
    op.drop_index("ix_spot_checks_reported", table_name="spot_checks")
    op.drop_index("ix_spot_checks_node", table_name="spot_checks")
    op.drop_table("spot_checks")
    op.drop_table("compute_reputation")
