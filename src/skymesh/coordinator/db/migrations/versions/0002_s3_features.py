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
    # bucket ACL, tagging and CORS; object tags and ACLs live in the
    # object's sealed metadata, so objects get no column
    op.add_column("buckets", sa.Column("acl", sa.String, nullable=False, server_default="private"))
    op.add_column("buckets", sa.Column("tags", sa.Text, nullable=True))
    op.add_column("buckets", sa.Column("cors", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("buckets", "cors")
    op.drop_column("buckets", "tags")
    op.drop_column("buckets", "acl")
    op.drop_column("segments", "key_salt")
