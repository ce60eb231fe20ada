"""Which coordinators' orders this node honours.

``NodeConfig.trusted_coordinators`` (hex Ed25519 public keys) wins when set.
Otherwise the node pins, on first use, the key of the coordinator at
``coordinator_url`` to ``data_dir/trusted_coordinators`` and trusts only that key
on every later start. To move to another coordinator, set
``trusted_coordinators`` or delete the file.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from skymesh.config import NodeConfig
from skymesh.errors import ConfigError

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
    trust_file.parent.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = (
        "# Coordinator keys whose orders this node honours, one hex key a line.\n"
        f"# Pinned on first use: coordinator {coordinator_id} at {url}, {stamp}.\n"
        f"{public_key.hex()}\n"
    )
    tmp = trust_file.with_name(trust_file.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, trust_file)
