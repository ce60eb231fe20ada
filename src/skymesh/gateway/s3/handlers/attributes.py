"""GetObjectAttributes: an object's ETag, checksums, parts, storage class and size.

Everything comes from the object's record and its sealed metadata; no byte of
the object is read. Parts are those of a multipart object, numbered 1..N in the
order they were joined (as ``partNumber`` reads number them), with the checksum
each was uploaded with; a simple object has no ``ObjectParts``, as on S3.
"""

from __future__ import annotations

from aiohttp import web

from skymesh.client.client import DeleteMarkerError
from skymesh.gateway.s3.errors import s3_error
from skymesh.gateway.s3.handlers.checksums import ALGORITHMS
from skymesh.gateway.s3.handlers.encryption import customer_key, response_headers
from skymesh.gateway.s3.handlers.objects import (
    delete_marker_error,
    version_headers,
    version_query,
)
from skymesh.gateway.s3.request import MAX_INT_PARAM, XML, S3Request
from skymesh.gateway.s3.xml import AttributeParts, http_date, object_attributes_xml

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
ATTRIBUTES_HEADER = "x-amz-object-attributes"
MAX_PARTS = 1000


def requested_attributes(req: S3Request) -> set[str]:
    """The attributes ``x-amz-object-attributes`` names (comma-separated, possibly
    over several headers); none, or one S3 does not know, is InvalidArgument."""
    names = {
        name.strip()
        for value in req.http.headers.getall(ATTRIBUTES_HEADER, [])
        for name in value.split(",")
        if name.strip()
    }
    if not names:
        raise s3_error(
            "InvalidArgument",
            f"{ATTRIBUTES_HEADER} must name at least one of {', '.join(ATTRIBUTES)}",
            ArgumentName=ATTRIBUTES_HEADER,
        )
    unknown = sorted(names - set(ATTRIBUTES))
    if unknown:
        raise s3_error(
            "InvalidArgument",
            f"Invalid attribute name specified: {unknown[0][:64]}",
            ArgumentName=ATTRIBUTES_HEADER,
            ArgumentValue=unknown[0][:64],
        )
    return names


def _int_header(req: S3Request, name: str, default: int) -> int:
    """``x-amz-max-parts`` and ``x-amz-part-number-marker``: ASCII digits in int32."""
    raw = req.http.headers.get(name)
    if raw is None:
        return default
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > MAX_INT_PARAM:
        raise s3_error(
            "InvalidArgument",
            f"Provided {name} not an integer or within integer range",
            ArgumentName=name,
            ArgumentValue=raw[:64],
        )
    return int(raw)


def _split(stored: str) -> tuple[str, str] | None:
    alg, _, value = stored.partition(":")
    return (alg, value) if value and alg in ALGORITHMS else None


async def get_object_attributes(req: S3Request) -> web.StreamResponse:
    wanted = requested_attributes(req)
    max_parts = min(MAX_PARTS, _int_header(req, "x-amz-max-parts", MAX_PARTS))
    marker = _int_header(req, "x-amz-part-number-marker", 0)
    customer = customer_key(req)
    try:
        obj = await req.client.head_object(req.bucket, req.key, version_query(req))
    except DeleteMarkerError as e:
        raise delete_marker_error(e) from e
    req.client.check_customer_key(obj, customer)
    info, meta = obj.info, obj.meta
    parts: AttributeParts | None = None
    if "ObjectParts" in wanted and meta.parts:
        total = len(meta.parts)
        numbers = range(marker + 1, min(total, marker + max_parts) + 1)
        checksums = meta.part_checksums
        parts = AttributeParts(
            total=total,
            part_number_marker=marker,
            next_part_number_marker=numbers[-1] if numbers else marker,
            max_parts=max_parts,
            is_truncated=bool(numbers) and numbers[-1] < total,
            parts=[
                (
                    n,
                    meta.parts[n - 1],
                    _split(checksums[n - 1]) if n <= len(checksums) else None,
                )
                for n in numbers
            ],
        )
    body = object_attributes_xml(
        etag=info.etag if "ETag" in wanted else None,
        checksums=(
            [(alg, v) for alg, v in meta.checksums.items() if alg in ALGORITHMS]
            if "Checksum" in wanted
            else None
        ),
        parts=parts,
        storage_class="STANDARD" if "StorageClass" in wanted else None,
        size=info.size if "ObjectSize" in wanted else None,
    )
    resp = web.Response(body=body, content_type=XML)
    resp.headers["Last-Modified"] = http_date(info.created_at)
    resp.headers.update(version_headers(info))
    resp.headers.update(response_headers(customer))
    return resp
