"""Admin for access-review campaigns (C05)."""
