"""Incidents in the customer portal (C09, C14): general and own specific incidents only,
public updates only, at a fixed query cost. Helpers here are also used by test_tenancy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.access.roles import INCIDENT_MANAGER
from governance.tenancy.models import Membership
from incidents.evidence import evidence_add
from incidents.models import Evidence, Incident, IncidentUpdate
from incidents.reports import rca_publish, rca_save
from incidents.selectors import customer_incidents, public_updates
from incidents.services import incident_create, incident_update_post
from tests.factories import MembershipFactory, OrganisationFactory, StaffFactory

pytestmark = pytest.mark.django_db

PUBLIC = IncidentUpdate.Visibility.PUBLIC
INTERNAL = IncidentUpdate.Visibility.INTERNAL


# --- helpers (shared with test_tenancy, test_evidence, test_reports) ------------------------


def manager():
    return StaffFactory(role=INCIDENT_MANAGER)


def make_incident(*, organisations=(), title=None, acting_user=None, **kwargs) -> Incident:
    now = timezone.now()
    kind = Incident.Kind.SPECIFIC if organisations else Incident.Kind.GENERAL
    return incident_create(
        acting_user=acting_user or manager(),
        title=title or f"{kind.label.split()[0]} incident",
        description="Something went wrong.",
        kind=kind,
        detected_at=now - timedelta(hours=2),
        aware_at=now - timedelta(hours=1),
        organisations=organisations,
        **kwargs,
    )


def post_update(incident: Incident, *, visibility=PUBLIC, message="We are looking into it.", actions="Nothing yet."):
    return incident_update_post(
        incident=incident,
        acting_user=manager(),
        visibility=visibility,
        status=Incident.Status.IDENTIFIED,
        message=message,
        actions_for_customers=actions if visibility == PUBLIC else "",
    )


def add_evidence(incident: Incident, *, share_with=(), content=b"%PDF-1.4\nevidence\n%%EOF", name="log.pdf"):
    return evidence_add(
        incident=incident,
        acting_user=manager(),
        title="Firewall log",
        uploaded_file=SimpleUploadedFile(name, content, content_type="application/pdf"),
        share_with=share_with,
    )


def org_incident(org) -> Incident:
    """A specific incident affecting only `org` (for the tenancy walk)."""
    return make_incident(organisations=[org], title=f"Only {org.slug}")


def org_incident_with_rca(org) -> Incident:
    incident = org_incident(org)
    staff = manager()
    rca_publish(
        rca=rca_save(incident=incident, acting_user=staff, body_markdown="# Cause\n\nA bug."), acting_user=staff
    )
    return incident


def org_evidence(org) -> Evidence:
    """Evidence of a specific incident affecting only `org`, shared only with it."""
    return add_evidence(org_incident(org), share_with=[org])


@pytest.fixture(autouse=True)
def _evidence_root(settings, tmp_path):
    settings.EVIDENCE_ROOT = str(tmp_path / "evidence")


# --- what a customer sees -------------------------------------------------------------------


@pytest.mark.commitment("C09")
def test_list_shows_general_and_own_specific_incidents_only(client, customer_a, org_a, org_b):
    general = make_incident(title="Platform outage")
    own = make_incident(organisations=[org_a], title="Mailbox misdelivery at A")
    both = make_incident(organisations=[org_a, org_b], title="Shared misconfiguration")
    foreign = make_incident(organisations=[org_b], title="Secret trouble at B")
    client.force_login(customer_a)
    body = client.get(reverse("portal:incident_list")).content.decode()
    for incident in (general, own, both):
        assert incident.title in body
        assert reverse("portal:incident_detail", args=[incident.pk]) in body
    assert foreign.title not in body
    assert set(customer_incidents(org_a)) == {general, own, both}
    assert list(customer_incidents(org_a)) == sorted(
        [general, own, both], key=lambda i: (-i.aware_at.timestamp(), -i.pk)
    )


@pytest.mark.commitment("C09")
def test_another_organisations_specific_incident_is_404(client, customer_a, org_b):
    foreign = make_incident(organisations=[org_b])
    client.force_login(customer_a)
    assert client.get(reverse("portal:incident_detail", args=[foreign.pk])).status_code == 404
    assert client.get(reverse("portal:incident_detail", args=[foreign.pk + 1000])).status_code == 404
    response = client.post(reverse("portal:incident_detail", args=[foreign.pk]), {"kind": "report"})
    assert response.status_code == 404


@pytest.mark.commitment("C14")
def test_internal_updates_are_never_shown(client, customer_a, org_a):
    incident = make_incident(organisations=[org_a])
    post_update(incident, message="Public: we found the cause.", actions="Reset your API keys.")
    post_update(incident, visibility=INTERNAL, message="Internal: blame the intern, ticket OPS-99.")
    assert [u.message for u in public_updates(incident)] == ["Public: we found the cause."]
    client.force_login(customer_a)
    listing = client.get(reverse("portal:incident_list")).content.decode()
    detail = client.get(reverse("portal:incident_detail", args=[incident.pk])).content.decode()
    for body in (listing, detail):
        assert "OPS-99" not in body and "Internal:" not in body
    assert "Public: we found the cause." in listing
    assert "What you should do" in detail and "Reset your API keys." in detail
    assert "sensitive" not in detail.lower()


@pytest.mark.commitment("C09")
def test_detail_shows_only_evidence_shared_with_this_organisation(client, customer_a, org_a, org_b):
    incident = make_incident(organisations=[org_a, org_b])
    mine = add_evidence(incident, share_with=[org_a])
    theirs = add_evidence(incident, share_with=[org_b])
    client.force_login(customer_a)
    body = client.get(reverse("portal:incident_detail", args=[incident.pk])).content.decode()
    assert reverse("portal:evidence_download", args=[mine.pk]) in body
    assert reverse("portal:evidence_download", args=[theirs.pk]) not in body


def test_nav_has_incidents_link(client, customer_a):
    client.force_login(customer_a)
    body = client.get(reverse("portal:home")).content.decode()
    assert f'href="{reverse("portal:incident_list")}"' in body and ">Incidents<" in body


def test_viewer_sees_the_same_pages(client, org_a):
    viewer = MembershipFactory(organisation=org_a, role=Membership.Role.VIEWER).user
    incident = make_incident(organisations=[org_a])
    client.force_login(viewer)
    assert client.get(reverse("portal:incident_detail", args=[incident.pk])).status_code == 200


def test_staff_and_anonymous_get_no_portal_incidents(client, staff_factory, org_a):
    incident = make_incident(organisations=[org_a])
    url = reverse("portal:incident_detail", args=[incident.pk])
    assert client.get(url).status_code == 302
    client.force_login(staff_factory(role=INCIDENT_MANAGER))
    assert client.get(url).status_code == 404


# --- query counts ---------------------------------------------------------------------------


def _count(client, url) -> int:
    client.get(url)  # warm up
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _grow(n: int, org) -> None:
    other = OrganisationFactory()
    staff = manager()
    for i in range(n):
        target = [org] if i % 3 == 0 else [other] if i % 3 == 1 else []
        incident = make_incident(organisations=target, acting_user=staff, title=f"Incident {i}")
        post_update(incident, message=f"Update {i}")


@pytest.mark.commitment("C09")
def test_incident_list_query_count_does_not_grow(client, customer_a, org_a):
    client.force_login(customer_a)
    url = reverse("portal:incident_list")
    _grow(5, org_a)
    small = _count(client, url)
    _grow(45, org_a)
    assert len(list(customer_incidents(org_a))) > 5
    assert _count(client, url) == small
