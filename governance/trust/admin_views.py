"""The trust report pages inside the staff admin (OTP-protected): HTML, PDF and JSON.

Validate the period, check the permission, build the report, respond. Every download
(PDF or JSON) is written to the audit trail with its period and format.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_safe

from governance.audit.services import audit_record
from governance.trust.evidence import FAILING, KEPT, NO_DATA
from governance.trust.report import PeriodForm, default_period, trust_report, trust_report_pdf

PERMISSION = "trust.view_trust_report"


def trust_urls(site) -> list:
    def view(func):
        return site.admin_view(require_safe(func))

    return [
        path("trust/report/", view(lambda r: report_page(r, site)), name="trust_report"),
        path("trust/report.pdf", view(report_pdf), name="trust_report_pdf"),
        path("trust/report.json", view(report_json), name="trust_report_json"),
    ]


def _valid_period(request: HttpRequest):
    """(form, period); period is None when the dates are invalid. No dates: the last 12 months."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    data = request.GET.copy()
    if not data.get("since") and not data.get("until"):
        default = default_period()
        data["since"], data["until"] = f"{default.since:%Y-%m-%d}", f"{default.until:%Y-%m-%d}"
    form = PeriodForm(data)
    return form, (form.period() if form.is_valid() else None)


def report_page(request: HttpRequest, site) -> HttpResponse:
    form, period = _valid_period(request)
    context = {
        **site.each_context(request),
        "title": "Trust report",
        "form": form,
        "report": trust_report(period) if period else None,
        "query": request.GET.urlencode(),
        "KEPT": KEPT,
        "FAILING": FAILING,
        "NO_DATA": NO_DATA,
    }
    return TemplateResponse(request, "trust/report.html", context, status=200 if period else 400)


def _download(request: HttpRequest, fmt: str):
    form, period = _valid_period(request)
    if period is None:
        return None, HttpResponse(
            "Invalid period: " + "; ".join(e for errors in form.errors.values() for e in errors),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    report = trust_report(period)
    audit_record(
        action="trust.report_downloaded",
        actor=request.user,
        object_repr="Trust report",
        data={"format": fmt, "since": period.since, "until": period.until, "counts": report.counts},
    )
    return report, None


def _filename(report, ext: str) -> str:
    return f"trust-report-{report.period.since:%Y%m%d}-{report.period.until:%Y%m%d}.{ext}"


def report_pdf(request: HttpRequest) -> HttpResponse:
    report, error = _download(request, "pdf")
    if error:
        return error
    response = HttpResponse(trust_report_pdf(report, site_url=settings.SITE_URL), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{_filename(report, "pdf")}"'
    response["Cache-Control"] = "private, no-store"
    return response


def report_json(request: HttpRequest) -> HttpResponse:
    report, error = _download(request, "json")
    if error:
        return error
    body = json.dumps(report.as_dict(), cls=DjangoJSONEncoder, indent=2)
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{_filename(report, "json")}"'
    response["Cache-Control"] = "private, no-store"
    return response
