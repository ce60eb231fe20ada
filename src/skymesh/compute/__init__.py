"""Inference on provider nodes: engines, a bounded worker pool and request routing.

Knows no role: ``node`` runs engines behind its HTTP API, ``gateway`` ranks
compute nodes with :mod:`skymesh.compute.routing`. The heavy runtimes (ONNX
Runtime, llama.cpp) come with the ``ai`` extra and are imported only when an
engine loads, so the storage side runs without them.
"""
