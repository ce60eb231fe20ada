"""Typed calls to the coordinator's project API: one method per route."""

from __future__ import annotations

import aiohttp

from skymesh.rpc import RpcClient
from skymesh.wire import messages as m


class Metainfo:
    """The coordinator as seen by one project (its API key)."""

    def __init__(self, coordinator_url: str, api_key: str, session: aiohttp.ClientSession):
        self.rpc = RpcClient(
            coordinator_url, session, headers={"Authorization": f"Bearer {api_key}"}
        )

    async def codec(self) -> m.CodecParams:
        return await self.rpc.call("/v1/codec", m.CodecParamsRequest(), m.CodecParams)

    # buckets
    async def create_bucket(
        self, name: str, region: str = "", acl: str = "private"
    ) -> m.BucketInfo:
        req = m.CreateBucketRequest(name=name, region=region, acl=acl)
        return await self.rpc.call("/v1/buckets/create", req, m.BucketInfo)

    async def get_bucket(self, name: str) -> m.BucketInfo:
        return await self.rpc.call("/v1/buckets/get", m.BucketRequest(name=name), m.BucketInfo)

    async def list_buckets(self) -> m.BucketList:
        return await self.rpc.call("/v1/buckets/list", None, m.BucketList)

    async def delete_bucket(self, name: str) -> None:
        await self.rpc.call("/v1/buckets/delete", m.BucketRequest(name=name), dict)

    # S3 slice B: bucket ACL, tagging, CORS; object metadata replacement
    async def bucket_config(self, name: str) -> m.BucketConfig:
        return await self.rpc.call("/v1/buckets/config", m.BucketRequest(name=name), m.BucketConfig)

    async def put_bucket_acl(self, name: str, acl: str) -> m.BucketConfig:
        req = m.PutBucketAclRequest(name=name, acl=acl)
        return await self.rpc.call("/v1/buckets/put-acl", req, m.BucketConfig)

    async def put_bucket_tagging(self, name: str, tags: list[m.Tag] | None) -> m.BucketConfig:
        req = m.PutBucketTaggingRequest(name=name, tags=tags)
        return await self.rpc.call("/v1/buckets/put-tagging", req, m.BucketConfig)

    async def put_bucket_cors(self, name: str, rules: list[m.CorsRule] | None) -> m.BucketConfig:
        req = m.PutBucketCorsRequest(name=name, rules=rules)
        return await self.rpc.call("/v1/buckets/put-cors", req, m.BucketConfig)

    # S3 versioning
    async def put_bucket_versioning(self, name: str, status: str) -> m.BucketConfig:
        req = m.PutBucketVersioningRequest(name=name, status=status)
        return await self.rpc.call("/v1/buckets/put-versioning", req, m.BucketConfig)

    async def delete_objects(self, req: m.DeleteObjectsRequest) -> m.DeleteObjectsResponse:
        return await self.rpc.call("/v1/objects/delete-many", req, m.DeleteObjectsResponse)

    async def list_versions(self, req: m.ListVersionsRequest) -> m.ListVersionsResponse:
        return await self.rpc.call("/v1/objects/versions", req, m.ListVersionsResponse)

    async def update_metadata(self, req: m.UpdateObjectMetadataRequest) -> m.ObjectInfo:
        return await self.rpc.call("/v1/objects/update-metadata", req, m.ObjectInfo)

    # objects
    async def begin_object(self, req: m.BeginObjectRequest) -> m.BeginObjectResponse:
        return await self.rpc.call("/v1/objects/begin", req, m.BeginObjectResponse)

    async def begin_segment(self, req: m.BeginSegmentRequest) -> m.Placement:
        return await self.rpc.call("/v1/segments/begin", req, m.Placement)

    async def commit_segment(self, req: m.CommitSegmentRequest) -> None:
        await self.rpc.call("/v1/segments/commit", req, dict)

    async def commit_object(self, req: m.CommitObjectRequest) -> m.ObjectInfo:
        return await self.rpc.call("/v1/objects/commit", req, m.ObjectInfo)

    async def put_inline(self, req: m.PutInlineRequest) -> m.ObjectInfo:
        return await self.rpc.call("/v1/objects/put-inline", req, m.ObjectInfo)

    async def head_object(
        self, bucket: str, key: str, version_id: str = "", *, delete_markers: bool = False
    ) -> m.ObjectInfo:
        req = m.ObjectRequest(
            bucket=bucket, key=key, version_id=version_id, delete_markers=delete_markers
        )
        return await self.rpc.call("/v1/objects/head", req, m.ObjectInfo)

    async def download(self, req: m.DownloadRequest) -> m.DownloadResponse:
        return await self.rpc.call("/v1/objects/download", req, m.DownloadResponse)

    async def list_objects(self, req: m.ListObjectsRequest) -> m.ListObjectsResponse:
        return await self.rpc.call("/v1/objects/list", req, m.ListObjectsResponse)

    async def delete_object(
        self, bucket: str, key: str, version_id: str = ""
    ) -> m.DeleteObjectResponse:
        req = m.ObjectRequest(bucket=bucket, key=key, version_id=version_id)
        return await self.rpc.call("/v1/objects/delete", req, m.DeleteObjectResponse)

    # multipart
    async def begin_upload(self, req: m.BeginUploadRequest) -> m.UploadInfo:
        return await self.rpc.call("/v1/uploads/begin", req, m.UploadInfo)

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> m.UploadInfo:
        req = m.UploadRequest(bucket=bucket, key=key, upload_id=upload_id)
        return await self.rpc.call("/v1/uploads/get", req, m.UploadInfo)

    async def begin_part(self, req: m.BeginPartRequest) -> m.Placement:
        return await self.rpc.call("/v1/uploads/begin-part", req, m.Placement)

    async def commit_part(self, req: m.CommitPartRequest) -> None:
        await self.rpc.call("/v1/uploads/commit-part", req, dict)

    async def list_parts(self, req: m.ListPartsRequest) -> m.ListPartsResponse:
        return await self.rpc.call("/v1/uploads/parts", req, m.ListPartsResponse)

    async def complete_upload(self, req: m.CompleteUploadRequest) -> m.ObjectInfo:
        return await self.rpc.call("/v1/uploads/complete", req, m.ObjectInfo)

    async def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        req = m.UploadRequest(bucket=bucket, key=key, upload_id=upload_id)
        await self.rpc.call("/v1/uploads/abort", req, dict)

    async def list_uploads(self, req: m.ListUploadsRequest) -> m.ListUploadsResponse:
        return await self.rpc.call("/v1/uploads/list", req, m.ListUploadsResponse)
