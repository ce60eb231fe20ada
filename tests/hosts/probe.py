"""Small probes run *on* a host (``ip netns exec``): the test process itself cannot reach
the hosts, as nothing outside their bridge can. Standard library only, so each start
is quick.

    probe.py wait-http URL [TIMEOUT]         until URL answers 200
    probe.py nodes URL                       the coordinator's GET /v1/nodes, as JSON
    probe.py wait-online URL COUNT [TIMEOUT] until COUNT nodes are online

The admin token comes from ``SKYMESH_ADMIN_TOKEN``, as for the ``skymesh`` commands.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from typing import Any


def get(url: str, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
        return json.loads(resp.read() or b"null")


def answers(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return bool(resp.status == 200)


def wait(what: str, timeout: float, check: Any) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    sys.exit(f"{what} not within {timeout:g} s {last}")


def main(argv: list[str]) -> None:
    token = os.environ.get("SKYMESH_ADMIN_TOKEN", "")
    match argv:
        case ["wait-http", url, *rest]:
            wait(url, float(rest[0]) if rest else 30, lambda: answers(url))
        case ["nodes", url]:
            print(json.dumps(get(f"{url}/v1/nodes", token)))
        case ["wait-online", url, count, *rest]:

            def online() -> bool:
                nodes = get(f"{url}/v1/nodes", token)["nodes"]
                return sum(bool(n["online"]) for n in nodes) >= int(count)

            wait(f"{count} nodes online", float(rest[0]) if rest else 60, online)
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
