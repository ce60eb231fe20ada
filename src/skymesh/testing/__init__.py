"""Test harness: whole networks in one process (``planet``). Never imported by a role."""
