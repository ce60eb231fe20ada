"""Golden vectors: any change to a stored or wire format fails here.

If a change is deliberate, rerun ``python tests/vectors/generate.py`` and say so in
the commit: stored pieces, wrapped keys and Merkle roots written before it will no
longer read back the same way.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from skymesh.codec import (
    ErasureCoder,
    RedundancyScheme,
    SegmentCipher,
    SegmentLayout,
    decode_blocks,
    encode_blocks,
    open_sealed,
    unwrap_key,
    verify_inclusion,
)

VECTORS = Path(__file__).parents[1] / "vectors"


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location("codec_vectors_generate", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STORED: dict[str, Any] = json.loads((VECTORS / "codec.json").read_text())
FRESH: dict[str, Any] = load_generator().build_vectors()


@pytest.mark.parametrize("section", sorted(STORED))
def test_vectors_unchanged(section: str) -> None:
    assert FRESH[section] == STORED[section]


def test_stored_wrapped_key_and_sealed_blob_still_open() -> None:
    w = STORED["wrapped_key"]
    assert unwrap_key(
        bytes.fromhex(w["kek"]), bytes.fromhex(w["blob"]), bytes.fromhex(w["context"])
    ) == (bytes.fromhex(w["data_key"]))
    s = STORED["sealed"]
    assert open_sealed(
        bytes.fromhex(s["key"]), bytes.fromhex(s["blob"]), bytes.fromhex(s["context"])
    ) == (bytes.fromhex(s["plaintext"]))


def test_stored_block_decrypts() -> None:
    v = STORED["aes_gcm_block"]
    cipher = SegmentCipher(bytes.fromhex(v["key"]), v["segment"])
    assert cipher.decrypt_block(v["block"], bytes.fromhex(v["ciphertext"])) == bytes.fromhex(
        v["plaintext"]
    )


def test_stored_merkle_proofs_verify() -> None:
    m = STORED["merkle"]
    leaves = [bytes.fromhex(x) for x in m["leaves"]]
    for index, proof in m["proofs"].items():
        i = int(index)
        assert verify_inclusion(
            bytes.fromhex(m["root"]), i, len(leaves), leaves[i], [bytes.fromhex(p) for p in proof]
        )


def test_segment_vector_decodes_from_parity() -> None:
    gen = load_generator()
    v = STORED["segment"]
    scheme = RedundancyScheme.parse(v["scheme"])
    plaintext = gen.stream("segment", v["plain_size"])
    layout = SegmentLayout(v["plain_size"], v["block_size"], scheme)
    cipher = SegmentCipher(bytes.fromhex(v["key"]), v["segment"])
    coder = ErasureCoder(scheme)
    pieces = encode_blocks(cipher, coder, layout, 0, plaintext)
    blocks = range(layout.block_count)
    assert (
        decode_blocks(cipher, coder, layout, blocks, {i: pieces[i] for i in (2, 3, 4, 5)})
        == plaintext
    )
