"""site_users domain."""
