"""gan family."""
