"""Demo data for the risk register, changes, reviews and continuity (C23, C26).

Everything goes through the services staff use, so the history pages and the yearly
review's differences have something to show. Idempotent: does nothing once risks exist.
"""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from governance.access.models import User
from governance.risk import changes, continuity, reviews, services
from governance.risk.models import ContinuityPlan, OverallRiskReview, Risk

# code, title, category, threat, vulnerability, inherent (L, I), residual (L, I), treatment, controls
RISKS = [
    (
        "Stolen support laptop exposes customer exports",
        "security",
        "Theft",
        "Local caches",
        (4, 4),
        (2, 3),
        "mitigate",
        ["CTL-002", "CTL-003"],
    ),
    (
        "Staff account takeover by phishing",
        "security",
        "Phishing",
        "Password reuse",
        (4, 5),
        (2, 4),
        "mitigate",
        ["CTL-001"],
    ),
    (
        "Support access beyond the customer's consent",
        "privacy",
        "Insider misuse",
        "Broad grants",
        (3, 5),
        (1, 4),
        "mitigate",
        ["CTL-004"],
    ),
    (
        "Breach notice sent after 72 hours",
        "legal",
        "Slow triage",
        "Manual steps",
        (3, 5),
        (1, 5),
        "mitigate",
        ["CTL-005"],
    ),
    (
        "Hosting region outage",
        "operational",
        "Provider failure",
        "Single region",
        (2, 5),
        (2, 3),
        "transfer",
        ["CTL-006"],
    ),
    (
        "Backups not restorable",
        "operational",
        "Silent corruption",
        "Untested restores",
        (3, 5),
        (1, 4),
        "mitigate",
        ["CTL-006"],
    ),
    ("Ticketing supplier outage", "supplier", "Supplier outage", "One supplier", (3, 3), (3, 2), "accept", []),
    ("Encryption key lost", "security", "Operator error", "Key in one place", (2, 5), (1, 5), "mitigate", ["CTL-007"]),
    (
        "Vulnerable dependency in production",
        "security",
        "Known CVE exploited",
        "Slow patching",
        (4, 4),
        (2, 4),
        "mitigate",
        ["CTL-008"],
    ),
    (
        "Over-broad law-enforcement request complied with",
        "legal",
        "Overbroad order",
        "No review",
        (2, 4),
        (1, 2),
        "mitigate",
        [],
    ),
    (
        "Key person unavailable during an incident",
        "people",
        "Absence",
        "Knowledge in one head",
        (3, 3),
        (2, 2),
        "mitigate",
        [],
    ),
    (
        "Customer data kept after termination",
        "privacy",
        "Missed clean-up",
        "Manual purge",
        (3, 4),
        (1, 3),
        "mitigate",
        [],
    ),
    ("DDoS takes the status page down", "operational", "DDoS", "Single origin", (3, 3), (2, 2), "transfer", []),
    (
        "Audit trail tampered with",
        "security",
        "Insider",
        "Owner role in production",
        (2, 5),
        (1, 4),
        "mitigate",
        ["CTL-001"],
    ),
    (
        "Legacy SFTP export folder readable",
        "security",
        "Misconfiguration",
        "Legacy folder",
        (4, 3),
        (4, 3),
        "avoid",
        [],
    ),
]

CONTROLS = [
    ("CTL-001", "Two-factor authentication for all staff", "tested"),
    ("CTL-002", "Full-disk encryption on laptops", "implemented"),
    ("CTL-003", "No customer exports on endpoints", "planned"),
    ("CTL-004", "Support access by consent and approval only", "tested"),
    ("CTL-005", "Breach-notice deadline monitor", "tested"),
    ("CTL-006", "Weekly full, daily incremental encrypted backups; quarterly restore test", "implemented"),
    ("CTL-007", "Data key escrowed with two officers", "implemented"),
    ("CTL-008", "Weekly dependency scanning and patch window", "implemented"),
]

PLANS = [
    (ContinuityPlan.Operation.SUPPORT, "Customer support continuity plan", 8, 4),
    (ContinuityPlan.Operation.INFRASTRUCTURE, "Infrastructure management continuity plan", 4, 1),
    (ContinuityPlan.Operation.INCIDENT_RESPONSE, "Incident response continuity plan", 2, 1),
    (ContinuityPlan.Operation.SERVICE_DELIVERY, "Hosted application continuity plan", 4, 1),
]


def seed_risk_register(*, owner: User, officer: User, requester: User) -> list[str]:
    """A realistic register: controls, 15 risks over every level (one accepted, one overdue
    for review), two changes (one major, assessed and approved), a continuity plan per major
    operation, and last year's signed overall review."""
    if Risk.objects.exists():
        return []
    today = timezone.localdate()
    controls = {
        code: services.control_save(
            acting_user=owner, code=code, name=name, status=status, owner=owner, evidence="Evidence folder, Q3"
        )
        for code, name, status in CONTROLS
    }
    risks = []
    for index, (title, category, threat, vuln, inherent, residual, treatment, ctl) in enumerate(RISKS, start=1):
        extra = {}
        if index == 15:  # reviewed 13 months ago and not since: overdue
            extra = {"last_reviewed_on": today - timedelta(days=400)}
        elif index == 9:  # review due within the month
            extra = {"next_review_on": today + timedelta(days=12)}
        risks.append(
            services.risk_create(
                acting_user=owner,
                code=f"RSK-{index:03d}",
                title=title,
                category=category,
                owner=owner,
                assets="Assyst portal and its customer data" if category != "people" else "On-call rota",
                threat=threat,
                vulnerability=vuln,
                inherent_likelihood=inherent[0],
                inherent_impact=inherent[1],
                residual_likelihood=residual[0],
                residual_impact=residual[1],
                treatment=treatment if treatment != "accept" else "mitigate",
                controls=[controls[c] for c in ctl],
                **extra,
            )
        )
    services.risk_accept(
        risk=risks[6],
        acting_user=owner,
        reason="A second ticketing supplier costs more than a day's outage; e-mail intake is the fallback.",
        expires_on=today + timedelta(days=180),
    )

    now = timezone.now()
    major = changes.change_create(
        acting_user=requester,
        title="Move customer exports to the encrypted object store",
        description="Scheduled exports are written to the new bucket with per-customer keys.",
        affects_customer_data=True,
        planned_start=now + timedelta(days=5),
        planned_end=now + timedelta(days=5, hours=2),
        rollback_plan="Point the exporter back at the SFTP folder; the old files stay for 14 days.",
    )
    changes.change_submit(change=major, acting_user=requester)
    changes.change_assess(
        change=major,
        acting_user=owner,
        summary="Removes the legacy folder risk; adds a key-management dependency (covered by CTL-007).",
        risks=[risks[14], risks[7]],
    )
    changes.change_approve(change=major, acting_user=officer, note="Assessed; go in the usual window.")
    changes.change_create(
        acting_user=requester,
        title="Monthly operating-system patching",
        description="Standard patch window on the web nodes.",
        pre_approved_routine=True,
        planned_start=now + timedelta(days=9),
        planned_end=now + timedelta(days=9, hours=1),
        rollback_plan="Boot the previous image.",
    )

    for operation, title, rto, rpo in PLANS:
        plan = continuity.continuity_plan_save(
            acting_user=owner,
            operation=operation,
            title=title,
            owner=owner,
            rto_hours=rto,
            rpo_hours=rpo,
            escalation_contacts="Incident lead, Ravi Shah, +44 7700 900001\nHosting duty manager, +44 20 7946 0001",
            document=f"# {title}\n\n1. Declare the disruption in the incident channel.\n2. Follow the runbook.\n",
        )
        held = today - timedelta(days=420 if operation == ContinuityPlan.Operation.INCIDENT_RESPONSE else 60)
        continuity.continuity_exercise_record(
            plan=plan,
            acting_user=owner,
            held_on=held,
            kind="tabletop",
            scenario=f"{plan.get_operation_display()} unavailable for a working day.",
            result="partial",
            improvements="Keep a printed contact sheet.",
        )

    last_year = reviews.overall_review_start(acting_user=officer)
    reviews.overall_review_update(
        review=last_year,
        acting_user=officer,
        summary="Register complete; supplier risks need second suppliers where affordable.",
        decisions="Encrypt exports at rest; quarterly restore tests.",
    )
    last_year = reviews.overall_review_sign(review=last_year, acting_user=officer)
    # Demo only: date it to last year, so this year's review has a period to cover.
    signed = now - timedelta(days=330)
    OverallRiskReview.objects.filter(pk=last_year.pk).update(
        title=f"Overall risk review {signed:%Y}",
        created_at=signed,
        signed_at=signed,
        period_start=signed - timedelta(days=365),
        period_end=signed,
    )
    return [f"risk register: {len(risks)} risks, {len(controls)} controls, 2 changes, {len(PLANS)} continuity plans"]
