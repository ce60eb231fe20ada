"""The test planet lets a test set any coordinator setting, including its own defaults."""

from __future__ import annotations

from pathlib import Path

from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread


def test_overrides_replace_the_planets_liveness_defaults(tmp_path: Path) -> None:
    thread = PlanetThread(
        Planet(tmp_path, PlanetConfig(node_count=2, coordinator_overrides={"offline_after": 7.0}))
    ).start()
    try:
        coordinator = thread.planet.coordinator
        assert coordinator is not None
        assert coordinator.config.offline_after == 7.0
    finally:
        thread.stop()
