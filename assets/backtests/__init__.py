"""The pairs backtest: one simulation published as trades and equity, its performance and trade analysis."""
