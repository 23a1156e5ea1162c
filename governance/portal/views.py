"""The customer portal: each view validates, loads through the scoped helper, responds."""

from __future__ import annotations

from django.shortcuts import render

from governance.portal.access import customer_required
from governance.tenancy.models import Membership
from governance.tenancy.selectors import get_for_user


@customer_required
def home(request):
    return render(request, "portal/home.html", {"organisation": request.organisation})


@customer_required
def member_list(request):
    # The scoped manager limits this to the customer's own organisation.
    members = Membership.objects.select_related("user").order_by("user__username")
    return render(request, "portal/member_list.html", {"members": members})


@customer_required
def member_detail(request, pk: int):
    member = get_for_user(Membership.objects.select_related("user"), request, pk=pk)
    return render(request, "portal/member_detail.html", {"member": member})
