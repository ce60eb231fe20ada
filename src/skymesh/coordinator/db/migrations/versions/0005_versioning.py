"""S3 versioning and composite multipart checksums.

Objects become versions: ``objects`` is keyed (bucket, key, seq), where ``seq``
orders a key's versions newest first, with ``latest``, ``delete_marker`` and
``null_version`` flags and an index over the latest versions for listings.
Existing rows become the null version (S3's id "null") and the latest of their
key, as S3 treats objects written before versioning was enabled. Buckets get a
versioning state; parts keep their flexible checksum.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("buckets", sa.Column("versioning", sa.String, nullable=False, server_default=""))
    op.add_column("parts", sa.Column("checksum", sa.String, nullable=True))
    # SQLite cannot change a primary key in place: batch mode copies the table there
    with op.batch_alter_table("objects") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("latest", sa.Boolean, nullable=False, server_default=sa.true()))
        batch.add_column(
            sa.Column("delete_marker", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("null_version", sa.Boolean, nullable=False, server_default=sa.true())
        )
        batch.drop_constraint("pk_objects", type_="primary")
        batch.create_primary_key("pk_objects", ["bucket", "key", "seq"])
    op.create_index("ix_objects_latest", "objects", ["bucket", "latest", "key"])


def downgrade() -> None:
    # Only the latest non-marker version of each key can stay under the old key; the
    # rest of the history is dropped (its pieces are left to reconciliation).
    op.execute("DELETE FROM objects WHERE latest = false OR delete_marker = true")
    op.drop_index("ix_objects_latest", table_name="objects")
    with op.batch_alter_table("objects") as batch:
        batch.drop_constraint("pk_objects", type_="primary")
        batch.create_primary_key("pk_objects", ["bucket", "key"])
        batch.drop_column("null_version")
        batch.drop_column("delete_marker")
        batch.drop_column("latest")
        batch.drop_column("seq")
    op.drop_column("parts", "checksum")
    op.drop_column("buckets", "versioning")
