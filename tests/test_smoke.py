import pytest
from django.urls import reverse


@pytest.mark.django_db
def test_portal_home_shows_own_organisation(client, customer_a, org_a):
    client.force_login(customer_a)
    response = client.get(reverse("portal:home"))
    assert response.status_code == 200
    assert org_a.name in response.content.decode()
