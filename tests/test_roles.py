"""Least privilege (C25) and no customer data for staff without a grant (C02)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.urls import reverse
from guardian.shortcuts import assign_perm

from governance.access.roles import AUDITOR, ROLE_NAMES, ROLES, SUPPORT_ENGINEER
from governance.tenancy.models import Organisation
from governance.tenancy.policies import organisations_with_customer_data
from tests.factories import MembershipFactory, StaffFactory, approved_grant
from tests.helpers import otp_client

pytestmark = pytest.mark.django_db


@pytest.mark.commitment("C25")
def test_sync_roles_is_idempotent_and_restores_drift(capsys):
    call_command("sync_roles")
    before = {
        g.name: set(g.permissions.values_list("pk", flat=True)) for g in Group.objects.filter(name__in=ROLE_NAMES)
    }
    support = Group.objects.get(name=SUPPORT_ENGINEER)
    support.permissions.add(Permission.objects.get(codename="delete_organisation"))  # drift by hand
    call_command("sync_roles")
    call_command("sync_roles")
    after = {g.name: set(g.permissions.values_list("pk", flat=True)) for g in Group.objects.filter(name__in=ROLE_NAMES)}
    assert before == after
    assert set(after) == set(ROLE_NAMES) == {r.name for r in ROLES}
    assert "Roles in sync." in capsys.readouterr().out


@pytest.mark.commitment("C25")
def test_auditor_holds_only_view_permissions_and_no_customer_data():
    codenames = set(Group.objects.get(name=AUDITOR).permissions.values_list("codename", flat=True))
    assert codenames, "the auditor must be able to view evidence"
    assert all(c.startswith("view_") for c in codenames)
    assert "view_customer_data" not in codenames


@pytest.mark.commitment("C25")
def test_no_role_can_hand_out_object_permissions():
    guardian_perms = Permission.objects.filter(content_type__app_label="guardian").exclude(codename__startswith="view_")
    for group in Group.objects.filter(name__in=ROLE_NAMES):
        assert not group.permissions.filter(pk__in=guardian_perms).exists(), group.name
        assert not group.permissions.filter(codename="view_customer_data").exists(), group.name


@pytest.mark.commitment("C25")
def test_auditor_can_view_but_change_nothing_in_the_admin(staff_factory, org_a):
    auditor = staff_factory(role=AUDITOR)
    client = otp_client(auditor)
    change_url = reverse("admin:tenancy_organisation_change", args=[org_a.pk])
    assert client.get(reverse("admin:tenancy_organisation_changelist")).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:tenancy_organisation_add")).status_code == 403
    response = client.post(change_url, {"name": "Renamed", "slug": org_a.slug, "status": "active"})
    assert response.status_code == 403
    assert (
        client.post(reverse("admin:tenancy_organisation_delete", args=[org_a.pk]), {"post": "yes"}).status_code == 403
    )
    org_a.refresh_from_db()
    assert org_a.name == "Org A"


@pytest.mark.commitment("C25")
def test_admin_index_lists_only_what_the_role_may_see(staff_factory):
    client = otp_client(staff_factory(role=SUPPORT_ENGINEER))
    body = client.get(reverse("admin:index")).content.decode()
    assert "Organisations" in body
    assert "Audit events" not in body and "Users" not in body


@pytest.mark.commitment("C02")
def test_support_engineer_sees_no_customer_personal_data_without_a_grant(staff_factory, org_a):
    member = MembershipFactory(organisation=org_a)
    engineer = staff_factory(role=SUPPORT_ENGINEER)
    # Even a model-level permission must not open customer data (accept_global_perms=False),
    # nor an object permission without an active grant behind it.
    assign_perm("tenancy.view_customer_data", Group.objects.get(name=SUPPORT_ENGINEER))
    assign_perm("tenancy.view_customer_data", engineer, org_a)
    engineer = type(engineer).objects.get(pk=engineer.pk)  # drop permission caches
    client = otp_client(engineer)

    for url in (
        reverse("admin:tenancy_organisation_changelist"),
        reverse("admin:tenancy_organisation_change", args=[org_a.pk]),
    ):
        body = client.get(url).content.decode()
        assert org_a.primary_contact_email not in body and org_a.primary_contact_name not in body
    assert client.get(reverse("admin:tenancy_organisation_data", args=[org_a.pk])).status_code == 403
    # The user pages are not part of the role at all.
    assert client.get(reverse("admin:access_user_change", args=[member.user.pk])).status_code == 403


@pytest.mark.commitment("C02")
def test_superuser_reads_no_customer_personal_data_without_a_grant(org_a):
    member = MembershipFactory(organisation=org_a)
    root = StaffFactory(is_superuser=True)
    client = otp_client(root)
    pages = [
        reverse("admin:tenancy_organisation_changelist"),
        reverse("admin:tenancy_organisation_change", args=[org_a.pk]),
        reverse("admin:access_user_changelist"),
        reverse("admin:access_user_change", args=[member.user.pk]),
        reverse("admin:tenancy_membership_changelist"),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for secret in (org_a.primary_contact_email, org_a.primary_contact_name, member.user.email):
            assert secret not in body, (url, secret)
    assert client.get(reverse("admin:tenancy_organisation_data", args=[org_a.pk])).status_code == 403
    assert list(organisations_with_customer_data(root)) == []


@pytest.mark.commitment("C02")
def test_a_grant_opens_only_its_own_organisation(org_a, org_b):
    grant = approved_grant(org_a)
    (engineer,) = grant.staff.all()
    assert list(organisations_with_customer_data(engineer)) == [org_a]
    client = otp_client(engineer)
    body = client.get(reverse("admin:tenancy_organisation_data", args=[org_a.pk])).content.decode()
    assert org_a.primary_contact_email in body
    assert client.get(reverse("admin:tenancy_organisation_data", args=[org_b.pk])).status_code == 403


@pytest.mark.commitment("C02")
def test_policy_selector_ignores_global_permissions(staff_factory, org_a, org_b):
    engineer = staff_factory(role=SUPPORT_ENGINEER)
    engineer.user_permissions.add(Permission.objects.get(codename="view_customer_data"))
    engineer = type(engineer).objects.get(pk=engineer.pk)
    assert list(organisations_with_customer_data(engineer)) == []
    grant = approved_grant(org_b, requester=engineer)
    assert list(organisations_with_customer_data(engineer)) == [org_b]
    assert Organisation.objects.count() == 2
    assert grant.organisation == org_b
