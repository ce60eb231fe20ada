"""S3 API of the gateway.

The pure, I/O-free parts live here so they can be tested as plain functions:
``router`` turns a request line into an :class:`~skymesh.gateway.s3.router.Endpoint`,
``sigv4`` authenticates it, ``chunked`` decodes ``aws-chunked`` bodies, ``xml``
renders and parses S3 XML and ``errors`` maps every failure to its AWS code and HTTP
status, once, at this edge. On top of them: ``request`` (what a handler is given),
one module per family of operations (``handlers/``), and ``app``, the aiohttp
application with its one table from operation to handler.
"""
