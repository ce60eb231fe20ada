"""The S3 secret of an access key, derived from its project's root secret.

``skymesh keys create`` asks the coordinator for a new access key id, then makes the
secret here; every gateway that holds the project's root secret makes the same one
when the coordinator lists the id (``gateway/access_keys.py``). So the secret is
shared by the tenant and the gateways only: the coordinator, which must never learn
the root secret, learns no S3 secret either, and no secret travels over the network
but to the tenant. Revoking the id (or letting it expire) at the coordinator is what
ends the key: a gateway accepts only ids the coordinator lists as live.

A secret is 40 letters and digits, as AWS secrets are long: HMAC-SHA256 of the id
under the root secret (with a label of its own, so it never equals a bucket key),
read as a number in base 62.
"""

from __future__ import annotations

import hashlib
import hmac

_LABEL = b"skymesh s3 secret access key v1\x00"
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LENGTH = 40


def derive_s3_secret(root_secret_hex: str, access_key_id: str) -> str:
    """The secret access key of ``access_key_id`` in the project of ``root_secret_hex``."""
    mac = hmac.new(bytes.fromhex(root_secret_hex), _LABEL + access_key_id.encode(), hashlib.sha256)
    n = int.from_bytes(mac.digest(), "big")  # 256 bits; 40 base-62 digits hold 238 of them
    out = []
    for _ in range(LENGTH):
        n, d = divmod(n, 62)
        out.append(_DIGITS[d])
    return "".join(out)
