"""Named, revocable operator API tokens: a row per token, its id the JWT's `jti`."""
