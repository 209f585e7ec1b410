"""walled_garden domain."""
