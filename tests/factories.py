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
