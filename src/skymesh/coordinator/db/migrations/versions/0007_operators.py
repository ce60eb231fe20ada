"""Operator admission: the operators the administrator admitted, and their join tokens.

``operators`` holds one row per operator: its allowed regions, whether it holds
compute admission, the id and expiry of its latest join token, and when it was
revoked. Nodes registered before this revision have no operator row: they are
not admitted until they join again with a token.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("name", sa.String, nullable=False),
        sa.Column("regions", sa.Text, nullable=False),
        sa.Column("compute", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("token_id", sa.String, nullable=False),
        sa.Column("token_issued_at", sa.Double, nullable=False),
        sa.Column("token_expires_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double, nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_operators"),
    )


def downgrade() -> None:
    op.drop_table("operators")
