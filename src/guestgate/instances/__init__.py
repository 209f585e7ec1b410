"""instances domain."""
