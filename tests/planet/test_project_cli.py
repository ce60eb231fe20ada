"""`skymesh project add`: a project and its S3 key, written into a gateway's credentials file."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import aiohttp
from typer.testing import CliRunner

from skymesh.admin import InferenceKeys
from skymesh.cli import app
from skymesh.config import load_credentials
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread


def test_project_add_appends_a_working_key_to_the_credentials_file(tmp_path: Path) -> None:
    thread = PlanetThread(Planet(tmp_path / "planet", PlanetConfig(node_count=3))).start()
    try:
        coordinator = thread.planet.coordinator
        assert coordinator is not None
        token_file = tmp_path / "admin-token"
        token_file.write_text(thread.planet.admin_token + "\n")
        path = tmp_path / "gateway" / "credentials.toml"
        target = ["--coordinator", coordinator.url, "--admin-token-file", str(token_file)]
        runner = CliRunner()

        first = runner.invoke(
            app, ["project", "add", "alpha", "--credentials-file", str(path), *target]
        )
        assert first.exit_code == 0, first.output
        second = runner.invoke(
            app, ["project", "add", "beta", "--credentials-file", str(path), "--json", *target]
        )
        assert second.exit_code == 0, second.output
        shown = json.loads(second.output)

        creds = load_credentials(path)
        assert len(creds) == 2 and creds[0].access_key_id in first.output
        assert creds[0].secret_access_key in first.output
        assert shown == {
            "project_id": creds[1].project_id,
            "access_key_id": creds[1].access_key_id,
            "secret_access_key": creds[1].secret_access_key,
        }
        assert creds[0].project_id != creds[1].project_id
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

        async def live(api_key: str) -> int:  # the coordinator knows the project's API key
            async with aiohttp.ClientSession() as session:
                return len((await InferenceKeys(coordinator.url, api_key, session).list()).keys)

        assert [asyncio.run(live(c.api_key)) for c in creds] == [0, 0]
        wrong = tmp_path / "wrong-token"
        wrong.write_text("not-the-admin-token")
        bad = runner.invoke(
            app,
            [
                "project",
                "add",
                "gamma",
                "--credentials-file",
                str(path),
                "--coordinator",
                coordinator.url,
                "--admin-token-file",
                str(wrong),
            ],
        )
        assert bad.exit_code == 2 and len(load_credentials(path)) == 2
    finally:
        thread.stop()
