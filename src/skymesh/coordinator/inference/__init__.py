"""Inference: compute adverts and orders, batch orders, and metering of served tokens."""
