"""Accounting: settled orders, hourly rollups per node, operator and project, payouts."""
