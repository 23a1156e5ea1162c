"""Support access seen by the customer (C03, C04, C09): requests, consent, grants, the log, limits.

Every view: validate input, load through the scoped helper (404 for another
organisation's object), call the service, respond. Lists filter on the request's
organisation explicitly as well as through the tenant scope, and cost a fixed number
of queries whatever the row count.
"""

from __future__ import annotations

import csv
from datetime import UTC

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Max, Min, Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from governance.access import services
from governance.access.models import AccessLogEntry, DataScope, ReasonType, SupportAccessRequest, SupportGrant
from governance.core.csvsafe import csv_cell
from governance.portal.access import customer_required
from governance.portal.forms import (
    AccessLogFilterForm,
    ApproveForm,
    ContactForm,
    DenyForm,
    PolicyForm,
    RevokeForm,
    apply_service_error,
    staff_label,
)
from governance.tenancy.selectors import get_for_user
from governance.tenancy.services import organisation_contact_update

Status = SupportAccessRequest.Status
Decision = SupportAccessRequest.Decision
PAST_REQUESTS_PER_PAGE = 20
LOG_PER_PAGE = 50
SCOPE_LABELS = dict(DataScope.choices)


def _requests(organisation):
    return (
        SupportAccessRequest.objects.filter(organisation=organisation)
        .select_related("requester")
        .prefetch_related("named_staff")
    )


def _forbid_unless_admin(request) -> None:
    """Customer viewers see everything but change nothing (the services refuse them too)."""
    if not services.is_customer_admin(request.user, request.organisation):
        raise PermissionDenied("Only a customer admin of your organisation can do this.")


@customer_required
@require_GET
def access_overview(request):
    organisation = request.organisation
    now = timezone.now()
    pending = list(_requests(organisation).filter(status=Status.PENDING).order_by("decision_deadline"))
    awaiting_you = [r for r in pending if r.customer_decision == Decision.PENDING]
    awaiting_assyst = [r for r in pending if r.customer_decision != Decision.PENDING]
    grants = list(
        SupportGrant.objects.filter(organisation=organisation, revoked_at__isnull=True, ends_at__gt=now)
        .select_related("request")
        .prefetch_related("staff")
        .order_by("starts_at")
    )
    for grant in grants:
        grant.current_state = grant.state(now)
        grant.scope_labels = [SCOPE_LABELS.get(s, s) for s in grant.scope]
    policy = services.support_policy_for(organisation)
    past = Paginator(_requests(organisation).exclude(status=Status.PENDING), PAST_REQUESTS_PER_PAGE)
    return render(
        request,
        "portal/access/overview.html",
        {
            "now": now,
            "awaiting_you": awaiting_you,
            "awaiting_assyst": awaiting_assyst,
            "grants": grants,
            "past": past.get_page(request.GET.get("page")),
            "roster": services.eligible_staff(),
            "policy": policy,
            "accepted_reasons": [
                ReasonType(code).label for code in policy.accepted_reason_types if code in ReasonType.values
            ],
            "is_admin": services.is_customer_admin(request.user, organisation),
            "revoke_form": RevokeForm(),
        },
    )


@customer_required
@require_http_methods(["GET", "POST"])
def access_request_detail(request, pk: int):
    support_request = get_for_user(
        _requests(request.organisation).select_related("internal_decided_by", "customer_decided_by", "grant"),
        request,
        pk=pk,
    )
    forms = {"approve": ApproveForm(auto_id="approve_%s"), "deny": DenyForm(auto_id="deny_%s")}
    status = 200
    if request.method == "POST":
        _forbid_unless_admin(request)
        decision = request.POST.get("decision")
        if decision not in forms:
            messages.error(request, "Choose Approve or Deny.")
            status = 400
        else:
            form_class = ApproveForm if decision == "approve" else DenyForm
            form = forms[decision] = form_class(request.POST, auto_id=f"{decision}_%s")
            if form.is_valid():
                try:
                    services.support_request_decide_customer(
                        request=support_request,
                        acting_user=request.user,
                        approve=decision == "approve",
                        reason=form.cleaned_data["reason"],
                    )
                except ValidationError as exc:
                    apply_service_error(form, exc)
                else:
                    messages.success(request, "Your approval is recorded." if decision == "approve" else "Denied.")
                    return redirect("portal:access_request_detail", pk=support_request.pk)
            status = 400
    now = timezone.now()
    return render(
        request,
        "portal/access/request_detail.html",
        {
            "req": support_request,
            "now": now,
            "grant": getattr(support_request, "grant", None),
            "can_decide": (
                services.is_customer_admin(request.user, request.organisation)
                and support_request.status == Status.PENDING
                and support_request.customer_decision == Decision.PENDING
                and now < support_request.decision_deadline
            ),
            "approve_form": forms["approve"],
            "deny_form": forms["deny"],
        },
        status=status,
    )


@customer_required
@require_http_methods(["GET", "POST"])
def access_grant_detail(request, pk: int):
    organisation = request.organisation
    grant = get_for_user(
        SupportGrant.objects.select_related("request__requester", "revoked_by").prefetch_related("staff"),
        request,
        pk=pk,
    )
    form = RevokeForm()
    status = 200
    if request.method == "POST":
        _forbid_unless_admin(request)
        form = RevokeForm(request.POST)
        if form.is_valid():
            try:
                services.grant_revoke(grant=grant, acting_user=request.user, reason=form.cleaned_data["reason"])
            except ValidationError as exc:
                apply_service_error(form, exc)
            else:
                messages.success(request, f"Grant #{grant.pk} is revoked: its staff lost access at once.")
                return redirect("portal:access_grant_detail", pk=grant.pk)
        status = 400
    now = timezone.now()
    touched = (
        AccessLogEntry.objects.filter(organisation=organisation, grant=grant)
        .values("scope", "object_type", "object_id")
        .annotate(
            object_repr=Max("object_repr"),
            count=Count("id"),
            changes=Count("id", filter=Q(action=AccessLogEntry.Action.CHANGE)),
            first_at=Min("at"),
            last_at=Max("at"),
        )
        .order_by("scope", "object_type", "object_id")
    )
    return render(
        request,
        "portal/access/grant_detail.html",
        {
            "grant": grant,
            "now": now,
            "state": grant.state(now),
            "scope_labels": [SCOPE_LABELS.get(s, s) for s in grant.scope],
            "touched": [{**row, "scope_label": SCOPE_LABELS.get(row["scope"], row["scope"])} for row in touched],
            "can_revoke": services.is_customer_admin(request.user, organisation)
            and grant.revoked_at is None
            and grant.ends_at > now,
            "form": form,
        },
        status=status,
    )


def _filtered_log(request):
    """The organisation's log entries filtered by the GET form, newest first; None if input is invalid."""
    organisation = request.organisation
    form = AccessLogFilterForm(request.GET or None, organisation=organisation)
    entries = AccessLogEntry.objects.filter(organisation=organisation).select_related("staff").order_by("-at", "-id")
    if form.is_bound and not form.is_valid():
        return form, None
    return form, form.apply(entries) if form.is_bound else entries


@customer_required
@require_GET
def access_log(request):
    form, entries = _filtered_log(request)
    page = Paginator(entries, LOG_PER_PAGE).get_page(request.GET.get("page")) if entries is not None else None
    return render(
        request,
        "portal/access/log.html",
        {"form": form, "page": page},
        status=200 if entries is not None else 400,
    )


CSV_COLUMNS = ["time_utc", "staff", "action", "scope", "object", "reason_type", "ticket", "grant_id"]


@customer_required
@require_GET
def access_log_csv(request):
    form, entries = _filtered_log(request)
    if entries is None:
        errors = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in form.errors.items())
        return HttpResponse(f"Invalid filter: {errors}\n", status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="access-log-{request.organisation.slug}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for entry in entries.iterator(chunk_size=2000):
        writer.writerow(
            csv_cell(value)
            for value in (
                entry.at.astimezone(UTC).isoformat(),
                staff_label(entry.staff),
                entry.action,
                entry.scope,
                entry.object_repr,
                entry.reason_type,
                entry.ticket_reference,
                entry.grant_id,
            )
        )
    return response


@customer_required
@require_http_methods(["GET", "POST"])
def access_settings(request):
    organisation = request.organisation
    _forbid_unless_admin(request)
    policy = services.support_policy_for(organisation)
    policy_form = PolicyForm(
        initial={
            "max_grant_hours": policy.max_grant_hours,
            "decision_timeout_hours": policy.decision_timeout_hours,
            # An empty list means every reason type is accepted.
            "accepted_reason_types": policy.accepted_reason_types or list(ReasonType.values),
        },
        auto_id="limits_%s",
    )
    contact_form = ContactForm(
        initial={"name": organisation.primary_contact_name, "email": organisation.primary_contact_email},
        auto_id="contact_%s",
    )
    status = 200
    if request.method == "POST":
        which = request.POST.get("form")
        if which == "limits":
            policy_form = PolicyForm(request.POST, auto_id="limits_%s")
            if policy_form.is_valid():
                try:
                    services.support_policy_update(
                        organisation=organisation, acting_user=request.user, **policy_form.cleaned_data
                    )
                except ValidationError as exc:
                    apply_service_error(policy_form, exc)
                else:
                    messages.success(request, "Your support-access limits are saved.")
                    return redirect("portal:access_settings")
        elif which == "contact":
            contact_form = ContactForm(request.POST, auto_id="contact_%s")
            if contact_form.is_valid():
                try:
                    organisation_contact_update(
                        organisation=organisation, acting_user=request.user, **contact_form.cleaned_data
                    )
                except ValidationError as exc:
                    apply_service_error(contact_form, exc)
                else:
                    messages.success(request, "The primary contact is saved.")
                    return redirect("portal:access_settings")
        else:
            messages.error(request, "Unknown form.")
        status = 400
    return render(
        request,
        "portal/access/settings.html",
        {"policy_form": policy_form, "contact_form": contact_form},
        status=status,
    )
