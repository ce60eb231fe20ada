"""The test planet lets a test set any role's setting, including the planet's own defaults."""

from __future__ import annotations

from pathlib import Path

from skymesh.testing.planet import Planet, PlanetConfig, PlanetThread


def test_overrides_replace_the_planets_defaults(tmp_path: Path) -> None:
    config = PlanetConfig(
        node_count=2,
        coordinator_overrides={"offline_after": 7.0},
        node_overrides={"operator": "acme", "heartbeat_interval": 0.25},
    )
    thread = PlanetThread(Planet(tmp_path, config)).start()
    try:
        coordinator = thread.planet.coordinator
        assert coordinator is not None
        assert coordinator.config.offline_after == 7.0
        assert coordinator.config.heartbeat_interval == config.heartbeat_interval
        nodes = thread.planet.nodes
        assert [(n.config.operator, n.config.heartbeat_interval) for n in nodes] == [
            ("acme", 0.25)
        ] * 2
        assert [n.config.region for n in nodes] == list(config.regions[:2])
    finally:
        thread.stop()
