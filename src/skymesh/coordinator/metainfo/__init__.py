"""Bucket, object, segment and multipart metadata: one module per operation.

Each operation is an ``async def op(m: Metainfo, project_id: str, request)`` that
checks its request, then runs one transaction; ``api.py`` maps routes onto them.
"""
