"""Celery tasks for the notice-deadline monitor (C12, C13)."""
