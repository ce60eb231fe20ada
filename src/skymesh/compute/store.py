"""Models as objects in the network: push with a manifest, fetch into a bounded cache.

``skymesh models push NAME PATH...`` stores each file as ``NAME/<file>`` in a
bucket of a project (default ``models``), then ``NAME/manifest.json`` listing
the files with sizes and BLAKE3 hashes, the kind and the context length. The
manifest goes last, so a reader never sees a model whose files are not all there.

Nodes fetch a model through the client library on first use: the manifest,
then each file into ``cache_dir/NAME/<blake3>/<file>`` while hashing it; a file
whose hash differs is thrown away and the fetch fails. The cache is bounded:
after a fetch, least recently used models that are not loaded are removed
until it fits ``max_bytes``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from pathlib import Path

import aiohttp
import blake3
import msgspec

from skymesh.client.client import Client
from skymesh.compute.catalog import KINDS, ModelSpec
from skymesh.config import Credential, load_credentials, write_credentials
from skymesh.errors import BadRequest, Conflict, IntegrityError, SkymeshError
from skymesh.private import make_dirs
from skymesh.rpc import RpcClient
from skymesh.wire import routes
from skymesh.wire.metainfo import CreateProjectRequest

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MODELS_BUCKET = "models"
READ_CHUNK = 1024 * 1024
MANIFEST_VERSION = 1


class ModelFile(msgspec.Struct, frozen=True):
    name: str
    size: int
    blake3: str  # hex


class ModelManifest(msgspec.Struct, frozen=True, kw_only=True):
    """What ``NAME/manifest.json`` holds (a versioned stored format)."""

    version: int = MANIFEST_VERSION
    name: str
    kind: str
    context_length: int
    dimensions: int = 0
    owned_by: str = ""
    files: list[ModelFile]

    def spec(self) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            kind=self.kind,
            context_length=self.context_length,
            dimensions=self.dimensions,
            owned_by=self.owned_by,
        )


def check_name(name: str) -> None:
    if not name or len(name) > 128 or "/" in name or name.startswith(".") or not name.isprintable():
        raise BadRequest(f"model name {name!r}: 1-128 printable characters, no '/', no leading '.'")


async def _file_chunks(
    path: Path, hasher: blake3.blake3, sent: Callable[[int], None] | None = None
) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while True:
            chunk = await asyncio.to_thread(f.read, READ_CHUNK)
            if not chunk:
                return
            hasher.update(chunk)
            if sent is not None:
                sent(len(chunk))
            yield chunk


async def push_model(
    client: Client,
    name: str,
    paths: Sequence[Path],
    *,
    kind: str,
    context_length: int,
    dimensions: int = 0,
    owned_by: str = "",
    bucket: str = MODELS_BUCKET,
    sent: Callable[[int], None] | None = None,
) -> ModelManifest:
    """Store ``paths`` and their manifest as the model ``name``.

    ``sent`` is told the size of each chunk of the files as the upload takes it.
    """
    check_name(name)
    if kind not in KINDS:
        raise BadRequest(f"model kind must be one of {', '.join(KINDS)}")
    if context_length < 1:
        raise BadRequest("context length must be at least 1")
    names = [p.name for p in paths]
    if not paths or len(set(names)) != len(names) or MANIFEST in names:
        raise BadRequest(f"give one or more files with distinct names (not {MANIFEST})")
    with contextlib.suppress(Conflict):  # ours already (another project's fails below)
        await client.create_bucket(bucket)
    files = []
    for path in paths:
        hasher = blake3.blake3()
        size = path.stat().st_size
        await client.put_object(
            bucket, f"{name}/{path.name}", _file_chunks(path, hasher, sent), size=size
        )
        files.append(ModelFile(name=path.name, size=size, blake3=hasher.hexdigest()))
    manifest = ModelManifest(
        name=name,
        kind=kind,
        context_length=context_length,
        dimensions=dimensions,
        owned_by=owned_by,
        files=files,
    )
    body = msgspec.json.encode(manifest)

    async def one() -> AsyncIterator[bytes]:
        yield body

    await client.put_object(bucket, f"{name}/{MANIFEST}", one(), size=len(body))
    return manifest


async def read_manifest(client: Client, name: str, bucket: str = MODELS_BUCKET) -> ModelManifest:
    check_name(name)
    handle = await client.open_object(bucket, f"{name}/{MANIFEST}")
    if handle.info.size > 1024 * 1024:
        raise IntegrityError(f"the manifest of {name} is implausibly large")
    raw = b"".join([c async for c in handle.read()])
    try:
        manifest = msgspec.json.decode(raw, type=ModelManifest)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        raise IntegrityError(f"the manifest of {name} is malformed: {e}") from e
    if manifest.version != MANIFEST_VERSION or manifest.name != name:
        raise IntegrityError(
            f"the manifest of {name} has version {manifest.version} or another name"
        )
    for f in manifest.files:
        if not f.name or "/" in f.name or f.name.startswith(".") or f.size < 0:
            raise IntegrityError(f"the manifest of {name} names a bad file {f.name!r}")
    return manifest


class ModelCache:
    """Model files fetched from the network, on local disk, at most ``max_bytes`` in all."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        make_dirs(self.root)
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetched_bytes = 0

    async def fetch(
        self, client: Client, name: str, bucket: str = MODELS_BUCKET, keep: Collection[str] = ()
    ) -> tuple[ModelManifest, list[Path]]:
        """The model's manifest and local files, downloading what the cache lacks."""
        manifest = await read_manifest(client, name, bucket)
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            paths = []
            for f in manifest.files:
                path = self.root / name / f.blake3 / f.name
                if not (path.is_file() and path.stat().st_size == f.size):
                    await self._download(client, bucket, name, f, path)
                os.utime(path.parent)  # recency for LRU eviction
                paths.append(path)
        self.evict(keep={name, *keep})
        return manifest, paths

    async def _download(
        self, client: Client, bucket: str, name: str, f: ModelFile, path: Path
    ) -> None:
        started = time.perf_counter()
        handle = await client.open_object(bucket, f"{name}/{f.name}")
        if handle.info.size != f.size:
            raise IntegrityError(
                f"{name}/{f.name} has {handle.info.size} bytes, its manifest says {f.size}"
            )
        make_dirs(path.parent)
        tmp = path.with_name(path.name + ".part")
        hasher = blake3.blake3()
        try:
            with tmp.open("wb") as out:
                async for chunk in handle.read():
                    hasher.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            if hasher.hexdigest() != f.blake3:
                raise IntegrityError(
                    f"{name}/{f.name} does not match the BLAKE3 hash in its manifest: not used"
                )
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        self.fetched_bytes += f.size
        log.info(
            "fetched %s/%s (%d bytes) in %.2f s",
            name,
            f.name,
            f.size,
            time.perf_counter() - started,
        )

    def usage(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, directory) of each cached model version."""
        out = []
        for model_dir in self.root.iterdir() if self.root.is_dir() else ():
            for version in model_dir.iterdir():
                size = sum(p.stat().st_size for p in version.iterdir() if p.is_file())
                out.append((version.stat().st_mtime, size, version))
        return out

    def evict(self, keep: Collection[str] = ()) -> int:
        """Remove least recently used model versions until the cache fits; bytes freed."""
        entries = sorted(self.usage())
        total = sum(size for _, size, _ in entries)
        freed = 0
        for _, size, version in entries:
            if total <= self.max_bytes:
                break
            if version.parent.name in keep:
                continue
            shutil.rmtree(version, ignore_errors=True)
            total -= size
            freed += size
            log.info("evicted %s from the model cache (%d bytes)", version, size)
        return freed


# -- packaged models into the network (`skymesh up`, `skymesh models push packaged`) ----


async def push_packaged(client: Client, bucket: str = MODELS_BUCKET) -> list[tuple[str, bool]]:
    """Push every packaged model (the ai extra) not already in ``bucket``: (name, pushed)."""
    from skymesh.compute.catalog import packaged_models

    out = []
    for spec in packaged_models():
        files = spec.packaged_files() or []
        try:
            have = await read_manifest(client, spec.name, bucket)
            local = [(p.name, p.stat().st_size, _blake3_file(p)) for p in files]
            same = [(f.name, f.size, f.blake3) for f in have.files] == local
        except SkymeshError:
            same = False
        if not same:
            await push_model(
                client,
                spec.name,
                files,
                kind=spec.kind,
                context_length=spec.context_length,
                dimensions=spec.dimensions,
                owned_by=spec.owned_by,
                bucket=bucket,
            )
        out.append((spec.name, not same))
    return out


def _blake3_file(path: Path) -> str:
    hasher = blake3.blake3()
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


async def models_credential(
    session: aiohttp.ClientSession, coordinator_url: str, admin_token: str, path: Path
) -> Credential:
    """The credential of the project that holds models, created (and saved) on first use.

    A project of its own, so models never show up among a user's buckets.
    """
    existing = load_credentials(path)
    if existing:
        return existing[0]
    rpc = RpcClient(coordinator_url, session, {"Authorization": f"Bearer {admin_token}"})
    project = await rpc.send(routes.CREATE_PROJECT, CreateProjectRequest(name="skymesh-models"))
    cred = Credential(
        access_key_id="MODELS" + secrets.token_hex(7).upper(),  # not an S3 key: never registered
        secret_access_key=secrets.token_urlsafe(30),
        project_id=project.project_id,
        api_key=project.api_key,
        encryption_secret=secrets.token_hex(32),
    )
    write_credentials(path, [cred])
    return cred
