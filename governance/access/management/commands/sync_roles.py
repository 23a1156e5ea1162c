from django.core.management.base import BaseCommand

from governance.access.roles import roles_sync


class Command(BaseCommand):
    help = "Create or update the staff role groups (and their exact permissions) from code."

    def handle(self, *args, **options) -> None:
        for name, count in roles_sync().items():
            self.stdout.write(f"{name}: {count} permissions")
        self.stdout.write(self.style.SUCCESS("Roles in sync."))
