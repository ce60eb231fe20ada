"""Operator admission: who may run nodes, where, and the join tokens that say so.

The network's administrator admits an *operator* (a company running data
centres): a name, the regions its nodes may be in, and whether it holds compute
admission. Admission issues a join token (:class:`~skymesh.wire.registry.JoinToken`)
signed by the coordinator's identity and expiring; its text is shown once and
only its id is kept. A token signed by any current coordinator key
(``coordinator/keyring.py``) is honoured, so a node may join through another
coordinator than the one that issued its token. A node joins with it:

- a **new node** needs the operator's latest token, unexpired; admitting the
  operator again issues a new token and retires the earlier ones;
- an **already registered node** rejoins with its token even when expired or
  retired (or with none), as long as it stays with its operator: it was admitted;
- the node's operator is the token's and its region must be one the operator may
  use; what the node says of its operator is ignored.

A node is *admitted* (:meth:`OperatorBook.admits`) while its operator exists, is
not revoked and allows its region. Revocation is for good: the row stays, the
name cannot be admitted again, and every node of the operator stops being
admitted at once (the registry recomputes its copy; other replicas reload it
within their cache period).

:func:`admit_join` is the pure rule a join goes through; :class:`OperatorBook`
keeps the rows (``operators``) and an in-memory copy.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from skymesh.coordinator.db.engine import Database
from skymesh.coordinator.db.schema import operators
from skymesh.coordinator.keyring import Keyring
from skymesh.errors import BadRequest, Conflict, Forbidden, NotFound
from skymesh.wire.identity import Identity
from skymesh.wire.registry import (
    AdmitOperatorRequest,
    JoinToken,
    OperatorInfo,
    decode_join_token,
    encode_join_token,
)
from skymesh.wire.signing import sign

#: Operator names: what may sit in a URL path and a log line as it is.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REGION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_REGIONS = 64
MAX_TOKEN_LIFETIME = 366 * 24 * 3600.0


@dataclass(frozen=True)
class OperatorRecord:
    """One ``operators`` row."""

    name: str
    regions: tuple[str, ...]
    compute: bool
    created_at: float
    token_id: str
    token_issued_at: float
    token_expires_at: float
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def info(self, nodes: int = 0) -> OperatorInfo:
        return OperatorInfo(
            name=self.name,
            regions=list(self.regions),
            compute=self.compute,
            created_at=self.created_at,
            token_issued_at=self.token_issued_at,
            token_expires_at=self.token_expires_at,
            revoked_at=self.revoked_at,
            nodes=nodes,
        )


def check_admission(req: AdmitOperatorRequest) -> tuple[str, ...]:
    """The request's regions, deduplicated in order; :class:`BadRequest` when malformed."""
    if not NAME_PATTERN.fullmatch(req.name):
        raise BadRequest(
            f"operator name {req.name[:80]!r}: 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    regions = tuple(dict.fromkeys(r.strip() for r in req.regions))
    if not regions or len(regions) > MAX_REGIONS:
        raise BadRequest(f"an operator needs 1 to {MAX_REGIONS} regions")
    bad = [r for r in regions if not REGION_PATTERN.fullmatch(r)]
    if bad:
        raise BadRequest(f"region {bad[0][:80]!r}: 1-64 letters, digits, '.', '_' or '-'")
    if not 0 < req.expires_in <= MAX_TOKEN_LIFETIME:
        raise BadRequest(
            f"a join token expires after 0 to {MAX_TOKEN_LIFETIME / 86400:.0f} days, not"
            f" {req.expires_in} seconds"
        )
    return regions


def admit_join(
    token: JoinToken | None,
    known_operator: str | None,
    region: str,
    book: Mapping[str, OperatorRecord],
    now: float,
) -> OperatorRecord:
    """The operator a joining node belongs to; :class:`Forbidden` when it may not join (pure).

    ``token``: the verified join token the node sent (None: none);
    ``known_operator``: the operator of the node's registration (None: a new node).
    """
    if token is None:
        if known_operator is None:
            raise Forbidden(
                "a new node needs a join token: its operator gets one from the network's"
                " administrator (`skymesh operator add`); set the node's join_token",
                code="JoinTokenRequired",
            )
        name = known_operator
    else:
        name = token.operator
    op = book.get(name)
    if op is None:
        raise Forbidden(f"operator {name!r} is not admitted to this network", code="NotAdmitted")
    if op.revoked:
        raise Forbidden(f"operator {name!r} was revoked", code="OperatorRevoked")
    if token is not None and known_operator != token.operator:
        if token.token_id != op.token_id:
            raise Forbidden(
                f"this join token of operator {name!r} was replaced by a newer one; ask the"
                " administrator for the current token",
                code="JoinTokenReplaced",
            )
        if now >= token.expires_at:
            raise Forbidden(
                f"the join token of operator {name!r} expired {now - token.expires_at:.0f} s"
                " ago; ask the administrator for a new one (`skymesh operator add`)",
                code="JoinTokenExpired",
            )
    if region not in op.regions:
        raise Forbidden(
            f"operator {name!r} may run nodes in {', '.join(op.regions)}, not in {region!r}",
            code="RegionNotAllowed",
        )
    return op


def operator_record(row: sa.Row) -> OperatorRecord:
    """The record of an ``operators`` row."""
    values = row._asdict()
    values["regions"] = tuple(json.loads(values["regions"]))
    return OperatorRecord(**values)


class OperatorBook:
    """The operators, in the database and as an in-memory copy the registry reads.

    Join tokens are signed with ``identity`` and checked against every current
    coordinator key (``keyring``).
    """

    def __init__(
        self,
        db: Database,
        identity: Identity,
        keyring: Keyring,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.identity = identity
        self.keyring = keyring
        self.clock = clock
        self._ops: dict[str, OperatorRecord] = {}

    @property
    def operators(self) -> Mapping[str, OperatorRecord]:
        return self._ops

    def replace(self, rows: list[sa.Row]) -> None:
        """Take ``operators`` rows read by the registry's reload."""
        self._ops = {r.name: operator_record(r) for r in rows}

    async def load(self) -> None:
        rows = await self.db.read(lambda conn: conn.execute(sa.select(operators)).all())
        self.replace(list(rows))

    def admits(self, operator: str, region: str) -> bool:
        """A node of ``operator`` in ``region`` is admitted (from the copy)."""
        op = self._ops.get(operator)
        return op is not None and not op.revoked and region in op.regions

    def is_revoked(self, operator: str) -> bool:
        op = self._ops.get(operator)
        return op is not None and op.revoked

    async def verify(self, text: str) -> JoinToken:
        """The join token ``text`` says, if a current coordinator key signed it
        (:class:`Forbidden` else)."""
        signed = decode_join_token(text)
        try:
            return await self.keyring.open(signed, JoinToken)
        except Forbidden as e:
            raise Forbidden(
                f"join token not issued by this network's coordinators ({e})",
                code="JoinTokenInvalid",
            ) from e

    async def admit(self, req: AdmitOperatorRequest) -> tuple[OperatorRecord, str]:
        """Admit ``req.name`` (or re-admit it: new regions, flag and token); with the token text."""
        regions = check_admission(req)
        now = self.clock()
        token = JoinToken(
            token_id=secrets.token_hex(16),
            operator=req.name,
            regions=list(regions),
            compute=req.compute,
            issued_at=now,
            expires_at=now + req.expires_in,
        )
        values = {
            "regions": json.dumps(list(regions)),
            "compute": req.compute,
            "token_id": token.token_id,
            "token_issued_at": now,
            "token_expires_at": token.expires_at,
        }

        def txn(conn: sa.Connection) -> sa.Row:
            where = operators.c.name == req.name
            row = conn.execute(sa.select(operators).where(where).with_for_update()).one_or_none()
            if row is None:
                conn.execute(operators.insert().values(name=req.name, created_at=now, **values))
            elif row.revoked_at is not None:
                raise Conflict(
                    f"operator {req.name!r} was revoked; a revoked operator is not admitted"
                    " again: admit it under another name",
                    code="OperatorRevoked",
                )
            else:
                conn.execute(operators.update().where(where).values(**values))
            return conn.execute(sa.select(operators).where(where)).one()

        op = operator_record(await self.db.write(txn))
        self._ops[op.name] = op
        return op, encode_join_token(sign(self.identity, token))

    async def revoke(self, name: str) -> OperatorRecord:
        """Revoke ``name`` for good (idempotent: the first revocation's time is kept)."""
        now = self.clock()

        def txn(conn: sa.Connection) -> sa.Row:
            where = operators.c.name == name
            conn.execute(
                operators.update()
                .where(where, operators.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = conn.execute(sa.select(operators).where(where)).one_or_none()
            if row is None:
                raise NotFound(f"no operator {name!r}", code="NoSuchOperator")
            return row

        op = operator_record(await self.db.write(txn))
        self._ops[op.name] = op
        return op
