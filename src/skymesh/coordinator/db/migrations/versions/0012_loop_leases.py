"""Loop leases: which coordinator of several runs each background loop.

``loop_leases`` holds one row per background loop (audit, repair, gc, ...) that a
coordinator ever took: the holder (one coordinator process, ``<node id>/<suffix>``;
empty once released), when it took the lease and until when it holds it. A
coordinator takes a lease that is free, expired or its own (``coordinator/leases.py``).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_leases",
        sa.Column("name", sa.String, nullable=False),
        sa.Column("holder", sa.String, nullable=False),
        sa.Column("acquired_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_loop_leases"),
    )


def downgrade() -> None:
    op.drop_table("loop_leases")
