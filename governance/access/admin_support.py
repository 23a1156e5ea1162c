"""Admin for support-access requests, grants and the access log."""
