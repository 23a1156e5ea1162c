"""Evidence for vulnerability reports (C11) and law-enforcement requests (C27)."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Exists, F, OuterRef, Q

from governance.disclosure.models import VulnerabilityReport
from governance.legal.models import CustomerNotice, Decision, Disclosure, LegalRequest
from governance.trust.evidence.base import (
    FAILING,
    KEPT,
    NO_DATA,
    Period,
    Record,
    admin_url,
    as_of,
    commitment,
    day,
    fmt_hours,
    median_hours,
    plural,
    result,
)
from incidents.workdays import uk_date


@commitment("C11", "Vulnerability reports welcome")
def vulnerability_reports(period: Period):
    today = uk_date(as_of(period))
    rows = list(
        VulnerabilityReport.objects.filter(received_at__gte=period.since, received_at__lt=period.until)
        .only("pk", "reference", "summary", "received_at", "first_response_due", "first_response_at", "status")
        .order_by("received_at")
    )
    contact = bool(settings.SECURITY_TXT_CONTACT_EMAILS)
    if not rows:
        return result(
            NO_DATA,
            "no vulnerability reports in the period; security.txt and the report form are published",
            {"reports": 0, "security_txt_contacts": len(settings.SECURITY_TXT_CONTACT_EMAILS)},
        )
    responded = [r for r in rows if r.first_response_at is not None]
    on_time = [r for r in responded if uk_date(r.first_response_at) <= r.first_response_due]
    records = []
    for r in rows:
        if r.first_response_at is not None and uk_date(r.first_response_at) > r.first_response_due:
            records.append(
                Record(
                    r.reference,
                    f"first response {day(r.first_response_at)}, after the target {day(r.first_response_due)}",
                    admin_url(r),
                )
            )
        elif r.first_response_at is None and today > r.first_response_due:
            records.append(
                Record(
                    r.reference, f"no first response; the target {day(r.first_response_due)} has passed", admin_url(r)
                )
            )
    median = median_hours([r.first_response_at - r.received_at for r in responded])
    figures = {
        "reports": len(rows),
        "responded": len(responded),
        "responded_within_target": len(on_time),
        "past_target": len(records),
        "median_hours_to_first_response": median,
        "security_txt_contacts": len(settings.SECURITY_TXT_CONTACT_EMAILS),
    }
    if not contact:
        records.append(Record("security.txt", "no contact address configured (SECURITY_TXT_CONTACT_EMAILS)"))
    summary = (
        f"{plural(len(rows), 'vulnerability report')}, {len(on_time)} answered within 3 working days "
        f"(median {fmt_hours(median)}), {len(records)} past the target"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="vulnerability reports")


@commitment("C27", "Law-enforcement requests reviewed, objected to when overbroad, customer told first")
def legal_requests(period: Period):
    requests = LegalRequest.objects.filter(received_at__gte=period.since, received_at__lt=period.until)
    outcomes = {
        r["decision__outcome"]: r["n"] for r in requests.order_by().values("decision__outcome").annotate(n=Count("pk"))
    }
    received = sum(outcomes.values())
    # A decision needs a complete review first; an overbroad scope allows only objecting or partial compliance.
    bad_decisions = list(
        Decision.objects.filter(request__in=requests)
        .filter(
            Q(request__checklist__isnull=True)
            | Q(request__checklist__reviewed_at__gt=F("decided_at"))
            | Q(request__checklist__scope_not_overbroad=False, outcome=Decision.Outcome.COMPLY)
        )
        .select_related("request", "request__checklist")[:20]
    )
    Organisations = LegalRequest.organisations.through
    told_before = CustomerNotice.objects.filter(
        request_id=OuterRef(OuterRef("request_id")),
        organisation_id=OuterRef("organisation_id"),
        notified_at__lte=OuterRef(OuterRef("disclosed_at")),
    )
    untold = Organisations.objects.filter(legalrequest_id=OuterRef("request_id")).exclude(Exists(told_before))
    disclosures = Disclosure.objects.filter(disclosed_at__gte=period.since, disclosed_at__lt=period.until)
    totals = disclosures.aggregate(
        disclosures=Count("pk"),
        under_order=Count("pk", filter=Q(under_order__isnull=False)),
    )
    bad_disclosures = list(
        disclosures.filter(Exists(untold))
        .filter(Q(under_order__isnull=True) | Q(under_order__signed_off_at__isnull=True))
        .select_related("request")[:20]
    )
    notices = CustomerNotice.objects.filter(notified_at__gte=period.since, notified_at__lt=period.until).count()
    records = [Record(str(d.request), _decision_problem(d), admin_url(d.request)) for d in bad_decisions] + [
        Record(
            str(d.request),
            f"disclosure on {day(d.disclosed_at)} before every customer was told, without a signed-off order",
            admin_url(d.request),
        )
        for d in bad_disclosures
    ]
    figures = {
        "received": received,
        "objected": outcomes.get(Decision.Outcome.OBJECT, 0),
        "rejected": outcomes.get(Decision.Outcome.REJECT, 0),
        "complied": outcomes.get(Decision.Outcome.COMPLY, 0),
        "complied_in_part": outcomes.get(Decision.Outcome.PARTIAL, 0),
        "undecided": outcomes.get(None, 0),
        "customer_notices": notices,
        **totals,
    }
    if not received and not totals["disclosures"]:
        return result(NO_DATA, "no law-enforcement requests in the period", figures)
    summary = (
        f"{plural(received, 'legal request')}: {figures['objected']} objected to, {figures['rejected']} rejected, "
        f"{figures['complied'] + figures['complied_in_part']} complied with (in full or part); "
        f"{plural(notices, 'customer notice')}, {plural(totals['disclosures'], 'disclosure')} "
        f"({totals['under_order']} under a non-disclosure order)"
    )
    return result(FAILING if records else KEPT, summary, figures, records, source="legal requests")


def _decision_problem(decision: Decision) -> str:
    checklist = getattr(decision.request, "checklist", None)
    if checklist is None:
        return "decided without a completed review checklist"
    if checklist.reviewed_at > decision.decided_at:
        return "decided before the review checklist was completed"
    return "complied in full although the scope was found overbroad"
