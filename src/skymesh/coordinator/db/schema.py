"""The coordinator's metadata schema (SQLAlchemy Core), portable to SQLite and PostgreSQL.

Object keys sort in the byte order of their UTF-8 encoding, as S3 lists them:
SQLite's default BINARY collation compares TEXT with ``memcmp`` over UTF-8, and on
PostgreSQL the key columns use ``COLLATE "C"``. Times are unix seconds (float).

A stream is one upload: a pending row in ``pending_streams`` until it commits,
then the ``objects`` row of that version (``objects.stream_id``). Segments and
pieces hang off the stream id either way, so a commit moves no segment rows.

This module describes the current shape; ``migrations/`` builds it, and a test
checks the two agree.
"""

from __future__ import annotations

import sqlalchemy as sa

#: Deterministic constraint names, so migrations can name what they alter.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

#: Object keys compare as UTF-8 bytes on every backend.
KeyText = sa.String().with_variant(sa.String(collation="C"), "postgresql")
#: 64-bit autoincrement ids (SQLite only autoincrements an INTEGER PRIMARY KEY).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("node_id", sa.String, primary_key=True),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("address", sa.String, nullable=False),
    sa.Column("region", sa.String, nullable=False),
    sa.Column("operator", sa.String, nullable=False),
    sa.Column("capacity_bytes", sa.BigInteger, nullable=False),
    sa.Column("used_bytes", sa.BigInteger, nullable=False),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("joined_at", sa.Double, nullable=False),
    sa.Column("last_seen", sa.Double, nullable=False),
    # the node's declared energy profile (migration 0018): PUE, grid gCO2/kWh, watts
    # per TB stored; the defaults stand for nodes that joined before they were declared
    sa.Column("pue", sa.Double, nullable=False, server_default="1.2"),
    sa.Column("grid_gco2_kwh", sa.Double, nullable=False, server_default="300"),
    sa.Column("storage_watts_per_tb", sa.Double, nullable=False, server_default="2"),
)

# Operators the administrator admitted (migration 0007). Only the token ``token_id``
# admits new nodes; a revoked operator keeps its row (``revoked_at``) so its nodes stay
# refused and its name is not handed out again.
operators = sa.Table(
    "operators",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("regions", sa.Text, nullable=False),  # JSON list of region names
    sa.Column("compute", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("token_id", sa.String, nullable=False),
    sa.Column("token_issued_at", sa.Double, nullable=False),
    sa.Column("token_expires_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
)

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("project_id", sa.String, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("api_key_hash", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("access_key_id", sa.String, primary_key=True),
    sa.Column("project_id", sa.String, sa.ForeignKey("projects.project_id"), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    # migration 0016: what it is for, when it stops working (NULL: never), when revoked
    sa.Column("name", sa.String, nullable=False, server_default=""),
    sa.Column("expires_at", sa.Double, nullable=True),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Index("ix_access_keys_project", "project_id", "created_at"),
)

buckets = sa.Table(
    "buckets",
    metadata,
    sa.Column("name", sa.String, primary_key=True),  # global, as in S3
    sa.Column("project_id", sa.String, sa.ForeignKey("projects.project_id"), nullable=False),
    sa.Column("region", sa.String, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    # migration 0002: canned ACL; tags and CORS rules as JSON, NULL = never set
    sa.Column("acl", sa.String, nullable=False, server_default="private"),
    sa.Column("tags", sa.Text, nullable=True),
    sa.Column("cors", sa.Text, nullable=True),
    # versioning state (migration 0005): "" never configured, "Enabled", "Suspended"
    sa.Column("versioning", sa.String, nullable=False, server_default=""),
    # S3 Object Lock (migration 0015): enabled for good once set; the default
    # retention for new versions: mode "" (none), GOVERNANCE or COMPLIANCE, and
    # exactly one of days / years (0 = unset), as PutObjectLockConfiguration gave it
    sa.Column("object_lock", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("lock_mode", sa.String, nullable=False, server_default=""),
    sa.Column("lock_days", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lock_years", sa.Integer, nullable=False, server_default="0"),
    # migration 0013: bucket policy (JSON as given), Public Access Block (JSON of four
    # flags) and object ownership ("BucketOwnerEnforced", ...); NULL = never set
    sa.Column("policy", sa.Text, nullable=True),
    sa.Column("public_access_block", sa.String, nullable=True),
    sa.Column("ownership", sa.String, nullable=True),
    # lifecycle rules as JSON (migration 0014), NULL = never set
    sa.Column("lifecycle", sa.Text, nullable=True),
    sa.Index("ix_buckets_project", "project_id", "name"),
)

# Every version of every key (S3 versioning, migration 0005). ``seq`` orders a key's
# versions newest first in index order: a new version takes one less than the key's
# least, so ``ORDER BY bucket, key, seq`` is S3's version listing order and the first
# row of a key is its latest version. ``latest`` marks that row as well, for
# ``ix_objects_latest``: listings range-scan (bucket, latest, key) and never read
# older versions. A delete marker is a row with no segments. ``null_version``: S3's
# "null" version id (written while versioning was not Enabled; at most one per key).
objects = sa.Table(
    "objects",
    metadata,
    sa.Column("bucket", sa.String, sa.ForeignKey("buckets.name"), primary_key=True),
    sa.Column("key", KeyText, primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False, server_default="0"),
    sa.Column("stream_id", sa.String, nullable=False, unique=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("etag", sa.String, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
    sa.Column("encrypted_metadata", sa.LargeBinary, nullable=False),
    sa.Column("segment_count", sa.Integer, nullable=False),
    sa.Column("latest", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("delete_marker", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("null_version", sa.Boolean, nullable=False, server_default=sa.true()),
    # S3 Object Lock (migration 0015), in plain columns because the coordinator
    # enforces them: retention mode ("" none, GOVERNANCE, COMPLIANCE) until
    # ``retain_until`` (unix seconds, coordinator clock), and a legal hold
    sa.Column("lock_mode", sa.String, nullable=False, server_default=""),
    sa.Column("retain_until", sa.Double, nullable=False, server_default="0"),
    sa.Column("legal_hold", sa.Boolean, nullable=False, server_default=sa.false()),
    # the gateway's keyed digests of the version's tags, space-separated (migration
    # 0014): lifecycle Tag filters match them, the tags stay sealed in the metadata
    sa.Column("tag_digests", sa.Text, nullable=True),
    sa.Index("ix_objects_latest", "bucket", "latest", "key"),
)

pending_streams = sa.Table(
    "pending_streams",
    metadata,
    sa.Column("stream_id", sa.String, primary_key=True),
    sa.Column("project_id", sa.String, sa.ForeignKey("projects.project_id"), nullable=False),
    sa.Column("bucket", sa.String, sa.ForeignKey("buckets.name"), nullable=False),
    sa.Column("key", KeyText, nullable=False),
    sa.Column("kind", sa.String, nullable=False),  # 'simple' | 'multipart'
    sa.Column("encrypted_key", sa.LargeBinary, nullable=False),
    sa.Column("encrypted_metadata", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Index("ix_pending_bucket_key", "bucket", "key", "stream_id"),
    sa.Index("ix_pending_expires", "expires_at"),
)

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("stream_id", sa.String, primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    # Rank in object order and offset of the first byte; set when the object commits.
    sa.Column("number", sa.Integer, nullable=True),
    sa.Column("plain_offset", sa.BigInteger, nullable=False),
    sa.Column("plain_size", sa.BigInteger, nullable=False),
    sa.Column("block_size", sa.Integer, nullable=False),
    sa.Column("root_piece_id", sa.String, nullable=False),  # "" for an inline segment
    sa.Column("k", sa.SmallInteger, nullable=False),  # 0 for an inline segment
    sa.Column("repair", sa.SmallInteger, nullable=False),
    sa.Column("optimal", sa.SmallInteger, nullable=False),
    sa.Column("total", sa.SmallInteger, nullable=False),
    sa.Column("piece_size", sa.BigInteger, nullable=False),
    sa.Column("inline_data", sa.LargeBinary, nullable=True),
    sa.Column("key_salt", sa.LargeBinary, nullable=True),  # multipart part subkey salt
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index("ix_segments_number", "stream_id", "number"),
    sa.Index("ix_segments_offset", "stream_id", "plain_offset", "number"),
)

pieces = sa.Table(
    "pieces",
    metadata,
    sa.Column("stream_id", sa.String, primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("piece_num", sa.SmallInteger, primary_key=True),
    sa.Column("node_id", sa.String, nullable=False),
    sa.Column("merkle_root", sa.LargeBinary, nullable=False),
    sa.ForeignKeyConstraint(
        ["stream_id", "part", "idx"],
        ["segments.stream_id", "segments.part", "segments.idx"],
        ondelete="CASCADE",
    ),
    sa.Index("ix_pieces_node", "node_id"),
)

parts = sa.Table(
    "parts",
    metadata,
    sa.Column("stream_id", sa.String, primary_key=True),
    sa.Column("part_number", sa.Integer, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("etag", sa.String, nullable=False),
    sa.Column("uploaded_at", sa.Double, nullable=False),
    # S3 flexible checksum of the part, "<algorithm>:<base64>" (migration 0005)
    sa.Column("checksum", sa.String, nullable=True),
)

garbage_pieces = sa.Table(
    "garbage_pieces",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("node_id", sa.String, nullable=False),
    sa.Column("piece_id", sa.String, nullable=False),
    sa.Column("queued_at", sa.Double, nullable=False),
    # piece bytes, for the collector's counters (migration 0003)
    sa.Column("piece_size", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_garbage_node", "node_id", "queued_at"),
)

# Secrets every replica over this database shares (the root piece id key).
coordinator_secrets = sa.Table(
    "coordinator_secrets",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

# Each node's audit scores, vetting, disqualification and graceful exit (migration 0004).
node_reputation = sa.Table(
    "node_reputation",
    metadata,
    sa.Column("node_id", sa.String, primary_key=True),
    sa.Column("audit_alpha", sa.Double, nullable=False),
    sa.Column("audit_beta", sa.Double, nullable=False),
    sa.Column("unknown_alpha", sa.Double, nullable=False),
    sa.Column("unknown_beta", sa.Double, nullable=False),
    sa.Column("audits_success", sa.BigInteger, nullable=False),
    sa.Column("audits_failed", sa.BigInteger, nullable=False),
    sa.Column("audits_unknown", sa.BigInteger, nullable=False),
    sa.Column("vetted_at", sa.Double, nullable=True),
    sa.Column("disqualified_at", sa.Double, nullable=True),
    sa.Column("exit_requested_at", sa.Double, nullable=True),
    sa.Column("exit_finished_at", sa.Double, nullable=True),
)

# Segments that need repair, most endangered first (fewest healthy pieces).
repair_queue = sa.Table(
    "repair_queue",
    metadata,
    sa.Column("stream_id", sa.String, primary_key=True),
    sa.Column("part", sa.Integer, primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),
    sa.Column("healthy", sa.SmallInteger, nullable=False),
    sa.Column("queued_at", sa.Double, nullable=False),
    sa.Column("attempted_at", sa.Double, nullable=True),  # last failed try; retried later
    sa.Index("ix_repair_queue_priority", "healthy", "queued_at"),
)

# One row per served inference order (migration 0006): the serial is the order's, so a
# report counts once.
inference_usage = sa.Table(
    "inference_usage",
    metadata,
    sa.Column("serial", sa.String, primary_key=True),
    sa.Column("project_id", sa.String, nullable=False),
    sa.Column("model", sa.String, nullable=False),
    sa.Column("node_id", sa.String, nullable=False),
    sa.Column("region", sa.String, nullable=False),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False),
    sa.Column("price_in", sa.Double, nullable=False),  # USD per 1M tokens, as offered
    sa.Column("price_out", sa.Double, nullable=False),
    sa.Column("cost", sa.Double, nullable=False),  # USD
    sa.Column("complete", sa.Boolean, nullable=False),
    sa.Column("issued_at", sa.Double, nullable=False),
    sa.Column("recorded_at", sa.Double, nullable=False),
    sa.Index("ix_inference_usage_project", "project_id", "recorded_at"),
    sa.Index("ix_inference_usage_recorded", "recorded_at"),
)

# A project's default routing weights; a project without a row gets the defaults.
project_routing = sa.Table(
    "project_routing",
    metadata,
    sa.Column("project_id", sa.String, primary_key=True),
    sa.Column("latency", sa.Double, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("carbon", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

# A project's API keys for the OpenAI-compatible API at gateways: only the SHA-256 of
# each key is kept; a revoked key keeps its row (revoked_at) so its listing says so.
inference_keys = sa.Table(
    "inference_keys",
    metadata,
    sa.Column("key_id", sa.String, primary_key=True),
    sa.Column("project_id", sa.String, sa.ForeignKey("projects.project_id"), nullable=False),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("key_hash", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Column("expires_at", sa.Double, nullable=True),  # migration 0016; NULL: never
    sa.Index("ix_inference_keys_project", "project_id", "created_at"),
)

# Each compute node's standing from spot checks of its inference answers (migration
# 0009): a beta score over agreements and disagreements, and when it was excluded.
compute_reputation = sa.Table(
    "compute_reputation",
    metadata,
    sa.Column("node_id", sa.String, primary_key=True),
    sa.Column("alpha", sa.Double, nullable=False),
    sa.Column("beta", sa.Double, nullable=False),
    sa.Column("agreed", sa.BigInteger, nullable=False),
    sa.Column("disagreed", sa.BigInteger, nullable=False),
    sa.Column("excluded_at", sa.Double, nullable=True),
)

# One row per inference order reported as spot-check evidence, so an order is evidence
# once: the node it named, the node of another operator it was compared with, and the
# outcome. Rows older than the coordinator's compute_check_window are pruned.
spot_checks = sa.Table(
    "spot_checks",
    metadata,
    sa.Column("serial", sa.String, primary_key=True),
    sa.Column("node_id", sa.String, nullable=False),
    sa.Column("other_node_id", sa.String, nullable=False),
    sa.Column("other_operator", sa.String, nullable=False),
    sa.Column("project_id", sa.String, nullable=False),
    sa.Column("agree", sa.Boolean, nullable=False),
    sa.Column("reported_at", sa.Double, nullable=False),
    sa.Index("ix_spot_checks_node", "node_id", "reported_at"),
    sa.Index("ix_spot_checks_reported", "reported_at"),
)

# Every coordinator's Ed25519 public key (migration 0010): each coordinator registers
# its own at start. Rows are never deleted and a retirement is never undone, so the
# count of rows plus retired rows is the key set's version (``coordinator/keyring.py``).
coordinator_keys = sa.Table(
    "coordinator_keys",
    metadata,
    sa.Column("coordinator_id", sa.String, primary_key=True),
    sa.Column("public_key", sa.LargeBinary, nullable=False),
    sa.Column("url", sa.String, nullable=False),
    sa.Column("added_at", sa.Double, nullable=False),
    sa.Column("retired_at", sa.Double, nullable=True),
)

# The latest compute advert of each node that serves inference, written on each of its
# heartbeats by whichever coordinator received it, so every replica routes to it. Soft
# state: a row of a node that stopped beating is ignored with the node's liveness.
compute_adverts = sa.Table(
    "compute_adverts",
    metadata,
    sa.Column("node_id", sa.String, primary_key=True),
    sa.Column("advert", sa.LargeBinary, nullable=False),  # JSON of a wire ComputeAdvert
    sa.Column("updated_at", sa.Double, nullable=False),
)

# Which coordinator of several runs each background loop (migration 0012): one row per
# loop name, held by one coordinator process until ``expires_at`` (its clock) unless it
# renews; ``holder`` is empty once released. See ``coordinator/leases.py``.
loop_leases = sa.Table(
    "loop_leases",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("acquired_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)

# Accounting (migration 0017; coordinator/accounting, docs/operations.md "Accounting and
# payouts"). One row per settled get order: the serial is the order's, so a settlement
# counts once; ``bytes`` is what the node served under it (at most the order's limit).
settled_orders = sa.Table(
    "settled_orders",
    metadata,
    sa.Column("serial", sa.String, primary_key=True),
    sa.Column("node_id", sa.String, nullable=False),
    sa.Column("project_id", sa.String, nullable=False),  # "" for repair reads
    sa.Column("purpose", sa.String, nullable=False),  # "" a client read, "repair"
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("settled_at", sa.Double, nullable=False),
    sa.Column("hour", sa.BigInteger, nullable=False),  # the hour settled_at falls in
    sa.Index("ix_settled_orders_hour", "hour"),
)

# Hourly rollups written by the ``accounting`` loop; ``hour`` is the unix second the
# hour starts. ``byte_seconds`` integrates the stored bytes between tallies;
# ``stored_bytes`` is the last tally's. Audit counts are the increase of the node's
# cumulative counters (``audit_*_mark``: their value at the last tally).
node_usage_hourly = sa.Table(
    "node_usage_hourly",
    metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("node_id", sa.String, primary_key=True),
    sa.Column("operator", sa.String, nullable=False),
    sa.Column("byte_seconds", sa.Double, nullable=False),
    sa.Column("stored_bytes", sa.BigInteger, nullable=False),
    sa.Column("egress_bytes", sa.BigInteger, nullable=False),
    sa.Column("repair_egress_bytes", sa.BigInteger, nullable=False),
    sa.Column("audits_success", sa.BigInteger, nullable=False),
    sa.Column("audits_failed", sa.BigInteger, nullable=False),
    sa.Column("audit_success_mark", sa.BigInteger, nullable=False),
    sa.Column("audit_failed_mark", sa.BigInteger, nullable=False),
    sa.Column("uptime_seconds", sa.Double, nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    # estimated energy (migration 0018; accounting/energy.py): storage accumulates like
    # byte_seconds; compute is recomputed with the tokens, over the tokens of nodes
    # that declared an energy profile for inference (``compute_tokens_estimated``)
    sa.Column("storage_kwh", sa.Double, nullable=False, server_default="0"),
    sa.Column("storage_gco2", sa.Double, nullable=False, server_default="0"),
    sa.Column("compute_kwh", sa.Double, nullable=False, server_default="0"),
    sa.Column("compute_gco2", sa.Double, nullable=False, server_default="0"),
    sa.Column("compute_tokens_estimated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tallied_at", sa.Double, nullable=False),
)

project_usage_hourly = sa.Table(
    "project_usage_hourly",
    metadata,
    sa.Column("hour", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("project_id", sa.String, primary_key=True),
    sa.Column("byte_seconds", sa.Double, nullable=False),
    sa.Column("stored_bytes", sa.BigInteger, nullable=False),
    sa.Column("egress_bytes", sa.BigInteger, nullable=False),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("tokens", sa.BigInteger, nullable=False),
    # estimated energy (migration 0018; accounting/energy.py): storage accumulates like
    # byte_seconds; compute is recomputed with the tokens, over the tokens of nodes
    # that declared an energy profile for inference (``compute_tokens_estimated``)
    sa.Column("storage_kwh", sa.Double, nullable=False, server_default="0"),
    sa.Column("storage_gco2", sa.Double, nullable=False, server_default="0"),
    sa.Column("compute_kwh", sa.Double, nullable=False, server_default="0"),
    sa.Column("compute_gco2", sa.Double, nullable=False, server_default="0"),
    sa.Column("compute_tokens_estimated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("tallied_at", sa.Double, nullable=False),
)
