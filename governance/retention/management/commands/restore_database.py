"""`manage.py restore_database ARTEFACT --target URL`: restore a backup into an empty database."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from governance.retention.backup_crypto import BackupError
from governance.retention.owndb import backup_verify, database_restore, target_fingerprint


class Command(BaseCommand):
    help = (
        "Decrypt and check a backup from the backup storage, then restore it into an EMPTY database "
        "(postgres://.../new_db or sqlite:////path/new.sqlite3). --verify-only checks without restoring."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("artefact", help="name in the backup storage (the register's 'artefact')")
        parser.add_argument("--target", help="database URL of an empty database")
        parser.add_argument("--verify-only", action="store_true")

    def handle(self, *args, artefact: str, target: str | None, verify_only: bool, **options) -> None:
        if not verify_only and not target:
            raise CommandError("Give --target (an empty database) or --verify-only.")
        try:
            if verify_only:
                meta = backup_verify(artefact=artefact)
                self.stdout.write(f"Backup intact: {meta['kind']} {meta['engine']} backup of {meta['started_at']}.")
                return
            meta = database_restore(artefact=artefact, target_url=target)
            tables = target_fingerprint(target)
        except (BackupError, ImproperlyConfigured) as e:
            raise CommandError(str(e)) from e
        rows = sum(n for n, _ in tables.values())
        self.stdout.write(
            f"Restored the {meta['kind']} backup of {meta['started_at']}: {len(tables)} tables, {rows} rows."
        )
