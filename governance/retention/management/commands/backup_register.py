"""`manage.py backup_register --kind full --source ... --finished ...`: report one backup run (C24)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from governance.retention.backups import backup_register


def _when(value: str):
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"Not an ISO 8601 date-time: {value!r}")
    return parsed


class Command(BaseCommand):
    help = "Register a backup run reported by an external tool (pgBackRest, WAL-G, a cloud service)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--kind", required=True, choices=["full", "incremental"])
        parser.add_argument("--source", required=True)
        parser.add_argument("--started", required=True, help="ISO 8601 with time zone")
        parser.add_argument("--finished", required=True, help="ISO 8601 with time zone")
        parser.add_argument("--size", type=int, default=0, help="bytes")
        parser.add_argument("--checksum", default="")
        parser.add_argument("--location", required=True)
        parser.add_argument("--artefact", default="", help="name in the backup storage backend")
        parser.add_argument("--encrypted", action="store_true")
        parser.add_argument("--failed", action="store_true", help="the run failed")

    def handle(self, *args, **o) -> None:
        try:
            record = backup_register(
                kind=o["kind"],
                source=o["source"],
                started_at=_when(o["started"]),
                finished_at=_when(o["finished"]),
                size_bytes=o["size"],
                checksum=o["checksum"],
                encrypted=o["encrypted"],
                location=o["location"],
                artefact=o["artefact"],
                succeeded=not o["failed"],
                reported_by="command",
            )
        except ValidationError as e:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in e.message_dict.items())) from e
        self.stdout.write(f"Registered backup {record.pk}; expires {record.expires_at:%Y-%m-%d}.")
