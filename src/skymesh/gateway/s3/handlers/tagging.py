"""Object and bucket tagging, with S3's limits and error codes.

Object tags are sealed into the object's metadata with its data key: only the
owner's gateway reads them, a new version starts with the tags its PUT gives
(``x-amz-tagging``), and changing them re-seals the metadata in one coordinator
call that applies only to the version it was read from
(``Client.update_object_meta``). Bucket tags are bucket configuration and live in
a coordinator column, like the bucket's name.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from skymesh.client.objectmeta import ObjectMeta
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.small_body import read_small_body
from skymesh.gateway.s3.request import XML, S3Request
from skymesh.gateway.s3.xml import MAX_TAGGING_BODY, parse_tagging, tagging_xml
from skymesh.wire.metainfo import Tag

MAX_OBJECT_TAGS = 10
MAX_BUCKET_TAGS = 50
MAX_KEY_UNITS = 128  # UTF-16 code units, as AWS counts
MAX_VALUE_UNITS = 256
_PUNCTUATION = frozenset("+-=._:/@")


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _allowed_chars(text: str) -> bool:
    """AWS's tag alphabet: letters, numbers, spaces and ``+ - = . _ : / @``."""
    return all(c in _PUNCTUATION or unicodedata.category(c)[0] in "LNZ" for c in text)


def validate_tags(tags: Sequence[tuple[str, str]], limit: int) -> dict[str, str]:
    """Check a tag set against S3's rules; the tags as an ordered dict."""
    if len(tags) > limit:
        kind = "Object" if limit == MAX_OBJECT_TAGS else "Bucket"
        raise s3_error("InvalidTag", f"{kind} tags cannot be greater than {limit}")
    out: dict[str, str] = {}
    for key, value in tags:
        if key in out:
            raise s3_error(
                "InvalidTag", "Cannot provide multiple Tags with the same key", TagKey=key[:128]
            )
        if not 1 <= _utf16_units(key) <= MAX_KEY_UNITS:
            raise s3_error(
                "InvalidTag",
                f"The TagKey you have provided is invalid: 1 to {MAX_KEY_UNITS} characters",
            )
        if _utf16_units(value) > MAX_VALUE_UNITS:
            raise s3_error(
                "InvalidTag",
                f"The TagValue you have provided is invalid: at most {MAX_VALUE_UNITS} characters",
            )
        if key.lower().startswith("aws:"):
            raise s3_error("InvalidTag", "Your TagKey cannot be prefixed with aws:")
        if not _allowed_chars(key) or not _allowed_chars(value):
            raise s3_error(
                "InvalidTag",
                "Tags may hold letters, numbers, spaces and + - = . _ : / @ only",
            )
        out[key] = value
    return out


def tags_from_header(value: str | None) -> dict[str, str]:
    """``x-amz-tagging`` (URL query form, ``k1=v1&k2=v2``) as a checked tag set.

    A key without ``=`` (``k1``) is a tag with an empty value, as on S3.
    """
    if not value:
        return {}
    pairs = parse_qsl(value, keep_blank_values=True)
    return validate_tags(pairs, MAX_OBJECT_TAGS)


# ---------------------------------------------------------------- objects


async def get_object_tagging(req: S3Request) -> web.StreamResponse:
    obj = await req.client.head_object(req.bucket, req.key, req.query("versionId", "") or "")
    return web.Response(body=tagging_xml(list(obj.meta.tags.items())), content_type=XML)


async def _set_object_tags(req: S3Request, tags: dict[str, str]) -> web.StreamResponse:
    def change(meta: ObjectMeta) -> ObjectMeta:
        return msgspec.structs.replace(meta, tags=tags)

    await req.client.update_object_meta(
        req.bucket, req.key, change, req.query("versionId", "") or ""
    )
    return web.Response(status=200)


async def put_object_tagging(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, MAX_TAGGING_BODY)
    tags = validate_tags(parse_tagging(body), MAX_OBJECT_TAGS)
    return await _set_object_tags(req, tags)


async def delete_object_tagging(req: S3Request) -> web.StreamResponse:
    await _set_object_tags(req, {})
    return web.Response(status=204)


# ---------------------------------------------------------------- buckets


async def get_bucket_tagging(req: S3Request) -> web.StreamResponse:
    config = await req.client.metainfo.bucket_config(req.bucket)
    if config.tags is None:
        raise s3_error("NoSuchTagSet", BucketName=req.bucket)
    return web.Response(body=tagging_xml([(t.key, t.value) for t in config.tags]), content_type=XML)


async def put_bucket_tagging(req: S3Request) -> web.StreamResponse:
    body = await read_small_body(req, MAX_TAGGING_BODY)
    tags = validate_tags(parse_tagging(body), MAX_BUCKET_TAGS)
    await req.client.metainfo.put_bucket_tagging(
        req.bucket, [Tag(key=k, value=v) for k, v in tags.items()]
    )
    return web.Response(status=204)


async def delete_bucket_tagging(req: S3Request) -> web.StreamResponse:
    await req.client.metainfo.put_bucket_tagging(req.bucket, None)
    return web.Response(status=204)
