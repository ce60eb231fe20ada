"""The gateway role: the S3-compatible front door to the network.

It speaks S3 to clients and the coordinator's protocol behind; it never imports the
node or coordinator roles (an import-linter contract enforces this).
"""
