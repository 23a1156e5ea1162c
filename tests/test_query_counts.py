"""List pages and changelists cost a fixed number of queries, whatever the row count."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from governance.access.roles import SECURITY_OFFICER, SUPPORT_ENGINEER
from tests.factories import MembershipFactory, OrganisationFactory
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db


def _count(client, url) -> int:
    client.get(url)  # warm up: the first request of a session does one-off work
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _grow(n: int, org) -> None:
    for _ in range(n):
        other = OrganisationFactory()
        MembershipFactory(organisation=other)
        MembershipFactory(organisation=org)


@pytest.mark.commitment("C02")
@pytest.mark.parametrize("role", [SUPPORT_ENGINEER, SECURITY_OFFICER])
def test_admin_changelists_do_not_grow_with_rows(staff_factory, org_a, role):
    staff = staff_factory(role=role)
    assign_perm("tenancy.view_customer_data", staff, org_a)
    client = otp_client(staff)
    urls = [reverse("admin:tenancy_organisation_changelist")]
    if role == SECURITY_OFFICER:
        urls += [reverse("admin:access_user_changelist"), reverse("admin:tenancy_membership_changelist")]
    _grow(2, org_a)
    small = {u: _count(client, u) for u in urls}
    _grow(20, org_a)
    large = {u: _count(client, u) for u in urls}
    assert small == large


@pytest.mark.commitment("C09")
def test_portal_member_list_does_not_grow_with_rows(client, customer_a, org_a):
    client.force_login(customer_a)
    url = reverse("portal:member_list")
    _grow(2, org_a)
    small = _count(client, url)
    _grow(20, org_a)
    assert _count(client, url) == small
