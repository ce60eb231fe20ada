"""What real S3 clients ask besides objects, found by driving them (tests/clients)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.conftest import S3Client


def test_get_bucket_versioning_is_never_enabled(s3: S3Client) -> None:
    """rclone's purge asks before deleting and logs an ERROR on 501; AWS answers an empty config."""
    s3.create_bucket(Bucket="never-versioned")
    answer = s3.get_bucket_versioning(Bucket="never-versioned")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in answer and "MFADelete" not in answer
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket="no-such-bucket-here")
    assert e.value.response["Error"]["Code"] == "NoSuchBucket"
