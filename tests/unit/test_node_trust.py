"""The rules a node follows for the network's coordinator keys (``node/trust.py``).

A key statement is taken only when a trusted key signed it, it is well formed, lists
at least one key and is newer than the last one taken; the node then trusts exactly
its keys and writes them to its trust file (atomically, 0600), which wins over the
configured keys at the next start.
"""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from skymesh.config import NodeConfig
from skymesh.errors import Forbidden
from skymesh.node.orders import OrderVerifier, SerialStore
from skymesh.node.trust import (
    TRUST_FILE,
    CoordinatorTrust,
    TrustState,
    check_statement,
    load_trust,
    pin_key,
)
from skymesh.wire.identity import Identity
from skymesh.wire.keys import MAX_STATEMENT_KEYS, CoordinatorKey, CoordinatorKeys
from skymesh.wire.signing import Signed, sign

A, B, C, ROGUE = (Identity.generate() for _ in range(4))


def key(identity: Identity, url: str = "") -> CoordinatorKey:
    return CoordinatorKey(coordinator_id=identity.id, public_key=identity.public_key, url=url)


def statement(signer: Identity, members: list[Identity], version: int, **overrides: Any) -> Signed:
    body = {"keys": [key(m) for m in members], "version": version, "issued_at": time.time()}
    return sign(signer, CoordinatorKeys(**{**body, **overrides}))


def trusting(*identities: Identity, version: int = 0) -> TrustState:
    return TrustState(frozenset(i.public_key for i in identities), version)


# ---------------------------------------------------------------- the pure rule


def test_a_newer_statement_signed_by_a_trusted_key_is_taken() -> None:
    taken = check_statement(statement(A, [A, B], 2), trusting(A, version=1))
    assert taken is not None and [k.public_key for k in taken.keys] == [A.public_key, B.public_key]
    # one that drops its own signer is taken too: a retired coordinator says where to go
    taken = check_statement(statement(A, [B, C], 3), trusting(A, B, version=2))
    assert taken is not None and {k.coordinator_id for k in taken.keys} == {B.id, C.id}


def test_an_older_or_repeated_statement_changes_nothing() -> None:
    state = trusting(A, B, version=5)
    assert check_statement(statement(A, [A], 5), state) is None
    assert check_statement(statement(B, [B, ROGUE], 4), state) is None  # a replay


def forged() -> Signed:
    """ROGUE's statement presented as A's: A's key named as the signer of ROGUE's signature."""
    honest = statement(ROGUE, [ROGUE], 9)
    return Signed(honest.body, A.public_key, honest.signature)


MISNAMED = CoordinatorKey(coordinator_id=B.id, public_key=A.public_key)  # A's key under B's id


@pytest.mark.parametrize(
    ("signed", "why"),
    [
        (statement(ROGUE, [ROGUE], 9), "untrusted key"),
        (forged(), "bad signature"),
        (Signed(statement(A, [ROGUE], 9).body, A.public_key, b""), "bad signature"),
        (statement(A, [], 9), "no key"),
        (statement(A, [A] * (MAX_STATEMENT_KEYS + 1), 9), "over"),
        (sign(A, CoordinatorKeys(keys=[MISNAMED], version=9, issued_at=0)), "wrongly"),
        (
            Signed(b"\xc1", A.public_key, A.sign(b"skymesh/signed/v1/CoordinatorKeys\xc1")),
            "malformed",
        ),
    ],
    ids=["unknown-signer", "forged", "unsigned", "empty", "too-many", "misnamed", "malformed"],
)
def test_refused_statements(signed: Signed, why: str) -> None:
    with pytest.raises(Forbidden) as e:
        check_statement(signed, trusting(A, version=1))
    assert why in e.value.message


def test_a_node_that_trusts_nobody_takes_no_statement() -> None:
    with pytest.raises(Forbidden, match="trusts no coordinator"):
        check_statement(statement(A, [A], 1), TrustState(frozenset()))


# ---------------------------------------------------------------- following, on disk


def node_config(**overrides: Any) -> NodeConfig:
    return msgspec.convert({"data_dir": "unused", **overrides}, NodeConfig)


@pytest.fixture
def verifier(tmp_path: Path) -> OrderVerifier:
    serials = SerialStore(tmp_path / "orders.sqlite3")
    return OrderVerifier("node", [A.public_key], serials)


def test_following_replaces_the_set_and_writes_it_privately(
    tmp_path: Path, verifier: OrderVerifier
) -> None:
    trust_file = tmp_path / TRUST_FILE
    trust = CoordinatorTrust(verifier, trust_file, trusting(A), may_pin=False)
    assert not trust.follow(None, "http://a")  # an older coordinator sends none
    assert not trust.follow(statement(ROGUE, [ROGUE], 1), "http://a")  # ignored, not raised
    assert verifier.trusted_keys == {A.public_key}

    assert trust.follow(statement(A, [A, B], 2), "http://a")
    assert verifier.trusted_keys == {A.public_key, B.public_key}
    assert stat.S_IMODE(trust_file.stat().st_mode) == 0o600
    assert not trust.follow(statement(A, [A, B], 2), "http://a")  # the same, every heartbeat

    # B's statement retiring A: the node follows B, and A's statements count no more
    assert trust.follow(statement(B, [B, C], 4), "http://b")
    assert verifier.trusted_keys == {B.public_key, C.public_key}
    assert not trust.follow(statement(A, [A, ROGUE], 9), "http://a")
    assert verifier.trusted_keys == {B.public_key, C.public_key}

    # the file wins over the configured keys at the next start
    configured = node_config(trusted_coordinators=[A.public_key.hex()])
    assert load_trust(configured, trust_file) == (trusting(B, C, version=4), False)


def test_where_trust_starts(tmp_path: Path) -> None:
    trust_file = tmp_path / TRUST_FILE
    configured = node_config(trusted_coordinators=[A.public_key.hex()])
    assert load_trust(node_config(), trust_file) == (TrustState(frozenset()), True)  # pin
    assert load_trust(configured, trust_file) == (trusting(A), False)
    pin_key(trust_file, B.public_key, B.id, "http://b")  # pinned before statements existed
    assert load_trust(node_config(), trust_file) == (trusting(B), False)
    assert load_trust(configured, trust_file) == (trusting(A), False)  # configured wins


def test_a_node_never_trusts_nobody(verifier: OrderVerifier) -> None:
    with pytest.raises(ValueError):
        verifier.replace_trusted(frozenset())
    assert verifier.trusted_keys == {A.public_key}
