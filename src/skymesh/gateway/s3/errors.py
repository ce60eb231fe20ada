"""S3 errors: AWS's codes and HTTP statuses, mapped from ours at one edge.

Clients and SDKs branch on the ``Code`` element and the status (botocore retries 500
and 503, raises ``NoSuchKey`` as its own exception class, treats 301/307 as
redirects), so both must be exactly AWS's. One table, :data:`S3_ERRORS`, holds every
code we answer with; :func:`s3_error` builds an error from it and
:func:`from_skymesh_error` turns anything the rest of skymesh raised into one.
"""

from __future__ import annotations

from collections.abc import Mapping

from skymesh.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    InsufficientStorage,
    NotFound,
    PreconditionFailed,
    SkymeshError,
    TooLarge,
    Unauthorized,
    Unavailable,
)

# code -> (HTTP status, AWS's default message)
S3_ERRORS: dict[str, tuple[int, str]] = {
    "AccessDenied": (403, "Access Denied"),
    "AccountProblem": (
        403,
        "There is a problem with your account that prevents the operation from "
        "completing successfully.",
    ),
    "AuthorizationHeaderMalformed": (400, "The authorization header is malformed."),
    "AuthorizationQueryParametersError": (
        400,
        "The query-string authentication parameters are malformed.",
    ),
    "BadDigest": (
        400,
        "The Content-MD5 or checksum value that you specified did not match what the "
        "server received.",
    ),
    "AccessControlListNotSupported": (400, "The bucket does not allow ACLs"),
    "BucketAlreadyExists": (
        409,
        "The requested bucket name is not available. The bucket namespace is shared by "
        "all users of the system. Please select a different name and try again.",
    ),
    "BucketAlreadyOwnedByYou": (
        409,
        "Your previous request to create the named bucket succeeded and you already own it.",
    ),
    "BucketNotEmpty": (409, "The bucket you tried to delete is not empty."),
    "ConditionalRequestConflict": (
        409,
        "A conflicting operation occurred. If using PutObject you can retry the request.",
    ),
    "EntityTooLarge": (400, "Your proposed upload exceeds the maximum allowed object size."),
    "EntityTooSmall": (
        400,
        "Your proposed upload is smaller than the minimum allowed object size.",
    ),
    "ExpiredToken": (400, "The provided token has expired."),
    "IllegalLocationConstraintException": (
        400,
        "The specified location constraint is not allowed for this endpoint.",
    ),
    "IncompleteBody": (
        400,
        "You did not provide the number of bytes specified by the Content-Length HTTP header.",
    ),
    "InternalError": (500, "We encountered an internal error. Please try again."),
    "InvalidAccessKeyId": (
        403,
        "The AWS Access Key Id you provided does not exist in our records.",
    ),
    "InvalidArgument": (400, "Invalid Argument"),
    "InvalidBucketName": (400, "The specified bucket is not valid."),
    "InvalidBucketAclWithObjectOwnership": (
        400,
        "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting",
    ),
    "InvalidBucketState": (409, "The request is not valid with the current state of the bucket."),
    "InvalidDigest": (400, "The Content-MD5 you specified is not valid."),
    "InvalidLocationConstraint": (400, "The specified location constraint is not valid."),
    "InvalidObjectState": (403, "The operation is not valid for the current state of the object."),
    "InvalidPart": (
        400,
        "One or more of the specified parts could not be found. The part may not have "
        "been uploaded, or the specified entity tag may not match the part's entity tag.",
    ),
    "InvalidPartNumber": (416, "The requested partnumber is not satisfiable"),
    "InvalidPartOrder": (
        400,
        "The list of parts was not in ascending order. Parts must be ordered by part number.",
    ),
    "InvalidRange": (416, "The requested range is not satisfiable"),
    "InvalidRequest": (400, "Invalid Request"),
    "InvalidStorageClass": (400, "The storage class you specified is not valid."),
    "InvalidTag": (400, "The tag provided was not a valid tag."),
    "InvalidToken": (400, "The provided token is malformed or otherwise invalid."),
    "InvalidURI": (400, "Couldn't parse the specified URI."),
    "KeyTooLongError": (400, "Your key is too long."),
    "MalformedACLError": (
        400,
        "The XML you provided was not well-formed or did not validate against our "
        "published schema.",
    ),
    "InvalidPolicyDocument": (
        400,
        "The content of the form does not meet the conditions specified in the policy document.",
    ),
    "MalformedPOSTRequest": (
        400,
        "The body of your POST request is not well-formed multipart/form-data.",
    ),
    "MalformedTrailerError": (
        400,
        "The request contained trailing data that was not well-formed or did not conform "
        "to our published schema.",
    ),
    "MalformedXML": (
        400,
        "The XML you provided was not well-formed or did not validate against our "
        "published schema.",
    ),
    "MaxPostPreDataLengthExceeded": (
        400,
        "Your POST request fields preceding the upload file were too large.",
    ),
    "MalformedPolicy": (400, "Policies must be valid JSON and the first byte must be '{'"),
    "MaxMessageLengthExceeded": (400, "Your request was too big."),
    "MetadataTooLarge": (
        400,
        "Your metadata headers exceed the maximum allowed metadata size.",
    ),
    "MethodNotAllowed": (405, "The specified method is not allowed against this resource."),
    "MissingContentLength": (411, "You must provide the Content-Length HTTP header."),
    "MissingRequestBodyError": (400, "Request Body is empty."),
    "NoSuchBucket": (404, "The specified bucket does not exist."),
    "NoSuchBucketPolicy": (404, "The bucket policy does not exist."),
    "NoSuchCORSConfiguration": (404, "The CORS configuration does not exist."),
    "NoSuchKey": (404, "The specified key does not exist."),
    "NoSuchVersion": (404, "The specified version does not exist."),
    "NoSuchPublicAccessBlockConfiguration": (
        404,
        "The public access block configuration was not found",
    ),
    "NoSuchLifecycleConfiguration": (404, "The lifecycle configuration does not exist."),
    "NoSuchTagSet": (404, "The TagSet does not exist."),
    "NoSuchUpload": (
        404,
        "The specified upload does not exist. The upload ID may be invalid, or the upload "
        "may have been aborted or completed.",
    ),
    "NoSuchWebsiteConfiguration": (
        404,
        "The specified bucket does not have a website configuration.",
    ),
    "NotImplemented": (
        501,
        "A header you provided implies functionality that is not implemented.",
    ),
    "NotModified": (304, "Not Modified"),
    "NoSuchObjectLockConfiguration": (
        404,
        "The specified object does not have a ObjectLock configuration",
    ),
    "ObjectLockConfigurationNotFoundError": (
        404,
        "Object Lock configuration does not exist for this bucket.",
    ),
    "OwnershipControlsNotFoundError": (404, "The bucket ownership controls were not found"),
    "OperationAborted": (
        409,
        "A conflicting conditional operation is currently in progress against this "
        "resource. Try again.",
    ),
    "PolicyTooLarge": (400, "Policy exceeds the maximum allowed document size."),
    "PreconditionFailed": (412, "At least one of the pre-conditions you specified did not hold."),
    "RequestTimeTooSkewed": (
        403,
        "The difference between the request time and the current time is too large.",
    ),
    "RequestTimeout": (
        400,
        "Your socket connection to the server was not read from or written to within "
        "the timeout period.",
    ),
    "ServerSideEncryptionConfigurationNotFoundError": (
        404,
        "The server side encryption configuration was not found.",
    ),
    "ServiceUnavailable": (503, "The service is unavailable. Please retry."),
    "SignatureDoesNotMatch": (
        403,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    ),
    "SlowDown": (503, "Please reduce your request rate."),
    "TooManyBuckets": (400, "You have attempted to create more buckets than allowed."),
    "UnexpectedContent": (400, "This request does not support content."),
    "XAmzContentSHA256Mismatch": (
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    ),
}


class S3Error(SkymeshError):
    """An error as an S3 client sees it: AWS code, HTTP status, message, extra fields.

    ``fields`` become extra child elements of ``<Error>`` (``BucketName``, ``Key``,
    ``UploadId``, ``ArgumentName``...), which SDKs show to users and which tools such as
    ``aws s3`` print. ``headers`` are response headers the error implies (``Allow``
    for 405, ``Retry-After`` for 503). ``resource`` overrides the request path in the
    ``<Resource>`` element.
    """

    code = "InternalError"
    status = 500

    def __init__(
        self,
        code: str,
        message: str = "",
        *,
        status: int | None = None,
        resource: str | None = None,
        fields: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        known = S3_ERRORS.get(code)
        if status is None:
            if known is None:
                raise ValueError(f"unknown S3 error code {code!r}: pass status explicitly")
            status = known[0]
        if not message and known is not None:
            message = known[1]
        super().__init__(message or code, code=code, status=status)
        self.resource = resource
        self.fields: dict[str, str] = {k: str(v) for k, v in (fields or {}).items()}
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return f"S3Error({self.code!r}, {self.message!r}, status={self.status})"


def s3_error(code: str, message: str = "", **fields: str | int) -> S3Error:
    """Build an :class:`S3Error` for a code in :data:`S3_ERRORS`, with extra XML fields.

    Unknown codes raise :class:`ValueError`: a typo must fail in tests, not reach a
    client as a made-up code with a guessed status.
    """
    return S3Error(code, message, fields=fields)


_INTERNAL_MESSAGE = S3_ERRORS["InternalError"][1]


def from_skymesh_error(err: BaseException) -> S3Error:
    """Map any error to the S3 error a client should see.

    An :class:`S3Error` passes through. A :class:`SkymeshError` whose ``code`` is an S3
    code (the coordinator raises ``NoSuchBucket``, ``NoSuchUpload``, ``InvalidPart``...
    as plain SkymeshErrors) keeps its code and message with AWS's status. Otherwise the
    class decides. Internal errors get AWS's generic message, not ours: their text can
    name nodes, paths or database details; the gateway logs the original.
    """
    if isinstance(err, S3Error):
        return err
    if not isinstance(err, SkymeshError):
        return S3Error("InternalError", _INTERNAL_MESSAGE)
    if err.code in S3_ERRORS and err.code != "InternalError":
        return S3Error(err.code, _own_message(err))
    if isinstance(err, Unavailable):
        return S3Error("ServiceUnavailable", _own_message(err))
    if isinstance(err, InsufficientStorage):
        # AWS has no 507; 503 makes SDKs back off and retry, which is the right
        # reaction while nodes join or garbage collection frees room.
        return S3Error(
            "ServiceUnavailable",
            "The network does not have enough free storage for this request. Please retry later.",
        )
    if isinstance(err, Unauthorized | Forbidden):
        return S3Error("AccessDenied", _own_message(err))
    if isinstance(err, NotFound):
        return S3Error("NoSuchKey", _own_message(err))
    if isinstance(err, PreconditionFailed):
        return S3Error("PreconditionFailed", _own_message(err))
    if isinstance(err, TooLarge):
        return S3Error("EntityTooLarge", _own_message(err))
    if isinstance(err, Conflict):
        return S3Error("OperationAborted", _own_message(err))
    if isinstance(err, BadRequest):
        return S3Error("InvalidRequest", _own_message(err))
    # The rest (CodecError, IntegrityError: stored data failed a check; config
    # errors) is nothing the client did.
    return S3Error("InternalError", _INTERNAL_MESSAGE)


def _own_message(err: SkymeshError) -> str:
    """The error's own message, or "" when it only fell back to its class docstring."""
    message = err.message
    if message == (type(err).__doc__ or type(err).code):
        return ""
    return message
