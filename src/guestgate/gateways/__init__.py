"""gateways domain."""
