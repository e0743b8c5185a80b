"""Trading flows: strategies, risk, brokers, order lifecycle and reconciliation over validated assets."""
