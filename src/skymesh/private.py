"""Files and folders only their owner may read: secret files 0600, data folders 0700.

Every role keeps secrets on disk (identity keys, configs holding tokens, credentials,
TLS keys), so each is created with its final mode in the ``open`` call that makes it,
never made readable first and tightened after: there is no window in which another
user of the machine can open it. Folders a role creates are 0700 the same way
(``mkdir`` with the mode, each missing parent too, as ``mkdir -p`` would not).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_dirs(path: Path) -> None:
    """Create ``path`` and each missing folder above it, owner-only; existing ones stay."""
    missing: list[Path] = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=DIR_MODE, exist_ok=True)


def private_dir(path: Path) -> Path:
    """``path`` as a role's data folder: created owner-only, or made so when it exists
    with access for others (a folder from an older version)."""
    path = Path(path)
    make_dirs(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, mode & ~0o077 | DIR_MODE)
    return path


def write_private(path: Path, data: bytes | str, *, mode: int = FILE_MODE) -> None:
    """Write ``path`` atomically, created with ``mode`` (owner-only unless told otherwise).

    The bytes go to a fresh temporary file beside it (``O_EXCL``: a stale one is removed
    first, never reused with its old mode) which then replaces ``path``; a crash leaves
    the old file or the new one, never half of either. Missing folders are made 0700.
    """
    path = Path(path)
    make_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
