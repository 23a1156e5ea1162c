"""The customer's side of termination (C21): ask for it, see the notice, withdraw the request.

A customer admin asks; a security officer confirms (the two-person rule: the customer is
the first person). Customer viewers see the notice but change nothing. Every view follows
the portal's steps: validate, load (the request's own organisation only), call the
service, respond.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from governance.access.services import is_customer_admin
from governance.portal.access import customer_required
from governance.retention import services
from governance.retention.cadence import next_cleanup_date
from governance.retention.models import Termination

REASON_MAX_LENGTH = 2000


class TerminationRequestForm(forms.Form):
    reason = forms.CharField(
        max_length=REASON_MAX_LENGTH,
        label="Why do you want to end your account?",
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Say why the account should end."},
    )
    understood = forms.BooleanField(
        label="I understand that once Assyst confirms, every login of my organisation ends at once and all its "
        "data is deleted at the next clean-up.",
        error_messages={"required": "Tick the box to confirm you understand what termination does."},
    )


def notice_context(termination: Termination | None) -> dict:
    """What the notice (page and email) says: when, why, and when the data goes."""
    cleanup = next_cleanup_date()
    return {
        "termination": termination,
        "next_cleanup": cleanup,
        "backups_clear": cleanup + timedelta(days=settings.RETENTION_BACKUP_DAYS),
        "backup_days": settings.RETENTION_BACKUP_DAYS,
    }


@customer_required
@require_http_methods(["GET", "POST"])
def termination(request):
    organisation = request.organisation
    is_admin = is_customer_admin(request.user, organisation)
    current = services.termination_for(organisation)
    form = TerminationRequestForm()
    status = 200
    if request.method == "POST" and request.POST.get("action") == "withdraw":
        return _withdraw(request, current)
    if request.method == "POST":
        if not is_admin:
            raise PermissionDenied("Only a customer admin of your organisation can ask for termination.")
        form = TerminationRequestForm(request.POST)
        if form.is_valid():
            try:
                services.termination_request(
                    organisation=organisation, acting_user=request.user, reason=form.cleaned_data["reason"]
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, "Your request is recorded. Assyst security will confirm it.")
                return redirect("portal:termination")
        status = 400
    context = {**notice_context(current), "form": form, "is_admin": is_admin, "organisation": organisation}
    return render(request, "portal/termination/notice.html", context, status=status)


def _withdraw(request, current: Termination | None):
    if current is None or current.status != Termination.Status.REQUESTED:
        messages.error(request, "There is no termination request awaiting confirmation.")
        return redirect("portal:termination")
    try:
        services.termination_cancel(termination=current, acting_user=request.user, reason="Withdrawn by the customer")
    except PermissionDenied:
        messages.error(request, "Only the person who asked can withdraw the request.")
        return redirect("portal:termination")
    messages.success(request, "Your termination request is withdrawn.")
    return redirect("portal:termination")
