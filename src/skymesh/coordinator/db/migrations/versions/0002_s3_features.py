"""S3 features: bucket ACL, bucket tagging and CORS configuration, object tags.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # each multipart part upload encrypts under its own subkey: a re-uploaded part
    # must never reuse the (part, block) nonces of the upload's data key
    op.add_column("segments", sa.Column("key_salt", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("segments", "key_salt")
