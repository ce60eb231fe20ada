"""What a client's caller may read: the access rule a client applies around its reads.

A client's keys open every object of the project (or every object it was given);
its :class:`AccessRule` decides how much of that its caller may see. The owner's
rule, :data:`OWNER`, lets everything through. The S3 gateway serves anonymous
callers through a rule that lets through only what the owner made public
(``gateway/s3/public.py``).
"""

from __future__ import annotations

from typing import Protocol

from skymesh.client.objectmeta import ObjectMeta
from skymesh.errors import SkymeshError


class AccessRule(Protocol):
    #: True: an object is read with a HEAD and checked before any download call, so a
    #: caller who may not read it cannot make the coordinator sign orders for it.
    head_first: bool

    async def check_bucket(self, bucket: str) -> None:
        """Raise unless the caller may see ``bucket``'s info and list its objects."""
        ...

    def check_object(self, meta: ObjectMeta) -> None:
        """Raise unless the caller may read the object version these metadata belong to."""
        ...

    async def refusal(self, bucket: str, err: SkymeshError) -> SkymeshError:
        """What the caller is told when reading in ``bucket`` failed with ``err``."""
        ...


class Owner:
    """The project's own calls: whatever the keys open."""

    head_first = False

    async def check_bucket(self, bucket: str) -> None:
        return None

    def check_object(self, meta: ObjectMeta) -> None:
        return None

    async def refusal(self, bucket: str, err: SkymeshError) -> SkymeshError:
        return err


OWNER = Owner()
