"""`skymesh up --ha`: what its banner promises, done to it.

One real HA network (PostgreSQL primary and standby under pg_auto_failover, two
coordinators, two gateways, six nodes, every role its own process). The test does what
the banner tells a user to do: kill coordinator 1, then the PostgreSQL primary, and
checks S3 goes on through both gateways, the background loops move to the other
coordinator, and every object written before, between and after reads back.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from skymesh.admin import AdminClient
from tests.process.netutil import Up, free_port_block, start_up

pytestmark = pytest.mark.slow

NODES = 6
#: The coordinators' loops move within 4/3 lease_ttl (13.3 s); the issue asks for 15 s.
TAKEOVER_S = 15.0


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Up, str]]:
    """The network and the rest of its banner (the HA part, after "Press Ctrl-C")."""
    base = free_port_block(NODES + 4)
    # gateways base, base+1; coordinators base+2, base+3; nodes from base+4
    up = start_up(
        tmp_path_factory.mktemp("up-ha"),
        (base, base + 2, base + 4),
        nodes=NODES,
        args=["--ha", "--no-compute"],
    )
    assert up.proc.stdout is not None
    rest: list[str] = []
    for line in up.proc.stdout:
        rest.append(line)
        if line.strip().startswith("logs:"):
            break
    try:
        yield up, "".join(rest)
    finally:
        up.proc.send_signal(signal.SIGINT)
        try:
            up.proc.wait(60)
        except Exception:
            up.proc.kill()
            raise


def _s3(endpoint: str, up: Up) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=up.access_key,
        aws_secret_access_key=up.secret,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 8, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
        ),
    )


def _until(what: str, timeout: float, check: Any) -> float:
    """Seconds until ``check()`` is truthy (it may raise meanwhile); fails after ``timeout``."""
    t0 = time.monotonic()
    last: BaseException | None = None
    while time.monotonic() - t0 < timeout:
        try:
            if check():
                return time.monotonic() - t0
        except Exception as e:
            last = e
        time.sleep(0.25)
    raise AssertionError(f"no {what} within {timeout} s (last error: {last!r})")


async def _runs_every_loop(url: str, token: str) -> bool:
    """Whether the coordinator at ``url`` holds every loop's lease."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        leases = await AdminClient(url, token, session).leases()
    return bool(leases.leases) and all(lease.held_here for lease in leases.leases)


def test_up_ha_survives_a_coordinator_and_the_database_primary(ha: tuple[Up, str]) -> None:
    import asyncio

    up, banner = ha
    home = Path(re.search(r"logs: (\S+)/logs,", banner).group(1))  # type: ignore[union-attr]
    gateways = re.search(r"gateways\s+(\S+), (\S+)", banner)
    coordinators = re.search(r"coordinators\s+(\S+), (\S+)", banner)
    primary_pid = re.search(r"kill -9 \$\(head -1 (\S+/postmaster\.pid)\)", banner)
    assert gateways and coordinators and primary_pid, banner
    gw1, gw2 = _s3(gateways.group(1), up), _s3(gateways.group(2), up)
    token = up_admin_token(home)
    survivor = coordinators.group(2)

    gw1.create_bucket(Bucket="ha-test")
    written: dict[str, bytes] = {}

    def put(key: str, client: Any) -> bool:
        body = os.urandom(300_000) + key.encode()
        client.put_object(Bucket="ha-test", Key=key, Body=body)
        written[key] = body
        return True

    put("before", gw1)
    assert gw2.get_object(Bucket="ha-test", Key="before")["Body"].read() == written["before"]

    # coordinator 1 dies: both gateways go on, its loops move to coordinator 2
    os.kill(int((home / "run" / "coordinator.pid").read_text()), signal.SIGKILL)
    put("after-coordinator", gw1)
    put("after-coordinator-2", gw2)
    took = _until(
        "every loop lease on the surviving coordinator",
        TAKEOVER_S + 5,
        lambda: asyncio.run(_runs_every_loop(survivor, token)),
    )
    print(f"\nloops on the surviving coordinator {took:.1f} s after the kill")

    # the PostgreSQL primary dies: the standby is promoted, the coordinator reconnects
    pid = int(Path(primary_pid.group(1)).read_text().split("\n", 1)[0])
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    back = _until("an upload after the primary died", 90, lambda: put("after-db", gw1))
    print(f"uploads again {back:.1f} s after the primary's postgres was killed")
    assert time.monotonic() - t0 < 90

    for key, body in written.items():
        for client in (gw1, gw2):
            assert client.get_object(Bucket="ha-test", Key=key)["Body"].read() == body, key


def up_admin_token(home: Path) -> str:
    import json

    return str(json.loads((home / "state.json").read_text())["admin_token"])
