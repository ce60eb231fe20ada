"""Access and inference keys that expire and are revoked from the CLI.

``access_keys`` gains ``expires_at`` and ``revoked_at`` (NULL: never, not revoked) and
a ``name``; gateways ask for their projects' keys every few seconds and refuse one
revoked or expired. ``inference_keys`` gains ``expires_at`` too.

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("access_keys", sa.Column("name", sa.String, nullable=False, server_default=""))
    op.add_column("access_keys", sa.Column("expires_at", sa.Double, nullable=True))
    op.add_column("access_keys", sa.Column("revoked_at", sa.Double, nullable=True))
    op.create_index("ix_access_keys_project", "access_keys", ["project_id", "created_at"])
    op.add_column("inference_keys", sa.Column("expires_at", sa.Double, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inference_keys") as batch:
        batch.drop_column("expires_at")
    with op.batch_alter_table("access_keys") as batch:
        batch.drop_index("ix_access_keys_project")
        batch.drop_column("revoked_at")
        batch.drop_column("expires_at")
        batch.drop_column("name")
