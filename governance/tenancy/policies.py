"""Who may see what of an organisation: the one permission policy for tenant data (C02, C09).

Wraps django-guardian. Model-level permissions never grant customer data: object
permissions are checked with `accept_global_perms=False`, and only an object
permission on the organisation (given by an active support grant) opens it.
"""

from __future__ import annotations

from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from governance.tenancy.models import Organisation

VIEW_CUSTOMER_DATA = "tenancy.view_customer_data"


def member_organisation_id(user) -> int | None:
    membership = getattr(user, "membership", None)
    return membership.organisation_id if membership is not None else None


def customer_data_organisation_ids(user) -> frozenset[int]:
    """Ids of the organisations whose customer data `user` may view.

    Computed with one query and remembered on the user object, which lives for one
    request, so a changelist checks every row without a query per row.
    """
    cached = getattr(user, "_customer_data_org_ids", None)
    if cached is not None:
        return cached
    if not (user.is_authenticated and user.is_active):
        ids: frozenset[int] = frozenset()
    elif (org_id := member_organisation_id(user)) is not None:
        ids = frozenset({org_id})
    else:
        ids = frozenset(organisations_with_customer_data(user).values_list("pk", flat=True))
    user._customer_data_org_ids = ids
    return ids


def can_view_customer_data(user, organisation: Organisation) -> bool:
    """Customer members see their own organisation; staff only with an object permission."""
    return organisation.pk in customer_data_organisation_ids(user)


def organisations_with_customer_data(user, queryset: QuerySet[Organisation] | None = None) -> QuerySet[Organisation]:
    """Organisations whose customer data the user may view.

    Customers: their own. Staff (superusers included): only where an active support
    grant names them *and* the grant's guardian object permission is in place; the grant
    is the source of truth, so access ends at `ends_at` even before beat removes the
    permission, and model-level (global) permissions never count.
    """
    queryset = queryset if queryset is not None else Organisation.objects.all()
    org_id = member_organisation_id(user)
    if org_id is not None:
        return queryset.filter(pk=org_id)
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return queryset.none()
    from governance.access.services import active_grants

    permitted = get_objects_for_user(
        user, VIEW_CUSTOMER_DATA, klass=queryset, accept_global_perms=False, with_superuser=False
    )
    return permitted.filter(pk__in=active_grants(user).values("organisation"))
