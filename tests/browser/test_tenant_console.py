"""The tenant console at the gateway's ``/_console/``, in a real browser: sign in with an
S3 key, upload (with progress), list, download, share a presigned link, versions and
tags, delete; make and revoke keys, read usage and cost (and the console's JSON API
signed by botocore); every page loads without a JavaScript error."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest
from botocore.exceptions import ClientError

from skymesh.config import Credential
from skymesh.testing.planet import PlanetThread
from tests.browser.conftest import js_errors, wait_for
from tests.conftest import S3Client

BUCKET = "console"  # the name the console's path must not be confused with


def _fetch(url: str) -> tuple[int, bytes, dict[str, str]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, resp.read(), dict(resp.headers)


@pytest.fixture(scope="module")
def bucket(s3: S3Client) -> str:
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket=BUCKET, Key="docs/readme.txt", Body=b"first")
    s3.put_object(Bucket=BUCKET, Key="docs/readme.txt", Body=b"second", Tagging="team=ml")
    return BUCKET


def test_console_is_beside_s3_not_a_bucket(planet: PlanetThread, s3: S3Client, bucket: str) -> None:
    base = planet.planet.endpoint
    status, body, headers = _fetch(base + "/_console/")
    assert status == 200 and b"<title>skymesh" in body
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Content-Type"].startswith("text/html")
    status, body, headers = _fetch(base + "/_console")  # redirected to the page
    assert status == 200 and b"tenant.js" in body
    assert _fetch(base + "/_console/s3.js")[2]["Content-Type"].startswith("text/javascript")
    for missing in ("/_console/nope.js", "/_console/..%2Fpyproject.toml", "/_console/a/b.js"):
        with pytest.raises(urllib.error.HTTPError) as e:
            _fetch(base + missing)
        assert e.value.code == 404
    # a bucket named "console" is still S3's
    assert s3.get_object(Bucket=bucket, Key="docs/readme.txt")["Body"].read() == b"second"


def _by_css(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return wait_for(browser, lambda d: d.find_element(By.CSS_SELECTOR, css))


def test_tenant_console_flow(
    planet: PlanetThread,
    s3: S3Client,
    bucket: str,
    browser: Any,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    cred = planet.planet.credential
    assert cred is not None
    browser.get(planet.planet.endpoint + "/_console/")
    browser.find_element(By.ID, "access-key").send_keys(cred.access_key_id)
    browser.find_element(By.ID, "secret-key").send_keys("wrong secret")
    browser.find_element(By.ID, "login-btn").click()
    assert "SignatureDoesNotMatch" in _by_css(browser, "#login-error:not(:empty)").text
    js_errors(browser)  # the refused sign-in's 403 is the only error expected
    browser.find_element(By.ID, "secret-key").clear()
    browser.find_element(By.ID, "secret-key").send_keys(cred.secret_access_key)
    browser.find_element(By.ID, "login-btn").click()
    _by_css(browser, f"a[data-bucket='{bucket}']")
    browser.save_screenshot(str(screenshots / "tenant-buckets.png"))

    # create and delete a bucket
    browser.find_element(By.ID, "new-bucket").send_keys("scratch-console")
    browser.find_element(By.CSS_SELECTOR, "#create-bucket button").click()
    _by_css(browser, "a[data-bucket='scratch-console']")
    s3.head_bucket(Bucket="scratch-console")
    browser.execute_script("window.confirm = () => true;")
    _by_css(browser, "tr:has(a[data-bucket='scratch-console']) button.danger").click()
    wait_for(
        browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "a[data-bucket='scratch-console']")
    )
    assert "scratch-console" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]

    # browse by prefix
    browser.find_element(By.CSS_SELECTOR, f"a[data-bucket='{bucket}']").click()
    _by_css(browser, "tr[data-prefix='docs/'] a").click()
    _by_css(browser, "tr[data-key='docs/readme.txt']")

    # upload with a progress bar
    data = bytes(range(256)) * 2048  # 512 KiB: pieces, not inline
    local = tmp_path / "report 1.bin"
    local.write_bytes(data)
    browser.find_element(By.ID, "upload-file").send_keys(str(local))
    browser.find_element(By.ID, "upload-btn").click()
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "upload-status").text == "uploaded docs/report 1.bin",
    )
    assert browser.find_element(By.ID, "upload-progress").get_attribute("value") == str(len(data))
    _by_css(browser, "tr[data-key='docs/report 1.bin']")
    assert s3.get_object(Bucket=bucket, Key="docs/report 1.bin")["Body"].read() == data

    # a large file goes by multipart upload (thresholds lowered to S3's smallest part)
    big = tmp_path / "big.bin"
    big.write_bytes(data * 12)  # 6 MiB: two parts of 5 MiB and 1 MiB
    browser.execute_script("state.s3.multipartThreshold = state.s3.partSize = 5 * 1024 * 1024;")
    browser.find_element(By.ID, "upload-file").send_keys(str(big))
    browser.find_element(By.ID, "upload-btn").click()
    wait_for(
        browser, lambda d: d.find_element(By.ID, "upload-status").text == "uploaded docs/big.bin"
    )
    got = s3.get_object(Bucket=bucket, Key="docs/big.bin")
    assert got["ETag"].endswith('-2"') and got["Body"].read() == data * 12
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")

    # download: a presigned link that saves the file under its name
    href = _by_css(browser, "tr[data-key='docs/report 1.bin'] a.download").get_attribute("href")
    status, body, headers = _fetch(href)
    assert (status, body) == (200, data)
    assert headers["Content-Disposition"] == "attachment; filename*=UTF-8''report%201.bin"

    # details: versions, tags, and a shared link
    _by_css(browser, "tr[data-key='docs/readme.txt'] button.details").click()
    versions = _by_css(browser, "#versions table").find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(versions) == 2
    older = versions[1].find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
    assert _fetch(older)[1] == b"first"
    assert "team" in _by_css(browser, "#tags table").text
    browser.find_element(By.ID, "share-expires").clear()
    browser.find_element(By.ID, "share-expires").send_keys("600")
    browser.find_element(By.ID, "share-btn").click()
    shared = wait_for(browser, lambda d: d.find_element(By.ID, "share-url").get_attribute("value"))
    assert "X-Amz-Expires=600" in shared
    assert _fetch(shared)[1] == b"second"
    browser.save_screenshot(str(screenshots / "tenant-objects.png"))

    # delete
    _by_css(browser, "tr[data-key='docs/report 1.bin'] button.delete").click()
    wait_for(
        browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "tr[data-key='docs/report 1.bin']")
    )
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="docs/report 1.bin")

    # the project page: what is stored, and where keys and usage are managed
    browser.find_element(By.ID, "nav-project").click()
    usage = wait_for(
        browser,
        lambda d: (
            "Counted by listing" in d.find_element(By.ID, "project-usage").text
            and d.find_element(By.ID, "project-usage")
        ),
    )
    assert bucket in usage.text
    browser.save_screenshot(str(screenshots / "tenant-project.png"))
    assert js_errors(browser) == []


# ---------------------------------------------------------------- keys and usage


def _api(
    planet: PlanetThread,
    cred: Credential,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    sign_body: bool = True,
) -> tuple[int, bytes]:
    """A console API request signed by botocore's SigV4, as an S3 client signs (the body's
    SHA-256 signed, or ``UNSIGNED-PAYLOAD``)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class Auth(S3SigV4Auth):  # type: ignore[misc]  # botocore ships no types
        def _should_sha256_sign_payload(self, request: Any) -> bool:
            return sign_body

    url = planet.planet.endpoint + "/_console/api/" + path
    req = AWSRequest(method=method, url=url, data=body or b"")
    Auth(Credentials(cred.access_key_id, cred.secret_access_key), "s3", "us-east-1").add_auth(req)
    prepared = urllib.request.Request(url, data=body, method=method, headers=dict(req.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _works(planet: PlanetThread, access_key_id: str, secret: str) -> bool:
    """Whether the gateway takes the key (a boto3 call), or refuses it as unknown."""
    cred = planet.planet.credential
    assert cred is not None
    s3 = planet.boto3(
        msgspec.structs.replace(cred, access_key_id=access_key_id, secret_access_key=secret)
    )
    try:
        s3.list_buckets()
    except ClientError as e:
        assert e.response["Error"]["Code"] == "InvalidAccessKeyId"
        return False
    return True


def _within(seconds: float, condition: Any) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"not within {seconds} s"
        time.sleep(0.2)


def test_console_api_is_signed_and_sees_only_the_signers_project(planet: PlanetThread) -> None:
    cred = planet.planet.credential
    assert cred is not None and planet.planet.gateway is not None
    other = planet.run(planet.planet.create_credential("console-other"))
    planet.planet.gateway.add_credential(other)

    status, body = _api(planet, cred, "GET", "keys")
    assert status == 200
    assert cred.access_key_id in [k["access_key_id"] for k in json.loads(body)["access_keys"]]
    # unsigned, badly signed, or a body without its hash signed: refused
    with pytest.raises(urllib.error.HTTPError) as refused:
        _fetch(planet.planet.endpoint + "/_console/api/keys")
    assert refused.value.code == 403 and b"<Code>AccessDenied</Code>" in refused.value.read()
    wrong = msgspec.structs.replace(cred, secret_access_key="x" * 40)
    assert _api(planet, wrong, "GET", "keys")[0] == 403
    assert _api(planet, cred, "GET", "nothing")[0] == 400
    unsigned = _api(planet, cred, "POST", "keys", b"{}", sign_body=False)
    assert unsigned[0] == 403 and b"signed" in unsigned[1]

    status, body = _api(planet, cred, "POST", "keys", b'{"expires_in": 3600, "name": "api"}')
    assert status == 200, body
    made = json.loads(body)
    key_id, secret = made["created"]["access_key"]["access_key_id"], made["secret_access_key"]
    assert made["created"]["access_key"]["expires_at"] > time.time() + 3500
    _within(5, lambda: _works(planet, key_id, secret))

    # the other project lists none of these keys and cannot revoke them
    status, body = _api(planet, other, "GET", "keys")
    assert status == 200 and key_id not in body.decode()
    status, body = _api(planet, other, "POST", f"keys/{key_id}/revoke")
    assert status == 404 and b"NoSuchKey" in body
    assert _works(planet, key_id, secret)

    status, body = _api(planet, cred, "POST", f"keys/{key_id}/revoke")
    assert status == 200 and json.loads(body)["access_keys"][0]["revoked_at"]
    _within(5, lambda: not _works(planet, key_id, secret))

    status, body = _api(
        planet, other, "GET", "usage?step=3600&since=" + str(int(time.time()) - 7200)
    )
    assert status == 200 and json.loads(body)["project_id"] == other.project_id


def _value(browser: Any, element_id: str, prefix: str) -> str | None:
    """The value of an input the page may be redrawing, once it starts with ``prefix``."""
    value = browser.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.value : null;", element_id
    )
    return value if value and value.startswith(prefix) else None


def test_tenant_console_keys_and_usage(
    planet: PlanetThread, bucket: str, browser: Any, screenshots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    cred = planet.planet.credential
    assert cred is not None
    browser.get(planet.planet.endpoint + "/_console/")
    if browser.find_elements(By.CSS_SELECTOR, "#login:not(.hidden)"):
        browser.find_element(By.ID, "access-key").send_keys(cred.access_key_id)
        browser.find_element(By.ID, "secret-key").send_keys(cred.secret_access_key)
        browser.find_element(By.ID, "login-btn").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "nav-keys").is_displayed())  # signed in
    browser.find_element(By.ID, "nav-keys").click()
    _by_css(browser, f"tr[data-key-id='{cred.access_key_id}']")

    # an S3 key made in the page works with boto3 within 5 s; its secret is shown once
    browser.find_element(By.ID, "key-name").send_keys("from the page")
    Select(browser.find_element(By.ID, "key-expires")).select_by_visible_text("expires: 1 day")
    browser.find_element(By.CSS_SELECTOR, "#create-key button").click()
    secret = wait_for(browser, lambda d: _value(d, "new-secret-value", ""))
    key_id = browser.find_element(By.ID, "new-key-id").get_attribute("value")
    row = _by_css(browser, f"tr[data-key-id='{key_id}'][data-state='live']")
    assert "from the page" in row.text
    browser.save_screenshot(str(screenshots / "tenant-keys.png"))
    _within(5, lambda: _works(planet, key_id, secret))

    # an inference key: its bearer key shown once
    Select(browser.find_element(By.ID, "key-kind")).select_by_value("inference")
    browser.find_element(By.CSS_SELECTOR, "#create-key button").click()
    bearer = wait_for(browser, lambda d: _value(d, "new-secret-value", "smi_"))
    assert cred.project_id in bearer

    # revoked in the page: refused within 5 s
    browser.execute_script("window.confirm = () => true;")
    _by_css(browser, f"tr[data-key-id='{key_id}'] button.revoke").click()
    _by_css(browser, f"tr[data-key-id='{key_id}'][data-state='revoked']")
    _within(5, lambda: not _works(planet, key_id, secret))
    # revoking the key one is signed in with asks first: declined, it stays
    browser.execute_script("window.confirm = (m) => { window.asked = m; return false; };")
    _by_css(browser, f"tr[data-key-id='{cred.access_key_id}'] button.revoke").click()
    assert "signed in with" in browser.execute_script("return window.asked;")
    assert _works(planet, cred.access_key_id, cred.secret_access_key)

    # usage: the cost table and the series over the chosen span, once the coordinator
    # has tallied this hour (the bucket's objects stored)
    coordinator = planet.planet.coordinator
    assert coordinator is not None
    planet.run(coordinator.accounting.rollup.tally())
    browser.find_element(By.ID, "nav-usage").click()
    assert _by_css(browser, "#usage-amount").text.startswith("$")
    Select(browser.find_element(By.ID, "usage-span")).select_by_visible_text("last 24 hours")
    _by_css(browser, "#usage[data-span='0'] #usage-amount")  # redrawn for the span
    assert len(browser.find_elements(By.CSS_SELECTOR, "#usage-charts svg.chart")) == 3
    [hour] = browser.find_elements(By.CSS_SELECTOR, "#usage-table tbody tr")
    stored = hour.find_elements(By.TAG_NAME, "td")[1].text
    assert stored.endswith("B") and stored != "0 B"  # the bucket's objects
    browser.save_screenshot(str(screenshots / "tenant-usage.png"))
    assert js_errors(browser) == []
