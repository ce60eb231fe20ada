"""The OpenAI API takes a project's revocable inference API keys, not its S3 secret.

Before: the bearer key of ``/v1/*`` was the project's long-term S3 secret access
key, so every program calling a model held the secret that also signs S3
requests, and nothing could be revoked short of replacing it. Now a project makes
inference keys at the coordinator (only their SHA-256 is stored), a gateway checks
each with the coordinator and trusts the answer for ``inference_key_ttl`` seconds,
and the S3 secret is refused unless ``openai_accept_s3_secret`` is set.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from skymesh.admin import InferenceKeys
from skymesh.cli import app
from skymesh.config import Credential, GatewayConfig, write_credentials
from skymesh.coordinator.db.schema import inference_keys
from skymesh.errors import NotFound
from skymesh.gateway.service import GatewayService
from skymesh.testing.planet import Planet, PlanetThread
from tests.conftest import ON_BOTH_ENGINES, planet_config

openai = pytest.importorskip("openai")

T = TypeVar("T")
TTL = 0.5  # the gateway's inference_key_ttl here: revocation shows within this long


pytestmark = ON_BOTH_ENGINES  # keys are database rows: revoked through one, refused by all


@pytest.fixture(scope="module")
def net(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    planet_engine: str,
) -> Iterator[PlanetThread]:
    config = planet_config(
        request, planet_engine, node_count=4, gateway_overrides={"inference_key_ttl": TTL}
    )
    thread = PlanetThread(Planet(tmp_path_factory.mktemp("keys"), config)).start()
    try:
        yield thread
    finally:
        thread.stop()


def _as_project(
    net: PlanetThread, cred: Credential, call: Callable[[InferenceKeys], Awaitable[T]]
) -> T:
    """``call`` with the project's inference keys at the coordinator."""
    coordinator = net.planet.coordinator
    assert coordinator is not None

    async def go() -> T:
        async with aiohttp.ClientSession() as s:
            return await call(InferenceKeys(coordinator.url, cred.api_key, s))

    return net.run(go())


def _openai(endpoint: str, key: str) -> Any:
    return openai.OpenAI(base_url=endpoint + "/v1", api_key=key, max_retries=0)


def _raw(net: PlanetThread, key: str, path: str = "/v1/models") -> tuple[int, Any]:
    async def go() -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(net.planet.endpoint + path, headers={"Authorization": f"Bearer {key}"}) as r,
        ):
            return r.status, await r.json()

    return net.run(go())


def _credential(net: PlanetThread) -> Credential:
    cred = net.planet.credential
    assert cred is not None
    return cred


def test_the_s3_secret_is_refused_by_default_and_the_error_says_what_to_do(
    net: PlanetThread,
) -> None:
    secret = _credential(net).secret_access_key
    with pytest.raises(openai.AuthenticationError) as e:
        _openai(net.planet.endpoint, secret).models.list()
    assert e.value.status_code == 401
    status, body = _raw(net, secret)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"
    message = body["error"]["message"]
    assert "inference API key" in message and "openai_accept_s3_secret" in message
    # nothing it could reach: the files API refuses it too
    assert _raw(net, secret, "/v1/files")[0] == 401


def test_the_s3_secret_is_accepted_with_the_setting(net: PlanetThread, tmp_path: Path) -> None:
    coordinator = net.planet.coordinator
    assert coordinator is not None
    cred = _credential(net)
    legacy = GatewayService(
        GatewayConfig(
            data_dir=str(tmp_path / "gw"),
            port=0,
            coordinator_url=coordinator.url,
            openai_accept_s3_secret=True,
        ),
        credentials=[cred],
    )
    net.run(legacy.start())
    try:
        models = _openai(legacy.url, cred.secret_access_key).models.list()
        assert models.object == "list"
        # and inference keys work there too
        assert _openai(legacy.url, net.planet.inference_key).models.list().object == "list"
    finally:
        net.run(legacy.stop())


def test_a_created_key_works_with_the_openai_client_and_only_its_hash_is_stored(
    net: PlanetThread,
) -> None:
    cred = _credential(net)
    made = _as_project(net, cred, lambda k: k.create("notebook"))
    assert made.key.startswith(f"smi_{cred.project_id}_{made.info.key_id}_")
    client = _openai(net.planet.endpoint, made.key)
    assert client.models.list().object == "list"
    uploaded = client.files.create(file=("in.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    assert uploaded.id in {f.id for f in client.files.list().data}

    listed = {k.key_id: k for k in _as_project(net, cred, lambda k: k.list()).keys}
    assert listed[made.info.key_id].name == "notebook"
    assert listed[made.info.key_id].revoked_at is None

    coordinator = net.planet.coordinator
    assert coordinator is not None
    (row,) = net.run(
        coordinator.db.read(
            lambda conn: conn.execute(
                sa.select(inference_keys).where(inference_keys.c.key_id == made.info.key_id)
            ).all()
        )
    )
    assert row.key_hash == hashlib.sha256(made.key.encode()).digest()
    assert made.key not in {str(v) for v in row}


def test_a_revoked_key_stops_working_within_the_ttl(net: PlanetThread) -> None:
    cred = _credential(net)
    made = _as_project(net, cred, lambda k: k.create("to revoke"))
    client = _openai(net.planet.endpoint, made.key)
    assert client.models.list().object == "list"

    revoked = _as_project(net, cred, lambda k: k.revoke(made.info.key_id))
    assert revoked.revoked_at is not None
    assert not _as_project(net, cred, lambda k: k.is_live(made.key))
    deadline = time.monotonic() + TTL + 0.5
    time.sleep(TTL)
    while True:
        try:
            client.models.list()
        except openai.AuthenticationError:
            break
        assert time.monotonic() < deadline, "the revoked key still works past the TTL"
        time.sleep(0.05)
    # and stays refused; revoking again changes nothing
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    again = _as_project(net, cred, lambda k: k.revoke(made.info.key_id))
    assert again.revoked_at == revoked.revoked_at


def test_one_projects_key_cannot_act_for_another(net: PlanetThread) -> None:
    gateway = net.planet.gateway
    assert gateway is not None
    alpha = _credential(net)
    beta = net.run(net.planet.create_credential("beta"))
    gateway.add_credential(beta)
    alpha_key = net.planet.inference_key
    beta_made = _as_project(net, beta, lambda k: k.create("beta's"))

    # each key runs as its own project: beta sees none of alpha's files
    alpha_file = _openai(net.planet.endpoint, alpha_key).files.create(
        file=("a.jsonl", io.BytesIO(b"{}\n")), purpose="batch"
    )
    beta_client = _openai(net.planet.endpoint, beta_made.key)
    assert alpha_file.id not in {f.id for f in beta_client.files.list().data}
    with pytest.raises((openai.PermissionDeniedError, openai.NotFoundError)):
        beta_client.files.content(alpha_file.id)

    # beta's key id and secret under alpha's project id: not a key of alpha
    _, _, key_id, secret = beta_made.key.split("_")
    forged = f"smi_{alpha.project_id}_{key_id}_{secret}"
    with pytest.raises(openai.AuthenticationError):
        _openai(net.planet.endpoint, forged).models.list()

    # beta cannot check, revoke or list alpha's keys: alpha's key id is as unknown as none
    assert not _as_project(net, beta, lambda k: k.is_live(alpha_key))
    alpha_key_id = alpha_key.split("_")[2]
    with pytest.raises(NotFound) as foreign:
        _as_project(net, beta, lambda k: k.revoke(alpha_key_id))
    with pytest.raises(NotFound) as unknown:
        _as_project(net, beta, lambda k: k.revoke("0" * 16))
    assert (foreign.value.code, foreign.value.message) == (
        unknown.value.code,
        unknown.value.message,
    )
    assert alpha_key_id not in {k.key_id for k in _as_project(net, beta, lambda k: k.list()).keys}
    assert _openai(net.planet.endpoint, alpha_key).models.list().object == "list"

    # a key of a project this gateway holds no credential of is refused
    gamma = net.run(net.planet.create_credential("gamma"))
    gamma_made = _as_project(net, gamma, lambda k: k.create())
    with pytest.raises(openai.AuthenticationError):
        _openai(net.planet.endpoint, gamma_made.key).models.list()


def test_malformed_and_unknown_keys_are_refused_without_asking_for_each_again(
    net: PlanetThread,
) -> None:
    api = net.planet.gateway.openai if net.planet.gateway else None
    assert api is not None
    alpha = _credential(net)
    guessed = f"smi_{alpha.project_id}_{'0' * 16}_{'x' * 43}"
    for key in ("smi_", "smi_x_y", "sk-anything", "smi_" + "a" * 5000, guessed):
        status, body = _raw(net, key)
        assert status == 401 and body["error"]["type"] == "authentication_error", (key, body)
    asked = api.keys.checks
    for _ in range(5):  # the "no" is remembered for the TTL too
        assert _raw(net, guessed)[0] == 401
    assert api.keys.checks <= asked + 1


def test_the_cli_creates_lists_and_revokes_keys(net: PlanetThread, tmp_path: Path) -> None:
    coordinator = net.planet.coordinator
    assert coordinator is not None
    creds = tmp_path / "credentials.toml"
    write_credentials(creds, [_credential(net)])
    target = ["--credentials", str(creds), "--coordinator", coordinator.url]
    runner = CliRunner()

    made = runner.invoke(app, ["inference-key", "create", "--name", "from the cli", *target])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    assert _openai(net.planet.endpoint, key).models.list().object == "list"
    key_id = key.split("_")[2]
    listed = runner.invoke(app, ["inference-key", "list", *target])
    (line,) = [row for row in listed.stdout.splitlines() if row.startswith(key_id)]
    assert line.endswith("from the cli") and " - " in line

    revoked = runner.invoke(app, ["inference-key", "revoke", key_id, *target])
    assert revoked.exit_code == 0, revoked.output
    assert not _as_project(net, _credential(net), lambda k: k.is_live(key))
    unknown = runner.invoke(app, ["inference-key", "revoke", "0" * 16, *target])
    assert unknown.exit_code == 2 and "unknown or revoked" in unknown.output
