"""The coordinator's project API as a client sees it: one method per route of ``wire.routes``."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp

from skymesh.failover import Endpoints
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.accounting import ProjectUsage
from skymesh.wire.metainfo import (
    AbortObjectRequest,
    BeginObjectRequest,
    BeginObjectResponse,
    BeginPartRequest,
    BeginSegmentRequest,
    BeginUploadRequest,
    BucketConfig,
    BucketInfo,
    BucketList,
    BucketRequest,
    CodecParams,
    CommitObjectRequest,
    CommitPartRequest,
    CommitSegmentRequest,
    CompleteUploadRequest,
    CorsRule,
    CreateBucketRequest,
    DeleteObjectResponse,
    DeleteObjectsRequest,
    DeleteObjectsResponse,
    DownloadRequest,
    DownloadResponse,
    LifecycleRule,
    ListObjectsRequest,
    ListObjectsResponse,
    ListPartsRequest,
    ListPartsResponse,
    ListUploadsRequest,
    ListUploadsResponse,
    ListVersionsRequest,
    ListVersionsResponse,
    ObjectInfo,
    ObjectRequest,
    Placement,
    PublicAccessBlock,
    PutBucketAclRequest,
    PutBucketCorsRequest,
    PutBucketLifecycleRequest,
    PutBucketOwnershipRequest,
    PutBucketPolicyRequest,
    PutBucketTaggingRequest,
    PutBucketVersioningRequest,
    PutInlineRequest,
    PutObjectLockConfigRequest,
    PutObjectLockRequest,
    PutPublicAccessBlockRequest,
    Tag,
    UpdateObjectMetadataRequest,
    UploadInfo,
    UploadRequest,
)
from skymesh.wire.projects import AccessKeyList, CreateKeysRequest, KeyList, KeysCreated


class MetainfoClient:
    """The coordinator as one caller sees it: a project (its API key in ``rpc``'s headers),
    or a node under a batch or read order (the order's scoped routes)."""

    def __init__(self, rpc: RpcClient) -> None:
        self.rpc = rpc

    @classmethod
    def for_project(
        cls,
        coordinator_url: str | Sequence[str] | Endpoints,
        api_key: str,
        session: aiohttp.ClientSession,
    ) -> MetainfoClient:
        headers = {"Authorization": f"Bearer {api_key}"}
        return cls(RpcClient(coordinator_url, session, headers=headers))

    async def codec(self) -> CodecParams:
        return await self.rpc.send(routes.CODEC, None)

    async def access_keys(self) -> AccessKeyList:
        """The project's S3 access keys, revoked and expired ones too (never a secret)."""
        return await self.rpc.send(routes.PROJECT_ACCESS_KEYS, None)

    # the project's own keys and usage (the tenant console, through its gateway)
    async def keys(self) -> KeyList:
        """The project's S3 access key ids and inference keys, never a secret."""
        return await self.rpc.send(routes.OWN_KEYS, None)

    async def create_keys(self, req: CreateKeysRequest) -> KeysCreated:
        return await self.rpc.send(routes.CREATE_OWN_KEYS, req)

    async def revoke_key(self, key_id: str) -> KeyList:
        return await self.rpc.send(routes.REVOKE_OWN_KEY, None, params={"key_id": key_id})

    async def usage(self, query: dict[str, str]) -> ProjectUsage:
        """The project's usage series (query: ``since``, ``until``, ``step`` in seconds)."""
        return await self.rpc.send(routes.OWN_USAGE, None, query=query)

    # buckets
    async def create_bucket(
        self, name: str, region: str = "", acl: str = "private", *, object_lock: bool = False
    ) -> BucketInfo:
        req = CreateBucketRequest(name=name, region=region, acl=acl, object_lock=object_lock)
        return await self.rpc.send(routes.CREATE_BUCKET, req)

    async def get_bucket(self, name: str) -> BucketInfo:
        return await self.rpc.send(routes.GET_BUCKET, BucketRequest(name=name))

    async def list_buckets(self) -> BucketList:
        return await self.rpc.send(routes.LIST_BUCKETS, None)

    async def delete_bucket(self, name: str) -> None:
        await self.rpc.send(routes.DELETE_BUCKET, BucketRequest(name=name))

    # bucket ACL, tagging, CORS
    async def bucket_config(self, name: str) -> BucketConfig:
        return await self.rpc.send(routes.BUCKET_CONFIG, BucketRequest(name=name))

    async def put_bucket_acl(self, name: str, acl: str) -> BucketConfig:
        req = PutBucketAclRequest(name=name, acl=acl)
        return await self.rpc.send(routes.PUT_BUCKET_ACL, req)

    async def put_bucket_tagging(self, name: str, tags: list[Tag] | None) -> BucketConfig:
        req = PutBucketTaggingRequest(name=name, tags=tags)
        return await self.rpc.send(routes.PUT_BUCKET_TAGGING, req)

    async def put_bucket_cors(self, name: str, rules: list[CorsRule] | None) -> BucketConfig:
        req = PutBucketCorsRequest(name=name, rules=rules)
        return await self.rpc.send(routes.PUT_BUCKET_CORS, req)

    # bucket policy, Public Access Block, ownership controls
    async def put_bucket_policy(self, name: str, policy: str | None) -> BucketConfig:
        req = PutBucketPolicyRequest(name=name, policy=policy)
        return await self.rpc.send(routes.PUT_BUCKET_POLICY, req)

    async def put_public_access_block(
        self, name: str, config: PublicAccessBlock | None
    ) -> BucketConfig:
        req = PutPublicAccessBlockRequest(name=name, config=config)
        return await self.rpc.send(routes.PUT_PUBLIC_ACCESS_BLOCK, req)

    async def put_bucket_ownership(self, name: str, ownership: str | None) -> BucketConfig:
        req = PutBucketOwnershipRequest(name=name, ownership=ownership)
        return await self.rpc.send(routes.PUT_BUCKET_OWNERSHIP, req)

    async def put_bucket_lifecycle(
        self, name: str, rules: list[LifecycleRule] | None
    ) -> BucketConfig:
        req = PutBucketLifecycleRequest(name=name, rules=rules)
        return await self.rpc.send(routes.PUT_BUCKET_LIFECYCLE, req)

    # versions and metadata replacement
    async def put_bucket_versioning(self, name: str, status: str) -> BucketConfig:
        req = PutBucketVersioningRequest(name=name, status=status)
        return await self.rpc.send(routes.PUT_BUCKET_VERSIONING, req)

    async def put_object_lock_config(self, req: PutObjectLockConfigRequest) -> BucketConfig:
        return await self.rpc.send(routes.PUT_OBJECT_LOCK_CONFIG, req)

    async def put_object_lock(self, req: PutObjectLockRequest) -> ObjectInfo:
        return await self.rpc.send(routes.PUT_OBJECT_LOCK, req)

    async def delete_objects(self, req: DeleteObjectsRequest) -> DeleteObjectsResponse:
        return await self.rpc.send(routes.DELETE_OBJECTS, req)

    async def list_versions(self, req: ListVersionsRequest) -> ListVersionsResponse:
        return await self.rpc.send(routes.LIST_VERSIONS, req)

    async def update_metadata(self, req: UpdateObjectMetadataRequest) -> ObjectInfo:
        return await self.rpc.send(routes.UPDATE_METADATA, req)

    # objects
    async def begin_object(self, req: BeginObjectRequest) -> BeginObjectResponse:
        return await self.rpc.send(routes.BEGIN_OBJECT, req)

    async def begin_segment(self, req: BeginSegmentRequest) -> Placement:
        return await self.rpc.send(routes.BEGIN_SEGMENT, req)

    async def commit_segment(self, req: CommitSegmentRequest) -> None:
        await self.rpc.send(routes.COMMIT_SEGMENT, req)

    async def commit_object(self, req: CommitObjectRequest) -> ObjectInfo:
        return await self.rpc.send(routes.COMMIT_OBJECT, req)

    async def put_inline(self, req: PutInlineRequest) -> ObjectInfo:
        return await self.rpc.send(routes.PUT_INLINE, req)

    async def abort_object(self, req: AbortObjectRequest) -> None:
        await self.rpc.send(routes.ABORT_OBJECT, req)

    async def head_object(
        self, bucket: str, key: str, version_id: str = "", *, delete_markers: bool = False
    ) -> ObjectInfo:
        req = ObjectRequest(
            bucket=bucket, key=key, version_id=version_id, delete_markers=delete_markers
        )
        return await self.rpc.send(routes.HEAD_OBJECT, req)

    async def download(self, req: DownloadRequest) -> DownloadResponse:
        return await self.rpc.send(routes.DOWNLOAD, req)

    async def list_objects(self, req: ListObjectsRequest) -> ListObjectsResponse:
        return await self.rpc.send(routes.LIST_OBJECTS, req)

    async def delete_object(
        self, bucket: str, key: str, version_id: str = "", *, bypass_governance: bool = False
    ) -> DeleteObjectResponse:
        req = ObjectRequest(
            bucket=bucket, key=key, version_id=version_id, bypass_governance=bypass_governance
        )
        return await self.rpc.send(routes.DELETE_OBJECT, req)

    # multipart
    async def begin_upload(self, req: BeginUploadRequest) -> UploadInfo:
        return await self.rpc.send(routes.BEGIN_UPLOAD, req)

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        req = UploadRequest(bucket=bucket, key=key, upload_id=upload_id)
        return await self.rpc.send(routes.GET_UPLOAD, req)

    async def begin_part(self, req: BeginPartRequest) -> Placement:
        return await self.rpc.send(routes.BEGIN_PART, req)

    async def commit_part(self, req: CommitPartRequest) -> None:
        await self.rpc.send(routes.COMMIT_PART, req)

    async def list_parts(self, req: ListPartsRequest) -> ListPartsResponse:
        return await self.rpc.send(routes.LIST_PARTS, req)

    async def complete_upload(self, req: CompleteUploadRequest) -> ObjectInfo:
        return await self.rpc.send(routes.COMPLETE_UPLOAD, req)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        req = UploadRequest(bucket=bucket, key=key, upload_id=upload_id)
        await self.rpc.send(routes.ABORT_UPLOAD, req)

    async def list_uploads(self, req: ListUploadsRequest) -> ListUploadsResponse:
        return await self.rpc.send(routes.LIST_UPLOADS, req)
