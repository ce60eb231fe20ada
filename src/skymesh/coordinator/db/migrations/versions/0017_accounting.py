"""Accounting: settled get orders and hourly rollups per node and per project.

``settled_orders`` holds one row per get order a node settled (keyed by the order's
serial, so a settlement counts once); the ``accounting`` loop writes
``node_usage_hourly`` and ``project_usage_hourly`` (docs/operations.md "Accounting
and payouts").

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settled_orders",
        sa.Column("serial", sa.String, primary_key=True),
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("purpose", sa.String, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("settled_at", sa.Double, nullable=False),
        sa.Column("hour", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_settled_orders_hour", "settled_orders", ["hour"])
    op.create_table(
        "node_usage_hourly",
        sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("node_id", sa.String, primary_key=True),
        sa.Column("operator", sa.String, nullable=False),
        sa.Column("byte_seconds", sa.Double, nullable=False),
        sa.Column("stored_bytes", sa.BigInteger, nullable=False),
        sa.Column("egress_bytes", sa.BigInteger, nullable=False),
        sa.Column("repair_egress_bytes", sa.BigInteger, nullable=False),
        sa.Column("audits_success", sa.BigInteger, nullable=False),
        sa.Column("audits_failed", sa.BigInteger, nullable=False),
        sa.Column("audit_success_mark", sa.BigInteger, nullable=False),
        sa.Column("audit_failed_mark", sa.BigInteger, nullable=False),
        sa.Column("uptime_seconds", sa.Double, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("tallied_at", sa.Double, nullable=False),
    )
    op.create_table(
        "project_usage_hourly",
        sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("project_id", sa.String, primary_key=True),
        sa.Column("byte_seconds", sa.Double, nullable=False),
        sa.Column("stored_bytes", sa.BigInteger, nullable=False),
        sa.Column("egress_bytes", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("tokens", sa.BigInteger, nullable=False),
        sa.Column("tallied_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("project_usage_hourly")
    op.drop_table("node_usage_hourly")
    op.drop_index("ix_settled_orders_hour", table_name="settled_orders")
    op.drop_table("settled_orders")
