"""A provider node that lies or fails, as a process of its own, for chaos tests only.

::

    python -m skymesh.testing.faulty_node --config node.toml --fault corrupt

runs the real node service (:class:`~skymesh.node.service.NodeService`) from a
real node config, then puts one fault of :mod:`skymesh.testing.faults` at its
storage seam: ``corrupt``, ``swap``, ``missing`` or ``forge`` (its reads and audit
answers lie) or ``full`` (every piece write fails half-way with ENOSPC). The
production ``skymesh node`` has no such switch on purpose: a node misbehaves only
when a test starts it through this module, alongside a ``skymesh up`` network
(tests/process/netutil.py restarts a node of that network this way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import cast, get_args

from skymesh.config import NodeConfig, load_config
from skymesh.node.service import NodeService
from skymesh.testing.faults import Mode, disk_full, inject

log = logging.getLogger(__name__)

FAULTS = (*get_args(Mode), "full")


async def run_faulty_node(config: NodeConfig, fault: str) -> None:
    """Run a node with ``fault`` until cancelled."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
    if fault == "full":
        disk_full()
    service = NodeService(config)
    await service.start()
    if fault != "full":
        inject(service, cast(Mode, fault))  # checked against FAULTS above
    log.warning("node %s is faulty on purpose: %s (a chaos test)", service.node_id, fault)
    try:
        await asyncio.Event().wait()
    finally:
        await service.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m skymesh.testing.faulty_node",
        description="A skymesh node with an injected fault (tests only).",
    )
    parser.add_argument("--config", type=Path, required=True, help="the node's TOML config")
    parser.add_argument("--fault", required=True, choices=FAULTS)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s faulty-node %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = load_config(NodeConfig, args.config)
    # SIGTERM stops it like Ctrl-C, as for the real roles (skymesh.cli).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_faulty_node(config, args.fault))


if __name__ == "__main__":
    main()
