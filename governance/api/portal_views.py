"""Customer portal: a customer admin creates and revokes read-only API tokens of their own
organisation (incidents, access log). The secret is shown once, on the page that follows
the creation; only its hash is kept."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from governance.access.services import is_customer_admin
from governance.api import scopes as api_scopes
from governance.api import services
from governance.api.models import ApiToken
from governance.portal.access import customer_required
from governance.portal.forms import apply_service_error
from governance.tenancy.selectors import get_for_user


class CustomerTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'Our SIEM'.")
    scopes = forms.MultipleChoiceField(
        choices=api_scopes.choices(api_scopes.CUSTOMER_SCOPES), widget=forms.CheckboxSelectMultiple
    )
    expires_on = forms.DateField(help_text="The token stops working at the start of this day (UTC).")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["expires_on"].initial = (timezone.now() + timedelta(days=90)).date()
        self.fields["expires_on"].widget.input_type = "date"


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=200, initial="No longer needed")


def _forbid_unless_admin(request) -> None:
    if not is_customer_admin(request.user, request.organisation):
        raise PermissionDenied("Only a customer admin of your organisation can manage API tokens.")


@never_cache
@customer_required
@require_http_methods(["GET", "POST"])
def token_list(request):
    _forbid_unless_admin(request)
    form = CustomerTokenForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            expires_at = datetime.combine(form.cleaned_data["expires_on"], time.min, tzinfo=UTC)
            try:
                _token, secret = services.customer_token_issue(
                    organisation=request.organisation,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=expires_at,
                    acting_user=request.user,
                )
            except ValidationError as e:
                apply_service_error(form, e, {"expires_at": "expires_on"})
            else:
                # Shown once, in this response only (never stored, not even in the session;
                # never_cache keeps it out of caches).
                return _page(request, CustomerTokenForm(), secret=secret)
        status = 400
    return _page(request, form, status=status)


def _page(request, form, *, secret: str | None = None, status: int = 200):
    # The scoped manager shows this organisation's tokens only (C09).
    tokens = list(ApiToken.objects.filter(kind=ApiToken.Kind.CUSTOMER).select_related("user", "revoked_by"))
    now = timezone.now()
    for t in tokens:
        t.current_state = t.state(now)
    return render(
        request,
        "portal/api_tokens/list.html",
        {
            "form": form,
            "tokens": tokens,
            "secret": secret,
            "max_days": settings.API_TOKEN_MAX_DAYS,
            "scopes": [api_scopes.BY_NAME[n] for n in api_scopes.CUSTOMER_SCOPES],
        },
        status=status,
    )


@customer_required
@require_http_methods(["GET", "POST"])
def token_revoke(request, pk: int):
    """GET asks for confirmation and a reason; POST revokes (audited)."""
    _forbid_unless_admin(request)
    token = get_for_user(ApiToken.objects.all(), request, pk=pk)
    form = RevokeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.token_revoke(token=token, acting_user=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as e:
            messages.error(request, " ".join(e.messages))
        else:
            messages.success(request, f"Token {token.prefix} revoked: it is refused from now on.")
        return redirect("portal:api_tokens")
    return render(
        request,
        "portal/api_tokens/revoke.html",
        {"token": token, "form": form},
        status=400 if request.method == "POST" else 200,
    )
