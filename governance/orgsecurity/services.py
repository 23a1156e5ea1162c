"""State changes of the organisation security settings (C28); each one audited."""

from __future__ import annotations

import hashlib
import secrets

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.access.models import User
from governance.access.services import is_customer_admin
from governance.audit.services import audit_record
from governance.orgsecurity.models import OrganisationSecurityPolicy, UserSessionRevocation
from governance.orgsecurity.netaddr import ip_allowed
from governance.tenancy.models import Membership, Organisation

RECOVERY_CODE_COUNT = 10
TOTP_DEVICE_NAME = "Portal authenticator"
RECOVERY_DEVICE_NAME = "Recovery codes"
IDLE_MINUTES_RANGE = (5, 24 * 60)
LIFETIME_HOURS_RANGE = (1, 24 * 30)


def _require_admin(user: User, organisation: Organisation) -> None:
    if not is_customer_admin(user, organisation):
        raise ValidationError("Only a customer admin of this organisation can change its security settings.")


def _locked_policy(organisation: Organisation) -> OrganisationSecurityPolicy:
    policy, _ = OrganisationSecurityPolicy.objects.select_for_update().get_or_create(organisation=organisation)
    return policy


def security_policy_update(
    *,
    organisation: Organisation,
    acting_user: User,
    two_factor: str,
    ip_allowlist: list[str],
    idle_timeout_minutes: int | None,
    session_lifetime_hours: int | None,
    current_ip: str | None,
) -> OrganisationSecurityPolicy:
    """Save the organisation's settings. Refuses changes that would lock the admin out."""
    _require_admin(acting_user, organisation)
    errors: dict[str, list[str]] = {}
    if two_factor not in OrganisationSecurityPolicy.TwoFactor.values:
        errors["two_factor"] = ["Choose optional or required."]
    if ip_allowlist and not ip_allowed(current_ip, ip_allowlist):
        errors["ip_allowlist"] = [
            f"Your own address ({current_ip or 'unknown'}) is not in this list, so saving it would lock you "
            "out at once. Add a range that contains it, or save from an address inside the list."
        ]
    for field, value, (low, high) in (
        ("idle_timeout_minutes", idle_timeout_minutes, IDLE_MINUTES_RANGE),
        ("session_lifetime_hours", session_lifetime_hours, LIFETIME_HOURS_RANGE),
    ):
        if value is not None and not low <= value <= high:
            errors[field] = [f"Between {low} and {high}, or empty for no limit."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        policy = _locked_policy(organisation)
        new = {
            "two_factor": two_factor,
            "ip_allowlist": list(ip_allowlist),
            "idle_timeout_minutes": idle_timeout_minutes,
            "session_lifetime_hours": session_lifetime_hours,
        }
        changes = {
            field: {"from": getattr(policy, field), "to": value}
            for field, value in new.items()
            if getattr(policy, field) != value
        }
        if not changes:
            return policy
        for field, value in new.items():
            setattr(policy, field, value)
        policy.updated_by = acting_user
        policy.save(update_fields=[*new, "updated_by", "updated_at"])
        audit_record(
            action="orgsecurity.policy_changed",
            actor=acting_user,
            obj=organisation,
            data={"changes": changes},
        )
    return policy


def sessions_revoke_organisation(*, organisation: Organisation, acting_user: User) -> OrganisationSecurityPolicy:
    """Sign out every session of the organisation's users that exists now."""
    _require_admin(acting_user, organisation)
    with transaction.atomic():
        policy = _locked_policy(organisation)
        policy.sessions_revoked_at = timezone.now()
        policy.save(update_fields=["sessions_revoked_at", "updated_at"])
        audit_record(
            action="orgsecurity.sessions_revoked",
            actor=acting_user,
            obj=organisation,
            data={"scope": "organisation", "before": policy.sessions_revoked_at},
        )
    return policy


def sessions_end_for_policy_change(*, organisation: Organisation, actor: User, reason: str) -> None:
    """Sign out every current session of the organisation because another service's
    setting changed (e.g. single sign-on became required); that service has authorised
    the actor. Call inside its transaction."""
    policy = _locked_policy(organisation)
    policy.sessions_revoked_at = timezone.now()
    policy.save(update_fields=["sessions_revoked_at", "updated_at"])
    audit_record(
        action="orgsecurity.sessions_revoked",
        actor=actor,
        obj=organisation,
        data={"scope": "organisation", "reason": reason, "before": policy.sessions_revoked_at},
    )


def sessions_revoke_user(*, membership: Membership, acting_user: User) -> UserSessionRevocation:
    """Sign out every current session of one member (e.g. a lost laptop)."""
    organisation = membership.organisation
    _require_admin(acting_user, organisation)
    with transaction.atomic():
        revocation = _revoke_sessions_of(membership.user, organisation)
        now = revocation.revoked_at
        audit_record(
            action="orgsecurity.sessions_revoked",
            actor=acting_user,
            obj=membership.user,
            organisation_id=organisation.pk,
            data={"scope": "user", "user": membership.user.get_username(), "before": now},
        )
    return revocation


def _revoke_sessions_of(user: User, organisation: Organisation) -> UserSessionRevocation:
    """Sessions of `user` that began before now end at their next request (caller audits)."""
    _locked_policy(organisation)  # enforcement reads the user's moment only where a policy row exists
    now = timezone.now()
    revocation, created = UserSessionRevocation.objects.get_or_create(
        user=user, defaults={"organisation": organisation, "revoked_at": now}
    )
    if not created:
        revocation.revoked_at = now
        revocation.organisation = organisation
        revocation.save(update_fields=["revoked_at", "organisation"])
    return revocation


# --- Two-factor ------------------------------------------------------------------------


def confirmed_totp_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


def has_confirmed_device(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def two_factor_enrolment_device(*, user: User) -> TOTPDevice:
    """The unconfirmed authenticator a user is setting up (the same one until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    return device or TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def _new_recovery_codes(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    # 10 hex characters (40 bits), shown as two groups; single use (django-otp deletes on use).
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return [f"{c[:5]}-{c[5:]}" for c in codes]


def two_factor_enrol_confirm(*, user: User, device: TOTPDevice, token: str) -> list[str]:
    """Confirm the authenticator with a current code; returns the recovery codes (shown once)."""
    organisation_id = getattr(getattr(user, "membership", None), "organisation_id", None)
    if device.user_id != user.pk or device.confirmed:
        raise ValidationError("This set-up has expired; start again.")
    if not device.verify_token(_digits(token)):
        with transaction.atomic():
            audit_record(
                action="orgsecurity.two_factor_failed",
                actor=user,
                obj=user,
                organisation_id=organisation_id,
                data={"stage": "enrolment"},
            )
        raise ValidationError({"token": ["That code is not right. Check the time on your phone and try the new code."]})
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _new_recovery_codes(user)
        # Sessions opened with the password alone (elsewhere, perhaps by someone else) end
        # now; the caller keeps the session that enrolled (enforcement.keep_current_session).
        membership = getattr(user, "membership", None)
        if membership is not None:
            _revoke_sessions_of(user, membership.organisation)
        audit_record(
            action="orgsecurity.two_factor_enrolled",
            actor=user,
            obj=user,
            organisation_id=organisation_id,
            data={"device": device.name, "recovery_codes": len(codes), "other_sessions_signed_out": True},
        )
    return codes


def recovery_codes_regenerate(*, user: User) -> list[str]:
    """Replace the user's recovery codes (the old ones stop working)."""
    if not has_confirmed_device(user):
        raise ValidationError("Set up an authenticator app first.")
    with transaction.atomic():
        codes = _new_recovery_codes(user)
        audit_record(
            action="orgsecurity.two_factor_recovery_codes_replaced",
            actor=user,
            obj=user,
            organisation_id=user.membership.organisation_id,
        )
    return codes


def two_factor_verify(*, user: User, token: str):
    """The device that accepts `token` (authenticator code or recovery code), else None; audited."""
    organisation_id = getattr(getattr(user, "membership", None), "organisation_id", None)
    token = token.strip().lower()
    matched = None
    totp = confirmed_totp_device(user)
    if totp is not None and _digits(token).isdigit() and len(_digits(token)) == totp.digits:
        if totp.verify_is_allowed()[0] and totp.verify_token(_digits(token)):
            matched = totp
    if matched is None and token:
        for device in StaticDevice.objects.filter(user=user, confirmed=True):
            if device.verify_token(token.replace("-", "").replace(" ", "")):
                matched = device
                break
    with transaction.atomic():
        if matched is None:
            audit_record(
                action="orgsecurity.two_factor_failed",
                actor=user,
                obj=user,
                organisation_id=organisation_id,
                data={"stage": "sign-in"},
            )
        else:
            audit_record(
                action="orgsecurity.two_factor_verified",
                actor=user,
                obj=user,
                organisation_id=organisation_id,
                data={"method": "recovery code" if isinstance(matched, StaticDevice) else "authenticator"},
            )
    return matched


def two_factor_reset(*, membership: Membership, acting_user: User) -> None:
    """A customer admin removes a member's second factor (lost phone); they enrol again."""
    organisation = membership.organisation
    _require_admin(acting_user, organisation)
    if membership.user_id == acting_user.pk:
        raise ValidationError("You cannot reset your own two-factor here; ask another admin of your organisation.")
    with transaction.atomic():
        removed = TOTPDevice.objects.filter(user=membership.user).delete()[0]
        StaticDevice.objects.filter(user=membership.user).delete()
        audit_record(
            action="orgsecurity.two_factor_reset",
            actor=acting_user,
            obj=membership.user,
            organisation_id=organisation.pk,
            data={"user": membership.user.get_username(), "devices_removed": removed},
        )
    # Their current sessions end too: a stolen phone must not keep a verified session.
    sessions_revoke_user(membership=membership, acting_user=acting_user)


def _digits(token: str) -> str:
    return token.replace(" ", "").replace("-", "").strip()


# --- Events recorded for the organisation's log ------------------------------------------


def audit_log_exported(*, organisation: Organisation, acting_user: User, filters: dict, rows: int | None) -> None:
    with transaction.atomic():
        audit_record(
            action="orgsecurity.audit_exported",
            actor=acting_user,
            obj=organisation,
            data={"filters": filters, "rows": rows},
        )


IP_REFUSED_AUDIT_SECONDS = 60


def ip_refused_record(*, user: User, organisation_id: int, ip: str | None, path: str, repeat_key: str = "") -> None:
    """Audit a request refused by the IP allowlist. With `repeat_key` (the session or the
    token it came with), the same refusal (address and path) is written once a minute, so
    a script replaying a stolen session or token cannot flood the trail; every request is
    still refused. Sign-in attempts come without one and are always written."""
    if repeat_key:
        digest = hashlib.sha256(f"{repeat_key}|{ip}|{path}".encode()).hexdigest()[:40]
        if not cache.add(f"orgsec:ip-refused:{digest}", 1, timeout=IP_REFUSED_AUDIT_SECONDS):
            return
    with transaction.atomic():
        audit_record(
            action="orgsecurity.ip_refused",
            actor=user,
            obj=user,
            organisation_id=organisation_id,
            data={"ip": ip, "path": path[:200]},
        )
