"""S3 Object Lock: a bucket's lock switch and default retention; each version's lock.

Buckets get ``object_lock`` and a default retention (mode, days or years); object
versions get a retention mode, a retain-until time and a legal hold. Plain
columns: the coordinator enforces them in the transactions that remove versions.

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # plain ADD COLUMN (constant defaults): batch mode would copy ``buckets`` on SQLite,
    # which the foreign keys of ``objects`` forbid
    op.add_column(
        "buckets", sa.Column("object_lock", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("buckets", sa.Column("lock_mode", sa.String, nullable=False, server_default=""))
    op.add_column("buckets", sa.Column("lock_days", sa.Integer, nullable=False, server_default="0"))
    op.add_column(
        "buckets", sa.Column("lock_years", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("objects", sa.Column("lock_mode", sa.String, nullable=False, server_default=""))
    op.add_column(
        "objects", sa.Column("retain_until", sa.Double, nullable=False, server_default="0")
    )
    op.add_column(
        "objects", sa.Column("legal_hold", sa.Boolean, nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    for column in ("legal_hold", "retain_until", "lock_mode"):
        op.drop_column("objects", column)
    for column in ("lock_years", "lock_days", "lock_mode", "object_lock"):
        op.drop_column("buckets", column)
