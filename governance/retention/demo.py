"""Demo data for retention (C21, C22, C24): a backup register, a purged customer, a certificate."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from governance.access.models import User
from governance.retention import services
from governance.retention.backups import backup_register
from governance.retention.models import BackupRecord, Termination
from governance.tenancy.models import Membership, Organisation

DEMO_SOURCE = "pgbackrest:main"
TERMINATED = ("Litware Trading", "litware")


def seed_retention_demo(*, officer: User) -> list[str]:
    """Idempotent: two weeks of backups reported by pgBackRest; Litware asked to leave,
    was confirmed by the security officer and purged by a clean-up run."""
    lines = []
    if not BackupRecord.objects.filter(source=DEMO_SOURCE).exists():
        now = timezone.now().replace(hour=1, minute=0, second=0, microsecond=0)
        for days_ago in range(14, -1, -1):
            finished = now - timedelta(days=days_ago)
            full = finished.weekday() == 6
            backup_register(
                kind="full" if full else "incremental",
                source=DEMO_SOURCE,
                started_at=finished - timedelta(minutes=40 if full else 6),
                finished_at=finished,
                size_bytes=(38 if full else 2) * 1024**3 + days_ago * 7_340_032,
                checksum=f"sha256:{days_ago:02d}" + "0" * 62,
                encrypted=True,
                location="uk-south",
                artefact=f"pgbackrest/{finished:%Y%m%d}-{'F' if full else 'I'}",
                reported_by="api",
            )
        lines.append("Backup register: 15 days of pgBackRest runs (weekly full, daily incremental).")
    name, slug = TERMINATED
    if not Termination.objects.filter(organisation_name=name).exists():
        org = Organisation.objects.create(name=name, slug=slug, primary_contact_name="Lars Berg",
                                          primary_contact_email="lars.berg@litware.example")  # fmt: skip
        admin, _ = User.objects.get_or_create(
            username=f"{slug}-admin", defaults={"email": "lars.berg@litware.example", "first_name": "Lars"}
        )
        Membership.objects.update_or_create(user=admin, defaults={"organisation": org, "role": "admin"})
        termination = services.termination_request(
            organisation=org, acting_user=admin, reason="Contract ended: moving to an in-house tool."
        )
        services.termination_confirm(termination=termination, acting_user=officer)
        services.cleanup_run()
        lines.append(f"{name}: terminated by its admin, confirmed by {officer.username}, purged; certificate issued.")
    return lines
