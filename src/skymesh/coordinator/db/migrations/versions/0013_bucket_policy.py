"""Bucket policies, Public Access Block and ownership controls.

Three nullable columns on ``buckets`` (NULL: never set, S3's NoSuchBucketPolicy,
NoSuchPublicAccessBlockConfiguration, OwnershipControlsNotFoundError): ``policy``
(the policy JSON as the owner gave it), ``public_access_block`` (JSON of its four
flags) and ``ownership`` (ObjectWriter, BucketOwnerPreferred or BucketOwnerEnforced).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("buckets", sa.Column("policy", sa.Text, nullable=True))
    op.add_column("buckets", sa.Column("public_access_block", sa.String, nullable=True))
    op.add_column("buckets", sa.Column("ownership", sa.String, nullable=True))


def downgrade() -> None:
    op.drop_column("buckets", "ownership")
    op.drop_column("buckets", "public_access_block")
    op.drop_column("buckets", "policy")
