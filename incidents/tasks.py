"""Celery adapters for incidents: deliver outbox rows and sweep the outbox."""

# Autodiscovery imports `<app>.tasks` only: the other task modules register from here.
from incidents import tasks_deadlines, tasks_reports  # noqa: E402, F401
