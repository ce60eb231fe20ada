"""A headless Chromium for the console tests, one per test module: Debian's ``chromium``
and ``chromium-driver`` driven by selenium (the ``dev`` extra). Where either is missing
the tests fail, as the PostgreSQL tests do: `.ci/run` installs both, and a run that
skipped them would claim a console it never loaded."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

#: Without the background-networking switches Chromium waits on a closed network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A selenium Chrome driver keeping the page's console messages (``get_log("browser")``)."""
    from selenium import webdriver

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail(
            "the console tests need Debian's browser: apt-get install chromium chromium-driver"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a module's tests leave a PNG of each console page:
    ``<basetemp>/screenshots-<module>0/`` (pytest's ``--basetemp``, else its temp root)."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    return tmp_path_factory.mktemp(f"screenshots-{module}")


def js_errors(driver: Any) -> list[str]:
    """The page's console messages at SEVERE since the last call (errors, failed loads)."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(driver: Any, condition: Any, timeout: float = 20, what: str = "") -> Any:
    """Until ``condition(driver)`` is truthy; a timeout names ``what`` it waited for.

    The consoles redraw their views while a test polls them, so an element found in one
    poll can be replaced before the next call on it: that poll counts as not yet, like a
    missing element."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver,
        timeout,
        poll_frequency=0.2,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(condition, what)
