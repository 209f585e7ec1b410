"""portal domain."""
