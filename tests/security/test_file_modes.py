"""Secret files are 0600 and data folders 0700, as every role and `skymesh up` create them.

Another user of the machine must not read a token, a key or a credential: the admin
token sits in ``coordinator/config.toml``, S3 secrets and project API keys in
``credentials.toml``, identity seeds in ``identity.key``, the TLS keys in
``tls/*-key.pem``. The tests walk a whole home after a real start and check every
folder and every secret file; a stale temporary file of an earlier crash does not
lend its mode to the file written over it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from skymesh.config import Credential, load_credentials, write_credentials
from skymesh.private import private_dir, write_private
from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread
from skymesh.tls import ensure_local_tls
from skymesh.wire.identity import Identity
from tests.process.netutil import start_up

SECRET_NAMES = ("config.toml", "credentials.toml", "state.json", "identity.key")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _is_secret(path: Path) -> bool:
    return path.name in SECRET_NAMES or path.name.endswith("-key.pem")


def _open_to_others(home: Path) -> tuple[list[str], list[str], int]:
    """Folders others may enter or list, secret files not 0600, and how many secrets."""
    folders, files, secrets = [], [], 0
    for root, dirs, names in os.walk(home):
        for d in dirs:
            path = Path(root, d)
            if _mode(path) & 0o077:
                folders.append(f"{path.relative_to(home)} {_mode(path):o}")
        for name in names:
            path = Path(root, name)
            if _is_secret(path):
                secrets += 1
                if _mode(path) != 0o600:
                    files.append(f"{path.relative_to(home)} {_mode(path):o}")
    return folders, files, secrets


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A umask that lets files be world-readable, as many systems have: the modes must
    come from the code, not from the environment."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_planet_roles_create_private_folders_and_keys(tmp_path: Path, loose_umask: None) -> None:
    """Coordinator, nodes and gateway in one process: every folder they make is 0700,
    every identity key and trust file 0600."""
    root = tmp_path / "planet"
    thread = PlanetThread(Planet(root, PlanetConfig(node_count=4))).start()
    try:
        folders, files, secrets = _open_to_others(root)
    finally:
        thread.stop()
    assert secrets >= 5  # the coordinator's and four nodes' identity keys
    assert folders == []
    assert files == []
    assert _mode(root / "node-00" / "trusted_coordinators") == 0o600


@pytest.mark.slow
def test_skymesh_up_home_is_private(tmp_path: Path, loose_umask: None) -> None:
    """A real `skymesh up --tls` in a fresh home: the home, every role's folder, logs and
    TLS folder are 0700; configs (the coordinator's holds the admin token), credentials,
    state, identity keys and TLS keys are 0600."""
    home = tmp_path / "home"
    up = start_up(home, nodes=3, args=["--regions", "eu-west,us-east", "--no-compute", "--tls"])
    try:
        folders, files, secrets = _open_to_others(home)
    finally:
        up.kill()
    assert _mode(home) == 0o700
    assert _mode(home / "coordinator" / "config.toml") == 0o600
    assert _mode(home / "tls" / "server-key.pem") == 0o600
    # configs (coordinator, 3 nodes, gateway), credentials, state, 4 identity keys, 2 TLS keys
    assert secrets >= 12
    assert folders == []
    assert files == []


def test_writers_create_owner_only_even_over_stale_files(tmp_path: Path, loose_umask: None) -> None:
    """Each writer of secrets: the file is 0600 from its creation, also where a world-readable
    file or a stale temporary file of a crashed write was there before."""
    target = tmp_path / "a" / "b" / "credentials.toml"
    target.parent.mkdir(parents=True)
    stale = target.with_name(f".{target.name}.tmp")
    stale.write_text("old")
    stale.chmod(0o666)
    target.write_text("")
    target.chmod(0o644)
    cred = Credential(
        access_key_id="AK",
        secret_access_key="s",
        project_id="p",
        api_key="k",
        encryption_secret="00",
    )
    write_credentials(target, [cred])
    assert _mode(target) == 0o600 and load_credentials(target) == [cred]
    assert not stale.exists()

    Identity.generate().save(tmp_path / "new" / "deep" / "identity.key")
    assert _mode(tmp_path / "new" / "deep" / "identity.key") == 0o600
    assert _mode(tmp_path / "new") == 0o700 and _mode(tmp_path / "new" / "deep") == 0o700

    tls = ensure_local_tls(tmp_path / "tls", ["127.0.0.1"])
    assert _mode(tls.key) == 0o600 and _mode(tmp_path / "tls" / "ca-key.pem") == 0o600
    assert _mode(tls.ca) == 0o644  # what clients trust: not a secret
    assert _mode(tmp_path / "tls") == 0o700

    write_private(tmp_path / "plain.txt", "x")
    assert _mode(tmp_path / "plain.txt") == 0o600


def test_an_existing_data_folder_open_to_others_is_closed(tmp_path: Path) -> None:
    """A data folder left 0755 by an older version is made 0700 when a role opens it."""
    folder = tmp_path / "node"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    private_dir(folder)
    assert _mode(folder) == 0o700
