"""The trust report: every commitment's live evidence for a period, as data, JSON and PDF."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from xml.sax.saxutils import escape

from django import forms
from django.utils import timezone

from governance.trust.evidence import COMMITMENT_IDS, FAILING, KEPT, NO_DATA, REGISTRY, Evidence, Period

DEFAULT_DAYS = 365
MAX_DAYS = 3 * 366
EARLIEST = date(2000, 1, 1)


class PeriodForm(forms.Form):
    """The report's period: two dates (inclusive), at most three years, not in the future."""

    since = forms.DateField(required=False, input_formats=["%Y-%m-%d"], widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, input_formats=["%Y-%m-%d"], widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        today = timezone.now().astimezone(UTC).date()
        until = data.get("until") or today
        since = data.get("since") or until - timedelta(days=DEFAULT_DAYS)
        if since < EARLIEST:
            raise forms.ValidationError(f"The period cannot start before {EARLIEST:%Y-%m-%d}.")
        if until > today:
            raise forms.ValidationError("The period cannot end in the future.")
        if since > until:
            raise forms.ValidationError("The start must be on or before the end.")
        if (until - since).days > MAX_DAYS:
            raise forms.ValidationError("Choose a period of at most three years.")
        data["since"], data["until"] = since, until
        return data

    def period(self) -> Period:
        """[since 00:00, until+1 00:00) UTC; a period ending today ends now."""
        since = datetime.combine(self.cleaned_data["since"], time.min, tzinfo=UTC)
        until = datetime.combine(self.cleaned_data["until"] + timedelta(days=1), time.min, tzinfo=UTC)
        return Period(since=since, until=min(until, timezone.now()))


def default_period(*, now: datetime | None = None) -> Period:
    now = now or timezone.now()
    return Period(since=now - timedelta(days=DEFAULT_DAYS), until=now)


@dataclass
class TrustReport:
    period: Period
    generated_at: datetime
    items: list[Evidence]

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for e in self.items if e.status == s) for s in (KEPT, FAILING, NO_DATA)}

    @property
    def n_kept(self) -> int:
        return self.counts[KEPT]

    @property
    def n_failing(self) -> int:
        return self.counts[FAILING]

    @property
    def n_no_data(self) -> int:
        return self.counts[NO_DATA]

    def as_dict(self) -> dict:
        return {
            "period": {"since": self.period.since.isoformat(), "until": self.period.until.isoformat()},
            "generated_at": self.generated_at.isoformat(),
            "counts": self.counts,
            "commitments": [e.as_dict() for e in self.items],
        }


def trust_report(period: Period, *, ids: tuple[str, ...] = COMMITMENT_IDS) -> TrustReport:
    """Run every registered evidence function for `period`, in commitment order."""
    return TrustReport(period=period, generated_at=timezone.now(), items=[REGISTRY[cid].func(period) for cid in ids])


STATUS_LABELS = {KEPT: "Kept", FAILING: "FAILING", NO_DATA: "No data"}


def trust_report_pdf(report: TrustReport, *, site_url: str = "") -> bytes:
    """The evidence pack for auditors: a summary table, then each commitment's figures and
    the records behind any failure."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title="Assyst trust report",
        author="Assyst",
        subject=f"Commitments C02-C28, {report.period.label()}",
    )
    counts = report.counts
    story: list = [
        Paragraph("Trust report: live evidence of every commitment", styles["Title"]),
        Paragraph(
            escape(
                f"Period {report.period.since:%Y-%m-%d %H:%M} to {report.period.until:%Y-%m-%d %H:%M} UTC; "
                f"generated {report.generated_at:%Y-%m-%d %H:%M} UTC. {counts[KEPT]} kept, "
                f"{counts[FAILING]} failing, {counts[NO_DATA]} without data."
            ),
            styles["Normal"],
        ),
        Spacer(1, 5 * mm),
    ]
    colour = {
        KEPT: colors.HexColor("#1a7f37"),
        FAILING: colors.HexColor("#cf222e"),
        NO_DATA: colors.HexColor("#6e7781"),
    }
    rows = [[Paragraph("<b>Id</b>", small), Paragraph("<b>Status</b>", small), Paragraph("<b>Evidence</b>", small)]]
    style = [
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.HexColor("#d0d7de")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f6f8fa")),
    ]
    for i, e in enumerate(report.items, start=1):
        rows.append(
            [
                Paragraph(e.commitment, small),
                Paragraph(f"<b>{STATUS_LABELS[e.status]}</b>", small),
                Paragraph(f"<b>{escape(e.title)}</b><br/>{escape(e.summary)}", small),
            ]
        )
        style.append(("TEXTCOLOR", (1, i), (1, i), colour[e.status]))
    story.append(Table(rows, colWidths=[12 * mm, 20 * mm, None], style=TableStyle(style), repeatRows=1))
    failing = [e for e in report.items if e.records]
    if failing:
        story += [Spacer(1, 6 * mm), Paragraph("Records behind the failures", styles["Heading2"])]
        for e in failing:
            story.append(Paragraph(escape(f"{e.commitment} {e.title}"), styles["Heading4"]))
            for r in e.records:
                link = f" ({escape(site_url + r.url)})" if r.url else ""
                story.append(Paragraph(f"&bull; <b>{escape(r.label)}</b>: {escape(r.problem)}{link}", small))
    story += [Spacer(1, 6 * mm), Paragraph("Figures", styles["Heading2"])]
    for e in report.items:
        if e.figures:
            text = "; ".join(f"{k.replace('_', ' ')}: {_fmt(v)}" for k, v in e.figures.items())
            story.append(Paragraph(f"<b>{e.commitment}</b> {escape(text)}", small))
    doc.build(story)
    return buffer.getvalue()


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    if value is None:
        return "-"
    return str(value)
