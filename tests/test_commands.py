"""Operator commands: demo data and staff second-factor enrolment."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.access.models import User
from governance.audit.models import AuditEvent
from governance.tenancy.models import Membership, Organisation
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


@pytest.mark.commitment("C25")
def test_totp_enrol_issues_one_device_prints_it_once_and_audits():
    staff = StaffFactory(username="newhire")
    TOTPDevice.objects.filter(user=staff).delete()
    out = StringIO()
    call_command("totp_enrol", "newhire", stdout=out)
    device = TOTPDevice.objects.get(user=staff)
    assert device.confirmed
    assert device.config_url in out.getvalue()
    assert AuditEvent.objects.filter(action="otp.device_enrolled", object_id=str(staff.pk)).exists()

    with pytest.raises(CommandError, match="--replace"):
        call_command("totp_enrol", "newhire", stdout=StringIO())
    call_command("totp_enrol", "newhire", "--replace", stdout=StringIO())
    assert TOTPDevice.objects.filter(user=staff).count() == 1
    assert TOTPDevice.objects.get(user=staff).key != device.key


def test_totp_enrol_refuses_customers_and_unknown_users(customer_a):
    for username in (customer_a.username, "nobody"):
        with pytest.raises(CommandError, match="No staff user"):
            call_command("totp_enrol", username, stdout=StringIO())


def test_seed_demo_is_idempotent_and_debug_only(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("seed_demo", stdout=StringIO())
    settings.DEBUG = True
    call_command("seed_demo", stdout=StringIO())
    counts = (
        User.objects.count(),
        Organisation.objects.count(),
        Membership.objects.count(),
        TOTPDevice.objects.count(),
    )
    call_command("seed_demo", stdout=StringIO())
    assert counts == (
        User.objects.count(),
        Organisation.objects.count(),
        Membership.objects.count(),
        TOTPDevice.objects.count(),
    )
    assert counts[1:3] == (3, 6)
    staff = User.objects.filter(is_staff=True, service_account__isnull=True)  # people, not the API's accounts
    assert staff.count() == 7 and all(u.groups.count() == 1 for u in staff)
    assert Membership.objects.filter(role=Membership.Role.ADMIN).count() == 3
