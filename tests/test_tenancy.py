"""Customers' data is logically separated (C09): every customer URL, every scoped query."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django_scopes import ScopeError, scope
from django_scopes.state import state

from governance.access.models import SupportAccessRequest, SupportGrant
from governance.api.demo import organisation_token
from governance.tenancy.models import Membership, Organisation
from tests.factories import MembershipFactory, approved_grant, support_request
from tests.test_portal_incidents import (
    _evidence_root,  # noqa: F401 (autouse: evidence files in tmp_path)
    org_evidence,
    org_incident,
    org_incident_with_rca,
)

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C09")]

# For every customer-facing URL that takes an object id: how to point it at org B's object.
# A new portal URL with parameters fails `test_every_parameterised_url_is_covered` until listed.
OBJECT_KWARGS = {
    "portal:member_detail": lambda org_b: {"pk": Membership.objects.filter(organisation=org_b).first().pk},
    "portal:member_security": lambda org_b: {"pk": Membership.objects.filter(organisation=org_b).first().pk},
    "portal:access_request_detail": lambda org_b: {
        "pk": (SupportAccessRequest.objects.filter(organisation=org_b).first() or support_request(org_b)).pk
    },
    "portal:access_grant_detail": lambda org_b: {
        "pk": (SupportGrant.objects.filter(organisation=org_b).first() or approved_grant(org_b)).pk
    },
    # A specific incident affecting only that organisation; its evidence shared only with it.
    "portal:incident_detail": lambda org_b: {"pk": org_incident(org_b).pk},
    "portal:incident_rca_pdf": lambda org_b: {"pk": org_incident_with_rca(org_b).pk},
    "portal:evidence_download": lambda org_b: {"pk": org_evidence(org_b).pk},
    "portal:api_token_revoke": lambda org_b: {"pk": organisation_token(org_b)[0].pk},
}
PUBLIC_PORTAL_URLS = {"portal:login", "portal:logout"}


def _portal_patterns():
    resolver = get_resolver()
    (portal,) = [p for p in resolver.url_patterns if isinstance(p, URLResolver) and p.namespace == "portal"]
    for pattern in portal.url_patterns:
        assert isinstance(pattern, URLPattern)
        yield f"portal:{pattern.name}", list(pattern.pattern.converters)


def test_every_parameterised_url_is_covered():
    parameterised = {name for name, params in _portal_patterns() if params}
    assert parameterised == set(OBJECT_KWARGS), "add new customer URLs to OBJECT_KWARGS"


def test_customer_of_a_gets_404_for_every_object_of_b(client, customer_a, org_b):
    MembershipFactory(organisation=org_b)
    client.force_login(customer_a)
    checked = 0
    for name, make_kwargs in OBJECT_KWARGS.items():
        response = client.get(reverse(name, kwargs=make_kwargs(org_b)))
        assert response.status_code == 404, name
        checked += 1
    assert checked == len(OBJECT_KWARGS) >= 1


def test_customer_of_a_reaches_own_objects(client, customer_a, org_a):
    client.force_login(customer_a)
    for name, make_kwargs in OBJECT_KWARGS.items():
        assert client.get(reverse(name, kwargs=make_kwargs(org_a))).status_code == 200, name


def test_list_pages_never_show_other_organisations(client, customer_a, org_b):
    other = MembershipFactory(organisation=org_b, user__username="b-only-user")
    client.force_login(customer_a)
    for name, params in _portal_patterns():
        if params or name in PUBLIC_PORTAL_URLS:
            continue
        response = client.get(reverse(name))
        assert response.status_code == 200, name
        body = response.content.decode()
        assert other.user.username not in body and org_b.name not in body, name


def test_missing_and_forbidden_look_the_same(client, customer_a, org_b):
    foreign = MembershipFactory(organisation=org_b)
    client.force_login(customer_a)
    forbidden = client.get(reverse("portal:member_detail", kwargs={"pk": foreign.pk}))
    missing = client.get(reverse("portal:member_detail", kwargs={"pk": foreign.pk + 10_000}))
    assert forbidden.status_code == missing.status_code == 404

    def strip_csrf(body: bytes) -> str:
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", body.decode())

    assert strip_csrf(forbidden.content) == strip_csrf(missing.content)


def test_unscoped_query_is_impossible_outside_an_active_scope(org_a):
    token = state.set({})  # as in a request without a tenant (anonymous or public view)
    try:
        with pytest.raises(ScopeError):
            list(Membership.objects.all())
        with pytest.raises(ScopeError):
            Organisation.objects.get(pk=org_a.pk)
    finally:
        state.reset(token)


def test_scope_filters_every_query(org_a, org_b):
    MembershipFactory(organisation=org_a)
    MembershipFactory(organisation=org_b)
    with scope(organisation=org_a.pk):
        assert {m.organisation_id for m in Membership.objects.all()} == {org_a.pk}
        assert list(Organisation.objects.all()) == [org_a]


def test_staff_and_anonymous_cannot_use_the_portal(client, staff_factory):
    assert client.get(reverse("portal:home")).status_code == 302  # to login
    client.force_login(staff_factory())
    assert client.get(reverse("portal:home")).status_code == 404


def test_membership_is_one_organisation_per_user(customer_a, org_b):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=customer_a, organisation=org_b)
