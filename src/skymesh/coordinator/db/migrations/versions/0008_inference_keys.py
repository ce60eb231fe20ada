"""Inference API keys: a project's revocable keys for the OpenAI-compatible API.

``inference_keys`` holds one row per key: the project, a name, the SHA-256 of
the key (never the key) and when it was created and revoked.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-14
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inference_keys",
        sa.Column("key_id", sa.String, nullable=False),
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("key_hash", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name="fk_inference_keys_project_id_projects",
        ),
        sa.PrimaryKeyConstraint("key_id", name="pk_inference_keys"),
    )
    op.create_index("ix_inference_keys_project", "inference_keys", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_inference_keys_project", table_name="inference_keys")
    op.drop_table("inference_keys")
