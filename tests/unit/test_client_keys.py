"""Key sources: the owner's derives bucket keys; given keys open only what was given."""

from __future__ import annotations

import pytest

from skymesh.client.keys import GivenKeys, RootSecretKeys, key_context, new_part_key, segment_key
from skymesh.codec.crypto import derive_bucket_key, unwrap_key
from skymesh.errors import Forbidden, IntegrityError

SECRET = b"s" * 32


def test_the_owner_wraps_new_keys_with_the_derived_bucket_key() -> None:
    keys = RootSecretKeys("proj", SECRET)
    data_key, wrapped = keys.new_key("b", "k")
    assert keys.bucket_key("b") == derive_bucket_key(SECRET, "proj", "b")
    assert unwrap_key(keys.bucket_key("b"), wrapped, key_context("b", "k")) == data_key
    assert keys.data_key("b", "k", wrapped) == data_key
    assert keys.new_key("b", "k")[0] != data_key  # fresh for every version


def test_a_wrapped_key_opens_only_under_its_own_name() -> None:
    keys = RootSecretKeys("proj", SECRET)
    _, wrapped = keys.new_key("b", "k")
    with pytest.raises(IntegrityError):
        keys.data_key("b", "other", wrapped)
    with pytest.raises(IntegrityError):
        RootSecretKeys("proj", b"t" * 32).data_key("b", "k", wrapped)


def test_given_keys_open_what_was_given_and_make_nothing() -> None:
    keys = GivenKeys({("b", "in"): b"d" * 32})
    assert keys.data_key("b", "in", b"ignored") == b"d" * 32
    with pytest.raises(Forbidden, match="no key for b/other"):
        keys.data_key("b", "other", b"")
    with pytest.raises(Forbidden, match="no bucket key"):
        keys.new_key("b", "new")


def test_each_part_upload_gets_its_own_key() -> None:
    data_key = b"d" * 32
    (a, salt_a), (b, salt_b) = new_part_key(data_key), new_part_key(data_key)
    assert salt_a != salt_b and a != b
    assert a == segment_key(data_key, salt_a) != data_key
    assert segment_key(data_key, b"") == data_key  # a simple upload's segments
