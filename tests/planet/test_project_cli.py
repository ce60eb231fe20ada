"""`skymesh project` and `skymesh keys` against a running network: a project and its keys
made from the CLI, served (and refused once revoked or expired) by a gateway that was
started before them and never restarted."""

from __future__ import annotations

import asyncio
import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from skymesh.admin import InferenceKeys
from skymesh.cli import app
from skymesh.config import load_credentials_file
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread

PICKUP = 5.0  # seconds within which a gateway follows a key created, revoked or expired


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("keys")
    thread = PlanetThread(Planet(root / "planet", PlanetConfig(node_count=3))).start()
    try:
        yield thread, root
    finally:
        thread.stop()


def _cli(thread: PlanetThread, root: Path) -> Callable[..., Any]:
    coordinator = thread.planet.coordinator
    assert coordinator is not None
    token_file = root / "admin-token"
    token_file.write_text(thread.planet.admin_token + "\n")
    target = ["--coordinator", coordinator.url, "--admin-token-file", str(token_file)]
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, [*args, *target])
        assert result.exit_code == code, result.output
        return result

    return run


def _s3(endpoint: str, key_id: str, secret: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _accepted(client: Any) -> bool:
    try:
        client.list_buckets()
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidAccessKeyId", e.response
        return False
    return True


def _within(seconds: float, check: Callable[[], bool]) -> float:
    """Seconds until ``check()`` holds, failing past ``seconds``."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_project_and_keys_from_the_cli_reach_a_running_gateway(network: Any) -> None:
    thread, root = network
    cli = _cli(thread, root)
    creds = Path(thread.planet.root) / "gateway" / "credentials.toml"  # the gateway's default
    endpoint = thread.planet.endpoint

    made = json.loads(
        cli("project", "create", "alpha", "--credentials-file", str(creds), "--json").output
    )
    assert made["name"] == "alpha" and stat.S_IMODE(creds.stat().st_mode) == 0o600
    [entry] = load_credentials_file(creds).projects
    assert entry.project_id == made["project_id"] and len(entry.encryption_secret) == 64
    cli("project", "create", "alpha", "--credentials-file", str(creds), code=2)  # names are unique

    key = json.loads(
        cli(
            "keys", "create", "--project", "alpha", "--credentials-file", str(creds), "--json"
        ).output
    )
    brief = json.loads(
        cli(
            "keys",
            "create",
            "--project",
            "alpha",
            "--expires",
            "4s",
            "--name",
            "brief",
            "--credentials-file",
            str(creds),
            "--json",
        ).output
    )
    assert brief["expires_at"] is not None
    client = _s3(endpoint, key["access_key_id"], key["secret_access_key"])
    brief_client = _s3(endpoint, brief["access_key_id"], brief["secret_access_key"])
    assert _within(PICKUP, lambda: _accepted(client)) < PICKUP
    assert _within(PICKUP, lambda: _accepted(brief_client)) < PICKUP
    client.create_bucket(Bucket="alpha-data")
    client.put_object(Bucket="alpha-data", Key="k", Body=b"v")
    assert brief_client.get_object(Bucket="alpha-data", Key="k")["Body"].read() == b"v"

    listed = cli("keys", "list", "--project", "alpha", "--json").output
    assert key["secret_access_key"] not in listed and brief["secret_access_key"] not in listed
    ids = {k["access_key_id"]: k for k in json.loads(listed)["access_keys"]}
    assert set(ids) == {key["access_key_id"], brief["access_key_id"]}
    assert ids[brief["access_key_id"]]["name"] == "brief"
    [shown] = [
        p
        for p in json.loads(cli("project", "list", "--json").output)["projects"]
        if p["name"] == "alpha"
    ]
    assert shown["buckets"] == 1 and shown["live_access_keys"] == 2

    refused = cli("project", "delete", "alpha", code=2)
    assert "alpha-data" in refused.output and "delete them first" in refused.output

    # an inference key: separate from the S3 keys, revoked on its own
    inference = json.loads(
        cli("keys", "create", "--project", "alpha", "--scope", "inference", "--json").output
    )
    assert "access_key_id" not in inference

    async def live(k: str) -> bool:
        async with aiohttp.ClientSession() as s:
            return await InferenceKeys(thread.planet.coordinator_urls, entry.api_key, s).is_live(k)

    assert asyncio.run(live(inference["inference_key"]))
    cli("keys", "revoke", inference["inference_key_id"])
    assert not asyncio.run(live(inference["inference_key"]))
    assert _accepted(client)  # the S3 keys are untouched

    cli("keys", "revoke", key["access_key_id"])
    assert _within(PICKUP, lambda: not _accepted(client)) < PICKUP
    revoked = json.loads(
        cli("keys", "revoke", key["access_key_id"], "--json").output
    )  # again: fine
    assert revoked["access_keys"][0]["revoked_at"] is not None
    cli("keys", "revoke", "SKYNOSUCHKEY", code=2)

    # the key made with --expires 4s stops working once expired, without a revoke
    assert _within(4 + PICKUP, lambda: not _accepted(brief_client)) > 0

    # delete: refused with a bucket, done once it is gone; the gateway file forgets it
    owner = thread.boto3()  # a live key elsewhere cannot reach alpha's bucket
    with pytest.raises(ClientError):
        owner.delete_bucket(Bucket="alpha-data")
    fresh = json.loads(
        cli(
            "keys", "create", "--project", "alpha", "--credentials-file", str(creds), "--json"
        ).output
    )
    fresh_client = _s3(endpoint, fresh["access_key_id"], fresh["secret_access_key"])
    _within(PICKUP, lambda: _accepted(fresh_client))
    fresh_client.delete_object(Bucket="alpha-data", Key="k")
    fresh_client.delete_bucket(Bucket="alpha-data")
    cli("project", "delete", "alpha", "--credentials-file", str(creds))
    assert load_credentials_file(creds).projects == []
    assert _within(PICKUP, lambda: not _accepted(fresh_client)) < PICKUP


def test_project_add_makes_a_project_with_a_working_key(network: Any) -> None:
    thread, root = network
    cli = _cli(thread, root)
    creds = Path(thread.planet.root) / "gateway" / "credentials.toml"
    shown = json.loads(
        cli("project", "add", "beta", "--credentials-file", str(creds), "--json").output
    )
    assert set(shown) >= {"project_id", "access_key_id", "secret_access_key"}
    client = _s3(thread.planet.endpoint, shown["access_key_id"], shown["secret_access_key"])
    _within(PICKUP, lambda: _accepted(client))
    # no root secret here, no S3 key: the error says where to run it
    elsewhere = root / "elsewhere.toml"
    failed = cli(
        "keys", "create", "--project", "beta", "--credentials-file", str(elsewhere), code=2
    )
    assert "root secret" in failed.output and "--scope inference" in failed.output
    bad = cli("keys", "create", "--project", "beta", "--expires", "soon", code=2)
    assert "30d" in bad.output
    wrong = root / "wrong-token"
    wrong.write_text("not-the-admin-token")
    coordinator = thread.planet.coordinator
    assert coordinator is not None
    result = CliRunner().invoke(
        app,
        ["project", "list", "--coordinator", coordinator.url, "--admin-token-file", str(wrong)],
    )
    assert result.exit_code == 2 and "admin token" in result.output
