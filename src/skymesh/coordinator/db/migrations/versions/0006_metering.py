"""Inference metering and per-project routing weights.

``inference_usage`` holds one row per served inference order (keyed by the
order's serial, so a report counts once) with the tokens, the prices signed
into the order and the cost; ``project_routing`` holds a project's default
routing weights.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inference_usage",
        sa.Column("serial", sa.String, nullable=False),
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("region", sa.String, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("price_in", sa.Double, nullable=False),
        sa.Column("price_out", sa.Double, nullable=False),
        sa.Column("cost", sa.Double, nullable=False),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("issued_at", sa.Double, nullable=False),
        sa.Column("recorded_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("serial", name="pk_inference_usage"),
    )
    op.create_index("ix_inference_usage_project", "inference_usage", ["project_id", "recorded_at"])
    op.create_index("ix_inference_usage_recorded", "inference_usage", ["recorded_at"])
    op.create_table(
        "project_routing",
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("latency", sa.Double, nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("carbon", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_project_routing"),
    )


def downgrade() -> None:
    op.drop_table("project_routing")
    op.drop_index("ix_inference_usage_recorded", table_name="inference_usage")
    op.drop_index("ix_inference_usage_project", table_name="inference_usage")
    op.drop_table("inference_usage")
