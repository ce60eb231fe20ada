"""Ed25519 identities for nodes and coordinators.

A node's id is derived from its public key, so an id cannot be claimed without
the matching private key: whoever signs a join for id X must hold X's key.
"""

from __future__ import annotations

from pathlib import Path

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from skymesh.errors import ConfigError
from skymesh.private import write_private

ID_DOMAIN = b"skymesh/identity/v1"
ID_HEX_LEN = 40


def id_from_public_key(public_key: bytes) -> str:
    """The id of the holder of ``public_key``: 160 bits of a domain-separated BLAKE3."""
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return blake3.blake3(ID_DOMAIN + public_key).hexdigest()[:ID_HEX_LEN]


def verify_signature(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is ``public_key``'s signature of ``data``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class Identity:
    """A private key and the id it proves."""

    def __init__(self, private_key: Ed25519PrivateKey):
        self._key = private_key
        self.public_key: bytes = private_key.public_key().public_bytes(
            Encoding.Raw, PublicFormat.Raw
        )
        self.id: str = id_from_public_key(self.public_key)

    @classmethod
    def generate(cls) -> Identity:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def seed(self) -> bytes:
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def save(self, path: Path) -> None:
        """Write the seed as hex, readable by the owner only."""
        write_private(path, self.seed().hex() + "\n")

    @classmethod
    def load(cls, path: Path) -> Identity:
        try:
            seed = bytes.fromhex(path.read_text().strip())
            return cls.from_seed(seed)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read identity key {path}: {e}") from e

    @classmethod
    def load_or_create(cls, path: Path) -> Identity:
        """The identity stored at ``path``, created on first use."""
        if path.exists():
            return cls.load(path)
        identity = cls.generate()
        identity.save(path)
        return identity

    def __repr__(self) -> str:
        return f"Identity({self.id})"
