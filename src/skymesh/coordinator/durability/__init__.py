"""Keeping stored pieces alive: audits, segment health, repair, garbage collection, retain."""
