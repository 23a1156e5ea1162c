"""`manage.py cleanup [--dry-run]`: purge terminated organisations now, or show what would go."""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django_scopes import scopes_disabled

from governance.core.jobs import job_run
from governance.retention import services
from governance.retention.cadence import next_cleanup_date
from governance.retention.tasks import CLEANUP_LEASE, CLEANUP_TASK


class Command(BaseCommand):
    help = "Run the clean-up now: purge every terminated organisation and issue its deletion certificate (C21)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Print what would be deleted; change nothing.")
        parser.add_argument("--batch-size", type=int, default=None)

    def handle(self, *args, dry_run: bool = False, batch_size: int | None = None, **options) -> None:
        with scopes_disabled():
            if dry_run:
                self._preview()
                return
            # The same lease as the beat task, so the two never purge at the same time.
            with job_run(CLEANUP_TASK, lock_ttl=CLEANUP_LEASE) as rec:
                if rec is None:
                    self.stderr.write("Another clean-up run holds the lock; try later.")
                    return
                run = services.cleanup_run(batch_size=batch_size)
                rec.add("organisations", run.organisations)
            for termination in run.terminations.select_related("certificate"):
                cert = termination.certificate
                self.stdout.write(f"{cert.organisation_name}: purged, certificate {cert.digest}")
            self.stdout.write(f"Clean-up run {run.pk} completed; next run due {next_cleanup_date():%Y-%m-%d}.")

    def _preview(self) -> None:
        preview = services.cleanup_preview()
        if not preview:
            self.stdout.write("Nothing to purge: no terminated organisation awaits clean-up.")
        for termination, counts in preview:
            self.stdout.write(f"{termination.organisation_name} (id {termination.organisation_pk}) would lose:")
            for kind, n in sorted(counts.items()):
                self.stdout.write(f"  {kind}: {n}")
        self.stdout.write(f"Dry run: nothing deleted. Next scheduled run: {next_cleanup_date():%Y-%m-%d}.")
