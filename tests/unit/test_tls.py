"""HTTPS on the gateway: the local CA of ``up --tls``, the server context, the config rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from skymesh.config import Credential, GatewayConfig, load_config
from skymesh.errors import ConfigError
from skymesh.gateway.service import tls_context
from skymesh.network.up import Network, NetworkSpec, NetworkState, _gateway_home
from skymesh.tls import ensure_local_tls

HOSTS = ["127.0.0.1", "localhost"]


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_certificate_names_loopback_and_chains_to_the_ca(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path / "tls", HOSTS)
    cert, ca = _cert(files.cert), _cert(files.ca)
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert dt.timedelta(days=300) < cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert files.key.stat().st_mode & 0o077 == 0  # private keys are the owner's only
    assert (tmp_path / "tls" / "ca-key.pem").stat().st_mode & 0o077 == 0
    # what a client does with it: trust ca.pem, check the name
    client = ssl.create_default_context(cafile=files.ca)
    assert client.check_hostname


def test_files_are_reused_on_a_second_call(tmp_path: Path) -> None:
    first = ensure_local_tls(tmp_path, HOSTS)
    pems = {p: p.read_bytes() for p in (first.ca, first.cert, first.key)}
    second = ensure_local_tls(tmp_path, HOSTS)
    assert second == first
    assert {p: p.read_bytes() for p in (second.ca, second.cert, second.key)} == pems


def test_a_new_host_gets_a_new_server_certificate_from_the_same_ca(tmp_path: Path) -> None:
    first = ensure_local_tls(tmp_path, HOSTS)
    ca, old = first.ca.read_bytes(), first.cert.read_bytes()
    again = ensure_local_tls(tmp_path, [*HOSTS, "10.1.2.3"])
    assert again.ca.read_bytes() == ca and again.cert.read_bytes() != old
    names = _cert(again.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert ipaddress.ip_address("10.1.2.3") in names.value.get_values_for_type(x509.IPAddress)


def test_missing_or_broken_files_are_made_again(tmp_path: Path) -> None:
    first = ensure_local_tls(tmp_path, HOSTS)
    first.key.unlink()
    first.cert.write_text("not a certificate")
    again = ensure_local_tls(tmp_path, HOSTS)
    _cert(again.cert).verify_directly_issued_by(_cert(again.ca))
    assert again.key.exists()
    (tmp_path / "ca.pem").unlink()  # a new CA: the server certificate follows it
    third = ensure_local_tls(tmp_path, HOSTS)
    _cert(third.cert).verify_directly_issued_by(_cert(third.ca))


def test_the_gateway_context_loads_the_generated_pair_for_tls_1_2_and_later(
    tmp_path: Path,
) -> None:
    files = ensure_local_tls(tmp_path, HOSTS)
    ctx = tls_context(str(files.cert), str(files.key))
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_bad_certificate_files_are_named_in_the_error(tmp_path: Path) -> None:
    files = ensure_local_tls(tmp_path / "a", HOSTS)
    other = ensure_local_tls(tmp_path / "b", HOSTS)
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError, match=f"cannot read TLS certificate {missing}"):
        tls_context(str(missing), str(files.key))
    with pytest.raises(ConfigError, match=f"TLS key {files.cert} is not"):
        tls_context(str(files.cert), str(files.cert))
    with pytest.raises(ConfigError, match=f"TLS certificate {files.key} is not"):
        tls_context(str(files.key), str(files.key))
    with pytest.raises(ConfigError, match=f"TLS key {other.key} does not match"):
        tls_context(str(files.cert), str(other.key))


def test_a_config_with_only_one_of_cert_and_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert is set but tls_key is not"):
        GatewayConfig(tls_cert="server.pem")
    with pytest.raises(ConfigError, match="SKYMESH_GATEWAY_TLS_CERT"):
        load_config(GatewayConfig, environ={"SKYMESH_GATEWAY_TLS_KEY": "server-key.pem"})
    toml = tmp_path / "gw.toml"
    toml.write_text('[gateway]\ntls_cert = "server.pem"\n')
    with pytest.raises(ConfigError, match="tls_key"):
        load_config(GatewayConfig, toml, environ={})
    both = load_config(
        GatewayConfig,
        environ={"SKYMESH_GATEWAY_TLS_CERT": "c.pem", "SKYMESH_GATEWAY_TLS_KEY": "k.pem"},
    )
    assert (both.tls_cert, both.tls_key) == ("c.pem", "k.pem")
    assert GatewayConfig().tls_cert == GatewayConfig().tls_key == ""  # plain HTTP by default


def test_up_with_tls_writes_an_https_gateway_config(tmp_path: Path) -> None:
    """What `skymesh up --tls` hands its gateway, without starting the processes."""
    net = Network(NetworkSpec(home=tmp_path, nodes=2, compute=False, tls=True))
    net.tls = ensure_local_tls(tmp_path / "tls", HOSTS)
    net.write_configs(NetworkState(admin_token="t"))
    gw = load_config(GatewayConfig, tmp_path / "gateway" / "config.toml", environ={})
    assert (gw.tls_cert, gw.tls_key) == (str(net.tls.cert), str(net.tls.key))
    assert net.endpoint == "https://127.0.0.1:9000"
    net.credential = plain_cred = Credential(
        access_key_id="AK", secret_access_key="SK", project_id="p", api_key="a",
        encryption_secret="00" * 32,
    )  # fmt: skip
    banner = net.banner()
    assert "S3 endpoint        https://127.0.0.1:9000" in banner
    assert f"export AWS_CA_BUNDLE={net.tls.ca}" in banner
    assert "storage console    https://127.0.0.1:9000/_console/" in banner
    assert f"network console    {net.coordinator_url}/console/" in banner
    plain = Network(NetworkSpec(home=tmp_path / "plain", nodes=2, compute=False))
    plain.write_configs(NetworkState(admin_token="t"))
    gw = load_config(GatewayConfig, tmp_path / "plain" / "gateway" / "config.toml", environ={})
    assert gw.tls_cert == "" and plain.endpoint == "http://127.0.0.1:9000"
    plain.credential = plain_cred
    assert "AWS_CA_BUNDLE" not in plain.banner() and "CA certificate" not in plain.banner()


def test_up_with_tls_and_distance_gives_every_region_gateway_https(tmp_path: Path) -> None:
    """`up --tls --distance`: each region's gateway serves the same certificate over https."""
    spec = NetworkSpec(home=tmp_path, nodes=2, compute=False, tls=True, distance=True)
    net = Network(spec)
    net.tls = ensure_local_tls(tmp_path / "tls", HOSTS)
    net.write_configs(NetworkState(admin_token="t"))

    async def regions() -> None:
        try:
            await net._region_gateways()
        finally:
            assert net.distance is not None
            await net.distance.close()

    asyncio.run(regions())
    assert list(net.gateways) == list(spec.regions)
    assert net.gateways[spec.regions[0]] == net.endpoint
    for region, url in net.gateways.items():
        assert url.startswith("https://"), region
        home = tmp_path / "gateway" if region == spec.regions[0] else _gateway_home(spec, region)
        gw = load_config(GatewayConfig, home / "config.toml", environ={})
        assert (gw.tls_cert, gw.tls_key) == (str(net.tls.cert), str(net.tls.key)), region
        assert gw.port == int(url.rsplit(":", 1)[1])
