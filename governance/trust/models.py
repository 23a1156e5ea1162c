"""Which commitments the public trust page shows (the security officer's choice)."""

from __future__ import annotations

from django.db import models


class PublishedCommitment(models.Model):
    """One commitment (C02-C28) whose live summary the public /trust/ page shows.

    Only the id is stored: the summary is computed from live data on each render and never
    carries personal data. The model also holds the trust report's own permission.
    """

    commitment_id = models.CharField("commitment", max_length=3, unique=True)
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["commitment_id"]
        verbose_name = "published commitment"
        permissions = [("view_trust_report", "Can view and download the trust report (all commitments, live)")]

    def __str__(self) -> str:
        from governance.trust.evidence import REGISTRY

        entry = REGISTRY.get(self.commitment_id)
        return f"{self.commitment_id}: {entry.title}" if entry else self.commitment_id
