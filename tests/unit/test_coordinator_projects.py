"""The administrator's projects and keys on a real coordinator (coordinator/projects.py),
on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.errors import BadRequest, Conflict, NotFound
from skymesh.wire import routes
from skymesh.wire.inference import CheckInferenceKeyRequest
from skymesh.wire.metainfo import BucketRequest, CreateBucketRequest
from skymesh.wire.projects import CreateKeysRequest
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
