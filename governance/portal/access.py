from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import Http404


def customer_required(view):
    """Customer portal views: signed-in members only; staff and others get 404 (deny by default)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if getattr(request, "organisation", None) is None:
            raise Http404("Not a customer account.")
        return view(request, *args, **kwargs)

    return wrapper
