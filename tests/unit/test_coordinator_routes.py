"""The coordinator serves exactly the routes of ``wire.routes``, and the spec names each one."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from skymesh.errors import Forbidden, Unauthorized
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.metainfo import BucketRequest
from tests.unit.test_coordinator_support import running

SPEC = Path(__file__).resolve().parents[2] / "docs" / "spec" / "coordinator-api.md"


def declared() -> set[tuple[str, str]]:
    own = {(r.method, r.path) for r in routes.COORDINATOR_ROUTES}
    scoped = {(r.method, routes.SCOPE_PREFIX + r.path) for r in routes.BATCH_SCOPED}
    return own | scoped


async def test_coordinator_mounts_every_declared_route_and_nothing_else(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url, with_project=False) as h:
        mounted = h.service.table.mounted
        assert len(mounted) == len(set(mounted)), "a route mounted twice"
        assert set(mounted) == declared()
        # and aiohttp serves no path the table did not mount, but the console's pages
        served = {
            (r.method, r.resource.canonical)
            for r in h.service.table.app.router.routes()
            if r.resource is not None and r.method != "HEAD"
        }
        console = routes.CONSOLE_PATH
        assert h.service.table.pages == [console]
        pages = {("GET", console.rstrip("/")), ("GET", console + "{name}")}
        assert served == declared() | pages


async def test_caller_is_checked_before_the_body(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        nobody = RpcClient(h.service.url, h.session)
        # a project route without a key: 401 even though the body is garbage
        async with h.session.post(h.service.url + routes.GET_BUCKET.path, data=b"{") as resp:
            assert resp.status == 401
        with pytest.raises(Unauthorized):
            await nobody.send(routes.GET_BUCKET, BucketRequest(name="x"))
        # an admin route with a project's key
        with pytest.raises(Unauthorized):
            await h.client.send(routes.LIST_NODES, None)
        # a batch-scoped route without an order
        scoped = RpcClient(h.service.url + routes.SCOPE_PREFIX, h.session)
        with pytest.raises(Forbidden):
            await scoped.send(routes.CODEC, None)
        # the same route, with a key, at its own path
        assert (await h.client.send(routes.CODEC, None)).block_size > 0


def test_every_route_is_named_in_the_spec() -> None:
    text = SPEC.read_text()
    rows = re.findall(r"^\| ([A-Z, ]+) \| `([^`]+)` \|", text, re.M)
    named: set[tuple[str, str]] = set()
    for methods, path in rows:
        for method in methods.split(","):
            named.add((method.strip(), path.split("?")[0]))
    missing = {(r.method, r.path) for r in routes.COORDINATOR_ROUTES} - named
    assert not missing, f"docs/spec/coordinator-api.md does not name {sorted(missing)}"
    unknown = named - {(r.method, r.path) for r in routes.COORDINATOR_ROUTES}
    assert not {p for p in unknown if not p[1].startswith(routes.SCOPE_PREFIX)}, unknown


async def test_send_fills_path_parameters(database_url: str, tmp_path: Path) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        routing = await h.admin.send(
            routes.GET_ROUTING, None, params={"project": h.project.project_id}
        )
        assert routing.project_id == h.project.project_id
        assert isinstance(h.session, aiohttp.ClientSession)
