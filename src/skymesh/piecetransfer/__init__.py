"""Moving pieces to and from nodes: a library that no role owns.

:mod:`.exchange` sends a piece to its node and fetches byte ranges and hashes of
one; :mod:`.receipts` makes a node's receipt for a stored piece and holds the one
check of it. The client library stores and reads segments with it, the
coordinator's repair worker moves rebuilt pieces with it and checks segment
commits with its receipt check, and nodes sign their receipts with it. The wire
form (piece paths in :mod:`skymesh.wire.node`, the order header, the bodies) is
``docs/spec/node-protocol.md``.
"""
