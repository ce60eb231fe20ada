"""A client that holds given data keys and no root secret: what a batch node reads and writes with.

:class:`ScopedClient` is a :class:`~skymesh.client.client.Client` whose data keys
come from a fixed map ``{(bucket, key): data key}`` handed over by the owner's
gateway, and whose coordinator calls go to routes that a signed order opens
(``auth_headers`` instead of the project's API key). It can read an object whose
key it holds (``open_object``) and write parts of a multipart upload the owner
began (``upload_part``, ``complete_multipart``, ``abort_multipart``): every one
of those paths asks for the object's data key, never the bucket key. Anything
that needs the bucket key (a new object's key wrap) raises :class:`Forbidden`.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from skymesh.client.client import Client
from skymesh.client.metainfo import MetainfoClient
from skymesh.errors import Forbidden
from skymesh.rpc import RpcClient


class ScopedClient(Client):
    def __init__(
        self,
        base_url: str,
        auth_headers: Mapping[str, str],
        keys: Mapping[tuple[str, str], bytes],
        session: aiohttp.ClientSession,
        download_extra_pieces: int = 2,
    ) -> None:
        super().__init__(base_url, "", "", b"", session, download_extra_pieces)
        self.metainfo = MetainfoClient(base_url, "", session)
        self.metainfo.rpc = RpcClient(base_url, session, headers=dict(auth_headers))
        self._keys = dict(keys)

    def bucket_key(self, bucket: str) -> bytes:
        raise Forbidden("a scoped client holds no bucket key: only the objects it was given")

    def _data_key(self, info_bucket: str, key: str, wrapped: bytes) -> bytes:
        data_key = self._keys.get((info_bucket, key))
        if data_key is None:
            raise Forbidden(f"this scoped client holds no key for {info_bucket}/{key}")
        return data_key
