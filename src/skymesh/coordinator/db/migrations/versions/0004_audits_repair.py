"""Audits, reputation, repair queue, graceful exit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_reputation",
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("audit_alpha", sa.Double, nullable=False),
        sa.Column("audit_beta", sa.Double, nullable=False),
        sa.Column("unknown_alpha", sa.Double, nullable=False),
        sa.Column("unknown_beta", sa.Double, nullable=False),
        sa.Column("audits_success", sa.BigInteger, nullable=False),
        sa.Column("audits_failed", sa.BigInteger, nullable=False),
        sa.Column("audits_unknown", sa.BigInteger, nullable=False),
        sa.Column("vetted_at", sa.Double, nullable=True),
        sa.Column("disqualified_at", sa.Double, nullable=True),
        sa.Column("exit_requested_at", sa.Double, nullable=True),
        sa.Column("exit_finished_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("node_id", name="pk_node_reputation"),
    )
    op.create_table(
        "repair_queue",
        sa.Column("stream_id", sa.String, nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("healthy", sa.SmallInteger, nullable=False),
        sa.Column("queued_at", sa.Double, nullable=False),
        sa.Column("attempted_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("stream_id", "part", "idx", name="pk_repair_queue"),
    )
    op.create_index("ix_repair_queue_priority", "repair_queue", ["healthy", "queued_at"])


def downgrade() -> None:
    op.drop_index("ix_repair_queue_priority", table_name="repair_queue")
    op.drop_table("repair_queue")
    op.drop_table("node_reputation")
