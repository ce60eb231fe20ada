"""Which coordinators' orders this node honours, and how that set follows the network.

The node trusts a set of coordinator keys. It starts from, in order:

1. ``data_dir/trusted_coordinators`` when it holds a key statement taken earlier
   (a ``version N`` line): the set the network last announced to this node;
2. else ``NodeConfig.trusted_coordinators`` (hex Ed25519 public keys);
3. else the keys pinned in ``data_dir/trusted_coordinators`` (no version line);
4. else nothing: it pins, on first use, the key of the coordinator at
   ``coordinator_url`` (trust on first use).

Every join and heartbeat answer carries the network's current keys as a
:class:`~skymesh.wire.keys.CoordinatorKeys` statement signed by the answering
coordinator. :func:`check_statement` is the rule: the node takes a statement only
when a key it trusts now signed it, it is well formed and not empty, and its version
is above the last one taken; it then trusts exactly the listed keys (so keys are
added and retired without a restart) and writes them to the trust file. A statement
may drop its own signer's key: a retired coordinator still answering tells the nodes
that trust only it where to go, and loses their trust by saying so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from skymesh.config import NodeConfig
from skymesh.errors import ConfigError, Forbidden
from skymesh.node.orders import OrderVerifier
from skymesh.private import write_private
from skymesh.wire.identity import id_from_public_key
from skymesh.wire.keys import MAX_STATEMENT_KEYS, CoordinatorKeys
from skymesh.wire.signing import Signed, open_signed

log = logging.getLogger(__name__)

TRUST_FILE = "trusted_coordinators"
_VERSION = "version"


def parse_key(value: str, where: str) -> bytes:
    try:
        key = bytes.fromhex(value.strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ConfigError(f"{where}: {value.strip()[:80]!r} is not a hex Ed25519 public key")
    return key


@dataclass(frozen=True)
class TrustState:
    """The keys trusted, and the version of the key statement they came from (0: none)."""

    keys: frozenset[bytes]
    version: int = 0


def read_trust_file(trust_file: Path) -> TrustState:
    """The keys in ``trust_file`` (one hex key a line, ``#`` comments) and its version."""
    keys: set[bytes] = set()
    version = 0
    for line in trust_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(_VERSION):
            try:
                version = int(line[len(_VERSION) :])
            except ValueError as e:
                raise ConfigError(f"{trust_file}: {line[:80]!r} is not 'version <n>'") from e
        elif line:
            keys.add(parse_key(line, str(trust_file)))
    return TrustState(frozenset(keys), version if keys else 0)


def load_trust(config: NodeConfig, trust_file: Path) -> tuple[TrustState, bool]:
    """What to trust at start, and whether the node may still pin a key on first use."""
    saved = read_trust_file(trust_file) if trust_file.exists() else TrustState(frozenset())
    if saved.version > 0:
        return saved, False
    if config.trusted_coordinators:
        keys = frozenset(parse_key(k, "trusted_coordinators") for k in config.trusted_coordinators)
        return TrustState(keys), False
    if saved.keys:
        return saved, False
    return saved, True


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pin_key(trust_file: Path, public_key: bytes, coordinator_id: str, url: str) -> None:
    """Write ``public_key`` as the one trusted coordinator key (atomically)."""
    text = (
        "# Coordinator keys whose orders this node honours, one hex key a line.\n"
        f"# Pinned on first use: coordinator {coordinator_id} at {url}, {_stamp(time.time())}.\n"
        f"{public_key.hex()}\n"
    )
    write_private(trust_file, text)


def save_statement(trust_file: Path, statement: CoordinatorKeys, signer_id: str) -> None:
    """Write the keys of a statement taken, with its version (atomically, 0600)."""
    lines = [
        "# Coordinator keys whose orders this node honours, one hex key a line.",
        f"# From the key statement of version {statement.version}, signed by coordinator"
        f" {signer_id} at {_stamp(statement.issued_at)}; replaced by newer statements.",
        f"{_VERSION} {statement.version}",
    ]
    lines += [
        f"{k.public_key.hex()}  # coordinator {k.coordinator_id} {k.url}" for k in statement.keys
    ]
    write_private(trust_file, "\n".join(lines) + "\n")


def check_statement(signed: Signed, state: TrustState) -> CoordinatorKeys | None:
    """The statement to take, None when it is not newer than ``state``; :class:`Forbidden`
    when no trusted key signed it or it is malformed or empty (pure)."""
    if not state.keys:
        raise Forbidden("CoordinatorKeys refused: this node trusts no coordinator yet")
    statement = open_signed(signed, CoordinatorKeys, state.keys)
    if statement.version <= state.version:
        return None  # one already taken, or older (a replica that has not reloaded yet)
    if not statement.keys:
        raise Forbidden("CoordinatorKeys lists no key: a node never trusts nobody")
    if len(statement.keys) > MAX_STATEMENT_KEYS:
        raise Forbidden(f"CoordinatorKeys lists over {MAX_STATEMENT_KEYS} keys")
    for key in statement.keys:
        if len(key.public_key) != 32 or id_from_public_key(key.public_key) != key.coordinator_id:
            raise Forbidden(
                f"CoordinatorKeys names coordinator {key.coordinator_id[:48]!r} wrongly"
            )
    return statement


class CoordinatorTrust:
    """The node's trusted coordinator keys: loaded at start, pinned on first use, and
    following the statements its coordinators send; ``verifier`` holds the live set."""

    def __init__(self, verifier: OrderVerifier, trust_file: Path, state: TrustState, may_pin: bool):
        self.verifier = verifier
        self.trust_file = trust_file
        self.version = state.version
        self.may_pin = may_pin  # trust on first use still allowed
        self.taken = 0  # statements taken since start
        self._last_refusal = ""

    def pin(self, public_key: bytes, coordinator_id: str, url: str) -> None:
        """Trust the first coordinator met (trust on first use), and write it down."""
        pin_key(self.trust_file, public_key, coordinator_id, url)
        self.verifier.trust(public_key)
        self.may_pin = False
        log.warning(
            "trust on first use: pinned coordinator %s at %s (key %s) in %s; "
            "only its orders and key statements are honoured from now on",
            coordinator_id,
            url,
            public_key.hex(),
            self.trust_file,
        )

    def follow(self, signed: Signed | None, url: str) -> bool:
        """Take the key statement of a join or heartbeat answer if it is newer and signed by
        a trusted key; True when the trusted set changed. A refused one is logged, never
        raised: the answer is still good, and the node keeps the keys it has."""
        if signed is None:
            return False
        state = TrustState(self.verifier.trusted_keys, self.version)
        try:
            statement = check_statement(signed, state)
        except Forbidden as e:
            if e.message != self._last_refusal:
                log.warning("ignoring the coordinator keys sent by %s: %s", url, e.message)
            self._last_refusal = e.message
            return False
        if statement is None:
            return False
        keys = frozenset(k.public_key for k in statement.keys)
        save_statement(self.trust_file, statement, signed.signer_id)
        added, removed = keys - state.keys, state.keys - keys
        self.verifier.replace_trusted(keys)
        self.version = statement.version
        self.taken += 1
        self._last_refusal = ""
        log.info(
            "coordinator keys of version %d from %s: trusting %d key(s), %d added, %d retired",
            statement.version,
            url,
            len(keys),
            len(added),
            len(removed),
        )
        return True
