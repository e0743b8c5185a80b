"""Analytics assets: indicators, pair statistics, signals, backtests and performance."""
