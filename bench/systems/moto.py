"""moto's S3 (``moto_server``, its own venv) on a free loopback port, as developers run it locally."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3

from bench import procs, venvs
from bench.systems.s3 import S3Store


@contextmanager
def running(workdir: Path) -> Iterator[S3Store]:
    bin_dir = venvs.ensure("moto")
    port = procs.free_port_block(1)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    proc = procs.spawn(
        [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        workdir / "moto.log",
        env=env,
        cwd=workdir,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        http = urllib3.PoolManager()

        def up() -> bool:
            return http.request("GET", f"{endpoint}/moto-api/", timeout=2).status < 500

        procs.wait_until("moto_server", up, 60, [proc])
        yield S3Store("moto", endpoint, "testing", "testing", pid=proc.pid)
    finally:
        procs.stop([proc])
