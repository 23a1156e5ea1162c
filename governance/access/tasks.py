"""Celery adapters for support access: they re-fetch by id and call services."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django_scopes import scopes_disabled

from governance.access import services
from governance.access.models import SupportAccessRequest
from governance.core.jobs import EMAIL_TASK_OPTIONS, job_run
from governance.tenancy.models import Membership

log = logging.getLogger(__name__)

EXPIRE_TASK = "governance.access.tasks.expire_support_access"

SUBJECTS = {
    "requested": "Support access to {org} requested: a decision is needed",
    "granted": "Support access to {org} granted until {end} UTC",
    "denied": "Support access to {org} denied",
    "expired": "Support access request for {org} expired undecided",
    "revoked": "Support access to {org} revoked",
}


def _recipients(kind: str, request: SupportAccessRequest) -> dict[str, list[str]]:
    """Addresses per audience. Customers and staff get separate messages: a customer's
    address is customer data that staff must not see without a grant (C02)."""
    customer_admins = (
        Membership.objects.filter(organisation=request.organisation_id, role=Membership.Role.ADMIN)
        .select_related("user")
        .filter(user__is_active=True)
    )
    staff = [request.requester, *request.named_staff.all()]
    if kind == "requested":
        staff += list(services.internal_approvers())
    return {
        "customer": sorted({m.user.email for m in customer_admins if m.user.email}),
        "staff": sorted({u.email for u in staff if u.email}),
    }


@shared_task(name="governance.access.tasks.notify_support_access", **EMAIL_TASK_OPTIONS)
def notify_support_access(kind: str, request_id: int) -> None:
    """Email the people a support-access event concerns. No sign-in links with tokens."""
    with scopes_disabled():
        request = SupportAccessRequest.objects.select_related("organisation", "requester").filter(pk=request_id).first()
        if request is None:
            log.warning("support-access request %s vanished before notification", request_id)
            return
        grant = getattr(request, "grant", None)
        context = {
            "kind": kind,
            "request": request,
            "grant": grant,
            "named_staff": list(request.named_staff.all()),
            "portal_url": f"{settings.SITE_URL}/portal/access/requests/{request.pk}/",
            "admin_url": f"{settings.SITE_URL}/admin/access/supportaccessrequest/{request.pk}/change/",
        }
        subject = SUBJECTS[kind].format(
            org=request.organisation.name, end=f"{grant.ends_at:%Y-%m-%d %H:%M}" if grant else ""
        )
        messages = [
            (render_to_string("email/support_access.txt", {**context, "audience": audience}), addresses)
            for audience, addresses in _recipients(kind, request).items()
            if addresses
        ]
    for body, addresses in messages:
        send_mail(f"[Assyst] {subject}", body, None, addresses)


@shared_task(name=EXPIRE_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def expire_support_access() -> None:
    """Every minute: close undecided requests past their deadline, end expired grants."""
    with scopes_disabled(), job_run(EXPIRE_TASK, lock_ttl=timedelta(minutes=5)) as run:
        if run is None:
            return
        run.add("requests_expired", services.requests_expire())
        run.add("grants_ended", services.grants_expire())


from governance.access import tasks_reviews  # noqa: E402, F401  (autodiscovery imports only tasks.py)
