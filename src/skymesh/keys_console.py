"""`skymesh project` and `skymesh keys`: what the commands parse, write and show.

Kept apart from ``cli.py`` so the command line stays a thin list of commands. The
coordinator answers with the admin token (``skymesh.admin``); the project's root
secret is made here and written to the gateway's credentials file only.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from skymesh.access_secret import derive_s3_secret
from skymesh.config import ProjectSecret, load_credentials_file, write_credentials
from skymesh.usage_console import parse_age
from skymesh.wire.projects import KeyList, ProjectList

NEVER = ("never", "none", "")


def parse_expires(value: str) -> float | None:
    """Seconds until a key expires from ``30m``, ``12h``, ``30d``, ``2w`` (or ``3600s``);
    None for ``never``. ValueError says what works."""
    text = value.strip().lower()
    if text in NEVER:
        return None
    seconds = parse_age(text)
    if seconds is None or seconds <= 0:
        raise ValueError(
            f"--expires {value!r}: give a span such as 90s, 30m, 12h, 30d or 2w, or never"
        )
    return seconds


def new_root_secret() -> str:
    """A project's root secret (hex, 32 bytes): bucket keys and S3 secrets derive from it."""
    return secrets.token_hex(32)


def add_project(path: Path, project: ProjectSecret) -> None:
    """Add ``project`` as a ``[[projects]]`` entry of the credentials file (made 0600)."""
    found = load_credentials_file(path)
    write_credentials(path, found.credentials, [*found.projects, project])


def remove_project(path: Path, project_id: str) -> bool:
    """Drop every entry of ``project_id`` from the credentials file; whether there was one."""
    found = load_credentials_file(path)
    creds = [c for c in found.credentials if c.project_id != project_id]
    projects = [p for p in found.projects if p.project_id != project_id]
    if len(creds) == len(found.credentials) and len(projects) == len(found.projects):
        return False
    write_credentials(path, creds, projects)
    return True


def s3_secret(path: Path, project_id: str, access_key_id: str) -> str | None:
    """The secret of an access key of ``project_id``, if the credentials file at ``path``
    holds the project's root secret; else None."""
    project = load_credentials_file(path).project_secrets().get(project_id)
    if project is None:
        return None
    return derive_s3_secret(project.encryption_secret, access_key_id)


def when(t: float | None) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC") if t else ""


def show_projects(listed: ProjectList, console: Console) -> None:
    table = Table("project", "id", "created", "buckets", "S3 keys", "inference keys")
    for p in listed.projects:
        table.add_row(
            p.name,
            p.project_id,
            when(p.created_at),
            str(p.buckets),
            str(p.live_access_keys),
            str(p.live_inference_keys),
        )
    console.print(table)


def key_state(revoked_at: float | None, expires_at: float | None, now: float) -> str:
    if revoked_at is not None:
        return f"revoked {when(revoked_at)}"
    if expires_at is not None:
        return f"{'expired' if expires_at <= now else 'expires'} {when(expires_at)}"
    return "live"


def show_keys(listed: KeyList, names: dict[str, str], console: Console, now: float) -> None:
    """Both kinds of keys; ``names``: project id -> name."""
    table = Table("kind", "key id", "project", "name", "created", "state")
    for a in listed.access_keys:
        table.add_row(
            "s3",
            a.access_key_id,
            names.get(a.project_id, a.project_id),
            a.name,
            when(a.created_at),
            key_state(a.revoked_at, a.expires_at, now),
        )
    for i in listed.inference_keys:
        table.add_row(
            "inference",
            i.key_id,
            names.get(i.project_id, i.project_id),
            i.name,
            when(i.created_at),
            key_state(i.revoked_at, i.expires_at, now),
        )
    console.print(table)
