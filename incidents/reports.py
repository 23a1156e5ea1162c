"""Root cause analyses (C20) and report requests (C16): write, publish, request, deliver, remind.

RCA text is Markdown written by staff and read by customers, so it is rendered to HTML
and then sanitised with nh3 (allow-list of tags and attributes, http/https/mailto links
only): no scripts, event handlers or javascript: links reach a customer's browser.

Complete-report requests are due 5 England working days after the request (target)
and no later than 7 (limit); see incidents.workdays for when the clock starts. RCA
requests have no working-day deadline: they are delivered when the RCA is published.
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from html import escape, unescape
from html.parser import HTMLParser

import markdown
import nh3
from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from governance.access.models import User
from governance.access.roles import INCIDENT_MANAGER
from governance.audit.services import audit_record
from governance.tenancy.models import Membership, Organisation
from incidents.models import Incident, ReportRequest, RootCauseAnalysis
from incidents.selectors import customer_incidents
from incidents.workdays import previous_working_day, report_due_dates, uk_date

ALLOWED_TAGS = {
    "a", "abbr", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li",
    "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"align"}, "th": {"align"}}
URL_SCHEMES = {"http", "https", "mailto"}
MAX_MARKDOWN_CHARS = 200_000


def _require_staff(user: User, perm: str) -> None:
    if not (user.is_active and user.is_staff and user.has_perm(perm)):
        raise PermissionDenied("You cannot do this.")


def _mail_on_commit(subject: str, template: str, context: dict, recipients: list[str]) -> None:
    recipients = sorted({r for r in recipients if r})
    if not recipients:
        return
    body = render_to_string(template, context)
    transaction.on_commit(lambda: send_mail(f"[Assyst] {subject}", body, None, recipients))


def _portal_url(incident: Incident) -> str:
    return f"{settings.SITE_URL}/portal/incidents/{incident.pk}/"


# --- RCA: text, HTML, PDF -------------------------------------------------------------------


def rca_html(rca: RootCauseAnalysis) -> str:
    """The RCA as HTML safe to put in a customer's page."""
    return markdown_to_safe_html(rca.body_markdown)


def markdown_to_safe_html(text: str) -> str:
    raw = markdown.markdown(text, extensions=["extra", "sane_lists"], output_format="html")
    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


class _FlowableBuilder(HTMLParser):
    """Turns the sanitised RCA HTML into reportlab flowables: headings, paragraphs, lists,
    preformatted code and quotes. Inline bold, italic and code are kept; links show their URL."""

    BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "pre", "blockquote", "td", "th"}

    def __init__(self, styles) -> None:
        super().__init__(convert_charrefs=True)
        self.styles = styles
        self.flowables: list = []
        self.text: list[str] = []
        self.block: str | None = None
        self.lists: list[list] = []  # stack of (kind, counter)
        self.quote = 0
        self.href: str | None = None

    def _flush(self) -> None:
        from reportlab.platypus import Paragraph, Preformatted

        content = "".join(self.text).strip()
        self.text = []
        if not content:
            return
        tag = self.block or "p"
        if tag == "pre":
            self.flowables.append(Preformatted(_strip_tags(content), self.styles["Code"]))
            return
        style = self.styles["Normal"]
        if tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            style = self.styles["Heading" + str(min(int(tag[1]) + 1, 4))]
        if tag == "li" and self.lists:
            kind = self.lists[-1]
            kind[1] += 1
            bullet = f"{kind[1]}." if kind[0] == "ol" else "\u2022"
            indent = 14 * len(self.lists)
            self.flowables.append(Paragraph(content, style, bulletText=bullet))
            self.flowables[-1].style = style.clone(f"li{indent}", leftIndent=indent + 8, bulletIndent=indent - 6)
            return
        if self.quote:
            style = style.clone("quote", leftIndent=18, textColor="#444444")
        self.flowables.append(Paragraph(content, style))

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self._flush()
            self.block = tag
        if tag in {"ul", "ol"}:
            self._flush()
            self.lists.append([tag, 0])
        elif tag == "blockquote":
            self.quote += 1
        elif tag in {"strong", "b"}:
            self.text.append("<b>")
        elif tag in {"em", "i"}:
            self.text.append("<i>")
        elif tag == "code" and self.block != "pre":
            self.text.append('<font face="Courier">')
        elif tag == "br":
            self.text.append("<br/>")
        elif tag == "a":
            self.href = dict(attrs).get("href")
        elif tag == "hr":
            self._flush()

    def handle_endtag(self, tag):
        if tag in {"strong", "b"}:
            self.text.append("</b>")
        elif tag in {"em", "i"}:
            self.text.append("</i>")
        elif tag == "code" and self.block != "pre":
            self.text.append("</font>")
        elif tag == "a":
            if self.href:
                self.text.append(f" ({escape(self.href)})")
            self.href = None
        elif tag in self.BLOCKS:
            self._flush()
            self.block = "li" if self.lists and tag != "li" else None
            if tag == "blockquote":
                self.quote -= 1
        elif tag in {"ul", "ol"}:
            self._flush()
            if self.lists:
                self.lists.pop()
            self.block = "li" if self.lists else None

    def handle_data(self, data):
        self.text.append(escape(data))

    def close(self):
        super().close()
        self._flush()


def _strip_tags(markup: str) -> str:
    return unescape(re.sub(r"<[^>]+>", "", markup.replace("<br/>", "\n")))


def rca_pdf(rca: RootCauseAnalysis) -> bytes:
    """The RCA as a PDF: title, the incident's facts, then the RCA text."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    incident = rca.incident
    styles = getSampleStyleSheet()
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=f"Root cause analysis: {incident.title}",
        author="Assyst",
        subject=f"Incident #{incident.pk}",
    )

    def fmt(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "-"

    facts = [
        ("Incident", f"#{incident.pk} {incident.title}"),
        ("Severity", incident.get_severity_display()),
        ("Status", incident.get_status_display()),
        ("Detected", fmt(incident.detected_at)),
        ("Became aware", fmt(incident.aware_at)),
        ("Closed", fmt(incident.closed_at)),
        ("RCA published", fmt(rca.published_at)),
    ]
    story: list = [
        Paragraph("Root cause analysis", styles["Title"]),
        Paragraph(escape(incident.title), styles["Heading2"]),
        Table(
            [
                [Paragraph(f"<b>{escape(k)}</b>", styles["Normal"]), Paragraph(escape(v), styles["Normal"])]
                for k, v in facts
            ],
            colWidths=[40 * mm, None],
            style=TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]),
            hAlign="LEFT",
        ),
        Spacer(1, 6 * mm),
    ]
    builder = _FlowableBuilder(styles)
    builder.feed(markdown_to_safe_html(rca.body_markdown))
    builder.close()
    story.extend(builder.flowables)
    doc.build(story)
    return buffer.getvalue()


# --- RCA: services --------------------------------------------------------------------------


def rca_save(*, incident: Incident, acting_user: User, body_markdown: str) -> RootCauseAnalysis:
    """Create or edit the incident's RCA. A published RCA can still be corrected."""
    existing = RootCauseAnalysis.objects.filter(incident=incident).first()
    _require_staff(acting_user, "incidents.change_rootcauseanalysis" if existing else "incidents.add_rootcauseanalysis")
    body = body_markdown.strip()
    if not body:
        raise ValidationError({"body_markdown": "Write the root cause analysis."})
    if len(body) > MAX_MARKDOWN_CHARS:
        raise ValidationError({"body_markdown": f"Keep the text under {MAX_MARKDOWN_CHARS:,} characters."})
    with transaction.atomic():
        if existing is None:
            rca = RootCauseAnalysis.objects.create(incident=incident, body_markdown=body, author=acting_user)
            action = "incident.rca_created"
        else:
            rca = existing
            rca.body_markdown = body
            rca.save(update_fields=["body_markdown", "updated_at"])
            action = "incident.rca_edited"
        audit_record(
            action=action,
            actor=acting_user,
            obj=rca,
            data={"incident": incident.pk, "published": bool(rca.published_at)},
        )
    return rca


def rca_publish(*, rca: RootCauseAnalysis, acting_user: User) -> RootCauseAnalysis:
    """Publish the RCA to the customers who can see the incident; open RCA requests are
    delivered by it and their requesters emailed (after commit)."""
    _require_staff(acting_user, "incidents.change_rootcauseanalysis")
    with transaction.atomic():
        rca = RootCauseAnalysis.objects.select_for_update(of=("self",)).select_related("incident").get(pk=rca.pk)
        if rca.published_at is not None:
            raise ValidationError("This RCA is already published.")
        now = timezone.now()
        rca.published_at = now
        rca.save(update_fields=["published_at", "updated_at"])
        requests = list(
            ReportRequest.objects.with_scopes_disabled()
            .select_for_update(of=("self",))
            .filter(incident=rca.incident, kind=ReportRequest.Kind.RCA, delivered_at__isnull=True)
            .select_related("requested_by", "organisation")
        )
        for request in requests:
            _deliver(request, acting_user, now)
        audit_record(
            action="incident.rca_published",
            actor=acting_user,
            obj=rca,
            data={"incident": rca.incident_id, "requests_delivered": [r.pk for r in requests]},
        )
    return rca


# --- report requests ------------------------------------------------------------------------


def _customer_may_request(user: User, organisation: Organisation) -> bool:
    membership = getattr(user, "membership", None)
    return (
        user.is_active
        and membership is not None
        and membership.organisation_id == organisation.pk
        and membership.role in (Membership.Role.ADMIN, Membership.Role.VIEWER)
    )


def report_request_create(
    *, incident: Incident, organisation: Organisation, acting_user: User, kind: str
) -> ReportRequest:
    """A customer (admin or viewer) of an organisation that can see the incident asks for
    the complete report or the RCA. One open request per organisation and kind."""
    if not _customer_may_request(acting_user, organisation):
        raise PermissionDenied("Only members of the organisation can request its reports.")
    if not customer_incidents(organisation).filter(pk=incident.pk).exists():
        raise PermissionDenied("This incident does not concern your organisation.")
    if kind not in ReportRequest.Kind.values:
        raise ValidationError({"kind": "Choose the complete report or the root cause analysis."})
    if (
        kind == ReportRequest.Kind.RCA
        and RootCauseAnalysis.objects.filter(incident=incident, published_at__isnull=False).exists()
    ):
        raise ValidationError("The root cause analysis is already published on this page.")
    open_requests = ReportRequest.objects.with_scopes_disabled().filter(
        incident=incident, organisation=organisation, kind=kind, delivered_at__isnull=True
    )
    already = "Your organisation has already requested this; it is on its way."
    if open_requests.exists():
        raise ValidationError(already)
    now = timezone.now()
    target = limit = None
    if kind == ReportRequest.Kind.REPORT:
        target, limit = report_due_dates(now)
    try:
        with transaction.atomic():
            request = ReportRequest.objects.create(
                incident=incident,
                organisation=organisation,
                kind=kind,
                requested_by=acting_user,
                requested_at=now,
                due_target=target,
                due_limit=limit,
            )
            audit_record(
                action=f"incident.{kind}_requested",
                actor=acting_user,
                obj=request,
                data={"incident": incident.pk, "due_target": target, "due_limit": limit},
            )
    except IntegrityError as exc:  # a concurrent request won the race (one_open_request_per_kind)
        raise ValidationError(already) from exc
    return request


def _deliver(request: ReportRequest, acting_user: User, now: datetime) -> None:
    request.delivered_at = now
    request.delivered_by = acting_user
    request.save(update_fields=["delivered_at", "delivered_by"])
    incident = request.incident
    _mail_on_commit(
        f"{request.get_kind_display()} for incident #{incident.pk}: {incident.title}",
        "email/report_delivered.txt",
        {"request": request, "incident": incident, "portal_url": _portal_url(incident)},
        [request.requested_by.email],
    )


def report_request_deliver(*, request: ReportRequest, acting_user: User) -> ReportRequest:
    """Staff mark a request delivered (the report went to the customer); the requester is told."""
    _require_staff(acting_user, "incidents.change_reportrequest")
    with transaction.atomic():
        request = (
            ReportRequest.objects.with_scopes_disabled()
            .select_for_update(of=("self",))
            .select_related("incident", "requested_by")
            .get(pk=request.pk)
        )
        if request.delivered_at is not None:
            raise ValidationError("This request is already delivered.")
        if request.kind == ReportRequest.Kind.RCA:
            raise ValidationError("RCA requests are delivered by publishing the RCA.")
        now = timezone.now()
        _deliver(request, acting_user, now)
        late = request.due_limit is not None and uk_date(now) > request.due_limit
        audit_record(action="incident.report_delivered", actor=acting_user, obj=request, data={"late": late})
    return request


def report_request_is_overdue(request: ReportRequest, now: datetime | None = None) -> bool:
    return (
        request.delivered_at is None
        and request.due_limit is not None
        and uk_date(now or timezone.now()) > request.due_limit
    )


def reminder_recipients(incident: Incident) -> list[str]:
    """The incident's manager; without one, everyone in the Incident manager group."""
    manager = incident.incident_manager
    if manager is not None and manager.is_active and manager.email:
        return [manager.email]
    group = Group.objects.filter(name=INCIDENT_MANAGER).first()
    if group is None:
        return []
    return sorted({u.email for u in group.user_set.filter(is_active=True) if u.email})


def report_requests_remind(*, now: datetime) -> dict[str, int]:
    """Daily: remind one working day before the target and flag overdue requests, each once.

    `reminder_sent_at` records the last message: empty means none yet; a reminder sets
    it; the overdue flag is due while it is empty or older than the limit, and sets it to
    a moment after the limit, so each of the two messages goes out at most once.
    """
    today = uk_date(now)
    counts = {"reminded": 0, "overdue": 0}
    candidates = (
        ReportRequest.objects.with_scopes_disabled()
        .filter(delivered_at__isnull=True, kind=ReportRequest.Kind.REPORT, due_target__isnull=False)
        .filter(Q(reminder_sent_at__isnull=True) | Q(due_limit__lt=today))
        .values_list("pk", flat=True)
    )
    for pk in list(candidates):
        with transaction.atomic():
            request = (
                ReportRequest.objects.with_scopes_disabled()
                .select_for_update(skip_locked=True, of=("self",))
                .select_related("incident__incident_manager", "organisation")
                .filter(pk=pk, delivered_at__isnull=True)
                .first()
            )
            if request is None:
                continue
            sent = request.reminder_sent_at
            if today > request.due_limit:
                if sent is not None and uk_date(sent) > request.due_limit:
                    continue
                kind = "overdue"
            elif sent is None and today >= previous_working_day(request.due_target):
                kind = "reminder"
            else:
                continue
            request.reminder_sent_at = now
            request.save(update_fields=["reminder_sent_at"])
            incident = request.incident
            subject = (
                f"Overdue: complete report for {request.organisation.name} was due by {request.due_limit:%Y-%m-%d}"
                if kind == "overdue"
                else f"Due {request.due_target:%Y-%m-%d}: complete report for {request.organisation.name}"
            )
            _mail_on_commit(
                f"{subject} (incident #{incident.pk})",
                f"email/report_{kind}.txt",
                {
                    "request": request,
                    "incident": incident,
                    "admin_url": f"{settings.SITE_URL}/admin/incidents/reportrequest/{request.pk}/change/",
                },
                reminder_recipients(incident),
            )
            audit_record(action=f"incident.report_{kind}", obj=request, data={"due_limit": request.due_limit})
            counts["reminded" if kind == "reminder" else "overdue"] += 1
    return counts
