"""Reconciliation services: internal (cached aggregates against the ledger) and external (provider
usage exports against the ledger). See `internal.py` and `external.py`."""
