"""Operational evidence: what the periodic jobs did, and the leases that stop overlaps."""

from __future__ import annotations

from django.db import models


class JobRun(models.Model):
    """One run of a periodic or background job: the evidence that scans and clean-ups ran."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        SKIPPED = "skipped", "Skipped (another run held the lock)"

    task = models.CharField(max_length=200, db_index=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["task", "-started_at"])]

    def __str__(self) -> str:
        return f"{self.task} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None


class JobLock(models.Model):
    """A lease that keeps two runs of the same periodic job from overlapping.

    Taken with one conditional UPDATE (works on SQLite and PostgreSQL, survives a
    killed worker because the lease expires).
    """

    name = models.CharField(max_length=200, primary_key=True)
    holder = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
