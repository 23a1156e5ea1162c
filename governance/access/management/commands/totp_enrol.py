import io

import qrcode
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.access.models import User
from governance.audit.services import audit_record


class Command(BaseCommand):
    help = (
        "Enrol a TOTP device for a staff member and print its otpauth:// URI and QR code once. "
        "Run it with the staff member present; the seed is not shown anywhere else."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="Device name shown in the admin.")
        parser.add_argument("--replace", action="store_true", help="Delete the user's existing TOTP devices first.")

    def handle(self, *args, username: str, name: str, replace: bool, **options) -> None:
        user = User.objects.filter(username=username, is_staff=True).first()
        if user is None:
            raise CommandError(f"No staff user named {username!r}.")
        with transaction.atomic():
            existing = TOTPDevice.objects.filter(user=user)
            if existing.exists() and not replace:
                raise CommandError(f"{username} already has a TOTP device; pass --replace to issue a new one.")
            removed = existing.count()
            existing.delete()
            device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
            audit_record(action="otp.device_enrolled", obj=user, data={"device": name, "replaced": removed})
        out = io.StringIO()
        qr = qrcode.QRCode(border=1)
        qr.add_data(device.config_url)
        qr.print_ascii(out=out)
        self.stdout.write(out.getvalue())
        self.stdout.write(device.config_url)
        self.stdout.write(
            self.style.SUCCESS(
                f"Enrolled a TOTP device for {username}. Scan the code now; it is not stored in a readable place."
            )
        )
