"""Live trading performance from the ledger."""
