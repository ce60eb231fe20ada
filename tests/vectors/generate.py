"""Write the codec's golden vectors: ``python tests/vectors/generate.py``.

The vectors pin the on-disk and on-wire formats (block encryption, key derivation,
wrapped keys, Merkle trees, RS fragments with their pyeclib headers, whole pieces).
tests/unit/test_codec_vectors.py recomputes them and compares, so any change to a
format, including one brought in by a library upgrade, fails a test. Regenerate
only for a deliberate format change, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from skymesh.codec import (
    DEFAULT_SCHEME,
    ErasureCoder,
    MerkleBuilder,
    RedundancyScheme,
    SegmentCipher,
    SegmentLayout,
    block_nonce,
    chunk_hashes,
    derive_bucket_key,
    encode_blocks,
    inclusion_proof,
    merkle_root,
)
from skymesh.codec.crypto import _SEAL_DOMAIN, _WRAP_DOMAIN, _seal_with_nonce

PATH = Path(__file__).with_name("codec.json")


def stream(label: str, n: int) -> bytes:
    """Fixed pseudo-random bytes, the same everywhere."""
    return hashlib.shake_256(label.encode()).digest(n)


def sha256(data: bytes | bytearray) -> str:
    return hashlib.sha256(data).hexdigest()


def build_vectors() -> dict[str, Any]:
    key = bytes(range(32))
    plaintext = stream("aes-block", 100)
    cipher = SegmentCipher(key, 7)
    aes_gcm_block = {
        "key": key.hex(),
        "segment": 7,
        "block": 3,
        "nonce": block_nonce(7, 3).hex(),
        "plaintext": plaintext.hex(),
        "ciphertext": cipher.encrypt_block(3, plaintext).hex(),
    }

    root_secret = stream("root-secret", 32)
    bucket_keys = [
        {
            "root_secret": root_secret.hex(),
            "project_id": project,
            "bucket": bucket,
            "key": derive_bucket_key(root_secret, project, bucket).hex(),
        }
        for project, bucket in [("proj-1", "photos"), ("ab", "c"), ("a", "bc"), ("π", "data")]
    ]

    kek = stream("kek", 32)
    data_key = stream("data-key", 32)
    nonce = stream("nonce", 12)
    context = b"bucket/object-key"
    wrapped = {
        "kek": kek.hex(),
        "data_key": data_key.hex(),
        "context": context.hex(),
        "nonce": nonce.hex(),
        "blob": _seal_with_nonce(kek, nonce, data_key, _WRAP_DOMAIN + context).hex(),
    }
    sealed_plain = b'{"size": 12345, "etag": "abc"}'
    sealed = {
        "key": kek.hex(),
        "plaintext": sealed_plain.hex(),
        "context": context.hex(),
        "nonce": nonce.hex(),
        "blob": _seal_with_nonce(kek, nonce, sealed_plain, _SEAL_DOMAIN + context).hex(),
    }

    merkle_data = stream("merkle", 5 * 1024 + 100)
    leaves = chunk_hashes(merkle_data, 1024)
    merkle = {
        "data_sha256": sha256(merkle_data),
        "data_len": len(merkle_data),
        "chunk_size": 1024,
        "leaves": [leaf.hex() for leaf in leaves],
        "root": merkle_root(leaves).hex(),
        "proofs": {str(i): [p.hex() for p in inclusion_proof(leaves, i)] for i in (0, 2, 5)},
        "empty_root": merkle_root([]).hex(),
    }

    stripe = stream("stripe", 1000)
    erasure = []
    for scheme in (DEFAULT_SCHEME, RedundancyScheme(4, 5, 6, 6), RedundancyScheme(2, 2, 3, 3)):
        coder = ErasureCoder(scheme)
        fragments = coder.encode(stripe)
        erasure.append(
            {
                "scheme": str(scheme),
                "stripe_sha256": sha256(stripe),
                "stripe_len": len(stripe),
                "fragment_size": coder.fragment_size(len(stripe)),
                "fragment_sha256": [sha256(f) for f in fragments],
            }
        )

    scheme = RedundancyScheme(4, 5, 6, 6)
    seg_plain = stream("segment", 3500)
    layout = SegmentLayout(len(seg_plain), 1000, scheme)
    pieces = encode_blocks(SegmentCipher(key, 1), ErasureCoder(scheme), layout, 0, seg_plain)
    roots = []
    for piece in pieces:
        builder = MerkleBuilder(1024)
        builder.update(piece)
        roots.append(builder.finish()[0].hex())
    segment = {
        "key": key.hex(),
        "segment": 1,
        "scheme": str(scheme),
        "block_size": 1000,
        "plaintext_sha256": sha256(seg_plain),
        "plain_size": len(seg_plain),
        "piece_size": layout.piece_size,
        "piece_sha256": [sha256(p) for p in pieces],
        "merkle_chunk_size": 1024,
        "piece_merkle_roots": roots,
    }

    return {
        "about": "skymesh codec golden vectors; written by tests/vectors/generate.py. "
        "Fixed inputs come from shake_256(label); fragments include pyeclib's 80-byte header.",
        "aes_gcm_block": aes_gcm_block,
        "bucket_keys": bucket_keys,
        "wrapped_key": wrapped,
        "sealed": sealed,
        "merkle": merkle,
        "erasure": erasure,
        "segment": segment,
    }


def main() -> None:
    PATH.write_text(json.dumps(build_vectors(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
