"""Helpers shared by tests of several domains (imported, never collected as tests)."""
