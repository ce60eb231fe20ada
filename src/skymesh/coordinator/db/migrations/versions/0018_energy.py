"""Energy: nodes declare PUE, grid gCO2/kWh and storage watts per TB; the hourly
rollups carry estimated kWh and gCO2 for storage and inference (docs/operations.md
"Energy").

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_NODE = (("pue", "1.2"), ("grid_gco2_kwh", "300"), ("storage_watts_per_tb", "2"))
_ROLLUP = ("storage_kwh", "storage_gco2", "compute_kwh", "compute_gco2")
_TABLES = ("node_usage_hourly", "project_usage_hourly")


def upgrade() -> None:
    for name, default in _NODE:
        op.add_column("nodes", sa.Column(name, sa.Double, nullable=False, server_default=default))
    for table in _TABLES:
        for name in _ROLLUP:
            op.add_column(table, sa.Column(name, sa.Double, nullable=False, server_default="0"))
        op.add_column(
            table,
            sa.Column(
                "compute_tokens_estimated", sa.BigInteger, nullable=False, server_default="0"
            ),
        )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for name in (*_ROLLUP, "compute_tokens_estimated"):
                batch.drop_column(name)
    with op.batch_alter_table("nodes") as batch:
        for name, _ in _NODE:
            batch.drop_column(name)
