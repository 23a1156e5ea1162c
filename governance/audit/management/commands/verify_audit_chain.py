from django.core.management.base import BaseCommand, CommandError

from governance.audit.services import audit_chain_verify
from governance.audit.tasks import last_verified_anchor


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; name the first broken link and exit non-zero."

    def handle(self, *args, **options) -> None:
        checked, broken = audit_chain_verify(anchor=last_verified_anchor())
        if broken:
            raise CommandError(
                f"Audit chain broken at event #{broken.event_id}: {broken.reason} "
                f"({checked} events verified before it)."
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact: {checked} events verified."))
