"""SSE-C's key handling (client/customerkey.py): the customer key changes the content
key, a wrong key is told apart, and nothing kept in the metadata gives the key away."""

from __future__ import annotations

import base64
import hashlib
import os

import msgspec
import pytest

from skymesh import errors
from skymesh.client.customerkey import (
    CustomerKey,
    content_key,
    customer_etag,
    open_content,
    verifier,
)
from skymesh.client.objectmeta import ObjectMeta, open_meta, seal_meta


def test_the_customer_key_is_mixed_into_the_content_key() -> None:
    data_key = os.urandom(32)
    one, two = CustomerKey.of(os.urandom(32)), CustomerKey.of(os.urandom(32))
    assert content_key(data_key, None) == data_key
    keys = {content_key(data_key, one), content_key(data_key, two), data_key}
    assert len(keys) == 3  # neither the data key alone nor another customer key opens it
    assert content_key(data_key, one) == content_key(data_key, CustomerKey.of(one.key))
    # and the data key matters too: the customer key alone is not the content key
    assert content_key(os.urandom(32), one) != content_key(data_key, one)
    assert one.key not in keys


def test_the_verifier_accepts_only_the_key_the_object_was_written_with() -> None:
    data_key = os.urandom(32)
    right, wrong = CustomerKey.of(os.urandom(32)), CustomerKey.of(os.urandom(32))
    stored = verifier(data_key, right)
    assert open_content(data_key, stored, right) == content_key(data_key, right)
    with pytest.raises(errors.Forbidden) as denied:
        open_content(data_key, stored, wrong)
    assert denied.value.code == "AccessDenied"
    with pytest.raises(errors.BadRequest) as missing:
        open_content(data_key, stored, None)
    assert missing.value.code == "InvalidRequest"
    assert "correct parameters must be provided" in missing.value.message
    with pytest.raises(errors.BadRequest) as unwanted:
        open_content(data_key, "", right)  # an object written without a customer key
    assert unwanted.value.code == "InvalidRequest"
    assert open_content(data_key, "", None) == data_key
    # bound to the object: the same key verifies differently under another data key
    assert verifier(os.urandom(32), right) != stored


def test_nothing_sealed_contains_the_key_or_its_md5() -> None:
    data_key = os.urandom(32)
    customer = CustomerKey.of(os.urandom(32))
    meta = ObjectMeta(customer_key_verifier=verifier(data_key, customer))
    opened = open_meta(data_key, seal_meta(data_key, meta))  # as the root secret's holder sees it
    plain = msgspec.msgpack.encode(opened)
    md5 = hashlib.md5(customer.key, usedforsecurity=False).digest()
    for secret in (customer.key, md5):
        for form in (secret, secret.hex().encode(), base64.b64encode(secret)):
            assert form not in plain
    assert customer.key.hex() not in repr(customer) and customer.md5 not in repr(customer)


def test_a_customer_key_must_be_32_bytes_and_the_etag_is_not_the_md5() -> None:
    with pytest.raises(errors.BadRequest):
        CustomerKey(os.urandom(16), "")
    content = os.urandom(32)
    md5 = hashlib.md5(b"data", usedforsecurity=False).hexdigest()
    etag = customer_etag(content, md5)
    assert len(etag) == 32 and etag != md5
    assert customer_etag(content, md5, b"salt") != etag
