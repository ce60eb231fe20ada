"""Bucket lifecycle rules and the tag digests they match.

``buckets.lifecycle`` holds a bucket's S3 lifecycle rules as JSON (NULL: none).
``objects.tag_digests`` holds the gateway's keyed digests of a version's tags
(space-separated; NULL: no tags): the tags
themselves stay sealed in the object's metadata, and the coordinator's
``lifecycle-rules`` loop matches a rule's Tag filter by digest.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("buckets", sa.Column("lifecycle", sa.Text, nullable=True))
    op.add_column("objects", sa.Column("tag_digests", sa.Text, nullable=True))


def downgrade() -> None:
    for table, column in (
        ("objects", "tag_digests"),
        ("buckets", "lifecycle"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
