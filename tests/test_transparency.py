"""The public transparency report (C27): banded counts per half-year and jurisdiction, no personal data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from governance.legal import services
from governance.legal.transparency import band, transparency_report
from tests.factories import OrganisationFactory, StaffFactory
from tests.test_legal import counsel, review

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C27")]

AGENCY = "Springfield County Sheriff"


def received(when: datetime, organisations, *, country: str = "US", user=None, outcome: str | None = None):
    user = user or counsel()
    with time_machine.travel(when + timedelta(hours=1), tick=False):
        request = services.legal_request_create(
            acting_user=user,
            agency=AGENCY,
            jurisdiction_country=country,
            jurisdiction_detail="Springfield, Oregon",
            instrument="subpoena",
            received_at=when,
            response_deadline=when + timedelta(days=14),
            organisations=organisations,
            data_kinds=["subscriber"],
            description="Subscriber details of jane.doe@customer.example",
        )
        if outcome:
            review(request, user, narrow=outcome == "comply")
            services.legal_request_decide(
                request=request,
                acting_user=user,
                outcome=outcome,
                objection_text="Overbroad." if outcome == "object" else "",
                objected_on=when.date() if outcome == "object" else None,
            )
    return request


def _cells(period, country):
    (row,) = [r for r in period.rows if r.jurisdiction == country]
    return dict(zip(("received", "complied", "partial", "objected", "rejected", "notified"), row.cells, strict=True))


def test_band_hides_small_counts(settings):
    settings.LEGAL_TRANSPARENCY_BAND = 5
    assert [band(n) for n in (0, 1, 4, 5, 12)] == ["0-4", "0-4", "0-4", "5", "12"]
    settings.LEGAL_TRANSPARENCY_BAND = 10
    assert band(9) == "0-9" and band(10) == "10"


def test_half_year_grouping_and_jurisdiction_breakdown(settings):
    settings.LEGAL_TRANSPARENCY_BAND = 3
    user = counsel()
    orgs = [OrganisationFactory() for _ in range(3)]
    # H1 2025: six US requests, one GB; H2 2025: three DE; H1 2026 is still running.
    for day in range(1, 5):
        received(datetime(2025, 1, day, 9, tzinfo=UTC), orgs[:1], user=user, outcome="comply")
    for outcome in ("object", "reject"):
        received(datetime(2025, 6, 30, 23, tzinfo=UTC), orgs[:1], user=user, outcome=outcome)
    received(datetime(2025, 3, 1, tzinfo=UTC), orgs, country="GB", user=user)
    for day in (1, 2, 3):
        request = received(datetime(2025, 7, day, tzinfo=UTC), orgs, country="DE", user=user, outcome="partial")
        with time_machine.travel(datetime(2025, 7, day, 12, tzinfo=UTC), tick=False):
            for org in orgs:
                services.customer_notice_record(
                    request=request,
                    organisation=org,
                    acting_user=user,
                    notified_at=datetime(2025, 7, day, 11, tzinfo=UTC),
                    method="email",
                )
    received(datetime(2026, 1, 2, tzinfo=UTC), orgs[:1], user=user)

    periods = transparency_report(today=date(2026, 2, 1))
    assert [(p.year, p.half) for p in periods] == [(2025, 2), (2025, 1)]
    h2, h1 = periods
    assert [r.jurisdiction for r in h1.rows] == ["GB", "US"]
    assert _cells(h1, "US") == {
        "received": "6",
        "complied": "4",
        "partial": "0-2",
        "objected": "0-2",
        "rejected": "0-2",
        "notified": "0-2",
    }
    assert set(_cells(h1, "GB").values()) == {"0-2"}
    assert [r.jurisdiction for r in h2.rows] == ["DE"]
    assert _cells(h2, "DE") == {
        "received": "3",
        "complied": "0-2",
        "partial": "3",
        "objected": "0-2",
        "rejected": "0-2",
        "notified": "9",
    }
    # Once H1 2026 is over it appears, banded.
    assert [(p.year, p.half) for p in transparency_report(today=date(2026, 7, 1))][0] == (2026, 1)


def test_public_page_is_banded_cacheable_and_free_of_personal_data(client, settings):
    settings.LEGAL_TRANSPARENCY_BAND = 5
    org = OrganisationFactory(name="Acme Widgets Ltd", primary_contact_email="dpo@acme.example")
    user = StaffFactory(role="Legal counsel", email="counsel.person@assyst.example")
    request = received(datetime(2025, 2, 3, tzinfo=UTC), [org], country="US", user=user, outcome="comply")
    with time_machine.travel(datetime(2025, 2, 4, tzinfo=UTC), tick=False):
        services.customer_notice_record(
            request=request,
            organisation=org,
            acting_user=user,
            notified_at=datetime(2025, 2, 4, tzinfo=UTC),
            method="email",
        )
    with time_machine.travel(datetime(2025, 9, 1, tzinfo=UTC), tick=False):
        response = client.get(reverse("legal:transparency"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "H1 2025" in body and '<th scope="row">US</th>' in body
    assert "0-4" in body and ">1<" not in body
    for secret in (
        AGENCY,
        "Springfield",
        org.name,
        org.primary_contact_email,
        user.email,
        user.username,
        "jane.doe",
        "Overbroad",
    ):
        assert secret not in body, secret
    # Nothing per visitor: no session, no CSRF token, no cookies; public caching allowed.
    assert "csrfmiddlewaretoken" not in body and not response.cookies
    assert "public" in response["Cache-Control"] and "max-age=3600" in response["Cache-Control"]


def test_page_needs_no_login_and_shows_nothing_for_the_running_half_year(client):
    received(datetime(2025, 8, 1, tzinfo=UTC), [OrganisationFactory()])
    with time_machine.travel(datetime(2025, 9, 1, tzinfo=UTC), tick=False):
        response = client.get("/transparency/")
    assert response.status_code == 200
    assert "No requests have been received in a completed half-year." in response.content.decode()
    assert client.post("/transparency/").status_code == 405
