"""Which coordinators' orders this node honours.

``NodeConfig.trusted_coordinators`` (hex Ed25519 public keys) wins when set.
Otherwise the node pins, on first use, the key of the coordinator at
``coordinator_url`` to ``data_dir/trusted_coordinators`` and trusts only that key
on every later start. To move to another coordinator, set
``trusted_coordinators`` or delete the file.
"""

from __future__ import annotations

import time
from pathlib import Path

from skymesh.config import NodeConfig
from skymesh.errors import ConfigError
from skymesh.private import write_private

TRUST_FILE = "trusted_coordinators"


def parse_key(value: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{where}: {value.strip()[:80]!r} is not a hex Ed25519 public key")
    return key


def load_trusted_keys(config: NodeConfig, trust_file: Path) -> tuple[set[bytes], bool]:
    """The keys to trust, and whether the node may still pin one on first use."""
    if config.trusted_coordinators:
        keys = {parse_key(k, "trusted_coordinators") for k in config.trusted_coordinators}
        return keys, False
    if trust_file.exists():
        keys = set()
        for line in trust_file.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                keys.add(parse_key(line, str(trust_file)))
        if keys:
            return keys, False
    return set(), True


def pin_key(trust_file: Path, public_key: bytes, coordinator_id: str, url: str) -> None:
    """Write ``public_key`` as the one trusted coordinator key (atomically)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = (
        "# Coordinator keys whose orders this node honours, one hex key a line.\n"
        f"# Pinned on first use: coordinator {coordinator_id} at {url}, {stamp}.\n"
        f"{public_key.hex()}\n"
    )
    write_private(trust_file, text)
