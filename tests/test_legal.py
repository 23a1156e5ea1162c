"""Law-enforcement requests (C27): review before decision, objections, customers told first."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.access.roles import AUDITOR, DATA_PROTECTION_OFFICER, LEGAL_COUNSEL, SUPPORT_ENGINEER
from governance.audit.models import AuditEvent
from governance.core.models import JobRun
from governance.legal import services
from governance.legal.models import Decision, LegalRequest
from governance.legal.tasks import REMIND_TASK, remind_legal_requests
from tests.factories import OrganisationFactory, StaffFactory
from tests.helpers import otp_client

pytestmark = [pytest.mark.django_db, pytest.mark.commitment("C27")]


@pytest.fixture(autouse=True)
def _document_root(settings, tmp_path):
    settings.LEGAL_DOCUMENT_ROOT = str(tmp_path / "legal")


def counsel():
    return StaffFactory(role=LEGAL_COUNSEL)


def make_request(organisations, *, user=None, deadline_days: int = 10, **overrides) -> LegalRequest:
    now = timezone.now()
    fields = {
        "acting_user": user or counsel(),
        "agency": "Metropolitan Investigations Bureau",
        "jurisdiction_country": "gb",
        "jurisdiction_detail": "England and Wales",
        "instrument": "court_order",
        "received_at": now - timedelta(hours=1),
        "response_deadline": now + timedelta(days=deadline_days),
        "organisations": organisations,
        "data_kinds": ["subscriber", "activity"],
        "description": "All sign-in records of the named account, January to March.",
        **overrides,
    }
    return services.legal_request_create(**fields)


def review(request, user, *, lawful: bool = True, narrow: bool = True):
    return services.checklist_complete(
        request=request,
        acting_user=user,
        legal_process=lawful,
        valid_and_binding=lawful,
        within_jurisdiction=lawful,
        scope_not_overbroad=narrow,
        notes="Order checked against the court register.",
    )


def decided(organisations, outcome: str = "comply", user=None) -> LegalRequest:
    user = user or counsel()
    request = make_request(organisations, user=user)
    review(request, user)
    services.legal_request_decide(request=request, acting_user=user, outcome=outcome)
    request.refresh_from_db()
    return request


def disclose(request, user):
    return services.disclosure_record(
        request=request,
        acting_user=user,
        what="Sign-in records for one account, 1 Jan - 31 Mar.",
        disclosed_to="DC Example, case 123",
        disclosed_at=timezone.now(),
    )


def notify(request, organisation, user):
    return services.customer_notice_record(
        request=request, organisation=organisation, acting_user=user, notified_at=timezone.now(), method="email"
    )


# --- customers first -----------------------------------------------------------------------------


def test_disclosure_blocked_before_customer_notice(org_a):
    user = counsel()
    request = decided([org_a], user=user)
    with pytest.raises(ValidationError, match="have not been told"):
        disclose(request, user)
    assert not request.disclosures.exists()


def test_disclosure_allowed_once_every_organisation_was_notified(org_a, org_b):
    user = counsel()
    request = decided([org_a, org_b], user=user)
    notify(request, org_a, user)
    with pytest.raises(ValidationError, match="1 affected organisation"):
        disclose(request, user)
    notify(request, org_b, user)
    disclosure = disclose(request, user)
    request.refresh_from_db()
    assert request.status == LegalRequest.Status.DISCLOSED
    assert disclosure.under_order is None and disclosure.disclosed_by == user


def test_disclosure_refused_without_decision_and_after_objection_or_rejection(org_a):
    user = counsel()
    request = make_request([org_a], user=user)
    notify(request, org_a, user)
    with pytest.raises(ValidationError, match="reviewed and decided"):
        disclose(request, user)
    rejected = decided([org_a], outcome="reject", user=user)
    objected = make_request([org_a], user=user)
    review(objected, user)
    services.legal_request_decide(
        request=objected,
        acting_user=user,
        outcome="object",
        objection_text="Too wide.",
        objected_on=timezone.localdate(),
    )
    for closed in (rejected, objected):
        notify(closed, org_a, user)
        with pytest.raises(ValidationError, match="nothing is disclosed"):
            disclose(closed, user)


def test_order_needs_a_second_different_reviewer_and_must_be_in_force(org_a):
    recorder, second = counsel(), counsel()
    request = decided([org_a], user=recorder)
    with pytest.raises(ValidationError) as missing:
        services.ndo_record(request=request, acting_user=recorder, reference="", expires_on=None)
    assert set(missing.value.message_dict) == {"reference", "expires_on"}
    order = services.ndo_record(
        request=request,
        acting_user=recorder,
        reference="NDO-2026-17",
        expires_on=timezone.localdate() + timedelta(days=30),
    )
    with pytest.raises(ValidationError, match="have not been told"):  # not signed off yet
        disclose(request, recorder)
    with pytest.raises(PermissionDenied, match="second reviewer"):
        services.ndo_sign_off(order=order, acting_user=recorder)
    with pytest.raises(PermissionDenied, match="legal counsel"):
        services.ndo_sign_off(order=order, acting_user=StaffFactory(role=SUPPORT_ENGINEER))
    # While an order is in force the customer must not be told.
    with pytest.raises(ValidationError, match="must not be told"):
        notify(request, org_a, recorder)
    services.ndo_sign_off(order=order, acting_user=second)
    order.refresh_from_db()
    assert order.signed_off_by == second and order.signed_off_at is not None
    disclosure = disclose(request, recorder)
    assert disclosure.under_order == order


def test_expired_order_reminds_staff_and_blocks_disclosure_again(org_a, mailoutbox, django_capture_on_commit_callbacks):
    recorder, second = counsel(), counsel()
    request = decided([org_a], user=recorder)
    order = services.ndo_record(
        request=request, acting_user=recorder, reference="NDO-9", expires_on=timezone.localdate() + timedelta(days=3)
    )
    services.ndo_sign_off(order=order, acting_user=second)
    disclose(request, recorder)  # allowed under the order

    later = timezone.now() + timedelta(days=5)
    with time_machine.travel(later, tick=False):
        with pytest.raises(ValidationError, match="have not been told"):
            disclose(request, recorder)
        with django_capture_on_commit_callbacks(execute=True):
            remind_legal_requests()
        assert JobRun.objects.filter(task=REMIND_TASK, outcome="success").exists()
        expired = [m for m in mailoutbox if "Non-disclosure order expired" in m.subject]
        assert len(expired) == 1
        assert set(expired[0].to) == {recorder.email, second.email}
        body = expired[0].body
        assert org_a.name not in body and org_a.primary_contact_email not in body
        assert f"/admin/legal/legalrequest/{request.pk}/change/" in body
        # The same day's second run sends nothing more.
        with django_capture_on_commit_callbacks(execute=True):
            remind_legal_requests()
        assert len([m for m in mailoutbox if "Non-disclosure order expired" in m.subject]) == 1
        # Once the customer is told, no more reminders.
        notify(request, org_a, recorder)
        disclose(request, recorder)
    with time_machine.travel(later + timedelta(days=2), tick=False):
        assert services.legal_reminders_send()["expired_order_reminders"] == 0


def test_deadline_within_two_days_reminds_legal_counsel_once(org_a, mailoutbox, django_capture_on_commit_callbacks):
    user = counsel()
    StaffFactory(role=SUPPORT_ENGINEER)  # not a recipient
    soon = make_request([org_a], user=user, deadline_days=1)
    make_request([org_a], user=user, deadline_days=10)
    with django_capture_on_commit_callbacks(execute=True):
        counts = services.legal_reminders_send()
    assert counts["deadline_reminders"] == 1
    (mail,) = mailoutbox
    assert mail.to == [user.email] and f"#{soon.pk}" in mail.subject
    assert "Metropolitan" not in mail.body
    with django_capture_on_commit_callbacks(execute=True):
        assert services.legal_reminders_send()["deadline_reminders"] == 0
    assert len(mailoutbox) == 1


# --- review and decision -------------------------------------------------------------------------


def test_decision_before_checklist_is_refused(org_a):
    user = counsel()
    request = make_request([org_a], user=user)
    with pytest.raises(ValidationError, match="Complete the review checklist"):
        services.legal_request_decide(request=request, acting_user=user, outcome="comply")
    assert not Decision.objects.filter(request=request).exists()


def test_overbroad_scope_forces_objection_or_partial_compliance(org_a):
    user = counsel()
    request = make_request([org_a], user=user)
    review(request, user, narrow=False)
    with pytest.raises(ValidationError) as refused:
        services.legal_request_decide(request=request, acting_user=user, outcome="comply")
    assert "object or comply in part" in refused.value.message_dict["outcome"][0]
    decision = services.legal_request_decide(request=request, acting_user=user, outcome="partial")
    assert decision.outcome == Decision.Outcome.PARTIAL


def test_failed_legal_checks_allow_only_objection_or_rejection(org_a):
    user = counsel()
    request = make_request([org_a], user=user)
    review(request, user, lawful=False)
    for outcome in ("comply", "partial"):
        with pytest.raises(ValidationError, match="object or reject"):
            services.legal_request_decide(request=request, acting_user=user, outcome=outcome)
    services.legal_request_decide(request=request, acting_user=user, outcome="reject")
    request.refresh_from_db()
    assert request.status == LegalRequest.Status.CLOSED


def test_objection_needs_text_and_date_and_is_recorded_encrypted(org_a):
    user = counsel()
    request = make_request([org_a], user=user)
    review(request, user, narrow=False)
    with pytest.raises(ValidationError) as missing:
        services.legal_request_decide(request=request, acting_user=user, outcome="object")
    assert set(missing.value.message_dict) == {"objection_text", "objected_on"}
    text = "The order asks for all customers' logs; we object to its breadth (ref OBJ-7781)."
    decision = services.legal_request_decide(
        request=request, acting_user=user, outcome="object", objection_text=text, objected_on=timezone.localdate()
    )
    decision.refresh_from_db()
    assert decision.objection_text == text and decision.objected_on == timezone.localdate()
    with connection.cursor() as cursor:
        cursor.execute("SELECT objection_text FROM legal_decision WHERE id = %s", [decision.pk])
        raw = bytes(cursor.fetchone()[0])
    assert b"OBJ-7781" not in raw
    request.refresh_from_db()
    assert request.status == LegalRequest.Status.CLOSED


# --- who may act -----------------------------------------------------------------------------------


def test_only_legal_counsel_can_register_review_decide_and_disclose(org_a):
    engineer = StaffFactory(role=SUPPORT_ENGINEER)
    auditor = StaffFactory(role=AUDITOR)
    with pytest.raises(PermissionDenied):
        make_request([org_a], user=engineer)
    request = make_request([org_a])
    for outsider in (engineer, auditor, StaffFactory(is_superuser=True)):
        with pytest.raises(PermissionDenied):
            review(request, outsider)
    user = counsel()
    review(request, user)
    for outsider in (engineer, auditor):
        with pytest.raises(PermissionDenied):
            services.legal_request_decide(request=request, acting_user=outsider, outcome="comply")
        with pytest.raises(PermissionDenied):
            notify(request, org_a, outsider)
        with pytest.raises(PermissionDenied):
            disclose(request, outsider)


def test_admin_pages_by_role(org_a):
    request = make_request([org_a])
    detail = reverse("admin:legal_legalrequest_change", args=[request.pk])
    changelist = reverse("admin:legal_legalrequest_changelist")
    review_url = reverse("admin:legal_legalrequest_action", args=[request.pk, "review"])

    engineer = otp_client(StaffFactory(role=SUPPORT_ENGINEER))
    assert engineer.get(changelist).status_code == 403
    assert engineer.get(detail).status_code == 403
    assert engineer.get(review_url).status_code == 403

    for role in (AUDITOR, DATA_PROTECTION_OFFICER):
        viewer = otp_client(StaffFactory(role=role))
        assert viewer.get(changelist).status_code == 200, role
        body = viewer.get(detail).content.decode()
        assert "All sign-in records" in body and "Review checklist" not in body
        assert viewer.get(review_url).status_code == 403
        assert viewer.post(review_url, {"legal_process": "yes"}).status_code == 403
        assert viewer.get(reverse("admin:legal_legalrequest_add")).status_code == 403
    request.refresh_from_db()
    assert request.status == LegalRequest.Status.RECEIVED


def test_admin_workflow_through_the_pages(org_a):
    user = counsel()
    client = otp_client(user)
    now = timezone.now()
    response = client.post(
        reverse("admin:legal_legalrequest_add"),
        {
            "agency": "Federal Data Office",
            "jurisdiction_country": "de",
            "jurisdiction_detail": "",
            "instrument": "warrant",
            "received_at_0": f"{now:%Y-%m-%d}",
            "received_at_1": "00:00:00",
            "response_deadline_0": f"{now + timedelta(days=5):%Y-%m-%d}",
            "response_deadline_1": "12:00:00",
            "organisations": [org_a.pk],
            "data_kinds": ["content"],
            "description": "Mailbox content of one user.",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    request = LegalRequest.objects.get(agency="Federal Data Office")
    assert request.jurisdiction_country == "DE"

    decide_url = reverse("admin:legal_legalrequest_action", args=[request.pk, "decide"])
    refused = client.post(decide_url, {"outcome": "comply"})
    assert refused.status_code == 200 and "Complete the review checklist" in refused.content.decode()

    review_url = reverse("admin:legal_legalrequest_action", args=[request.pk, "review"])
    answers = {
        "legal_process": "yes",
        "valid_and_binding": "yes",
        "within_jurisdiction": "yes",
        "scope_not_overbroad": "no",
    }
    assert client.post(review_url, answers).status_code == 302
    refused = client.post(decide_url, {"outcome": "object"})
    assert "Give the text of the objection." in refused.content.decode()
    assert client.post(decide_url, {"outcome": "partial"}).status_code == 302

    disclose_url = reverse("admin:legal_legalrequest_action", args=[request.pk, "disclose"])
    disclosure = {
        "what": "One mailbox, March only.",
        "disclosed_to": "Federal Data Office",
        "disclosed_at_0": f"{now:%Y-%m-%d}",
        "disclosed_at_1": "00:00:00",
    }
    assert "have not been told" in client.post(disclose_url, disclosure).content.decode()
    notify_url = reverse("admin:legal_legalrequest_action", args=[request.pk, "notify"])
    notice = {"organisation": org_a.pk, "notified_at_0": f"{now:%Y-%m-%d}", "notified_at_1": "00:00:00"}
    assert client.post(notify_url, {**notice, "method": "email"}).status_code == 302
    assert client.post(disclose_url, disclosure).status_code == 302
    request.refresh_from_db()
    assert request.status == LegalRequest.Status.DISCLOSED
    body = client.get(reverse("admin:legal_legalrequest_change", args=[request.pk])).content.decode()
    assert "One mailbox, March only." in body and "Comply in part" in body


def test_admin_order_sign_off_needs_another_reviewer(org_a):
    recorder, second = counsel(), counsel()
    request = decided([org_a], user=recorder)
    order_url = reverse("admin:legal_legalrequest_action", args=[request.pk, "order"])
    expires = timezone.localdate() + timedelta(days=60)
    assert otp_client(recorder).post(order_url, {"reference": "NDO-1", "expires_on": f"{expires}"}).status_code == 302
    order = request.nondisclosure_orders.get()
    sign_off = reverse("admin:legal_legalrequest_sign_off", args=[request.pk, order.pk])
    detail = reverse("admin:legal_legalrequest_change", args=[request.pk])
    assert "Sign off order" not in otp_client(recorder).get(detail).content.decode()
    otp_client(recorder).post(sign_off)
    order.refresh_from_db()
    assert order.signed_off_at is None
    assert otp_client(StaffFactory(role=AUDITOR)).post(sign_off).status_code == 403
    assert "Sign off order NDO-1" in otp_client(second).get(detail).content.decode()
    assert otp_client(second).post(sign_off).status_code == 302
    order.refresh_from_db()
    assert order.signed_off_by == second


def test_documents_are_encrypted_at_rest_and_every_download_is_audited(org_a, settings):
    from pathlib import Path

    user = counsel()
    request = make_request([org_a], user=user)
    pdf = b"%PDF-1.7\nCOURT-ORDER-SECRET-4411\n%%EOF\n"
    client = otp_client(user)
    response = client.post(
        reverse("admin:legal_legalrequest_action", args=[request.pk, "document"]),
        {"title": "Court order", "uploaded_file": SimpleUploadedFile("order.pdf", pdf, "application/pdf")},
    )
    assert response.status_code == 302
    document = request.documents.get()
    (stored,) = [p for p in Path(settings.LEGAL_DOCUMENT_ROOT).rglob("*") if p.is_file()]
    assert b"COURT-ORDER-SECRET" not in stored.read_bytes()
    url = reverse("admin:legal_legalrequest_document", args=[request.pk, document.pk])
    before = AuditEvent.objects.filter(action="legal.document_downloaded").count()
    download = client.get(url)
    assert download.status_code == 200 and download.content == pdf
    assert download["Cache-Control"].startswith("private, no-store")
    assert AuditEvent.objects.filter(action="legal.document_downloaded").count() == before + 1
    assert otp_client(StaffFactory(role=SUPPORT_ENGINEER)).get(url).status_code == 403
    assert otp_client(StaffFactory(role=DATA_PROTECTION_OFFICER)).get(url).status_code == 403
    assert AuditEvent.objects.filter(action="legal.document_downloaded").count() == before + 1


# --- audit and performance -------------------------------------------------------------------------


def test_every_state_change_writes_an_audit_event(org_a):
    recorder, second = counsel(), counsel()
    start = AuditEvent.objects.count()
    request = make_request([org_a], user=recorder)
    review(request, recorder)
    services.legal_request_decide(request=request, acting_user=recorder, outcome="comply")
    order = services.ndo_record(
        request=request, acting_user=recorder, reference="NDO-2", expires_on=timezone.localdate() + timedelta(days=1)
    )
    services.ndo_sign_off(order=order, acting_user=second)
    disclose(request, recorder)
    with time_machine.travel(timezone.now() + timedelta(days=3), tick=False):
        services.legal_reminders_send()
        notify(request, org_a, recorder)
    actions = list(AuditEvent.objects.order_by("id")[start:].values_list("action", "object_id", "organisation_id"))
    assert [a for a, _, _ in actions] == [
        "legal.request_received",
        "legal.request_reviewed",
        "legal.request_comply",
        "legal.ndo_recorded",
        "legal.ndo_signed_off",
        "legal.data_disclosed",
        "legal.ndo_expired_reminder",
        "legal.customer_notified",
    ]
    # Never filed under the customer's organisation (an order may forbid telling them).
    assert {(o, org) for _, o, org in actions} == {(str(request.pk), None)}


def test_admin_changelist_query_count_does_not_grow(org_a):
    user = counsel()
    client = otp_client(user)
    url = reverse("admin:legal_legalrequest_changelist")

    def grow(n):
        for _ in range(n):
            request = make_request([org_a, OrganisationFactory()], user=user)
            review(request, user)
            services.legal_request_decide(request=request, acting_user=user, outcome="comply")

    def count():
        client.get(url)
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    grow(5)
    small = count()
    grow(45)
    assert count() == small


def test_registration_validates_its_input(org_a):
    now = timezone.now()
    with pytest.raises(ValidationError) as bad:
        make_request(
            [],
            agency=" ",
            jurisdiction_country="GBR",
            received_at=now,
            response_deadline=now - timedelta(days=1),
            data_kinds=["everything"],
            description="",
        )
    assert set(bad.value.message_dict) == {
        "agency",
        "jurisdiction_country",
        "response_deadline",
        "organisations",
        "data_kinds",
        "description",
    }


def test_review_cannot_change_after_the_decision(org_a):
    user = counsel()
    request = decided([org_a], user=user)
    with pytest.raises(ValidationError, match="already been decided"):
        review(request, user, narrow=False)
