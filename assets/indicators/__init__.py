"""Technical indicators per symbol and bar, and the daily market regime."""
