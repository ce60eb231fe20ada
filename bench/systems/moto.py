"""moto's S3 (``moto_server``, its own venv) on a free loopback port, as developers run it locally.

With ``tls`` it serves https (``--ssl-cert``/``--ssl-key``) with a certificate of a local
CA made as ``skymesh up --tls`` makes its own (skymesh/tls.py), so both systems' HTTPS
rows pay for the same kind of key (ECDSA P-256) and the same boto3 client.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import urllib3

from bench import procs, venvs
from bench.systems.s3 import S3Store
from skymesh.tls import ensure_local_tls


@contextmanager
def running(workdir: Path, tls: bool = False) -> Iterator[S3Store]:
    bin_dir = venvs.ensure("moto")
    port = procs.free_port_block(1)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    argv = [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    ca: str | None = None
    if tls:
        files = ensure_local_tls(workdir / "tls", ["127.0.0.1", "localhost"])
        argv += ["--ssl-cert", str(files.cert), "--ssl-key", str(files.key)]
        ca = str(files.ca)
    proc = procs.spawn(argv, workdir / "moto.log", env=env, cwd=workdir)
    try:
        endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        http = urllib3.PoolManager(ca_certs=ca)

        def up() -> bool:
            return http.request("GET", f"{endpoint}/moto-api/", timeout=2).status < 500

        procs.wait_until("moto_server", up, 60, [proc])
        yield S3Store("moto", endpoint, "testing", "testing", pid=proc.pid, verify=ca)
    finally:
        procs.stop([proc])
