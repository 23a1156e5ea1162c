"""Publishing commitments on the public trust page: the security officer's choice, audited."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from governance.access.models import User
from governance.audit.services import audit_record
from governance.trust import public
from governance.trust.evidence import REGISTRY
from governance.trust.models import PublishedCommitment


def _require(user: User, perm: str) -> None:
    if not (user.is_active and user.is_staff and user.has_perm(perm)):
        raise PermissionDenied("You cannot change what the public trust page shows.")


def published_commitment_add(*, commitment_id: str, acting_user: User) -> PublishedCommitment:
    """Show one commitment's live summary on /trust/."""
    _require(acting_user, "trust.add_publishedcommitment")
    entry = REGISTRY.get(commitment_id)
    if entry is None:
        raise ValidationError({"commitment_id": "Choose one of the commitments C02-C28."})
    if not entry.publishable:
        raise ValidationError({"commitment_id": f"{commitment_id}'s evidence cannot be published."})
    try:
        with transaction.atomic():
            published = PublishedCommitment.objects.create(commitment_id=commitment_id)
            audit_record(action="trust.commitment_published", actor=acting_user, obj=published)
            public.invalidate_on_commit()
    except IntegrityError as exc:
        raise ValidationError({"commitment_id": f"{commitment_id} is already published."}) from exc
    return published


def published_commitment_remove(*, published: PublishedCommitment, acting_user: User) -> None:
    """Take one commitment off /trust/."""
    _require(acting_user, "trust.delete_publishedcommitment")
    with transaction.atomic():
        audit_record(
            action="trust.commitment_unpublished",
            actor=acting_user,
            obj=published,
            data={"commitment": published.commitment_id},
        )
        published.delete()
        public.invalidate_on_commit()
