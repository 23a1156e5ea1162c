"""Idempotent demo data: three organisations, one staff user per role, two customers each."""

from __future__ import annotations

import base64
import binascii

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_scopes import scopes_disabled

from governance.access.models import User
from governance.access.roles import ROLES, roles_sync
from governance.api.demo import seed_api_demo
from governance.orgsecurity.demo import seed_organisation_security
from governance.retention.demo import seed_retention_demo
from governance.risk.demo import seed_risk_register
from governance.tenancy.models import DataProtectionRole, Membership, Organisation
from governance.trust.demo import seed_trust_demo

DEMO_PASSWORD = "demo-Password-2026"  # noqa: S105 - public demo credential, refused outside DEBUG

ORGANISATIONS = [
    ("Northwind Health", "northwind", DataProtectionRole.PROCESSOR, "Nadia Okafor", "nadia.okafor@northwind.example"),
    ("Contoso Legal", "contoso", DataProtectionRole.CONTROLLER, "Carl Jensen", "carl.jensen@contoso.example"),
    ("Fabrikam Retail", "fabrikam", DataProtectionRole.PROCESSOR, "Fatima Rahman", "fatima.rahman@fabrikam.example"),
]

STAFF = {
    "Security officer": ("sofia", "Sofia", "Marsh"),
    "Support engineer": ("sam", "Sam", "Patel"),
    "Incident manager": ("ines", "Ines", "Moreau"),
    "Risk owner": ("ravi", "Ravi", "Shah"),
    "Data protection officer": ("dana", "Dana", "Kowalski"),
    "Auditor": ("aud", "Aude", "Lindqvist"),
    "Legal counsel": ("lena", "Lena", "Okafor"),
}


def demo_totp_key(username: str) -> str:
    """A fixed, public TOTP seed per demo user, so codes can be generated anywhere."""
    return binascii.hexlify(f"assyst-demo-{username}".encode().ljust(20, b"0")[:20]).decode()


class Command(BaseCommand):
    help = "Load idempotent demo data (DEBUG only, or with --force)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="Allow outside DEBUG (never in production).")

    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates accounts with a public password; it runs only with DJANGO_DEBUG=true."
            )
        with scopes_disabled(), transaction.atomic():
            roles_sync()
            rows = [*self._staff(), *self._customers()]
            self._incidents()
            risk_lines = seed_risk_register(
                owner=User.objects.get(username=STAFF["Risk owner"][0]),
                officer=User.objects.get(username=STAFF["Security officer"][0]),
                requester=User.objects.get(username=STAFF["Incident manager"][0]),
            )
            security = seed_organisation_security(totp_key=demo_totp_key)
            # Backup register, a purged customer and its deletion certificate (governance/retention/demo.py).
            retention_lines = seed_retention_demo(officer=User.objects.get(username=STAFF["Security officer"][0]))
            # History behind the staff dashboard and the trust report (governance/trust/demo.py), last:
            # its backup policy check reads the register above.
            seed_trust_demo()
            api_lines = seed_api_demo()  # integration API service accounts and a token (governance/api/demo.py)
        self.stdout.write(self.style.SUCCESS("Demo data ready. Every demo account's password: " + DEMO_PASSWORD))
        self.stdout.write(f"{'login':<18} {'kind':<40} where")
        for username, kind, where in rows:
            self.stdout.write(f"{username:<18} {kind:<40} {where}")
        self.stdout.write(
            "Staff need a TOTP code at /admin/: `python manage.py totp_code <login>` prints the current one,"
        )
        self.stdout.write("or add the seed it prints with --uri to an authenticator app.")
        for line in security:
            self.stdout.write(line)
        for line in risk_lines:
            self.stdout.write(line)
        for line in retention_lines:
            self.stdout.write(line)
        for line in api_lines:
            self.stdout.write(line)

    def _user(self, username: str, first: str, last: str, email: str, *, staff: bool) -> User:
        user, created = User.objects.get_or_create(username=username, defaults={"is_staff": staff})
        if created or not user.has_usable_password():
            user.set_password(DEMO_PASSWORD)
        user.first_name, user.last_name, user.email, user.is_staff, user.is_active = first, last, email, staff, True
        user.save()
        return user

    def _staff(self):
        for role in ROLES:
            if role.name not in STAFF:
                continue  # a role for service accounts only (Backup reporter): governance/api/demo.py
            username, first, last = STAFF[role.name]
            user = self._user(username, first, last, f"{username}@assyst.example", staff=True)
            user.groups.set([Group.objects.get(name=role.name)])
            TOTPDevice.objects.update_or_create(
                user=user, name="demo authenticator", defaults={"key": demo_totp_key(username), "confirmed": True}
            )
            yield username, f"staff: {role.name}", "/admin/ (+ TOTP)"

    def _customers(self):
        for name, slug, dp_role, contact, email in ORGANISATIONS:
            org, _ = Organisation.objects.get_or_create(slug=slug, defaults={"name": name})
            org.name, org.data_protection_role = name, dp_role
            org.primary_contact_name, org.primary_contact_email = contact, email
            org.save()
            first, last = contact.split(" ", 1)
            for suffix, role in (("admin", Membership.Role.ADMIN), ("viewer", Membership.Role.VIEWER)):
                username = f"{slug}-{suffix}"
                person = (first, last) if suffix == "admin" else ("Viewer", name.split()[0])
                mail = email if suffix == "admin" else f"viewer@{slug}.example"
                user = self._user(username, *person, mail, staff=False)
                Membership.objects.update_or_create(user=user, defaults={"organisation": org, "role": role})
                yield username, f"{role.label.lower()}, {name}", "/portal/"

    def _incidents(self) -> None:
        """Two incidents through the same services staff use: a public one, and a breach
        whose notice deadlines the monitor is already watching."""
        from datetime import timedelta

        from django.utils import timezone

        from incidents.models import Component, ComponentGroup, Incident
        from incidents.services import incident_create, incident_update_post
        from incidents.status.services import component_group_save, component_save

        manager = User.objects.get(username=STAFF["Incident manager"][0])
        now = timezone.now()
        # Status page components (C14), in two groups.
        for position, (group_name, names) in enumerate(
            (("Application", ("Web app", "API")), ("Reporting", ("Dashboards", "Exports")))
        ):
            group = ComponentGroup.objects.filter(name=group_name).first() or component_group_save(
                group=ComponentGroup(name=group_name, position=position), acting_user=manager
            )
            for index, name in enumerate(names):
                if not Component.objects.filter(name=name).exists():
                    # History from 90 days back, so the demo's bars are not all "no data".
                    component = Component(
                        name=name, group=group, position=index, start_date=now.date() - timedelta(days=90)
                    )
                    component_save(component=component, acting_user=manager)
        dashboards = Component.objects.get(name="Dashboards")
        if not Incident.objects.filter(title="Slow dashboard loading").exists():
            general = incident_create(
                acting_user=manager,
                title="Slow dashboard loading",
                description="Dashboards load slowly for some customers.",
                kind=Incident.Kind.GENERAL,
                detected_at=now - timedelta(hours=3),
                aware_at=now - timedelta(hours=3),
                affected_components=["Dashboards"],
                components=[dashboards],
                incident_manager=manager,
            )
            incident_update_post(
                incident=general,
                acting_user=manager,
                visibility="public",
                status=Incident.Status.IDENTIFIED,
                message="A database index was missing after last night's release; a fix is rolling out.",
                actions_for_customers="Nothing: reload the page if a dashboard does not appear.",
                component_statuses={dashboards.pk: "degraded_performance"},
            )
        if not Incident.objects.filter(title="Misdirected export files").exists():
            incident_create(
                acting_user=manager,
                title="Misdirected export files",
                description="Scheduled export files for two customers were sent to a wrong SFTP folder.",
                sensitive_details="Folder /exports/tmp was world-readable for 40 minutes.",
                kind=Incident.Kind.SPECIFIC,
                severity=Incident.Severity.MAJOR,
                detected_at=now - timedelta(hours=14),
                aware_at=now - timedelta(hours=13),
                personal_data_breach=True,
                data_categories=["names", "email addresses"],
                approx_people=120,
                approx_records=480,
                organisations=Organisation.objects.filter(slug__in=["northwind", "contoso"]),
                incident_manager=manager,
            )


def current_code(user: User) -> str:
    device = TOTPDevice.objects.get(user=user, name="demo authenticator")
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def otpauth_uri(user: User) -> str:
    device = TOTPDevice.objects.get(user=user, name="demo authenticator")
    return device.config_url + f"  (base32 seed {base64.b32encode(device.bin_key).decode()})"
