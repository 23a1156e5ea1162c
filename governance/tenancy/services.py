"""State changes of organisations made by their own customer admins.

Each function runs in a transaction, checks its rule, saves with `update_fields` and
writes its audit event in the same transaction.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction

from governance.access.models import User
from governance.access.services import is_customer_admin
from governance.audit.services import audit_record
from governance.tenancy.models import Organisation

CONTACT_NAME_MAX_LENGTH = Organisation._meta.get_field("primary_contact_name").max_length


def organisation_contact_update(
    *, organisation: Organisation, acting_user: User, name: str, email: str
) -> Organisation:
    """A customer admin sets the organisation's primary contact (where incident notices go).

    The audit event names only the fields that changed: the contact's name and address
    are personal data and stay out of the append-only trail.
    """
    if not is_customer_admin(acting_user, organisation):
        raise PermissionDenied("Only a customer admin of this organisation can change its contact.")
    name = (name or "").strip()
    email = (email or "").strip()
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "Give the primary contact's name."
    elif len(name) > CONTACT_NAME_MAX_LENGTH:
        errors["name"] = f"Use at most {CONTACT_NAME_MAX_LENGTH} characters."
    if not email:
        errors["email"] = "Give the primary contact's email address."
    else:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = "Enter a valid email address."
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        organisation = Organisation.objects.with_scopes_disabled().select_for_update().get(pk=organisation.pk)
        changed = [
            field
            for field, value in (("primary_contact_name", name), ("primary_contact_email", email))
            if getattr(organisation, field) != value
        ]
        if not changed:
            return organisation
        organisation.primary_contact_name = name
        organisation.primary_contact_email = email
        organisation.save(update_fields=changed)
        audit_record(
            action="organisation.contact_changed",
            actor=acting_user,
            obj=organisation,
            data={"changed": changed},
        )
    return organisation
