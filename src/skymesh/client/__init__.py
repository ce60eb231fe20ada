"""The data path: segmenting, encryption, erasure coding, parallel piece transfer.

Embedded by the gateway, or by a Python program that wants skymesh without S3::

    async with Client.for_project(coordinator_url, api_key, project_id, root_secret) as client:
        await client.put_object("bucket", "key", chunks)
"""

from skymesh.client.client import Client, ObjectHandle, StoredObject
from skymesh.client.objectmeta import ObjectMeta

__all__ = ["Client", "ObjectHandle", "ObjectMeta", "StoredObject"]
