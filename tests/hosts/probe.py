"""Small probes run *on* a host (``ip netns exec``): the test process itself cannot reach
the hosts, as nothing outside their bridge can. Standard library only, so each start
is quick.

    probe.py wait-http URL [TIMEOUT]         until URL answers 200
    probe.py nodes URLS                      the coordinator's GET /v1/nodes, as JSON
    probe.py wait-online URLS COUNT [TIMEOUT] until COUNT nodes are online
    probe.py leases URL                      GET /v1/admin/leases of that coordinator
    probe.py wait-leases URL [TIMEOUT]       until that coordinator holds every loop's
                                             lease; prints the wall-clock time it did

URLS: coordinator URLs separated by commas, tried in turn (as `skymesh` commands do),
so a probe works while one coordinator is down. The admin token comes from
``SKYMESH_ADMIN_TOKEN``, as for the ``skymesh`` commands.
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


def get_any(urls: str, path: str, token: str) -> Any:
    """``path`` from the first coordinator of ``urls`` (comma-separated) that answers."""
    error: OSError | None = None
    for url in urls.split(","):
        try:
            return get(f"{url}{path}", token)
        except OSError as e:
            error = e
    assert error is not None
    raise error


def holds_every_lease(url: str, token: str) -> bool:
    leases = get(f"{url}/v1/admin/leases", token)["leases"]
    return bool(leases) and all(lease["held_here"] for lease in leases)


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
        case ["nodes", urls]:
            print(json.dumps(get_any(urls, "/v1/nodes", token)))
        case ["wait-online", urls, count, *rest]:

            def online() -> bool:
                nodes = get_any(urls, "/v1/nodes", token)["nodes"]
                return sum(bool(n["online"]) for n in nodes) >= int(count)

            wait(f"{count} nodes online", float(rest[0]) if rest else 60, online)
        case ["leases", url]:
            print(json.dumps(get(f"{url}/v1/admin/leases", token)))
        case ["wait-leases", url, *rest]:
            timeout = float(rest[0]) if rest else 30
            wait(f"{url} holding every lease", timeout, lambda: holds_every_lease(url, token))
            print(json.dumps({"at": time.time(), "leases": get(f"{url}/v1/admin/leases", token)}))
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
