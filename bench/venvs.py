"""The other systems' own virtualenvs, made on first use under ``.bench/venvs/``.

Tahoe-LAFS and moto pin their own dependency trees (Twisted, Flask, old botocore
ranges) and are not skymesh's dependencies, so each lives in a virtualenv of its own;
matplotlib, only needed to draw the chart, gets a third ("tools"). pip runs with the
machine's own configuration (index, extra index, find-links), as a developer's would.
A stamp file records what was installed, so a changed requirement rebuilds the venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench" / "venvs"

REQUIREMENTS: dict[str, list[str]] = {
    "tahoe": ["tahoe-lafs"],
    "moto": ["moto[server]"],
    "tools": ["matplotlib"],
    "profile": ["py-spy"],  # only for --profile
}


def venv_dir(name: str) -> Path:
    return VENVS / name


def ensure(name: str) -> Path:
    """The venv's ``bin/`` folder, creating the venv and installing into it if needed."""
    path = venv_dir(name)
    stamp = path / ".bench-installed"
    want = "\n".join(REQUIREMENTS[name])
    if stamp.exists() and stamp.read_text() == want:
        return path / "bin"
    if path.exists():
        shutil.rmtree(path)
    print(f"   installing {' '.join(REQUIREMENTS[name])} into {path} (first run only)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    log = VENVS / f"{name}-install.log"
    with open(log, "wb") as out:
        result = subprocess.run(
            [str(path / "bin" / "pip"), "install", "--upgrade", *REQUIREMENTS[name]],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise RuntimeError(
            f"pip could not install {REQUIREMENTS[name]} into {path}: see {log}; "
            f"fix the cause (network, index) and run again, or leave it out with --only"
        )
    stamp.write_text(want)
    return path / "bin"


def package_version(name: str, package: str) -> str:
    """A package's version inside one of these venvs, or "" when it is not there."""
    python = venv_dir(name) / "bin" / "python"
    if not python.exists():
        return ""
    out = subprocess.run(
        [str(python), "-c", f"from importlib.metadata import version; print(version({package!r}))"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() if out.returncode == 0 else ""
