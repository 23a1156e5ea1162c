"""Demo rows for the organisation security settings (C28), called by `manage.py seed_demo`.

* Contoso requires two-factor. contoso-admin gets a demo authenticator with a public seed
  (`manage.py totp_code contoso-admin` prints the current code); contoso-viewer has none
  and is led through enrolment at first sign-in, as a new user would be.
* Fabrikam allows sign-in only from loopback and a documentation range (so the demo keeps
  working on this machine) and signs people out after 30 idle minutes or 8 hours.

Settings are saved through the same service the portal uses, so the changes are in
each organisation's own audit log.
"""

from __future__ import annotations

from collections.abc import Callable

from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.access.models import User
from governance.orgsecurity.services import security_policy_update
from governance.tenancy.models import Organisation

DEMO_IP = "127.0.0.1"
FABRIKAM_ALLOWLIST = ["127.0.0.0/8", "::1/128", "203.0.113.0/24"]


def seed_organisation_security(*, totp_key: Callable[[str], str]) -> list[str]:
    """Idempotent; returns lines for the command to print."""
    lines = []
    contoso = Organisation.objects.filter(slug="contoso").first()
    if contoso is not None:
        admin = User.objects.get(username="contoso-admin")
        TOTPDevice.objects.update_or_create(
            user=admin, name="demo authenticator", defaults={"key": totp_key(admin.username), "confirmed": True}
        )
        security_policy_update(
            organisation=contoso,
            acting_user=admin,
            two_factor="required",
            ip_allowlist=[],
            idle_timeout_minutes=None,
            session_lifetime_hours=None,
            current_ip=DEMO_IP,
        )
        lines.append(
            "Contoso requires two-factor: contoso-admin enters `python manage.py totp_code contoso-admin`; "
            "contoso-viewer sets up an authenticator at first sign-in."
        )
    fabrikam = Organisation.objects.filter(slug="fabrikam").first()
    if fabrikam is not None:
        security_policy_update(
            organisation=fabrikam,
            acting_user=User.objects.get(username="fabrikam-admin"),
            two_factor="optional",
            ip_allowlist=FABRIKAM_ALLOWLIST,
            idle_timeout_minutes=30,
            session_lifetime_hours=8,
            current_ip=DEMO_IP,
        )
        lines.append(
            f"Fabrikam allows only {', '.join(FABRIKAM_ALLOWLIST)} and signs out after 30 idle minutes "
            "(Security page in the portal, as fabrikam-admin)."
        )
    return lines
