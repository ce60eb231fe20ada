"""Config: TOML, then environment, then overrides; typos are errors; the CLI shows the result."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from skymesh.cli import app
from skymesh.config import (
    Credential,
    GatewayConfig,
    NodeConfig,
    config_to_toml,
    load_config,
    load_credentials,
    write_credentials,
)
from skymesh.errors import ConfigError


def test_layers_win_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[node]\nport = 1111\nregion = "eu-west"\ncapacity_bytes = 5\n')
    cfg = load_config(
        NodeConfig, path, overrides={"capacity_bytes": 7}, environ={"SKYMESH_NODE_PORT": "2222"}
    )
    assert (cfg.port, cfg.region, cfg.capacity_bytes) == (2222, "eu-west", 7)


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[node]\nportt = 1\n")
    with pytest.raises(ConfigError):
        load_config(NodeConfig, path, environ={})
    with pytest.raises(ConfigError, match="SKYMESH_NODE_PORTT"):
        load_config(NodeConfig, None, environ={"SKYMESH_NODE_PORTT": "1"})
    with pytest.raises(ConfigError):
        load_config(NodeConfig, None, environ={"SKYMESH_NODE_PORT": "not a number"})


def test_round_trip_through_toml(tmp_path: Path) -> None:
    cfg = NodeConfig(region="ap-south", trusted_coordinators=["ab", "cd"], fsync=False)
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(NodeConfig, path, environ={}) == cfg


def test_credentials_file_is_private(tmp_path: Path) -> None:
    cred = Credential(
        access_key_id="AK",
        secret_access_key="S",
        project_id="p",
        api_key="k",
        encryption_secret="00",
    )
    path = tmp_path / "gw" / "credentials.toml"
    write_credentials(path, [cred])
    assert path.stat().st_mode & 0o077 == 0
    assert load_credentials(path) == [cred]
    assert load_credentials(tmp_path / "missing.toml") == []


def test_cli_config_show(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[gateway]\nport = 9999\n")
    result = CliRunner().invoke(app, ["config", "show", "gateway", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "port = 9999" in result.output
    assert load_config(GatewayConfig, path, environ={}).port == 9999
    bad = CliRunner().invoke(app, ["config", "show", "nobody"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("kind", [GatewayConfig, NodeConfig])
def test_metrics_address_is_host_and_port(kind: type[GatewayConfig] | type[NodeConfig]) -> None:
    role = "GATEWAY" if kind is GatewayConfig else "NODE"
    env = f"SKYMESH_{role}_METRICS_ADDRESS"
    assert load_config(kind, None, environ={}).metrics_address == ""  # off by default
    assert load_config(kind, None, environ={env: "[::1]:9464"}).metrics_address == "[::1]:9464"
    for bad in ("9464", "127.0.0.1:", "127.0.0.1:http", "::1:9464", "[nope]:1", "h:70000"):
        with pytest.raises(ConfigError, match="metrics_address"):
            load_config(kind, None, environ={env: bad})


def test_node_energy_profile_is_checked() -> None:
    NodeConfig(pue=1.0, grid_gco2_kwh=0.0, storage_watts_per_tb=0.0)  # a clean site is fine
    with pytest.raises(ConfigError, match="pue"):
        NodeConfig(pue=0.8)
    with pytest.raises(ConfigError, match="pue"):
        NodeConfig(grid_gco2_kwh=-5.0)
    with pytest.raises(ConfigError, match="pue"):
        NodeConfig(storage_watts_per_tb=float("nan"))
