"""Celery tasks for report and RCA requests (C16, C20)."""
