"""Root piece ids that commit to the stream and position they were handed out for.

A root piece id is 32 bytes, shown as 64 hex characters::

    root = salt (16 random bytes) || HMAC-SHA256(root key, domain || stream_id || part || index || salt)[:16]

Every piece id of the segment derives from the root (``derive_piece_id``), so a
node still sees unlinkable random-looking ids. At commit the coordinator
recomputes the MAC from the salt inside the root and the stream and position
being committed: a root issued for another stream or position (or made up) is
refused. Without this, one set of signed receipts could be committed into two
objects, and deleting either would delete pieces the other still reads.

The design needs no per-placement write and no wire change: the salt travels
inside the root id the client already echoes back. 128 bits of MAC make a
forgery as hard as guessing the key; 128 bits of salt make two placements
collide only by chance. The key is random, kept in the database
(``coordinator_secrets``), so every replica over one database issues and checks
the same roots.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import coordinator_secrets

ROOT_DOMAIN = b"skymesh/root-piece/v1"
ROOT_KEY_NAME = "root-piece-key"
SALT_SIZE = 16
MAC_SIZE = 16


class RootKey:
    """Issues and checks root piece ids bound to (stream id, part, index)."""

    def __init__(self, key: bytes):
        if len(key) < 32:
            raise ValueError("a root key needs at least 32 bytes")
        self._key = key

    def _mac(self, stream_id: str, part: int, index: int, salt: bytes) -> bytes:
        sid = stream_id.encode()
        msg = b"".join(
            (
                ROOT_DOMAIN,
                len(sid).to_bytes(2, "big"),
                sid,
                part.to_bytes(4, "big", signed=True),
                index.to_bytes(4, "big", signed=True),
                salt,
            )
        )
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:MAC_SIZE]

    def issue(self, stream_id: str, part: int, index: int) -> str:
        """A fresh root piece id for one placement of segment (part, index) of ``stream_id``."""
        salt = secrets.token_bytes(SALT_SIZE)
        return (salt + self._mac(stream_id, part, index, salt)).hex()

    def check(self, root_piece_id: str, stream_id: str, part: int, index: int) -> bool:
        """True when ``root_piece_id`` was issued by this key for exactly that segment."""
        try:
            raw = bytes.fromhex(root_piece_id)
        except ValueError:
            return False
        if len(raw) != SALT_SIZE + MAC_SIZE or not -(2**31) <= part < 2**31:
            return False
        if not -(2**31) <= index < 2**31:
            return False
        salt, mac = raw[:SALT_SIZE], raw[SALT_SIZE:]
        return hmac.compare_digest(mac, self._mac(stream_id, part, index, salt))


async def load_root_key(db: Database, now: float) -> RootKey:
    """The database's root key, created on first use (the first replica to start wins)."""
    select = sa.select(coordinator_secrets.c.value).where(
        coordinator_secrets.c.name == ROOT_KEY_NAME
    )

    def txn(conn: sa.Connection) -> bytes:
        value = conn.execute(select).scalar_one_or_none()
        if value is None:
            value = secrets.token_bytes(32)
            conn.execute(
                coordinator_secrets.insert().values(name=ROOT_KEY_NAME, value=value, created_at=now)
            )
        return bytes(value)

    return RootKey(await db.write(txn))
