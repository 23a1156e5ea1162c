"""Admin for incidents, affected organisations, timeline, corrective actions and the outbox."""

# Registered from their own module to keep this one small.
from incidents import admin_reports  # noqa: E402, F401
