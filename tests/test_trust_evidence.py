"""Live evidence of each commitment (issue 9): real figures from the records, and a
deliberately missed deadline shows as failing, with the record behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from governance.access.models import AccessReviewCampaign, SupportAccessRequest, SupportGrant
from governance.access.roles import LEGAL_COUNSEL, SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.disclosure.models import VulnerabilityReport
from governance.legal.models import CustomerNotice, Decision, Disclosure, LegalRequest, ReviewChecklist
from governance.retention.models import BackupPolicyCheck, BackupRecord
from governance.tenancy.models import DataProtectionRole
from governance.trust.evidence import COMMITMENT_IDS, FAILING, KEPT, NO_DATA, REGISTRY, Period
from governance.trust.report import trust_report
from incidents.models import AffectedOrganisation, Incident, IncidentUpdate, ReportRequest
from tests.factories import MembershipFactory, OrganisationFactory, StaffFactory, approved_grant

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
YEAR = Period(since=NOW - timedelta(days=365), until=NOW + timedelta(days=1))


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def evidence(cid: str, period: Period = YEAR):
    return REGISTRY[cid].func(period)


def _incident(*, aware_at, kind=Incident.Kind.SPECIFIC, breach=True, **fields):
    return Incident.objects.create(
        title=fields.pop("title", "Export files misdirected"),
        description="Files went to the wrong folder.",
        kind=kind,
        detected_at=aware_at,
        aware_at=aware_at,
        personal_data_breach=breach,
        created_by=fields.pop("created_by", None) or StaffFactory(),
        **fields,
    )


def _notice(org, *, aware_at, after_hours: float | None, role=DataProtectionRole.CONTROLLER):
    incident = _incident(aware_at=aware_at)
    window = timedelta(hours=72 if role == DataProtectionRole.CONTROLLER else 24)
    return AffectedOrganisation.objects.create(
        incident=incident,
        organisation=org,
        role=role,
        deadline_at=aware_at + window,
        notified_at=None if after_hours is None else aware_at + timedelta(hours=after_hours),
    )


def test_every_commitment_c02_to_c28_has_one_evidence_function():
    assert tuple(sorted(REGISTRY)) == COMMITMENT_IDS
    report = trust_report(YEAR)
    assert [e.commitment for e in report.items] == list(COMMITMENT_IDS)
    for e in report.items:
        assert e.status in (KEPT, FAILING, NO_DATA)
        assert e.summary.startswith(f"{e.commitment}: ") and len(e.summary) > 10


@pytest.mark.commitment("C12")
def test_c12_counts_controller_notices_within_72_hours_with_the_median():
    org = OrganisationFactory(data_protection_role=DataProtectionRole.CONTROLLER)
    for hours in (5, 9, 30):
        _notice(org, aware_at=NOW - timedelta(days=40, hours=hours), after_hours=hours)
    e = evidence("C12")
    assert e.status == KEPT
    assert e.summary == "C12: 3 controller notices in the period, 3 within 72 h, median 9.0 h"
    assert e.figures["sent_on_time"] == 3 and e.figures["median_hours_to_notice"] == 9.0


@pytest.mark.commitment("C12")
def test_c12_a_notice_sent_after_72_hours_is_failing_with_its_record():
    org = OrganisationFactory(name="Contoso Legal", data_protection_role=DataProtectionRole.CONTROLLER)
    _notice(org, aware_at=NOW - timedelta(days=20), after_hours=10)
    late = _notice(org, aware_at=NOW - timedelta(days=10), after_hours=80)
    e = evidence("C12")
    assert e.status == FAILING
    assert "1 late or missed" in e.summary and "2 controller notices" in e.summary
    [record] = e.records
    assert f"Incident #{late.incident_id}" in record.label and "8.0 h after the deadline" in record.problem
    assert record.url == f"/admin/incidents/incident/{late.incident_id}/change/"


@pytest.mark.commitment("C12")
def test_c12_an_unsent_notice_past_its_deadline_is_failing_but_one_still_within_it_is_not():
    org = OrganisationFactory(data_protection_role=DataProtectionRole.CONTROLLER)
    _notice(org, aware_at=NOW - timedelta(hours=10), after_hours=None)  # 62 h left
    assert evidence("C12").status == KEPT
    _notice(org, aware_at=NOW - timedelta(hours=73), after_hours=None)
    e = evidence("C12")
    assert e.status == FAILING and "has passed" in e.records[0].problem


@pytest.mark.commitment("C13")
def test_c13_processor_notices_are_held_to_the_configured_target(settings):
    settings.INCIDENT_PROCESSOR_NOTICE_HOURS = 24
    org = OrganisationFactory()
    _notice(org, aware_at=NOW - timedelta(days=5), after_hours=2, role=DataProtectionRole.PROCESSOR)
    assert evidence("C13").status == KEPT
    _notice(org, aware_at=NOW - timedelta(days=3), after_hours=30, role=DataProtectionRole.PROCESSOR)
    e = evidence("C13")
    assert e.status == FAILING and "within 24 h" in e.summary


@pytest.mark.commitment("C16")
def test_c16_an_overdue_report_request_is_failing():
    org = OrganisationFactory()
    customer = MembershipFactory(organisation=org).user
    incident = _incident(aware_at=NOW - timedelta(days=30))
    on_time = ReportRequest.objects.create(
        incident=incident, organisation=org, kind="report", requested_by=customer,
        requested_at=NOW - timedelta(days=25), due_target=(NOW - timedelta(days=18)).date(),
        due_limit=(NOW - timedelta(days=16)).date(), delivered_at=NOW - timedelta(days=20),
    )  # fmt: skip
    assert evidence("C16").status == KEPT
    other = OrganisationFactory()
    overdue = ReportRequest.objects.create(
        incident=incident, organisation=other, kind="report", requested_by=customer,
        requested_at=NOW - timedelta(days=14), due_target=(NOW - timedelta(days=7)).date(),
        due_limit=(NOW - timedelta(days=5)).date(),
    )  # fmt: skip
    e = evidence("C16")
    assert e.status == FAILING
    assert e.figures["requests"] == 2 and e.figures["delivered"] == 1 and e.figures["within_5_working_days"] == 1
    assert [r.label for r in e.records] == [f"Report request #{overdue.pk} ({other}, incident #{incident.pk})"]
    assert on_time.pk not in {r.label for r in e.records}


@pytest.mark.commitment("C24")
def test_c24_a_backup_policy_miss_in_the_period_is_failing():
    def record(kind, days_ago):
        finished = NOW - timedelta(days=days_ago)
        return BackupRecord.objects.create(
            kind=kind, source="pgbackrest:main", started_at=finished - timedelta(minutes=5), finished_at=finished,
            encrypted=True, location="uk-south", expires_at=finished + timedelta(days=90),
        )  # fmt: skip

    record("full", 6)
    record("incremental", 0.5)
    BackupPolicyCheck.objects.create(checked_at=NOW - timedelta(days=1), misses=[], alerted=False)
    e = evidence("C24")
    assert e.status == KEPT and "1 full backup and 1 incremental" in e.summary
    BackupPolicyCheck.objects.create(
        checked_at=NOW - timedelta(hours=2), misses=["The last full backup finished 8 days ago."], alerted=True
    )
    e = evidence("C24")
    assert e.status == FAILING and e.figures["checks_with_misses"] == 1
    assert "8 days ago" in e.records[0].problem


@pytest.mark.commitment("C22")
def test_c22_an_artefact_kept_past_its_expiry_is_failing():
    finished = NOW - timedelta(days=95)
    BackupRecord.objects.create(
        kind="full", source="pgbackrest:main", started_at=finished, finished_at=finished, encrypted=True,
        location="uk-south", expires_at=finished + timedelta(days=90),
    )  # fmt: skip
    e = evidence("C22")
    assert e.status == FAILING and "still kept" in e.records[0].problem


@pytest.mark.commitment("C02")
def test_c02_an_ended_grant_still_holding_its_permissions_is_failing():
    org = OrganisationFactory()
    grant = approved_grant(org, hours=2)
    assert evidence("C02").status == KEPT
    # Beat is down: the grant ended ten minutes ago but nobody removed its permissions.
    with time_machine.travel(grant.ends_at + timedelta(minutes=10), tick=False):
        e = evidence("C02", Period(since=YEAR.since, until=timezone.now()))
    assert e.status == FAILING and e.figures["ended_grants_with_permissions"] == 1
    assert e.records[0].url == f"/admin/access/supportgrant/{grant.pk}/change/"


@pytest.mark.commitment("C02")
def test_c02_a_read_outside_any_grant_naming_the_reader_is_failing():
    from governance.access.models import AccessLogEntry

    org = OrganisationFactory()
    grant = approved_grant(org, hours=2)
    outsider = StaffFactory(role=SUPPORT_ENGINEER)
    named = grant.staff.get()
    common = dict(
        organisation=org,
        grant=grant,
        scope="people",
        object_type="user",
        object_repr="x",
        reason_type="customer_support",
        ticket_reference="T",
    )  # noqa: E501
    AccessLogEntry.objects.create(staff=named, at=grant.starts_at + timedelta(minutes=1), **common)
    assert evidence("C02").status == KEPT
    AccessLogEntry.objects.create(staff=outsider, at=grant.starts_at + timedelta(minutes=2), **common)
    e = evidence("C02")
    assert e.status == FAILING and e.figures == {
        "reads": 2,
        "reads_outside_grant": 1,
        "ended_grants_with_permissions": 0,
    }


@pytest.mark.commitment("C03")
def test_c03_counts_requests_and_flags_a_grant_without_the_customers_consent():
    org = OrganisationFactory()
    approved_grant(org)
    e = evidence("C03")
    assert e.status == KEPT and "1 approved by both" in e.summary
    # A grant issued behind the workflow's back (customer still undecided).
    engineer = StaffFactory(role=SUPPORT_ENGINEER)
    request = SupportAccessRequest.objects.create(
        organisation=org, requester=engineer, reason_type="customer_support", ticket_reference="X-1",
        justification="j", scope=["people"], requested_start=NOW, requested_duration=timedelta(hours=1),
        decision_deadline=NOW + timedelta(hours=12),
    )  # fmt: skip
    SupportGrant.objects.create(
        request=request, organisation=org, scope=["people"], starts_at=NOW, ends_at=NOW + timedelta(hours=1)
    )
    e = evidence("C03")
    assert e.status == FAILING and e.figures["grants_without_both_approvals"] == 1


@pytest.mark.commitment("C05")
def test_c05_reports_the_last_review_and_fails_on_an_overdue_one():
    AccessReviewCampaign.objects.create(
        period_start=NOW - timedelta(days=200), period_end=NOW - timedelta(days=110), due_at=NOW - timedelta(days=90),
        status="completed", completed_at=NOW - timedelta(days=95),
    )  # fmt: skip
    e = evidence("C05")
    assert e.status == KEPT and e.summary.startswith("C05: last access review finished 2026-08-17, 0 items, 0 revoked")
    overdue = AccessReviewCampaign.objects.create(
        period_start=NOW - timedelta(days=110), period_end=NOW - timedelta(days=20), due_at=NOW - timedelta(days=6)
    )
    e = evidence("C05")
    assert e.status == FAILING and e.records[0].label == str(overdue)


@pytest.mark.commitment("C11")
def test_c11_a_report_past_its_first_response_target_is_failing():
    VulnerabilityReport.objects.create(
        reference="VR-1", summary="XSS", affected_product="portal", steps_to_reproduce="s", impact="i",
        received_at=NOW - timedelta(days=10), first_response_due=(NOW - timedelta(days=6)).date(),
        first_response_at=NOW - timedelta(days=9),
    )  # fmt: skip
    assert evidence("C11").status == KEPT
    VulnerabilityReport.objects.create(
        reference="VR-2", summary="CSRF", affected_product="portal", steps_to_reproduce="s", impact="i",
        received_at=NOW - timedelta(days=8), first_response_due=(NOW - timedelta(days=4)).date(),
    )  # fmt: skip
    e = evidence("C11")
    assert e.status == FAILING and e.records[0].label == "VR-2"


@pytest.mark.commitment("C17")
def test_c17_a_public_notice_without_actions_for_customers_is_failing():
    incident = _incident(aware_at=NOW - timedelta(days=3))
    author = StaffFactory()
    IncidentUpdate.objects.create(
        incident=incident, visibility="public", status="identified", message="m", actions_for_customers="Nothing.",
        created_by=author, created_at=NOW - timedelta(days=2),
    )  # fmt: skip
    assert evidence("C17").status == KEPT
    IncidentUpdate.objects.create(
        incident=incident, visibility="public", status="resolved", message="m", created_by=author,
        created_at=NOW - timedelta(days=1),
    )  # fmt: skip
    assert evidence("C17").status == FAILING


@pytest.mark.commitment("C27")
def test_c27_a_disclosure_before_the_customer_was_told_is_failing():
    counsel = StaffFactory(role=LEGAL_COUNSEL)
    org = OrganisationFactory()
    request = LegalRequest.objects.create(
        agency="Agency", jurisdiction_country="GB", instrument="court_order", received_at=NOW - timedelta(days=30),
        response_deadline=NOW - timedelta(days=10), description="d", created_by=counsel, status="disclosed",
    )  # fmt: skip
    request.organisations.add(org)
    ReviewChecklist.objects.create(
        request=request, legal_process=True, valid_and_binding=True, within_jurisdiction=True,
        scope_not_overbroad=True, reviewer=counsel, reviewed_at=NOW - timedelta(days=29),
    )  # fmt: skip
    Decision.objects.create(request=request, outcome="comply", decided_by=counsel, decided_at=NOW - timedelta(days=28))
    disclosed_at = NOW - timedelta(days=20)
    Disclosure.objects.create(
        request=request, what="w", disclosed_to="t", disclosed_at=disclosed_at, disclosed_by=counsel
    )
    e = evidence("C27")
    assert e.status == FAILING and "before every customer was told" in e.records[0].problem
    # Told the day before: kept.
    CustomerNotice.objects.create(
        request=request,
        organisation=org,
        notified_at=disclosed_at - timedelta(days=1),
        method="email",
        notified_by=counsel,
    )
    e = evidence("C27")
    assert e.status == KEPT and "1 legal request" in e.summary and "1 customer notice" in e.summary


@pytest.mark.commitment("C08")
def test_c08_argon2_first_is_kept_and_anything_else_is_failing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
    assert evidence("C08").status == KEPT
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert evidence("C08").status == FAILING


@pytest.mark.commitment("C06")
def test_c06_samples_a_stored_email_as_ciphertext():
    StaffFactory(email="someone@assyst.example")
    e = evidence("C06")
    assert e.status == KEPT and "ciphertext under a configured key" in e.summary
    assert e.figures["encrypted_fields"] > 10


@pytest.mark.commitment("C09")
def test_c09_every_customer_data_model_is_tenant_scoped():
    e = evidence("C09")
    assert e.status == KEPT and e.figures["unscoped"] == 0 and e.figures["tenant_models"] >= 5


def _grow(n: int) -> None:
    """n more rows of every kind the evidence reads."""
    org = OrganisationFactory(data_protection_role=DataProtectionRole.CONTROLLER)
    officer = StaffFactory(role=SECURITY_OFFICER)
    customer = MembershipFactory(organisation=org).user
    for i in range(n):
        a = _notice(org, aware_at=NOW - timedelta(days=10 + i), after_hours=80 if i % 2 else 5)
        ReportRequest.objects.create(
            incident=a.incident, organisation=org, kind="report" if i % 2 else "rca", requested_by=customer,
            requested_at=NOW - timedelta(days=20), due_target=(NOW - timedelta(days=13)).date(),
            due_limit=(NOW - timedelta(days=11)).date(),
        )  # fmt: skip
        IncidentUpdate.objects.create(
            incident=a.incident, visibility="public", status="identified", message="m", created_by=officer,
            created_at=NOW - timedelta(days=5),
        )  # fmt: skip
        finished = NOW - timedelta(days=i + 1)
        BackupRecord.objects.create(
            kind="full", source="s", started_at=finished, finished_at=finished, encrypted=bool(i % 2),
            location="uk-south", expires_at=finished + timedelta(days=90),
        )  # fmt: skip
        BackupPolicyCheck.objects.create(checked_at=finished, misses=["x"] if i % 2 else [], alerted=bool(i % 2))
        VulnerabilityReport.objects.create(
            reference=f"VR-{n}-{i}", summary="s", affected_product="p", steps_to_reproduce="s", impact="i",
            received_at=NOW - timedelta(days=9), first_response_due=(NOW - timedelta(days=5)).date(),
        )  # fmt: skip
    approved_grant(org)


def _queries_per_commitment() -> dict[str, int]:
    counts = {}
    for cid in COMMITMENT_IDS:
        with CaptureQueriesContext(connection) as ctx:
            REGISTRY[cid].func(YEAR)
        counts[cid] = len(ctx.captured_queries)
    return counts


@pytest.mark.commitment("C12")
@pytest.mark.commitment("C16")
@pytest.mark.commitment("C24")
def test_each_commitment_costs_a_fixed_number_of_queries_at_two_sizes():
    _grow(2)
    small = _queries_per_commitment()
    _grow(12)
    large = _queries_per_commitment()
    assert small == large
    assert sum(small.values()) < 120


@pytest.mark.commitment("C14")
def test_c14_a_general_incident_never_announced_is_failing():
    announced = _incident(aware_at=NOW - timedelta(days=3), kind=Incident.Kind.GENERAL, breach=False)
    IncidentUpdate.objects.create(
        incident=announced, visibility="public", status="identified", message="m", actions_for_customers="Nothing.",
        created_by=announced.created_by, created_at=NOW - timedelta(days=3) + timedelta(minutes=20),
    )  # fmt: skip
    e = evidence("C14")
    assert e.status == KEPT and e.summary.endswith("median 20 min from awareness to the first public update")
    silent = _incident(aware_at=NOW - timedelta(hours=2), kind=Incident.Kind.GENERAL, breach=False, title="Silent")
    e = evidence("C14")
    assert e.status == FAILING and e.records[0].label == str(silent)


@pytest.mark.commitment("C15")
def test_c15_a_notice_that_failed_or_is_stuck_is_failing():
    from incidents.models import Notification

    org = OrganisationFactory()
    incident = _incident(aware_at=NOW - timedelta(days=2))
    common = dict(incident=incident, organisation=org, recipient="a@b.example", subject="s", body="b")
    Notification.objects.create(
        idempotency_key="k1", status="sent", next_attempt_at=NOW, sent_at=NOW - timedelta(hours=1), **common
    )
    assert evidence("C15").status == KEPT
    Notification.objects.create(idempotency_key="k2", status="failed", attempts=10, next_attempt_at=NOW, **common)
    e = evidence("C15")
    assert e.status == FAILING and e.figures["failed"] == 1 and "failed (gave up) after 10" in e.records[0].problem


@pytest.mark.commitment("C18")
def test_c18_a_closed_incident_with_an_open_action_is_failing():
    from incidents.models import CorrectiveAction

    incident = _incident(aware_at=NOW - timedelta(days=20), closed_at=NOW - timedelta(days=2))
    CorrectiveAction.objects.create(
        incident=incident, title="Rotate keys", owner=incident.created_by, due_date=NOW.date(), status="done"
    )
    assert evidence("C18").status == KEPT
    CorrectiveAction.objects.create(
        incident=incident, title="Add alerting", owner=incident.created_by, due_date=NOW.date()
    )
    e = evidence("C18")
    assert e.status == FAILING and e.records[0].problem == "open on a closed incident"


@pytest.mark.commitment("C21")
def test_c21_a_termination_left_out_of_a_clean_up_run_is_failing():
    from governance.retention.models import CleanupRun, Termination

    officer = StaffFactory(role=SECURITY_OFFICER)
    org = OrganisationFactory()
    common = dict(
        organisation_name=str(org), reason="r", requested_via="staff", requested_by_repr="x", requested_at=NOW
    )
    Termination.objects.create(
        organisation=org, organisation_pk=org.pk, status="purged", confirmed_at=NOW - timedelta(days=40),
        confirmed_by=officer, **common,
    )  # fmt: skip
    run = CleanupRun.objects.create(
        started_at=NOW - timedelta(days=30), finished_at=NOW - timedelta(days=30), status="completed"
    )
    e = evidence("C21")
    assert e.status == KEPT and "last clean-up 2026-10-21" in e.summary
    other = OrganisationFactory()
    left_out = Termination.objects.create(
        organisation=other, organisation_pk=other.pk, status="confirmed", confirmed_by=officer,
        confirmed_at=run.started_at - timedelta(days=1), **{**common, "organisation_name": str(other)},
    )  # fmt: skip
    e = evidence("C21")
    assert e.status == FAILING and e.records[0].label == str(left_out)
    assert e.records[0].problem == "confirmed before the last clean-up run but not purged by it"


@pytest.mark.commitment("C20")
def test_c20_an_rca_request_open_past_seven_working_days_is_failing():
    org = OrganisationFactory()
    customer = MembershipFactory(organisation=org).user
    incident = _incident(aware_at=NOW - timedelta(days=30))
    ReportRequest.objects.create(
        incident=incident, organisation=org, kind="rca", requested_by=customer, requested_at=NOW - timedelta(days=3)
    )
    assert evidence("C20").status == KEPT
    ReportRequest.objects.create(
        incident=_incident(aware_at=NOW - timedelta(days=30)), organisation=org, kind="rca", requested_by=customer,
        requested_at=NOW - timedelta(days=15),
    )  # fmt: skip
    e = evidence("C20")
    assert e.status == FAILING and e.figures["open_past_7_working_days"] == 1
