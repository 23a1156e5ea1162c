"""Loading customer objects from a URL: tenant and existence checked in one query."""

from __future__ import annotations

from django.db.models import Model, QuerySet
from django.http import Http404


def get_for_user(queryset: QuerySet, request, **lookup) -> Model:
    """Fetch one object of the requesting customer's organisation, or 404.

    The scoped manager already limits `queryset` to the active tenant; the explicit
    filter on the request's organisation is a second line that also covers querysets
    built from an unscoped manager. Missing and forbidden both give 404 (no leak).
    """
    organisation = getattr(request, "organisation", None)
    if organisation is None:
        raise Http404
    field = "pk" if queryset.model._meta.label == "tenancy.Organisation" else "organisation"
    try:
        return queryset.filter(**{field: organisation.pk}).get(**lookup)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404 from exc
