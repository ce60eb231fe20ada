"""What every metadata operation works with, and the placement of one segment."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import msgspec

from skymesh.codec import RedundancyScheme
from skymesh.config import CoordinatorConfig
from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.metainfo.roots import RootKey
from skymesh.coordinator.orders import OrderSigner
from skymesh.coordinator.overlay.placement import place_segment, placement_preference
from skymesh.coordinator.overlay.registry import Registry
from skymesh.coordinator.overlay.residency import residency
from skymesh.wire.metainfo import AddressedOrder, CodecParams, Placement, Scheme, Tag
from skymesh.wire.node import PieceAction
from skymesh.wire.pieces import derive_piece_id


@dataclass
class Metainfo:
    config: CoordinatorConfig
    db: Database
    registry: Registry
    orders: OrderSigner
    roots: RootKey  # issues root piece ids bound to (stream, part, index); checked at commit
    fixed_scheme: RedundancyScheme | None = None  # from config.scheme; None: by network size
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)

    @property
    def codec(self) -> CodecParams:
        return CodecParams(
            max_segment_size=self.config.max_segment_size,
            inline_threshold=self.config.inline_threshold,
            block_size=self.config.block_size,
        )

    async def place(
        self,
        plain_size: int,
        exclude: Collection[str] = (),
        *,
        stream_id: str,
        bucket: tuple[str, str | None],
        part: int = 0,
        index: int = 0,
    ) -> Placement:
        """Nodes and PUT orders for segment (``part``, ``index``) of ``stream_id``.

        ``bucket`` is the bucket's ``overlay.residency.bucket_placement``, read by the
        caller in the transaction that checks the bucket or the stream: as committed,
        and no round trip of its own.

        The root piece id commits to that stream and position: a commit of it
        anywhere else is refused. Only nodes inside the bucket's location
        constraint are chosen; a bucket tagged ``skymesh:placement=low-carbon`` prefers
        nodes of low carbon intensity among them (``overlay.placement``).
        """
        now = self.clock()
        constraint, tags = bucket
        where = residency(constraint, self.config.jurisdictions)
        low_carbon = tags is not None and placement_preference(
            [(t.key, t.value) for t in msgspec.json.decode(tags, type=list[Tag])]
        )
        plan = place_segment(
            await self.registry.placement_index(),
            plain_size=plain_size,
            block_size=self.config.block_size,
            now=now,
            offline_after=self.config.offline_after,
            exclude=exclude,
            fixed_scheme=self.fixed_scheme,
            rng=self.rng,
            new_node_fraction=self.config.new_node_fraction,
            residency=where,
            low_carbon=low_carbon,
        )
        root = self.roots.issue(stream_id, part, index)
        s = plan.scheme
        return Placement(
            root_piece_id=root,
            scheme=Scheme(k=s.k, repair=s.repair, optimal=s.optimal, total=s.total),
            max_piece_size=plan.piece_size,
            pieces=[
                AddressedOrder(
                    piece_num=num,
                    node_id=node.node_id,
                    address=node.address,
                    region=node.region,
                    order=self.orders.order(
                        node.node_id,
                        derive_piece_id(root, num),
                        PieceAction.PUT,
                        plan.piece_size,
                        now,
                    ),
                )
                for num, node in enumerate(plan.nodes)
            ],
        )
