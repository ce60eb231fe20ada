"""PostgreSQL with automatic failover, by pg_auto_failover: a monitor, a primary and a
synchronous standby, run locally for tests, chaos tests and ``skymesh up --ha``."""

from skymesh.network.pgcluster.formation import Formation, FormationSpec, NodeState
from skymesh.network.pgcluster.instance import Instance, KillWhat, PgAutoctlError
from skymesh.network.pgcluster.settings import (
    PG_AUTO_FAILOVER_DEFAULTS,
    TEST_SERVER_SETTINGS,
    FailoverTimeouts,
)
from skymesh.network.pgcluster.start import start_formation

__all__ = [
    "PG_AUTO_FAILOVER_DEFAULTS",
    "TEST_SERVER_SETTINGS",
    "FailoverTimeouts",
    "Formation",
    "FormationSpec",
    "Instance",
    "KillWhat",
    "NodeState",
    "PgAutoctlError",
    "start_formation",
]
