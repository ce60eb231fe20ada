"""Database URLs as the coordinator accepts them, made into SQLAlchemy URLs.

- ``sqlite:///path`` runs on the stdlib driver whatever driver it names.
- ``postgresql://`` with no driver means psycopg 3 (``postgresql+psycopg``), not
  SQLAlchemy's default psycopg2; ``postgresql+asyncpg://`` picks asyncpg.
- Several hosts, for a failover pair or group: libpq's
  ``postgresql://user@h1:5432,h2:5432/db?target_session_attrs=read-write`` or
  SQLAlchemy's ``postgresql://user@/db?host=h1:5432&host=h2:5432&...``. SQLAlchemy
  cannot parse the first form (it reads ``5432,h2:5432`` as a port), so it is rewritten
  into the second, which the psycopg dialect hands to libpq as ``host=h1,h2
  port=5432,5432``; libpq then tries the hosts in order and keeps the first that
  matches ``target_session_attrs``.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

DEFAULT_PG_DRIVER = "psycopg"

# scheme://[userinfo@]hostlist/rest, where hostlist has a comma
_MULTI_HOST = re.compile(
    r"^(?P<scheme>[^:/]+)://(?P<user>[^@/]*@)?(?P<hosts>[^/@?]*,[^/?]*)(?P<rest>[/?].*)?$"
)


def _hosts_to_query(url: str) -> str:
    m = _MULTI_HOST.match(url)
    if m is None:
        return url
    rest = m["rest"] or "/"
    path, _, query = rest.partition("?")
    hosts = "&".join(f"host={h}" for h in m["hosts"].split(",") if h)
    query = f"{hosts}&{query}" if query else hosts
    return f"{m['scheme']}://{m['user'] or ''}{path or '/'}?{query}"


def parse(url: str) -> sa.URL:
    """The SQLAlchemy URL the coordinator opens for ``url``."""
    parsed = sa.engine.make_url(_hosts_to_query(url))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")  # the stdlib driver, on our threads
    if backend == "postgresql" and parsed.drivername == "postgresql":
        return parsed.set(drivername=f"postgresql+{DEFAULT_PG_DRIVER}")
    return parsed
