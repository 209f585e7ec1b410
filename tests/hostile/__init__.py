"""Hostile input: tenant isolation, JWT attacks, signed URLs, uploads, body limits, markup, SQL, fuzzing."""
