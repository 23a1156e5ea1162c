from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from governance.access.models import User
from governance.core.management.commands.seed_demo import current_code, otpauth_uri


class Command(BaseCommand):
    help = "Print the current TOTP code of a demo staff user (DEBUG only)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--uri", action="store_true", help="Print the otpauth:// URI to add to an authenticator app."
        )

    def handle(self, *args, username: str, uri: bool, **options) -> None:
        if not settings.DEBUG:
            raise CommandError("totp_code reads second-factor seeds; it runs only with DJANGO_DEBUG=true.")
        try:
            user = User.objects.get(username=username)
            self.stdout.write(otpauth_uri(user) if uri else current_code(user))
        except (User.DoesNotExist, Exception) as exc:
            raise CommandError(f"No demo TOTP device for {username!r}: {exc}") from exc
