from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404

from governance.tenancy.models import Organisation


def customer_required(view):
    """Customer portal views: signed-in members only; staff and others get 404 (deny by default)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        organisation = getattr(request, "organisation", None)
        if organisation is None:
            raise Http404("Not a customer account.")
        if organisation.status == Organisation.Status.TERMINATED:
            # Confirming a termination deactivates every account; one switched back on by
            # mistake still reaches nothing (C21: the data only waits for the clean-up).
            raise PermissionDenied("Your organisation's account has ended; its data waits for deletion.")
        return view(request, *args, **kwargs)

    return wrapper
