"""Initial schema: registry, projects, buckets, objects, pending streams, segments, pieces.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

A migration is history: it spells out the tables as they were, rather than
importing ``schema.py``, which describes only the newest shape.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KeyText = sa.String().with_variant(sa.String(collation="C"), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("public_key", sa.LargeBinary, nullable=False),
        sa.Column("address", sa.String, nullable=False),
        sa.Column("region", sa.String, nullable=False),
        sa.Column("operator", sa.String, nullable=False),
        sa.Column("capacity_bytes", sa.BigInteger, nullable=False),
        sa.Column("used_bytes", sa.BigInteger, nullable=False),
        sa.Column("version", sa.String, nullable=False),
        sa.Column("joined_at", sa.Double, nullable=False),
        sa.Column("last_seen", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("node_id", name="pk_nodes"),
    )
    op.create_table(
        "projects",
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("api_key_hash", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_projects"),
    )
    op.create_table(
        "access_keys",
        sa.Column("access_key_id", sa.String, nullable=False),
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("access_key_id", name="pk_access_keys"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name="fk_access_keys_project_id_projects",
        ),
    )
    op.create_table(
        "buckets",
        sa.Column("name", sa.String, nullable=False),
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("region", sa.String, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_buckets"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.project_id"], name="fk_buckets_project_id_projects"
        ),
    )
    op.create_index("ix_buckets_project", "buckets", ["project_id", "name"])
    op.create_table(
        "objects",
        sa.Column("bucket", sa.String, nullable=False),
        sa.Column("key", KeyText, nullable=False),
        sa.Column("stream_id", sa.String, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
        sa.Column("encrypted_metadata", sa.LargeBinary, nullable=False),
        sa.Column("segment_count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("bucket", "key", name="pk_objects"),
        sa.ForeignKeyConstraint(["bucket"], ["buckets.name"], name="fk_objects_bucket_buckets"),
        sa.UniqueConstraint("stream_id", name="uq_objects_stream_id"),
    )
    op.create_table(
        "pending_streams",
        sa.Column("stream_id", sa.String, nullable=False),
        sa.Column("project_id", sa.String, nullable=False),
        sa.Column("bucket", sa.String, nullable=False),
        sa.Column("key", KeyText, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
        sa.Column("encrypted_metadata", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("stream_id", name="pk_pending_streams"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name="fk_pending_streams_project_id_projects",
        ),
        sa.ForeignKeyConstraint(
            ["bucket"], ["buckets.name"], name="fk_pending_streams_bucket_buckets"
        ),
    )
    op.create_index("ix_pending_bucket_key", "pending_streams", ["bucket", "key", "stream_id"])
    op.create_index("ix_pending_expires", "pending_streams", ["expires_at"])
    op.create_table(
        "segments",
        sa.Column("stream_id", sa.String, nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("number", sa.Integer, nullable=True),
        sa.Column("plain_offset", sa.BigInteger, nullable=False),
        sa.Column("plain_size", sa.BigInteger, nullable=False),
        sa.Column("block_size", sa.Integer, nullable=False),
        sa.Column("root_piece_id", sa.String, nullable=False),
        sa.Column("k", sa.SmallInteger, nullable=False),
        sa.Column("repair", sa.SmallInteger, nullable=False),
        sa.Column("optimal", sa.SmallInteger, nullable=False),
        sa.Column("total", sa.SmallInteger, nullable=False),
        sa.Column("piece_size", sa.BigInteger, nullable=False),
        sa.Column("inline_data", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "part", "idx", name="pk_segments"),
    )
    op.create_index("ix_segments_number", "segments", ["stream_id", "number"])
    op.create_index("ix_segments_offset", "segments", ["stream_id", "plain_offset", "number"])
    op.create_table(
        "pieces",
        sa.Column("stream_id", sa.String, nullable=False),
        sa.Column("part", sa.Integer, nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("piece_num", sa.SmallInteger, nullable=False),
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("merkle_root", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "part", "idx", "piece_num", name="pk_pieces"),
        sa.ForeignKeyConstraint(
            ["stream_id", "part", "idx"],
            ["segments.stream_id", "segments.part", "segments.idx"],
            name="fk_pieces_stream_id_segments",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_pieces_node", "pieces", ["node_id"])
    op.create_table(
        "parts",
        sa.Column("stream_id", sa.String, nullable=False),
        sa.Column("part_number", sa.Integer, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String, nullable=False),
        sa.Column("uploaded_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("stream_id", "part_number", name="pk_parts"),
    )
    op.create_table(
        "garbage_pieces",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("node_id", sa.String, nullable=False),
        sa.Column("piece_id", sa.String, nullable=False),
        sa.Column("queued_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_garbage_pieces"),
    )
    op.create_index("ix_garbage_node", "garbage_pieces", ["node_id", "queued_at"])


def downgrade() -> None:
    for table in (
        "garbage_pieces",
        "parts",
        "pieces",
        "segments",
        "pending_streams",
        "objects",
        "buckets",
        "access_keys",
        "projects",
        "nodes",
    ):
        op.drop_table(table)
