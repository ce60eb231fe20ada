"""The administrator's projects and keys on a real coordinator (coordinator/projects.py),
on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.coordinator.db.schema import project_usage_hourly
from skymesh.errors import BadRequest, Conflict, NotFound
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.inference import CheckInferenceKeyRequest
from skymesh.wire.metainfo import BucketRequest, CreateBucketRequest, CreateProjectRequest
from skymesh.wire.projects import CreateKeysRequest, KeyList
from tests.unit.test_coordinator_support import running


async def test_keys_expire_revoke_and_a_project_with_buckets_is_kept(
    database_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, database_url=database_url) as h:
        alpha = {"project": "alpha"}
        made = await h.admin.send(
            routes.CREATE_KEYS,
            CreateKeysRequest(scope="all", expires_in=60, name="ci"),
            params=alpha,
        )
        assert made.project_id == h.project.project_id
        assert made.access_key is not None and made.inference_key is not None
        key_id = made.access_key.access_key_id
        assert key_id.startswith("SKY") and made.access_key.expires_at == h.clock.now + 60
        plain = await h.admin.send(routes.CREATE_KEYS, CreateKeysRequest(), params=alpha)
        assert plain.inference_key is None and plain.access_key is not None

        # the gateway's view: the caller's access keys, with their expiry
        own = {
            k.access_key_id: k for k in (await h.client.send(routes.PROJECT_ACCESS_KEYS, None)).keys
        }
        assert set(own) == {key_id, plain.access_key.access_key_id}
        assert own[key_id].live(h.clock.now) and not own[key_id].live(h.clock.now + 60)
        check = CheckInferenceKeyRequest(key=made.inference_key.key)
        await h.client.send(routes.CHECK_INFERENCE_KEY, check)
        h.clock.advance(61)
        with pytest.raises(NotFound):  # the inference key expired with it
            await h.client.send(routes.CHECK_INFERENCE_KEY, check)
        [info] = (await h.admin.send(routes.LIST_PROJECTS, None)).projects
        assert (info.name, info.live_access_keys, info.live_inference_keys) == ("alpha", 1, 0)

        revoked = await h.admin.send(
            routes.REVOKE_KEY, None, params={"key_id": plain.access_key.access_key_id}
        )
        assert revoked.access_keys[0].revoked_at == h.clock.now
        again = await h.admin.send(
            routes.REVOKE_KEY, None, params={"key_id": plain.access_key.access_key_id}
        )
        assert again == revoked
        with pytest.raises(NotFound):
            await h.admin.send(routes.REVOKE_KEY, None, params={"key_id": "SKYNONE"})
        listed = await h.admin.send(routes.PROJECT_KEYS, None, params=alpha)
        assert len(listed.access_keys) == 2 and len(listed.inference_keys) == 1
        assert listed == await h.admin.send(routes.LIST_KEYS, None)

        with pytest.raises(BadRequest):
            await h.admin.send(routes.CREATE_KEYS, CreateKeysRequest(expires_in=0), params=alpha)
        with pytest.raises(NotFound):
            await h.admin.send(routes.CREATE_KEYS, CreateKeysRequest(), params={"project": "no"})

        await h.client.send(routes.CREATE_BUCKET, CreateBucketRequest(name="kept"))
        with pytest.raises(Conflict, match="kept"):
            await h.admin.send(routes.DELETE_PROJECT, None, params=alpha)
        await h.client.send(routes.DELETE_BUCKET, BucketRequest(name="kept"))
        deleted = await h.admin.send(routes.DELETE_PROJECT, None, params=alpha)
        assert deleted.project_id == h.project.project_id
        assert (await h.admin.send(routes.LIST_PROJECTS, None)).projects == []
        assert (await h.admin.send(routes.LIST_KEYS, None)).access_keys == []


async def test_a_project_manages_its_own_keys_and_reads_its_own_usage(
    database_url: str, tmp_path: Path
) -> None:
    """The ``/v1/projects/self`` routes (the tenant console's, through a gateway): a project
    key makes, lists and revokes its own keys only, and reads its own usage series."""
    async with running(tmp_path, database_url=database_url) as h:
        beta_project = await h.admin.send(routes.CREATE_PROJECT, CreateProjectRequest(name="beta"))
        beta = RpcClient(
            h.service.url, h.session, {"Authorization": f"Bearer {beta_project.api_key}"}
        )
        s3 = await h.client.send(
            routes.CREATE_OWN_KEYS, CreateKeysRequest(expires_in=60, name="console")
        )
        assert s3.access_key is not None and s3.inference_key is None
        assert s3.access_key.project_id == h.project.project_id
        assert s3.access_key.expires_at == h.clock.now + 60
        inference = await h.client.send(
            routes.CREATE_OWN_KEYS, CreateKeysRequest(scope="inference")
        )
        assert inference.inference_key is not None and inference.access_key is None
        access_id = s3.access_key.access_key_id
        inference_id = inference.inference_key.info.key_id

        mine = await h.client.send(routes.OWN_KEYS, None)
        assert [k.access_key_id for k in mine.access_keys] == [access_id]
        assert [k.key_id for k in mine.inference_keys] == [inference_id]
        assert await beta.send(routes.OWN_KEYS, None) == KeyList(access_keys=[], inference_keys=[])
        # another project's key ids are as unknown as none, and stay live
        for key_id in (access_id, inference_id):
            with pytest.raises(NotFound):
                await beta.send(routes.REVOKE_OWN_KEY, None, params={"key_id": key_id})
        assert await h.client.send(routes.OWN_KEYS, None) == mine
        await h.client.send(
            routes.CHECK_INFERENCE_KEY, CheckInferenceKeyRequest(key=inference.inference_key.key)
        )

        revoked = await h.client.send(routes.REVOKE_OWN_KEY, None, params={"key_id": access_id})
        assert revoked.access_keys[0].revoked_at == h.clock.now
        assert revoked == await h.client.send(
            routes.REVOKE_OWN_KEY, None, params={"key_id": access_id}
        )
        [listed] = (await h.client.send(routes.PROJECT_ACCESS_KEYS, None)).keys
        assert not listed.live(h.clock.now)

        # usage: the project's hourly rollups, per UTC day, priced
        day = 86400 * (int(h.clock.now) // 86400 - 3)
        alpha_id, gb = h.project.project_id, 10**9
        rows = [
            (alpha_id, day, 3600 * gb, gb, 2 * gb, 1, 1000),
            (alpha_id, day + 3600, 3600 * gb, 2 * gb, 0, 2, 3000),
            (alpha_id, day + 86400, 7200 * gb, 2 * gb, gb, 0, 0),
            (beta_project.project_id, day, 3600 * gb, gb, gb, 5, 5),
        ]
        await h.service.db.write(
            lambda conn: conn.execute(
                project_usage_hourly.insert(),
                [
                    dict(
                        project_id=p, hour=hour, byte_seconds=bs, stored_bytes=st,
                        egress_bytes=eg, requests=rq, tokens=tk, tallied_at=hour + 3600,
                    )
                    for p, hour, bs, st, eg, rq, tk in rows
                ],
            )
        )  # fmt: skip
        query = {"since": str(day), "until": str(day + 3 * 86400)}
        usage = await h.client.send(routes.OWN_USAGE, None, query=query)
        assert [(p.start, p.byte_hours, p.stored_bytes, p.egress_bytes, p.requests, p.tokens)
                for p in usage.points] == [
            (day, 2 * gb, 2 * gb, 2 * gb, 3, 4000),
            (day + 86400, 2 * gb, 2 * gb, gb, 0, 0),
        ]  # fmt: skip
        total = usage.total
        assert (total.key, total.byte_hours, total.egress_bytes, total.tokens) == (
            alpha_id, 4 * gb, 3 * gb, 4000,
        )  # fmt: skip
        assert total.stored_bytes == 2 * gb
        prices = (
            usage.price_storage_gb_month,
            usage.price_egress_gb,
            usage.price_compute_1k_tokens,
        )
        expected = (4 / 730 * prices[0], 3 * prices[1], 4 * prices[2])
        assert (usage.storage_amount, usage.egress_amount, usage.compute_amount) == pytest.approx(
            expected
        )
        assert usage.amount == pytest.approx(sum(expected))
        hourly = await h.client.send(routes.OWN_USAGE, None, query={**query, "step": "3600"})
        assert [p.start for p in hourly.points] == [day, day + 3600, day + 86400]
        # beta sees only its own hour; nothing before the span
        assert [
            p.tokens for p in (await beta.send(routes.OWN_USAGE, None, query=query)).points
        ] == [5]
        later = await h.client.send(routes.OWN_USAGE, None, query={"since": str(day + 2 * 86400)})
        assert later.points == [] and later.amount == 0
        for bad in ({"step": "100"}, {"since": "5", "until": "4"}, {"step": "3600", "since": "0"}):
            with pytest.raises(BadRequest):
                await h.client.send(routes.OWN_USAGE, None, query=bad)
