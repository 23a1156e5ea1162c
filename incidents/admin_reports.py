"""Admin for evidence, RCAs and report requests."""
