"""What a new operator does on the first day, as the README's "Operate it" walks through it.

`skymesh up` as `make run` starts it (fewer nodes, the loops at test speed), then: the
admin console, a second project and key from the CLI, an upload from the tenant console,
the object's pieces on the admin map, a node killed and the repair seen in the console,
the coordinator's ``/metrics`` scraped, and ``skymesh payouts`` / ``skymesh status``.
A PNG of each console step lands in ``<basetemp>/screenshots-test_operator_flow0/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from skymesh.wire import routes
from tests.browser.conftest import js_errors, wait_for
from tests.process.netutil import Up, clean_env, start_up

NODES = 6
#: Every loop the flow waits on, at test speed, as an operator would set them by environment.
FAST = {
    "SKYMESH_COORDINATOR_HEARTBEAT_INTERVAL": "0.5",  # told to the nodes
    "SKYMESH_COORDINATOR_OFFLINE_AFTER": "2",
    "SKYMESH_COORDINATOR_SCHEME": "2/3/4/4",  # one lost piece of four is repaired
    "SKYMESH_COORDINATOR_REPAIR_CHECK_INTERVAL": "0.5",
    "SKYMESH_COORDINATOR_REPAIR_INTERVAL": "0.2",
    "SKYMESH_COORDINATOR_ACCOUNTING_INTERVAL": "1",
}
BUCKET, KEY = "photos", "holiday.bin"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    u = start_up(
        tmp_path_factory.mktemp("operator") / "home",
        nodes=NODES,
        env=FAST,
        args=["--no-compute"],  # no model weights to push: storage is what this flow shows
    )
    try:
        yield u
    finally:
        u.kill()


def skymesh(u: Up, *args: str, codes: tuple[int, ...] = (0,)) -> str:
    """The CLI against the network of ``u`` (its home), as the operator types it; its
    output, once it exited with one of ``codes``."""
    out = subprocess.run(
        [sys.executable, "-m", "skymesh", *args, "--home", str(u.home)],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert out.returncode in codes, f"skymesh {' '.join(args)}: {out.stdout}\n{out.stderr}"
    return out.stdout


def _shown(browser: Any, css: str) -> Any:
    """The element at ``css`` once it is displayed: a page builds its views while it
    signs in, so an element can exist before it takes typing or clicks."""
    from selenium.webdriver.common.by import By

    def displayed(d: Any) -> Any:
        found = d.find_elements(By.CSS_SELECTOR, css)
        return found[0] if found and found[0].is_displayed() else False

    return wait_for(browser, displayed, what=f"{css} displayed")


def _holders(browser: Any) -> dict[str, str]:
    """The admin console's object lookup: node id -> state of the piece it holds."""
    from selenium.webdriver.common.by import By

    return {
        c.get_attribute("data-node"): c.get_attribute("data-state")
        for c in browser.find_elements(By.CSS_SELECTOR, "#lookup code.holder")
    }


def test_operator_flow(up: Up, browser: Any, screenshots: Path, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from selenium.webdriver.common.by import By

    started = time.monotonic()
    admin_console = up.coordinator_url + routes.CONSOLE_PATH

    # 1. The admin console, signed in with the token from the home.
    browser.get(admin_console)
    browser.find_element(By.ID, "admin-token").send_keys(up.admin_token)
    browser.find_element(By.ID, "login-btn").click()
    tiles = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map .nodes svg.tile"))
    assert len(tiles) == NODES
    browser.save_screenshot(str(screenshots / "1-admin-console.png"))

    # 2. A second project and its S3 key, from the CLI.
    project = json.loads(skymesh(up, "project", "create", "team-b", "--json"))
    made = json.loads(skymesh(up, "keys", "create", "--project", "team-b", "--json"))
    assert made["project_id"] == project["project_id"]
    key_id, secret = made["access_key_id"], made["secret_access_key"]
    s3 = boto3.client(
        "s3",
        endpoint_url=up.endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + 10  # the gateway follows new keys within ~2 s
    while True:
        try:
            s3.list_buckets()
            break
        except Exception:
            assert time.monotonic() < deadline, "the gateway never took the new key"
            time.sleep(0.2)

    # 3. The tenant console, signed in with that key: a bucket and an upload.
    browser.get(up.endpoint + "/_console/")
    browser.find_element(By.ID, "access-key").send_keys(key_id)
    browser.find_element(By.ID, "secret-key").send_keys(secret)
    browser.find_element(By.ID, "login-btn").click()
    _shown(browser, "#new-bucket").send_keys(BUCKET)
    browser.find_element(By.CSS_SELECTOR, "#create-bucket button").click()
    _shown(browser, f"a[data-bucket='{BUCKET}']").click()
    data = bytes(range(256)) * 1200  # 300 KiB: stored in pieces, not inline
    local = tmp_path / KEY
    local.write_bytes(data)
    _shown(browser, "#upload-file").send_keys(str(local))
    browser.find_element(By.ID, "upload-btn").click()
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "upload-status").text == f"uploaded {KEY}",
        what="the upload to finish",
    )
    browser.save_screenshot(str(screenshots / "2-tenant-upload.png"))
    errors = js_errors(browser)
    assert errors == [], errors

    # 4. The object's pieces on the admin map (the tab's session keeps the token).
    browser.get(admin_console)
    _shown(browser, "#lookup-bucket").send_keys(BUCKET)
    browser.find_element(By.ID, "lookup-key").send_keys(KEY)
    browser.find_element(By.ID, "lookup-btn").click()
    before = wait_for(browser, lambda d: len(_holders(d)) == 4 and _holders(d), what="4 holders")
    assert set(before.values()) == {"healthy"}
    outlined = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#map svg.tile.holder"))
    assert {t.get_attribute("data-node") for t in outlined} == set(before)
    browser.save_screenshot(str(screenshots / "3-admin-object-pieces.png"))

    # 5. Kill a node holding a piece: red on the map, then repair moves its piece.
    names = {up.node_id(n): n for n in up.node_names()}
    victim = sorted(before)[0]
    up.kill_role(names[victim])
    killed_at = time.monotonic()
    wait_for(
        browser,
        lambda d: (
            d.find_element(By.CSS_SELECTOR, f"#map svg.tile[data-node='{victim}']").get_attribute(
                "data-state"
            )
            == "offline"
        ),
        what="the killed node red on the map",
    )
    after = wait_for(
        browser,
        lambda d: (
            (h := _holders(d))
            and victim not in h
            and len(h) == 4
            and set(h.values()) == {"healthy"}
            and h
        ),
        timeout=30,
        what="a new holder in place of the killed node",
    )
    repaired_in = time.monotonic() - killed_at
    assert set(after) - set(before), "repair put no piece on a new node"
    # Refresh: every panel now, not in 30 s. Repair is done: nothing queued, one node down.
    clicked = browser.execute_script("return Date.now()")
    browser.find_element(By.ID, "refresh").click()
    wait_for(
        browser,
        lambda d: (
            int(d.find_element(By.ID, "view").get_attribute("data-refreshed-at") or 0) > clicked
        ),
        what="every panel redrawn",
    )
    assert "Nothing to repair" in browser.find_element(By.ID, "repair-queue").text
    assert f"{NODES - 1} of {NODES} nodes healthy" in browser.find_element(By.ID, "durability").text
    assert f"{NODES - 1} / {NODES}" in browser.find_element(By.ID, "summary").text
    browser.execute_script("document.getElementById('map').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "4-admin-map-after-repair.png"))
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(screenshots / "5-admin-repaired.png"))
    browser.execute_script("document.getElementById('durability').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "6-admin-durability.png"))
    assert js_errors(browser) == []
    assert s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == data

    # 6. Prometheus: the coordinator's /metrics with the admin token.
    req = urllib.request.Request(
        up.coordinator_url + routes.METRICS.path,
        headers={"Authorization": f"Bearer {up.admin_token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
    for name in (
        "skymesh_coordinator_api_requests",
        "skymesh_coordinator_nodes",
        "skymesh_coordinator_repair_pieces_rebuilt",
    ):
        assert name in families, sorted(families)
    rebuilt = families["skymesh_coordinator_repair_pieces_rebuilt"].samples
    assert sum(s.value for s in rebuilt if s.name.endswith("_total")) >= 1

    # 7. `skymesh status` and `skymesh payouts` name the operators.
    # (exit status 1 would mean a problem; the killed node alone is a warning)
    status = json.loads(skymesh(up, "status", "--json", codes=(0, 1)))
    groups = status["network"]["nodes"]
    assert sum(g["states"].get("offline", 0) for g in groups) == 1
    operators = {g["operator"] for g in groups}
    month = time.strftime("%Y-%m", time.gmtime())
    payouts = json.loads(skymesh(up, "payouts", "--month", month, "--json"))
    assert payouts["month"] == month
    assert payouts["rows"] and {r["operator"] for r in payouts["rows"]} <= operators
    print(
        f"operator flow: {time.monotonic() - started:.1f} s after `skymesh up`;"
        f" repaired {repaired_in:.1f} s after the kill; screenshots in {screenshots}"
    )
