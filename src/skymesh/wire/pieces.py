"""Piece ids.

Each segment gets a random root piece id from the coordinator; the id of piece
``n`` is derived from it, so a node cannot tell which other pieces belong to the
same segment, and nobody can name a piece file by hand: ids are hex, never paths.
"""

from __future__ import annotations

import secrets

import blake3

PIECE_DOMAIN = b"skymesh/piece/v1"
PIECE_ID_HEX_LEN = 64
_HEX = frozenset("0123456789abcdef")


def new_root_piece_id() -> str:
    return secrets.token_hex(32)


def derive_piece_id(root_piece_id: str, piece_num: int) -> str:
    if not 0 <= piece_num < 65536:
        raise ValueError("piece number out of range")
    root = bytes.fromhex(root_piece_id)
    return blake3.blake3(PIECE_DOMAIN + root + piece_num.to_bytes(2, "big")).hexdigest()


def is_valid_piece_id(value: str) -> bool:
    """True for exactly 64 lowercase hex characters: the only names a node will store."""
    return len(value) == PIECE_ID_HEX_LEN and _HEX.issuperset(value)


def new_serial() -> str:
    return secrets.token_hex(16)
