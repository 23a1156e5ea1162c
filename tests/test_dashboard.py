"""The staff dashboard on the admin index: what needs a person now, most urgent first,
only what that person may act on, in a fixed number of queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance.access.models import AccessReviewCampaign
from governance.access.roles import INCIDENT_MANAGER, SECURITY_OFFICER, SUPPORT_ENGINEER
from governance.disclosure.models import VulnerabilityReport
from governance.retention.models import BackupPolicyCheck
from incidents.models import AffectedOrganisation, Incident, ReportRequest
from tests.factories import MembershipFactory, OrganisationFactory, StaffFactory, approved_grant, support_request
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=False):
        yield


def _breach(org, *, aware_hours_ago: float, role="controller", now=NOW):
    aware = now - timedelta(hours=aware_hours_ago)
    incident = Incident.objects.create(
        title="Misdirected exports", description="d", kind="specific", detected_at=aware, aware_at=aware,
        personal_data_breach=True, created_by=StaffFactory(),
    )  # fmt: skip
    window = timedelta(hours=72 if role == "controller" else 24)
    AffectedOrganisation.objects.create(incident=incident, organisation=org, role=role, deadline_at=aware + window)
    return incident


def _grow(n: int) -> None:
    """n more rows for every source of the dashboard."""
    for i in range(n):
        org = OrganisationFactory()
        _breach(org, aware_hours_ago=10 + i)
        customer = MembershipFactory(organisation=org).user
        ReportRequest.objects.create(
            incident=Incident.objects.latest("pk"), organisation=org, kind="report", requested_by=customer,
            requested_at=NOW - timedelta(days=6), due_target=NOW.date(), due_limit=(NOW + timedelta(days=4)).date(),
        )  # fmt: skip
        VulnerabilityReport.objects.create(
            reference=f"VR-{org.pk}", summary="s", affected_product="p", steps_to_reproduce="s", impact="i",
            received_at=NOW - timedelta(days=6), first_response_due=(NOW - timedelta(days=1)).date(),
        )  # fmt: skip
        support_request(org)
        approved_grant(org, hours=2)
    AccessReviewCampaign.objects.create(
        period_start=NOW - timedelta(days=100 + n), period_end=NOW - timedelta(days=10), due_at=NOW - timedelta(days=n)
    )
    BackupPolicyCheck.objects.create(
        checked_at=NOW - timedelta(hours=n), misses=["No successful full backup."], alerted=True
    )


def _body(user) -> str:
    response = otp_client(user).get("/admin/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.commitment("C12")
def test_incident_manager_sees_breach_deadlines_most_urgent_first_with_time_left():
    later = _breach(OrganisationFactory(name="Northwind Health"), aware_hours_ago=10)
    sooner = _breach(OrganisationFactory(name="Contoso Legal"), aware_hours_ago=60)
    overdue = _breach(OrganisationFactory(name="Fabrikam Retail"), aware_hours_ago=30, role="processor")
    body = _body(StaffFactory(role=INCIDENT_MANAGER))
    dash = body[body.index('id="dashboard"') :]
    positions = [dash.index(f"/admin/incidents/incident/{i.pk}/change/") for i in (overdue, sooner, later)]
    assert positions == sorted(positions)
    assert "6 h 0 min overdue" in dash and "12 h 0 min left" in dash and "2 days left" in dash
    assert "Support access" not in dash  # not theirs to decide


@pytest.mark.commitment("C03")
@pytest.mark.commitment("C05")
def test_security_officer_sees_support_decisions_ending_grants_reviews_and_backup_misses():
    org = OrganisationFactory(name="Northwind Health")
    request = support_request(org, ticket_reference="SUP-77")
    grant = approved_grant(OrganisationFactory(name="Contoso Legal"), hours=2)
    campaign = AccessReviewCampaign.objects.create(
        period_start=NOW - timedelta(days=100), period_end=NOW - timedelta(days=10), due_at=NOW - timedelta(days=1)
    )
    BackupPolicyCheck.objects.create(
        checked_at=NOW - timedelta(hours=4), misses=["No successful full backup is registered."], alerted=True
    )  # noqa: E501
    _breach(OrganisationFactory(), aware_hours_ago=5)
    body = _body(StaffFactory(role=SECURITY_OFFICER))
    dash = body[body.index('id="dashboard"') :]
    assert f"/admin/access/supportaccessrequest/{request.pk}/decide/" in dash and "SUP-77" in dash
    assert f"/admin/access/supportgrant/{grant.pk}/change/" in dash
    assert f"/admin/access/accessreviewcampaign/{campaign.pk}/change/" in dash and "1 days overdue" not in dash
    assert "No successful full backup is registered." in dash
    assert "Next clean-up:" in dash
    assert "Breach notice" not in dash  # incident managers act on those
    assert "/admin/trust/report/" in dash


def test_a_requester_is_not_asked_to_decide_their_own_request():
    engineer_officer = StaffFactory(role=SECURITY_OFFICER)
    engineer_officer.groups.add(*StaffFactory(role=SUPPORT_ENGINEER).groups.all())
    support_request(OrganisationFactory(), requester=engineer_officer, ticket_reference="OWN-1")
    assert "OWN-1" not in _body(engineer_officer)


def test_support_engineer_sees_nothing_to_act_on_and_no_links_they_cannot_follow():
    _breach(OrganisationFactory(), aware_hours_ago=5)
    support_request(OrganisationFactory(), ticket_reference="SUP-9")
    body = _body(StaffFactory(role=SUPPORT_ENGINEER))
    assert "Nothing waiting for you." in body and "SUP-9" not in body and "Trust report" not in body


def test_risk_heat_map_is_shown_to_those_who_may_see_risks():
    from django.apps import apps

    if not apps.is_installed("governance.risk"):
        pytest.fail("governance.risk is installed in this project; the heat map must render")
    body = _body(StaffFactory(role=SECURITY_OFFICER))
    assert "Risk heat map" in body and 'class="risk-heatmap"' in body
    assert "Risk heat map" not in _body(StaffFactory(role=SUPPORT_ENGINEER))


def _count(user) -> int:
    client = otp_client(user)
    client.get("/admin/")
    with CaptureQueriesContext(connection) as ctx:
        assert client.get("/admin/").status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.commitment("C12")
@pytest.mark.commitment("C03")
@pytest.mark.parametrize("who", ["superuser", SECURITY_OFFICER, INCIDENT_MANAGER])
def test_dashboard_costs_a_fixed_number_of_queries_at_two_sizes(who):
    user = StaffFactory(is_superuser=True) if who == "superuser" else StaffFactory(role=who)
    _grow(2)
    small = _count(user)
    _grow(15)
    assert _count(user) == small
