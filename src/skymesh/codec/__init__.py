"""Pure transforms of the data path: encryption, erasure coding, Merkle trees, layout.

No I/O and no asyncio here, and nothing of skymesh but its errors, so every role
(and any third-party reader of the piece format) can use it as is.
"""

from skymesh.codec.crypto import (
    KEY_SIZE,
    NONCE_SIZE,
    TAG_SIZE,
    SegmentCipher,
    block_nonce,
    derive_bucket_key,
    derive_subkey,
    new_data_key,
    open_sealed,
    seal,
    unwrap_key,
    wrap_key,
)
from skymesh.codec.erasure import FRAGMENT_HEADER_SIZE, ErasureCoder, fragment_size_for
from skymesh.codec.layout import DEFAULT_BLOCK_SIZE, SegmentLayout, locate
from skymesh.codec.merkle import (
    DEFAULT_CHUNK_SIZE,
    MerkleBuilder,
    chunk_hashes,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    verify_chunks,
    verify_inclusion,
)
from skymesh.codec.scheme import DEFAULT_SCHEME, RedundancyScheme, scheme_for_network
from skymesh.codec.segment import (
    decode_blocks,
    decode_blocks_into,
    encode_blocks,
    encode_blocks_into,
)

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SCHEME",
    "FRAGMENT_HEADER_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "ErasureCoder",
    "MerkleBuilder",
    "RedundancyScheme",
    "SegmentCipher",
    "SegmentLayout",
    "block_nonce",
    "chunk_hashes",
    "decode_blocks",
    "decode_blocks_into",
    "derive_bucket_key",
    "derive_subkey",
    "encode_blocks",
    "encode_blocks_into",
    "fragment_size_for",
    "inclusion_proof",
    "leaf_hash",
    "locate",
    "merkle_root",
    "new_data_key",
    "open_sealed",
    "scheme_for_network",
    "seal",
    "unwrap_key",
    "verify_chunks",
    "verify_inclusion",
    "wrap_key",
]
