"""Parsing `skymesh keys create --expires`, and the S3 secret derived from a root secret."""

from __future__ import annotations

import pytest

from skymesh.access_secret import LENGTH, derive_s3_secret
from skymesh.keys_console import parse_expires


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("12h", 43200),
        ("30d", 2_592_000),
        ("2w", 1_209_600),
        (" 1.5h ", 5400),
        ("never", None),
        ("NEVER", None),
        ("", None),
    ],
)
def test_parse_expires_reads_spans_and_never(text: str, seconds: float | None) -> None:
    assert parse_expires(text) == seconds


@pytest.mark.parametrize("text", ["soon", "30", "0d", "-1d", "30 days", "1y", "d"])
def test_parse_expires_refuses_what_is_not_a_span(text: str) -> None:
    with pytest.raises(ValueError, match="30d"):
        parse_expires(text)


def test_s3_secret_is_fixed_by_root_secret_and_key_id() -> None:
    root, other = "11" * 32, "22" * 32
    secret = derive_s3_secret(root, "SKYAAAA")
    assert len(secret) == LENGTH and secret.isalnum()
    assert derive_s3_secret(root, "SKYAAAA") == secret
    assert len({secret, derive_s3_secret(root, "SKYAAAB"), derive_s3_secret(other, "SKYAAAA")}) == 3
