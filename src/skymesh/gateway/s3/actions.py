"""Each S3 operation's IAM action, as bucket policies name it: one table, in one place.

An operation on an object acts on ``arn:aws:s3:::bucket/key``, any other on
``arn:aws:s3:::bucket``. Some take another action when they name a version
(``?versionId=``): GetObject becomes ``s3:GetObjectVersion`` and so on, as in S3.
Operations on several resources are checked resource by resource by their handler
or by ``access.py``: DeleteObjects (``s3:DeleteObject`` per key) and the copies
(``s3:GetObject`` on the source as well as ``s3:PutObject`` on the destination).
"""

from __future__ import annotations

from collections.abc import Mapping

from skymesh.gateway.s3.policy import ARN_PREFIX
from skymesh.gateway.s3.router import Endpoint, Op

ACTIONS: Mapping[Op, str] = {
    Op.CreateBucket: "s3:CreateBucket",
    Op.HeadBucket: "s3:ListBucket",
    Op.DeleteBucket: "s3:DeleteBucket",
    Op.ListObjects: "s3:ListBucket",
    Op.ListObjectsV2: "s3:ListBucket",
    Op.ListObjectVersions: "s3:ListBucketVersions",
    Op.ListMultipartUploads: "s3:ListBucketMultipartUploads",
    Op.DeleteObjects: "s3:DeleteObject",
    Op.PostObject: "s3:PutObject",
    Op.GetBucketLocation: "s3:GetBucketLocation",
    Op.GetBucketVersioning: "s3:GetBucketVersioning",
    Op.PutBucketVersioning: "s3:PutBucketVersioning",
    Op.GetBucketAcl: "s3:GetBucketAcl",
    Op.PutBucketAcl: "s3:PutBucketAcl",
    Op.GetBucketTagging: "s3:GetBucketTagging",
    Op.PutBucketTagging: "s3:PutBucketTagging",
    Op.DeleteBucketTagging: "s3:PutBucketTagging",
    Op.GetBucketCors: "s3:GetBucketCORS",
    Op.PutBucketCors: "s3:PutBucketCORS",
    Op.DeleteBucketCors: "s3:PutBucketCORS",
    Op.GetBucketPolicy: "s3:GetBucketPolicy",
    Op.PutBucketPolicy: "s3:PutBucketPolicy",
    Op.DeleteBucketPolicy: "s3:DeleteBucketPolicy",
    Op.GetBucketPolicyStatus: "s3:GetBucketPolicyStatus",
    Op.GetBucketLifecycleConfiguration: "s3:GetLifecycleConfiguration",
    Op.PutBucketLifecycleConfiguration: "s3:PutLifecycleConfiguration",
    Op.DeleteBucketLifecycle: "s3:PutLifecycleConfiguration",
    Op.GetBucketWebsite: "s3:GetBucketWebsite",
    Op.PutBucketWebsite: "s3:PutBucketWebsite",
    Op.DeleteBucketWebsite: "s3:DeleteBucketWebsite",
    Op.GetBucketLogging: "s3:GetBucketLogging",
    Op.PutBucketLogging: "s3:PutBucketLogging",
    Op.GetBucketNotificationConfiguration: "s3:GetBucketNotification",
    Op.PutBucketNotificationConfiguration: "s3:PutBucketNotification",
    Op.GetBucketReplication: "s3:GetReplicationConfiguration",
    Op.PutBucketReplication: "s3:PutReplicationConfiguration",
    Op.DeleteBucketReplication: "s3:PutReplicationConfiguration",
    Op.GetBucketEncryption: "s3:GetEncryptionConfiguration",
    Op.PutBucketEncryption: "s3:PutEncryptionConfiguration",
    Op.DeleteBucketEncryption: "s3:PutEncryptionConfiguration",
    Op.GetObjectLockConfiguration: "s3:GetBucketObjectLockConfiguration",
    Op.PutObjectLockConfiguration: "s3:PutBucketObjectLockConfiguration",
    Op.GetBucketRequestPayment: "s3:GetBucketRequestPayment",
    Op.PutBucketRequestPayment: "s3:PutBucketRequestPayment",
    Op.GetBucketAccelerateConfiguration: "s3:GetAccelerateConfiguration",
    Op.PutBucketAccelerateConfiguration: "s3:PutAccelerateConfiguration",
    Op.GetBucketOwnershipControls: "s3:GetBucketOwnershipControls",
    Op.PutBucketOwnershipControls: "s3:PutBucketOwnershipControls",
    Op.DeleteBucketOwnershipControls: "s3:PutBucketOwnershipControls",
    Op.GetPublicAccessBlock: "s3:GetBucketPublicAccessBlock",
    Op.PutPublicAccessBlock: "s3:PutBucketPublicAccessBlock",
    Op.DeletePublicAccessBlock: "s3:PutBucketPublicAccessBlock",
    Op.GetBucketAnalyticsConfiguration: "s3:GetAnalyticsConfiguration",
    Op.ListBucketAnalyticsConfigurations: "s3:GetAnalyticsConfiguration",
    Op.PutBucketAnalyticsConfiguration: "s3:PutAnalyticsConfiguration",
    Op.DeleteBucketAnalyticsConfiguration: "s3:PutAnalyticsConfiguration",
    Op.GetBucketInventoryConfiguration: "s3:GetInventoryConfiguration",
    Op.ListBucketInventoryConfigurations: "s3:GetInventoryConfiguration",
    Op.PutBucketInventoryConfiguration: "s3:PutInventoryConfiguration",
    Op.DeleteBucketInventoryConfiguration: "s3:PutInventoryConfiguration",
    Op.GetBucketMetricsConfiguration: "s3:GetMetricsConfiguration",
    Op.ListBucketMetricsConfigurations: "s3:GetMetricsConfiguration",
    Op.PutBucketMetricsConfiguration: "s3:PutMetricsConfiguration",
    Op.DeleteBucketMetricsConfiguration: "s3:PutMetricsConfiguration",
    Op.GetBucketIntelligentTieringConfiguration: "s3:GetIntelligentTieringConfiguration",
    Op.ListBucketIntelligentTieringConfigurations: "s3:GetIntelligentTieringConfiguration",
    Op.PutBucketIntelligentTieringConfiguration: "s3:PutIntelligentTieringConfiguration",
    Op.DeleteBucketIntelligentTieringConfiguration: "s3:PutIntelligentTieringConfiguration",
    # objects
    Op.PutObject: "s3:PutObject",
    Op.CopyObject: "s3:PutObject",
    Op.GetObject: "s3:GetObject",
    Op.HeadObject: "s3:GetObject",
    Op.DeleteObject: "s3:DeleteObject",
    Op.CreateMultipartUpload: "s3:PutObject",
    Op.UploadPart: "s3:PutObject",
    Op.UploadPartCopy: "s3:PutObject",
    Op.CompleteMultipartUpload: "s3:PutObject",
    Op.AbortMultipartUpload: "s3:AbortMultipartUpload",
    Op.ListParts: "s3:ListMultipartUploadParts",
    Op.GetObjectAcl: "s3:GetObjectAcl",
    Op.PutObjectAcl: "s3:PutObjectAcl",
    Op.GetObjectTagging: "s3:GetObjectTagging",
    Op.PutObjectTagging: "s3:PutObjectTagging",
    Op.DeleteObjectTagging: "s3:DeleteObjectTagging",
    Op.GetObjectRetention: "s3:GetObjectRetention",
    Op.PutObjectRetention: "s3:PutObjectRetention",
    Op.GetObjectLegalHold: "s3:GetObjectLegalHold",
    Op.PutObjectLegalHold: "s3:PutObjectLegalHold",
    Op.GetObjectTorrent: "s3:GetObjectTorrent",
    Op.GetObjectAttributes: "s3:GetObjectAttributes",
    Op.RestoreObject: "s3:RestoreObject",
    Op.SelectObjectContent: "s3:GetObject",
}

#: The action an operation takes instead when the request names a version
VERSIONED: Mapping[str, str] = {
    "s3:GetObject": "s3:GetObjectVersion",
    "s3:DeleteObject": "s3:DeleteObjectVersion",
    "s3:GetObjectAcl": "s3:GetObjectVersionAcl",
    "s3:PutObjectAcl": "s3:PutObjectVersionAcl",
    "s3:GetObjectTagging": "s3:GetObjectVersionTagging",
    "s3:PutObjectTagging": "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging": "s3:DeleteObjectVersionTagging",
    "s3:GetObjectAttributes": "s3:GetObjectVersionAttributes",
    "s3:GetObjectTorrent": "s3:GetObjectVersionTorrent",
}

#: Configuration only the bucket's owner may change or read, whatever a policy grants
#: (S3 answers another account 405 MethodNotAllowed); the owner may always, even
#: under a policy that denies it, so that no policy can lock its owner out.
OWNER_ONLY = frozenset({Op.GetBucketPolicy, Op.PutBucketPolicy, Op.DeleteBucketPolicy})


def bucket_arn(bucket: str) -> str:
    return ARN_PREFIX + bucket


def object_arn(bucket: str, key: str) -> str:
    return f"{ARN_PREFIX}{bucket}/{key}"


def action_for(name: Op, version_id: str | None) -> str | None:
    """The IAM action of operation ``name`` (None for ListBuckets, OPTIONS)."""
    action = ACTIONS.get(name)
    if action is not None and version_id:
        return VERSIONED.get(action, action)
    return action


def resource_for(endpoint: Endpoint) -> str:
    """The ARN an endpoint acts on: its object, else its bucket."""
    assert endpoint.bucket is not None
    if endpoint.key is not None and endpoint.name not in (Op.DeleteObjects, Op.PostObject):
        return object_arn(endpoint.bucket, endpoint.key)
    return bucket_arn(endpoint.bucket)
