"""Nodes that lie or fill up: corrupt piece bytes never reach the caller, full disks keep
nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from skymesh.node.piecefile import data_size_at
from skymesh.testing.planet import PlanetThread
from tests.conftest import S3Client, random_bytes


def _piece_files(planet: PlanetThread) -> list[list[Path]]:
    """The piece files on disk, node by node."""
    return [[n.store.path(pid) for pid in n.store.iter_piece_ids()] for n in planet.planet.nodes]


def _new_piece_files(planet: PlanetThread, store: Callable[[], object]) -> list[list[Path]]:
    """The piece files ``store`` adds, node by node (nodes that got none left out)."""
    before = {p for files in _piece_files(planet) for p in files}
    store()
    new = [[p for p in files if p not in before] for files in _piece_files(planet)]
    return [files for files in new if files]


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(100, data_size_at(path), 997):  # the piece's bytes, not its record
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_corrupt_pieces_are_detected_and_avoided(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="faults")
    # 81 stripes: windows of 4 and 77, the second decoded in parts of 64 and 13
    data = random_bytes(5 * 1024 * 1024 + 17, seed=99)
    new = _new_piece_files(planet, lambda: s3.put_object(Bucket="faults", Key="obj", Body=data))
    # 10 of the 12 nodes hold one piece of this object (two are spare); corrupt the
    # pieces on every third of those, which include data pieces the reader tries first
    corrupted = 0
    for paths in new[::3]:
        for path in paths:
            _corrupt(path)
            corrupted += 1
    assert corrupted >= 3
    assert s3.get_object(Bucket="faults", Key="obj")["Body"].read() == data
    r = s3.get_object(Bucket="faults", Key="obj", Range="bytes=1000-200000")
    assert r["Body"].read() == data[1000:200001]


def test_too_many_corrupt_pieces_fail_loudly(planet: PlanetThread, s3: S3Client) -> None:
    s3.create_bucket(Bucket="doomed")
    data = random_bytes(200_000, seed=5)
    new = _new_piece_files(planet, lambda: s3.put_object(Bucket="doomed", Key="obj", Body=data))
    for paths in new:
        for path in paths:
            _corrupt(path)
    try:
        s3.get_object(Bucket="doomed", Key="obj")["Body"].read()
    except Exception:
        return  # an S3 error, or a cut connection: never wrong bytes
    raise AssertionError("a read with every piece corrupt returned a whole body")


def test_reads_around_liars_ask_for_fresh_orders(planet: PlanetThread, s3: S3Client) -> None:
    """Merkle-checked re-reads can spend honest nodes' get allowances; the reader renews them."""
    s3.create_bucket(Bucket="renew")
    data = random_bytes(600_000, seed=11)  # ~10 stripes, pieces under one Merkle chunk
    new = _new_piece_files(planet, lambda: s3.put_object(Bucket="renew", Key="obj", Body=data))
    assert all(len(paths) == 1 for paths in new) and len(new) == 10  # two nodes are spare
    for paths in new[:3]:
        _corrupt(paths[0])
    for _ in range(2):
        assert s3.get_object(Bucket="renew", Key="obj")["Body"].read() == data


def test_full_disks_refuse_pieces_and_keep_nothing(planet: PlanetThread, s3: S3Client) -> None:
    """Two of the twelve nodes' disks fill up under them: uploads go to the other ten."""
    p = planet.planet
    full = p.nodes[:2]
    held = [(n.store.piece_count, n.store.used_bytes) for n in full]
    s3.create_bucket(Bucket="full")
    objects = {f"o{i}": random_bytes(300_000, seed=40 + i) for i in range(3)}
    for node in full:
        p.fault(node, "full")
    try:
        for key, data in objects.items():  # each placement holds a full node but 1 time in 66
            s3.put_object(Bucket="full", Key=key, Body=data)
    finally:
        for node in full:
            planet.run(p.heal(node))
    assert sum(n.counters.refusals["InsufficientStorage"] for n in full) >= 1
    assert [(n.store.piece_count, n.store.used_bytes) for n in full] == held
    assert all(n.store.reserved_bytes == 0 for n in full)
    assert all(not any((Path(n.config.data_dir) / "tmp").iterdir()) for n in full)
    for key, data in objects.items():
        assert s3.get_object(Bucket="full", Key=key)["Body"].read() == data
