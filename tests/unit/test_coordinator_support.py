"""Shared harness for the coordinator tests (no tests here).

A real coordinator on 127.0.0.1 port 0 with real SQLite under ``tmp_path``, driven
over HTTP with ``RpcClient``. Nodes are identities made here that sign their own
joins, heartbeats and piece receipts; no node process runs, and nothing of
``skymesh.node`` is imported.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import blake3

from skymesh.config import CoordinatorConfig
from skymesh.coordinator import CoordinatorService
from skymesh.coordinator.db.engine import DB_FILE
from skymesh.rpc import RpcClient
from skymesh.testing import sqlite_template
from skymesh.wire import routes
from skymesh.wire.identity import Identity
from skymesh.wire.metainfo import (
    BeginObjectRequest,
    BeginObjectResponse,
    BeginSegmentRequest,
    BucketInfo,
    CommitObjectRequest,
    CommitSegmentRequest,
    CommittedPiece,
    CreateBucketRequest,
    CreateProjectRequest,
    ObjectInfo,
    Placement,
    ProjectCredentials,
    SegmentCommit,
    SegmentPosition,
)
from skymesh.wire.node import Order, PieceAction, PieceReceipt
from skymesh.wire.registry import AdmitOperatorRequest, Heartbeat, JoinResponse, NodeInfo
from skymesh.wire.signing import Signed, open_signed, sign

ADMIN_TOKEN = "admin-secret-token"
GiB = 1024**3


class Clock:
    """A clock tests move by hand; starts at the real time so signed timestamps agree."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeNode:
    """A node identity that signs what a real node would."""

    region: str
    operator: str
    capacity: int = 100 * GiB
    used: int = 0
    identity: Identity = field(default_factory=Identity.generate)
    address: str = ""

    def __post_init__(self) -> None:
        # a loopback address of its own where nothing listens (port 9: discard)
        b = bytes.fromhex(self.identity.id[:4])
        self.address = self.address or f"http://127.1.{b[0]}.{b[1]}:9"

    @property
    def id(self) -> str:
        return self.identity.id

    def join_request(self, timestamp: float, **overrides: Any) -> Signed:
        info = {
            "node_id": self.id,
            "address": self.address,
            "region": self.region,
            "operator": self.operator,
            "capacity_bytes": self.capacity,
            "used_bytes": self.used,
            "version": "test",
            "timestamp": timestamp,
            **overrides,
        }
        return sign(self.identity, NodeInfo(**info))

    def heartbeat_request(self, timestamp: float) -> Signed:
        return sign(
            self.identity,
            Heartbeat(
                node_id=self.id,
                address=self.address,
                capacity_bytes=self.capacity,
                used_bytes=self.used,
                timestamp=timestamp,
            ),
        )

    def receipt(self, piece_id: str, size: int, serial: str = "0" * 32) -> Signed:
        return sign(
            self.identity,
            PieceReceipt(
                node_id=self.id,
                piece_id=piece_id,
                serial=serial,
                size=size,
                merkle_root=merkle_of(piece_id),
                stored_at=time.time(),
            ),
        )


def merkle_of(piece_id: str) -> bytes:
    """A stand-in Merkle root, recognisable per piece."""
    return blake3.blake3(piece_id.encode()).digest()


@dataclass
class Harness:
    service: CoordinatorService
    session: aiohttp.ClientSession
    clock: Clock
    admin: RpcClient
    project: ProjectCredentials
    client: RpcClient  # the project's
    nodes: dict[str, FakeNode] = field(default_factory=dict)
    # operator -> the regions it was admitted for, compute admission, its latest join token
    operators: dict[str, tuple[set[str], bool, str]] = field(default_factory=dict)

    @property
    def coordinator_key(self) -> bytes:
        return self.service.identity.public_key

    async def admit(self, operator: str, region: str, compute: bool = False) -> str:
        """A join token of ``operator`` allowing ``region`` (admitting it, or again with
        one more region or compute admission, as the administrator would)."""
        regions, computes, token = self.operators.get(operator, (set(), False, ""))
        if region not in regions or (compute and not computes):
            regions, computes = regions | {region}, computes or compute
            admission = await self.admin.send(
                routes.ADMIT_OPERATOR,
                AdmitOperatorRequest(name=operator, regions=sorted(regions), compute=computes),
            )
            token = admission.join_token
            self.operators[operator] = (regions, computes, token)
        return token

    async def join(
        self, node: FakeNode, *, compute: bool = False, **overrides: Any
    ) -> JoinResponse:
        """Join ``node`` with a token of its operator for its region, holding compute
        admission when ``compute`` (``overrides`` are NodeInfo fields, ``join_token``
        among them)."""
        if "join_token" not in overrides:
            region = overrides.get("region", node.region)
            overrides["join_token"] = await self.admit(node.operator, region, compute)
        resp = await self.client.send(routes.JOIN, node.join_request(self.clock.now, **overrides))
        self.nodes[node.id] = node
        return resp

    async def add_nodes(
        self, regions: Sequence[str], per_region: int = 2, capacity: int = 100 * GiB
    ) -> list[FakeNode]:
        added = []
        for region in regions:
            for i in range(per_region):
                node = FakeNode(region=region, operator=f"op-{region}-{i}", capacity=capacity)
                await self.join(node)
                added.append(node)
        return added

    async def new_project(self, name: str) -> RpcClient:
        creds = await self.admin.send(routes.CREATE_PROJECT, CreateProjectRequest(name=name))
        return RpcClient(
            self.service.url, self.session, {"Authorization": f"Bearer {creds.api_key}"}
        )

    async def create_bucket(self, name: str, client: RpcClient | None = None) -> BucketInfo:
        return await (client or self.client).send(
            routes.CREATE_BUCKET, CreateBucketRequest(name=name)
        )

    def store(
        self,
        placement: Placement,
        plain_size: int,
        position: SegmentPosition = SegmentPosition(),
        count: int | None = None,
    ) -> SegmentCommit:
        """Act as the client and its nodes: check the PUT orders, sign receipts."""
        pieces = []
        for addressed in placement.pieces[: count or placement.scheme.optimal]:
            order = open_signed(addressed.order, Order, trusted=[self.coordinator_key])
            assert order.action == PieceAction.PUT
            assert order.node_id == addressed.node_id
            assert order.max_bytes == placement.max_piece_size
            node = self.nodes[addressed.node_id]
            pieces.append(
                CommittedPiece(
                    piece_num=addressed.piece_num,
                    node_id=node.id,
                    receipt=node.receipt(order.piece_id, placement.max_piece_size, order.serial),
                )
            )
        return SegmentCommit(
            position=position,
            plain_size=plain_size,
            block_size=self.service.config.block_size,
            root_piece_id=placement.root_piece_id,
            scheme=placement.scheme,
            piece_size=placement.max_piece_size,
            pieces=pieces,
        )

    async def begin(
        self, bucket: str, key: str, first_size: int, client: RpcClient | None = None
    ) -> BeginObjectResponse:
        return await (client or self.client).send(
            routes.BEGIN_OBJECT,
            BeginObjectRequest(
                bucket=bucket,
                key=key,
                encrypted_key=b"k:" + key.encode(),
                first_segment_size=first_size,
            ),
        )

    async def upload(
        self, bucket: str, key: str, sizes: Sequence[int], etag: str = "etag"
    ) -> ObjectInfo:
        """A whole simple upload of piece segments of ``sizes``; the last rides on commit."""
        begun = await self.begin(bucket, key, sizes[0])
        placement = begun.placement
        commits = []
        for i, size in enumerate(sizes):
            if i:
                placement = await self.client.send(
                    routes.BEGIN_SEGMENT,
                    BeginSegmentRequest(
                        stream_id=begun.stream_id,
                        position=SegmentPosition(index=i),
                        plain_size=size,
                    ),
                )
            commits.append(self.store(placement, size, SegmentPosition(index=i)))
        for seg in commits[:-1]:
            await self.client.send(
                routes.COMMIT_SEGMENT, CommitSegmentRequest(stream_id=begun.stream_id, segment=seg)
            )
        return await self.client.send(
            routes.COMMIT_OBJECT,
            CommitObjectRequest(
                stream_id=begun.stream_id,
                bucket=bucket,
                key=key,
                size=sum(sizes),
                etag=etag,
                encrypted_metadata=b"meta",
                segments=commits[-1:],
            ),
        )


def coordinator_config(tmp_path: Path, **overrides: Any) -> CoordinatorConfig:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "coordinator"),
        "host": "127.0.0.1",
        "port": 0,
        "admin_token": ADMIN_TOKEN,
        "max_segment_size": 1024 * 1024,
        "compute_vetting_audits": 0,  # compute nodes serve at once, as on the planet
        **overrides,
    }
    return CoordinatorConfig(**values)


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *, with_project: bool = True, **overrides: Any
) -> AsyncIterator[Harness]:
    """A started coordinator, an admin client and one project's client."""
    clock = Clock()
    config = coordinator_config(tmp_path, **overrides)
    if not config.database_url:  # SQLite in its folder: a copy of a migrated database
        sqlite_template.seed(Path(config.data_dir) / DB_FILE)
    service = await CoordinatorService.open(config, clock=clock)
    await service.start()
    try:
        async with aiohttp.ClientSession() as session:
            admin = RpcClient(service.url, session, {"Authorization": f"Bearer {ADMIN_TOKEN}"})
            project = ProjectCredentials(project_id="", name="", api_key="none")
            if with_project:
                project = await admin.send(
                    routes.CREATE_PROJECT, CreateProjectRequest(name="alpha")
                )
            client = RpcClient(service.url, session, {"Authorization": f"Bearer {project.api_key}"})
            yield Harness(service, session, clock, admin, project, client)
    finally:
        await service.stop()


async def garbage(h: Harness) -> set[tuple[str, str]]:
    """(node id, piece id) of every piece queued for garbage collection."""
    import sqlalchemy as sa

    from skymesh.coordinator.db.schema import garbage_pieces

    rows = await h.service.db.read(
        lambda conn: conn.execute(
            sa.select(garbage_pieces.c.node_id, garbage_pieces.c.piece_id)
        ).all()
    )
    return {(r.node_id, r.piece_id) for r in rows}


def pieces_of(commit: SegmentCommit) -> set[tuple[str, str]]:
    """(node id, piece id) of a segment commit's pieces."""
    from skymesh.wire.pieces import derive_piece_id

    return {(p.node_id, derive_piece_id(commit.root_piece_id, p.piece_num)) for p in commit.pieces}
