"""The public status page, its feeds and the customer's status view (C14): one visibility
rule, no visitor state in the cached page, 304s and at-once invalidation, fixed queries."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from incidents.models import Component, ComponentGroup, ComponentStatusChange, Incident, ScheduledMaintenance
from incidents.selectors import public_incidents
from incidents.services import incident_update_post
from incidents.status import cache as status_cache
from incidents.status import snapshot
from incidents.status.services import component_save, maintenance_create, maintenance_update_post
from tests.helpers import otp_client
from tests.test_portal_incidents import INTERNAL, PUBLIC, make_incident, manager, post_update

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C14")]

SECRETS = ("SPECIFIC-TITLE", "SPECIFIC-UPDATE", "INTERNAL-UPDATE", "SENSITIVE-DETAIL")


@pytest.fixture(autouse=True)
def _fresh_status_cache():
    """The cache outlives each test's rolled-back database: a new version before and after."""
    status_cache.bump()
    yield
    status_cache.bump()


def public_urls() -> list[str]:
    """Every non-parameterised URL of the public status namespace: page, feeds, JSON."""
    (ns,) = [p for p in get_resolver().url_patterns if isinstance(p, URLResolver) and p.namespace == "status"]
    return [
        reverse(f"status:{p.name}") for p in ns.url_patterns if isinstance(p, URLPattern) and not p.pattern.converters
    ]


def make_component(name="Web app", status="operational", group=None) -> Component:
    return component_save(component=Component(name=name, status=status, group=group), acting_user=manager())


@pytest.fixture
def leaky_world(org_a, django_capture_on_commit_callbacks):
    """A general incident with a public and an internal update, and a specific one."""
    with django_capture_on_commit_callbacks(execute=True):
        general = make_incident(title="Dashboards are slow", sensitive_details="SENSITIVE-DETAIL")
        post_update(general, message="PUBLIC-UPDATE: a fix is rolling out.")
        post_update(general, visibility=INTERNAL, message="INTERNAL-UPDATE: db-7 is on fire.")
        specific = make_incident(organisations=[org_a], title="SPECIFIC-TITLE leak")
        post_update(specific, message="SPECIFIC-UPDATE for Org A only.")
    return general, specific


def test_public_incidents_is_general_with_public_updates_only(leaky_world):
    general, specific = leaky_world
    incidents = list(public_incidents())
    assert incidents == [general]
    assert [u.message for u in incidents[0].public_updates] == ["PUBLIC-UPDATE: a fix is rolling out."]


def test_specific_and_internal_never_appear_in_any_public_output(client, leaky_world):
    general, specific = leaky_world
    urls = public_urls()
    assert {"/status/", "/status/feed.atom", "/status/feed.rss", "/api/v2/summary.json"} <= set(urls)
    assert len([u for u in urls if u.startswith("/api/v2/")]) == 8
    for url in [*urls, reverse("status:incident", args=[general.pk])]:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for secret in SECRETS:
            assert secret not in body, (url, secret)
    assert client.get(reverse("status:incident", args=[specific.pk])).status_code == 404
    page = client.get("/status/").content.decode()
    assert "Dashboards are slow" in page and "PUBLIC-UPDATE" in page


def test_internal_update_does_not_change_the_public_status(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        incident = make_incident(title="Login errors")
        post_update(incident)  # public: identified
        incident_update_post(
            incident=incident, acting_user=manager(), visibility=INTERNAL, status="resolved", message="Looks fixed?"
        )
    assert Incident.objects.get(pk=incident.pk).status == "resolved"
    (public,) = public_incidents(unresolved=True)
    assert public.public_status == "identified"
    assert "Login errors" in client.get("/status/").content.decode()


def test_page_is_accessible_plain_html_with_feed_links(client, leaky_world):
    make_component("API", "partial_outage", group=ComponentGroup.objects.create(name="Application"))
    status_cache.bump()
    body = client.get("/status/").content.decode()
    for landmark in ("<header", "<main", "<footer", "<h1>", 'aria-labelledby="components-h"'):
        assert landmark in body
    assert "<script" not in body
    assert 'rel="alternate" type="application/atom+xml"' in body and 'type="application/rss+xml"' in body
    assert "Partial outage" in body  # every colour has its text
    assert "Partial System Outage" in body  # the overall indicator in words
    assert 'class="visually-hidden">' in body  # each history cell has its date and status in words


def test_page_carries_no_visitor_state(client, customer_a, leaky_world):
    anonymous = client.get("/status/")
    assert "csrfmiddlewaretoken" not in anonymous.content.decode()
    assert not anonymous.cookies
    client.force_login(customer_a)
    signed_in = client.get("/status/")
    assert signed_in.content == anonymous.content
    assert customer_a.username not in signed_in.content.decode()
    assert "csrftoken" not in signed_in.cookies


def test_conditional_get_answers_304_without_running_the_view(client, django_assert_num_queries, leaky_world):
    first = client.get("/status/")
    etag, modified = first["ETag"], first["Last-Modified"]
    assert "must-revalidate" in first["Cache-Control"]
    with django_assert_num_queries(0):
        assert client.get("/status/", HTTP_IF_NONE_MATCH=etag).status_code == 304
        assert client.get("/status/", HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
        cached = client.get("/status/")
    assert cached.status_code == 200 and cached.content == first.content


def test_a_change_appears_at_once(client, django_capture_on_commit_callbacks):
    component = make_component("Exports")
    with django_capture_on_commit_callbacks(execute=True):
        incident = make_incident(title="Exports delayed", components=[component])
    before = client.get("/status/")
    assert client.get("/status/", HTTP_IF_NONE_MATCH=before["ETag"]).status_code == 304
    with django_capture_on_commit_callbacks(execute=True):
        incident_update_post(
            incident=incident,
            acting_user=manager(),
            visibility=PUBLIC,
            status="monitoring",
            message="NEW-STATE: exports are catching up.",
            actions_for_customers="None.",
            component_statuses={component.pk: "degraded_performance"},
        )
    after = client.get("/status/", HTTP_IF_NONE_MATCH=before["ETag"])
    assert after.status_code == 200 and after["ETag"] != before["ETag"]
    assert "NEW-STATE" in after.content.decode() and "Degraded performance" in after.content.decode()
    summary = client.get("/api/v2/summary.json").json()
    assert summary["components"][0]["status"] == "degraded_performance"
    assert summary["incidents"][0]["status"] == "monitoring"


def test_component_status_changes_need_a_public_update_and_are_recorded():
    component = make_component("API")
    incident = make_incident()
    with pytest.raises(ValidationError):
        incident_update_post(
            incident=incident,
            acting_user=manager(),
            visibility=INTERNAL,
            status="identified",
            message="x",
            component_statuses={component.pk: "major_outage"},
        )
    with pytest.raises(ValidationError):
        post_update_with(incident, {component.pk: "on_fire"})
    update = post_update_with(incident, {component.pk: "major_outage"})
    change = ComponentStatusChange.objects.get(component=component, incident_update=update)
    assert (change.previous_status, change.status) == ("operational", "major_outage")
    assert list(incident.status_components.all()) == [component]


def post_update_with(incident, statuses):
    return incident_update_post(
        incident=incident,
        acting_user=manager(),
        visibility=PUBLIC,
        status="identified",
        message="Update.",
        actions_for_customers="None.",
        component_statuses=statuses,
    )


def test_history_is_the_worst_status_each_day():
    component = make_component("Dashboards")
    today = snapshot.today()
    Component.objects.filter(pk=component.pk).update(created_at=timezone.now() - timedelta(days=200))
    ComponentStatusChange.objects.all().delete()
    day = lambda n, h: datetime(today.year, today.month, today.day, h, tzinfo=UTC) - timedelta(days=n)  # noqa: E731
    for at, status in (
        (day(100, 1), "degraded_performance"),  # before the window: the starting status
        (day(89, 6), "operational"),
        (day(10, 8), "major_outage"),
        (day(10, 9), "degraded_performance"),
        (day(9, 3), "operational"),
    ):
        ComponentStatusChange.objects.create(component=component, status=status, at=at)
    component.refresh_from_db()
    days = snapshot.history([component])[component.pk].days
    assert len(days) == 90 and days[-1].day == today
    assert days[0].status == "degraded_performance"  # day 89: degraded until 06:00
    assert days[1].status == "operational"
    assert days[-11].status == "major_outage"
    assert days[-10].status == "degraded_performance"  # still degraded at midnight, then fixed
    assert days[-9].status == "operational"
    assert "Major outage" in days[-11].label
    assert days[-11] in snapshot.history([component])[component.pk].problem_days


def test_maintenance_upcoming_then_active(client, django_capture_on_commit_callbacks):
    component = make_component("API")
    start = timezone.now() + timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        maintenance = maintenance_create(
            acting_user=manager(),
            name="Database upgrade",
            scheduled_for=start,
            scheduled_until=start + timedelta(hours=2),
            components=[component],
        )
    body = client.get("/status/").content.decode()
    assert "Scheduled maintenance" in body and "Database upgrade" in body
    with django_capture_on_commit_callbacks(execute=True):
        maintenance_update_post(
            maintenance=maintenance,
            acting_user=manager(),
            status=ScheduledMaintenance.Status.IN_PROGRESS,
            body="Started.",
            component_statuses={component.pk: "under_maintenance"},
        )
    body = client.get("/status/").content.decode()
    assert "Maintenance in progress" in body and "Service Under Maintenance" in body


def test_feeds_list_general_incidents_and_public_updates(client, leaky_world):
    general, _ = leaky_world
    atom = ET.fromstring(client.get("/status/feed.atom").content)  # noqa: S314 (our own feed)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    (entry,) = atom.findall("a:entry", ns)
    assert entry.find("a:title", ns).text.startswith("Dashboards are slow")
    assert "PUBLIC-UPDATE" in entry.find("a:summary", ns).text
    rss = ET.fromstring(client.get("/status/feed.rss").content)  # noqa: S314
    (item,) = rss.findall("channel/item")
    assert item.find("link").text.endswith(reverse("status:incident", args=[general.pk]))


@pytest.mark.parametrize("path", ["/status/", "/api/v2/summary.json"])
def test_query_count_does_not_grow_with_incidents(client, path):
    group = ComponentGroup.objects.create(name="Application")
    for name in ("Web app", "API"):
        make_component(name, group=group)
    counts = []
    for total in (5, 50):
        while Incident.objects.count() < total:
            incident = make_incident(components=list(Component.objects.all()))
            post_update(incident)
        status_cache.bump()  # the uncached path
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path).status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 12


def test_portal_status_shows_own_and_general_incidents_only(client, customer_a, org_a, org_b, leaky_world):
    general, own = leaky_world
    make_incident(organisations=[org_b], title="ORG-B-ONLY")
    client.force_login(customer_a)
    response = client.get(reverse("portal:status"))
    body = response.content.decode()
    assert "Dashboards are slow" in body and "SPECIFIC-TITLE" in body and "SPECIFIC-UPDATE" in body
    assert "ORG-B-ONLY" not in body and "INTERNAL-UPDATE" not in body and "SENSITIVE-DETAIL" not in body
    assert "no-cache" in response["Cache-Control"] or "private" in response["Cache-Control"]
    public = client.get("/status/").content.decode()
    assert "SPECIFIC-TITLE" not in public


def test_incident_manager_edits_components_in_the_admin():
    from governance.access.roles import INCIDENT_MANAGER
    from tests.factories import StaffFactory

    staff = StaffFactory(role=INCIDENT_MANAGER)
    client = otp_client(staff)
    form = {"name": "Search", "position": 0, "status": "partial_outage", "showcase": "on"}
    inline = {"status_changes-TOTAL_FORMS": 0, "status_changes-INITIAL_FORMS": 0}
    add = client.post(reverse("admin:incidents_component_add"), {**form, **inline})
    assert add.status_code == 302, add.content.decode()[:2000]
    component = Component.objects.get(name="Search")
    assert component.status_changes.get().status == "partial_outage"
    for name in ("component", "componentgroup", "scheduledmaintenance"):
        assert client.get(reverse(f"admin:incidents_{name}_changelist")).status_code == 200
    assert client.get(reverse("admin:incidents_scheduledmaintenance_add")).status_code == 200
    assert client.get(reverse("admin:incidents_component_change", args=[component.pk])).status_code == 200
