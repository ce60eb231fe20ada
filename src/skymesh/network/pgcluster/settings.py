"""How fast a pg_auto_failover formation fails over, and the servers' own settings.

Failing over after a primary's death takes, on the monitor's clock:

1. detection: the monitor marks the primary unhealthy once its keeper has not reported
   for ``node_considered_unhealthy_timeout`` and a health check (every
   ``health_check_period``, ``health_check_max_retries`` retries ``health_check_retry_delay``
   apart, each at most ``health_check_timeout``) has failed;
2. ``primary_demote_timeout``: the monitor waits this long for the old primary to
   confirm it stopped; a dead one never does, so this is spent in full;
3. promotion of the secondary (about a second: a keeper loop and ``pg_promote``).

Soundness: a primary cut off from the monitor and from every standby demotes itself
after the keeper's ``network_partition_timeout``. Promotion must only come after that,
or two primaries could take writes: hence ``primary_demote_timeout`` stays well above
``network_partition_timeout`` (pg_auto_failover's defaults: 30 s and 20 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# Time for the isolated primary's keeper to notice (its loop runs every second, its
# monitor connection has its own timeout) beyond network_partition_timeout.
PARTITION_MARGIN_MS = 3000


@dataclass(frozen=True)
class FailoverTimeouts:
    """The monitor's ``pgautofailover.*`` settings and the keepers' partition timeout.

    The defaults here are for tests and local networks (failover in about 12 s);
    ``PG_AUTO_FAILOVER_DEFAULTS`` are pg_auto_failover's own (about 30-40 s)."""

    health_check_period_ms: int = 1000
    health_check_timeout_ms: int = 2000
    health_check_max_retries: int = 1
    health_check_retry_delay_ms: int = 500
    node_considered_unhealthy_timeout_ms: int = 3000
    # no failover this soon after the monitor starts: it first health-checks every node
    startup_grace_period_ms: int = 3000
    primary_demote_timeout_ms: int = 8000
    network_partition_timeout_s: int = 4

    def __post_init__(self) -> None:
        floor = self.network_partition_timeout_s * 1000 + PARTITION_MARGIN_MS
        if self.primary_demote_timeout_ms < floor:
            raise ValueError(
                f"primary_demote_timeout_ms={self.primary_demote_timeout_ms} must be at least "
                f"network_partition_timeout_s * 1000 + {PARTITION_MARGIN_MS} = {floor}: "
                "an isolated primary must demote itself before its standby is promoted"
            )

    def monitor_settings(self) -> dict[str, str]:
        """The monitor's ``postgresql.conf`` lines (all take effect on reload)."""
        return {
            "pgautofailover.health_check_period": str(self.health_check_period_ms),
            "pgautofailover.health_check_timeout": str(self.health_check_timeout_ms),
            "pgautofailover.health_check_max_retries": str(self.health_check_max_retries),
            "pgautofailover.health_check_retry_delay": str(self.health_check_retry_delay_ms),
            "pgautofailover.node_considered_unhealthy_timeout": str(
                self.node_considered_unhealthy_timeout_ms
            ),
            "pgautofailover.startup_grace_period": str(self.startup_grace_period_ms),
            "pgautofailover.primary_demote_timeout": str(self.primary_demote_timeout_ms),
        }

    def keeper_settings(self) -> dict[str, str]:
        """The keepers' ``pg_autoctl config set`` keys."""
        return {"timeout.network_partition_timeout": str(self.network_partition_timeout_s)}


PG_AUTO_FAILOVER_DEFAULTS = FailoverTimeouts(
    health_check_period_ms=5000,
    health_check_timeout_ms=5000,
    health_check_max_retries=2,
    health_check_retry_delay_ms=2000,
    node_considered_unhealthy_timeout_ms=20000,
    startup_grace_period_ms=10000,
    primary_demote_timeout_ms=30000,
    network_partition_timeout_s=20,
)

# Settings for throwaway servers on a shared test machine. pg_autoctl sizes
# shared_buffers from the machine's memory (6 GB on a 24 GB host): too much for
# several servers at once. fsync=off loses nothing when a process dies (the kernel
# keeps its written pages), only when the kernel or the machine does, which tests do
# not do; synchronous_commit stays "on", so a commit still waits for the standby.
TEST_SERVER_SETTINGS: Mapping[str, str] = {
    "shared_buffers": "32MB",
    "work_mem": "4MB",
    "maintenance_work_mem": "16MB",
    "fsync": "off",
    "wal_keep_size": "256MB",
}


def conf_lines(settings: Mapping[str, str]) -> str:
    """``postgresql.conf`` lines, each value quoted."""
    return "".join(f"{name} = '{value}'\n" for name, value in settings.items())
