"""``GET /v1/usage`` tells a project key nothing about other projects, not even whether they exist.

Before: a project key asking about an unknown project got 404 ``no project``, about
a foreign one 403, so any tenant could probe which project ids and names exist.
Now both get the same 403; the admin still gets 404 for an unknown project.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from skymesh.errors import Forbidden, NotFound, SkymeshError
from skymesh.rpc import RpcClient
from skymesh.wire.metering import UsageSummary
from tests.unit.test_coordinator_support import running


async def _usage(client: RpcClient, query: str) -> UsageSummary:
    return await client.request("GET", f"/v1/usage?{query}", UsageSummary)


async def _refusal(client: RpcClient, query: str) -> tuple[type[Exception], int, str, str]:
    with pytest.raises(SkymeshError) as e:
        await _usage(client, query)
    err = e.value
    return type(err), err.status, err.code, err.message


async def test_foreign_and_unknown_projects_get_the_same_answer(
    tmp_path: Path, database_url: str
) -> None:
    async with running(tmp_path, database_url=database_url) as h:  # project "alpha"
        beta = await h.new_project("beta")
        await h.new_project("twin")
        await h.new_project("twin")  # a name two projects share
        alpha_id = h.project.project_id
        answers = {
            await _refusal(beta, f"project={alpha_id}"),  # alpha by id: exists, foreign
            await _refusal(beta, "project=alpha"),  # by name: exists, foreign
            await _refusal(beta, "project=twin"),  # a name of several: foreign
            await _refusal(beta, "project=" + "0" * 32),  # no such id
            await _refusal(beta, "project=nobody"),  # no such name
        }
        assert len(answers) == 1, answers
        ((kind, status, _, message),) = answers
        assert (kind, status) == (Forbidden, 403) and "only its own" in message

        # its own usage, by id or by name, and the admin's view are unchanged
        own = await _usage(h.client, "project=alpha")
        assert own.rows == [] and (await _usage(h.client, f"project={alpha_id}")).rows == []
        with pytest.raises(NotFound):
            await _usage(h.admin, "project=nobody")
