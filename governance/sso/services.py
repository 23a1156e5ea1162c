"""State changes of single sign-on (C28): the organisation's configuration, and who a sign-in is.

Each function runs in a transaction, checks its rule, saves with `update_fields` and
writes its audit event in the same transaction. Audit events never hold the client
secret, email addresses or provider subjects: the trail is append-only and personal
data must stay erasable.
"""

from __future__ import annotations

import re
import secrets

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from governance.access.models import EMAIL_INDEX_PURPOSE, User
from governance.access.services import is_customer_admin
from governance.audit.services import audit_record
from governance.core.encryption import blind_index_candidates, normalise_email
from governance.orgsecurity.services import sessions_end_for_policy_change
from governance.sso.backends import SSORefused
from governance.sso.discovery import validate_provider_url
from governance.sso.models import SigningAlgorithm, SSOConfiguration, SSOIdentity
from governance.tenancy.models import Membership, Organisation

# Changing any of these means single sign-on must be proven again before it is enforced.
_PROVIDER_FIELDS = ("issuer", "client_id", "client_secret", "signing_algorithm")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
TRUE_VALUES = (True, "true")  # some providers (e.g. AWS Cognito) send the string


def sso_configuration_for(organisation: Organisation) -> SSOConfiguration | None:
    return SSOConfiguration.objects.filter(organisation=organisation).first()


def _normalise_domains(domains: list[str]) -> list[str]:
    cleaned = sorted({d.strip().lower().lstrip("@") for d in domains if d and d.strip()})
    bad = [d for d in cleaned if not _DOMAIN_RE.match(d)]
    if bad:
        raise ValidationError({"email_domains": f"Not a domain name: {', '.join(bad)}."})
    return cleaned


def sso_configuration_update(
    *,
    organisation: Organisation,
    acting_user: User,
    enabled: bool,
    issuer: str,
    client_id: str,
    client_secret: str = "",
    signing_algorithm: str = SigningAlgorithm.RS256,
    jit_membership: bool = False,
    enforce_sso: bool = False,
    email_domains: list[str] | None = None,
) -> SSOConfiguration:
    """Create or change an organisation's single sign-on; a customer admin or staff in the admin.

    An empty `client_secret` keeps the stored one. Email domains (which send users of a
    domain to this provider) are set by staff only, after checking the organisation owns
    them; customer admins cannot claim another organisation's domain. Enforcing needs a
    successful sign-in with the current provider settings (no lock-out by typo).
    """
    is_staff_actor = acting_user.is_staff
    if not is_staff_actor and not is_customer_admin(acting_user, organisation):
        raise PermissionDenied("Only a customer admin of this organisation can change its single sign-on.")
    if email_domains is not None and not is_staff_actor:
        raise PermissionDenied("Email domains are set by Assyst staff.")
    issuer = (issuer or "").strip().rstrip("/")
    client_id = (client_id or "").strip()
    errors: dict[str, str] = {}
    try:
        validate_provider_url(issuer)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if not client_id:
        errors["client_id"] = "Give the client ID your provider issued for Assyst."
    if signing_algorithm not in SigningAlgorithm.values:
        errors["signing_algorithm"] = "Choose RS256 or ES256."
    domains = None
    if email_domains is not None:
        try:
            domains = _normalise_domains(email_domains)
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        Organisation.objects.with_scopes_disabled().select_for_update().get(pk=organisation.pk)
        config = SSOConfiguration.objects.filter(organisation=organisation).first()
        created = config is None
        if created:
            if not client_secret:
                raise ValidationError({"client_secret": "Give the client secret your provider issued."})
            config = SSOConfiguration(organisation=organisation)
        values = {
            "enabled": enabled,
            "issuer": issuer,
            "client_id": client_id,
            "signing_algorithm": signing_algorithm,
            "jit_membership": jit_membership,
            "enforce_sso": enforce_sso,
        }
        if client_secret:
            values["client_secret"] = client_secret
        if domains is not None:
            taken = [
                d
                for other in SSOConfiguration.objects.exclude(organisation=organisation).only("email_domains")
                for d in other.email_domains
                if d in domains
            ]
            if taken:
                raise ValidationError(
                    {"email_domains": f"Already used by another organisation: {', '.join(sorted(set(taken)))}."}
                )
            values["email_domains"] = domains
        changed = [f for f, v in values.items() if created or getattr(config, f) != v]
        if not changed:
            return config
        for field, value in values.items():
            setattr(config, field, value)
        if any(f in changed for f in _PROVIDER_FIELDS):
            config.verified_at = None
            changed.append("verified_at")
        if config.enforce_sso and not (config.enabled and config.verified_at):
            raise ValidationError(
                {
                    "enforce_sso": "Sign in once with single sign-on (with these provider settings) "
                    "before you require it; otherwise nobody could sign in."
                }
            )
        if created:
            config.save()
        else:
            config.save(update_fields=[*changed, "updated_at"])
        if config.enabled and config.enforce_sso and ({"enabled", "enforce_sso"} & set(changed)):
            # Required from now on: sessions opened with a password before must not outlive it.
            sessions_end_for_policy_change(organisation=organisation, actor=acting_user, reason="sso_required")
        audit_record(
            action="sso.configuration_created" if created else "sso.configuration_changed",
            actor=acting_user,
            obj=config,
            organisation_id=organisation.pk,
            data={
                # Field names only; the secret's value never enters the trail.
                "changed": sorted(set(changed) - {"verified_at"}),
                "enabled": config.enabled,
                "enforce_sso": config.enforce_sso,
                "jit_membership": config.jit_membership,
                "issuer": config.issuer,
            },
        )
    return config


# --- Sign-in --------------------------------------------------------------------------


def _verified_email(claims: dict) -> str:
    email = normalise_email(str(claims.get("email") or ""))
    if not email:
        raise SSORefused("no_email", "Your sign-in provider did not share your email address.")
    if claims.get("email_verified") not in TRUE_VALUES:
        raise SSORefused(
            "email_unverified",
            "Your sign-in provider has not verified your email address, so it cannot be used to sign in here.",
        )
    return email


def _users_with_email(email: str):
    return User.objects.filter(email_index__in=blind_index_candidates(email, purpose=EMAIL_INDEX_PURPOSE))


def _member_of(user: User, organisation: Organisation) -> bool:
    membership = getattr(user, "membership", None)
    return membership is not None and membership.organisation_id == organisation.pk


def _new_username(email: str) -> str:
    local = re.sub(r"[^\w.@+-]", "", email.split("@", 1)[0])[:40] or "user"
    return f"{local}-{secrets.token_hex(3)}"


def sso_login_complete(*, config: SSOConfiguration, claims: dict) -> User:
    """The portal user these verified ID-token claims stand for, in this organisation only.

    1. A provider identity (issuer + subject) seen before: its user.
    2. Else the verified email of exactly one member of this organisation; the identity is
       linked (refused if that user is already linked to another subject).
    3. Else, with just-in-time membership on and the email unknown everywhere, a new
       customer viewer with no password. An email that belongs to an account outside this
       organisation (another customer or staff) is refused, never matched or duplicated.
    Raises SSORefused (audited by the caller) otherwise.
    """
    organisation = config.organisation
    if organisation.status != Organisation.Status.ACTIVE:
        raise SSORefused("organisation_inactive", "This organisation's accounts are closed.")
    email = _verified_email(claims)
    subject, issuer = str(claims["sub"]), config.issuer
    now = timezone.now()
    with transaction.atomic():
        identity = (
            SSOIdentity.objects.select_related("user__membership")
            .filter(organisation=organisation, issuer=issuer, subject=subject)
            .first()
        )
        jit = False
        if identity is not None:
            user = identity.user
            membership = getattr(user, "membership", None)
            if membership is None or membership.organisation_id != organisation.pk:
                raise SSORefused("other_organisation", "This account does not belong to this organisation.")
        else:
            matches = list(_users_with_email(email).select_related("membership"))
            own = [u for u in matches if _member_of(u, organisation)]
            if len(own) > 1:
                raise SSORefused("ambiguous", "Several accounts here share this email; ask your administrator.")
            if own:
                user = own[0]
                if SSOIdentity.objects.filter(organisation=organisation, issuer=issuer, user=user).exists():
                    raise SSORefused(
                        "identity_mismatch",
                        "This account is already linked to a different account at your provider.",
                    )
            elif matches:
                raise SSORefused(
                    "other_organisation",
                    f"Your email address belongs to an account outside {organisation.name}. "
                    "Ask Assyst support to move it.",
                )
            elif not config.jit_membership:
                raise SSORefused(
                    "no_account",
                    f"There is no {organisation.name} account for your email address. "
                    "Ask your organisation's administrator to add you.",
                )
            else:
                user = User(
                    username=_new_username(email),
                    email=email,
                    first_name=str(claims.get("given_name") or "")[:150],
                    last_name=str(claims.get("family_name") or "")[:150],
                )
                user.set_unusable_password()
                user.save()
                Membership.objects.create(user=user, organisation=organisation, role=Membership.Role.VIEWER)
                jit = True
                audit_record(
                    action="sso.membership_created",
                    obj=user.membership,
                    organisation_id=organisation.pk,
                    actor_repr="single sign-on",
                    object_repr=user.username,
                    data={"role": Membership.Role.VIEWER, "via": "just-in-time"},
                )
            try:
                with transaction.atomic():
                    identity = SSOIdentity.objects.create(
                        organisation=organisation, user=user, issuer=issuer, subject=subject
                    )
            except IntegrityError as exc:  # a concurrent first sign-in of the same person
                raise SSORefused("state", "This sign-in was completed in another window. Start again.") from exc
        if not user.is_active:
            raise SSORefused("inactive", "This account is disabled.")
        identity.last_login_at = now
        identity.save(update_fields=["last_login_at"])
        if config.verified_at is None:
            config.verified_at = now
            config.save(update_fields=["verified_at"])
        audit_record(
            action="sso.login",
            actor=user,
            obj=config,
            organisation_id=organisation.pk,
            data={"issuer": issuer, "created_membership": jit},
        )
    return user


def sso_login_refused(*, config: SSOConfiguration | None, reason: str) -> None:
    """Audit a refused single sign-on (reason code only: no email or subject in the trail)."""
    audit_record(
        action="sso.login_refused",
        obj=config,
        organisation_id=config.organisation_id if config is not None else None,
        actor_repr="single sign-on",
        data={"reason": reason},
    )


def sso_password_login_refused(*, user: User) -> None:
    """Audit a correct password refused because the user's organisation requires single sign-on."""
    audit_record(
        action="sso.password_login_refused",
        actor_repr=user.get_username(),
        obj=user,
        organisation_id=user.membership.organisation_id,
        data={"reason": "sso_required"},
    )


def sso_identity_unlink(*, identity: SSOIdentity, acting_user: User) -> None:
    """Forget which provider account a user signed in with; the next sign-in matches by verified email again.

    For a person whose provider account was re-created (new subject): until unlinked, the
    new account is refused as "linked to a different account".
    """
    organisation = identity.organisation
    if not (acting_user.is_staff or is_customer_admin(acting_user, organisation)):
        raise PermissionDenied("Only a customer admin of this organisation can unlink sign-in accounts.")
    with transaction.atomic():
        audit_record(
            action="sso.identity_unlinked",
            actor=acting_user,
            obj=identity,
            organisation_id=organisation.pk,
            object_repr=identity.user.get_username(),
            data={"user_id": identity.user_id},
        )
        identity.delete()
