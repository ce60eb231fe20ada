"""The administrator's console at the coordinator's ``/console/``, in a real browser: the
admin token is asked for and checked, then the map, durability, usage, storage per
project, operators, payouts, loops and recent events draw from the admin routes without a
JavaScript error."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from skymesh.admin import AdminClient
from skymesh.testing.planet import PlanetThread
from skymesh.wire import routes
from skymesh.wire.registry import NodeList
from tests.browser.conftest import js_errors, wait_for
from tests.conftest import S3Client


async def _nodes(planet: PlanetThread) -> NodeList:
    async with aiohttp.ClientSession() as session:
        return await AdminClient(
            planet.planet.coordinator_urls, planet.planet.admin_token, session
        ).nodes()


@pytest.fixture(scope="module")
def console_url(planet: PlanetThread, s3: S3Client) -> str:
    s3.create_bucket(Bucket="stored")
    s3.put_object(Bucket="stored", Key="big", Body=b"x" * 300_000)  # segments in pieces
    return planet.planet.coordinator_urls[0] + routes.CONSOLE_PATH


def test_pages_need_no_token_but_data_does(console_url: str) -> None:
    with urllib.request.urlopen(console_url.rstrip("/"), timeout=10) as resp:  # redirected
        assert resp.status == 200 and b"admin.js" in resp.read()
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    nodes = console_url.replace(routes.CONSOLE_PATH, routes.LIST_NODES.path)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(nodes, timeout=10)
    assert e.value.code == 401


def test_admin_console_draws_the_network(
    planet: PlanetThread, console_url: str, browser: Any, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By

    def wait(condition: Any) -> Any:
        return wait_for(browser, condition)

    coordinator = planet.planet.coordinator
    assert coordinator is not None
    planet.run(coordinator.loops["accounting"].run_once())  # the stored object's first tally
    # an event whose text is markup: the page must show it as text
    logging.getLogger("skymesh.console-test").warning("a <b>test</b> warning & more")

    browser.get(console_url)
    browser.find_element(By.ID, "admin-token").send_keys("not the token")
    browser.find_element(By.ID, "login-btn").click()
    wait(lambda d: "refused" in d.find_element(By.ID, "login-error").text)
    js_errors(browser)  # the refused calls' 401s are the only errors expected
    token = browser.find_element(By.ID, "admin-token")
    token.clear()
    token.send_keys(planet.planet.admin_token)
    browser.find_element(By.ID, "login-btn").click()

    # the map: every node as a tile, by region and operator
    listed = planet.run(_nodes(planet)).nodes
    tiles = wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#map .nodes svg.tile"))
    assert sorted(t.get_attribute("data-node") for t in tiles) == sorted(n.node_id for n in listed)
    regions = browser.find_elements(By.CSS_SELECTOR, "#map .region")
    assert sorted(r.get_attribute("data-region") for r in regions) == sorted(
        {n.region for n in listed}
    )
    assert "nodes online" in browser.find_element(By.ID, "summary").text
    # durability: a histogram per scheme, and the repair queue
    wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#durability svg.chart"))
    assert "Nothing to repair" in browser.find_element(By.ID, "repair-queue").text
    # projects, operators and loops
    assert "default" in wait(lambda d: d.find_element(By.CSS_SELECTOR, "#usage table")).text
    assert browser.find_elements(By.CSS_SELECTOR, "#operators tbody tr")
    assert "audit" in browser.find_element(By.ID, "loops").text
    # storage per project: the default project's stored object, charted and tabled
    wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#storage svg.chart"))
    storage = {
        cells[0]: cells[2]
        for r in browser.find_elements(By.CSS_SELECTOR, "#storage tbody tr")
        for cells in [[c.text for c in r.find_elements(By.TAG_NAME, "td")]]
    }
    assert storage["default"] != "0 B", storage  # the 300 kB object
    # operators' accounting: this month's payouts of the operators holding pieces
    payouts = wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#payouts tbody tr"))
    assert {r.text.split()[0] for r in payouts} <= {n.operator for n in listed}
    assert "skymesh payouts --month" in browser.find_element(By.ID, "payouts").text
    # recent events: the warning, as text (no <b> element made of it)
    events = browser.find_element(By.ID, "events")
    assert "a <b>test</b> warning & more" in events.text
    assert "skymesh.console-test" in events.text
    assert not events.find_elements(By.TAG_NAME, "b")
    assert "Loops with a last error" in events.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#view .error")  # no panel failed
    browser.save_screenshot(str(screenshots / "admin-console.png"))
    browser.execute_script("document.getElementById('durability').scrollIntoView()")
    browser.save_screenshot(str(screenshots / "admin-durability.png"))
    for panel in ("storage", "payouts", "events"):
        browser.execute_script(f"document.getElementById('{panel}').scrollIntoView()")
        browser.save_screenshot(str(screenshots / f"admin-{panel}.png"))
    assert js_errors(browser) == []
