"""`manage.py backup_database --kind full|incremental`: back up the portal's own database (C24)."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from governance.retention.backup_crypto import BackupError
from governance.retention.owndb import database_backup


class Command(BaseCommand):
    help = "Dump, encrypt (AES-256-GCM) and store the portal's database, and register the run."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kind", choices=["full", "incremental"], default="full")

    def handle(self, *args, kind: str, **options) -> None:
        try:
            record = database_backup(kind=kind)
        except (BackupError, ImproperlyConfigured) as e:
            raise CommandError(str(e)) from e
        self.stdout.write(
            f"Backup {record.pk} stored as {record.artefact} ({record.size_bytes} bytes, {record.checksum}); "
            f"expires {record.expires_at:%Y-%m-%d}."
        )
