"""The provider node: pieces on local disk, served only against signed orders.

- :mod:`skymesh.node.store`: :class:`~skymesh.node.store.PieceStore`, what the
  node asks of its piece store; :mod:`skymesh.node.diskstore`:
  :class:`~skymesh.node.diskstore.DiskPieceStore`, pieces on disk, each one file
  with its Merkle record (:mod:`skymesh.node.piecefile`).
- :mod:`skymesh.node.orders`: :class:`~skymesh.node.orders.OrderVerifier`, who may
  do what to which piece, and single-use serials that survive restarts.
- :mod:`skymesh.node.api`: the HTTP face (``/v1/pieces/...``).
- :mod:`skymesh.node.heartbeat`: joining the coordinator and heartbeats.
- :mod:`skymesh.node.compute` and :mod:`skymesh.node.batch`: with ``--compute``,
  inference requests and batch runs against signed inference and batch orders.
- :mod:`skymesh.node.service`: :class:`~skymesh.node.service.NodeService`, one
  lifecycle for all of the above.
"""
