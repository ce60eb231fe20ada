"""Join tokens and the admission rule (pure): the format, what a token proves, who may join."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import msgspec
import pytest

from skymesh.coordinator.overlay.addresses import NodeNetworks, parse_node_address
from skymesh.coordinator.overlay.admission import OperatorRecord, admit_join, check_admission
from skymesh.errors import BadRequest, Forbidden
from skymesh.wire.identity import Identity
from skymesh.wire.registry import (
    JOIN_TOKEN_PREFIX,
    AdmitOperatorRequest,
    JoinToken,
    NodeInfo,
    decode_join_token,
    encode_join_token,
)
from skymesh.wire.signing import Signed, open_signed, sign

NOW = 1_800_000_000.0
COORDINATOR = Identity.from_seed(bytes(range(32)))


BASE_TOKEN = JoinToken(
    token_id="t1",
    operator="acme",
    regions=["eu-west", "eu-central"],
    compute=False,
    issued_at=NOW - 10,
    expires_at=NOW + 3600,
)
BASE_OPERATOR = OperatorRecord(
    name="acme",
    regions=("eu-west", "eu-central"),
    compute=False,
    created_at=NOW - 100,
    token_id="t1",
    token_issued_at=NOW - 10,
    token_expires_at=NOW + 3600,
)


def token(**fields: Any) -> JoinToken:
    return msgspec.structs.replace(BASE_TOKEN, **fields)


def book(**fields: Any) -> dict[str, OperatorRecord]:
    op = dataclasses.replace(BASE_OPERATOR, **fields)
    return {op.name: op}


# ---------------------------------------------------------------- the format


def test_a_token_round_trips_as_shell_safe_text() -> None:
    text = encode_join_token(sign(COORDINATOR, token()))
    assert text.startswith(JOIN_TOKEN_PREFIX)
    assert all(c.isalnum() or c in "_-" for c in text)
    signed = decode_join_token(f"  {text}\n")  # pasted with whitespace
    opened = open_signed(signed, JoinToken, trusted=[COORDINATOR.public_key])
    assert opened == token()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        JOIN_TOKEN_PREFIX,
        JOIN_TOKEN_PREFIX + "!!!",
        JOIN_TOKEN_PREFIX + base64.urlsafe_b64encode(b"not msgpack").decode(),
        JOIN_TOKEN_PREFIX + "A" * 5000,
    ],
)
def test_malformed_tokens_are_refused(text: str) -> None:
    with pytest.raises(Forbidden) as e:
        decode_join_token(text)
    assert e.value.code == "JoinTokenInvalid"


def test_only_the_coordinators_signature_makes_a_token() -> None:
    forged = sign(Identity.generate(), token())
    with pytest.raises(Forbidden, match="untrusted"):
        open_signed(
            decode_join_token(encode_join_token(forged)), JoinToken, [COORDINATOR.public_key]
        )
    # A body changed after signing (another operator, more regions) fails the signature.
    good = sign(COORDINATOR, token())
    swapped = msgspec.msgpack.encode(token(operator="evil", regions=["us-east"]))
    tampered = Signed(body=swapped, signer=good.signer, signature=good.signature)
    with pytest.raises(Forbidden, match="bad signature"):
        open_signed(tampered, JoinToken, [COORDINATOR.public_key])
    # A coordinator's signature on another kind of message is no token (domain separation).
    other = sign(
        COORDINATOR,
        NodeInfo(
            node_id="x",
            address="http://127.0.0.1:1",
            region="r",
            operator="o",
            capacity_bytes=1,
            used_bytes=0,
            version="v",
            timestamp=NOW,
        ),
    )
    with pytest.raises(Forbidden):
        open_signed(
            Signed(other.body, other.signer, other.signature), JoinToken, [COORDINATOR.public_key]
        )


# ---------------------------------------------------------------- the admission rule


def test_a_new_node_joins_with_the_current_token_into_its_regions() -> None:
    op = admit_join(token(), None, "eu-central", book(), NOW)
    assert op.name == "acme"


@pytest.mark.parametrize(
    ("tok", "known", "region", "ops", "code"),
    [
        (None, None, "eu-west", book(), "JoinTokenRequired"),
        (token(expires_at=NOW - 1), None, "eu-west", book(), "JoinTokenExpired"),
        (token(expires_at=NOW), None, "eu-west", book(), "JoinTokenExpired"),
        (token(token_id="old"), None, "eu-west", book(), "JoinTokenReplaced"),
        (token(), None, "eu-west", book(revoked_at=NOW - 1), "OperatorRevoked"),
        (token(), None, "us-east", book(), "RegionNotAllowed"),
        (token(operator="ghost"), None, "eu-west", book(), "NotAdmitted"),
        # a registered node keeps its operator; a revoked one is refused even so
        (None, "acme", "eu-west", book(revoked_at=NOW - 1), "OperatorRevoked"),
        (None, "acme", "ap-south", book(), "RegionNotAllowed"),
        # moving to another operator takes that operator's current token
        (token(token_id="old"), "other", "eu-west", book(), "JoinTokenReplaced"),
        (token(expires_at=NOW - 1), "other", "eu-west", book(), "JoinTokenExpired"),
    ],
)
def test_who_may_not_join(
    tok: JoinToken | None,
    known: str | None,
    region: str,
    ops: dict[str, OperatorRecord],
    code: str,
) -> None:
    with pytest.raises(Forbidden) as e:
        admit_join(tok, known, region, ops, NOW)
    assert e.value.code == code


@pytest.mark.parametrize(
    "tok", [None, token(expires_at=NOW - 86400), token(token_id="old"), token()]
)
def test_a_registered_node_rejoins_while_its_operator_stands(tok: JoinToken | None) -> None:
    assert admit_join(tok, "acme", "eu-west", book(), NOW).name == "acme"


@pytest.mark.parametrize(
    ("req", "problem"),
    [
        (AdmitOperatorRequest(name="", regions=["a"]), "name"),
        (AdmitOperatorRequest(name="a/b", regions=["a"]), "name"),
        (AdmitOperatorRequest(name="-x", regions=["a"]), "name"),
        (AdmitOperatorRequest(name="x" * 65, regions=["a"]), "name"),
        (AdmitOperatorRequest(name="ok", regions=[]), "regions"),
        (AdmitOperatorRequest(name="ok", regions=["eu west"]), "region"),
        (AdmitOperatorRequest(name="ok", regions=["a"], expires_in=0), "expires"),
        (AdmitOperatorRequest(name="ok", regions=["a"], expires_in=1e12), "expires"),
    ],
)
def test_bad_admissions_are_refused(req: AdmitOperatorRequest, problem: str) -> None:
    with pytest.raises(BadRequest, match=problem):
        check_admission(req)


def test_admission_regions_are_deduplicated_in_order() -> None:
    req = AdmitOperatorRequest(name="op.1_a-b", regions=["eu-west", " eu-central", "eu-west"])
    assert check_admission(req) == ("eu-west", "eu-central")


# ---------------------------------------------------------------- node addresses


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("http://127.0.0.1:7801", "127.0.0.1", 7801),
        ("https://node-1.example:443/", "node-1.example", 443),
        ("http://[::1]:7801", "::1", 7801),
    ],
)
def test_a_node_address_is_a_base_url(address: str, host: str, port: int) -> None:
    assert parse_node_address(address) == (host, port)


@pytest.mark.parametrize(
    "address",
    [
        "file:///etc/passwd",
        "gopher://127.0.0.1:70",
        "http://127.0.0.1",  # no port
        "http://:80",
        "http://user:pw@127.0.0.1:80",
        "http://user@127.0.0.1:80",
        "http://127.0.0.1:80/admin",
        "http://127.0.0.1:80?x=1",
        "http://127.0.0.1:80?",
        "http://127.0.0.1:80#frag",
        "http://127.0.0.1:0",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:80\n",
        "http://" + "a" * 600 + ":80",
    ],
)
def test_other_addresses_are_refused(address: str) -> None:
    with pytest.raises(BadRequest):
        parse_node_address(address)


def test_the_default_networks_are_a_local_networks() -> None:
    import ipaddress

    from skymesh.config import CoordinatorConfig

    nets = NodeNetworks(CoordinatorConfig().node_networks)
    for ok in ("127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "::1", "fd00::1"):
        assert nets.allows(ipaddress.ip_address(ok)), ok
    for no in ("169.254.169.254", "8.8.8.8", "0.0.0.0", "224.0.0.1", "fe80::1", "::"):
        assert not nets.allows(ipaddress.ip_address(no)), no
    anywhere = NodeNetworks([])
    assert anywhere.allows(ipaddress.ip_address("8.8.8.8"))
    assert not anywhere.allows(ipaddress.ip_address("0.0.0.0"))
