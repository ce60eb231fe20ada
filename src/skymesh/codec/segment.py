"""The two transforms the data path runs per batch of blocks of a segment.

Upload: plaintext blocks -> AES-GCM stripes -> RS fragments, appended per piece.
Download: >= k pieces' bytes for some blocks -> stripes -> authenticated plaintext.

Batches keep Python overhead per byte low (one call per many 64 KiB stripes) while
letting the caller stream a segment without holding all of it. No output is ever
produced for a block whose tag failed: corrupt or mismatched pieces raise
IntegrityError, never return wrong bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from skymesh.codec.crypto import TAG_SIZE, SegmentCipher
from skymesh.codec.erasure import ErasureCoder, PieceBytes
from skymesh.codec.layout import SegmentLayout
from skymesh.errors import CodecError

Buffer = bytes | bytearray | memoryview


def _check_scheme(coder: ErasureCoder, layout: SegmentLayout) -> None:
    if coder.scheme != layout.scheme:
        raise CodecError(f"coder scheme {coder.scheme} does not match layout {layout.scheme}")


def _byte_view(data: Buffer) -> memoryview:
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _encode_plan(
    coder: ErasureCoder, layout: SegmentLayout, first_block: int, view: memoryview
) -> range:
    _check_scheme(coder, layout)
    count = -(-len(view) // layout.block_size)
    blocks = range(first_block, first_block + count)
    start, end = layout.plain_range(blocks)
    if end - start != len(view):
        raise CodecError(
            f"plaintext of {len(view)} bytes is not whole blocks from block {first_block}"
            f" (expected {end - start})"
        )
    return blocks


def encode_blocks(
    cipher: SegmentCipher,
    coder: ErasureCoder,
    layout: SegmentLayout,
    first_block: int,
    plaintext: Buffer,
) -> list[bytearray]:
    """Encrypt and erasure-code whole blocks from ``first_block`` on.

    Returns, per piece number, the fragment bytes of these blocks, ready to append
    to that piece's stream (they are bytes ``layout.piece_range(blocks)`` of it).
    """
    view = _byte_view(plaintext)
    piece_start, piece_end = layout.piece_range(_encode_plan(coder, layout, first_block, view))
    pieces = [bytearray(piece_end - piece_start) for _ in range(coder.total)]
    encode_blocks_into(cipher, coder, layout, first_block, view, pieces)
    return pieces


def encode_blocks_into(
    cipher: SegmentCipher,
    coder: ErasureCoder,
    layout: SegmentLayout,
    first_block: int,
    plaintext: Buffer,
    outs: Sequence[bytearray | memoryview],
) -> int:
    """encode_blocks writing piece p's fragments at the start of ``outs[p]``.

    Fresh buffers cost here: a new segment-sized output ran at half the speed of a
    reused one (page faults), so a streaming writer should keep one buffer per
    piece and pass it every batch. Returns the bytes written to each piece.
    """
    view = _byte_view(plaintext)
    blocks = _encode_plan(coder, layout, first_block, view)
    piece_start, piece_end = layout.piece_range(blocks)
    span = piece_end - piece_start
    if len(outs) != coder.total:
        raise CodecError(f"need {coder.total} output buffers, got {len(outs)}")
    targets = [_byte_view(out) for out in outs]
    if any(len(t) < span for t in targets):
        raise CodecError(f"output buffers must hold {span} bytes")
    lens = layout.stripe_lens(blocks)
    writer = coder.stripe_writer(max(lens, default=1))
    offset = 0
    pos = 0
    for block, stripe_len in zip(blocks, lens, strict=True):
        block_end = pos + stripe_len - TAG_SIZE
        cipher.encrypt_block_into(block, view[pos:block_end], writer.buffer(stripe_len))
        offset += writer.stage(stripe_len, targets, offset)
        pos = block_end
    writer.complete(targets)  # every parity fragment in one ISA-L call
    if offset != span:
        raise CodecError("fragment sizes disagree with the layout")  # pyeclib rule changed
    return span


def decode_blocks_into(
    cipher: SegmentCipher,
    coder: ErasureCoder,
    layout: SegmentLayout,
    blocks: range,
    pieces: Mapping[int, PieceBytes],
    out: bytearray | memoryview,
) -> int:
    """decode_blocks writing into ``out`` (at least as long as the blocks'
    plaintext), for callers that reuse a buffer; returns the bytes written. A
    piece may come as the parts it arrived in (:data:`~skymesh.codec.erasure.PieceBytes`).

    If it raises, ``out`` may hold unauthenticated bytes and must be discarded.
    """
    _check_scheme(coder, layout)
    start, end = layout.plain_range(blocks)
    target = _byte_view(out)
    if len(target) < end - start:
        raise CodecError(f"output buffer of {len(target)} bytes, need {end - start}")
    if not blocks:
        return 0
    pos = 0
    stripes = coder.iter_decode(pieces, layout.stripe_lens(blocks))
    for block, stripe in zip(blocks, stripes, strict=True):
        n = len(stripe) - TAG_SIZE
        cipher.decrypt_block_into(block, stripe, target[pos : pos + n])
        pos += n
    return pos


def decode_blocks(
    cipher: SegmentCipher,
    coder: ErasureCoder,
    layout: SegmentLayout,
    blocks: range,
    pieces: Mapping[int, PieceBytes],
) -> bytes:
    """Plaintext of ``blocks`` from >= k pieces' bytes for ``layout.piece_range(blocks)``.

    The output starts at ``layout.plain_range(blocks)[0]``; slice it for a ranged read.
    """
    _check_scheme(coder, layout)
    lens = layout.stripe_lens(blocks)
    if not lens:
        return b""  # nothing to read needs no pieces
    stripes = coder.iter_decode(pieces, lens)
    # Per-block plaintexts, then one join: as fast as decrypting into a bytearray
    # and copying that into bytes, and it never exposes unauthenticated bytes.
    # Callers that can reuse a buffer should use decode_blocks_into: fresh output
    # pages cost more than the AES.
    parts = [
        cipher.decrypt_block(block, stripe) for block, stripe in zip(blocks, stripes, strict=True)
    ]
    if len(parts) == 1:
        return parts[0]
    return b"".join(parts)
