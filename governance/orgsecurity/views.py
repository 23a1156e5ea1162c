"""Customer-portal pages of the organisation security settings (C28).

Settings, members' sessions and the audit log are for the organisation's customer
admin; the two-factor pages are for every customer user. Each view validates input,
loads through the scoped helper, calls a service and responds.
"""

from __future__ import annotations

import base64
import csv
from datetime import UTC

import django_otp
import qrcode
import qrcode.image.svg
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from governance.access.services import is_customer_admin
from governance.core.csvsafe import csv_cell
from governance.orgsecurity import enforcement, services
from governance.orgsecurity.forms import AuditFilterForm, CodeForm, SecurityPolicyForm
from governance.orgsecurity.netaddr import client_ip
from governance.orgsecurity.selectors import ACTION_LABELS, event_details, organisation_audit_events, policy_for
from governance.portal.access import customer_required
from governance.portal.forms import apply_service_error
from governance.tenancy.models import Membership
from governance.tenancy.selectors import get_for_user

AUDIT_PER_PAGE = 50
CSV_COLUMNS = ["time_utc", "action", "person", "ip_address", "object", "details"]


def _forbid_unless_admin(request) -> None:
    if not is_customer_admin(request.user, request.organisation):
        raise PermissionDenied("Only a customer admin of your organisation can do this.")


def _next_url(request, default: str = "portal:home") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return reverse(default)


def _policy_initial(policy) -> dict:
    return {
        "two_factor": policy.two_factor,
        "ip_allowlist": "\n".join(policy.ip_allowlist),
        "idle_timeout_minutes": policy.idle_timeout_minutes,
        "session_lifetime_hours": policy.session_lifetime_hours,
    }


@customer_required
@require_http_methods(["GET", "POST"])
def security_settings(request):
    _forbid_unless_admin(request)
    organisation = request.organisation
    policy = policy_for(organisation)
    form = SecurityPolicyForm(initial=_policy_initial(policy))
    status = 200
    if request.method == "POST":
        which = request.POST.get("form")
        if which == "policy":
            form = SecurityPolicyForm(request.POST)
            if form.is_valid():
                try:
                    services.security_policy_update(
                        organisation=organisation,
                        acting_user=request.user,
                        current_ip=client_ip(request),
                        **form.cleaned_data,
                    )
                except ValidationError as exc:
                    apply_service_error(form, exc)
                else:
                    messages.success(request, "Your organisation's security settings are saved and apply at once.")
                    return redirect("portal:security_settings")
        elif which == "sign_out_all":
            services.sessions_revoke_organisation(organisation=organisation, acting_user=request.user)
            enforcement.keep_current_session(request)
            messages.success(request, "Everyone in your organisation is signed out, except you in this browser.")
            return redirect("portal:security_settings")
        else:
            messages.error(request, "Unknown form.")
        status = 400
    members = Membership.objects.filter(organisation=organisation).select_related("user").order_by("user__username")
    with_device = set(
        TOTPDevice.objects.filter(user__membership__organisation=organisation, confirmed=True).values_list(
            "user_id", flat=True
        )
    )
    return render(
        request,
        "portal/security/settings.html",
        {
            "form": form,
            "policy": policy,
            "your_ip": client_ip(request),
            "members": [(m, m.user_id in with_device) for m in members],
        },
        status=status,
    )


@customer_required
@require_http_methods(["GET", "POST"])
def member_security(request, pk: int):
    _forbid_unless_admin(request)
    member = get_for_user(Membership.objects.select_related("user", "organisation"), request, pk=pk)
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "sign_out":
                services.sessions_revoke_user(membership=member, acting_user=request.user)
                if member.user_id == request.user.pk:
                    enforcement.keep_current_session(request)
                messages.success(request, f"All sessions of {member.user.get_username()} are signed out.")
                return redirect("portal:member_security", pk=member.pk)
            if action == "reset_two_factor":
                services.two_factor_reset(membership=member, acting_user=request.user)
                messages.success(
                    request,
                    f"{member.user.get_username()}'s two-factor is removed and their sessions are signed out; "
                    "they set up a new authenticator at their next sign-in.",
                )
                return redirect("portal:member_security", pk=member.pk)
            messages.error(request, "Unknown action.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        status = 400
    return render(
        request,
        "portal/security/member.html",
        {"member": member, "has_device": services.has_confirmed_device(member.user)},
        status=status,
    )


def _filtered_events(request):
    form = AuditFilterForm(request.GET or None)
    events = organisation_audit_events(request.organisation)
    if form.is_bound and not form.is_valid():
        return form, None
    return form, form.apply(events) if form.is_bound else events


@customer_required
@require_GET
def audit_log(request):
    _forbid_unless_admin(request)
    form, events = _filtered_events(request)
    page = Paginator(events, AUDIT_PER_PAGE).get_page(request.GET.get("page")) if events is not None else None
    for event in page or ():
        event.label = ACTION_LABELS.get(event.action, event.action)
        event.details = event_details(event.data)
    return render(
        request,
        "portal/security/audit_log.html",
        {"form": form, "page": page},
        status=200 if events is not None else 400,
    )


@customer_required
@require_GET
def audit_log_csv(request):
    _forbid_unless_admin(request)
    form, events = _filtered_events(request)
    if events is None:
        errors = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in form.errors.items())
        return HttpResponse(f"Invalid filter: {errors}\n", status=400, content_type="text/plain; charset=utf-8")
    # Recorded before the rows are read, so the export shows in the export it makes.
    services.audit_log_exported(
        organisation=request.organisation,
        acting_user=request.user,
        filters=form.used_filters() if form.is_bound else {},
        rows=events.count(),
    )
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{request.organisation.slug}-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=2000):
        writer.writerow(
            csv_cell(value)
            for value in (
                event.created_at.astimezone(UTC).isoformat(),
                event.action,
                event.actor_repr,
                event.ip_address,
                event.object_repr,
                event_details(event.data),
            )
        )
    return response


# --- Two-factor (every customer user) ---------------------------------------------------


def _qr_data_uri(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


@customer_required
@require_http_methods(["GET", "POST"])
def two_factor_setup(request):
    user = request.user
    verified = user.is_verified()
    if services.has_confirmed_device(user):
        # Someone holding only the password must not swap in a device of their own.
        if not verified:
            return redirect(f"{_verify_url()}?next={request.path}")
        if request.method == "POST" and request.POST.get("action") == "recovery_codes":
            codes = services.recovery_codes_regenerate(user=user)
            return render(request, "portal/security/recovery_codes.html", {"codes": codes, "next": _next_url(request)})
        return render(request, "portal/security/two_factor_status.html", {"policy": policy_for(request.organisation)})
    device = services.two_factor_enrolment_device(user=user)
    form = CodeForm()
    status = 200
    if request.method == "POST":
        form = CodeForm(request.POST)
        if form.is_valid():
            try:
                codes = services.two_factor_enrol_confirm(user=user, device=device, token=form.cleaned_data["token"])
            except ValidationError as exc:
                apply_service_error(form, exc)
            else:
                django_otp.login(request, device)
                request.session[enforcement.SESSION_HAS_DEVICE] = True
                enforcement.keep_current_session(request)  # other sessions of this user ended
                return render(
                    request, "portal/security/recovery_codes.html", {"codes": codes, "next": _next_url(request)}
                )
        status = 400
    return render(
        request,
        "portal/security/two_factor_setup.html",
        {
            "form": form,
            "qr": _qr_data_uri(device.config_url),
            "secret": base64.b32encode(device.bin_key).decode(),
            "required": policy_for(request.organisation).two_factor == "required",
            "next": _next_url(request),
        },
        status=status,
    )


def _verify_url() -> str:
    return reverse("portal:two_factor_verify")


@customer_required
@require_http_methods(["GET", "POST"])
def two_factor_verify(request):
    user = request.user
    has_device = services.has_confirmed_device(user)
    if user.is_verified() or not has_device:
        return render(
            request, "portal/security/two_factor_verify.html", {"nothing_to_do": True, "has_device": has_device}
        )
    form = CodeForm()
    status = 200
    if request.method == "POST":
        form = CodeForm(request.POST)
        if form.is_valid():
            device = services.two_factor_verify(user=user, token=form.cleaned_data["token"])
            if device is not None:
                django_otp.login(request, device)
                if isinstance(device, StaticDevice):
                    messages.warning(
                        request, "You used a recovery code; it no longer works. Replace your codes when convenient."
                    )
                return redirect(_next_url(request))
            form.add_error("token", "That code is not right. Use the current code from your app, or a recovery code.")
        status = 400
    return render(
        request,
        "portal/security/two_factor_verify.html",
        {"form": form, "next": _next_url(request)},
        status=status,
    )
