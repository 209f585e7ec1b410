"""schedules domain."""
