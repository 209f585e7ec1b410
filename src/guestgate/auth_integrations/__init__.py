"""auth_integrations domain."""
