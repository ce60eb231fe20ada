"""Messages between roles, and how they are signed.

This package is the only code form of ``docs/spec/``: roles exchange these
msgspec structs (JSON over HTTP, msgpack inside signatures and headers) and
never each other's internals.
"""
