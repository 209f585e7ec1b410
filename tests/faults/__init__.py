"""Faults guestgate survives: the database, a worker, a gateway, SMTP, the disk, the server itself."""
