"""A provider node that lies or fails, as a process of its own, for chaos tests only.

::

    python -m skymesh.testing.faulty_node --config node.toml --fault corrupt

runs the real node service (:class:`~skymesh.node.service.NodeService`) from a
real node config, with a :class:`~skymesh.testing.faults.FaultyStore` for its
pieces and one fault set on it from the start: ``corrupt``, ``swap``, ``missing``
or ``forge`` (its reads and audit answers lie) or ``full`` (every piece write
fails half-way with ENOSPC). The
production ``skymesh node`` has no such switch on purpose: a node misbehaves only
when a test starts it through this module, alongside a ``skymesh up`` network
(tests/process/netutil.py restarts a node of that network this way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import signal
import sys
from pathlib import Path
from typing import cast, get_args

from skymesh.config import NodeConfig, load_config
from skymesh.node.service import NodeService
from skymesh.testing.faults import Fault, FaultyStore

log = logging.getLogger(__name__)

FAULTS: tuple[str, ...] = get_args(Fault)


async def run_faulty_node(config: NodeConfig, fault: str) -> None:
    """Run a node with ``fault`` until cancelled."""
    if fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose one of {', '.join(FAULTS)}")
    open_store = functools.partial(FaultyStore.open, fault=cast(Fault, fault))  # checked above
    service = NodeService(config, open_store=open_store)
    await service.start()
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
