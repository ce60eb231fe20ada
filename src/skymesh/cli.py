"""The one command line: ``skymesh up | coordinator | node | gateway | config show``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from skymesh import __version__
from skymesh.config import (
    CoordinatorConfig,
    GatewayConfig,
    NodeConfig,
    config_to_toml,
    load_config,
)
from skymesh.errors import SkymeshError

app = typer.Typer(
    help="skymesh: encrypted, erasure-coded S3 storage over independent provider nodes.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML file; environment SKYMESH_<ROLE>_<FIELD> overrides it."
    ),
]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]


def _setup_logging(level: str, role: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _run(coro: Any) -> None:
    # SIGTERM stops a role like Ctrl-C does: the main task is cancelled and cleans up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(coro)
    except SkymeshError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from e


@app.command()
def up(
    nodes: Annotated[int, typer.Option(help="How many provider nodes to run.")] = 12,
    regions: Annotated[
        str, typer.Option(help="Comma-separated simulated regions; nodes are spread over them.")
    ] = "eu-west,us-east,ap-south",
    home: Annotated[
        str | None,
        typer.Option(help="Where all data and logs live (default $SKYMESH_HOME or ./.skymesh)."),
    ] = None,
    port: Annotated[int, typer.Option(help="S3 gateway port.")] = 9000,
    coordinator_port: Annotated[int, typer.Option(help="Coordinator port.")] = 7700,
    node_base_port: Annotated[int, typer.Option(help="First node's port; the rest follow.")] = 7801,
    no_fsync: Annotated[
        bool, typer.Option("--no-fsync", help="Skip fsync on nodes (faster, less durable).")
    ] = False,
    log_level: LogLevelOpt = "INFO",
) -> None:
    """Start a whole local network (coordinator, nodes, gateway) and print how to use it."""
    from skymesh.network.up import NetworkSpec, home_dir, run_network

    _setup_logging(log_level, "up")
    spec = NetworkSpec(
        home=home_dir(home),
        nodes=nodes,
        regions=[r.strip() for r in regions.split(",") if r.strip()],
        gateway_port=port,
        coordinator_port=coordinator_port,
        node_base_port=node_base_port,
        fsync=not no_fsync,
        log_level=log_level,
    )
    _run(run_network(spec))


@app.command()
def coordinator(config: ConfigOpt = None, log_level: LogLevelOpt = "INFO") -> None:
    """Run the coordinator (control plane)."""
    from skymesh.coordinator.service import run_coordinator

    _setup_logging(log_level, "coordinator")
    _run(run_coordinator(_load(CoordinatorConfig, config)))


@app.command()
def node(config: ConfigOpt = None, log_level: LogLevelOpt = "INFO") -> None:
    """Run a provider node."""
    from skymesh.node.service import run_node

    _setup_logging(log_level, "node")
    _run(run_node(_load(NodeConfig, config)))


@app.command()
def gateway(config: ConfigOpt = None, log_level: LogLevelOpt = "INFO") -> None:
    """Run the S3 gateway."""
    from skymesh.gateway.service import run_gateway

    _setup_logging(log_level, "gateway")
    _run(run_gateway(_load(GatewayConfig, config)))


@config_app.command("show")
def config_show(
    role: Annotated[str, typer.Argument(help="coordinator, node or gateway")],
    config: ConfigOpt = None,
) -> None:
    """Print a role's effective configuration (file, then environment) as TOML."""
    kinds: dict[str, type[Any]] = {
        "coordinator": CoordinatorConfig,
        "node": NodeConfig,
        "gateway": GatewayConfig,
    }
    if role not in kinds:
        typer.secho(f"unknown role {role!r}; choose one of {', '.join(kinds)}", fg="red", err=True)
        raise typer.Exit(2)
    typer.echo(config_to_toml(_load(kinds[role], config)), nl=False)


@app.command()
def version() -> None:
    """Print the skymesh version."""
    typer.echo(__version__)


def _load(kind: type[Any], path: Path | None) -> Any:
    try:
        return load_config(kind, path)
    except SkymeshError as e:
        typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from e


def main() -> None:
    app()
