from __future__ import annotations

import factory
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.access.models import User
from governance.tenancy.models import Membership, Organisation

PASSWORD = "correct-horse-battery-staple"


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Organisation {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")
    primary_contact_name = factory.Faker("name")
    primary_contact_email = factory.Sequence(lambda n: f"contact{n}@customer.example")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organisation = factory.SubFactory(OrganisationFactory)
    role = Membership.Role.ADMIN


class StaffFactory(UserFactory):
    is_staff = True

    @factory.post_generation
    def role(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.groups.add(Group.objects.get(name=extracted))

    @factory.post_generation
    def totp(obj, create, extracted, **kwargs):
        if create:
            TOTPDevice.objects.create(user=obj, name="test", confirmed=True)


def support_request(organisation, *, requester=None, named=None, hours: int = 4, **overrides):
    """A pending support-access request made through the service, as a support engineer would."""
    from datetime import timedelta

    from django.utils import timezone

    from governance.access.services import support_request_create

    requester = requester or StaffFactory(role="Support engineer")
    fields = {
        "organisation": organisation,
        "requester": requester,
        "reason_type": "customer_support",
        "ticket_reference": "SUP-1234",
        "justification": "Customer reports that invoices fail to export; need to inspect their users.",
        "scope": ["people", "profile"],
        "requested_start": timezone.now(),
        "requested_duration": timedelta(hours=hours),
        "named_staff": named if named is not None else [requester],
        **overrides,
    }
    return support_request_create(**fields)


def approved_grant(organisation, **kwargs):
    """A request approved by a security officer and a customer admin: returns its grant."""
    from governance.access.services import support_request_decide_customer, support_request_decide_internal

    request = support_request(organisation, **kwargs)
    officer = StaffFactory(role="Security officer")
    admin = MembershipFactory(organisation=organisation, role=Membership.Role.ADMIN).user
    support_request_decide_internal(request=request, acting_user=officer, approve=True)
    support_request_decide_customer(request=request, acting_user=admin, approve=True)
    request.refresh_from_db()
    return request.grant
