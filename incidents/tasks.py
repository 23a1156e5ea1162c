"""Celery adapters for incidents: deliver outbox rows, sweep, watch deadlines."""
