"""The symbol universe and company fundamentals."""
