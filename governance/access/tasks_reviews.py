"""Celery adapters for access reviews (C05): they re-fetch by id and call the services."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import timezone
from django_scopes import scopes_disabled

from governance.access import reviews
from governance.access.models import AccessReviewCampaign, AccessReviewItem
from governance.core.jobs import EMAIL_TASK_OPTIONS, job_run

log = logging.getLogger(__name__)

OPEN_TASK = "governance.access.tasks_reviews.open_access_review"
ESCALATE_TASK = "governance.access.tasks_reviews.escalate_access_reviews"
NOTIFY_TASK = "governance.access.tasks_reviews.notify_access_review"

SUBJECTS = {
    "opened": "Access review {period} is open: decide every item by {due} UTC",
    "overdue": "Access review {period} is overdue ({pending} items pending)",
}


# Idempotent (one campaign per period), so a redelivery after a lost worker is harmless.
@shared_task(name=OPEN_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def open_access_review() -> None:
    """Daily: open the campaign for the latest complete period if it is missing."""
    with scopes_disabled(), job_run(OPEN_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        campaign = reviews.campaign_open(now=timezone.now())
        run.add("opened", int(campaign is not None))
        if campaign is not None:
            run.add("items", campaign.items.count())


# At most one reminder per campaign per 24 h is recorded in the row, so redelivery is harmless.
@shared_task(name=ESCALATE_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def escalate_access_reviews() -> None:
    """Daily: remind security officers and the DPO of overdue campaigns."""
    with scopes_disabled(), job_run(ESCALATE_TASK, lock_ttl=timedelta(minutes=10)) as run:
        if run is None:
            return
        run.add("escalated", reviews.campaigns_escalate(now=timezone.now()))


@shared_task(name=NOTIFY_TASK, **EMAIL_TASK_OPTIONS)
def notify_access_review(kind: str, campaign_id: int) -> None:
    """Email security officers (and, when overdue, the DPO) about a campaign."""
    with scopes_disabled():
        campaign = AccessReviewCampaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            log.warning("access review %s vanished before notification", campaign_id)
            return
        items = campaign.items.all()
        pending = items.filter(decision=AccessReviewItem.Decision.PENDING).count()
        period = f"{campaign.period_start:%Y-%m-%d} to {campaign.period_end - timedelta(days=1):%Y-%m-%d}"
        context = {
            "campaign": campaign,
            "period": period,
            "total": items.count(),
            "pending": pending,
            "admin_url": f"{settings.SITE_URL}/admin/access/accessreviewcampaign/{campaign.pk}/change/",
        }
        subject = SUBJECTS[kind].format(period=period, due=f"{campaign.due_at:%Y-%m-%d %H:%M}", pending=pending)
        body = render_to_string(f"email/access_review_{kind}.txt", context)
        recipients = reviews.review_recipients(kind)
    if recipients:
        send_mail(f"[Assyst] {subject}", body, None, recipients)
